"""The ``sampling`` section: how the training stream is sampled per class
(:mod:`stratiflow.sampling`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, get_args

from stratiflow.config.errors import ConfigError
from stratiflow.config.fields import choice, known_classes, parse_duration_ms, read_section
from stratiflow.records import class_key

__all__ = [
    "DURATIONS",
    "SAMPLING_ORDERS",
    "SAMPLING_STRATEGIES",
    "USED_BY",
    "SamplingOrder",
    "SamplingSettings",
    "SamplingStrategy",
    "parse_sampling",
]

SamplingStrategy = Literal["none", "uniform", "balanced", "target", "undersample", "oversample"]
SamplingOrder = Literal["event_time", "arrival"]
SAMPLING_STRATEGIES: tuple[str, ...] = get_args(SamplingStrategy)
SAMPLING_ORDERS: tuple[str, ...] = get_args(SamplingOrder)
#: The fields given as durations.
DURATIONS = (
    "window",
    "max_out_of_orderness",
    "allowed_lateness",
    "idle_timeout",
    "watermark_interval",
)


#: The strategy-specific fields and the strategies that use them (each allocation class
#: in :mod:`stratiflow.sampling.allocation` declares the same in its ``uses``); any other
#: strategy refuses them when they differ from their default, with the phrase given here.
USED_BY: dict[str, tuple[tuple[SamplingStrategy, ...], str]] = {
    "rate": (("uniform",), "uses a rate"),
    "budget": (("balanced", "target"), "use a budget"),
    "decay": (("balanced", "target"), "use decay"),
    "oversample": (
        ("balanced", "target"),
        "top up short classes (use strategy: oversample to grow every class)",
    ),
    "synthetic": (("oversample",), "makes synthetic examples"),
    "target": (("target",), "uses a class mix"),
}


@dataclass(frozen=True)
class SamplingSettings:
    """How the training stream is sampled per class (see :mod:`stratiflow.sampling.windows`).

    Attributes
    ----------
    strategy
        ``none`` (no sampling: the model learns every labelled event), or how each window's
        training examples are split over the classes: ``uniform``, ``balanced``,
        ``target``, ``undersample`` or ``oversample``
        (:mod:`stratiflow.sampling.allocation`).
    """

    strategy: SamplingStrategy = "none"
    #: Event-time tumbling window length, in ms (YAML accepts ``10s``).
    window: int = 10_000
    #: Watermark bound: how far out of order events may arrive and still be on time.
    max_out_of_orderness: int = 1_000
    #: Extra time a window stays open after the watermark passes its end.
    allowed_lateness: int = 0
    #: A source split without events for this long stops holding the watermark back.
    idle_timeout: int = 10_000
    #: How often watermarks are emitted (Flink's auto-watermark interval).
    watermark_interval: int = 100
    #: ``event_time``: an event is predicted by the model that learned every window
    #: closed before its time (reproducible at any speed; waits for the watermark).
    #: ``arrival``: predicted at once by whatever the model has learned so far.
    order: SamplingOrder = "event_time"
    #: Reservoir size per (model key, class, window); bounds the sampler's memory.
    capacity: int = 1_000
    #: ``uniform``: fraction of each class kept.
    rate: float = 0.1
    #: ``balanced``/``target``: training examples per window and model key.
    budget: int = 0
    #: ``balanced``/``target``: top up a short class by drawing with replacement.
    oversample: bool = False
    #: ``oversample``: interpolate new minority examples instead of duplicating.
    synthetic: bool = False
    #: ``synthetic``: same-class neighbours an interpolation partner is drawn from.
    neighbours: int = 5
    #: ``target``: the class mix, ``{class: share}``; shares sum to 1.
    target: Mapping[str, float] = field(default_factory=dict)
    #: ``balanced``/``target``: weight of the past in the per-class frequency
    #: estimate (0 = use only the current window).
    decay: float = 0.0
    #: The classes the job expects; when given, ``target`` may only name these.
    classes: tuple[str, ...] = ()


def parse_sampling(raw: dict[str, Any]) -> SamplingSettings:
    """The ``sampling`` section, checked (strategy and the fields it uses together)."""
    sampling = read_section(raw, "sampling", SamplingSettings, durations=DURATIONS)
    choice(sampling.strategy, SAMPLING_STRATEGIES, "sampling.strategy")
    choice(sampling.order, SAMPLING_ORDERS, "sampling.order")
    durations = {
        name: parse_duration_ms(getattr(sampling, name), f"sampling.{name}") for name in DURATIONS
    }
    target = sampling.target
    if not isinstance(target, Mapping):
        raise ConfigError("sampling.target", "must be a mapping {class: share}")
    classes = sampling.classes
    if not isinstance(classes, list | tuple):
        raise ConfigError("sampling.classes", "must be a list of class labels")
    sampling = replace(
        sampling,
        **durations,
        target={class_key(k): v for k, v in target.items()},
        classes=tuple(class_key(c) for c in classes),
    )
    strategy = sampling.strategy
    if sampling.window < 1:
        raise ConfigError("sampling.window", "must be at least 1ms")
    if sampling.watermark_interval < 1:
        raise ConfigError("sampling.watermark_interval", "must be at least 1ms")
    if sampling.capacity < 1:
        raise ConfigError("sampling.capacity", "must be at least 1")
    if sampling.neighbours < 1:
        raise ConfigError("sampling.neighbours", "must be at least 1")
    if not 0.0 < sampling.rate <= 1.0:
        raise ConfigError("sampling.rate", f"must be in (0, 1], got {sampling.rate!r}")
    if not 0.0 <= sampling.decay < 1.0:
        raise ConfigError("sampling.decay", f"must be in [0, 1), got {sampling.decay!r}")
    defaults = SamplingSettings()
    for name, (users, what) in USED_BY.items():
        if strategy not in users and getattr(sampling, name) != getattr(defaults, name):
            raise ConfigError(
                f"sampling.{name}", f"only {' and '.join(users)} {what}, not {strategy}"
            )
    if strategy in USED_BY["budget"][0] and sampling.budget <= 0:
        raise ConfigError("sampling.budget", f"{strategy} needs a budget > 0 examples per window")
    if strategy == "target":
        if not target:
            raise ConfigError("sampling.target", "target needs a class mix {class: share}")
        for name, share in sampling.target.items():
            if isinstance(share, bool) or not isinstance(share, int | float) or share < 0:
                raise ConfigError(f"sampling.target.{name}", f"must be a share >= 0, got {share!r}")
        total = sum(sampling.target.values())
        if abs(total - 1.0) > 1e-6:
            raise ConfigError("sampling.target", f"shares must sum to 1, they sum to {total:g}")
        if sampling.classes:
            known_classes(sampling.target, sampling.classes, "sampling.classes lists")
    return sampling
