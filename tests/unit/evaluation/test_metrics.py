"""The metric sets against scikit-learn (and River) on the same predictions.

Every field of ``summary()`` is recomputed here from the raw stream with
scikit-learn -- on all items (cumulative), the last ``window`` items (rolling),
or all items with ``sample_weight = alpha ** (n - 1 - i)`` (fading).
"""

from __future__ import annotations

import math
import pickle
import random
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from river import metrics as river_metrics
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    cohen_kappa_score,
    matthews_corrcoef,
    precision_recall_fscore_support,
    roc_auc_score,
)

from stratiflow.evaluation.metrics import (
    CumulativeMetrics,
    FadingMetrics,
    RollingMetrics,
)
from stratiflow.records import Label, class_key

Item = tuple[Label, Label, dict[Label, float]]
TOL = 1e-9


# ---------------------------------------------------------------- streams


def binary_stream(n: int, seed: int, centres: int | None = 1000) -> list[Item]:
    """Bool labels, imperfect probabilities, a few probas missing the False class.

    Scores sit on the centres of ``centres`` equal bins, where the histogram
    ROC AUC is exact, unless ``centres`` is None.
    """
    rng = random.Random(seed)
    items: list[Item] = []
    for _ in range(n):
        y = rng.random() < 0.4
        score = min(max(rng.gauss(0.6 if y else 0.4, 0.2), 0.0), 1.0)
        if centres is not None:
            score = (min(int(score * centres), centres - 1) + 0.5) / centres
        y_pred = score > 0.5
        if rng.random() < 0.05:
            y_pred = not y_pred  # predictions that disagree with their own proba
        proba: dict[Label, float] = {True: score, False: 1.0 - score}
        if rng.random() < 0.02:
            proba = {True: score}  # no False: log loss clips at 1e-15 when y is False
        items.append((y, y_pred, proba))
    return items


def multiclass_stream(n: int, seed: int, n_classes: int) -> list[Item]:
    """String classes; the second-to-last is never predicted, the last never true."""
    names = ["ant", "bee", "cat", "dog", "eel"][:n_classes]
    truths = names[:-1]
    preds = [*names[:-2], names[-1]]
    rng = random.Random(seed)
    items: list[Item] = []
    for _ in range(n):
        y = rng.choice(truths)
        y_pred = y if y in preds and rng.random() < 0.5 else rng.choice(preds)
        raw = {c: rng.random() + (2.0 if c == y_pred else 0.0) for c in preds}
        total = sum(raw.values())
        items.append((y, y_pred, {c: v / total for c, v in raw.items()}))
    return items


# ---------------------------------------------------------------- reference


def reference(
    items: Sequence[Item],
    weights: Sequence[float] | None = None,
    positive: Label | None = None,
) -> dict[str, Any]:
    """The summary recomputed with scikit-learn (log loss with numpy)."""
    y_true = [t for t, _, _ in items]
    y_pred = [p for _, p, _ in items]
    sw = None if weights is None else np.asarray(weights, dtype=float)
    labels = sorted(set(y_true) | set(y_pred), key=class_key)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns on every undefined value
        kw: dict[str, Any] = {"labels": labels, "zero_division": 0, "sample_weight": sw}
        p, r, f, s = precision_recall_fscore_support(y_true, y_pred, average=None, **kw)
        macro = precision_recall_fscore_support(y_true, y_pred, average="macro", **kw)
        weighted = precision_recall_fscore_support(y_true, y_pred, average="weighted", **kw)
        kappa = cohen_kappa_score(y_true, y_pred, sample_weight=sw)
        mcc = matthews_corrcoef(y_true, y_pred, sample_weight=sw)
        balanced = balanced_accuracy_score(y_true, y_pred, sample_weight=sw)
    true_p = np.array([proba.get(t, 0.0) for t, _, proba in items])
    log_loss = np.average(-np.log(np.clip(true_p, 1e-15, 1 - 1e-15)), weights=sw)
    auc = None
    if positive is not None:
        truth = np.array([t == positive for t in y_true])
        score = [proba.get(positive, 0.0) for _, _, proba in items]
        w = np.ones(len(items)) if sw is None else sw
        if w[truth].sum() > 0 and w[~truth].sum() > 0:
            auc = roc_auc_score(truth, score, sample_weight=sw)
    names = ("precision", "recall", "f1")
    return {
        "n": len(items) if sw is None else float(sw.sum()),
        "accuracy": accuracy_score(y_true, y_pred, sample_weight=sw),
        "balanced_accuracy": balanced,
        "macro": dict(zip(names, macro[:3], strict=True)),
        "weighted": dict(zip(names, weighted[:3], strict=True)),
        "kappa": None if math.isnan(kappa) else kappa,
        "mcc": mcc,
        "log_loss": log_loss,
        "roc_auc": auc,
        "per_class": {
            class_key(c): {
                "precision": p[i],
                "recall": r[i],
                "f1": f[i],
                "support": int(s[i]) if sw is None else s[i],
            }
            for i, c in enumerate(labels)
        },
    }


