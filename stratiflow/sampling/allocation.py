"""How a window's training examples are split over the classes: one class per strategy.

Each ``sampling.strategy`` (other than ``none``) is an :class:`Allocation`; stage 2
asks the key's strategy for a window's :class:`Quota` per class and draws the
examples. Strategies hold only their settings, use only the seeded ``rng`` they are
given, and look at classes in sorted order, so a plan depends on the window's
counts and the seed, never on arrival order (``tests/unit/sampling/
test_allocation_contract.py`` checks every registered strategy for it).

>>> import random
>>> from stratiflow.config import SamplingSettings
>>> s = SamplingSettings(strategy="balanced", budget=10)
>>> plan = allocation_for(s).plan({"a": 90, "b": 3}, {"a": 90, "b": 3}, random.Random(0))
>>> plan["a"], plan["b"]
(Quota(wanted=5, real=5, extra=0), Quota(wanted=5, real=3, extra=0))
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from stratiflow.config import SamplingSettings

__all__ = [
    "ALLOCATIONS",
    "Allocation",
    "Balanced",
    "Oversample",
    "Quota",
    "Target",
    "Undersample",
    "Uniform",
    "allocation_for",
    "plan_quotas",
]

#: A class whose decayed per-window count is at least this still counts as present.
ACTIVE_PRIOR = 0.5


@dataclass(frozen=True, slots=True)
class Quota:
    """How many examples a class gives: real ones, plus drawn extras.

    Attributes
    ----------
    wanted
        Examples the strategy wants from the class.
    real
        Examples taken from the class's reservoir (at most what it holds).
    extra
        Examples drawn on top: duplicates, or interpolated ones with ``synthetic``.
    """

    wanted: int
    real: int
    extra: int = 0


class Allocation:
    """A sampling strategy: how many examples each class of a window should give.

    Subclasses set :attr:`name` (the ``sampling.strategy`` value) and :attr:`uses`,
    and implement :meth:`wanted`; :meth:`plan` turns that into quotas (:meth:`quota`:
    what the reservoir holds, unless the strategy draws extras).

    Parameters
    ----------
    settings
        The ``sampling`` section (:attr:`uses` lists the strategy-specific fields
        that apply).
    """

    name: ClassVar[str]
    #: The strategy-specific settings it reads (``stratiflow.config.sampling.USED_BY``
    #: refuses them for every other strategy).
    uses: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, settings: SamplingSettings) -> None:
        self.settings = settings

    def plan(
        self,
        seen: Mapping[str, int],
        available: Mapping[str, int],
        rng: random.Random,
        priors: Mapping[str, float] | None = None,
    ) -> dict[str, Quota]:
        """One window's quota per class.

        Parameters
        ----------
        seen
            Events per class that fell in the window (on time).
        available
            Events per class held in the reservoir (``min(seen, capacity)``).
        rng
            Seeded; used for rounding and remainders, so allocations are exact on
            average and reproducible.
        priors
            Decayed per-window class counts (only with ``decay``), already updated
            with this window.
        """
        classes = sorted(c for c in seen if seen[c] > 0)
        if not classes:
            return {}
        wanted = self.wanted(classes, seen, available, rng, priors)
        return {c: self.quota(wanted[c], available[c]) for c in classes}

    def wanted(
        self,
        classes: list[str],
        seen: Mapping[str, int],
        available: Mapping[str, int],
        rng: random.Random,
        priors: Mapping[str, float] | None,
    ) -> dict[str, int]:
        """Examples wanted per class (``classes``: those seen, sorted)."""
        raise NotImplementedError

    def quota(self, wanted: int, available: int) -> Quota:
        """The real examples a class gives toward ``wanted`` (no drawn extras)."""
        return Quota(wanted, min(wanted, available))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Allocation)
            and type(other) is type(self)
            and (other.settings == self.settings)
        )

    def __hash__(self) -> int:
        return hash((type(self), self.settings))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Uniform(Allocation):
    """``uniform``: a fraction ``rate`` of each class."""

    name = "uniform"
    uses = frozenset({"rate"})

    def wanted(
        self,
        classes: list[str],
        seen: Mapping[str, int],
        available: Mapping[str, int],
        rng: random.Random,
        priors: Mapping[str, float] | None,
    ) -> dict[str, int]:
        return {c: _stochastic_round(self.settings.rate * seen[c], rng) for c in classes}


class Undersample(Allocation):
    """``undersample``: every class down to the smallest one's count."""

    name = "undersample"

    def wanted(
        self,
        classes: list[str],
        seen: Mapping[str, int],
        available: Mapping[str, int],
        rng: random.Random,
        priors: Mapping[str, float] | None,
    ) -> dict[str, int]:
        smallest = min(available[c] for c in classes)
        return dict.fromkeys(classes, smallest)


class Oversample(Allocation):
    """``oversample``: every class up to the largest one's count, the rest drawn."""

    name = "oversample"
    uses = frozenset({"synthetic"})

    def wanted(
        self,
        classes: list[str],
        seen: Mapping[str, int],
        available: Mapping[str, int],
        rng: random.Random,
        priors: Mapping[str, float] | None,
    ) -> dict[str, int]:
        largest = max(available[c] for c in classes)
        return dict.fromkeys(classes, largest)

    def quota(self, wanted: int, available: int) -> Quota:
        return Quota(wanted, available, wanted - available)


