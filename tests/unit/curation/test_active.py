"""Active learning with a label budget: the contract every strategy is checked against,
the budget as a hard limit, and each strategy's own rule."""

from __future__ import annotations

import math
import pickle
import random
from itertools import accumulate

import pytest

from stratiflow.curation import (
    ACTIVE_STRATEGIES,
    REQUEST_STRATEGIES,
    LabelBudget,
    LabelRequester,
    RandomRequests,
    Request,
    RequestStrategy,
    UncertaintyRequests,
    VariableUncertaintyRequests,
    requester_for,
    uncertainty,
)

STRATEGIES = sorted(REQUEST_STRATEGIES)
EVENTS = 20_000


def probas(n: int, seed: int, classes: int = 3) -> list[dict[str, float]]:
    """``n`` random posteriors over ``classes`` classes, every 50th one empty."""
    rng = random.Random(seed)
    out: list[dict[str, float]] = []
    for i in range(n):
        if i % 50 == 0:
            out.append({})
            continue
        weights = [rng.random() ** 4 for _ in range(classes)]
        total = sum(weights)
        out.append({f"c{k}": w / total for k, w in enumerate(weights)})
    return out


def decisions(requester: LabelRequester, stream: list[dict[str, float]]) -> list[Request | None]:
    return [requester.decide(p) for p in stream]


def test_every_configurable_strategy_has_a_class() -> None:
    assert set(ACTIVE_STRATEGIES) == {"none", *REQUEST_STRATEGIES}
    for name, cls in REQUEST_STRATEGIES.items():
        assert issubclass(cls, RequestStrategy) and cls.name == name


# --- the contract, for every strategy ------------------------------------------------------


@pytest.mark.parametrize("name", STRATEGIES)
def test_a_requester_pickled_mid_stream_decides_the_same(name: str) -> None:
    stream = probas(3000, seed=1)
    requester = requester_for(name, budget=0.2, window=50, seed=7)  # type: ignore[arg-type]
    assert requester is not None
    decisions(requester, stream[:1500])
    copy = pickle.loads(pickle.dumps(requester))
    assert copy == requester
    assert decisions(copy, stream[1500:]) == decisions(requester, stream[1500:])
    assert copy.summary() == requester.summary()


@pytest.mark.parametrize("name", STRATEGIES)
def test_a_strategy_pickled_mid_stream_wants_the_same(name: str) -> None:
    strategy, rng = REQUEST_STRATEGIES[name](0.3), random.Random(3)
    stream = probas(2000, seed=2)

    def run(s: RequestStrategy, r: random.Random, part: list[dict[str, float]]) -> list:
        out = []
        for p in part:
            wanted, score = s.wants(p, r)
            s.update(p, wanted)
            out.append((wanted, score))
        return out

    run(strategy, rng, stream[:1000])
    copy, rng_copy = pickle.loads(pickle.dumps((strategy, rng)))
    assert run(copy, rng_copy, stream[1000:]) == run(strategy, rng, stream[1000:])


@pytest.mark.parametrize("name", STRATEGIES)
def test_the_same_seed_gives_the_same_decisions(name: str) -> None:
    stream = probas(3000, seed=4)
    runs = [
        decisions(requester_for(name, budget=0.1, window=100, seed=11), stream)  # type: ignore[arg-type]
        for _ in range(2)
    ]
    assert runs[0] == runs[1]
    assert any(d is not None for d in runs[0])


@pytest.mark.parametrize("name", STRATEGIES)
def test_an_empty_posterior_is_always_wanted_and_scores_in_0_1(name: str) -> None:
    strategy, rng = REQUEST_STRATEGIES[name](0.0), random.Random(0)
    for _ in range(100):
        assert strategy.wants({}, rng) == (True, 1.0)
    for p in probas(2000, seed=5):
        wanted, score = strategy.wants(p, rng)
        assert 0.0 <= score <= 1.0
        assert score == pytest.approx(1.0 - max(p.values()) if p else 1.0)
        if not p:
            assert wanted


def test_the_score_stays_in_0_1_for_unnormalised_posteriors() -> None:
    assert uncertainty({"a": 1.2}) == 0.0
    assert uncertainty({"a": -0.1}) == 1.0
    assert uncertainty({"a": 1.0, "b": 0.0}) == 0.0