def assert_matches(ours: Any, ref: Any, path: str = "summary") -> None:
    if isinstance(ref, dict):
        assert isinstance(ours, dict), path
        assert set(ours) == set(ref), f"{path}: {sorted(ours)} != {sorted(ref)}"
        for k in ref:
            assert_matches(ours[k], ref[k], f"{path}.{k}")
    elif ref is None:
        assert ours is None, f"{path}: {ours} is not None"
    else:
        assert ours is not None, f"{path}: None, expected {ref}"
        assert math.isclose(ours, ref, rel_tol=TOL, abs_tol=TOL), f"{path}: {ours} != {ref}"


def assert_types(summary: dict[str, Any], count_type: type) -> None:
    """Plain JSON types: Python floats (not numpy), ints for counts unless fading."""
    assert list(summary) == [
        "n",
        "accuracy",
        "balanced_accuracy",
        "macro",
        "weighted",
        "kappa",
        "mcc",
        "log_loss",
        "roc_auc",
        "per_class",
    ]
    assert type(summary["n"]) is count_type
    for key in ("accuracy", "balanced_accuracy", "kappa", "mcc", "log_loss", "roc_auc"):
        assert summary[key] is None or type(summary[key]) is float, key
    for avg in ("macro", "weighted"):
        assert list(summary[avg]) == ["precision", "recall", "f1"]
        assert all(v is None or type(v) is float for v in summary[avg].values())
    assert list(summary["per_class"]) == sorted(summary["per_class"])
    for scores in summary["per_class"].values():
        assert list(scores) == ["precision", "recall", "f1", "support"]
        assert type(scores["support"]) is count_type
        assert all(type(scores[k]) is float for k in ("precision", "recall", "f1"))


def fading_weights(n: int, alpha: float) -> np.ndarray:
    return alpha ** np.arange(n - 1, -1, -1, dtype=float)


STREAMS = {
    "binary": (lambda: binary_stream(3000, seed=1), True),
    "multiclass3": (lambda: multiclass_stream(1500, seed=2, n_classes=3), None),
    "multiclass5": (lambda: multiclass_stream(1500, seed=3, n_classes=5), None),
}


# ---------------------------------------------------------------- cumulative


@pytest.mark.parametrize("name", list(STREAMS))
def test_cumulative_equals_sklearn(name: str) -> None:
    make, positive = STREAMS[name]
    items = make()
    m = CumulativeMetrics(positive=positive)
    checkpoints = {1, 2, 7, 100, len(items)}
    for k, (y, p, proba) in enumerate(items, start=1):
        m.update(y, p, proba)
        if k in checkpoints:
            s = m.summary()
            assert_types(s, int)
            assert_matches(s, reference(items[:k], positive=positive))
    assert m.n == len(items)


