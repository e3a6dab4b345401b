"""The ``active`` and ``curation`` sections: which labels are worth asking for, and which
labelled examples the model learns from (:mod:`stratiflow.curation`).

>>> active = parse_active({"active": {"strategy": "uncertainty", "budget": 0.05}})
>>> active.strategy, active.budget, active.budget_window, active.limit
('uncertainty', 0.05, 1000, 50)
>>> curation = parse_curation({"curation": {"hard_examples": {"size": 100}}})
>>> curation.hard_examples, curation.label_filter.contradiction
(HardExampleSettings(size=100, p=0.1), None)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from stratiflow.config.errors import ConfigError
from stratiflow.config.fields import choice, no_unknown, read_section

__all__ = [
    "ACTIVE_STRATEGIES",
    "ActiveSettings",
    "ActiveStrategy",
    "CurationSettings",
    "HardExampleSettings",
    "LabelFilterSettings",
    "parse_active",
    "parse_curation",
]

ActiveStrategy = Literal["none", "random", "uncertainty", "variable_uncertainty"]
ACTIVE_STRATEGIES: tuple[str, ...] = get_args(ActiveStrategy)


@dataclass(frozen=True)
class ActiveSettings:
    """Active learning: which events get a label request, within a hard budget per key."""

    #: ``none``: no requests; ``random``: each event with probability ``budget``;
    #: ``uncertainty``: when the top probability is below ``threshold``;
    #: ``variable_uncertainty``: a threshold that moves with the model's confidence
    #: (Žliobaitė et al. 2014), so a confident model still asks now and then.
    strategy: ActiveStrategy = "none"
    #: At most this share of a key's events get a request, over every ``budget_window`` events.
    budget: float = 0.1
    #: Events of a key the budget is counted over (a sliding window: a hard limit).
    budget_window: int = 1000
    #: ``true``: events carry their label, but the model learns it only when the strategy
    #: asked for it (every event is still scored: how active learning is evaluated).
    simulate: bool = False
    #: ``uncertainty``: ask when the top probability is below this (``null``: 1 - budget).
    threshold: float | None = None
    #: ``variable_uncertainty``: the threshold's relative step after each decision.
    step: float = 0.01

    @property
    def limit(self) -> int:
        """Requests allowed in any ``budget_window`` consecutive events of a key."""
        return math.floor(self.budget * self.budget_window + 1e-9)


@dataclass(frozen=True)
class HardExampleSettings:
    """A per-key buffer of the highest-loss labelled examples, learned again now and then."""

    #: Examples the buffer keeps (the highest log losses seen).
    size: int = 200
    #: After each example learned, one buffered example is learned again with this probability.
    p: float = 0.1


@dataclass(frozen=True)
class LabelFilterSettings:
    """Labels kept out of learning (they still score their prediction)."""

    #: Drop a label whose record says ``confidence`` below this.
    min_confidence: float = 0.0
    #: Drop a label the model contradicts with at least this probability (another class),
    #: once it has learned ``warmup`` examples: a suspected annotation error (``null``: off).
    contradiction: float | None = None
    #: Examples the model learns before the contradiction filter acts.
    warmup: int = 500


@dataclass(frozen=True)
class CurationSettings:
    """What the model learns from, beyond the sampler."""

    #: ``{size, p}``: replay the hardest examples (``null``: off).
    hard_examples: HardExampleSettings | None = None
    label_filter: LabelFilterSettings = field(default_factory=LabelFilterSettings)
    #: With a sampler: drop the non-minority members of Tomek links in each window's sample.
    tomek_links: bool = False


def parse_active(raw: dict[str, Any]) -> ActiveSettings:
    """The ``active`` section, checked (the checks across sections are the loader's).

    Parameters
    ----------
    raw
        The whole job config as loaded from YAML.

    Returns
    -------
    ActiveSettings
        The section's settings.

    Raises
    ------
    ConfigError
        With the field path: an unknown strategy, a budget outside (0, 1], a window
        with no request in it, a bad threshold or step.
    """
    settings = read_section(raw, "active", ActiveSettings)
    choice(settings.strategy, ACTIVE_STRATEGIES, "active.strategy")
    if not 0 < settings.budget <= 1:
        raise ConfigError("active.budget", f"must be in (0, 1], got {settings.budget!r}")
    if settings.budget_window < 1:
        raise ConfigError("active.budget_window", "must be at least 1")
    if settings.limit < 1:
        raise ConfigError(
            "active.budget",
            f"{settings.budget} of {settings.budget_window} events is less than one request: "
            "raise the budget or active.budget_window",
        )
    threshold = settings.threshold
    if threshold is not None and (
        isinstance(threshold, bool)
        or not isinstance(threshold, int | float)
        or not 0 < threshold <= 1
    ):
        raise ConfigError("active.threshold", f"must be a number in (0, 1], got {threshold!r}")
    if not 0 < settings.step < 1:
        raise ConfigError("active.step", f"must be in (0, 1), got {settings.step!r}")
    return settings


def parse_curation(raw: dict[str, Any]) -> CurationSettings:
    """The ``curation`` section, checked.

    Parameters
    ----------
    raw
        The whole job config as loaded from YAML.

    Returns
    -------
    CurationSettings
        The section's settings.

    Raises
    ------
    ConfigError
        With the field path: negative or zero sizes, probabilities outside [0, 1].
    """
    value = raw.get("curation") or {}
    if not isinstance(value, dict):
        raise ConfigError("curation", f"must be a mapping, got {type(value).__name__}")
    no_unknown(value, tuple(CurationSettings.__dataclass_fields__), "curation")
    hard = None
    if value.get("hard_examples") is not None:
        hard = _subsection(value, "hard_examples", HardExampleSettings)
        if hard.size < 1:
            raise ConfigError("curation.hard_examples.size", f"must be at least 1, got {hard.size}")
        if not 0 <= hard.p <= 1:
            raise ConfigError("curation.hard_examples.p", f"must be in [0, 1], got {hard.p!r}")
    filters = _subsection(value, "label_filter", LabelFilterSettings)
    if not 0 <= filters.min_confidence <= 1:
        raise ConfigError(
            "curation.label_filter.min_confidence",
            f"must be in [0, 1], got {filters.min_confidence!r}",
        )
    bound = filters.contradiction
    if bound is not None and (
        isinstance(bound, bool) or not isinstance(bound, int | float) or not 0.5 <= bound <= 1
    ):
        raise ConfigError(
            "curation.label_filter.contradiction",
            f"must be a probability in [0.5, 1] (or null), got {bound!r}",
        )
    if filters.warmup < 0:
        raise ConfigError("curation.label_filter.warmup", "cannot be negative")
    tomek = value.get("tomek_links", False)
    if not isinstance(tomek, bool):
        raise ConfigError("curation.tomek_links", f"must be true or false, got {tomek!r}")
    return CurationSettings(hard, filters, tomek)


def _subsection(section: dict[str, Any], name: str, cls: type) -> Any:
    """A mapping inside ``curation``, read with its full path in errors."""
    path = f"curation.{name}"
    return read_section({path: section.get(name)}, path, cls)
