"""The model: built from config, and one :func:`step` shared by every runner.

``step`` is predict → score → learn for one event. The Flink model operator,
the backtest and the tests all call it, so what one of them computes the
others compute too.

>>> from stratiflow.config import ModelStep
>>> from stratiflow.records import Event
>>> state = ModelState.new(build_model([ModelStep("linear_model.LogisticRegression")]))
>>> out = step(state, Event("a", 0, {"x": 1.0}, label=True), now_ms=0)
>>> out.prediction.proba, out.prediction.model_version, state.counts.learned
({False: 0.5, True: 0.5}, 0, 1)
"""

from __future__ import annotations

import importlib
import inspect
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from river import base as river_base
from river import compose
from river import utils as river_utils

from stratiflow.config import ConfigError, ModelStep
from stratiflow.metrics import ClassificationMetrics, RunningStat
from stratiflow.records import (
    METRICS_SCHEMA_VERSION,
    Event,
    Label,
    Prediction,
    Rejection,
    class_key,
)
from stratiflow.sampling import Example
from stratiflow.validate import LabelPolicy


def build_model(steps: Iterable[ModelStep]) -> Any:
    """Instantiate the River estimators named in the config and chain them.

    A step's parameter may itself be an estimator given the same way, e.g.
    ``optimizer: {optim.SGD: {lr: 0.05}}``.
    """
    estimators = [
        _instantiate(s.path, s.params, f"model[{i}].{s.path}") for i, s in enumerate(steps)
    ]
    if not estimators:
        raise ConfigError("model", "needs at least one estimator")
    model = estimators[0] if len(estimators) == 1 else compose.Pipeline(*estimators)
    if not river_utils.inspect.isclassifier(model):
        raise ConfigError(
            f"model[{len(estimators) - 1}]",
            f"{steps_path(estimators[-1])} is not a classifier; the last step must classify",
        )
    return model


def steps_path(estimator: Any) -> str:
    return type(estimator).__module__.removeprefix("river.") + "." + type(estimator).__name__


def label_policy(model: Any) -> LabelPolicy:
    """Binary River classifiers (``_multiclass`` false) can only learn booleans."""
    return LabelPolicy(binary=not getattr(model, "_multiclass", True))


def _instantiate(
    path: str, params: Mapping[str, Any], where: str, base: type = river_base.Estimator
) -> Any:
    module_name, _, class_name = path.rpartition(".")
    if not module_name or not class_name:
        raise ConfigError(
            where, "expected module.Estimator under river, e.g. linear_model.Perceptron"
        )
    try:
        module = importlib.import_module(f"river.{module_name}")
    except ImportError:
        raise ConfigError(where, f"river has no module {module_name!r}") from None
    cls = getattr(module, class_name, None)
    if not inspect.isclass(cls) or not issubclass(cls, base):
        kind = "estimator" if base is river_base.Estimator else "class"
        raise ConfigError(where, f"river.{module_name} has no {kind} {class_name!r}")
    signature = inspect.signature(cls)
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    kwargs = {}
    for name, value in params.items():
        if name not in signature.parameters and not accepts_any:
            allowed = ", ".join(p for p in signature.parameters if p not in ("args", "kwargs"))
            raise ConfigError(f"{where}.{name}", f"unknown parameter (accepted: {allowed})")
        kwargs[name] = _param_value(value, f"{where}.{name}")
    try:
        return cls(**kwargs)
    except Exception as exc:  # River validates in constructors with assorted exception types
        raise ConfigError(where, f"cannot build {path}: {exc}") from None


def _param_value(value: Any, where: str) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        ((key, inner),) = value.items()
        if (
            isinstance(key, str)
            and "." in key
            and key[:1].islower()
            and (inner is None or isinstance(inner, dict))
        ):
            # Parameters may be any River object: optimizers, losses, initializers...
            return _instantiate(key, inner or {}, f"{where}.{key}", river_base.Base)
    return value


@dataclass(slots=True)
class Counts:
    """Per-key event counts; they reconcile: seen = predicted + rejected."""

    seen: int = 0
    predicted: int = 0
    scored: int = 0
    learned: int = 0
    labelled: int = 0
    unlabelled: int = 0
    rejected: int = 0


