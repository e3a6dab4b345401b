"""The hot paths of the core (inlined or short-cut for speed) compute exactly what
the straightforward code they replaced computes."""

from __future__ import annotations

import math
import random
from collections import deque
from typing import Any

import pytest

from stratiflow.config import FeatureRule, MetricsSettings, ValidationSettings, load_config
from stratiflow.evaluation import Evaluation
from stratiflow.evaluation.metrics import (
    LOG_LOSS_EPS,
    CumulativeMetrics,
    FadingMetrics,
    RollingMetrics,
    log_loss_term,
    score_bin,
)
from stratiflow.evaluation.sketches import QuantileSketch
from stratiflow.learning.learner import ModelState, step
from stratiflow.learning.updates import learn_error
from stratiflow.records import Event
from stratiflow.validation.cleaning import Cleaner

# -- reference implementations (the code before the fast paths) ---------------------------


def _ref_add(table: dict[Any, float], key: Any, weight: float) -> None:
    value = table.get(key, 0) + weight
    if value == 0:
        del table[key]
    else:
        table[key] = value


def _ref_tally(m: Any, y_true: Any, y_pred: Any, loss: float, auc_bin: int, weight: int) -> None:
    row = m._cm.setdefault(y_true, {})
    _ref_add(row, y_pred, weight)
    if not row:
        del m._cm[y_true]
    m._loss += weight * loss
    if m.positive is not None:
        _ref_add(m._hist[y_true == m.positive], auc_bin, weight)


def _ref_bin(positive: Any, bins: int, proba: dict[Any, float]) -> int:
    if positive is None:
        return 0
    score = proba.get(positive, 0.0)
    score = min(score, 1.0) if score > 0.0 else 0.0
    return min(int(score * bins), bins - 1)


def _ref_loss(y_true: Any, proba: dict[Any, float]) -> float:
    return -math.log(min(max(proba.get(y_true, 0.0), LOG_LOSS_EPS), 1.0 - LOG_LOSS_EPS))


class _RefCumulative:
    def __init__(self, positive: Any, bins: int) -> None:
        self.positive, self.bins = positive, bins
        self._cm: dict[Any, dict[Any, float]] = {}
        self._loss = 0.0
        self._hist: tuple[dict[int, float], dict[int, float]] = ({}, {})

    def update(self, y_true: Any, y_pred: Any, proba: dict[Any, float]) -> None:
        b = _ref_bin(self.positive, self.bins, proba)
        _ref_tally(self, y_true, y_pred, _ref_loss(y_true, proba), b, 1)


class _RefRolling(_RefCumulative):
    def __init__(self, window: int, positive: Any, bins: int) -> None:
        super().__init__(positive, bins)
        self.window = window
        self._items: deque[tuple[Any, Any, float, int]] = deque()
        self._evicted = 0

    def update(self, y_true: Any, y_pred: Any, proba: dict[Any, float]) -> None:
        b = _ref_bin(self.positive, self.bins, proba)
        item = (y_true, y_pred, _ref_loss(y_true, proba), b)
        self._items.append(item)
        _ref_tally(self, *item, 1)
        if len(self._items) > self.window:
            _ref_tally(self, *self._items.popleft(), -1)
            self._evicted += 1
            if self._evicted % self.window == 0:
                self._loss = math.fsum(i[2] for i in self._items)


def _state(m: Any) -> tuple[Any, ...]:
    # repr keeps the key objects apart: True and 1 are equal dict keys but print differently.
    return (
        repr(m._cm),
        repr(m._hist),
        m._loss.hex(),
        repr(list(getattr(m, "_items", ()))),
        getattr(m, "_evicted", None),
    )


def _stream(seed: int, classes: list[Any], n: int) -> list[tuple[Any, Any, dict[Any, float]]]:
    rng = random.Random(seed)
    edges = [0.0, 1e-20, 0.5, 0.999, 1.0, 1.0 + 1e-12, 0.25, 0.0005, 0.9995]
    out = []
    for _ in range(n):
        y_true, y_pred = rng.choice(classes), rng.choice(classes)
        proba = {c: rng.choice(edges) if rng.random() < 0.2 else rng.random() for c in classes}
        if rng.random() < 0.05:
            proba.pop(rng.choice(classes))  # a class the model has not heard of
        out.append((y_true, y_pred, proba))
    return out


# Labels that are equal as dict keys but not as class keys (True == 1) must keep the
# key object they were first tallied under, exactly as before.
STREAMS = [
    ([True, False], True),
    ([True, 1, False, 0], True),
    (["a", "b", "c"], None),
    ([0, 1, 2], 1),
]


@pytest.mark.parametrize(("classes", "positive"), STREAMS)
@pytest.mark.parametrize("bins", [1, 7, 1000])
def test_cumulative_and_rolling_match_the_reference_tallies(
    classes: list[Any], positive: Any, bins: int
) -> None:
    cum, ref_cum = CumulativeMetrics(positive, bins), _RefCumulative(positive, bins)
    rolls = [
        (RollingMetrics(w, positive, bins), _RefRolling(w, positive, bins)) for w in (1, 3, 50)
    ]
    for y_true, y_pred, proba in _stream(bins, classes, 700):
        cum.update(y_true, y_pred, proba)
        ref_cum.update(y_true, y_pred, proba)
        for m, ref in rolls:
            m.update(y_true, y_pred, proba)
            ref.update(y_true, y_pred, proba)
        assert _state(cum) == _state(ref_cum)
        for m, ref in rolls:
            assert _state(m) == _state(ref)


