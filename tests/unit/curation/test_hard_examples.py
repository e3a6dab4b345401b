"""The hard-example buffer (:mod:`stratiflow.curation.hard_examples`).

Checked: the buffer holds exactly the top ``size`` losses of a random stream
(ties: the newer wins), ``offer`` says truly whether it kept the example, replays
come at rate ``p`` and uniformly from the buffer, the same seed gives the same
replays, a pickle taken mid-stream continues exactly like the original, and bad
settings or a NaN loss are refused.
"""

from __future__ import annotations

import math
import pickle
import random
from collections import Counter
from typing import Any

import pytest

from stratiflow.curation.hard_examples import HardExamples


def stream(seed: int, n: int) -> list[tuple[str, dict[str, Any], bool, float]]:
    rng = random.Random(seed)
    # rounded losses: plenty of ties
    return [
        (
            f"e{i}",
            {"x": rng.random(), "c": rng.choice("ab")},
            rng.random() < 0.2,
            round(rng.expovariate(1.0), 1),
        )
        for i in range(n)
    ]


@pytest.mark.parametrize("size", [1, 3, 50, 500])
def test_buffer_holds_the_top_losses(size: int) -> None:
    for seed in range(20):
        events = stream(seed, 400)
        hard = HardExamples(size=size, p=0.0, seed=seed)
        for id, x, y, loss in events:
            hard.offer(id, x, y, loss)
        losses = [loss for *_, loss in events]
        assert sorted(loss for loss, *_ in hard.items()) == sorted(losses)[-size:]
        # exactly which ones: the largest (loss, arrival) pairs, so newer wins ties
        top = sorted(range(len(events)), key=lambda i: (losses[i], i))[-size:]
        expected = [(losses[i], events[i][0], events[i][1], events[i][2]) for i in reversed(top)]
        assert hard.items() == expected
        assert len(hard) == min(size, len(events))
        summary = hard.summary()
        assert summary["buffered"] == len(hard)
        assert summary["min_loss"] == min(losses[i] for i in top)
        assert summary["max_loss"] == max(losses)


def test_offer_reports_whether_it_kept() -> None:
    hard = HardExamples(size=10, p=0.0, seed=0)
    for id, x, y, loss in stream(1, 1000):
        before = {item[1] for item in hard.items()}
        kept = hard.offer(id, x, y, loss)
        after = {item[1] for item in hard.items()}
        assert kept == (id in after)
        assert len(before - after) == (1 if kept and len(before) == 10 else 0)
    assert hard.offered == 1000
    assert 10 <= hard.kept < 1000


def test_an_equal_loss_replaces_the_oldest_minimum() -> None:
    hard = HardExamples(size=2, p=0.0, seed=0)
    assert hard.offer("a", {}, 0, 1.0)
    assert hard.offer("b", {}, 0, 1.0)
    assert not hard.offer("low", {}, 0, 0.5)
    assert hard.offer("c", {}, 0, 1.0)
    assert [id for _, id, _, _ in hard.items()] == ["c", "b"]


def test_the_buffer_keeps_its_own_copy_of_x() -> None:
    hard = HardExamples(size=2, p=1.0, seed=0)
    x = {"f": 1.0}
    hard.offer("a", x, True, 1.0)
    x["f"] = 2.0
    replayed = hard.replay()
    assert replayed == ("a", {"f": 1.0}, True)
    assert replayed is not None
    replayed[1]["f"] = 3.0
    assert hard.items()[0][2] == {"f": 1.0}


@pytest.mark.parametrize("p", [0.0, 0.05, 0.3, 0.9, 1.0])
def test_replay_rate_is_p(p: float) -> None:
    hard = HardExamples(size=8, p=p, seed=3)
    for id, x, y, loss in stream(3, 50):
        hard.offer(id, x, y, loss)
    calls = 20_000
    picks = Counter(r[0] for r in (hard.replay() for _ in range(calls)) if r is not None)
    hits = sum(picks.values())
    assert hits == hard.replayed
    sd = math.sqrt(calls * p * (1 - p))
    assert abs(hits - calls * p) <= 5 * sd + 1e-9
    if p >= 0.3:  # uniform over the 8 buffered examples
        assert set(picks) == {id for _, id, _, _ in hard.items()}
        expected = hits / 8
        chi2 = sum((c - expected) ** 2 / expected for c in picks.values())
        assert chi2 < 30  # 7 degrees of freedom: p < 1e-4


def test_empty_buffer_replays_nothing_but_draws_the_coin() -> None:
    p, seed = 0.5, 11
    hard = HardExamples(size=3, p=p, seed=seed)
    assert [hard.replay() for _ in range(5)] == [None] * 5
    assert hard.replayed == 0
    hard.offer("a", {"x": 1}, True, 1.0)
    got = [hard.replay() is not None for _ in range(200)]
    # the same draws by hand: one coin per call (empty or not), a pick on a hit
    rng = random.Random(seed)
    for _ in range(5):
        rng.random()
    expected = []
    for _ in range(200):
        hit = rng.random() < p
        if hit:
            rng.randrange(1)
        expected.append(hit)
    assert got == expected


def run(hard: HardExamples, events: list[Any], every: int) -> list[Any]:
    out: list[Any] = []
    for i, (id, x, y, loss) in enumerate(events):
        out.append(hard.offer(id, x, y, loss))
        if i % every == 0:
            out.append(hard.replay())
    return out


def test_same_seed_same_replays() -> None:
    events = stream(5, 2000)
    a = run(HardExamples(size=20, p=0.4, seed=9), events, every=1)
    b = run(HardExamples(size=20, p=0.4, seed=9), events, every=1)
    c = run(HardExamples(size=20, p=0.4, seed=10), events, every=1)
    assert a == b
    assert a != c


def test_a_pickle_taken_mid_stream_continues_identically() -> None:
    events = stream(7, 3000)
    original = HardExamples(size=25, p=0.35, seed=4)
    run(original, events[:1500], every=2)
    restored = pickle.loads(pickle.dumps(original))
    assert restored.summary() == original.summary()
    assert run(restored, events[1500:], every=1) == run(original, events[1500:], every=1)
    assert restored.summary() == original.summary()
    assert restored.items() == original.items()
    assert len(pickle.dumps(original)) < 10_000  # small: 25 items, no history


@pytest.mark.parametrize(
    ("size", "p"),
    [(0, 0.5), (-3, 0.5), (2.5, 0.5), (True, 0.5), (5, -0.01), (5, 1.01), (5, math.nan)],
)
def test_bad_settings_are_refused(size: Any, p: float) -> None:
    with pytest.raises(ValueError):
        HardExamples(size=size, p=p, seed=0)


def test_nan_loss_is_refused() -> None:
    hard = HardExamples(size=2, p=0.5, seed=0)
    with pytest.raises(ValueError, match="NaN"):
        hard.offer("a", {}, True, math.nan)
    assert hard.offered == 0
    assert hard.offer("b", {}, True, math.inf)
