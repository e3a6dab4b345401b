"""The label join: label records meet the unlabelled events they belong to, by id.

Wraps :class:`stratiflow.labels.LabelJoin`, one per model key. Entries and the
expiry index live in ``MapState`` (one entry per id, read and written alone);
only a small header is pickled per record.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

from pyflink.common import Types
from pyflink.datastream import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import MapState, MapStateDescriptor, ValueStateDescriptor

from stratiflow.config import Config
from stratiflow.labels import JoinOutput, LabelJoin
from stratiflow.records import Event, LabelRecord


class MapStateView(MutableMapping[Any, Any]):
    """A Flink ``MapState`` as a mapping, for the pure core's stores (no ``len``)."""

    def __init__(self, state: MapState) -> None:
        self.state = state

    def __getitem__(self, key: Any) -> Any:
        value = self.state.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def get(self, key: Any, default: Any = None) -> Any:
        value = self.state.get(key)
        return default if value is None else value

    def __setitem__(self, key: Any, value: Any) -> None:
        self.state.put(key, value)

    def __delitem__(self, key: Any) -> None:
        self.state.remove(key)

    def pop(self, key: Any, default: Any = None) -> Any:
        value = self.state.get(key)
        if value is None:
            return default
        self.state.remove(key)
        return value

    def __iter__(self) -> Iterator[Any]:
        return iter(self.state.keys())

    def __len__(self) -> int:
        raise TypeError("MapStateView has no cheap length; count entries yourself")


def map_state(runtime_context: RuntimeContext, name: str, key_type: Any = None) -> MapStateView:
    """A pickled-value ``MapState`` (string keys by default) wrapped as a mapping."""
    descriptor = MapStateDescriptor(name, key_type or Types.STRING(), Types.PICKLED_BYTE_ARRAY())
    return MapStateView(runtime_context.get_map_state(descriptor))


class KeyedLabelJoin:
    """The current key's :class:`~stratiflow.labels.LabelJoin` over keyed state.

    Create it in a keyed operator's ``open``; :meth:`process` runs one record
    through the join of whatever key the operator is processing.
    """

    def __init__(self, runtime_context: RuntimeContext, cfg: Config) -> None:
        self.settings = cfg.labels
        self.two_inputs = cfg.labels.source == "topic"
        self.header = runtime_context.get_state(
            ValueStateDescriptor("label-join", Types.PICKLED_BYTE_ARRAY())
        )
        self.entries = map_state(runtime_context, "label-join-entries")
        self.index = map_state(runtime_context, "label-join-index", Types.LONG())

    def process(self, record: Event | LabelRecord) -> list[JoinOutput]:
        """Run one record through the current key's join (its header read and written)."""
        join = self.begin(record.key)
        out = self.step(join, record)
        self.end(join)
        return out

    def begin(self, key: str) -> LabelJoin:
        """The current key's join, to run several records through with :meth:`step`
        before :meth:`end` stores it: one header read and write per batch, not per record."""
        join: LabelJoin | None = self.header.value()
        if join is None:
            join = LabelJoin(
                key,
                self.settings.ttl,
                self.settings.max_pending,
                two_inputs=self.two_inputs,
            )
        join.bind(self.entries, self.index)
        return join

    @staticmethod
    def step(join: LabelJoin, record: Event | LabelRecord) -> list[JoinOutput]:
        return join.on_event(record) if isinstance(record, Event) else join.on_label(record)

    def end(self, join: LabelJoin) -> None:
        self.header.update(join)


class JoinLabels(KeyedProcessFunction):
    """Keyed by model key: pass events on, join label records to them, expire the rest.

    Emits events, :class:`~stratiflow.labels.Answer`, :class:`~stratiflow.labels.Expiry`
    and :class:`~stratiflow.labels.LabelOutcome` items; the model operator scores,
    learns, counts and dead-letters them. (With ``sampling.strategy: none`` the
    model operator runs the join itself; see :mod:`stratiflow.operators.model`.)
    """

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.join: KeyedLabelJoin | None = None  # over keyed state, made in open()

    def open(self, runtime_context: RuntimeContext) -> None:
        self.join = KeyedLabelJoin(runtime_context, self.cfg)

    def process_element(
        self, record: Event | LabelRecord, ctx: KeyedProcessFunction.Context
    ) -> Iterator[Any]:
        assert self.join is not None
        yield from self.join.process(record)
