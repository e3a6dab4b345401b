"""The train/predict job's semantics in one Python loop, without Flink.

:func:`replay` drives the same pieces the Flink operators drive —
:class:`~stratiflow.labels.LabelJoin`, :class:`~stratiflow.sampling.ClassWindows`,
:class:`~stratiflow.sampling.WindowAllocator`, :func:`~stratiflow.runner.keyed.handle` —
over events and label records in arrival order, with an ideal watermark
(``max ts - max_out_of_orderness - 1``, advanced at every record) and the
:class:`~stratiflow.sampling.alignment.EventTimeAligner` rule for when windows are
learned. With ``sampling.order: event_time`` (the default) the Flink job
computes the same predictions; it is the reference the Flink tier is compared with.

>>> from stratiflow.config import load_config
>>> from stratiflow.io.sources import river_events
>>> cfg = load_config({"sampling": {"strategy": "undersample", "window": "1s"}})
>>> result = replay(river_events("phishing", n=300, seed=1, interval_ms=10), cfg)
>>> len(result.predictions), len(result.batches) > 0, result.reports[-1]["final"]
(300, True, True)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from stratiflow.config import Config
from stratiflow.labels import JoinOutput, LabelJoin, labelled_examples
from stratiflow.learning.learner import ModelState, StoredPrediction
from stratiflow.records import DeadLetter, Event, LabelRecord, Prediction, class_key
from stratiflow.runner.keyed import Emitted, Item, final_report, handle
from stratiflow.sampling import ClassWindows, TrainingBatch, WindowAllocator, window_start
from stratiflow.sampling.alignment import END_OF_TIME, EventTimeAligner
from stratiflow.validation.parse import event_from_object, label_from_object


@dataclass
class ReplayResult:
    """Everything the job would have emitted, plus the final per-key states.

    Attributes
    ----------
    predictions
        Every prediction, in the order the job emits them.
    dead_letters
        The model operator's dead letters (parse errors are the caller's).
    reports
        Metrics records, ending with each key's final one.
    batches
        The sampler's training batches.
    stats
        The sampler's sampling-stats records.
    model_events
        Drift warnings, drifts and model resets or swaps (with a ``drift.detector``).
    label_requests
        Label requests (with an ``active.strategy``).
    states
        Each key's final model state.
    """

    predictions: list[Prediction] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    reports: list[dict[str, Any]] = field(default_factory=list)
    batches: list[TrainingBatch] = field(default_factory=list)
    stats: list[dict[str, Any]] = field(default_factory=list)
    model_events: list[dict[str, Any]] = field(default_factory=list)
    label_requests: list[dict[str, Any]] = field(default_factory=list)
    states: dict[str, ModelState] = field(default_factory=dict)
    #: Predictions still waiting for their labels at the end, per key.
    waiting: dict[str, dict[str, StoredPrediction]] = field(default_factory=dict)

    @property
    def rejections(self) -> list[DeadLetter]:
        """Dead letters made by the model operator (parse errors are the caller's)."""
        return self.dead_letters


def replay(
    records: Iterable[Event | LabelRecord | dict[str, Any]], cfg: Config, *, now_ms: int = 0
) -> ReplayResult:
    """Run validated events and label records (objects or dicts) through the job.

    Parameters
    ----------
    records
        Events and label records in arrival order, as the job would read them.
    cfg
        The job's configuration (sampling, labels, update mode, metrics...).
    now_ms
        The wall clock stamped on every output (``emitted_at``); fixed, so a replay
        is reproducible.

    Returns
    -------
    ReplayResult
        What the job would have emitted: predictions, the model operator's dead
        letters, metrics reports, training batches, sampling stats, and each key's
        final state.
    """
    sampling = cfg.sampling
    min_confidence = cfg.curation.label_filter.min_confidence
    sampled = sampling.strategy != "none"
    joined = cfg.labels.source != "none"
    result = ReplayResult()
    class_windows: dict[tuple[str, str], ClassWindows] = {}
    allocators: dict[str, WindowAllocator] = {}
    aligners: dict[str, EventTimeAligner] = {}
    joins: dict[str, LabelJoin] = {}
    watermark: int | None = None

    def state_of(key: str) -> ModelState:
        state = result.states.get(key)
        if state is None:
            state = result.states[key] = ModelState.new(cfg, key)
            result.waiting[key] = {}
        return state

    def allocator_of(key: str) -> WindowAllocator:
        allocator = allocators.get(key)
        if allocator is None:
            allocator = allocators[key] = WindowAllocator(
                key, sampling, cfg.seed, tomek_links=cfg.curation.tomek_links
            )
        return allocator

    def aligner_of(key: str) -> EventTimeAligner:
        aligner = aligners.get(key)
        if aligner is None:
            aligner = aligners[key] = EventTimeAligner.of(sampling, min_confidence)
        return aligner

    def join_of(key: str) -> LabelJoin:
        join = joins.get(key)
        if join is None:
            join = joins[key] = LabelJoin(
                key,
                cfg.labels.ttl,
                cfg.labels.max_pending,
                two_inputs=cfg.labels.source == "topic",
            )
        return join

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

    states, waiting = result.states, result.waiting
    predictions, dead_letters, reports = result.predictions, result.dead_letters, result.reports

    def run(item: Item) -> None:
        key = item.key
        state = states.get(key)
        if state is None:
            state = state_of(key)
        emitted: Emitted = handle(state, item, waiting[key], cfg, now_ms=now_ms)
        predictions.extend(emitted.predictions)
        if emitted.dead_letters:
            dead_letters.extend(emitted.dead_letters)
        if emitted.reports:
            reports.extend(emitted.reports)
        if emitted.model_events:
            result.model_events.extend(emitted.model_events)
        if emitted.label_requests:
            result.label_requests.extend(emitted.label_requests)

    def release(to: int) -> None:
        for aligner in aligners.values():
            for item in aligner.release(to):
                run(item)

    def sample(item: JoinOutput) -> None:
        nonlocal watermark
        # The watermark this item implies (ideal: the generator emits at every record).
        aligner = aligner_of(item.key)
        horizon = aligner.add_event(item, watermark)
        if watermark is None or horizon > watermark:
            watermark = horizon
            advance(watermark)
        release(watermark)
        for labelled in labelled_examples(item, min_confidence):
            assert labelled.label is not None
            cls = class_key(labelled.label)
            windows = class_windows.get((labelled.key, cls))
            if windows is None:
                windows = class_windows[labelled.key, cls] = ClassWindows(
                    labelled.key, cls, sampling, cfg.seed
                )
            if windows.offer(labelled, watermark) is None:  # late: no batch will say so
                aligner.resolve(window_start(labelled.ts, windows.size))

    for record in records:
        if isinstance(record, dict):
            record = _record(record)
        if joined:
            join = join_of(record.key)
            items = join.on_event(record) if isinstance(record, Event) else join.on_label(record)
        else:
            assert isinstance(record, Event), "label records need labels.source other than none"
            if not sampled:
                run(record)
                continue
            items = [record]
        for item in items:
            if sampled:
                sample(item)
            else:
                run(item)

    if sampled:  # end of input: the final watermark closes everything
        advance(END_OF_TIME)
        for (key, _), windows in sorted(class_windows.items()):
            late = windows.take_late()
            if late is not None:
                allocator_of(key).receive(late)
        for key in sorted(allocators):
            flushed = allocators[key].flush_late(now_ms=now_ms)
            if flushed is not None:
                result.batches.append(flushed[0])
                result.stats.append(flushed[1])
                aligner_of(key).add_batch(flushed[0])
        release(END_OF_TIME)
    for key in sorted(result.states):
        result.reports.append(final_report(result.states[key], cfg, now_ms=now_ms))
    return result


def _record(obj: dict[str, Any]) -> Event | LabelRecord:
    parsed = (
        label_from_object(obj)
        if "features" not in obj and "label" in obj
        else event_from_object(obj)
    )
    if not isinstance(parsed, Event | LabelRecord):
        raise ValueError(f"not a valid record: {parsed.reason}: {parsed.detail}")
    return parsed
