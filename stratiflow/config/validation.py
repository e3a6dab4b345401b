"""The ``validation`` section: limits on every record and per-feature rules
(:mod:`stratiflow.validation`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, get_args

from stratiflow.config.errors import ConfigError
from stratiflow.config.fields import choice, parse_duration_ms, read_section

__all__ = [
    "DURATIONS",
    "FEATURE_TYPES",
    "MISSING_POLICIES",
    "OUTLIER_POLICIES",
    "UNKNOWN_FEATURE_POLICIES",
    "FeatureRule",
    "FeatureType",
    "MissingPolicy",
    "OutlierPolicy",
    "UnknownFeaturePolicy",
    "ValidationSettings",
    "parse_validation",
]

MissingPolicy = Literal["drop", "impute", "reject"]
OutlierPolicy = Literal["keep", "clip", "reject"]
UnknownFeaturePolicy = Literal["keep", "drop", "reject"]
FeatureType = Literal["number", "string", "boolean"]
MISSING_POLICIES: tuple[str, ...] = get_args(MissingPolicy)
OUTLIER_POLICIES: tuple[str, ...] = get_args(OutlierPolicy)
UNKNOWN_FEATURE_POLICIES: tuple[str, ...] = get_args(UnknownFeaturePolicy)
FEATURE_TYPES: tuple[str, ...] = get_args(FeatureType)
#: The fields given as durations.
DURATIONS = ("max_future_ms",)


@dataclass(frozen=True)
class FeatureRule:
    """How one declared feature is checked and cleaned (:mod:`stratiflow.validation.cleaning`).

    Attributes
    ----------
    min
        The smallest number accepted (``None``: no lower bound).
    max
        The largest number accepted (``None``: no upper bound).
    """

    #: ``number``, ``string`` or ``boolean`` (``None``: any).
    type: FeatureType | None = None
    min: float | None = None
    max: float | None = None
    #: The only values accepted (empty: any).
    allowed: tuple[Any, ...] = ()
    #: A missing/null value: ``drop`` (the model sees it missing), ``impute``, ``reject``.
    missing: MissingPolicy = "drop"
    #: Numbers outside the learned quantile range: ``keep``, ``clip`` or ``reject``.
    outliers: OutlierPolicy = "keep"
    #: The quantiles that bound the normal range.
    quantiles: tuple[float, float] = (0.01, 0.99)
    #: Widen that range by this multiple of its width on each side (Tukey-style fences).
    fence: float = 0.0


@dataclass(frozen=True)
class ValidationSettings:
    """Limits on every record, and the per-feature rules (:mod:`stratiflow.validation`).

    Attributes
    ----------
    max_payload_bytes
        Larger record values are dead-lettered (``payload_too_large``).
    max_features
        Events with more features are dead-lettered (``bad_features``).
    """

    max_payload_bytes: int = 1_048_576
    max_features: int = 10_000
    #: Declared features and their rules (empty: no per-feature checks).
    features: Mapping[str, FeatureRule] = field(default_factory=dict)
    #: Features not declared: ``keep``, ``drop`` or ``reject`` (only with ``features``).
    unknown_features: UnknownFeaturePolicy = "keep"
    #: Values a feature's quantiles are learned from before outlier rules apply.
    outlier_warmup: int = 100
    #: Events and labels stamped further than this ahead of the wall clock are
    #: dead-lettered (``ts_in_future``); 0 turns the check off.
    max_future_ms: int = 86_400_000


def parse_validation(raw: dict[str, Any]) -> ValidationSettings:
    """The ``validation`` section, checked (limits and the per-feature rules)."""
    section = raw.get("validation") or {}
    if not isinstance(section, dict):
        raise ConfigError("validation", f"must be a mapping, got {type(section).__name__}")
    rules = section.get("features") or {}
    rest = {k: v for k, v in section.items() if k != "features"}
    validation = read_section({"validation": rest}, "validation", ValidationSettings)
    if validation.max_payload_bytes < 1:
        raise ConfigError("validation.max_payload_bytes", "must be at least 1")
    validation = replace(
        validation,
        max_future_ms=parse_duration_ms(validation.max_future_ms, "validation.max_future_ms"),
    )
    if validation.outlier_warmup < 1:
        raise ConfigError("validation.outlier_warmup", "must be at least 1")
    choice(validation.unknown_features, UNKNOWN_FEATURE_POLICIES, "validation.unknown_features")
    if not isinstance(rules, dict):
        raise ConfigError("validation.features", "must map feature names to rules")
    parsed = {}
    for name, given in rules.items():
        where = f"validation.features.{name}"
        given = dict(given or {})
        allowed = given.pop("allowed", ())
        quantiles = given.pop("quantiles", (0.01, 0.99))
        kind = given.pop("type", None)
        bounds = {b: given.pop(b, None) for b in ("min", "max")}
        rule = read_section({where: given}, where, FeatureRule)
        if kind is not None:
            choice(kind, FEATURE_TYPES, f"{where}.type")
        choice(rule.missing, MISSING_POLICIES, f"{where}.missing")
        choice(rule.outliers, OUTLIER_POLICIES, f"{where}.outliers")
        for b, v in bounds.items():
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
                raise ConfigError(f"{where}.{b}", f"must be a number, got {v!r}")
        if None not in bounds.values() and bounds["min"] > bounds["max"]:
            raise ConfigError(f"{where}.min", "must not be larger than max")
        if not isinstance(allowed, list | tuple):
            raise ConfigError(f"{where}.allowed", "must be a list of values")
        if (
            not isinstance(quantiles, list | tuple)
            or len(quantiles) != 2
            or not all(isinstance(q, int | float) and 0 <= q <= 1 for q in quantiles)
            or not quantiles[0] < quantiles[1]
        ):
            raise ConfigError(f"{where}.quantiles", "must be [low, high] with 0 <= low < high <= 1")
        if rule.fence < 0:
            raise ConfigError(f"{where}.fence", "must be 0 or more")
        if rule.outliers != "keep" and kind not in (None, "number"):
            raise ConfigError(f"{where}.outliers", "outlier rules apply to numbers only")
        parsed[str(name)] = replace(
            rule,
            type=kind,
            min=bounds["min"],
            max=bounds["max"],
            allowed=tuple(allowed),
            quantiles=(float(quantiles[0]), float(quantiles[1])),
        )
    if validation.unknown_features != "keep" and not parsed:
        raise ConfigError(
            "validation.unknown_features", "needs validation.features to say which are known"
        )
    return replace(validation, features=parsed)
