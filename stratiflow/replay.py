"""The train/predict job's semantics in one Python loop, without Flink.

:func:`replay` drives the same pieces the Flink operators drive — :func:`~stratiflow.learner.step`,
:class:`~stratiflow.sampling.ClassWindows`, :class:`~stratiflow.sampling.WindowAllocator`,
:func:`~stratiflow.learner.learn_examples` — over events in arrival order, with an
ideal watermark (``max ts - max_out_of_orderness - 1``, advanced at every event)
and the :class:`~stratiflow.alignment.EventTimeAligner` rule for when windows are
learned. With ``sampling.order: event_time`` (the default) the Flink job computes
the same predictions; it is the reference the Flink tier is compared with.

>>> from stratiflow.config import load_config
>>> from stratiflow.sources import river_events
>>> cfg = load_config({"sampling": {"strategy": "undersample", "window": "1s"}})
>>> result = replay(river_events("phishing", n=300, seed=1, interval_ms=10), cfg)
>>> len(result.predictions), len(result.batches) > 0, result.reports[-1]["final"]
(300, True, True)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from stratiflow.alignment import END_OF_TIME, EventTimeAligner
from stratiflow.config import Config
from stratiflow.learner import ModelState, build_model, learn_examples, metrics_report, step
from stratiflow.records import Event, Prediction, Rejection, class_key
from stratiflow.sampling import ClassWindows, TrainingBatch, WindowAllocator


@dataclass
class ReplayResult:
    """Everything the job would have emitted, plus the final per-key states."""

    predictions: list[Prediction] = field(default_factory=list)
    rejections: list[tuple[Event, Rejection]] = field(default_factory=list)
    reports: list[dict[str, Any]] = field(default_factory=list)
    batches: list[TrainingBatch] = field(default_factory=list)
    stats: list[dict[str, Any]] = field(default_factory=list)
    states: dict[str, ModelState] = field(default_factory=dict)


def replay(
    events: Iterable[Event | dict[str, Any]], cfg: Config, *, now_ms: int = 0
) -> ReplayResult:
    """Run ``events`` (validated :class:`Event` objects or event dicts) through the job."""
    sampling = cfg.sampling
    sampled = sampling.strategy != "none"
    result = ReplayResult()
    class_windows: dict[tuple[str, str], ClassWindows] = {}
    allocators: dict[str, WindowAllocator] = {}
    aligners: dict[str, EventTimeAligner] = {}
    watermark: int | None = None

    def state_of(key: str) -> ModelState:
        state = result.states.get(key)
        if state is None:
            state = result.states[key] = ModelState.new(build_model(cfg.model))
        return state

    def allocator_of(key: str) -> WindowAllocator:
        allocator = allocators.get(key)
        if allocator is None:
            allocator = allocators[key] = WindowAllocator(key, sampling, cfg.seed)
        return allocator

    def advance(to: int) -> None:
        """Fire every window whose fire time the watermark ``to`` has reached, in time order."""
        due = sorted(
            (cw.fire_time(start), key, start)
            for key, cw in class_windows.items()
            for start in cw.open
            if cw.fire_time(start) <= to
        )
        allocator_due: set[tuple[int, str, int]] = set()
        for _, (key, cls), start in due:
            fire = allocator_of(key).receive(class_windows[key, cls].close(start))
            if fire is not None:
                allocator_due.add((fire, key, start))
        for _, key, start in sorted(allocator_due):
            batch, stats = allocators[key].close(start, now_ms=now_ms)
            result.batches.append(batch)
            result.stats.append(stats)
            aligner_of(key).add_batch(batch)

    def aligner_of(key: str) -> EventTimeAligner:
        aligner = aligners.get(key)
        if aligner is None:
            aligner = aligners[key] = EventTimeAligner(sampling.max_out_of_orderness)
        return aligner

    def run(item: Event | TrainingBatch) -> None:
        if isinstance(item, TrainingBatch):
            learn_examples(state_of(item.key), item.examples)
            return
        state = state_of(item.key)
        out = step(
            state, item, now_ms=now_ms, report_every=cfg.metrics.report_every, learn=not sampled
        )
        if out.prediction is not None:
            result.predictions.append(out.prediction)
        if out.rejection is not None:
            result.rejections.append((item, out.rejection))
        if out.report_due:
            result.reports.append(metrics_report(state, item.key, now_ms=now_ms))

    def release(to: int) -> None:
        for aligner in aligners.values():
            for item in aligner.release(to):
                run(item)

    for item in events:
        event = item if isinstance(item, Event) else _event(item)
        if not sampled:
            run(event)
            continue
        # The watermark this event implies (ideal: the generator emits at every event).
        horizon = aligner_of(event.key).add_event(event)
        if watermark is None or horizon > watermark:
            watermark = horizon
            advance(watermark)
        release(watermark)
        if event.label is not None:
            cls = class_key(event.label)
            windows = class_windows.get((event.key, cls))
            if windows is None:
                windows = class_windows[event.key, cls] = ClassWindows(
                    event.key, cls, sampling, cfg.seed
                )
            windows.offer(event, watermark)

    if sampled:  # end of input: the final watermark closes everything
        advance(END_OF_TIME)
        release(END_OF_TIME)
        for (key, _), windows in sorted(class_windows.items()):
            late = windows.take_late()
            if late is not None:
                allocator_of(key).receive(late)
        for key in sorted(allocators):
            stats = allocators[key].flush_late(now_ms=now_ms)
            if stats is not None:
                result.stats.append(stats)
    for key in sorted(result.states):
        result.reports.append(metrics_report(result.states[key], key, now_ms=now_ms, final=True))
    return result


def _event(obj: dict[str, Any]) -> Event:
    return Event(
        id=obj["id"],
        ts=obj["ts"],
        features=obj["features"],
        label=obj.get("label"),
        key=obj.get("key", "default"),
    )
