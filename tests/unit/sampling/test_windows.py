"""The stratified sampling core (:mod:`stratiflow.sampling.windows`) and its replay.

Properties checked: the reservoir is a uniform, order-independent, seeded
sample in O(capacity) memory; every strategy's allocation arithmetic; the
stats record reconciles with the batch; late events are counted; everything
is deterministic; synthetic examples lie between two real same-class
examples; and, end to end, sampling really helps a model on an imbalanced
stream.
"""

from __future__ import annotations

import math
import random
import statistics
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pytest
from scipy.stats import chi2

from stratiflow.config import SamplingSettings, load_config
from stratiflow.io.sources import river_events
from stratiflow.records import Event, class_key
from stratiflow.runner.replay import replay
from stratiflow.sampling import (
    ClassWindows,
    Quota,
    Reservoir,
    TrainingBatch,
    WindowAllocator,
    derive_seed,
    plan_quotas,
    synthesize,
)
from tests.helpers import assert_matches_river, river_progressive_accuracy, river_reference

# --- reservoir: uniformity -----------------------------------------------------------------

ITEMS, K, TRIALS = 40, 8, 3000
ALPHA = 0.001
#: Upper 0.1 % point of chi-square with ITEMS - 1 = 39 degrees of freedom (72.05; tables
#: give 72.055). scipy is installed with river, which depends on it.
CRITICAL = float(chi2.ppf(1 - ALPHA, ITEMS - 1))


def ids(n: int = ITEMS) -> list[str]:
    return [str(i) for i in range(n)]


def reservoir_sample(trial: int) -> list[str]:
    """What the job does: a fresh seed per window (here: per trial)."""
    r = Reservoir(K, derive_seed(1, trial))
    for i in ids():
        r.add(i, i)
    return r.items()


def inclusion_counts(sample: Callable[[int], Sequence[str]]) -> list[int]:
    counts: Counter[str] = Counter()
    for trial in range(TRIALS):
        kept = sample(trial)
        assert len(kept) == len(set(kept)) == K
        counts.update(kept)
    return [counts[i] for i in ids()]


def inclusion_statistic(counts: Sequence[int]) -> float:
    """Pearson's statistic for k-of-n inclusion counts, scaled to be chi-square(n - 1).

    Each trial keeps k of n items, so an item's count is Binomial(T, p) with
    p = k/n, and two items' counts covary by -T p (1 - p) / (n - 1). The counts'
    covariance is T p (1 - p) n / (n - 1) times a projection of rank n - 1, so
    sum((O - E)^2) / (T p (1 - p) n / (n - 1)) is asymptotically chi-square(n - 1)
    (the usual sum((O - E)^2 / E) would be too small by (1 - p)).
    """
    n, p = len(counts), K / len(counts)
    expected = TRIALS * p
    return sum((o - expected) ** 2 for o in counts) / (expected * (1 - p) * n / (n - 1))


def test_reservoir_inclusion_is_uniform_chi_square():
    """Over 3000 seeds, every item is kept k/n of the time (chi-square, alpha = 0.001)."""
    assert 72.0 < CRITICAL < 72.1
    counts = inclusion_counts(reservoir_sample)
    assert sum(counts) == TRIALS * K
    assert inclusion_statistic(counts) < CRITICAL, counts


def test_reservoir_first_item_is_uniform_chi_square():
    """The first item of items() is a uniform sample of one (multinomial chi-square)."""
    first = Counter(reservoir_sample(trial)[0] for trial in range(TRIALS))
    expected = TRIALS / ITEMS
    statistic = sum((first[i] - expected) ** 2 / expected for i in ids())
    assert statistic < CRITICAL, first


def keep_first_k(trial: int) -> list[str]:
    return ids()[:K]


def one_seed_for_every_window(trial: int) -> list[str]:
    return reservoir_sample(0)


def algorithm_r_off_by_one(trial: int) -> list[str]:
    """Vitter's algorithm R with a classic bug: randrange(i) instead of randrange(i + 1)."""
    rng = random.Random(derive_seed(1, trial))
    kept: list[str] = []
    for i, item in enumerate(ids()):
        if i < K:
            kept.append(item)
        else:
            j = rng.randrange(i)
            if j < K:
                kept[j] = item
    return kept


@pytest.mark.parametrize(
    "biased", [keep_first_k, one_seed_for_every_window, algorithm_r_off_by_one]
)
def test_the_uniformity_statistic_rejects_biased_samplers(biased):
    """The same statistic and threshold fail samplers that are not uniform (power check)."""
    assert inclusion_statistic(inclusion_counts(biased)) > CRITICAL


def filled(capacity: int, seed: int, items: Iterable[str]) -> Reservoir:
    r = Reservoir(capacity, seed)
    for i in items:
        r.add(i, i)
    return r


def test_reservoir_prefix_is_a_smaller_reservoir():
    """The first m of a capacity-k sample are exactly the capacity-m sample (same seed)."""
    for seed in range(20):
        full = filled(10, seed, ids(200)).items()
        for m in range(1, 11):
            assert full[:m] == filled(m, seed, ids(200)).items()


