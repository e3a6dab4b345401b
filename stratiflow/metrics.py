"""Prequential classification metrics for one model key.

The set is built on River's own metric classes over one shared confusion
matrix, so the accuracy reported here is exactly what
``river.evaluate.progressive_val_score`` reports for the same predictions.

>>> m = ClassificationMetrics()
>>> for y, p in [(True, True), (False, True), (True, True)]:
...     m.update(y, p, {True: 0.8, False: 0.2})
>>> round(m.summary()["accuracy"], 4), m.summary()["per_class"]["true"]["support"]
(0.6667, 2)
"""

from __future__ import annotations

import math
from typing import Any

from river import metrics as river_metrics

from stratiflow.records import Label, class_key

_EPS = 1e-15


class ClassificationMetrics:
    """Cumulative accuracy, balanced accuracy, F1, per-class scores and log loss."""

    def __init__(self) -> None:
        self.cm = river_metrics.ConfusionMatrix()
        # These read the shared matrix; only the matrix itself is ever updated.
        self._accuracy = river_metrics.Accuracy(cm=self.cm)
        self._balanced_accuracy = river_metrics.BalancedAccuracy(cm=self.cm)
        self._macro_f1 = river_metrics.MacroF1(cm=self.cm)
        self._weighted_f1 = river_metrics.WeightedF1(cm=self.cm)
        self._log_loss_sum = 0.0
        self._log_loss_n = 0

    def update(self, y_true: Label, y_pred: Label, proba: dict[Any, float]) -> None:
        """Score one prediction against its label."""
        self.cm.update(y_true, y_pred)
        p = min(max(proba.get(y_true, 0.0), _EPS), 1.0 - _EPS)
        self._log_loss_sum -= math.log(p)
        self._log_loss_n += 1

    @property
    def accuracy(self) -> float:
        return float(self._accuracy.get())

    def summary(self) -> dict[str, Any]:
        """The metric values as a JSON-ready mapping."""
        per_class = {}
        for c in sorted(self.cm.classes, key=class_key):
            tp = self.cm[c][c]
            predicted = self.cm.sum_col[c]
            actual = self.cm.sum_row[c]
            precision = tp / predicted if predicted else 0.0
            recall = tp / actual if actual else 0.0
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            per_class[class_key(c)] = {
                "precision": precision,
                "recall": recall,
                "f1": f1,
                "support": int(actual),
            }
        return {
            "accuracy": self.accuracy,
            "balanced_accuracy": float(self._balanced_accuracy.get()),
            "macro_f1": float(self._macro_f1.get()),
            "weighted_f1": float(self._weighted_f1.get()),
            "log_loss": self._log_loss_sum / self._log_loss_n if self._log_loss_n else None,
            "per_class": per_class,
        }


class RunningStat:
    """Mean and maximum of a stream of durations, in O(1) memory."""

    __slots__ = ("count", "max", "total")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.max = 0.0

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        if value > self.max:
            self.max = value

    def summary(self, scale: float = 1e6) -> dict[str, float | None]:
        """Mean and max, scaled (default: seconds → microseconds)."""
        if not self.count:
            return {"mean": None, "max": None}
        return {"mean": self.total / self.count * scale, "max": self.max * scale}
