"""The ``metrics`` section: what the metrics topic reports (:mod:`stratiflow.runner.report`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from stratiflow.config.errors import ConfigError
from stratiflow.config.fields import read_section

__all__ = [
    "MetricsSettings",
    "parse_metrics",
]


@dataclass(frozen=True)
class MetricsSettings:
    """What the metrics topic reports (see :mod:`stratiflow.runner.report`)."""

    #: A report per key after every this many scored predictions.
    report_every: int = 500
    #: Rolling metrics over the last N scored predictions (0: none).
    window: int = 1_000
    #: Fading factor in (0, 1) for prequential metrics with forgetting (``null``: none).
    fading: float | None = None
    #: The positive class for ROC AUC (default: ``true`` for binary models, else no AUC).
    positive_class: str | int | bool | None = None
    #: Score bins of the ROC AUC histograms (resolution 1/auc_bins).
    auc_bins: int = 1_000
    #: How many reports the stability spread (std, range) looks back over.
    stability_reports: int = 10
    #: Probe events' features, re-predicted at each report to measure volatility.
    probe: tuple[Mapping[str, Any], ...] = ()


def parse_metrics(raw: dict[str, Any]) -> MetricsSettings:
    """The ``metrics`` section, checked."""
    section = raw.get("metrics") or {}
    probe = section.get("probe", ()) if isinstance(section, dict) else ()
    fading = section.get("fading") if isinstance(section, dict) else None
    positive = section.get("positive_class") if isinstance(section, dict) else None
    rest = {k: v for k, v in section.items() if k not in ("probe", "fading", "positive_class")}
    metrics = read_section({"metrics": rest}, "metrics", MetricsSettings)
    if metrics.report_every < 1:
        raise ConfigError("metrics.report_every", "must be at least 1")
    if metrics.window < 0:
        raise ConfigError("metrics.window", "must be 0 (no rolling metrics) or more")
    if metrics.auc_bins < 2:
        raise ConfigError("metrics.auc_bins", "must be at least 2")
    if metrics.stability_reports < 2:
        raise ConfigError("metrics.stability_reports", "must be at least 2")
    if fading is not None and (
        isinstance(fading, bool) or not isinstance(fading, int | float) or not 0 < fading < 1
    ):
        raise ConfigError("metrics.fading", f"must be a number between 0 and 1, got {fading!r}")
    if positive is not None and (
        isinstance(positive, float) or not isinstance(positive, str | int)
    ):
        raise ConfigError("metrics.positive_class", f"must be a class label, got {positive!r}")
    if probe is None:
        probe = ()
    if not isinstance(probe, list | tuple):
        raise ConfigError("metrics.probe", "must be a list of feature mappings")
    for i, features in enumerate(probe):
        bad = not isinstance(features, dict) or not features
        if not bad:
            bad = any(
                not isinstance(name, str)
                or (value is not None and not isinstance(value, int | float | str))
                for name, value in features.items()
            )
        if bad:
            raise ConfigError(
                f"metrics.probe[{i}]", "must be a non-empty mapping of feature name to value"
            )
    return replace(
        metrics,
        fading=None if fading is None else float(fading),
        positive_class=positive,
        probe=tuple(dict(p) for p in probe),
    )
