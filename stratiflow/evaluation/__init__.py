"""Continuous evaluation: prequential metrics (``metrics``), the three views and the
metrics record's parts (``prequential``), and small stream summaries (``sketches``).
"""

from __future__ import annotations

from stratiflow.evaluation.metrics import (
    LOG_LOSS_EPS,
    CumulativeMetrics,
    FadingMetrics,
    RollingMetrics,
    log_loss_term,
    score_bin,
)
from stratiflow.evaluation.prequential import (
    STABILITY_METRICS,
    Cost,
    Evaluation,
    LabelCounts,
)
from stratiflow.evaluation.sketches import (
    MIN_VALUE,
    QuantileSketch,
)

__all__ = [
    "LOG_LOSS_EPS",
    "MIN_VALUE",
    "STABILITY_METRICS",
    "Cost",
    "CumulativeMetrics",
    "Evaluation",
    "FadingMetrics",
    "LabelCounts",
    "QuantileSketch",
    "RollingMetrics",
    "log_loss_term",
    "score_bin",
]
