"""Tomek-link cleaning (:mod:`stratiflow.sampling.tomek`).

Checked: on random data with two and three classes (continuous and on an integer
grid, where distances tie) the drops equal those of a plain-Python reference;
a hand-made sample; imbalanced-learn's ``TomekLinks`` when it is installed;
string, boolean and missing features; and samples with nothing to drop.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence

import pytest

from stratiflow.records import class_key
from stratiflow.sampling import tomek
from stratiflow.sampling.tomek import drop_tomek_links, tomek_drops
from stratiflow.sampling.windows import Example


def reference_drops(examples: Sequence[Example]) -> list[int]:
    """Tomek drops by brute force: plain loops, no numpy."""
    n = len(examples)
    names = sorted({f for e in examples for f in e.x})
    points = [[float(e.x.get(f, 0.0)) for f in names] for e in examples]
    nearest = []
    for i in range(n):
        best, best_j = float("inf"), -1
        for j in range(n):
            if j == i:
                continue
            d = 0.0
            for a, b in zip(points[i], points[j], strict=True):
                d += (a - b) * (a - b)
            if d < best:  # strict: ties keep the lowest index
                best, best_j = d, j
        nearest.append(best_j)
    counts = Counter(e.y for e in examples)
    if len(counts) < 2:
        return []
    minority = min(sorted(counts), key=lambda c: counts[c])
    return [
        i
        for i in range(n)
        if examples[i].y != minority
        and examples[nearest[i]].y != examples[i].y
        and nearest[nearest[i]] == i
    ]


def random_sample(seed: int, classes: int, grid: bool) -> list[Example]:
    rng = random.Random(seed)
    n = rng.randint(0, 80)
    weights = [rng.random() + 0.05 for _ in range(classes)]
    out = []
    for i in range(n):
        y = rng.choices(range(classes), weights)[0]
        if grid:
            x = {"a": float(rng.randint(0, 6)), "b": float(rng.randint(0, 6))}
        else:
            x = {"a": rng.gauss(y, 1.0), "b": rng.gauss(-y, 1.5)}
        out.append(Example(f"e{i}", x, y))
    return out


@pytest.mark.parametrize("classes", [2, 3])
@pytest.mark.parametrize("grid", [False, True], ids=["continuous", "grid"])
def test_matches_the_brute_force_reference(classes: int, grid: bool) -> None:
    dropped = 0
    for seed in range(150):
        sample = random_sample(seed, classes, grid)
        expected = reference_drops(sample)
        assert tomek_drops(sample) == expected, seed
        dropped += len(expected)
    assert dropped > 100  # the check is not vacuous


def test_row_blocks_give_the_same_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    samples = [random_sample(seed, 3, grid=seed % 2 == 0) for seed in range(40)]
    whole = [tomek_drops(s) for s in samples]
    monkeypatch.setattr(tomek, "_BLOCK_FLOATS", 7)  # a few rows per block
    assert [tomek_drops(s) for s in samples] == whole
    assert whole == [reference_drops(s) for s in samples]


def test_hand_made_sample() -> None:
    # 0 ... 1 ....... 2 3 ..... 4 5 ; minority class is "m" (indices 1 and 5)
    xs = [0.0, 1.0, 5.0, 5.5, 10.0, 10.2]
    ys = ["M", "m", "M", "M", "M", "m"]
    sample = [Example(f"e{i}", {"x": x}, y) for i, (x, y) in enumerate(zip(xs, ys, strict=True))]
    # links: 0-1 (M-m) and 4-5 (M-m); 2-3 are each other's nearest but the same class
    assert tomek_drops(sample) == [0, 4]
    kept, dropped = drop_tomek_links(sample)
    assert [e.id for e in kept] == ["e1", "e2", "e3", "e5"]
    assert dropped == 2


def test_two_non_minority_members_both_go() -> None:
    sample = [
        Example("a", {"x": 0.0}, "rare"),
        Example("b", {"x": 10.0}, "rare"),
        Example("c", {"x": 3.0}, "big"),
        Example("d", {"x": 3.1}, "mid"),
        Example("e", {"x": 20.0}, "big"),
        Example("f", {"x": 30.0}, "mid"),
        Example("g", {"x": 40.0}, "big"),
        Example("h", {"x": 50.0}, "mid"),
    ]
    # minority "rare"; c-d links "big" and "mid", so both go
    assert tomek_drops(sample) == [2, 3]


def test_equal_classes_keep_the_lowest_label() -> None:
    # two classes of two: "a" counts as the minority (lowest label), "b" members go
    sample = [
        Example("0", {"x": 0.0}, "b"),
        Example("1", {"x": 0.1}, "a"),
        Example("2", {"x": 9.0}, "a"),
        Example("3", {"x": 9.1}, "b"),
    ]
    assert tomek_drops(sample) == [0, 3]
    bools = [Example(e.id, e.x, e.y == "a") for e in sample]  # False < True: False is kept
    assert tomek_drops(bools) == [1, 2]


def test_nearest_neighbour_ties_go_to_the_lowest_index() -> None:
    # 1 is as close to 0 as to 2; it takes 0, so 1-0 is a link and 1-2 is not
    sample = [
        Example("0", {"x": 0.0}, 1),
        Example("1", {"x": 1.0}, 0),
        Example("2", {"x": 2.0}, 1),
        Example("3", {"x": 2.5}, 0),
        Example("4", {"x": 9.0}, 0),
    ]
    assert tomek_drops(sample) == [1, 3]


def test_string_bool_and_missing_features() -> None:
    sample = [
        Example("a", {"x": 0.0, "city": "Oslo", "vip": True}, True),
        Example("b", {"x": 0.0, "city": "Oslo"}, False),  # vip missing: 0, distance 1
        Example("c", {"x": 0.0, "city": "Rome", "vip": True}, False),  # distance 2 to a
        Example("d", {"x": 50.0, "city": "Rome", "vip": False}, False),
        Example("e", {"x": 50.0, "city": None, "vip": False}, False),
    ]
    # squared distances: a-b 1 (vip), a-c 2 (city), b-c 3; a and b are each other's
    # nearest (a link), c's nearest is a; d-e (1) are the same class
    assert tomek_drops(sample) == [1]
    # "city=Oslo" as a plain numeric feature does not collide with the one-hot column
    odd = [
        Example("p", {"city": "Oslo"}, True),
        Example("q", {"city=Oslo": 1.0}, False),
        Example("r", {"city": "Oslo", "city=Oslo": 1.0}, False),
    ]
    assert tomek_drops(odd) == [2]


def test_non_finite_numbers_count_as_zero() -> None:
    sample = [
        Example("a", {"x": float("nan")}, True),
        Example("b", {"x": 0.5}, False),
        Example("c", {"x": float("inf")}, False),
        Example("d", {"x": 0.0}, False),
    ]
    # a, c and d all sit at 0: a and c are each other's nearest (lowest index)
    assert tomek_drops(sample) == [2]


@pytest.mark.parametrize(
    "sample",
    [
        [],
        [Example("a", {"x": 1.0}, True)],
        [Example(f"e{i}", {"x": float(i % 3)}, "same") for i in range(10)],
    ],
    ids=["empty", "single", "one-class"],
)
def test_nothing_to_drop(sample: list[Example]) -> None:
    assert tomek_drops(sample) == []
    assert drop_tomek_links(sample) == (sample, 0)


def test_labels_are_told_apart_by_class_key() -> None:
    # True and 1 are equal in Python but distinct classes here
    sample = [Example("a", {"x": 0.0}, True), Example("b", {"x": 0.1}, 1)]
    assert class_key(True) != class_key(1)
    assert len(tomek_drops(sample)) == 1


@pytest.mark.parametrize("classes", [2, 3])
def test_agrees_with_imbalanced_learn(classes: int) -> None:
    imblearn = pytest.importorskip("imblearn.under_sampling")
    np = pytest.importorskip("numpy")
    for seed in range(30):
        sample = random_sample(seed, classes, grid=False)
        if len({e.y for e in sample}) < 2:
            continue
        X = np.array([[e.x["a"], e.x["b"]] for e in sample])
        y = np.array([e.y for e in sample])
        sampler = imblearn.TomekLinks()
        sampler.fit_resample(X, y)
        kept = set(sampler.sample_indices_.tolist())
        assert tomek_drops(sample) == [i for i in range(len(sample)) if i not in kept]