def test_multiclass_streams_have_the_awkward_classes() -> None:
    s = CumulativeMetrics()
    for item in multiclass_stream(500, seed=3, n_classes=5):
        s.update(*item)
    per_class = s.summary()["per_class"]
    assert per_class["dog"]["precision"] == 0.0 and per_class["dog"]["support"] > 0
    assert per_class["eel"]["recall"] == 0.0 and per_class["eel"]["support"] == 0


@pytest.mark.parametrize("name", list(STREAMS))
def test_cumulative_equals_river(name: str) -> None:
    make, _ = STREAMS[name]
    items = make()
    ours = CumulativeMetrics()
    river = {
        "accuracy": river_metrics.Accuracy(),
        "kappa": river_metrics.CohenKappa(),
        "macro_f1": river_metrics.MacroF1(),
    }
    if name == "binary":
        river["mcc"] = river_metrics.MCC(pos_val=True)  # River's MCC is binary only
    for y, p, proba in items:
        ours.update(y, p, proba)
        for metric in river.values():
            metric.update(y, p)
    s = ours.summary()
    got = {"accuracy": s["accuracy"], "kappa": s["kappa"], "macro_f1": s["macro"]["f1"]}
    got["mcc"] = s["mcc"]
    for key, metric in river.items():
        assert math.isclose(got[key], metric.get(), rel_tol=TOL, abs_tol=TOL), key


# ---------------------------------------------------------------- rolling


@pytest.mark.parametrize("name", list(STREAMS))
@pytest.mark.parametrize("window", [1, 60])
def test_rolling_equals_sklearn_on_the_window(name: str, window: int) -> None:
    make, positive = STREAMS[name]
    items = make()[:800]
    m = RollingMetrics(window, positive=positive)
    checkpoints = {1, 2, window - 1, window, window + 1, 2 * window + 3, 777, 800}
    for k, (y, p, proba) in enumerate(items, start=1):
        m.update(y, p, proba)
        if k in checkpoints:
            s = m.summary()
            assert_types(s, int)
            assert_matches(s, reference(items[max(0, k - window) : k], positive=positive))
            assert m.n == min(k, window)


def test_rolling_forgets_classes_that_left_the_window() -> None:
    m = RollingMetrics(3)
    for y in ["a", "a", "b", "b", "b"]:
        m.update(y, y, {y: 1.0})
    s = m.summary()
    assert list(s["per_class"]) == ["b"] and s["n"] == 3
    assert len(m._cm) == 1 and len(m._items) == 3  # state is bounded by the window


def test_rolling_log_loss_does_not_drift() -> None:
    # Losses of very different sizes, added and subtracted 20,000 times.
    m = RollingMetrics(10)
    losses: list[float] = []
    for i in range(20_000):
        p = 1e-15 if i % 7 == 0 else 1 - 1e-6 * (i % 5)
        m.update(True, True, {True: p})
        losses.append(-math.log(min(max(p, 1e-15), 1 - 1e-15)))
        exact = math.fsum(losses[-10:]) / min(i + 1, 10)
        assert math.isclose(m.summary()["log_loss"], exact, rel_tol=1e-12)


# ---------------------------------------------------------------- fading


@pytest.mark.parametrize("name", list(STREAMS))
@pytest.mark.parametrize("alpha", [0.5, 0.9, 0.99, 0.999])
def test_fading_equals_sklearn_with_fading_weights(name: str, alpha: float) -> None:
    make, positive = STREAMS[name]
    items = make()
    m = FadingMetrics(alpha, positive=positive)
    checkpoints = {1, 2, 50, len(items)}
    for k, (y, p, proba) in enumerate(items, start=1):
        m.update(y, p, proba)
        if k in checkpoints:
            s = m.summary()
            assert_types(s, float)
            assert_matches(s, reference(items[:k], fading_weights(k, alpha), positive))
    if (len(items) - 1) * math.log(1 / alpha) > math.log(FadingMetrics.renormalise_above):
        assert m._unit <= FadingMetrics.renormalise_above  # so it has renormalised


