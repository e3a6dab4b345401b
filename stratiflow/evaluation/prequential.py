"""Continuous evaluation of one model key, and the metrics record it reports.

:class:`Evaluation` scores predictions in three views — cumulative, rolling
(last ``metrics.window`` scored) and fading (``metrics.fading``) — and measures
stability: the spread of the rolling metrics across the last reports, and the
volatility of the model's answers on a fixed probe set re-predicted at each
report. :class:`LabelCounts` follows delayed labels; :func:`metrics_report`
builds the ``schema_version`` 2 record (every field is in docs/records.md and
``schemas/metrics.schema.json``).

>>> from stratiflow.config import MetricsSettings
>>> ev = Evaluation.new(MetricsSettings(window=2), positive=True)
>>> for y, p in [(True, True), (False, True), (True, True)]:
...     ev.score(y, p, {True: 0.8, False: 0.2})
>>> ev.cumulative.summary()["accuracy"], ev.rolling.summary()["accuracy"]
(0.6666666666666666, 0.5)
"""

from __future__ import annotations

import math
import pickle
import statistics
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from stratiflow.config import MetricsSettings
from stratiflow.evaluation.metrics import (
    CumulativeMetrics,
    FadingMetrics,
    RollingMetrics,
    log_loss_term,
    score_bin,
)
from stratiflow.evaluation.sketches import QuantileSketch
from stratiflow.records import Label

#: Which rolling metrics the stability spread follows.
STABILITY_METRICS = ("accuracy", "balanced_accuracy", "macro_f1")


@dataclass
class Evaluation:
    """Metric sets, stability history and probe answers for one model key.

    Attributes
    ----------
    cumulative
        Metrics over every scored prediction.
    rolling
        Metrics over the last ``metrics.window`` scored predictions (``None``: no window).
    fading
        Metrics with the fading factor ``metrics.fading`` (``None``: no fading).
    history
        The rolling metrics of :data:`STABILITY_METRICS` at each of the last
        ``metrics.stability_reports`` reports.
    probe_changes
        Probe answers that changed from one report to the next, in total.
    probe_reports
        Reports whose probe answers were compared with the previous ones.
    """

    cumulative: CumulativeMetrics
    rolling: RollingMetrics | None
    fading: FadingMetrics | None
    history: deque[dict[str, float]]
    #: The probe set's predicted classes at the previous report (``None``: no answer).
    probe_answers: list[Label | None] | None = None
    probe_changes: int = 0
    probe_reports: int = 0

    @classmethod
    def new(cls, settings: MetricsSettings, positive: Label | None) -> Evaluation:
        bins = settings.auc_bins
        return cls(
            cumulative=CumulativeMetrics(positive=positive, auc_bins=bins),
            rolling=RollingMetrics(settings.window, positive=positive, auc_bins=bins)
            if settings.window
            else None,
            fading=FadingMetrics(settings.fading, positive=positive, auc_bins=bins)
            if settings.fading
            else None,
            history=deque(maxlen=settings.stability_reports),
        )

    def score(self, y_true: Label, y_pred: Label, proba: Mapping[Label, float]) -> None:
        """Score one prediction in every view."""
        # What each view's ``update`` would compute, computed once: the log-loss
        # term, and the score bin where the views share positive class and bins.
        cumulative = self.cumulative
        positive, bins = cumulative.positive, cumulative.auc_bins
        loss = log_loss_term(y_true, proba)
        auc_bin = 0 if positive is None else score_bin(proba.get(positive, 0.0), bins)
        cumulative.add_terms(y_true, y_pred, loss, auc_bin)
        for view in (self.rolling, self.fading):
            if view is None:
                continue
            if view.positive is positive and view.auc_bins == bins:
                view.add_terms(y_true, y_pred, loss, auc_bin)
            else:
                view.update(y_true, y_pred, proba)

    def report(self, model: Any, probe: tuple[Mapping[str, Any], ...]) -> dict[str, Any]:
        """The metric views and the stability section, as reported now."""
        rolling = self.rolling.summary() if self.rolling is not None else None
        if rolling is not None and rolling["n"]:
            point = {
                "accuracy": rolling["accuracy"],
                "balanced_accuracy": rolling["balanced_accuracy"],
                "macro_f1": rolling["macro"]["f1"],
            }
            self.history.append({k: v for k, v in point.items() if v is not None})
        return {
            "cumulative": self.cumulative.summary(),
            "rolling": rolling,
            "fading": self.fading.summary() if self.fading is not None else None,
            "stability": {
                "reports": len(self.history),
                "spread": {
                    name: _spread([h[name] for h in self.history if name in h])
                    for name in STABILITY_METRICS
                },
                **self._probe(model, probe),
            },
        }

    def _probe(self, model: Any, probe: tuple[Mapping[str, Any], ...]) -> dict[str, Any]:
        """Re-predict the probe set; the share whose predicted class changed since last time."""
        if not probe:
            return {"probe_size": 0, "probe_changed": None, "probe_changed_mean": None}
        answers = [_answer(model, features) for features in probe]
        changed = None
        if self.probe_answers is not None:
            changes = sum(a != b for a, b in zip(answers, self.probe_answers, strict=True))
            changed = changes / len(probe)
            self.probe_changes += changes
            self.probe_reports += 1
        self.probe_answers = answers
        mean = (
            self.probe_changes / (self.probe_reports * len(probe)) if self.probe_reports else None
        )
        return {"probe_size": len(probe), "probe_changed": changed, "probe_changed_mean": mean}


