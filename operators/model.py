"""The model operator: one River model per model key, held in keyed state."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from pyflink.common import Types
from pyflink.datastream import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import ValueStateDescriptor

from operators.labels import KeyedLabelJoin, map_state
from operators.parse import RawParser
from operators.raw import unpack
from operators.tags import DEAD_LETTERS, END_OF_INPUT, METRICS
from stratiflow.config import Config
from stratiflow.learning.learner import ModelState
from stratiflow.records import DeadLetter, Event, Rejection, to_json
from stratiflow.runner.keyed import Item, final_report, handle
from stratiflow.sampling import LateExample, TrainingBatch
from stratiflow.sampling.alignment import END_OF_TIME, EventTimeAligner


def _now_ms() -> int:
    return int(time.time() * 1000)


class ModelOperator(KeyedProcessFunction):
    """Predict every event, score labels, learn, report metrics.

    Its input is one stream per key: events, the label join's outputs
    (:mod:`stratiflow.labels.join`) and, with a sampler, the key's training
    batches. What happens to each item is :func:`stratiflow.runner.keyed.handle`.
    With a sampler and ``sampling.order: event_time``, items are held in an
    :class:`~stratiflow.sampling.alignment.EventTimeAligner` and released as the
    watermark advances, so which model predicts an event does not depend on
    processing speed.

    With ``raw_input`` (the graph for ``sampling.strategy: none``) its input is
    the source's raw records keyed by :func:`stratiflow.validation.parse.model_key_of`,
    and it parses, validates and joins labels itself: one Python operator and
    one shuffle per record instead of three and two, and no pickled records
    between operators.

    Emits prediction JSON on the main output, metrics reports and dead
    letters on side outputs. When a bounded input ends it learns what the
    update policy still buffers and emits a final report per key.
    """

    def __init__(self, cfg: Config, *, raw_input: bool = False, batched: bool = False) -> None:
        self.cfg = cfg
        self.raw_input = raw_input
        self.batched = batched

    def open(self, runtime_context: RuntimeContext) -> None:
        self.state = runtime_context.get_state(
            ValueStateDescriptor("model-state", Types.PICKLED_BYTE_ARRAY())
        )
        self.held = runtime_context.get_state(
            ValueStateDescriptor("held-input", Types.PICKLED_BYTE_ARRAY())
        )
        # Predictions waiting for their delayed label, one map entry per event id.
        self.waiting = map_state(runtime_context, "waiting-predictions")
        sampling = self.cfg.sampling
        self.aligned = sampling.strategy != "none" and sampling.order == "event_time"
        if self.raw_input:
            if self.aligned:
                raise ValueError("raw input needs sampling.strategy none")
            self.parser = RawParser(self.cfg)
            self.join = (
                KeyedLabelJoin(runtime_context, self.cfg)
                if self.cfg.labels.source != "none"
                else None
            )

    def process_element(self, item: Any, ctx: KeyedProcessFunction.Context) -> Iterator[Any]:
        key = ctx.get_current_key()
        items: list[Item] = [item]
        if self.raw_input:
            items = []
            # A batch is one key's raw records in arrival order (operators.raw.RAW_BATCH).
            for raw in item if self.batched else (item,):
                for one in self._parse_raw(raw, key):
                    if isinstance(one, str):
                        yield DEAD_LETTERS, one
                    else:
                        items.append(one)
            if not items:  # only rejects: no model for a key that never had a valid record
                return
        state: ModelState | None = self.state.value()
        if state is None:
            state = ModelState.new(self.cfg, key)
            ctx.timer_service().register_event_time_timer(END_OF_INPUT)
        if not self.aligned:
            for one in items:
                if not isinstance(one, LateExample):  # only the aligner needs to know
                    yield from self._run(state, one)
            self.state.update(state)
            return
        aligner: EventTimeAligner | None = self.held.value()
        if aligner is None:  # not `or`: an aligner holding nothing may still wait for windows
            aligner = EventTimeAligner.of(self.cfg.sampling)
        timers = ctx.timer_service()
        if isinstance(item, TrainingBatch):
            aligner.add_batch(item)
        elif isinstance(item, LateExample):
            aligner.resolve(item.start)
        else:
            aligner.add_event(item, timers.current_watermark())
        for ready in aligner.release(timers.current_watermark()):
            yield from self._run(state, ready)
        self._wait(aligner, timers)
        self.state.update(state)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterator[Any]:
        state: ModelState | None = self.state.value()
        if state is None:
            return
        aligner: EventTimeAligner | None = self.held.value() if self.aligned else None
        if aligner is not None:
            # Release everything the watermark has reached, not only up to this timer:
            # releasing to ``timestamp`` alone left the next held item's turn at or
            # below the watermark, and Flink then finished the bundle (committing all
            # held state) and fired one more timer for each distinct release time.
            # Same items, same order: the aligner releases in one fixed order.
            watermark = ctx.timer_service().current_watermark()
            until = END_OF_TIME if timestamp == END_OF_INPUT else max(timestamp, watermark)
            for ready in aligner.release(until):
                yield from self._run(state, ready)
            self._wait(aligner, ctx.timer_service())
        if timestamp == END_OF_INPUT:
            yield METRICS, to_json(final_report(state, self.cfg, now_ms=_now_ms()))
        self.state.update(state)

    def _parse_raw(self, raw: Any, key: str) -> Iterator[Item | str]:
        """Parse, validate and join one raw record: the items it gives the model, or
        dead-letter JSON."""
        record = self.parser.parse(raw)
        if isinstance(record, str):
            yield record
        elif record.key != key:  # model_key_of and the parser disagree: a bug
            yield self._misrouted(raw, record.key, key)
        elif self.join is None:  # without the join the parser refuses label records
            assert isinstance(record, Event)
            yield record
        else:
            yield from self.join.process(record)

    @staticmethod
    def _misrouted(value: Any, key: str, routed: str) -> str:
        source, raw = unpack(value)
        why = Rejection("invalid_event", f"keyed as {routed!r} but its key is {key!r}")
        return to_json(DeadLetter.of(why, raw, source, at=_now_ms()).to_dict())

    def _wait(self, aligner: EventTimeAligner, timers: Any) -> None:
        """Keep a timer at the next held item's turn; store what is still held.

        Items up to the watermark have just been released, so ``due`` is beyond it
        (or held for a window's batch, which releases it when it comes): the timer
        fires at a later watermark, never in a loop of bundles. A timer is
        registered only when the turn changed (one registration per release time, not
        per event); ``aligner.timer`` is checkpointed together with Flink's timers.
        """
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

    def _run(self, state: ModelState, item: Item) -> Iterator[Any]:
        out = handle(state, item, self.waiting, self.cfg, now_ms=_now_ms())
        for prediction in out.predictions:
            yield to_json(prediction.to_dict())
        for letter in out.dead_letters:
            yield DEAD_LETTERS, to_json(letter.to_dict())
        for report in out.reports:
            yield METRICS, to_json(report)