def test_reservoir_does_not_depend_on_arrival_order():
    """Shuffled input gives the same sample, in the same order."""
    rng = random.Random(3)
    for seed in range(20):
        items = ids(300)
        expected = filled(12, seed, items).items()
        rng.shuffle(items)
        assert filled(12, seed, items).items() == expected


def test_reservoir_counts_everything_and_seeds_differ():
    """seen counts every add (duplicate ids too); a different seed gives another sample."""
    r = filled(5, 11, [*ids(100), "7", "7"])
    assert r.seen == 102 and len(r) == 5
    assert sorted(filled(3, 1, ids(2)).items()) == ["0", "1"]  # fewer than capacity: all
    samples = {tuple(filled(5, seed, ids(100)).items()) for seed in range(10)}
    assert len(samples) == 10


# --- reservoir: memory ---------------------------------------------------------------------


class Payload:
    """An item that knows how many of its kind are alive."""

    __slots__ = ("blob",)
    live = 0

    def __init__(self) -> None:
        self.blob = bytes(200)
        Payload.live += 1

    def __del__(self) -> None:
        Payload.live -= 1


def test_reservoir_memory_is_bounded_by_capacity_for_a_million_events():
    """1M adds into capacity 100: never more than 100 items alive, heap never above 100.

    The last 20 000 adds run under tracemalloc: their peak is far below what
    keeping those items would take (20 000 x 200-byte blobs = 4 MB).
    """
    capacity, n, traced = 100, 1_000_000, 20_000
    r = Reservoir(capacity, seed=derive_seed(5, "memory"))
    most_live = most_heap = 0
    Payload.live = 0

    def feed(numbers: range) -> None:
        nonlocal most_live, most_heap
        for i in numbers:
            r.add(str(i), Payload())
            most_live = max(most_live, Payload.live)
            most_heap = max(most_heap, len(r._heap))

    feed(range(n - traced))
    tracemalloc.start()
    try:
        feed(range(n - traced, n))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert r.seen == n and len(r) == capacity == len(r.items())
    assert most_heap == capacity and most_live == capacity
    assert peak < 100_000, peak


# --- allocation arithmetic -----------------------------------------------------------------

SEEDS = range(3000)


def plans(settings: SamplingSettings, seen, available=None, priors=None) -> list[dict]:
    available = seen if available is None else available
    return [plan_quotas(settings, seen, available, random.Random(s), priors) for s in SEEDS]


def mean_wanted(all_plans: list[dict], cls: str) -> float:
    return statistics.fmean(p[cls].wanted for p in all_plans)


def assert_rounds(all_plans: list[dict], cls: str, exact: float) -> None:
    """Every value is floor or ceil of ``exact`` and the mean is ``exact`` (within 5 SE)."""
    values = {p[cls].wanted for p in all_plans}
    assert values <= {math.floor(exact), math.ceil(exact)}, (cls, values, exact)
    frac = exact - math.floor(exact)
    se = math.sqrt(frac * (1 - frac) / len(all_plans)) if frac else 0.0
    assert abs(mean_wanted(all_plans, cls) - exact) <= 5 * se + 1e-12, (cls, exact)


def test_uniform_keeps_rate_times_seen_on_average():
    """uniform: wanted is rate * seen, stochastically rounded; real = wanted, no extras."""
    settings = SamplingSettings(strategy="uniform", rate=0.3)
    seen = {"a": 47, "b": 5, "c": 10}
    all_plans = plans(settings, seen)
    assert_rounds(all_plans, "a", 0.3 * 47)
    assert_rounds(all_plans, "b", 0.3 * 5)
    assert {p["c"].wanted for p in all_plans} == {3}
    assert all(q.real == q.wanted and q.extra == 0 for p in all_plans for q in p.values())
    # with every class whole the expected total is rate * all events
    assert abs(statistics.fmean(sum(q.wanted for q in p.values()) for p in all_plans) - 18.6) < 0.1


def test_uniform_is_capped_by_the_reservoir():
    """uniform with available < seen: wants rate * seen, gets what the reservoir holds."""
    settings = SamplingSettings(strategy="uniform", rate=0.5, capacity=100)
    plan = plan_quotas(settings, {"a": 1000, "b": 30}, {"a": 100, "b": 30}, random.Random(0))
    assert plan["a"] == Quota(500, 100, 0)
    assert plan["b"] == Quota(15, 15, 0)


def test_balanced_splits_the_budget_exactly_when_every_class_has_enough():
    settings = SamplingSettings(strategy="balanced", budget=30)
    plan = plan_quotas(
        settings, {"a": 90, "b": 30, "c": 12}, {"a": 90, "b": 30, "c": 12}, random.Random(1)
    )
    assert plan == {c: Quota(10, 10, 0) for c in "abc"}


def test_balanced_remainder_sums_exactly_and_goes_to_each_class_equally_often():
    """budget 10 over 3 classes: 4/3/3, sum 10 every time; each class gets the 4 ~1/3 of runs."""
    settings = SamplingSettings(strategy="balanced", budget=10)
    seen = {"a": 90, "b": 30, "c": 12}
    all_plans = plans(settings, seen)
    assert all(sum(q.wanted for q in p.values()) == 10 for p in all_plans)
    assert all(sorted(q.wanted for q in p.values()) == [3, 3, 4] for p in all_plans)
    fours = Counter(c for p in all_plans for c, q in p.items() if q.wanted == 4)
    # Binomial(3000, 1/3): SE 25.8; 150 is ~6 SE.
    assert all(abs(fours[c] - 1000) < 150 for c in "abc"), fours


