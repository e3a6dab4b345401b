"""The model operators: one River model per model key, held in keyed state.

Two graphs, two operators, one per job shape (both under the uid ``model``, with the
same state names, so a savepoint carries the model whichever the job runs):

- :class:`RawModelOperator` for ``sampling.strategy: none``: its input is the
  source's raw records keyed by :func:`stratiflow.validation.parse.model_key_of`;
  it parses, validates and joins labels itself (one Python operator and one shuffle
  per record instead of three and two, and no pickled records between operators).
- :class:`SampledModelOperator` with a sampler: its input is one stream per key of
  events, the label join's outputs and the key's training batches; with
  ``sampling.order: event_time`` it holds them in an
  :class:`~stratiflow.sampling.alignment.EventTimeAligner` until their turn.

What happens to each item is :func:`stratiflow.runner.keyed.handle`. Both emit
prediction JSON on the main output, metrics reports and dead letters on side
outputs, and a final report per key when a bounded input ends. The predictions an
input element (a batch of records) produced leave as one string, their JSON lines
joined with newlines; :func:`predictions_of` splits them again in Java, so PyFlink
pays its per-element cost once per batch rather than once per prediction. Their figures go to
Flink's metric system once per input element too (:mod:`stratiflow.operators.metrics`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from typing import Any

from pyflink.common import Types
from pyflink.datastream import DataStream, KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import ValueState, ValueStateDescriptor
from pyflink.java_gateway import get_gateway

from stratiflow.config import Config
from stratiflow.labels import LabelJoin
from stratiflow.learning.learner import ModelState
from stratiflow.operators.labels import KeyedLabelJoin, MapStateView, map_state
from stratiflow.operators.metrics import ModelMetrics, stratiflow_group
from stratiflow.operators.parse import RawParser
from stratiflow.operators.raw import unpack
from stratiflow.operators.tags import (
    END_OF_INPUT,
    LABEL_REQUESTS,
    METRICS,
    MODEL_EVENTS,
    dead_letter,
)
from stratiflow.records import (
    DeadLetter,
    Event,
    LabelRecord,
    Rejection,
    prediction_json,
    to_json,
)
from stratiflow.runner.keyed import Emitted, Item, final_report, handle, handle_events
from stratiflow.sampling import EventTimeAligner, LateExample, TrainingBatch
from stratiflow.sampling.alignment import END_OF_TIME


def _now_ms() -> int:
    return int(time.time() * 1000)


def _joined(lines: list[str]) -> Iterator[str]:
    """An input element's prediction JSON lines as the one string the operator emits
    (nothing without predictions); :func:`predictions_of` splits it again."""
    if lines:
        yield "\n".join(lines)


def predictions_of(scored: DataStream) -> DataStream:
    """One prediction JSON per record, from a model operator's newline-joined batches.

    ``io.stratiflow.flink.SplitLines`` runs in the JVM, chained to the model operator
    (JSON never holds a raw newline, so each line is one prediction).
    """
    j_scored = scored._j_data_stream
    split = get_gateway().jvm.io.stratiflow.flink.SplitLines()
    j_lines = (
        j_scored.flatMap(split, Types.STRING().get_java_type_info())
        .setParallelism(j_scored.getParallelism())
        .uid("model-predictions")
        .name("predictions: one per line")
    )
    return DataStream(j_lines)


class _KeyedModel(KeyedProcessFunction):
    """What both operators share: the key's model state, the predictions waiting
    for their labels, running an item, the final report at the end of input, and the
    figures each element adds to Flink's metric system."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        # Keyed state handles, made in open() (a function is pickled before it runs).
        self.state: ValueState | None = None
        self.waiting: MapStateView | None = None
        self.metrics: ModelMetrics | None = None

    def open(self, runtime_context: RuntimeContext) -> None:
        self.state = runtime_context.get_state(
            ValueStateDescriptor("model-state", Types.PICKLED_BYTE_ARRAY())
        )
        self.waiting = map_state(runtime_context, "waiting-predictions")
        group = stratiflow_group(runtime_context)
        if group is not None:
            self.metrics = ModelMetrics(
                group,
                gauge_keys=self.cfg.job.gauge_keys,
                gauges=self.cfg.job.python_execution_mode == "process",
                model_events=self.cfg.drift.detector is not None or bool(self.cfg.candidates),
            )

    def _model_state(self, key: str, ctx: KeyedProcessFunction.Context) -> ModelState:
        """The key's state; a new key gets a model and a timer for the end of input."""
        assert self.state is not None
        state: ModelState | None = self.state.value()
        if state is None:
            state = ModelState.new(self.cfg, key)
            ctx.timer_service().register_event_time_timer(END_OF_INPUT)
        return state

    def _run(self, state: ModelState, item: Item, lines: list[str]) -> Iterator[Any]:
        """Handle ``item``: its side outputs are yielded, its prediction JSON appended to
        ``lines`` (the caller emits them joined, see :func:`predictions_of`)."""
        assert self.waiting is not None
        yield from self._emit(handle(state, item, self.waiting, self.cfg, now_ms=_now_ms()), lines)

    def _emit(self, out: Emitted, lines: list[str]) -> Iterator[Any]:
        for prediction in out.predictions:
            lines.append(prediction_json(prediction))
        for letter in out.dead_letters:
            yield self._dead_letter(letter)
        for report in out.reports:
            yield METRICS, to_json(report)
        if out.model_events and self.metrics is not None:
            self.metrics.model_events(out.model_events)
        for event in out.model_events:
            yield MODEL_EVENTS, to_json(event)
        for request in out.label_requests:
            yield LABEL_REQUESTS, to_json(request)

    def _dead_letter(self, letter: DeadLetter) -> tuple[Any, str]:
        if self.metrics is not None:
            self.metrics.dead_letter(letter.reason)
        return dead_letter(letter)

    def _begin(self, state: ModelState) -> tuple[int, ...] | None:
        """The key's counts before an element: what :meth:`_flush` measures growth from."""
        return None if self.metrics is None else self.metrics.start(state)

    def _flush(self, before: tuple[int, ...] | None, state: ModelState | None) -> None:
        """The element's figures into Flink's metric system (once per element)."""
        if self.metrics is not None:
            self.metrics.flush(before, state)

    def _finish(self, state: ModelState, timestamp: int) -> Iterator[Any]:
        """At the end of input, the key's final report; the state is stored either way."""
        assert self.state is not None
        if timestamp == END_OF_INPUT:
            yield METRICS, to_json(final_report(state, self.cfg, now_ms=_now_ms()))
        self.state.update(state)