# --- the budget is a hard limit ------------------------------------------------------------


def assert_within_every_window(requests: list[bool], window: int, limit: int) -> None:
    prefix = [0, *accumulate(int(r) for r in requests)]
    worst = max(prefix[i + window] - prefix[i] for i in range(len(requests) - window + 1))
    assert worst <= limit


@pytest.mark.parametrize(
    "strategy",
    [RandomRequests(0.5), UncertaintyRequests(0.1), VariableUncertaintyRequests(0.1)],
    ids=lambda s: s.name,
)
def test_no_window_of_events_gets_more_requests_than_the_budget(
    strategy: RequestStrategy,
) -> None:
    requester = LabelRequester(strategy, LabelBudget(0.1, window=100), seed=0)
    requests = [d is not None for d in decisions(requester, probas(EVENTS, seed=6, classes=2))]
    assert_within_every_window(requests, window=100, limit=10)
    assert requester.requested == sum(requests)
    assert requester.refused_by_budget > 0  # the limit did bind


def test_a_strategy_that_always_wants_gets_the_whole_budget_and_no_more() -> None:
    requester = LabelRequester(UncertaintyRequests(0.1), LabelBudget(0.1, window=100), seed=0)
    requests = [d is not None for d in decisions(requester, [{"a": 0.5, "b": 0.5}] * EVENTS)]
    assert_within_every_window(requests, window=100, limit=10)
    assert sum(requests) / EVENTS > 0.09
    assert requester.refused_by_budget == EVENTS - requester.requested
    summary = requester.summary()
    assert summary == {
        "strategy": "uncertainty",
        "budget": 0.1,
        "budget_window": 100,
        "seen": EVENTS,
        "requested": sum(requests),
        "refused_by_budget": EVENTS - sum(requests),
        "used_in_window": sum(requests[-100:]),
        "limit": 10,
    }


def test_the_budget_limit_is_the_floor_of_budget_times_window() -> None:
    assert LabelBudget(0.1, 100).limit == 10
    assert LabelBudget(0.29, 100).limit == 29  # 0.29 * 100 == 28.999999999999996
    assert LabelBudget(0.015, 100).limit == 1
    assert LabelBudget(0.005, 100).limit == 0
    assert LabelBudget(1.0, 7).limit == 7


def test_a_budget_below_one_request_per_window_never_allows() -> None:
    budget = LabelBudget(0.005, 100)
    for _ in range(1000):
        assert not budget.allows()
        budget.tick(False)
    with pytest.raises(ValueError, match="over the label budget"):
        budget.tick(True)


def test_a_request_leaves_the_budget_window_events_later() -> None:
    budget = LabelBudget(0.01, window=100)  # one request per 100 events
    budget.tick(True)
    for _ in range(98):
        assert not budget.allows()
        budget.tick(False)
    assert budget.used == 1 and not budget.allows()
    budget.tick(False)  # the request is now the oldest of the last 100 events
    assert budget.used == 1 and budget.allows()
    budget.tick(True)
    assert budget.used == 1 and not budget.allows()


@pytest.mark.parametrize("bad", [dict(budget=-0.1, window=10), dict(budget=1.5, window=10)])
def test_a_budget_outside_0_1_is_refused(bad: dict) -> None:
    with pytest.raises(ValueError):
        LabelBudget(**bad)
    with pytest.raises(ValueError):
        requester_for("random", bad["budget"], bad["window"], seed=0)


def test_a_window_below_one_is_refused() -> None:
    with pytest.raises(ValueError):
        LabelBudget(0.1, 0)


# --- random ----------------------------------------------------------------------------------


def random_requests(seed: int) -> list[bool]:
    strategy, rng = RandomRequests(0.1), random.Random(seed)
    return [strategy.wants({"a": 0.99, "b": 0.01}, rng)[0] for _ in range(EVENTS)]


def test_random_requests_ask_for_the_budget_share_reproducibly() -> None:
    asked = random_requests(seed=1)
    assert abs(sum(asked) / EVENTS - 0.1) < 0.01
    assert random_requests(seed=1) == asked
    assert random_requests(seed=2) != asked


# --- fixed uncertainty -------------------------------------------------------------------


def test_the_default_threshold_is_one_minus_the_budget() -> None:
    assert UncertaintyRequests(0.1).theta == pytest.approx(0.9)
    assert UncertaintyRequests(0.25).theta == 0.75
    assert UncertaintyRequests(0.1, threshold=0.6).theta == 0.6


