"""The contract every update policy that buffers gets checked against (registered in
``UPDATE_POLICIES``, no test of its own needed). Policy-specific behaviour against River
is in ``test_updates.py``."""

from __future__ import annotations

import pickle
import random
from dataclasses import replace
from typing import Any, get_args

import pytest
from river import linear_model

from stratiflow.config import UpdateMode, UpdateSettings
from stratiflow.config.update import USED_BY
from stratiflow.learning import UPDATE_POLICIES, UpdatePolicy, Updater, policy_for

SETTINGS = {
    "per_sample": UpdateSettings(mode="per_sample"),
    "micro_batch": UpdateSettings(mode="micro_batch", batch_size=8, interval=500),
    "periodic": UpdateSettings(mode="periodic", interval=300),
}
BUFFERING = sorted(name for name, cls in UPDATE_POLICIES.items() if cls.buffers)


def examples(n: int = 400, seed: int = 3) -> list[tuple[dict[str, float], bool, int]]:
    rng = random.Random(seed)
    ts, out = 0, []
    for _ in range(n):
        ts += rng.choice([1, 5, 20, 90])
        x = {"a": rng.gauss(0, 1), "b": rng.gauss(0, 1)}
        out.append((x, x["a"] + x["b"] > 0, ts))
    return out


def drive(updater: Updater, items: list[tuple[dict[str, float], bool, int]]) -> list[Any]:
    """Add every example, then flush; what each learning call did."""
    model = linear_model.LogisticRegression()
    calls = []
    for x, y, ts in items:
        calls += [(r.learned, r.failed) for r in updater.add(model, x, y, ts=ts)]
    calls += [(r.learned, r.failed) for r in updater.flush(model)]
    return calls


def test_every_mode_of_the_config_has_a_policy() -> None:
    assert set(UPDATE_POLICIES) == set(get_args(UpdateMode)) == set(SETTINGS)
    for mode, cls in UPDATE_POLICIES.items():
        assert issubclass(cls, UpdatePolicy) and cls.mode == mode
        assert isinstance(policy_for(SETTINGS[mode]), cls)


@pytest.mark.parametrize("mode", sorted(UPDATE_POLICIES))
def test_a_policy_declares_the_settings_the_config_lets_it_have(mode: str) -> None:
    assert UPDATE_POLICIES[mode].uses == {f for f, (users, _) in USED_BY.items() if mode in users}


@pytest.mark.parametrize("mode", BUFFERING)
def test_learning_ignores_the_settings_the_policy_does_not_declare(mode: str) -> None:
    for setting, value in {"batch_size": 3, "interval": 70}.items():
        if setting not in UPDATE_POLICIES[mode].uses:
            changed = replace(SETTINGS[mode], **{setting: value})
            assert drive(Updater(changed), examples()) == drive(Updater(SETTINGS[mode]), examples())


@pytest.mark.parametrize("mode", BUFFERING)
def test_every_example_is_learned_once_and_the_buffer_ends_empty(mode: str) -> None:
    updater = Updater(SETTINGS[mode])
    items = examples()
    calls = drive(updater, items)
    assert sum(learned + failed for learned, failed in calls) == len(items)
    assert len(updater) == 0 and updater.buffer == []


@pytest.mark.parametrize("mode", BUFFERING)
def test_the_same_examples_give_the_same_learning(mode: str) -> None:
    assert drive(Updater(SETTINGS[mode]), examples()) == drive(Updater(SETTINGS[mode]), examples())


@pytest.mark.parametrize("mode", BUFFERING)
def test_an_updater_pickled_mid_buffer_goes_on_as_if_never_pickled(mode: str) -> None:
    """Its buffer is in the key's checkpointed state."""
    items = examples()
    model = linear_model.LogisticRegression()
    straight, restored = Updater(SETTINGS[mode]), Updater(SETTINGS[mode])
    for x, y, ts in items[:101]:
        straight.add(model, x, y, ts=ts)
        restored.add(model, x, y, ts=ts)
    assert len(restored) > 0, "the cut must fall inside a buffer"
    restored = pickle.loads(pickle.dumps(restored))
    rest = items[101:]
    assert drive(restored, rest) == drive(straight, rest)


@pytest.mark.parametrize("mode", BUFFERING)
def test_the_buffer_stays_bounded(mode: str) -> None:
    """micro_batch: at most batch_size examples; periodic: only examples of one period."""
    settings = SETTINGS[mode]
    updater = Updater(settings)
    model = linear_model.LogisticRegression()
    for x, y, ts in examples():
        updater.add(model, x, y, ts=ts)
        if mode == "micro_batch":
            assert len(updater) < settings.batch_size
        if len(updater):
            assert updater.since is not None and ts - updater.since < settings.interval


def test_per_sample_buffers_nothing() -> None:
    with pytest.raises(ValueError, match="nothing is buffered"):
        Updater(SETTINGS["per_sample"]).add(linear_model.LogisticRegression(), {}, True, ts=0)