def test_balanced_short_class_gives_all_it_has_and_oversample_tops_it_up():
    seen = {"a": 90, "b": 3}
    plain = plan_quotas(
        SamplingSettings(strategy="balanced", budget=10), seen, seen, random.Random(0)
    )
    assert plain == {"a": Quota(5, 5, 0), "b": Quota(5, 3, 0)}
    topped = plan_quotas(
        SamplingSettings(strategy="balanced", budget=10, oversample=True),
        seen,
        seen,
        random.Random(0),
    )
    assert topped == {"a": Quota(5, 5, 0), "b": Quota(5, 3, 2)}
    assert sum(q.real + q.extra for q in topped.values()) == 10


def test_balanced_is_capped_by_the_reservoir():
    """available < seen: the quota counts what the reservoir holds, oversample fills the rest."""
    seen, available = {"a": 1000, "b": 400}, {"a": 100, "b": 100}
    plain = plan_quotas(
        SamplingSettings(strategy="balanced", budget=300), seen, available, random.Random(0)
    )
    assert plain == {"a": Quota(150, 100, 0), "b": Quota(150, 100, 0)}
    settings = SamplingSettings(strategy="balanced", budget=300, oversample=True)
    topped = plan_quotas(settings, seen, available, random.Random(0))
    assert topped == {"a": Quota(150, 100, 50), "b": Quota(150, 100, 50)}


def test_target_respects_shares_and_gives_other_classes_nothing():
    settings = SamplingSettings(strategy="target", budget=20, target={"a": 0.7, "b": 0.3})
    seen = {"a": 50, "b": 50, "c": 50}
    plan = plan_quotas(settings, seen, seen, random.Random(0))
    assert plan["a"] == Quota(14, 14, 0) and plan["b"] == Quota(6, 6, 0)
    assert plan["c"] == Quota(0, 0, 0)
    short = plan_quotas(
        SamplingSettings(
            strategy="target", budget=20, target={"a": 0.7, "b": 0.3}, oversample=True
        ),
        {"a": 50, "b": 2},
        {"a": 50, "b": 2},
        random.Random(0),
    )
    assert short == {"a": Quota(14, 14, 0), "b": Quota(6, 2, 4)}


def test_target_remainder_ties_are_split_evenly():
    """shares 0.25/0.75 of 10: 2.5/7.5, the tied remainder goes either way, sum always 10."""
    settings = SamplingSettings(strategy="target", budget=10, target={"a": 0.25, "b": 0.75})
    all_plans = plans(settings, {"a": 50, "b": 50})
    assert all(p["a"].wanted + p["b"].wanted == 10 for p in all_plans)
    assert_rounds(all_plans, "a", 2.5)
    assert_rounds(all_plans, "b", 7.5)


@pytest.mark.parametrize(
    ("budget", "target", "seen", "cls", "exact"),
    [
        (10, {"a": 0.12, "b": 0.88}, {"a": 50, "b": 50}, "a", 1.2),
        (20, {"a": 0.03, "b": 0.97}, {"a": 50, "b": 50}, "a", 0.6),
        (5, {"a": 0.25, "b": 0.25, "c": 0.5}, {"a": 50, "b": 50}, "a", 1.25),
    ],
)
def test_target_quota_is_exact_on_average(budget, target, seen, cls, exact):
    """target: over many windows a class gets budget * share examples on average."""
    settings = SamplingSettings(strategy="target", budget=budget, target=target)
    assert_rounds(plans(settings, seen), cls, exact)


def test_undersample_gives_every_class_the_smallest_reservoir():
    settings = SamplingSettings(strategy="undersample")
    seen = {"a": 50, "b": 7, "c": 20}
    assert plan_quotas(settings, seen, seen, random.Random(0)) == {c: Quota(7, 7) for c in "abc"}
    capped = plan_quotas(settings, {"a": 500, "b": 300}, {"a": 100, "b": 100}, random.Random(0))
    assert capped == {"a": Quota(100, 100), "b": Quota(100, 100)}


def test_oversample_grows_every_class_to_the_largest_reservoir():
    settings = SamplingSettings(strategy="oversample")
    seen = {"a": 50, "b": 7, "c": 20}
    plan = plan_quotas(settings, seen, seen, random.Random(0))
    assert plan == {"a": Quota(50, 50, 0), "b": Quota(50, 7, 43), "c": Quota(50, 20, 30)}
    capped = plan_quotas(settings, {"a": 500, "b": 30}, {"a": 100, "b": 30}, random.Random(0))
    assert capped == {"a": Quota(100, 100, 0), "b": Quota(100, 30, 70)}


