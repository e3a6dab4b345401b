"""The model: built from config, and one :func:`step` shared by every runner.

``step`` is predict → score → learn for one event. The Flink model operator,
the backtest and the tests all call it, so what one of them computes the
others compute too.

>>> from stratiflow.config import load_config
>>> from stratiflow.records import Event
>>> state = ModelState.new(load_config({"model": ["linear_model.LogisticRegression"]}))
>>> out = step(state, Event("a", 0, {"x": 1.0}, label=True), now_ms=0)
>>> out.prediction.proba, out.prediction.model_version, state.counts.learned
({False: 0.5, True: 0.5}, 0, 1)
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass
from math import isfinite
from time import perf_counter
from typing import Any

from stratiflow.labels import Answer, Expiry, LabelOutcome
from stratiflow.learning.adaptation import select_champion, watch_drift
from stratiflow.learning.curating import (
    ask_label,
    counts_of,
    label_kept,
    learn_hard,
    predict_quietly,
)
from stratiflow.learning.state import (
    Counts,
    ModelState,
    StoredPrediction,
    initial_model,
    label_policy,
)
from stratiflow.records import Event, Label, Prediction, Rejection
from stratiflow.sampling import Example

__all__ = [
    "Counts",
    "ModelState",
    "StepOutput",
    "StoredPrediction",
    "answer",
    "expire",
    "finish",
    "initial_model",
    "label_policy",
    "learn_examples",
    "refuse_label",
    "settle",
    "step",
]


@dataclass(slots=True)
class StepOutput:
    """What one input produced: a prediction or a rejection, and maybe a metrics report.

    Attributes
    ----------
    prediction
        The event's prediction (``None`` for a rejected event, or a delayed label).
    rejection
        Why the event, or the delayed label, was refused (``None``: it was not).
    report_due
        A metrics report is due now.
    """

    prediction: Prediction | None = None
    rejection: Rejection | None = None
    report_due: bool = False


def step(
    state: ModelState,
    event: Event,
    *,
    now_ms: int,
    report_every: int = 0,
    learn: bool = True,
    waiting: MutableMapping[str, StoredPrediction] | None = None,
) -> StepOutput:
    """Predict, then (if labelled) score and learn — River's test-then-train order.

    An event that is predicted but not scored (the model has no answer yet,
    e.g. an empty tree) is still learned from, as in
    ``river.evaluate.progressive_val_score``. If the model raises, the event is
    rejected and nothing is emitted for it.

    Parameters
    ----------
    state
        The key's state; updated in place.
    event
        A validated event.
    now_ms
        Wall-clock time for ``emitted_at`` (passed in so tests are deterministic).
    report_every
        Ask for a metrics report after every this many scored events (0: never).
    learn
        Learn from a labelled event (``sampling.strategy: none``), when
        ``update.mode`` says so. With a sampler the model learns from
        :func:`learn_examples` instead.
    waiting
        Where an unlabelled event's prediction is kept for its delayed label
        (``None``: delayed labels are off).

    Returns
    -------
    StepOutput
        The prediction, or the rejection; ``report_due`` after every
        ``report_every``-th scored event.
    """
    counts = state.counts
    counts.seen += 1
    x, rejection = state.cleaner.clean(event.features)
    if rejection is not None:
        counts.rejected += 1
        return StepOutput(rejection=rejection)
    updater = state.updater
    per_sample = not updater.policy.buffers
    if not per_sample:
        _tick(state, event.ts)  # a timed update due by now comes first: predict with the latest
    model = state.model
    t0 = perf_counter()
    try:
        proba = model.predict_proba_one(x)
    except Exception as exc:  # River raises TypeError/ValueError/KeyError on odd inputs
        counts.rejected += 1
        return StepOutput(rejection=_model_error("predict", exc))
    return settle(
        state, event, x, proba, perf_counter() - t0,
        now_ms=now_ms, report_every=report_every, learn=learn, waiting=waiting,
    )  # fmt: skip


def settle(
    state: ModelState,
    event: Event,
    x: dict[str, Any],
    proba: dict[Label, float],
    predict_seconds: float,
    *,
    now_ms: int,
    report_every: int = 0,
    learn: bool = True,
    waiting: MutableMapping[str, StoredPrediction] | None = None,
) -> StepOutput:
    """The rest of :func:`step` once the model has answered: check the answer, then
    score, learn, count and make the prediction (or the rejection).

    :func:`step` predicts one event; :func:`stratiflow.learning.batched.step_many`
    predicts a run of events in one call and settles each in turn, so both share this.

    Parameters
    ----------
    state
        The key's state; updated in place (``counts.seen`` already counts the event).
    event
        The event.
    x
        Its cleaned features.
    proba
        The serving model's probabilities for ``x``.
    predict_seconds
        What predicting it cost (its share of a batched call).
    now_ms, report_every, learn, waiting
        As for :func:`step`.

    Returns
    -------
    StepOutput
        As for :func:`step`.
    """
    counts = state.counts
    per_sample = not state.updater.policy.buffers
    for p in proba.values():
        if not isfinite(p):
            # Overflowed state (e.g. after a 1e308 feature) yields NaN; JSON cannot carry it.
            counts.rejected += 1
            return StepOutput(
                rejection=Rejection(
                    "model_output_not_finite",
                    f"the model returned non-finite probabilities {proba!r}; "
                    "an extreme feature value has probably overflowed its state",
                )
            )
    y_pred: Label | None = max(proba, key=proba.__getitem__) if proba else None
    version = counts.learned - state.version_base  # state.model_version
    generation = state.generation  # the model that made the prediction, even if it is replaced
    drift = state.drift
    shadow = None
    shadowed = drift is not None and drift.background is not None
    if drift is not None and shadowed and (event.label is not None or waiting is not None):
        shadow = drift.shadow_predict(x)  # before anything learns from this event
    selection = state.selection
    shadows = None
    if selection is not None and event.label is not None:
        shadows = selection.shadow_predict(x)
    serving = selection.champion if selection is not None else "main"

    scored = False
    label = event.label
    requester = state.active
    requested = False
    if requester is not None and (label is not None) == requester.simulate:
        # In production unlabelled events may get a request; simulated, labelled ones.
        requested = ask_label(state, requester, event, proba, version, generation)
    if label is not None:
        keep = True
        if requester is not None and requester.simulate and not requested:
            keep = False  # simulated active learning: a label nobody asked for is not learned
            counts_of(state).withheld += 1
        elif state.label_filter is not None:
            keep = label_kept(state, label, proba)
        if learn and keep:
            if per_sample:
                error = state.learn_sample(x, label)
                if error is not None:
                    # Learning the event itself failed: reject it, as its own error.
                    counts.rejected += 1
                    return StepOutput(
                        rejection=Rejection(
                            "model_rejected_input", f"the model raised {error} during learn"
                        )
                    )
            else:
                state.learn(x, label, ts=event.ts)
            if state.hard is not None:
                learn_hard(state, event.id, x, label, proba, event.ts)
        counts.labelled += 1
        if y_pred is not None:
            state.evaluation.score(label, y_pred, proba)
            counts.scored += 1
            scored = True
            if selection is not None:
                selection.score(label, y_pred, proba, shadows)
            if drift is not None:
                watch_drift(
                    state, drift, event.id, event.ts, label, y_pred, proba, shadow,
                    shadowed=shadowed,
                )  # fmt: skip
            if selection is not None:
                select_champion(state, selection, event.id, event.ts)
    else:
        counts.unlabelled += 1
        if waiting is not None:
            named = None
            if selection is not None:
                challengers = selection.challengers
                named = dict(
                    zip((c.name for c in challengers), selection.shadow_predict(x), strict=True)
                )
            background = None
            if drift is not None and shadowed:
                background = (drift.background_serial, shadow)
            waiting[event.id] = StoredPrediction(
                y_pred, dict(proba), version, event.ts, named, background, requested
            )
            state.labels.waiting += 1
    state.cost.predict.add(predict_seconds)
    counts.predicted += 1
    ts = event.ts
    last_ts = state.last_ts
    if last_ts is None or ts > last_ts:
        state.last_ts = ts
    prediction = Prediction(
        event.id, ts, event.key, y_pred, dict(proba), version, now_ms, label, generation, serving
    )
    if scored and report_every > 0 and counts.scored % report_every == 0:
        return StepOutput(prediction, None, True)
    return StepOutput(prediction)


def answer(
    state: ModelState,
    item: Answer,
    stored: StoredPrediction | None,
    *,
    report_every: int = 0,
    learn: bool = True,
) -> StepOutput:
    """A delayed label for an event predicted earlier: score that stored prediction
    (not a fresh one), then learn from the event's features with the label.

    Parameters
    ----------
    state
        The key's state; updated in place.
    item
        The label, joined to its event.
    stored
        What :func:`step` kept for the event (taken out of the store by the
        caller); ``None`` when the model had rejected the event.
    report_every
        Ask for a metrics report after every this many scored events (0: never).
    learn
        Learn from the example (``sampling.strategy: none``), when ``update.mode``
        says so. With a sampler the example reaches the model in a training batch.

    Returns
    -------
    StepOutput
        Never a prediction: ``report_due``, or a ``label_event_rejected`` rejection
        when ``stored`` is ``None``.
    """
    counts = state.labels
    if not item.was_held:
        counts.received += 1
    else:
        counts.held -= 1
    if stored is None:
        counts.event_rejected += 1
        return StepOutput(
            rejection=Rejection(
                "label_event_rejected",
                f"event {item.id!r} was rejected by the model, so there is no prediction to score",
            )
        )
    counts.joined += 1
    counts.waiting -= 1
    counts.delay.add(max(0, item.delay))
    scored = False
    if stored.y_pred is not None:
        state.evaluation.score(item.label, stored.y_pred, stored.proba)
        state.counts.scored += 1
        scored = True
        if state.selection is not None:
            # Slots: a prediction stored before candidates existed has no ``shadows``.
            named = getattr(stored, "shadows", None)
            state.selection.score_by_name(item.label, stored.y_pred, stored.proba, named)
            select_champion(state, state.selection, item.id, item.event.ts)
        drift = state.drift
        if drift is not None:
            # Slots: a prediction stored before this field existed has no ``background``.
            kept = getattr(stored, "background", None)
            shadowed = kept is not None and kept[0] == drift.background_serial
            watch_drift(
                state, drift, item.id, item.event.ts, item.label, stored.y_pred,
                stored.proba, kept[1] if kept is not None else None, shadowed=shadowed,
            )  # fmt: skip
    keep = True
    if state.active is not None or state.curation is not None or item.annotator is not None:
        keep = _curate_answer(state, item, stored, learn)
    if learn and keep:
        x, refused = state.cleaner.clean(item.event.features, learn=False)
        if refused is None:
            state.learn(x, item.label, ts=item.ts)
            if state.hard is not None:
                learn_hard(state, item.id, x, item.label, stored.proba, item.ts)
    else:
        _tick(state, item.ts)
    return StepOutput(report_due=_report_due(state, scored, report_every))


def _curate_answer(state: ModelState, item: Answer, stored: StoredPrediction, learn: bool) -> bool:
    """Count the answer (requested or not) and apply the label filter; whether to learn.

    With a sampler (``learn`` false) the contradiction rule is the sampled examples'
    (:func:`learn_examples`); the confidence rule is applied here and before the sampler.
    """
    if state.active is not None:
        curation = counts_of(state)
        # Slots: a prediction stored before active learning existed has no ``requested``.
        if getattr(stored, "requested", False):
            curation.answered += 1
        else:
            curation.unrequested += 1
    return label_kept(
        state,
        item.label,
        stored.proba if learn else {},
        confidence=item.confidence,
        annotator=item.annotator,
        y_pred=stored.y_pred,
    )


def expire(state: ModelState, item: Expiry, stored: StoredPrediction | None) -> None:
    """An unlabelled event's label did not come within ``labels.ttl``.

    Event time moves on to the expiry's ``ts``, so a timed update due by then is
    learned.

    Parameters
    ----------
    state
        The key's state; updated in place.
    item
        The expiry, from the label join.
    stored
        The event's stored prediction, taken out of the store by the caller
        (``None``: there was none, e.g. the model had rejected the event).
    """
    if stored is not None:
        state.labels.waiting -= 1
        state.labels.never_came += 1
    _tick(state, item.ts)


def refuse_label(state: ModelState, item: LabelOutcome) -> Rejection | None:
    """Count a label that was not joined; the rejection for its dead letter (``held``: none).

    Parameters
    ----------
    state
        The key's state; its label counts are updated.
    item
        The label's outcome, from the label join.

    Returns
    -------
    Rejection | None
        The rejection (reason ``label_duplicate``, ``label_expired`` or
        ``label_unknown_id``), or ``None`` for a ``held`` label.

    Examples
    --------
    >>> from stratiflow.config import load_config
    >>> from stratiflow.labels import LabelOutcome
    >>> from stratiflow.records import LabelRecord
    >>> state = ModelState.new(load_config())
    >>> refused = LabelOutcome("default", 50, "duplicate", LabelRecord("a", True, 50), "again")
    >>> refuse_label(state, refused), state.labels.received, state.labels.duplicate
    (Rejection(reason='label_duplicate', detail='again'), 1, 1)
    """
    counts = state.labels
    if not item.was_held:
        counts.received += 1
    if item.kind == "held":
        counts.held += 1
        return None
    if item.was_held:
        counts.held -= 1
    setattr(counts, item.kind, getattr(counts, item.kind) + 1)
    return Rejection(item.reason, item.detail)


def learn_examples(state: ModelState, examples: Iterable[Example], *, ts: int) -> int:
    """Learn sampled training examples in order (as ``update.mode`` says); returns
    how many were learned now.

    Their events were already predicted and scored when they arrived, so an
    example the model raises on is counted (``learn_failed``), not dead-lettered.

    Parameters
    ----------
    state
        The key's state; updated in place.
    examples
        A training batch's examples, in order.
    ts
        The event time they are learned at (the batch's fire time), for timed updates.

    Returns
    -------
    int
        Examples learned now (not those buffered for later, nor those that failed or
        that the cleaner refused).

    Examples
    --------
    >>> from stratiflow.config import load_config
    >>> from stratiflow.sampling import Example
    >>> state = ModelState.new(load_config())
    >>> learn_examples(state, [Example("a", {"x": 1.0}, True), Example("b", {"x": 0.0}, False)],
    ...                ts=999)
    2
    """
    learned = 0
    rules = state.label_filter
    contradiction = rules is not None and rules.contradiction is not None
    for example in examples:
        x, refused = state.cleaner.clean(example.x, learn=False)
        if refused is not None:
            continue  # counted by the cleaner (examples_rejected)
        if not contradiction and state.hard is None:
            learned += state.learn(x, example.y, ts=ts)
            continue
        proba = predict_quietly(state.model, x)
        if contradiction and not label_kept(state, example.y, proba):
            continue
        learned += state.learn(x, example.y, ts=ts)
        learned += learn_hard(state, example.id, x, example.y, proba, ts)
    return learned


def finish(state: ModelState) -> None:
    """End of a bounded input: learn whatever the update policy still buffers.

    Parameters
    ----------
    state
        The key's state; updated in place.

    Examples
    --------
    >>> from stratiflow.config import load_config
    >>> from stratiflow.sampling import Example
    >>> state = ModelState.new(load_config({"update": {"mode": "micro_batch", "batch_size": 8}}))
    >>> learn_examples(state, [Example("a", {"x": 1.0}, True)], ts=0), len(state.updater)
    (0, 1)
    >>> finish(state)
    >>> state.counts.learned, len(state.updater)
    (1, 0)
    """
    for result in state.updater.flush(state.model):
        state.record(result)


def _tick(state: ModelState, ts: int) -> None:
    """Event time moved on: a periodic or timed micro-batch update may be due."""
    if state.updater.policy.buffers:
        for result in state.updater.tick(state.model, ts):
            state.record(result)


def _report_due(state: ModelState, scored: bool, report_every: int) -> bool:
    return scored and report_every > 0 and state.counts.scored % report_every == 0


def _model_error(phase: str, exc: Exception) -> Rejection:
    message = str(exc) or type(exc).__name__
    return Rejection(
        "model_rejected_input",
        f"the model raised {type(exc).__name__} during {phase}: {message[:300]}",
    )
