"""Active learning with a label budget, one :class:`LabelRequester` per model key.

After Žliobaitė, Bifet, Pfahringer and Holmes (2014), *Active learning with drifting
streaming data*: a :class:`RequestStrategy` says whether it would ask for an event's
label, looking at the model's posterior (``predict_proba_one``); a :class:`LabelBudget`
caps the requests over every sliding window of events. The uncertainty score is
``1 - max(proba.values())``; an empty ``proba`` (a model with no answer yet) scores 1.0
and is always wanted. State is plain data (the seeded ``random.Random`` included), so
a requester pickles with the key's state.

>>> requester = requester_for("variable_uncertainty", budget=0.1, window=100, seed=0)
>>> requester.decide({"a": 0.6, "b": 0.4})
Request(score=0.4, strategy='variable_uncertainty')
>>> requester.strategy.theta
0.99
>>> requester.decide({"a": 0.995, "b": 0.005}) is None
True
>>> requester.summary()["requested"], requester.summary()["limit"]
(1, 10)
>>> requester_for("none", budget=0.1, window=100, seed=0) is None
True
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from stratiflow.config.curation import ACTIVE_STRATEGIES, ActiveSettings, ActiveStrategy
from stratiflow.records import Label

__all__ = [
    "ACTIVE_STRATEGIES",
    "REQUEST_STRATEGIES",
    "ActiveStrategy",
    "LabelBudget",
    "LabelRequester",
    "RandomRequests",
    "Request",
    "RequestStrategy",
    "UncertaintyRequests",
    "VariableUncertaintyRequests",
    "requester_for",
    "requester_from",
    "uncertainty",
]

#: A model's posterior for one event: class -> probability.
Proba = Mapping[Label, float]


def _check_budget(budget: float) -> None:
    if not 0.0 <= budget <= 1.0:
        raise ValueError(f"budget must be in [0, 1], got {budget!r}")


def uncertainty(proba: Proba) -> float:
    """The uncertainty score of a posterior: ``1 - max(proba.values())``, in [0, 1].

    Parameters
    ----------
    proba
        Class -> probability; empty when the model has no answer.

    Returns
    -------
    float
        0.0 when the model is sure, 1.0 for an empty ``proba``.

    Examples
    --------
    >>> uncertainty({"a": 0.75, "b": 0.25}), uncertainty({})
    (0.25, 1.0)
    """
    if not proba:
        return 1.0
    return min(1.0, max(0.0, 1.0 - max(proba.values())))


@dataclass(frozen=True, slots=True)
class Request:
    """A label request for one event.

    Attributes
    ----------
    score
        The uncertainty score of the event (``1 - max posterior``).
    strategy
        The name of the strategy that asked.
    """

    score: float
    strategy: str


@dataclass
class RequestStrategy:
    """Whether to ask for an event's label, from the model's posterior.

    Subclasses set :attr:`name` and implement :meth:`asks`; :meth:`wants` handles the
    empty posterior and the score. A stateful strategy adapts in :meth:`update`.

    Parameters
    ----------
    budget
        The label budget, in [0, 1].
    """

    name: ClassVar[str]

    budget: float

    def __post_init__(self) -> None:
        _check_budget(self.budget)

    @classmethod
    def configured(cls, settings: ActiveSettings) -> RequestStrategy:
        """The strategy with the ``active`` section's parameters.

        Parameters
        ----------
        settings
            The ``active`` section.

        Returns
        -------
        RequestStrategy
            A strategy in its initial state.
        """
        return cls(settings.budget)

    def wants(self, proba: Proba, rng: random.Random) -> tuple[bool, float]:
        """Whether this strategy would ask for the label, and the uncertainty score.

        Parameters
        ----------
        proba
            The model's posterior for the event (empty: no answer, always wanted).
        rng
            Seeded; the only randomness a strategy uses.

        Returns
        -------
        tuple[bool, float]
            Wanted, and ``1 - max(proba.values())`` (1.0 for an empty ``proba``).
        """
        if not proba:
            return True, 1.0
        return self.asks(max(proba.values()), rng), uncertainty(proba)

    def asks(self, top: float, rng: random.Random) -> bool:
        """Whether to ask when the largest posterior is ``top`` (never called when empty)."""
        raise NotImplementedError

    def update(self, proba: Proba, requested: bool) -> None:
        """Adapt after an event at which the budget allowed a request (default: nothing).

        Parameters
        ----------
        proba
            The event's posterior, as given to :meth:`wants`.
        requested
            Whether the label was requested.
        """


@dataclass
class RandomRequests(RequestStrategy):
    """Ask with probability ``budget``, whatever the posterior (the baseline).

    Parameters
    ----------
    budget
        The share of events to ask for, in [0, 1].
    """

    name: ClassVar[str] = "random"

    def asks(self, top: float, rng: random.Random) -> bool:
        return rng.random() < self.budget


@dataclass
class UncertaintyRequests(RequestStrategy):
    """Fixed uncertainty: ask when the largest posterior is below a fixed threshold.

    Deterministic (the ``rng`` is not used).

    Parameters
    ----------
    budget
        The label budget, in [0, 1]; sets the default threshold.
    threshold
        Ask when ``max(proba.values()) < threshold``. Default ``1 - budget`` (0.9 for a
        budget of 0.1): ask when the score ``1 - max posterior`` exceeds the budget,
        i.e. when a calibrated model expects to be wrong more often than the share of
        events that can be labelled.

    Attributes
    ----------
    theta
        The threshold in use.
    """

    name: ClassVar[str] = "uncertainty"

    threshold: float | None = None
    theta: float = field(init=False)

    @classmethod
    def configured(cls, settings: ActiveSettings) -> RequestStrategy:
        """With ``active.threshold`` (``None``: the default from the budget)."""
        return cls(settings.budget, settings.threshold)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.theta = 1.0 - self.budget if self.threshold is None else self.threshold

    def asks(self, top: float, rng: random.Random) -> bool:
        return top < self.theta


@dataclass
class VariableUncertaintyRequests(RequestStrategy):
    """Variable uncertainty (Žliobaitė et al. 2014): a threshold that follows the model.

    Ask when the largest posterior is below ``theta``; after a request
    ``theta <- theta * (1 - step)``, after an event not asked for (the budget allowing)
    ``theta <- theta * (1 + step)``. A model that grows confident thus still gets
    labels now and then. Events with an empty posterior and events the budget refuses
    leave ``theta`` alone.

    Parameters
    ----------
    budget
        The label budget, in [0, 1] (recorded; the :class:`LabelBudget` enforces it).
    step
        The adjusting step ``s``, in (0, 1).
    initial_threshold
        ``theta`` at the start (the paper's 1.0).

    Attributes
    ----------
    theta
        The current threshold.
    """

    name: ClassVar[str] = "variable_uncertainty"

    step: float = 0.01
    initial_threshold: float = 1.0
    theta: float = field(init=False)

    @classmethod
    def configured(cls, settings: ActiveSettings) -> RequestStrategy:
        """With ``active.step``."""
        return cls(settings.budget, settings.step)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.step < 1.0:
            raise ValueError(f"step must be in (0, 1), got {self.step!r}")
        if self.initial_threshold <= 0.0:
            raise ValueError(f"initial_threshold must be > 0, got {self.initial_threshold!r}")
        self.theta = self.initial_threshold

    def asks(self, top: float, rng: random.Random) -> bool:
        return top < self.theta

    def update(self, proba: Proba, requested: bool) -> None:
        if not proba:
            return
        self.theta *= (1.0 - self.step) if requested else (1.0 + self.step)


#: Strategy name -> class, for :func:`requester_for`.
REQUEST_STRATEGIES: dict[str, type[RequestStrategy]] = {
    cls.name: cls for cls in (RandomRequests, UncertaintyRequests, VariableUncertaintyRequests)
}


@dataclass
class LabelBudget:
    """A hard label budget: at most :attr:`limit` requests over any ``window`` events.

    Call :meth:`allows` before an event's decision and :meth:`tick` once per event.

    Parameters
    ----------
    budget
        The share of events that may be labelled, in [0, 1].
    window
        The sliding window, in events (>= 1).

    Examples
    --------
    >>> b = LabelBudget(0.2, window=5)
    >>> for _ in range(3):
    ...     allowed = b.allows()
    ...     b.tick(allowed)
    >>> b.limit, b.used, b.allows()
    (1, 1, False)
    """

    budget: float
    window: int
    events: int = field(default=0, init=False)
    #: Positions (0-based event counts) of the requests among the last ``window`` events.
    positions: deque[int] = field(default_factory=deque, init=False)

    def __post_init__(self) -> None:
        _check_budget(self.budget)
        if self.window < 1:
            raise ValueError(f"window must be >= 1, got {self.window!r}")

    @property
    def limit(self) -> int:
        """Requests allowed per window: ``floor(budget * window)`` (0: never)."""
        return math.floor(self.budget * self.window + 1e-9)

    @property
    def used(self) -> int:
        """Requests among the last ``window`` events counted."""
        return len(self.positions)

    def allows(self) -> bool:
        """Whether a request at the current event keeps every window within the limit.

        Returns
        -------
        bool
            True when fewer than :attr:`limit` requests fell in the ``window - 1``
            events before this one.
        """
        used = len(self.positions)
        if used and self.positions[0] <= self.events - self.window:
            used -= 1  # falls out of the window that ends at the current event
        return used < self.limit

    def tick(self, requested: bool) -> None:
        """Count the current event, and whether its label was requested.

        Parameters
        ----------
        requested
            Whether the label was requested (refused if :meth:`allows` is False).
        """
        if requested:
            if not self.allows():
                raise ValueError("a request over the label budget")
            self.positions.append(self.events)
        self.events += 1
        while self.positions and self.positions[0] < self.events - self.window:
            self.positions.popleft()


@dataclass
class LabelRequester:
    """Decides, event by event, which labels one model key asks for.

    Parameters
    ----------
    strategy
        Whether a label is wanted.
    budget
        The hard limit on requests.
    seed
        Seeds :attr:`rng`, the strategy's only randomness.
    simulate
        ``active.simulate``: decide on labelled events (the model learns only the labels
        it asked for) instead of unlabelled ones.

    Attributes
    ----------
    seen
        Events decided.
    requested
        Labels requested.
    refused_by_budget
        Events the strategy wanted but the budget refused.
    """

    strategy: RequestStrategy
    budget: LabelBudget
    seed: int = 0
    simulate: bool = False
    rng: random.Random = field(init=False, repr=False, compare=False)
    seen: int = field(default=0, init=False)
    requested: int = field(default=0, init=False)
    refused_by_budget: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def decide(self, proba: Proba) -> Request | None:
        """Whether to request the label of one event (call once per event considered).

        Parameters
        ----------
        proba
            The model's posterior for the event (empty: no answer yet).

        Returns
        -------
        Request | None
            The request, or None (not wanted, or over the budget).
        """
        wanted, score = self.strategy.wants(proba, self.rng)
        allowed = self.budget.allows()
        request = wanted and allowed
        if allowed:
            self.strategy.update(proba, request)
        self.budget.tick(request)
        self.seen += 1
        self.requested += request
        self.refused_by_budget += wanted and not allowed
        return Request(score, self.strategy.name) if request else None

    def summary(self) -> dict[str, str | int | float]:
        """Counts for a metrics record.

        Returns
        -------
        dict[str, str | int | float]
            ``strategy``, ``budget``, ``budget_window``, ``seen``, ``requested``,
            ``refused_by_budget``, ``used_in_window`` and ``limit``.
        """
        return {
            "strategy": self.strategy.name,
            "budget": self.budget.budget,
            "budget_window": self.budget.window,
            "seen": self.seen,
            "requested": self.requested,
            "refused_by_budget": self.refused_by_budget,
            "used_in_window": self.budget.used,
            "limit": self.budget.limit,
        }


def requester_for(
    strategy: ActiveStrategy, budget: float, window: int, seed: int
) -> LabelRequester | None:
    """The requester a configuration names, with the strategy's defaults.

    Parameters
    ----------
    strategy
        One of :data:`ACTIVE_STRATEGIES`; ``"none"`` means no active learning.
    budget
        The share of events that may be labelled, in [0, 1].
    window
        The budget's sliding window, in events.
    seed
        Seeds the requester's ``random.Random``.

    Returns
    -------
    LabelRequester | None
        None for ``"none"``.

    Raises
    ------
    ValueError
        For an unknown strategy name.
    """
    if strategy == "none":
        return None
    cls = REQUEST_STRATEGIES.get(strategy)
    if cls is None:
        raise ValueError(f"unknown active strategy {strategy!r}; one of {ACTIVE_STRATEGIES}")
    return LabelRequester(cls(budget), LabelBudget(budget, window), seed)


def requester_from(settings: ActiveSettings, seed: int) -> LabelRequester | None:
    """The requester of an ``active`` section (``None`` for ``strategy: none``).

    Parameters
    ----------
    settings
        The ``active`` section.
    seed
        Seeds the requester's ``random.Random`` (derive one per model key).

    Returns
    -------
    LabelRequester | None
        A requester in its initial state.

    Examples
    --------
    >>> from stratiflow.config.curation import ActiveSettings
    >>> requester = requester_from(ActiveSettings("uncertainty", budget=0.2), seed=1)
    >>> requester.strategy.theta, requester.budget.limit
    (0.8, 200)
    """
    if settings.strategy == "none":
        return None
    strategy = REQUEST_STRATEGIES[settings.strategy].configured(settings)
    budget = LabelBudget(settings.budget, settings.budget_window)
    return LabelRequester(strategy, budget, seed, settings.simulate)