@pytest.mark.parametrize("alpha", [0.99, 0.999])
def test_fading_long_stream_with_frequent_renormalisation(alpha: float) -> None:
    items = binary_stream(5000, seed=5)
    m = FadingMetrics(alpha, positive=True)
    m.renormalise_above = 10.0  # rescales every ~230 (0.99) or ~2300 (0.999) updates
    unplugged = FadingMetrics(alpha, positive=True)
    unplugged.renormalise_above = math.inf
    for item in items:
        m.update(*item)
        unplugged.update(*item)
    ref = reference(items, fading_weights(len(items), alpha), positive=True)
    assert m._unit <= 10.0 < unplugged._unit
    assert_matches(m.summary(), ref)
    assert_matches(unplugged.summary(), ref)


def test_fading_weights_are_as_documented() -> None:
    m = FadingMetrics(0.5)
    for y in ["a", "a", "b"]:
        m.update(y, "a", {"a": 1.0})
    s = m.summary()
    assert s["n"] == 1.75
    assert s["per_class"] == {
        "a": {"precision": 0.75 / 1.75, "recall": 1.0, "f1": 1.5 / 2.5, "support": 0.75},
        "b": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1.0},
    }


# ---------------------------------------------------------------- ROC AUC


def same_bin_share(items: Sequence[Item], bins: int, weights: np.ndarray) -> float:
    """The weighted share of (positive, negative) pairs whose scores share a bin."""
    score = np.array([proba.get(True, 0.0) for _, _, proba in items])
    b = np.minimum((np.clip(score, 0, 1) * bins).astype(int), bins - 1)
    truth = np.array([t is True for t, _, _ in items])
    pos = np.bincount(b[truth], weights=weights[truth], minlength=bins)
    neg = np.bincount(b[~truth], weights=weights[~truth], minlength=bins)
    return float(pos @ neg / (pos.sum() * neg.sum()))


def binary_auc_metrics(bins: int, alpha: float | None) -> CumulativeMetrics | FadingMetrics:
    """Cumulative metrics, or fading ones when ``alpha`` is given, with True as positive."""
    if alpha is None:
        return CumulativeMetrics(True, auc_bins=bins)
    return FadingMetrics(alpha, True, auc_bins=bins)


@pytest.mark.parametrize("bins", [5, 50, 1000])
@pytest.mark.parametrize("alpha", [None, 0.995])
def test_auc_error_is_within_half_the_same_bin_share(bins: int, alpha: float | None) -> None:
    items = binary_stream(2000, seed=6, centres=None)
    weights = np.ones(len(items)) if alpha is None else fading_weights(len(items), alpha)
    m = binary_auc_metrics(bins, alpha)
    for item in items:
        m.update(*item)
    ours = m.summary()["roc_auc"]
    exact = roc_auc_score(
        [t for t, _, _ in items], [p.get(True, 0.0) for _, _, p in items], sample_weight=weights
    )
    share = same_bin_share(items, bins, weights)
    assert share > 0
    assert abs(ours - exact) <= 0.5 * share + 1e-12
    if bins == 5:
        assert abs(ours - exact) > 1e-6  # coarse bins really do approximate


@pytest.mark.parametrize("bins", [10, 1000])
@pytest.mark.parametrize("alpha", [None, 0.995])
def test_auc_is_exact_on_bin_centres(bins: int, alpha: float | None) -> None:
    items = binary_stream(2000, seed=7, centres=bins)
    weights = None if alpha is None else fading_weights(len(items), alpha)
    m = binary_auc_metrics(bins, alpha)
    for item in items:
        m.update(*item)
    assert_matches(m.summary()["roc_auc"], reference(items, weights, positive=True)["roc_auc"])


def test_auc_needs_both_classes_and_a_positive() -> None:
    m = CumulativeMetrics(positive=True)
    m.update(True, True, {True: 0.9})
    assert m.summary()["roc_auc"] is None
    m.update(False, True, {True: 0.9})
    assert m.summary()["roc_auc"] == 0.5
    assert CumulativeMetrics().summary()["roc_auc"] is None
    # Out-of-range and NaN scores land in the end bins instead of failing.
    m.update(False, False, {True: float("nan")})
    m.update(False, False, {True: -0.5})
    m.update(True, True, {True: 7.0})
    # positives in bins 900 and 999; negatives in bins 900, 0, 0
    assert m.summary()["roc_auc"] == pytest.approx((0.5 + 1 + 1 + 1 + 1 + 1) / 6)


