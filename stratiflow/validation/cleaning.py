"""Per-feature validation and cleaning (``validation.features`` in the job YAML).

Two steps, so that what needs no memory happens where the record is parsed:

- :func:`check_features` (stateless, at parse time): declared type, range,
  allowed values, a missing value under ``missing: reject``, and undeclared
  features under ``unknown_features: reject``. A failure is a
  :class:`~stratiflow.records.Rejection`; the record goes to the dead-letter topic.
- :class:`Cleaner` (per model key, in the model operator's state): drops
  undeclared features (``unknown_features: drop``), imputes missing values
  (``missing: impute``: the running mean of a number, the most frequent
  string), and handles outliers against quantiles it learns from the key's
  own stream, widened by ``fence`` times their distance on each side
  (``outliers: clip`` winsorises, ``reject`` dead-letters the event, ``keep``
  does nothing). Everything it does is counted and reported
  in the metrics record's ``cleaning`` section.

Everything the model sees passes the cleaner: events before they are
predicted (which also updates its statistics), and delayed-label and sampled
examples before they are learned (transform only).

>>> from stratiflow.config import FeatureRule, ValidationSettings
>>> rules = ValidationSettings(features={"x": FeatureRule(type="number", outliers="clip")},
...                            outlier_warmup=3)
>>> cleaner = Cleaner(rules)
>>> [cleaner.clean({"x": v})[0]["x"] for v in (1.0, 2.0, 3.0, 1e308)]
[1.0, 2.0, 3.0, 3.0]
>>> cleaner.summary()["clipped"]
{'x': 1}
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from river import stats

from stratiflow.config import FeatureRule, ValidationSettings
from stratiflow.records import FeatureValue, Rejection

#: Values further than this many band widths outside the learned band are not learned from.
ABSURD = 10.0

#: Feature types a rule may declare, and the JSON values they accept.
FEATURE_TYPES = ("number", "string", "boolean")


def _type_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string"


def check_features(
    features: Mapping[str, FeatureValue], settings: ValidationSettings
) -> Rejection | None:
    """The stateless checks of ``validation.features``; ``None`` when the event passes.

    Parameters
    ----------
    features
        An event's features.
    settings
        The ``validation`` section (no declared features: nothing is checked).

    Returns
    -------
    Rejection | None
        The first failed check (reason ``unknown_feature``, ``feature_missing``,
        ``feature_wrong_type``, ``feature_out_of_range`` or ``feature_not_allowed``),
        or ``None``.

    Examples
    --------
    >>> from stratiflow.config import FeatureRule, ValidationSettings
    >>> rules = ValidationSettings(features={"age": FeatureRule(type="number", min=0, max=130)})
    >>> check_features({"age": 42}, rules) is None
    True
    >>> check_features({"age": 200}, rules).reason
    'feature_out_of_range'
    >>> check_features({"age": "old"}, rules).detail
    "feature 'age' should be a number, got a string"
    """
    rules = settings.features
    if not rules:
        return None
    if settings.unknown_features == "reject":
        unknown = sorted(set(features) - set(rules))
        if unknown:
            shown = ", ".join(repr(n) for n in unknown[:5])
            return Rejection(
                "unknown_feature",
                f"feature {shown} is not declared in validation.features "
                "(unknown_features: reject)",
            )
    for name, rule in rules.items():
        value = features.get(name)
        if value is None:
            if rule.missing == "reject":
                return Rejection("feature_missing", f"feature {name!r} is missing or null")
            continue
        kind = _type_of(value)
        if rule.type is not None and kind != rule.type:
            return Rejection(
                "feature_wrong_type", f"feature {name!r} should be a {rule.type}, got a {kind}"
            )
        if kind == "number":
            number = float(value)
            if (rule.min is not None and number < rule.min) or (
                rule.max is not None and number > rule.max
            ):
                return Rejection(
                    "feature_out_of_range",
                    f"feature {name!r} = {value!r} is outside [{rule.min}, {rule.max}]",
                )
        if rule.allowed and value not in rule.allowed:
            return Rejection(
                "feature_not_allowed",
                f"feature {name!r} = {value!r} is not one of the allowed values",
            )
    return None


@dataclass
class _FeatureStats:
    """What the cleaner has learned about one feature of one key."""

    n: int = 0
    mean: float = 0.0
    low: stats.Quantile | None = None
    high: stats.Quantile | None = None
    modes: Counter[str] = field(default_factory=Counter)


class Cleaner:
    """Impute, clip or reject feature values for one model key (picklable state).

    Parameters
    ----------
    settings
        The ``validation`` section: the per-feature rules, ``unknown_features`` and
        ``outlier_warmup``.

    Examples
    --------
    >>> from stratiflow.config import FeatureRule, ValidationSettings
    >>> cleaner = Cleaner(ValidationSettings(features={"x": FeatureRule(missing="impute")}))
    >>> [cleaner.clean(x)[0] for x in ({"x": 2.0}, {"x": 4.0}, {"x": None})]
    [{'x': 2.0}, {'x': 4.0}, {'x': 3.0}]
    >>> cleaner.summary()["imputed"]
    {'x': 1}
    """

    #: Distinct strings remembered per feature for the most-frequent imputation.
    MAX_MODES = 1_000

    def __init__(self, settings: ValidationSettings) -> None:
        self.settings = settings
        self.stats: dict[str, _FeatureStats] = {}
        self.imputed: Counter[str] = Counter()
        self.clipped: Counter[str] = Counter()
        self.dropped_unknown = 0
        self.outliers_rejected = 0
        self.examples_rejected = 0

    @property
    def active(self) -> bool:
        return bool(self.settings.features)

    def clean(
        self, x: Mapping[str, FeatureValue], *, learn: bool = True
    ) -> tuple[dict[str, Any], Rejection | None]:
        """``x`` cleaned, or a rejection. ``learn`` updates the statistics (events only)."""
        rules = self.settings.features
        if not rules:
            # Nothing to clean: only missing values are left out (a copy either way).
            if None in x.values():
                return {k: v for k, v in x.items() if v is not None}, None
            return dict(x), None
        out = {k: v for k, v in x.items() if v is not None}
        if self.settings.unknown_features == "drop":
            unknown = [name for name in out if name not in rules]
            for name in unknown:
                del out[name]
            self.dropped_unknown += len(unknown)
        for name, rule in rules.items():
            value = out.get(name)
            st = self.stats.get(name)
            if value is None:
                if rule.missing == "impute" and st is not None:
                    fill = self._fill(st)
                    if fill is not None:
                        out[name] = fill
                        self.imputed[name] += 1
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                if learn and isinstance(value, str):
                    st = self._stats(name)
                    if len(st.modes) < self.MAX_MODES or value in st.modes:
                        st.modes[value] += 1
                continue
            number = float(value)
            if not math.isfinite(number):
                continue
            raw = number
            plausible = True
            if rule.outliers != "keep" and st is not None and st.n >= self.settings.outlier_warmup:
                assert st.low is not None and st.high is not None
                low, high = st.low.get(), st.high.get()
                width = high - low
                # The estimates learn from raw values (learning clipped ones would shrink
                # the band), except absurd ones: a 1e308 must not drag them along.
                plausible = low - ABSURD * width <= raw <= high + ABSURD * width
                low, high = low - rule.fence * width, high + rule.fence * width
                if number < low or number > high:
                    if rule.outliers == "reject":
                        if learn:
                            self.outliers_rejected += 1
                        else:
                            self.examples_rejected += 1
                        return out, Rejection(
                            "feature_outlier",
                            f"feature {name!r} = {value!r} is outside the learned "
                            f"[{rule.quantiles[0]}, {rule.quantiles[1]}] quantile range "
                            f"[{low:.6g}, {high:.6g}] (outliers: reject)",
                        )
                    number = min(max(number, low), high)
                    out[name] = number
                    self.clipped[name] += 1
            if learn and plausible:
                self._learn(name, rule, raw)
        return out, None

    def _stats(self, name: str) -> _FeatureStats:
        st = self.stats.get(name)
        if st is None:
            st = self.stats[name] = _FeatureStats()
        return st

    def _learn(self, name: str, rule: FeatureRule, number: float) -> None:
        st = self._stats(name)
        st.n += 1
        st.mean += (number - st.mean) / st.n
        if rule.outliers != "keep":
            if st.low is None or st.high is None:
                st.low, st.high = (
                    stats.Quantile(rule.quantiles[0]),
                    stats.Quantile(rule.quantiles[1]),
                )
            st.low.update(number)
            st.high.update(number)

    @staticmethod
    def _fill(st: _FeatureStats) -> FeatureValue:
        if st.n:
            return st.mean
        if st.modes:
            return st.modes.most_common(1)[0][0]
        return None

    def summary(self) -> dict[str, Any]:
        """The ``cleaning`` section of the metrics record."""
        return {
            "imputed": dict(sorted(self.imputed.items())),
            "clipped": dict(sorted(self.clipped.items())),
            "dropped_unknown": self.dropped_unknown,
            "outliers_rejected": self.outliers_rejected,
            "examples_rejected": self.examples_rejected,
        }