@pytest.mark.parametrize("threshold", [0.5, 0.7, 0.9, 0.95])
def test_uncertainty_asks_exactly_when_the_top_posterior_is_below_the_threshold(
    threshold: float,
) -> None:
    strategy, rng = UncertaintyRequests(0.1, threshold=threshold), random.Random(0)
    tops = [
        threshold,
        math.nextafter(threshold, 0.0),
        math.nextafter(threshold, 1.0),
        *(k / 200 for k in range(40, 201)),
    ]
    for top in tops:
        for proba in ({"a": top, "b": 1.0 - top}, {"a": (1 - top) / 2, "b": top, "c": 0.0}):
            expected = max(proba.values()) < threshold
            assert strategy.wants(proba, rng)[0] == expected, (top, proba)
        assert strategy.wants({"a": top, "b": 0.0}, rng)[0] == (top < threshold)
    wanted = [strategy.wants(p, rng)[0] for p in probas(2000, seed=8)]
    assert wanted == [not p or max(p.values()) < threshold for p in probas(2000, seed=8)]


# --- variable uncertainty ---------------------------------------------------------------


def test_the_threshold_moves_down_after_a_request_and_up_after_none() -> None:
    requester = LabelRequester(
        VariableUncertaintyRequests(0.5, step=0.05, initial_threshold=0.8),
        LabelBudget(0.5, window=10),
        seed=0,
    )
    strategy = requester.strategy
    assert isinstance(strategy, VariableUncertaintyRequests)
    assert requester.decide({"a": 0.7, "b": 0.3}) is not None
    assert strategy.theta == 0.8 * (1 - 0.05)
    assert requester.decide({"a": 0.9, "b": 0.1}) is None
    assert strategy.theta == 0.8 * (1 - 0.05) * (1 + 0.05)
    theta = strategy.theta
    assert requester.decide({}) is not None  # an empty posterior leaves theta alone
    assert strategy.theta == theta


def test_the_threshold_stays_while_the_budget_refuses() -> None:
    requester = LabelRequester(
        VariableUncertaintyRequests(0.1), LabelBudget(0.1, window=10), seed=0
    )
    strategy = requester.strategy
    assert isinstance(strategy, VariableUncertaintyRequests)
    assert requester.decide({"a": 0.5, "b": 0.5}) is not None
    theta = strategy.theta
    for _ in range(9):
        assert requester.decide({"a": 0.5, "b": 0.5}) is None
        assert strategy.theta == theta
    assert requester.refused_by_budget == 9


def test_variable_uncertainty_keeps_asking_a_confident_model_fixed_does_not() -> None:
    stream = [{"a": 0.99, "b": 0.01}] * EVENTS
    fixed = LabelRequester(UncertaintyRequests(0.1), LabelBudget(0.1, 100), seed=0)
    variable = LabelRequester(
        VariableUncertaintyRequests(0.1, initial_threshold=0.9), LabelBudget(0.1, 100), seed=0
    )
    assert all(d is None for d in decisions(fixed, stream))
    asked = [d is not None for d in decisions(variable, stream)]
    # theta rises from 0.9 by 1% per event until it passes 0.99: 0.9 * 1.01**10 > 0.99
    first = math.ceil(math.log(0.99 / 0.9) / math.log(1.01))
    assert asked.index(True) == first == 10
    for block in range(0, EVENTS, 1000):  # and it keeps asking, all along
        assert any(asked[block : block + 1000])
    assert_within_every_window(asked, window=100, limit=10)


# --- the factory ---------------------------------------------------------------------------


def test_the_factory_builds_each_strategy_and_none_for_none() -> None:
    assert requester_for("none", budget=0.1, window=100, seed=0) is None
    for name in STRATEGIES:
        requester = requester_for(name, budget=0.2, window=50, seed=3)  # type: ignore[arg-type]
        assert requester is not None
        assert type(requester.strategy) is REQUEST_STRATEGIES[name]
        assert requester.budget == LabelBudget(0.2, 50)
        assert requester.seed == 3
    with pytest.raises(ValueError, match="unknown active strategy"):
        requester_for("nope", budget=0.1, window=100, seed=0)  # type: ignore[arg-type]