class RawModelOperator(_KeyedModel):
    """Raw records of one key → parse, validate, join labels, predict, score, learn.

    An input element is one raw record, or a batch of them (a list, from
    :func:`stratiflow.operators.raw.batch_by_model_key`) in arrival order.
    """

    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        self.parser: RawParser | None = None
        self.join: KeyedLabelJoin | None = None

    def open(self, runtime_context: RuntimeContext) -> None:
        super().open(runtime_context)
        self.parser = RawParser(self.cfg)
        if self.cfg.labels.source != "none":
            self.join = KeyedLabelJoin(runtime_context, self.cfg)

    def process_element(self, value: Any, ctx: KeyedProcessFunction.Context) -> Iterator[Any]:
        key = ctx.get_current_key()
        records: Iterable[Any] = value if isinstance(value, list) else (value,)
        items: list[Item] = []
        join: LabelJoin | None = None  # read once per batch, stored once after it
        for raw in records:
            record = self._record(raw, key)
            if isinstance(record, DeadLetter):
                yield self._dead_letter(record)
            elif self.join is None:  # without the join the parser refuses label records
                assert isinstance(record, Event)
                items.append(record)
            else:
                if join is None:
                    join = self.join.begin(key)
                items.extend(KeyedLabelJoin.step(join, record))
        if join is not None:
            assert self.join is not None
            self.join.end(join)
        if not items:  # only rejects: no model for a key that never had a valid record
            self._flush(None, None)
            return
        assert self.state is not None
        state = self._model_state(key, ctx)
        before = self._begin(state)
        lines: list[str] = []
        events: list[Event] = []  # a run of events, handled together (micro-batches)
        for item in items:
            if isinstance(item, Event):
                events.append(item)
                continue
            if events:
                yield from self._events(state, events, lines)
                events = []
            yield from self._run(state, item, lines)
        if events:
            yield from self._events(state, events, lines)
        self.state.update(state)
        self._flush(before, state)
        yield from _joined(lines)

    def _events(self, state: ModelState, events: list[Event], lines: list[str]) -> Iterator[Any]:
        assert self.waiting is not None
        out = handle_events(state, events, self.waiting, self.cfg, now_ms=_now_ms())
        yield from self._emit(out, lines)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterator[Any]:
        assert self.state is not None
        state: ModelState | None = self.state.value()
        if state is not None:
            before = self._begin(state)
            yield from self._finish(state, timestamp)
            self._flush(before, state)

    def _record(self, raw: Any, key: str) -> Event | LabelRecord | DeadLetter:
        """One raw record parsed: an event, a label record, or its dead letter."""
        assert self.parser is not None
        record = self.parser.parse(raw)
        if not isinstance(record, DeadLetter) and record.key != key:
            # model_key_of and the parser disagree: a bug
            source, payload = unpack(raw)
            why = Rejection("invalid_event", f"keyed as {key!r} but its key is {record.key!r}")
            return DeadLetter.of(why, payload, source, at=_now_ms())
        return record