def test_decay_with_priors_equal_to_seen_expects_budget_times_share():
    """balanced + priors = seen: each class wants budget/classes on average (floor or ceil)."""
    settings = SamplingSettings(strategy="balanced", budget=9, decay=0.5)
    seen = {"a": 37, "b": 3}
    all_plans = plans(settings, seen, priors={"a": 37.0, "b": 3.0})
    assert_rounds(all_plans, "a", 4.5)
    assert_rounds(all_plans, "b", 4.5)
    target = SamplingSettings(
        strategy="target", budget=10, target={"a": 0.12, "b": 0.88}, decay=0.5
    )
    all_plans = plans(target, {"a": 5, "b": 80}, priors={"a": 5.0, "b": 80.0})
    assert_rounds(all_plans, "a", 1.2)
    assert_rounds(all_plans, "b", 8.8)


def test_decay_scales_by_seen_over_prior_and_counts_absent_active_classes():
    settings = SamplingSettings(strategy="balanced", budget=9, decay=0.5)
    # twice the usual count of a: twice its share (9 / 2 * 2)
    plan = plan_quotas(
        settings, {"a": 20, "b": 4}, {"a": 20, "b": 4}, random.Random(0), {"a": 10.0, "b": 4.0}
    )
    assert plan["a"].wanted == 9 and plan["b"].real == 4
    # b is usually there (prior 2 >= 0.5) but not this window: a still gets only half
    absent = plans(settings, {"a": 10}, priors={"a": 10.0, "b": 2.0})
    assert_rounds(absent, "a", 4.5)
    # b's prior has decayed below 0.5: it no longer counts
    gone = plan_quotas(settings, {"a": 10}, {"a": 10}, random.Random(0), {"a": 10.0, "b": 0.3})
    assert gone == {"a": Quota(9, 9, 0)}


def test_no_classes_no_plan_and_unknown_strategy_raises():
    settings = SamplingSettings(strategy="balanced", budget=5)
    assert plan_quotas(settings, {}, {}, random.Random(0)) == {}
    assert plan_quotas(settings, {"a": 0}, {"a": 0}, random.Random(0)) == {}
    with pytest.raises(ValueError, match="none"):
        plan_quotas(SamplingSettings(strategy="none"), {"a": 1}, {"a": 1}, random.Random(0))


# --- stage 1 + stage 2 ---------------------------------------------------------------------

COLOURS = ("red", "green", "blue")


