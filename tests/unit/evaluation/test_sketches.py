"""QuantileSketch against exact numpy quantiles on several distributions."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from stratiflow.evaluation.sketches import MIN_VALUE, QuantileSketch

QS = [0.0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 1.0]


def distributions() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(42)
    with_zeros = rng.exponential(0.01, 3000)
    with_zeros[rng.random(3000) < 0.3] = 0.0
    return {
        "uniform": rng.uniform(0.0, 2.0, 5000),
        "lognormal_heavy_tail": rng.lognormal(mean=-7.0, sigma=2.5, size=5000),
        "constant": np.full(200, 0.0031),
        "with_zeros": with_zeros,
        "one_value": np.array([0.0425]),
        "wide_range": np.geomspace(MIN_VALUE, 1e6, 1001),
    }


def sketch_of(values: np.ndarray, relative_accuracy: float) -> QuantileSketch:
    s = QuantileSketch(relative_accuracy)
    for v in values:
        s.add(float(v))
    return s


@pytest.mark.parametrize("name", list(distributions()))
@pytest.mark.parametrize("relative_accuracy", [0.01, 0.05])
def test_quantiles_are_within_relative_accuracy(name: str, relative_accuracy: float) -> None:
    values = distributions()[name]
    s = sketch_of(values, relative_accuracy)
    ordered = np.sort(values)
    for q in QS:
        exact = float(np.quantile(values, q, method="lower"))
        assert exact == ordered[math.floor(q * (len(values) - 1))]  # the documented rank
        got = s.quantile(q)
        assert got is not None
        assert abs(got - exact) <= relative_accuracy * exact * (1 + 1e-12), (q, got, exact)
    assert s.count == len(values)
    assert s.max == float(values.max())
    assert math.isclose(s.summary()["mean"], float(np.mean(values)), rel_tol=1e-12)


def test_the_bound_is_not_trivially_loose() -> None:
    # At 5% the estimates are visibly off, yet inside the bound.
    values = distributions()["lognormal_heavy_tail"]
    s = sketch_of(values, 0.05)
    errors = [
        abs(s.quantile(q) - float(np.quantile(values, q, method="lower")))  # type: ignore[operator]
        / float(np.quantile(values, q, method="lower"))
        for q in QS
    ]
    assert 0.01 < max(errors) <= 0.05 * (1 + 1e-12)


def test_values_below_the_minimum_count_as_zero() -> None:
    s = QuantileSketch()
    for v in [0.0, 1e-12, 5e-10, 2.0]:
        s.add(v)
    assert s.zeros == 3 and s.quantile(0.5) == 0.0 and s.quantile(1.0) == 2.0
    assert math.isclose(s.summary()["mean"], (1e-12 + 5e-10 + 2.0) / 4, rel_tol=1e-15)


def test_summary_scales_and_empty_is_none() -> None:
    empty = QuantileSketch()
    assert empty.quantile(0.5) is None
    assert empty.summary() == {"p50": None, "p99": None, "mean": None, "max": None, "count": 0}
    s = sketch_of(np.array([0.001, 0.002, 0.004]), 0.01)
    summary = s.summary(scale=1e6)
    assert summary["count"] == 3 and summary["max"] == 0.004 * 1e6
    assert summary["p50"] == s.quantile(0.5) * 1e6  # type: ignore[operator]
    assert summary["p99"] == s.quantile(0.99) * 1e6  # type: ignore[operator]
    assert math.isclose(summary["mean"], 7e-3 / 3 * 1e6, rel_tol=1e-12)  # type: ignore[arg-type]


def test_merge_equals_one_sketch_of_everything() -> None:
    d = distributions()
    a, b = d["uniform"], d["with_zeros"]
    merged = sketch_of(a, 0.01)
    merged.merge(sketch_of(b, 0.01))
    whole = sketch_of(np.concatenate([a, b]), 0.01)
    assert merged.buckets == whole.buckets and merged.zeros == whole.zeros
    assert merged.count == whole.count and merged.max == whole.max
    assert [merged.quantile(q) for q in QS] == [whole.quantile(q) for q in QS]
    with pytest.raises(ValueError, match="relative_accuracy"):
        merged.merge(QuantileSketch(0.02))


def test_bad_input_is_rejected() -> None:
    s = QuantileSketch()
    for bad in (-1e-3, float("nan")):
        with pytest.raises(ValueError, match="non-negative"):
            s.add(bad)
    assert s.count == 0
    with pytest.raises(ValueError, match="q must be"):
        s.quantile(1.5)
    with pytest.raises(ValueError, match="relative_accuracy"):
        QuantileSketch(0.0)


def test_state_stays_small_and_pickles() -> None:
    rng = np.random.default_rng(7)
    values = rng.lognormal(mean=-6.0, sigma=2.0, size=100_000)
    s = sketch_of(values, 0.01)
    gamma = 1.01 / 0.99
    # One bucket per factor of gamma between min and max, however many values.
    assert len(s.buckets) <= math.log(values.max() / values.min()) / math.log(gamma) + 2
    blob = pickle.dumps(s)
    assert len(blob) < 20_000
    copy = pickle.loads(blob)
    assert [copy.quantile(q) for q in QS] == [s.quantile(q) for q in QS]
    copy.add(1.0)
    assert copy.count == s.count + 1
