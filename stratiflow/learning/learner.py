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
from dataclasses import dataclass, field
from math import isfinite
from pathlib import Path
from time import perf_counter
from typing import Any

from stratiflow.config import Config
from stratiflow.config.model import build_model, is_binary
from stratiflow.evaluation import Cost, Evaluation, LabelCounts
from stratiflow.evaluation.metrics import log_loss_term
from stratiflow.labels import Answer, Expiry, LabelOutcome
from stratiflow.learning.updates import LearnResult, Updater, learn_error
from stratiflow.lifecycle import DriftMonitor, Selection
from stratiflow.records import (
    MODEL_EVENTS_SCHEMA_VERSION,
    Event,
    Label,
    Prediction,
    Rejection,
    class_key,
)
from stratiflow.sampling import Example
from stratiflow.snapshots import key_from_env, load_snapshot
from stratiflow.validation.cleaning import Cleaner
from stratiflow.validation.parse import LabelPolicy


def initial_model(cfg: Config) -> Any:
    """A new key's model: untrained from ``cfg.model``, or the verified warm-start snapshot.

    Parameters
    ----------
    cfg
        The job's configuration: its ``model`` and ``snapshots`` sections.

    Returns
    -------
    Any
        The River model.

    Raises
    ------
    ConfigError
        If ``cfg.model`` cannot be built (no warm start).
    SnapshotError
        If the warm-start snapshot or its signing key is missing or fails to verify.

    Examples
    --------
    >>> from stratiflow.config import load_config
    >>> model = initial_model(load_config({"model": ["tree.HoeffdingTreeClassifier"]}))
    >>> type(model).__name__
    'HoeffdingTreeClassifier'
    """
    if not cfg.snapshots.warm_start:
        return build_model(cfg.model)
    key = key_from_env(cfg.snapshots.key_env)
    return load_snapshot(Path(cfg.snapshots.warm_start), key=key).model


def label_policy(model: Any) -> LabelPolicy:
    """Binary River classifiers (``_multiclass`` false) can only learn booleans.

    Parameters
    ----------
    model
        A River classifier.

    Returns
    -------
    LabelPolicy
        The labels the model can learn (``binary`` for a binary classifier).

    Examples
    --------
    >>> from river import linear_model, tree
    >>> label_policy(linear_model.LogisticRegression())
    LabelPolicy(binary=True)
    >>> label_policy(tree.HoeffdingTreeClassifier())
    LabelPolicy(binary=False)
    """
    return LabelPolicy(binary=is_binary(model))


@dataclass(slots=True)
class Counts:
    """Per-key event counts. They reconcile: seen = predicted + rejected, and
    predicted = labelled + unlabelled.

    Attributes
    ----------
    seen
        Events that reached the model.
    predicted
        Events predicted.
    scored
        Predictions scored against their label (at once, or when a delayed label came).
    learned
        Examples learned (the model's version).
    labelled
        Predicted events that carried their label.
    unlabelled
        Predicted events without a label.
    rejected
        Events refused by the cleaner or the model.
    """

    seen: int = 0
    predicted: int = 0
    scored: int = 0
    learned: int = 0
    labelled: int = 0
    unlabelled: int = 0
    rejected: int = 0
    #: Examples the model raised on while learning after their event was predicted.
    learn_failed: int = 0
    #: Labelled events the sampler found behind its watermark (they were still predicted).
    late: int = 0


@dataclass(frozen=True, slots=True)
class StoredPrediction:
    """The prediction made for an unlabelled event, kept until its label arrives.

    Attributes
    ----------
    y_pred
        The predicted class (``None``: the model had no answer yet).
    proba
        The probability per class.
    model_version
        Examples the model had learned when it predicted.
    ts
        The event's time.
    shadows
        With candidates: each challenger's probabilities for the event, by name (scored
        when the label comes). Absent from predictions stored before candidates existed.
    """

    y_pred: Label | None
    proba: dict[Label, float]
    model_version: int
    ts: int
    shadows: dict[str, dict[Label, float] | None] | None = None


