"""What the model operator does with each input item, for one model key.

The Flink model operators (:mod:`stratiflow.operators.model`) and
:func:`stratiflow.runner.replay.replay` both call :func:`handle`, so they emit the
same predictions, dead letters and reports for the same items in the same order.
An item is an event, a delayed label's outcome (:mod:`stratiflow.labels.join`) or a
sampler's training batch.

>>> from stratiflow.config import load_config
>>> from stratiflow.records import Event
>>> cfg = load_config()
>>> state = ModelState.new(cfg, "default")
>>> out = handle(state, Event("a", 0, {"x": 1.0}), {}, cfg, now_ms=0)
>>> len(out.predictions), state.labels.waiting
(1, 1)
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from stratiflow.config import Config
from stratiflow.labels import Answer, Expiry, LabelOutcome
from stratiflow.learning.batched import batchable, step_many
from stratiflow.learning.learner import (
    ModelState,
    StoredPrediction,
    answer,
    expire,
    finish,
    learn_examples,
    refuse_label,
    step,
)
from stratiflow.records import DeadLetter, Event, Prediction, Rejection, to_json_bytes
from stratiflow.runner.report import metrics_report
from stratiflow.sampling import TrainingBatch

Item = Event | Answer | Expiry | LabelOutcome | TrainingBatch


@dataclass
class Emitted:
    """What one item produced.

    Attributes
    ----------
    predictions
        Predictions, for the predictions topic.
    dead_letters
        Refused inputs, for the dead-letters topic.
    reports
        Metrics records, for the metrics topic.
    model_events
        Drift warnings, drifts and model resets or swaps, for the model-events topic.
    label_requests
        Label requests (``active``), for the label-requests topic.
    """

    predictions: list[Prediction] = field(default_factory=list)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    reports: list[dict[str, Any]] = field(default_factory=list)
    model_events: list[dict[str, Any]] = field(default_factory=list)
    label_requests: list[dict[str, Any]] = field(default_factory=list)


def handle(
    state: ModelState,
    item: Item,
    waiting: MutableMapping[str, StoredPrediction],
    cfg: Config,
    *,
    now_ms: int,
) -> Emitted:
    """Run one item through the key's model.

    Parameters
    ----------
    state
        The key's model state (changed in place).
    item
        An event, a label-join outcome (answer, expiry, refused label) or a training batch.
    waiting
        The key's predictions waiting for their labels, by event id (Flink: ``MapState``).
    cfg
        The job's configuration.
    now_ms
        The wall clock for ``emitted_at`` and the metrics record.

    Returns
    -------
    Emitted
        The predictions, dead letters and metrics reports the item produced.
    """
    out = Emitted()
    learn = cfg.sampling.strategy == "none"
    every = cfg.metrics.report_every
    due = False
    if isinstance(item, Event):  # the common case first (the item types are disjoint)
        delayed = waiting if cfg.labels.source != "none" else None
        result = step(state, item, now_ms=now_ms, report_every=every, learn=learn, waiting=delayed)
        if result.prediction is not None:
            out.predictions.append(result.prediction)
        if result.rejection is not None:
            out.dead_letters.append(_refused_event(item, result.rejection, now_ms))
        due = result.report_due
    elif isinstance(item, TrainingBatch):
        learn_examples(state, item.examples, ts=item.fire)
        state.counts.late += item.late
    elif isinstance(item, Answer):
        stored = waiting.pop(item.id, None)
        result = answer(state, item, stored, report_every=every, learn=learn)
        if result.rejection is not None:
            label_raw = item.raw
            if label_raw is None:  # a label given as an object, not read from bytes
                label = {"id": item.id, "label": item.label, "ts": item.ts, "key": item.key}
                label_raw = to_json_bytes(label)
            out.dead_letters.append(
                DeadLetter.of(result.rejection, label_raw, item.source, at=now_ms, key=item.key)
            )
        due = result.report_due
    elif isinstance(item, Expiry):
        expire(state, item, waiting.pop(item.id, None))
    else:
        rejection = refuse_label(state, item)
        if rejection is not None:
            record = item.record
            raw = record.raw if record.raw is not None else to_json_bytes(record.to_dict())
            out.dead_letters.append(
                DeadLetter.of(rejection, raw, record.source, at=now_ms, key=item.key)
            )
    if state.pending_events is not None:
        out.model_events = [{**e, "emitted_at": now_ms} for e in state.take_events()]
    if state.pending_requests is not None:
        out.label_requests = [{**r, "requested_at": now_ms} for r in state.take_requests()]
    if due:
        out.reports.append(_report(state, cfg, now_ms=now_ms))
    return out


def handle_events(
    state: ModelState,
    events: Sequence[Event],
    waiting: MutableMapping[str, StoredPrediction],
    cfg: Config,
    *,
    now_ms: int,
) -> Emitted:
    """Run a run of events of one key through its model, in order: what :func:`handle`
    gives for each of them, together.

    With ``update.mode: micro_batch`` (and nothing that must see each event alone, see
    :func:`~stratiflow.learning.batched.batchable`) the events one model predicts share
    one ``predict_proba_many`` call (:func:`~stratiflow.learning.batched.step_many`);
    otherwise each event goes through :func:`handle`.

    Parameters
    ----------
    state
        The key's model state (changed in place).
    events
        Validated events of this key, in arrival order.
    waiting
        The key's predictions waiting for their labels, by event id.
    cfg
        The job's configuration.
    now_ms
        The wall clock for ``emitted_at`` and the metrics records.

    Returns
    -------
    Emitted
        The predictions, dead letters and metrics reports of all the events.

    Examples
    --------
    >>> from stratiflow.config import load_config
    >>> cfg = load_config({"update": {"mode": "micro_batch", "batch_size": 2}})
    >>> state = ModelState.new(cfg, "default")
    >>> events = [Event(str(i), i, {"x": float(i)}, label=i % 2 == 0) for i in range(3)]
    >>> [p.model_version for p in handle_events(state, events, {}, cfg, now_ms=0).predictions]
    [0, 0, 2]
    """
    learn = cfg.sampling.strategy == "none"
    out = Emitted()
    if len(events) < 2 or not batchable(state, learn=learn):
        for event in events:
            one = handle(state, event, waiting, cfg, now_ms=now_ms)
            out.predictions += one.predictions
            out.dead_letters += one.dead_letters
            out.reports += one.reports
            out.model_events += one.model_events
            out.label_requests += one.label_requests
        return out
    results = step_many(
        state,
        events,
        now_ms=now_ms,
        report_every=cfg.metrics.report_every,
        waiting=waiting if cfg.labels.source != "none" else None,
        on_report=lambda: out.reports.append(_report(state, cfg, now_ms=now_ms)),
    )
    for event, result in zip(events, results, strict=True):
        if result.prediction is not None:
            out.predictions.append(result.prediction)
        if result.rejection is not None:
            out.dead_letters.append(_refused_event(event, result.rejection, now_ms))
    return out


def _refused_event(event: Event, rejection: Rejection, now_ms: int) -> DeadLetter:
    raw = to_json_bytes(event.to_dict())
    return DeadLetter.of(rejection, raw, event.source, at=now_ms, key=event.key)


def _report(state: ModelState, cfg: Config, *, now_ms: int, final: bool = False) -> dict[str, Any]:
    return metrics_report(state, state.key, now_ms=now_ms, final=final, probe=cfg.metrics.probe)


def final_report(state: ModelState, cfg: Config, *, now_ms: int) -> dict[str, Any]:
    """End of a bounded input: learn what is buffered, then the final report.

    Parameters
    ----------
    state
        The key's model state (changed in place).
    cfg
        The job's configuration.
    now_ms
        The wall clock for ``emitted_at`` and the metrics record.

    Returns
    -------
    dict[str, Any]
        The key's last metrics record, with ``final`` true.

    Examples
    --------
    >>> from stratiflow.config import load_config
    >>> cfg = load_config()
    >>> report = final_report(ModelState.new(cfg), cfg, now_ms=0)
    >>> report["final"], report["report"]
    (True, 1)
    """
    finish(state)
    return _report(state, cfg, now_ms=now_ms, final=True)