class _Shares(Allocation):
    """A ``budget`` per window split by class shares (with ``decay``: by usual counts)."""

    def shares(self, classes: list[str], priors: Mapping[str, float] | None) -> dict[str, float]:
        raise NotImplementedError

    def wanted(
        self,
        classes: list[str],
        seen: Mapping[str, int],
        available: Mapping[str, int],
        rng: random.Random,
        priors: Mapping[str, float] | None,
    ) -> dict[str, int]:
        shares = self.shares(classes, priors)
        budget = self.settings.budget
        if priors:
            # Scale by how many of the class this window holds relative to its
            # usual count, so the expected trained mix follows the shares while
            # one window's surplus or shortage of a class is not over-corrected.
            return {
                c: _stochastic_round(budget * shares[c] * seen[c] / priors[c], rng) for c in classes
            }
        return _split(budget, {c: shares[c] for c in classes}, rng)

    def quota(self, wanted: int, available: int) -> Quota:
        """With ``oversample``, a short class is topped up with drawn extras."""
        real = min(wanted, available)
        extra = wanted - real if self.settings.oversample and available else 0
        return Quota(wanted, real, extra)


class Balanced(_Shares):
    """``balanced``: the budget split evenly over the classes present."""

    name = "balanced"
    uses = frozenset({"budget", "decay", "oversample"})

    def shares(self, classes: list[str], priors: Mapping[str, float] | None) -> dict[str, float]:
        active = set(classes)
        if priors:
            active |= {c for c, p in priors.items() if p >= ACTIVE_PRIOR}
        return {c: 1.0 / len(active) for c in active}


class Target(_Shares):
    """``target``: the budget split by the configured class mix ``target``."""

    name = "target"
    uses = frozenset({"budget", "decay", "oversample", "target"})

    def shares(self, classes: list[str], priors: Mapping[str, float] | None) -> dict[str, float]:
        return {c: float(self.settings.target.get(c, 0.0)) for c in classes}


#: Every strategy by its ``sampling.strategy`` name.
ALLOCATIONS: dict[str, type[Allocation]] = {
    cls.name: cls for cls in (Uniform, Undersample, Oversample, Balanced, Target)
}


def allocation_for(settings: SamplingSettings) -> Allocation:
    """The strategy ``settings.strategy`` names.

    Parameters
    ----------
    settings
        The ``sampling`` section.

    Returns
    -------
    Allocation
        The strategy, holding ``settings``.

    Raises
    ------
    ValueError
        If the strategy allocates nothing (``none``).

    Examples
    --------
    >>> from stratiflow.config import SamplingSettings
    >>> allocation_for(SamplingSettings(strategy="undersample"))
    Undersample()
    >>> allocation_for(SamplingSettings())
    Traceback (most recent call last):
    ...
    ValueError: no allocation for strategy 'none'
    """
    cls = ALLOCATIONS.get(settings.strategy)
    if cls is None:
        raise ValueError(f"no allocation for strategy {settings.strategy!r}")
    return cls(settings)


def plan_quotas(
    settings: SamplingSettings,
    seen: Mapping[str, int],
    available: Mapping[str, int],
    rng: random.Random,
    priors: Mapping[str, float] | None = None,
) -> dict[str, Quota]:
    """One window's quota per class by ``settings.strategy`` (see :meth:`Allocation.plan`).

    Parameters
    ----------
    settings
        The ``sampling`` section (any strategy but ``none``).
    seen
        Events per class that fell in the window (on time).
    available
        Events per class held in the reservoir (``min(seen, capacity)``).
    rng
        Seeded; used for rounding and remainders.
    priors
        Decayed per-window class counts (only with ``decay``), already updated with
        this window.

    Returns
    -------
    dict[str, Quota]
        The quota of each class seen in the window.

    Raises
    ------
    ValueError
        If ``settings.strategy`` is ``none``.

    Examples
    --------
    >>> import random
    >>> from stratiflow.config import SamplingSettings
    >>> plan_quotas(SamplingSettings(strategy="oversample"), {"a": 90, "b": 3},
    ...             {"a": 50, "b": 3}, random.Random(0))
    {'a': Quota(wanted=50, real=50, extra=0), 'b': Quota(wanted=50, real=3, extra=47)}
    """
    return allocation_for(settings).plan(seen, available, rng, priors)


def _stochastic_round(value: float, rng: random.Random) -> int:
    """Round down or up with the odds that make the expectation exact."""
    low = math.floor(value)
    return low + (1 if rng.random() < value - low else 0)


def _split(total: int, shares: Mapping[str, float], rng: random.Random) -> dict[str, int]:
    """Split ``total`` by ``shares``, each class's count exact in expectation.

    Every class gets the floor of its exact quota; the fractional parts are
    resolved by systematic sampling (one seeded offset), so a class gets one
    more with probability equal to its fractional part and the parts' total
    is honoured to within one.

    >>> _split(10, {"a": 0.5, "b": 0.5}, random.Random(0))
    {'a': 5, 'b': 5}
    >>> sum(_split(10, {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}, random.Random(0)).values())
    10
    """
    exact = {c: total * s for c, s in shares.items()}
    counts = {c: math.floor(v) for c, v in exact.items()}
    offset = rng.random()
    cumulative = 0.0
    for c in sorted(exact):
        before = cumulative
        cumulative += exact[c] - counts[c]
        # one more if a point offset + k (k integer) falls in [before, cumulative)
        counts[c] += math.ceil(cumulative - offset - 1e-12) - math.ceil(before - offset - 1e-12)
    return counts