def stream(n: int, *, seed: int = 0, interval_ms: int = 5, share: float = 0.1) -> list[Event]:
    """Labelled events with three numeric features, a string and a bool; ~share positives."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        positive = rng.random() < share
        features: dict[str, Any] = {
            "x0": rng.gauss(2.0 if positive else 0.0, 1.0),
            "x1": rng.uniform(-5, 5),
            "n": rng.randrange(100),
            "colour": rng.choice(COLOURS),
            "flag": rng.random() < 0.5,
        }
        out.append(Event(f"e{i}", i * interval_ms, features, label=positive, key="k"))
    return out


def allocate(
    events: Iterable[Event], settings: SamplingSettings, seed: int = 7
) -> list[tuple[TrainingBatch, dict[str, Any]]]:
    """Both stages over events that are all on time; windows closed in time order."""
    windows: dict[str, ClassWindows] = {}
    for e in events:
        cls = class_key(e.label)
        cw = windows.setdefault(cls, ClassWindows("k", cls, settings, seed))
        assert cw.offer(e, watermark=None) is not None
    allocator = WindowAllocator("k", settings, seed)
    out = []
    for start in sorted({s for cw in windows.values() for s in cw.open}):
        for cls in sorted(windows):
            if start in windows[cls].open:
                allocator.receive(windows[cls].close(start))
        out.append(allocator.close(start, now_ms=123))
    return out


STRATEGIES = {
    "uniform": SamplingSettings(strategy="uniform", window=1000, rate=0.3),
    "uniform-capped": SamplingSettings(strategy="uniform", window=1000, rate=0.5, capacity=20),
    "balanced": SamplingSettings(strategy="balanced", window=1000, budget=12),
    "balanced-oversample": SamplingSettings(
        strategy="balanced", window=1000, budget=60, oversample=True
    ),
    "balanced-decay": SamplingSettings(strategy="balanced", window=1000, budget=12, decay=0.7),
    "target": SamplingSettings(
        strategy="target", window=1000, budget=10, target={"true": 0.4, "false": 0.6}
    ),
    "target-decay": SamplingSettings(
        strategy="target", window=1000, budget=10, target={"true": 0.4, "false": 0.6}, decay=0.5
    ),
    "undersample": SamplingSettings(strategy="undersample", window=1000),
    "oversample": SamplingSettings(strategy="oversample", window=1000, capacity=150),
    "oversample-synthetic": SamplingSettings(
        strategy="oversample", window=1000, synthetic=True, neighbours=3
    ),
}


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_stats_reconcile_with_the_batch(name):
    """Per class trained = sampled + duplicated + synthetic, and it is what the batch holds."""
    settings = STRATEGIES[name]
    events = stream(2000, seed=1)
    windows = allocate(events, settings)
    assert len(windows) == 10
    by_window: dict[int, list[Event]] = {}
    for e in events:
        by_window.setdefault(e.ts - e.ts % 1000, []).append(e)
    cumulative: Counter[str] = Counter()
    for batch, stats in windows:
        members = by_window[batch.start]
        assert stats["window"] == {"start": batch.start, "end": batch.start + 1000}
        assert stats["strategy"] == settings.strategy and stats["emitted_at"] == 123
        assert (
            stats["trained"]
            == len(batch.examples)
            == sum(c["trained"] for c in stats["classes"].values())
        )
        by_class = Counter(class_key(x.y) for x in batch.examples)
        kinds = Counter((class_key(x.y), x.kind) for x in batch.examples)
        for cls, c in stats["classes"].items():
            assert c["trained"] == c["sampled"] + c["duplicated"] + c["synthetic"] == by_class[cls]
            assert kinds[cls, "real"] == c["sampled"]
            assert kinds[cls, "duplicate"] == c["duplicated"]
            assert kinds[cls, "synthetic"] == c["synthetic"]
            assert c["seen"] == sum(class_key(e.label) == cls for e in members)
            assert c["available"] == min(c["seen"], settings.capacity)
            assert c["sampled"] == min(c["wanted"], c["available"]) and c["late"] == 0
            grows = settings.oversample or settings.strategy == "oversample"
            assert c["trained"] == (c["wanted"] if grows else c["sampled"])
            cumulative[cls] += c["trained"]
        real = [x.id for x in batch.examples if x.kind == "real"]
        assert len(real) == len(set(real)) and set(real) <= {e.id for e in members}
        assert sum(stats["trained_mix"].values()) == pytest.approx(1.0)
        for cls, share in stats["trained_mix"].items():
            assert share == stats["classes"][cls]["trained"] / stats["trained"]
        assert stats["cumulative_trained"] == dict(sorted(cumulative.items()))
        assert ("priors" in stats) == bool(settings.decay)


def test_the_strategies_exercise_every_kind_of_example():
    """The reconciliation above is not vacuous: duplicates, synthetics and capping occur."""
    events = stream(2000, seed=1)
    summed: dict[str, Counter[str]] = {}
    for name, settings in STRATEGIES.items():
        total: Counter[str] = Counter()
        for _, stats in allocate(events, settings):
            for c in stats["classes"].values():
                total.update(c)
        summed[name] = total
    assert summed["oversample"]["duplicated"] > 0
    assert summed["oversample-synthetic"]["synthetic"] > 0
    assert summed["balanced-oversample"]["duplicated"] > 0
    assert summed["uniform-capped"]["available"] < summed["uniform-capped"]["seen"]
    assert summed["undersample"]["sampled"] < summed["uniform"]["seen"]


def test_priors_are_the_decayed_per_window_counts():
    """priors: the first window's counts, then decay * prior + (1 - decay) * seen."""
    settings = SamplingSettings(strategy="balanced", window=1000, budget=12, decay=0.7)
    events = [e for e in stream(3000, seed=6) if not (e.label and 1000 <= e.ts < 2000)]
    records = [stats for _, stats in allocate(events, settings)]
    assert "true" not in records[1]["classes"]  # a window without positives: its prior decays
    expected: dict[str, float] = {}
    for stats in records:
        seen = {c: v["seen"] for c, v in stats["classes"].items()}
        for c in set(expected) | set(seen):
            n = seen.get(c, 0)
            expected[c] = n if c not in expected else 0.7 * expected[c] + 0.3 * n
        assert stats["priors"] == pytest.approx(expected)


def test_a_lone_example_cannot_be_interpolated_so_it_is_duplicated():
    """oversample + synthetic with one minority event: its extras count as duplicated."""
    settings = STRATEGIES["oversample-synthetic"]
    events = [Event(f"n{i}", i, {"x": float(i), "y": 1.0}, label=False) for i in range(6)]
    events.append(Event("p0", 3, {"x": 9.0, "y": 2.0}, label=True))
    ((batch, stats),) = allocate(events, settings)
    assert stats["classes"]["true"] == {
        "seen": 1,
        "late": 0,
        "available": 1,
        "wanted": 6,
        "sampled": 1,
        "duplicated": 5,
        "synthetic": 0,
        "trained": 6,
    }
    copies = [x for x in batch.examples if x.kind == "duplicate"]
    assert len(copies) == 5 and all(x.x == {"x": 9.0, "y": 2.0} and x.y is True for x in copies)