@dataclass
class ModelState:
    """Everything one model key remembers; picklable, kept in Flink keyed state.

    Attributes
    ----------
    model
        The River model.
    evaluation
        The metrics of its predictions.
    updater
        When it learns, and the examples waiting to be learned.
    cleaner
        The feature cleaning and its statistics.
    key
        The model key.
    counts
        Event counts.
    labels
        Delayed-label counts.
    cost
        Time spent predicting and learning.
    reports
        Metrics reports made so far.
    last_ts
        The latest event time predicted (``None``: none yet).
    drift
        The drift detector and its adaptation state (``None``: no ``drift.detector``).
    selection
        The champion's name and the challenger pipelines (``None``: no ``candidates``).
    generation
        How many times the serving model was replaced (reset or swapped) since the start.
    version_base
        Examples learned by earlier generations: ``model_version`` counts the serving
        model's own.
    pending_events
        ``model_events`` records made by the last item, until the runner takes them.

    Examples
    --------
    >>> from stratiflow.config import load_config
    >>> state = ModelState.new(load_config(), key="eu")
    >>> state.learn_sample({"x": 1.0}, True), state.model_version, state.trained_on
    (None, 1, {'true': 1})
    """

    model: Any
    evaluation: Evaluation
    updater: Updater
    cleaner: Cleaner
    key: str = "default"
    counts: Counts = field(default_factory=Counts)
    labels: LabelCounts = field(default_factory=LabelCounts)
    cost: Cost = field(default_factory=Cost)
    reports: int = 0
    last_ts: int | None = None
    #: Examples learned per class (the cumulative trained-on mix).
    trained_on: dict[str, int] = field(default_factory=dict)
    # Plain defaults (class attributes too): checkpoints taken before drift existed
    # restore without them.
    drift: DriftMonitor | None = None
    selection: Selection | None = None
    generation: int = 0
    version_base: int = 0
    pending_events: list[dict[str, Any]] | None = None

    @classmethod
    def new(cls, cfg: Config, key: str = "default") -> ModelState:
        model = initial_model(cfg)
        positive = cfg.metrics.positive_class
        if positive is None and label_policy(model).binary:
            positive = True
        drift = None
        if cfg.drift.detector is not None:
            drift = DriftMonitor.new(cfg.drift, cfg.model, window=cfg.metrics.window or 1000)
        selection = None
        if cfg.candidates:
            selection = Selection.new(
                cfg.selection,
                cfg.candidates,
                positive=positive,
                auc_bins=cfg.metrics.auc_bins,
                main=cfg.model,
            )
        return cls(
            model=model,
            evaluation=Evaluation.new(cfg.metrics, positive),
            updater=Updater(cfg.update),
            cleaner=Cleaner(cfg.validation),
            key=key,
            drift=drift,
            selection=selection,
        )

    def learn_sample(self, x: dict[str, Any], y: Label) -> str | None:
        """Learn one example now, and count it: the per-sample path of every runner.

        Returns ``None``, or the model's error (the caller counts the failure: a
        rejected event in :func:`step`, ``learn_failed`` elsewhere).
        """
        t0 = perf_counter()
        try:
            self.model.learn_one(x, y)
        except Exception as exc:  # River raises assorted errors on odd inputs
            return learn_error(exc)
        self.cost.learn.add(perf_counter() - t0)
        self.counts.learned += 1
        cls = class_key(y)
        trained_on = self.trained_on
        trained_on[cls] = trained_on.get(cls, 0) + 1
        if self.drift is not None and self.drift.background is not None:
            self.drift.learn_background(x, y)
        if self.selection is not None:
            self.selection.learn(x, y)
        return None

    def learn(self, x: dict[str, Any], y: Label, *, ts: int) -> int:
        """Hand one example (at event time ``ts``) to the update policy; how many examples
        were learned now. A failure counts as ``learn_failed``."""
        if not self.updater.policy.buffers:
            if self.learn_sample(x, y) is None:
                return 1
            self.counts.learn_failed += 1
            return 0
        if self.drift is not None and self.drift.background is not None:
            # A background model learns each example as it is handed over, whatever the
            # update mode: it is scored against the serving model, not published.
            self.drift.learn_background(x, y)
        if self.selection is not None:
            # Challengers learn each example as it is handed over, like a background model.
            self.selection.learn(x, y)
        learned = 0
        for result in self.updater.add(self.model, x, y, ts=ts):
            self.record(result)
            learned += result.learned
        return learned

    def record(self, result: LearnResult) -> None:
        """Count what one learning call did."""
        self.counts.learned += result.learned
        self.counts.learn_failed += result.failed
        if result.learned:
            per_example = result.seconds / result.learned
            for label in result.labels:
                self.cost.learn.add(per_example)
                cls = class_key(label)
                self.trained_on[cls] = self.trained_on.get(cls, 0) + 1

    @property
    def model_version(self) -> int:
        """Examples the serving model learned: a prediction's version says what it had seen."""
        return self.counts.learned - self.version_base

    def replace_model(self, model: Any, learned: int) -> None:
        """Serve ``model``, which has learned ``learned`` examples: the next generation."""
        self.model = model
        self.version_base = self.counts.learned - learned
        self.generation += 1

    def emit(self, record: dict[str, Any]) -> None:
        """Keep a ``model_events`` record for the runner to publish."""
        if self.pending_events is None:
            self.pending_events = []
        self.pending_events.append(record)

    def take_events(self) -> list[dict[str, Any]]:
        """The ``model_events`` records made since the last call."""
        events, self.pending_events = self.pending_events, None
        return events or []


