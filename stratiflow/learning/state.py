"""The state one model key keeps: its model, counts, evaluation, update buffer, cleaner,
and (with drift detection or candidates) its lifecycle; all picklable, kept in Flink keyed
state.

>>> from stratiflow.config import load_config
>>> state = ModelState.new(load_config(), key="eu")
>>> state.model_version, state.generation, state.drift, state.selection
(0, 0, None, None)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Any

from stratiflow.config import Config
from stratiflow.config.curation import LabelFilterSettings
from stratiflow.config.model import build_model, is_binary
from stratiflow.curation import CurationCounts, HardExamples, LabelRequester, requester_from
from stratiflow.evaluation import Cost, Evaluation, LabelCounts
from stratiflow.learning.updates import LearnResult, Updater, learn_error
from stratiflow.lifecycle import DriftMonitor, Selection
from stratiflow.records import Label, class_key
from stratiflow.sampling import derive_seed
from stratiflow.snapshots import key_from_env, load_snapshot
from stratiflow.validation.cleaning import Cleaner
from stratiflow.validation.parse import LabelPolicy

__all__ = ["Counts", "ModelState", "StoredPrediction", "initial_model", "label_policy"]


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
    background
        With a background model learning: its number (:attr:`DriftMonitor.background_serial
        <stratiflow.lifecycle.DriftMonitor.background_serial>`) and its answer for the event,
        scored when the label comes if that model is still the background one. Absent from
        predictions stored before background models were shadow-scored on delayed labels.
    requested
        Its label was requested (``active``): the answer is counted as answered, any
        other label for it as unrequested.
    """

    y_pred: Label | None
    proba: dict[Label, float]
    model_version: int
    ts: int
    shadows: dict[str, dict[Label, float] | None] | None = None
    background: tuple[int, Label | None] | None = None
    requested: bool = False


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
    active
        Which labels to request (``None``: no ``active.strategy``).
    hard
        The hard-example buffer (``None``: no ``curation.hard_examples``).
    label_filter
        The rules that keep labels out of learning (``None``: none set).
    curation
        What curation decided so far (``None``: nothing to count yet).
    pending_requests
        ``label_requests`` records made by the last item, until the runner takes them.

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
    active: LabelRequester | None = None
    hard: HardExamples | None = None
    label_filter: LabelFilterSettings | None = None
    curation: CurationCounts | None = None
    pending_requests: list[dict[str, Any]] | None = None

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
        curation = cfg.curation
        hard = None
        if curation.hard_examples is not None:
            hard_seed = derive_seed(cfg.seed, key, "hard_examples")
            hard = HardExamples(curation.hard_examples.size, curation.hard_examples.p, hard_seed)
        rules = curation.label_filter
        filtering = rules.min_confidence > 0 or rules.contradiction is not None
        active = requester_from(cfg.active, derive_seed(cfg.seed, key, "active"))
        curating = active is not None or hard is not None or filtering or curation.tomek_links
        return cls(
            model=model,
            evaluation=Evaluation.new(cfg.metrics, positive),
            updater=Updater(cfg.update),
            cleaner=Cleaner(cfg.validation),
            key=key,
            drift=drift,
            selection=selection,
            active=active,
            hard=hard,
            label_filter=rules if filtering else None,
            curation=CurationCounts() if curating else None,
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

    def request(self, record: dict[str, Any]) -> None:
        """Keep a ``label_requests`` record for the runner to publish."""
        if self.pending_requests is None:
            self.pending_requests = []
        self.pending_requests.append(record)

    def take_requests(self) -> list[dict[str, Any]]:
        """The ``label_requests`` records made since the last call."""
        requests, self.pending_requests = self.pending_requests, None
        return requests or []

    def take_events(self) -> list[dict[str, Any]]:
        """The ``model_events`` records made since the last call."""
        events, self.pending_events = self.pending_events, None
        return events or []