def test_late_events_are_counted_and_reported_with_the_next_window():
    """A late event is not sampled; its count rides on its class's next window record."""
    settings = SamplingSettings(strategy="undersample", window=1000)
    cw = {c: ClassWindows("k", c, settings, seed=3) for c in ("false", "true")}
    allocator = WindowAllocator("k", settings, seed=3)

    def offer(i: int, ts: int, label: bool, watermark: int | None) -> int | None:
        return cw[class_key(label)].offer(Event(f"e{i}", ts, {"x": float(i)}, label), watermark)

    assert cw["true"].fire_time(0) == 999
    for i in range(10):
        assert offer(i, i * 100, i % 3 == 0, watermark=i * 100 - 1) == 999
    for c in sorted(cw):
        allocator.receive(cw[c].close(0))
    _, first = allocator.close(0, now_ms=0)
    assert first["classes"]["true"]["late"] == 0 and first["classes"]["true"]["seen"] == 4

    assert offer(10, 500, True, watermark=999) is None  # window 0 has fired
    assert offer(11, 998, True, watermark=1200) is None
    assert cw["true"].late == 2 and cw["false"].late == 0
    for i in range(12, 20):
        assert offer(i, 1000 + i, i % 2 == 0, watermark=1000) == 1999
    for c in sorted(cw):
        allocator.receive(cw[c].close(1000))
    _, second = allocator.close(1000, now_ms=0)
    assert second["classes"]["true"]["late"] == 2 and second["classes"]["false"]["late"] == 0
    assert second["classes"]["true"]["seen"] == 4  # the late ones are not sampled
    assert cw["true"].late == 0

    # late after the class's last window: reported by flush_late at the end of input
    assert offer(20, 1500, False, watermark=5000) is None
    assert cw["true"].take_late() is None
    summary = cw["false"].take_late()
    assert summary is not None and (summary.start, summary.late, summary.seen) == (None, 1, 0)
    assert allocator.receive(summary) is None
    flushed = allocator.flush_late(now_ms=7)
    assert flushed is not None
    batch, record = flushed
    assert batch.late == 1 and batch.examples == []  # carries the count to the model
    assert record["window"] is None and record["trained"] == 0 and record["trained_mix"] == {}
    assert record["classes"] == {
        "false": {
            "seen": 0,
            "late": 1,
            "available": 0,
            "wanted": 0,
            "sampled": 0,
            "duplicated": 0,
            "synthetic": 0,
            "trained": 0,
        }
    }
    assert record["cumulative_trained"] == second["cumulative_trained"]
    assert allocator.flush_late(now_ms=8) is None


def test_allowed_lateness_keeps_a_window_open_longer():
    settings = SamplingSettings(strategy="undersample", window=1000, allowed_lateness=500)
    cw = ClassWindows("k", "true", settings, seed=1)
    assert cw.fire_time(0) == 1499
    assert cw.offer(Event("a", 10, {"x": 1.0}, True), watermark=1498) == 1499
    assert cw.offer(Event("b", 20, {"x": 1.0}, True), watermark=1499) is None
    assert cw.close(0).seen == 1


def test_allocation_is_deterministic_and_depends_on_the_seed():
    """Same events and seed: identical batches (ids, x, order) and stats; another seed differs."""
    settings = STRATEGIES["oversample-synthetic"]
    events = stream(2000, seed=4)
    once, twice = allocate(events, settings, seed=7), allocate(events, settings, seed=7)
    assert once == twice
    other = allocate(events, settings, seed=8)
    assert [b.examples for b, _ in other] != [b.examples for b, _ in once]
    assert [b.start for b, _ in other] == [b.start for b, _ in once]
    seen = [{c: v["seen"] for c, v in s["classes"].items()} for _, s in other]
    assert seen == [{c: v["seen"] for c, v in s["classes"].items()} for _, s in once]


def test_each_window_key_and_class_has_its_own_reservoir_seed():
    """The same ids in another window, key or class are sampled independently."""
    settings = SamplingSettings(strategy="undersample", window=1000, capacity=5)

    def sample(key: str, cls: str, start: int) -> list[str]:
        cw = ClassWindows(key, cls, settings, seed=7)
        for i in range(50):
            cw.offer(Event(f"id{i}", start + i, {"x": 1.0}, label=cls == "true"), None)
        return [e.id for e in cw.close(start).samples]

    first = sample("k", "true", 0)
    assert sample("k", "true", 0) == first
    assert sample("k", "true", 1000) != first
    assert sample("other", "true", 0) != first
    assert sample("k", "false", 0) != first


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_allocation_does_not_depend_on_arrival_order(name):
    """Events shuffled (same window membership): the same batches in the same order."""
    settings = STRATEGIES[name]
    events = stream(2000, seed=5)
    shuffled = list(events)
    random.Random(9).shuffle(shuffled)
    assert allocate(shuffled, settings) == allocate(events, settings)


# --- synthesize ----------------------------------------------------------------------------

NUMERIC = ("n", "x0", "x1")


def on_segment(x: dict[str, Any], a: Event, b: Event) -> float | None:
    """The t in [0, 1] with x_f = a_f + t (b_f - a_f) for every numeric f, if there is one."""
    ts = []
    for f in NUMERIC:
        lo, hi = float(a.features[f]), float(b.features[f])  # type: ignore[arg-type]
        if abs(hi - lo) < 1e-12:
            if abs(x[f] - lo) > 1e-9:
                return None
        else:
            ts.append((x[f] - lo) / (hi - lo))
    if not ts:
        return 0.0
    t = ts[0]
    if not -1e-9 <= t <= 1 + 1e-9 or any(abs(s - t) > 1e-7 for s in ts):
        return None
    return t


