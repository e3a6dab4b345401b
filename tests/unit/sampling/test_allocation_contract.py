"""The contract every allocation strategy gets checked against, in the spirit of River's
estimator checks: a strategy registered in ``ALLOCATIONS`` is tested here without a line
of its own. Strategy-specific arithmetic is in ``test_windows.py``."""

from __future__ import annotations

import pickle
import random
from dataclasses import replace
from typing import get_args

import pytest

from stratiflow.config import SamplingSettings, SamplingStrategy
from stratiflow.config.sampling import USED_BY
from stratiflow.sampling import ALLOCATIONS, Allocation, allocation_for

SETTINGS = {
    "uniform": SamplingSettings(strategy="uniform", rate=0.3),
    "undersample": SamplingSettings(strategy="undersample"),
    "oversample": SamplingSettings(strategy="oversample"),
    "balanced": SamplingSettings(strategy="balanced", budget=20, oversample=True),
    "target": SamplingSettings(strategy="target", budget=20, target={"a": 0.5, "b": 0.3, "c": 0.2}),
}
#: Windows as (seen, available): a skewed one, one with a class over capacity, one class only.
WINDOWS = [
    ({"a": 90, "b": 7, "c": 3}, {"a": 90, "b": 7, "c": 3}),
    ({"a": 5000, "b": 40, "c": 1}, {"a": 1000, "b": 40, "c": 1}),
    ({"a": 12}, {"a": 12}),
]
STRATEGIES = sorted(ALLOCATIONS)


def test_every_strategy_of_the_config_has_an_allocation() -> None:
    assert set(ALLOCATIONS) == set(get_args(SamplingStrategy)) - {"none"}
    assert set(SETTINGS) == set(ALLOCATIONS)
    for name, cls in ALLOCATIONS.items():
        assert issubclass(cls, Allocation) and cls.name == name


#: A value other than the default for each strategy-specific setting.
OTHER_VALUES = {
    "rate": 0.7,
    "budget": 9,
    "decay": 0.5,
    "oversample": True,
    "synthetic": True,
    "target": {"a": 0.1, "b": 0.1, "c": 0.8},
}


@pytest.mark.parametrize("name", STRATEGIES)
def test_a_strategy_declares_the_settings_the_config_lets_it_have(name: str) -> None:
    assert set(OTHER_VALUES) == set(USED_BY)
    assert ALLOCATIONS[name].uses == {f for f, (users, _) in USED_BY.items() if name in users}


@pytest.mark.parametrize("name", STRATEGIES)
def test_a_plan_ignores_the_settings_the_strategy_does_not_declare(name: str) -> None:
    strategy = allocation_for(SETTINGS[name])
    for setting, value in OTHER_VALUES.items():
        if setting in strategy.uses:
            continue
        changed = allocation_for(replace(SETTINGS[name], **{setting: value}))
        for seen, available in WINDOWS:
            assert changed.plan(seen, available, random.Random(4)) == strategy.plan(
                seen, available, random.Random(4)
            ), setting


@pytest.mark.parametrize("name", STRATEGIES)
def test_a_plan_is_the_same_for_the_same_seed(name: str) -> None:
    strategy = allocation_for(SETTINGS[name])
    for seen, available in WINDOWS:
        first = strategy.plan(seen, available, random.Random(3))
        assert strategy.plan(seen, available, random.Random(3)) == first


@pytest.mark.parametrize("name", STRATEGIES)
def test_a_plan_does_not_depend_on_the_order_classes_arrive_in(name: str) -> None:
    strategy = allocation_for(SETTINGS[name])
    for seen, available in WINDOWS:
        backwards = dict(reversed(list(seen.items()))), dict(reversed(list(available.items())))
        assert strategy.plan(*backwards, random.Random(5)) == strategy.plan(
            seen, available, random.Random(5)
        )


@pytest.mark.parametrize("name", STRATEGIES)
def test_a_plan_never_takes_more_real_examples_than_the_reservoir_holds(name: str) -> None:
    strategy = allocation_for(SETTINGS[name])
    for seed in range(20):
        for seen, available in WINDOWS:
            plan = strategy.plan(seen, available, random.Random(seed))
            assert set(plan) == {c for c, n in seen.items() if n > 0}
            for c, quota in plan.items():
                assert 0 <= quota.real <= available[c]
                assert quota.extra >= 0 and quota.real + quota.extra <= max(quota.wanted, 0)
                # extras are drawn from real examples: none from an empty reservoir
                assert quota.extra == 0 or available[c] > 0


@pytest.mark.parametrize("name", STRATEGIES)
def test_a_strategy_survives_a_pickle_round_trip(name: str) -> None:
    """Stage 2 state holds the settings a strategy is made from; the copy plans the same."""
    strategy = allocation_for(SETTINGS[name])
    copy = pickle.loads(pickle.dumps(strategy))
    assert copy == strategy
    seen, available = WINDOWS[0]
    assert copy.plan(seen, available, random.Random(1)) == strategy.plan(
        seen, available, random.Random(1)
    )


@pytest.mark.parametrize("name", STRATEGIES)
def test_what_a_window_trains_on_is_bounded(name: str) -> None:
    """However many events a window saw, its plan is bounded by the budget (balanced,
    target), the reservoir (undersample, uniform) or the classes times the largest reservoir."""
    settings = SETTINGS[name]
    strategy = allocation_for(settings)
    for seen, available in WINDOWS:
        total = sum(
            q.real + q.extra for q in strategy.plan(seen, available, random.Random(2)).values()
        )
        if name in ("balanced", "target"):
            assert total <= settings.budget + len(seen)  # rounding: at most one more per class
        else:
            assert total <= len(seen) * max(available.values())


def test_an_unknown_strategy_is_refused() -> None:
    with pytest.raises(ValueError, match="no allocation"):
        allocation_for(SamplingSettings(strategy="none"))