@dataclass(frozen=True, slots=True)
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
    predict_seconds = perf_counter() - t0
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
    y_pred: Label | None = max(proba, key=proba.get) if proba else None
    version = counts.learned - state.version_base  # state.model_version
    generation = state.generation  # the model that made the prediction, even if it is replaced
    drift = state.drift
    shadow = None
    if drift is not None and drift.background is not None and event.label is not None:
        shadow = drift.shadow_predict(x)  # before anything learns from this event
    selection = state.selection
    shadows = None
    if selection is not None and event.label is not None:
        shadows = selection.shadow_predict(x)
    serving = selection.champion if selection is not None else "main"

    scored = False
    label = event.label
    if label is not None:
        if learn:
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
        counts.labelled += 1
        if y_pred is not None:
            state.evaluation.score(label, y_pred, proba)
            counts.scored += 1
            scored = True
            if selection is not None:
                selection.score(label, y_pred, proba, shadows)
            if drift is not None:
                _watch_drift(state, drift, event.id, event.ts, label, y_pred, proba, shadow)
            if selection is not None:
                _select(state, selection, event.id, event.ts)
    else:
        counts.unlabelled += 1
        if waiting is not None:
            named = None
            if selection is not None:
                challengers = selection.challengers
                named = dict(
                    zip((c.name for c in challengers), selection.shadow_predict(x), strict=True)
                )
            waiting[event.id] = StoredPrediction(y_pred, dict(proba), version, event.ts, named)
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
            _select(state, state.selection, item.id, item.event.ts)
        if state.drift is not None:
            _watch_drift(
                state, state.drift, item.id, item.event.ts, item.label, stored.y_pred,
                stored.proba, None,
            )  # fmt: skip
    if learn:
        x, refused = state.cleaner.clean(item.event.features, learn=False)
        if refused is None:
            state.learn(x, item.label, ts=item.ts)
    else:
        _tick(state, item.ts)
    return StepOutput(report_due=_report_due(state, scored, report_every))


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
    for example in examples:
        x, refused = state.cleaner.clean(example.x, learn=False)
        if refused is not None:
            continue  # counted by the cleaner (examples_rejected)
        learned += state.learn(x, example.y, ts=ts)
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


def _watch_drift(
    state: ModelState,
    drift: DriftMonitor,
    event_id: str,
    ts: int,
    y_true: Label,
    y_pred: Label,
    proba: dict[Label, float],
    shadow: Label | None,
) -> None:
    """Feed one scored prediction to the key's detector and carry out what it decides.

    ``shadow`` is the background model's answer for the same event (``None``: none).
    """
    correct = y_pred == y_true
    if drift.settings.signal == "error":
        signal = 0.0 if correct else 1.0
    else:
        signal = log_loss_term(y_true, proba)
    if drift.background is not None and drift.background_learned:
        drift.shadow_score(shadow, y_true, correct)
    seen = drift.observe(error=signal, correct=correct)
    where = {"key": state.key, "id": event_id, "ts": ts, "scored": state.counts.scored}
    metric = (seen.before, seen.after)
    if seen.warning:
        _event(state, drift, "drift_warning", where, metric)
        if drift.settings.adaptation == "background" and drift.background is None:
            drift.start_background(_fresh(state, drift))
            _event(state, drift, "background_start", where, metric)
    if seen.drift:
        _event(state, drift, "drift", where, metric)
        adaptation = drift.settings.adaptation
        if adaptation == "reset":
            _replace(state, drift, "model_reset", where, _fresh(state, drift), 0, None)
            drift.resets += 1
        elif adaptation == "background":
            if drift.background is not None and drift.background_learned:
                _swap(state, drift, where)
            elif drift.background is None:
                drift.start_background(_fresh(state, drift))
                _event(state, drift, "background_start", where, metric)
    elif drift.background_is_better():
        _swap(state, drift, where)