@pytest.mark.parametrize("neighbours", [1, 3, 50])
def test_synthetic_examples_lie_between_two_real_same_class_examples(neighbours):
    """Each synthetic x is on the segment from its base to one of the base's k nearest."""
    samples = [e for e in stream(400, seed=2, share=0.5) if e.label]
    assert len(samples) > 100
    by_id = {e.id: e for e in samples}
    out = synthesize(samples, 300, neighbours, random.Random(1))
    assert len(out) == 300 and len({x.id for x in out}) == 300
    ts = []
    for example in out:
        assert example.kind == "synthetic" and example.y is True
        base = by_id[example.id.split("~synthetic")[0]]
        # non-numeric features are copied from the base
        assert example.x["colour"] == base.features["colour"]
        assert example.x["flag"] is base.features["flag"]
        assert set(example.x) == set(base.features)
        partners = [
            p for p in samples if p is not base and on_segment(example.x, base, p) is not None
        ]
        assert partners, example

        def distance(p: Event, base: Event = base) -> float:
            return sum((float(p.features[f]) - float(base.features[f])) ** 2 for f in NUMERIC)  # type: ignore[arg-type]

        nearest = sorted((p for p in samples if p is not base), key=distance)[:neighbours]
        assert any(p in nearest for p in partners), example
        ts.append(on_segment(example.x, base, partners[0]))
    # the point is drawn along the whole segment, not only at its ends
    assert min(ts) < 0.1 and max(ts) > 0.9  # type: ignore[type-var]


def test_synthetic_examples_are_not_copies_and_are_reproducible():
    samples = [e for e in stream(200, seed=3, share=0.5) if e.label]
    out = synthesize(samples, 50, 5, random.Random(4))
    assert out == synthesize(samples, 50, 5, random.Random(4))
    assert out != synthesize(samples, 50, 5, random.Random(5))
    real = [tuple(e.features[f] for f in NUMERIC) for e in samples]
    assert sum(tuple(x.x[f] for f in NUMERIC) in real for x in out) < 5


def test_synthesize_duplicates_a_single_sample_and_makes_nothing_for_zero():
    one = Event("only", 0, {"x": 1.5, "c": "red", "gone": None}, label="spam")
    out = synthesize([one], 3, 5, random.Random(0))
    assert [x.kind for x in out] == ["duplicate"] * 3
    assert all(x.x == {"x": 1.5, "c": "red"} and x.y == "spam" for x in out)
    assert synthesize([one, one], 0, 5, random.Random(0)) == []


# --- replay --------------------------------------------------------------------------------


def test_replay_without_sampling_is_river_test_then_train():
    """strategy none: every prediction equals predict_proba_one-then-learn_one in River."""
    events = list(river_events("phishing", start_ts=1_700_000_000_000))
    result = replay(events, load_config(None))
    assert not result.batches and not result.stats
    predictions = [p.to_dict() for p in result.predictions]
    assert assert_matches_river(predictions, river_reference(events)) == len(events) == 1250
    final = result.reports[-1]
    assert final["final"] and final["counts"]["learned"] == 1250
    assert final["cumulative"]["accuracy"] == pytest.approx(river_progressive_accuracy(events))


def labelled_per_class(events: Iterable[dict[str, Any]]) -> Counter[tuple[str, str]]:
    labelled = (e for e in events if e["label"] is not None)
    return Counter((e.get("key", "default"), class_key(e["label"])) for e in labelled)


def stats_totals(stats: Iterable[dict[str, Any]], field: str) -> Counter[tuple[str, str]]:
    out: Counter[tuple[str, str]] = Counter()
    for s in stats:
        for cls, c in s["classes"].items():
            out[s["key"], cls] += c[field]
    return out


def shift_into_the_past(events: list[dict[str, Any]], every: int, by_ms: int) -> int:
    shifted = 0
    for i, e in enumerate(events):
        if i % every == every - 1:
            e["ts"] -= by_ms
            shifted += 1
    return shifted


SAMPLED = {
    "sampling": {
        "strategy": "balanced",
        "budget": 8,
        "oversample": True,
        "window": "1s",
        "max_out_of_orderness": "200ms",
    },
    "metrics": {"report_every": 100},
}


@pytest.mark.parametrize("late_every", [0, 7])
def test_replay_with_a_sampler_reconciles(late_every):
    """seen = predicted + rejected; learned = batch sizes; trained_on = stats' trained;
    per class, stats' seen + late = labelled events (in order, and with late events)."""
    events = list(
        river_events(
            "phishing",
            n=800,
            interval_ms=10,
            keys=("a", "b"),
            unlabelled_fraction=0.2,
            start_ts=1_700_000_000_000,
            seed=3,
        )
    )
    if late_every:
        assert shift_into_the_past(events, late_every, 5000) > 100
    result = replay(events, load_config(SAMPLED))
    assert len(result.predictions) == len(events)
    late = stats_totals(result.stats, "late")
    assert (sum(late.values()) > 50) == bool(late_every)
    assert stats_totals(result.stats, "seen") + late == labelled_per_class(events)

    finals = {r["key"]: r for r in result.reports if r["final"]}
    assert set(finals) == {"a", "b"}
    trained = stats_totals(result.stats, "trained")
    for key, report in finals.items():
        counts = report["counts"]
        assert counts["seen"] == counts["predicted"] + counts["rejected"]
        batches = [b for b in result.batches if b.key == key]
        assert counts["learned"] + counts["learn_failed"] == sum(len(b.examples) for b in batches)
        assert counts["learned"] > 0 and counts["learn_failed"] == 0
        assert report["trained_on"] == {c: n for (k, c), n in sorted(trained.items()) if k == key}
        last = [s for s in result.stats if s["key"] == key][-1]
        assert last["cumulative_trained"] == report["trained_on"]
        assert result.states[key].model_version == counts["learned"]