class SampledModelOperator(_KeyedModel):
    """Events, label-join outputs and training batches of one key → predict, score, learn.

    With ``sampling.order: event_time`` items wait in the key's aligner and are
    released as the watermark advances (and their windows' batches come), so which
    model predicts an event does not depend on processing speed; with ``arrival``
    each item is handled at once.
    """

    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        self.aligned = cfg.sampling.order == "event_time"
        self.held: ValueState | None = None

    def open(self, runtime_context: RuntimeContext) -> None:
        super().open(runtime_context)
        self.held = runtime_context.get_state(
            ValueStateDescriptor("held-input", Types.PICKLED_BYTE_ARRAY())
        )

    def process_element(self, item: Any, ctx: KeyedProcessFunction.Context) -> Iterator[Any]:
        assert self.state is not None and self.held is not None
        state = self._model_state(ctx.get_current_key(), ctx)
        before = self._begin(state)
        lines: list[str] = []
        if not self.aligned:
            if not isinstance(item, LateExample):  # only an aligner needs to know
                yield from self._run(state, item, lines)
            self.state.update(state)
            self._flush(before, state)
            yield from _joined(lines)
            return
        aligner: EventTimeAligner | None = self.held.value()
        if aligner is None:  # not `or`: an aligner holding nothing may still wait for windows
            aligner = EventTimeAligner.of(
                self.cfg.sampling, self.cfg.curation.label_filter.min_confidence
            )
        timers = ctx.timer_service()
        watermark = timers.current_watermark()
        if isinstance(item, TrainingBatch):
            aligner.add_batch(item)
        elif isinstance(item, LateExample):
            aligner.resolve(item.start)
        else:
            aligner.add_event(item, watermark)
        for ready in aligner.release(watermark):
            yield from self._run(state, ready, lines)
        self._wait(aligner, timers)
        self.state.update(state)
        self._flush(before, state)
        yield from _joined(lines)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterator[Any]:
        assert self.state is not None and self.held is not None
        state: ModelState | None = self.state.value()
        if state is None:
            return
        before = self._begin(state)
        aligner: EventTimeAligner | None = self.held.value() if self.aligned else None
        if aligner is not None:
            # Release everything the watermark has reached, not only up to this timer:
            # releasing to ``timestamp`` alone left the next held item's turn at or
            # below the watermark, and Flink then finished the bundle (committing all
            # held state) and fired one more timer for each distinct release time.
            # Same items, same order: the aligner releases in one fixed order.
            watermark = ctx.timer_service().current_watermark()
            until = END_OF_TIME if timestamp == END_OF_INPUT else max(timestamp, watermark)
            lines: list[str] = []
            for ready in aligner.release(until):
                yield from self._run(state, ready, lines)
            self._wait(aligner, ctx.timer_service())
            yield from _joined(lines)
        yield from self._finish(state, timestamp)
        self._flush(before, state)

    def _wait(self, aligner: EventTimeAligner, timers: Any) -> None:
        """Keep a timer at the next held item's turn; store what is still held.

        Items up to the watermark have just been released, so ``due`` is beyond it
        (or held for a window's batch, which releases it when it comes): the timer
        fires at a later watermark, never in a loop of bundles. A timer is
        registered only when the turn changed (one registration per release time, not
        per event); ``aligner.timer`` is checkpointed together with Flink's timers.
        """
        assert self.held is not None
        due = aligner.next_due()
        if due is None:
            if aligner.waits_for_windows():
                self.held.update(aligner)
            else:
                self.held.clear()
            return
        if due != aligner.timer:
            timers.register_event_time_timer(due)
            aligner.timer = due
        self.held.update(aligner)