def _fresh(state: ModelState, drift: DriftMonitor) -> Any:
    """A new, untrained model of the serving pipeline (a candidate, once promoted)."""
    if state.selection is not None:
        return state.selection.fresh_champion()
    return drift.fresh_model()


def _select(state: ModelState, selection: Selection, event_id: str, ts: int) -> None:
    """Promote the best challenger when it beats the champion (checked now and then)."""
    found = selection.candidate_to_promote(state.counts.scored)
    if found is None:
        return
    index, value, champion_value = found
    before = selection.champion
    versions = (state.model_version, selection.challengers[index].learned)
    generations = (state.generation, state.generation + 1)
    new = selection.promote(index, state.model, state.model_version)
    state.replace_model(new.model, new.learned)
    state.emit(
        {
            "schema_version": MODEL_EVENTS_SCHEMA_VERSION,
            "type": "promotion",
            "key": state.key,
            "id": event_id,
            "ts": ts,
            "scored": state.counts.scored,
            "detector": state.drift.detector_name if state.drift is not None else None,
            "adaptation": state.drift.settings.adaptation if state.drift is not None else None,
            "metric": {
                "name": selection.settings.metric,
                "window": selection.settings.window,
                "before": champion_value,
                "after": value,
            },
            "model_version": {"before": versions[0], "after": versions[1]},
            "generation": {"before": generations[0], "after": generations[1]},
            "model": {"before": before, "after": new.name},
        }
    )


def _swap(state: ModelState, drift: DriftMonitor, where: dict[str, Any]) -> None:
    before = drift.background_accuracy()
    model, learned = drift.take_background()
    _replace(state, drift, "model_swap", where, model, learned, before)
    drift.swaps += 1


def _replace(
    state: ModelState,
    drift: DriftMonitor,
    kind: str,
    where: dict[str, Any],
    model: Any,
    learned: int,
    new_accuracy: float | None,
) -> None:
    serving = drift.rolling.value
    versions = (state.model_version, learned)
    generations = (state.generation, state.generation + 1)
    state.replace_model(model, learned)
    _event(state, drift, kind, where, (serving, new_accuracy), versions, generations)


def _event(
    state: ModelState,
    drift: DriftMonitor,
    kind: str,
    where: dict[str, Any],
    metric: tuple[float | None, float | None],
    versions: tuple[int, int] | None = None,
    generations: tuple[int, int] | None = None,
) -> None:
    """Keep one ``model_events`` record; versions and generations default to no change."""
    version, generation = state.model_version, state.generation
    v_before, v_after = versions or (version, version)
    g_before, g_after = generations or (generation, generation)
    state.emit(
        {
            "schema_version": MODEL_EVENTS_SCHEMA_VERSION,
            "type": kind,
            **where,
            "detector": drift.detector_name,
            "adaptation": drift.settings.adaptation,
            "metric": {
                "name": "accuracy",
                "window": drift.rolling.window,
                "before": metric[0],
                "after": metric[1],
            },
            "model_version": {"before": v_before, "after": v_after},
            "generation": {"before": g_before, "after": g_after},
        }
    )


def _report_due(state: ModelState, scored: bool, report_every: int) -> bool:
    return scored and report_every > 0 and state.counts.scored % report_every == 0


def _model_error(phase: str, exc: Exception) -> Rejection:
    message = str(exc) or type(exc).__name__
    return Rejection(
        "model_rejected_input",
        f"the model raised {type(exc).__name__} during {phase}: {message[:300]}",
    )