def test_replay_batches_do_not_depend_on_arrival_order_within_the_watermark_bound():
    """Events displaced by less than max_out_of_orderness: no late events, same batches."""
    events = list(river_events("phishing", n=600, interval_ms=10, start_ts=0, seed=1))
    rng = random.Random(2)
    jittered = sorted(events, key=lambda e: e["ts"] + rng.uniform(0, 150))
    cfg = load_config(SAMPLED)
    a, b = replay(events, cfg), replay(jittered, cfg)
    assert [e["id"] for e in jittered] != [e["id"] for e in events]
    assert sum(stats_totals(b.stats, "late").values()) == 0
    assert b.batches == a.batches
    assert b.stats == a.stats


def test_replay_reports_a_late_only_record_at_the_end():
    """A late event of a class with no window left comes out in a window-null record."""
    events = [
        {"id": "t0", "ts": 0, "features": {"x": 1.0}, "label": True},
        {"id": "f0", "ts": 10, "features": {"x": 0.0}, "label": False},
        {"id": "f1", "ts": 2500, "features": {"x": 0.5}, "label": False},
        {"id": "t1", "ts": 20, "features": {"x": 1.5}, "label": True},  # window 0 has fired
    ]
    cfg = load_config(
        {"sampling": {"strategy": "undersample", "window": "1s", "max_out_of_orderness": 0}}
    )
    result = replay(events, cfg)
    assert [s["window"] for s in result.stats] == [
        {"start": 0, "end": 1000},
        {"start": 2000, "end": 3000},
        None,
    ]
    assert result.stats[-1]["classes"]["true"]["late"] == 1
    assert stats_totals(result.stats, "seen") + stats_totals(
        result.stats, "late"
    ) == labelled_per_class(events)


# --- the point of it all: learning on an imbalanced stream ---------------------------------


@pytest.fixture(scope="module")
def imbalanced() -> list[dict[str, Any]]:
    return list(river_events("hyperplane", n=20_000, minority_share=0.05, interval_ms=10, seed=7))


def stream_scores(events: list[dict[str, Any]], sampling: dict[str, Any]) -> tuple[float, float]:
    cfg = load_config({"sampling": {"window": "1s", "max_out_of_orderness": 0, **sampling}})
    cumulative = replay(events, cfg).reports[-1]["cumulative"]
    return cumulative["balanced_accuracy"], cumulative["per_class"]["1"]["recall"]


#: Measured with this test's stream (hyperplane, 20 000 events, 5 % positives, one
#: 1 s window per 100 events) for seeds 1-7 (7 is the one used here):
#:   none:                 balanced accuracy 0.588-0.613, minority recall 0.185-0.235
#:   balanced (budget 20): balanced accuracy 0.864-0.891, minority recall 0.765-0.824
#:   undersample:          balanced accuracy 0.905-0.927, minority recall 0.885-0.933
#: Seed 7: none 0.613 / 0.235, balanced 0.864 / 0.765, undersample 0.917 / 0.904.
#: The smallest gains over none are 0.25 (balanced accuracy) and 0.53 (recall). With
#: ~1000 minority events a recall has a standard error of ~0.013 (a difference ~0.018),
#: so the margins are ~0.10 and ~0.23 (over 5 SE) below every measured gain, and over
#: 8 SE above the ~0 gain of a sampler that does not rebalance.
MIN_BALANCED_ACCURACY_GAIN = 0.15
MIN_RECALL_GAIN = 0.30


@pytest.fixture(scope="module")
def unsampled(imbalanced) -> tuple[float, float]:
    return stream_scores(imbalanced, {"strategy": "none"})


@pytest.mark.parametrize(
    "sampling",
    [{"strategy": "balanced", "budget": 20}, {"strategy": "undersample"}],
    ids=["balanced", "undersample"],
)
def test_rebalancing_helps_the_minority_class(imbalanced, unsampled, sampling):
    """balanced/undersample beat none on balanced accuracy and minority recall, by a margin."""
    assert 0.04 < sum(e["label"] == 1 for e in imbalanced) / len(imbalanced) < 0.06
    base_ba, base_recall = unsampled
    ba, recall = stream_scores(imbalanced, sampling)
    assert ba - base_ba >= MIN_BALANCED_ACCURACY_GAIN, (base_ba, ba)
    assert recall - base_recall >= MIN_RECALL_GAIN, (base_recall, recall)


def test_synthetic_examples_of_extreme_finite_features_stay_finite():
    """Interpolating between 1e308 and -1e308 must not overflow to infinity."""
    samples = [
        Event("a", 0, {"x": 1e308, "y": 1.0}, label=True),
        Event("b", 0, {"x": -1e308, "y": 2.0}, label=True),
    ]
    out = synthesize(samples, 50, 5, random.Random(1))
    assert len(out) == 50
    assert all(math.isfinite(v) for e in out for v in e.x.values())
    assert all(-1e308 <= e.x["x"] <= 1e308 for e in out)