# ---------------------------------------------------------------- edge cases


@pytest.mark.parametrize(
    ("make", "count_type"),
    [
        (CumulativeMetrics, int),
        (lambda: RollingMetrics(5), int),
        (lambda: FadingMetrics(0.9), float),
    ],
)
def test_empty_summary_is_all_none(make: Any, count_type: type) -> None:
    s = make().summary()
    assert_types(s, count_type)
    assert s["n"] == 0 and s["per_class"] == {}
    values = [s[k] for k in ("accuracy", "balanced_accuracy", "kappa", "mcc", "log_loss")]
    values += [*s["macro"].values(), *s["weighted"].values(), s["roc_auc"]]
    assert values == [None] * len(values)


@pytest.mark.parametrize(
    "make", [CumulativeMetrics, lambda: RollingMetrics(4), lambda: FadingMetrics(0.8)]
)
def test_a_single_class(make: Any) -> None:
    items: list[Item] = [("a", "a", {"a": 0.7})] * 6
    m = make()
    for item in items:
        m.update(*item)
    s = m.summary()
    # sklearn: kappa undefined (nan -> None), MCC defined as 0.0 for zero variance.
    assert s["accuracy"] == 1.0 and s["kappa"] is None and s["mcc"] == 0.0
    assert s["balanced_accuracy"] == 1.0 and s["macro"]["f1"] == 1.0
    n = len(m._items) if isinstance(m, RollingMetrics) else len(items)
    w = fading_weights(n, m.alpha) if isinstance(m, FadingMetrics) else None
    assert_matches(s, reference(items[-n:], w))


def test_predicted_but_never_true_and_constant_predictions() -> None:
    items: list[Item] = [("a", "b", {}), ("a", "b", {}), ("c", "b", {"c": 0.5})]
    m = CumulativeMetrics()
    for item in items:
        m.update(*item)
    s = m.summary()
    # "b" (predicted, never true) is left out of balanced accuracy but is in macro.
    assert s["balanced_accuracy"] == 0.0 and s["mcc"] == 0.0 and s["kappa"] == 0.0
    assert_matches(s, reference(items))


@pytest.mark.parametrize(
    "make",
    [
        lambda: CumulativeMetrics(positive=True),
        lambda: RollingMetrics(100, positive=True),
        lambda: FadingMetrics(0.5, positive=True),
    ],
)
def test_pickle_round_trip_mid_stream(make: Any) -> None:
    items = binary_stream(1500, seed=8)
    m = make()
    for item in items[:700]:
        m.update(*item)
    copy = pickle.loads(pickle.dumps(m))
    assert copy.summary() == m.summary()
    for item in items[700:]:
        m.update(*item)
        copy.update(*item)
    assert copy.summary() == m.summary()


def test_pickled_state_is_small() -> None:
    items = binary_stream(10_000, seed=9)
    cumulative, fading = CumulativeMetrics(positive=True), FadingMetrics(0.999, positive=True)
    rolling = RollingMetrics(500, positive=True)
    sizes = []
    for i, item in enumerate(items, start=1):
        for m in (cumulative, fading, rolling):
            m.update(*item)
        if i in (2_000, 10_000):
            sizes.append(len(pickle.dumps(rolling)))
    assert len(pickle.dumps(cumulative)) < 50_000
    assert len(pickle.dumps(fading)) < 50_000
    assert sizes[1] <= sizes[0] * 1.1  # the window does not grow


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="window"):
        RollingMetrics(0)
    with pytest.raises(ValueError, match="alpha"):
        FadingMetrics(1.0)
    with pytest.raises(ValueError, match="auc_bins"):
        CumulativeMetrics(auc_bins=0)