def _answer(model: Any, features: Mapping[str, Any]) -> Label | None:
    x = {k: v for k, v in features.items() if v is not None}
    try:
        proba = model.predict_proba_one(x)
    except Exception:  # a probe the model cannot take answers "no answer", every time
        return None
    if not proba or not all(math.isfinite(p) for p in proba.values()):
        return None
    best: Label = max(proba, key=proba.__getitem__)
    return best


def _spread(values: list[float]) -> dict[str, float | None]:
    if len(values) < 2:
        return {"std": None, "range": None}
    return {"std": statistics.pstdev(values), "range": max(values) - min(values)}


@dataclass
class LabelCounts:
    """Delayed labels of one key. They reconcile:
    received = joined + unknown + duplicate + expired + event_rejected + held.

    Attributes
    ----------
    received
        Label records that arrived.
    joined
        Labels joined to the prediction waiting for them.
    held
        Labels waiting for their event now.
    unknown
        Refused: no event with their id came within ``labels.ttl`` (or
        ``labels.max_pending`` pushed them out).
    duplicate
        Refused: their event already had its label.
    expired
        Refused: they came after the prediction had stopped waiting.
    event_rejected
        Their event was rejected, so there was no prediction to score.
    never_came
        Predictions whose label never came (expired, or pushed out by
        ``labels.max_pending``).
    delay
        Label delays in ms (label time minus event time).
    """

    received: int = 0
    joined: int = 0
    held: int = 0
    unknown: int = 0
    duplicate: int = 0
    expired: int = 0
    event_rejected: int = 0
    #: Predictions waiting for their label now, and those whose label never came.
    waiting: int = 0
    never_came: int = 0
    delay: QuantileSketch = field(default_factory=QuantileSketch)

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            f.name: getattr(self, f.name) for f in fields(self) if f.name != "delay"
        }
        out["delay_ms"] = self.delay.summary()
        return out


@dataclass
class Cost:
    """What predicting and learning cost: per-event time quantiles and throughput.

    Attributes
    ----------
    predict
        Seconds per prediction.
    learn
        Seconds per learned example.
    last_report_predicted
        Events predicted by the previous report.
    """

    predict: QuantileSketch = field(default_factory=QuantileSketch)
    learn: QuantileSketch = field(default_factory=QuantileSketch)
    #: Wall clock (ms) and predicted count at the previous report, for events/s.
    last_report_at: int | None = None
    last_report_predicted: int = 0

    def summary(self, model: Any, state: Any, predicted: int, now_ms: int) -> dict[str, Any]:
        rate = None
        if self.last_report_at is not None and now_ms > self.last_report_at:
            rate = (predicted - self.last_report_predicted) / ((now_ms - self.last_report_at) / 1e3)
        self.last_report_at, self.last_report_predicted = now_ms, predicted
        return {
            "predict_us": self.predict.summary(scale=1e6),
            "learn_us": self.learn.summary(scale=1e6),
            "events_per_s": rate,
            "model_bytes": len(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)),
            "state_bytes": len(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)),
        }
