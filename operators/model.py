"""The model operator: one River model per model key, held in keyed state."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from pyflink.common import Types
from pyflink.datastream import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import ValueStateDescriptor

from operators.tags import DEAD_LETTERS, METRICS
from stratiflow.config import Config
from stratiflow.learner import ModelState, build_model, metrics_report, step
from stratiflow.records import DeadLetter, Event, to_json, to_json_bytes

#: Fires when a bounded input ends (the final watermark is Long.MAX_VALUE).
END_OF_INPUT = 2**63 - 2


def _now_ms() -> int:
    return int(time.time() * 1000)


class ModelOperator(KeyedProcessFunction):
    """Predict every event, score and learn the labelled ones, report metrics.

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
        self.report_every = self.cfg.metrics.report_every

    def process_element(self, event: Event, ctx: KeyedProcessFunction.Context) -> Iterator[Any]:
        state: ModelState | None = self.state.value()
        if state is None:
            state = ModelState.new(build_model(self.cfg.model))
            ctx.timer_service().register_event_time_timer(END_OF_INPUT)
        now = _now_ms()
        out = step(state, event, now_ms=now, report_every=self.report_every)
        report = metrics_report(state, event.key, now_ms=now) if out.report_due else None
        self.state.update(state)
        if out.prediction is not None:
            yield to_json(out.prediction.to_dict())
        if out.rejection is not None:
            raw = to_json_bytes(event.to_dict())
            letter = DeadLetter.of(out.rejection, raw, event.source, at=now, key=event.key)
            yield DEAD_LETTERS, to_json(letter.to_dict())
        if report is not None:
            yield METRICS, to_json(report)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterator[Any]:
        state: ModelState | None = self.state.value()
        if state is None:
            return
        report = metrics_report(state, ctx.get_current_key(), now_ms=_now_ms(), final=True)
        self.state.update(state)
        yield METRICS, to_json(report)
