"""The model operator: one River model per model key, held in keyed state."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from pyflink.common import Types
from pyflink.datastream import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import ValueStateDescriptor

from operators.tags import DEAD_LETTERS, END_OF_INPUT, METRICS
from stratiflow.alignment import END_OF_TIME, EventTimeAligner
from stratiflow.config import Config
from stratiflow.learner import ModelState, build_model, learn_examples, metrics_report, step
from stratiflow.records import DeadLetter, Event, to_json, to_json_bytes
from stratiflow.sampling import TrainingBatch


def _now_ms() -> int:
    return int(time.time() * 1000)


class ModelOperator(KeyedProcessFunction):
    """Predict every event, score the labelled ones, learn, report metrics.

    Without a sampler it learns each labelled event right after predicting it
    (exact test-then-train). With a sampler its input also carries the key's
    training batches; with ``sampling.order: event_time`` events and batches
    are held in an :class:`~stratiflow.alignment.EventTimeAligner` and released
    as the watermark advances, so which model predicts an event does not depend
    on processing speed.

    Emits prediction JSON on the main output, metrics reports and model
    rejections on side outputs. A final report per key is emitted when a
    bounded input ends.
    """

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg

    def open(self, runtime_context: RuntimeContext) -> None:
        self.state = runtime_context.get_state(
            ValueStateDescriptor("model-state", Types.PICKLED_BYTE_ARRAY())
        )
        self.held = runtime_context.get_state(
            ValueStateDescriptor("held-input", Types.PICKLED_BYTE_ARRAY())
        )
        sampling = self.cfg.sampling
        self.report_every = self.cfg.metrics.report_every
        self.learn_on_arrival = sampling.strategy == "none"
        self.aligned = sampling.strategy != "none" and sampling.order == "event_time"

    def process_element(
        self, item: Event | TrainingBatch, ctx: KeyedProcessFunction.Context
    ) -> Iterator[Any]:
        state: ModelState | None = self.state.value()
        if state is None:
            state = ModelState.new(build_model(self.cfg.model))
            ctx.timer_service().register_event_time_timer(END_OF_INPUT)
        if not self.aligned:
            yield from self._run(state, item, ctx.get_current_key())
            self.state.update(state)
            return
        aligner: EventTimeAligner = self.held.value() or EventTimeAligner(
            self.cfg.sampling.max_out_of_orderness
        )
        if isinstance(item, TrainingBatch):
            aligner.add_batch(item)
        else:
            aligner.add_event(item)
        timers = ctx.timer_service()
        for ready in aligner.release(timers.current_watermark()):
            yield from self._run(state, ready, ctx.get_current_key())
        self._wait(aligner, timers)
        self.state.update(state)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterator[Any]:
        state: ModelState | None = self.state.value()
        if state is None:
            return
        key = ctx.get_current_key()
        aligner: EventTimeAligner | None = self.held.value() if self.aligned else None
        if aligner is not None:
            until = END_OF_TIME if timestamp == END_OF_INPUT else timestamp
            for ready in aligner.release(until):
                yield from self._run(state, ready, key)
            self._wait(aligner, ctx.timer_service())
        if timestamp == END_OF_INPUT:
            yield METRICS, to_json(metrics_report(state, key, now_ms=_now_ms(), final=True))
        self.state.update(state)

    def _wait(self, aligner: EventTimeAligner, timers: Any) -> None:
        """Keep a timer at the next held item's turn; store what is still held."""
        due = aligner.next_due()
        if due is None:
            self.held.clear()
            return
        timers.register_event_time_timer(due)  # same-time timers are deduplicated
        self.held.update(aligner)

    def _run(self, state: ModelState, item: Event | TrainingBatch, key: str) -> Iterator[Any]:
        if isinstance(item, TrainingBatch):
            learn_examples(state, item.examples)
            return
        now = _now_ms()
        out = step(
            state,
            item,
            now_ms=now,
            report_every=self.report_every,
            learn=self.learn_on_arrival,
        )
        if out.prediction is not None:
            yield to_json(out.prediction.to_dict())
        if out.rejection is not None:
            raw = to_json_bytes(item.to_dict())
            letter = DeadLetter.of(out.rejection, raw, item.source, at=now, key=item.key)
            yield DEAD_LETTERS, to_json(letter.to_dict())
        if out.report_due:
            yield METRICS, to_json(metrics_report(state, key, now_ms=now))