@pytest.mark.parametrize(("classes", "positive"), STREAMS)
def test_evaluation_score_equals_each_view_updated_on_its_own(
    classes: list[Any], positive: Any
) -> None:
    settings = MetricsSettings(window=20, fading=0.9, auc_bins=13)
    shared = Evaluation.new(settings, positive)
    # Views that do not share the cumulative view's positive class or bins.
    other = "zzz" if positive is not None else classes[0]
    mixed = Evaluation(
        cumulative=CumulativeMetrics(positive, 13),
        rolling=RollingMetrics(20, other, 5),
        fading=FadingMetrics(0.9, positive, 1000),
        history=deque(),
    )
    alone = Evaluation.new(settings, positive)
    alone_mixed = Evaluation(
        cumulative=CumulativeMetrics(positive, 13),
        rolling=RollingMetrics(20, other, 5),
        fading=FadingMetrics(0.9, positive, 1000),
        history=deque(),
    )
    for y_true, y_pred, proba in _stream(3, classes, 500):
        shared.score(y_true, y_pred, proba)
        mixed.score(y_true, y_pred, proba)
        for ev in (alone, alone_mixed):
            for view in (ev.cumulative, ev.rolling, ev.fading):
                assert view is not None
                view.update(y_true, y_pred, proba)
    for a, b in ((shared, alone), (mixed, alone_mixed)):
        for x, y in zip(
            (a.cumulative, a.rolling, a.fading), (b.cumulative, b.rolling, b.fading), strict=True
        ):
            assert _state(x) == _state(y)
            assert x.summary() == y.summary()


def test_loss_term_and_score_bin_match_the_min_max_formulas() -> None:
    values = [0.0, -0.0, 1e-300, 1e-15, 1e-14, 0.3, 0.5, 1 - 1e-15, 1.0, 1.5, -2.0, 1, 0, True]
    for v in values:
        for bins in (1, 2, 10, 1000):
            assert score_bin(v, bins) == _ref_bin(True, bins, {True: v})
        assert log_loss_term("y", {"y": v}) == _ref_loss("y", {"y": v})
    assert score_bin(math.nan, 10) == 0
    assert math.isnan(log_loss_term("y", {"y": math.nan}))
    assert log_loss_term("y", {}) == _ref_loss("y", {})


def test_cleaner_without_rules_only_leaves_out_missing_values_in_a_copy() -> None:
    cleaner = Cleaner(ValidationSettings())
    for x in ({"a": 1.0, "b": "s", "c": True}, {"a": None, "b": 2, "c": None}, {"a": None}):
        out, rejection = cleaner.clean(x)
        assert rejection is None
        assert out == Event("e", 0, dict(x)).model_input()
        assert list(out) == [k for k, v in x.items() if v is not None]
        assert out is not x
        out["new"] = 1  # the caller's dict is never the one handed out
        assert "new" not in x
    assert cleaner.summary() == Cleaner(ValidationSettings()).summary()


def test_cleaner_with_rules_still_cleans() -> None:
    rules = ValidationSettings(features={"x": FeatureRule(missing="impute")})
    cleaner = Cleaner(rules)
    assert cleaner.clean({"x": 2.0, "y": None}) == ({"x": 2.0}, None)
    assert cleaner.clean({"x": None, "y": 1}) == ({"x": 2.0, "y": 1}, None)


def test_sketch_add_keeps_its_edge_cases() -> None:
    s = QuantileSketch()
    for v in (0.0, 1e-10, 2e-9, 1.0):
        s.add(v)
    assert (s.zeros, s.count, sum(s.buckets.values()), s.max) == (2, 4, 2, 1.0)
    for bad in (-1.0, math.nan, -1e-12):
        with pytest.raises(ValueError, match="non-negative"):
            s.add(bad)
    assert s.count == 4


class _FailsToLearn:
    _multiclass = False

    def predict_proba_one(self, x: dict[str, Any]) -> dict[bool, float]:
        return {False: 0.25, True: 0.75}

    def learn_one(self, x: dict[str, Any], y: Any) -> None:
        raise ValueError("x" * 400)


def test_a_failed_learn_is_rejected_as_the_updater_describes_it() -> None:
    state = ModelState.new(load_config({"model": ["linear_model.LogisticRegression"]}))
    state.model = _FailsToLearn()
    out = step(state, Event("a", 5, {"x": 1.0}, label=True), now_ms=0)
    expected = learn_error(ValueError("x" * 400))
    assert out.rejection is not None and out.prediction is None
    assert out.rejection.reason == "model_rejected_input"
    assert out.rejection.detail == f"the model raised {expected} during learn"
    c = state.counts
    assert (c.seen, c.rejected, c.learned, c.learn_failed, c.predicted, c.labelled) == (
        1,
        1,
        0,
        0,
        0,
        0,
    )
    assert state.cost.learn.count == 0 and state.cost.predict.count == 0
    assert state.trained_on == {} and state.last_ts is None


def test_a_learned_event_is_recorded_as_before() -> None:
    state = ModelState.new(load_config({"model": ["linear_model.LogisticRegression"]}))
    for i, label in enumerate([True, False, True]):
        out = step(state, Event(str(i), 10 - i, {"x": float(i)}, label=label), now_ms=7)
        assert out.prediction is not None and out.prediction.model_version == i
    assert state.trained_on == {"true": 2, "false": 1}
    assert state.cost.learn.count == 3 and state.cost.predict.count == 3
    assert state.last_ts == 10 and state.counts.learned == 3 and state.counts.scored == 3