@dataclass(slots=True)
class ModelState:
    """Everything one model key remembers; picklable, kept in Flink keyed state."""

    model: Any
    metrics: ClassificationMetrics = field(default_factory=ClassificationMetrics)
    counts: Counts = field(default_factory=Counts)
    predict_time: RunningStat = field(default_factory=RunningStat)
    learn_time: RunningStat = field(default_factory=RunningStat)
    reports: int = 0
    last_ts: int | None = None
    #: Examples learned per class (the cumulative trained-on mix).
    trained_on: dict[str, int] = field(default_factory=dict)
    #: Sampled examples the model raised on while learning (their events were predicted).
    learn_failed: int = 0

    @classmethod
    def new(cls, model: Any) -> ModelState:
        return cls(model=model)

    def record_learned(self, label: Label, seconds: float) -> None:
        """Count one learned example of class ``label`` that took ``seconds``."""
        self.learn_time.add(seconds)
        self.counts.learned += 1
        cls = class_key(label)
        self.trained_on[cls] = self.trained_on.get(cls, 0) + 1

    @property
    def model_version(self) -> int:
        """Examples learned so far: a prediction's version says what the model had seen."""
        return self.counts.learned


@dataclass(frozen=True, slots=True)
class StepOutput:
    """What one event produced: a prediction or a rejection, and maybe a metrics report."""

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
        Learn from a labelled event right away (``sampling.strategy: none``).
        With a sampler the model learns from :func:`learn_examples` instead.
    """
    x = event.model_input()
    state.counts.seen += 1
    t0 = time.perf_counter()
    try:
        proba = state.model.predict_proba_one(x)
    except Exception as exc:  # River raises TypeError/ValueError/KeyError on odd inputs
        state.counts.rejected += 1
        return StepOutput(rejection=_model_error("predict", exc))
    t1 = time.perf_counter()
    if not all(math.isfinite(p) for p in proba.values()):
        # Overflowed state (e.g. after a 1e308 feature) yields NaN; JSON cannot carry it.
        state.counts.rejected += 1
        return StepOutput(
            rejection=Rejection(
                "model_output_not_finite",
                f"the model returned non-finite probabilities {proba!r}; "
                "an extreme feature value has probably overflowed its state",
            )
        )
    y_pred: Label | None = max(proba, key=proba.get) if proba else None
    version = state.model_version

    scored = False
    if event.label is not None:
        if learn:
            try:
                state.model.learn_one(x, event.label)
            except Exception as exc:
                state.counts.rejected += 1
                return StepOutput(rejection=_model_error("learn", exc))
            state.record_learned(event.label, time.perf_counter() - t1)
        state.counts.labelled += 1
        if y_pred is not None:
            state.metrics.update(event.label, y_pred, proba)
            state.counts.scored += 1
            scored = True
    else:
        state.counts.unlabelled += 1
    state.predict_time.add(t1 - t0)
    state.counts.predicted += 1
    state.last_ts = event.ts if state.last_ts is None else max(state.last_ts, event.ts)
    prediction = Prediction(
        id=event.id,
        ts=event.ts,
        key=event.key,
        y_pred=y_pred,
        proba=dict(proba),
        model_version=version,
        emitted_at=now_ms,
        y_true=event.label,
    )
    due = scored and report_every > 0 and state.counts.scored % report_every == 0
    return StepOutput(prediction=prediction, report_due=due)


def learn_examples(state: ModelState, examples: Iterable[Example]) -> int:
    """Learn sampled training examples in order; returns how many were learned.

    Their events were already predicted and scored when they arrived, so an
    example the model raises on is counted (``learn_failed``), not dead-lettered.
    """
    learned = 0
    for example in examples:
        t0 = time.perf_counter()
        try:
            state.model.learn_one(example.x, example.y)
        except Exception:
            state.learn_failed += 1
            continue
        state.record_learned(example.y, time.perf_counter() - t0)
        learned += 1
    return learned


def _model_error(phase: str, exc: Exception) -> Rejection:
    message = str(exc) or type(exc).__name__
    return Rejection(
        "model_rejected_input",
        f"the model raised {type(exc).__name__} during {phase}: {message[:300]}",
    )


def metrics_report(
    state: ModelState, key: str, *, now_ms: int, final: bool = False
) -> dict[str, Any]:
    """The metrics record for one key (``schema_version`` 1, documented in the README)."""
    state.reports += 1
    c = state.counts
    return {
        "schema_version": METRICS_SCHEMA_VERSION,
        "key": key,
        "report": state.reports,
        "final": final,
        "event_ts": state.last_ts,
        "emitted_at": now_ms,
        "model_version": state.model_version,
        "counts": {
            "seen": c.seen,
            "predicted": c.predicted,
            "scored": c.scored,
            "learned": c.learned,
            "labelled": c.labelled,
            "unlabelled": c.unlabelled,
            "rejected": c.rejected,
            "learn_failed": state.learn_failed,
        },
        "trained_on": dict(sorted(state.trained_on.items())),
        "cumulative": state.metrics.summary(),
        "timing_us": {
            "predict": state.predict_time.summary(),
            "learn": state.learn_time.summary(),
        },
    }
