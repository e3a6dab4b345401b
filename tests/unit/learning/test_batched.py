"""step_many: River's many-methods on the same micro-batches, and step's outputs event by event.

Two references. River run directly (``predict_proba_many`` then ``learn_many`` per
consecutive batch) must give exactly the probabilities and weights ``step_many``
gives. ``step`` per event (``predict_proba_one``) must give the same everything,
the probabilities within float rounding.
"""

from __future__ import annotations

import random
from dataclasses import fields, replace
from typing import Any, NamedTuple

import pandas as pd
import pytest
from river import linear_model, preprocessing

from stratiflow.config import load_config
from stratiflow.io.sources import river_events
from stratiflow.learning import batchable, finish, step_many
from stratiflow.learning.learner import ModelState, StepOutput, step
from stratiflow.records import Event

#: Largest |P(class)| difference from predict_proba_one accepted (what is found is printed).
TOLERANCE = 1e-9


def agrawal(n: int = 2000, unlabelled_fraction: float = 0.0) -> list[Event]:
    """Agrawal (seed 42), one event a second, labels as booleans (the binary model's)."""
    return [
        Event(
            e["id"],
            e["ts"],
            e["features"],
            None if e["label"] is None else bool(e["label"]),
            e["key"],
        )
        for e in river_events("agrawal", n=n, unlabelled_fraction=unlabelled_fraction)
    ]


def micro(batch_size: int = 32, interval: int = 0, **sections: Any) -> ModelState:
    update = {"mode": "micro_batch", "batch_size": batch_size, "interval": interval}
    return ModelState.new(load_config({"update": update, **sections}))


def run_step(state: ModelState, events, *, report_every=0, waiting=None) -> list[StepOutput]:
    return [
        step(state, e, now_ms=7, report_every=report_every, learn=True, waiting=waiting)
        for e in events
    ]


def run_many(state, events, *, chunk=None, report_every=0, waiting=None) -> list[StepOutput]:
    chunk = chunk or max(len(events), 1)
    outputs = []
    for i in range(0, len(events), chunk):
        outputs += step_many(
            state, events[i : i + chunk], now_ms=7, report_every=report_every, waiting=waiting
        )
    return outputs


def largest_difference(expected: list[StepOutput], got: list[StepOutput]) -> float:
    """Assert the outputs equal but for the probabilities' values; their largest difference."""
    assert len(expected) == len(got)
    worst = 0.0
    for e, g in zip(expected, got, strict=True):
        assert e.rejection == g.rejection and e.report_due == g.report_due
        assert (e.prediction is None) == (g.prediction is None)
        if e.prediction is None:
            continue
        pe, pg = e.prediction, g.prediction
        assert list(pe.proba) == list(pg.proba)  # the same classes, in the same order
        assert all(type(c) is type(d) for c, d in zip(pe.proba, pg.proba, strict=True))
        worst = max([worst, *(abs(pe.proba[c] - pg.proba[c]) for c in pe.proba)])
        near_tie = max(pe.proba.values()) - min(pe.proba.values()) < 2 * TOLERANCE
        if near_tie:
            pg = replace(pg, y_pred=pe.y_pred)
        assert replace(pe, proba={}) == replace(pg, proba={})
    return worst


def plain(counts: Any) -> dict[str, Any]:
    """A dataclass's fields, a quantile sketch (no ``==``) by its count."""
    return {
        f.name: getattr(getattr(counts, f.name), "count", getattr(counts, f.name))
        for f in fields(counts)
    }


def assert_same_state(a: ModelState, b: ModelState) -> None:
    assert a.counts == b.counts
    assert plain(a.labels) == plain(b.labels)
    assert a.trained_on == b.trained_on
    assert a.last_ts == b.last_ts
    assert a.cost.predict.count == b.cost.predict.count
    assert a.cost.learn.count == b.cost.learn.count
    ua, ub = a.updater, b.updater
    assert (ua.buffer, ua.since, ua.batches, ua.fallback_batches) == (
        ub.buffer,
        ub.since,
        ub.batches,
        ub.fallback_batches,
    )
    assert a.cleaner.summary() == b.cleaner.summary()
    sa, sb = a.evaluation.cumulative.summary(), b.evaluation.cumulative.summary()
    # The log loss sums probabilities that may differ in the last bits; all else counts.
    assert sa.pop("log_loss") == pytest.approx(sb.pop("log_loss"), rel=1e-12)
    assert sa == sb


def weights(state: ModelState) -> dict[str, float]:
    return dict(state.model["LogisticRegression"].weights)


class Compared(NamedTuple):
    expected: list[StepOutput]  # step's
    got: list[StepOutput]  # step_many's
    worst: float  # the largest probability difference
    waiting: tuple[dict, dict]  # step's and step_many's waiting predictions


def compare_with_step(state_step, state_many, events, *, report_every=0, waiting=False):
    """Run step and step_many on the same events; assert they agree (see above)."""
    waits: tuple[dict, dict] = ({}, {})
    expected = run_step(
        state_step, events, report_every=report_every, waiting=waits[0] if waiting else None
    )
    got = run_many(
        state_many, events, report_every=report_every, waiting=waits[1] if waiting else None
    )
    worst = largest_difference(expected, got)
    assert worst < TOLERANCE
    assert_same_state(state_step, state_many)
    return Compared(expected, got, worst, waits)


# -- against River's many-methods on the same batches ---------------------------------------


@pytest.mark.parametrize("batch_size", [32, 256])
def test_equals_river_many_methods_on_the_same_batches(batch_size):
    events = agrawal(2000)
    state = micro(batch_size)
    outputs = step_many(state, events, now_ms=0)
    finish(state)  # learn the last, partial batch too

    model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    expected = []
    for i in range(0, len(events), batch_size):
        batch = events[i : i + batch_size]
        X = pd.DataFrame([e.features for e in batch])
        proba = model.predict_proba_many(X)
        expected += [dict(zip(proba.columns, row, strict=True)) for row in proba.to_numpy()]
        model.learn_many(X, pd.Series([e.label for e in batch]))

    assert [o.prediction.proba for o in outputs] == expected  # exactly, not approximately
    # Plain Python classes and floats (numpy's would not be JSON, np.True_ is not True).
    assert all(
        [type(c) for c in o.prediction.proba] == [bool, bool]
        and all(type(p) is float for p in o.prediction.proba.values())
        for o in outputs
    )
    assert [o.prediction.model_version for o in outputs[batch_size - 1 : batch_size + 1]] == [
        0,
        batch_size,
    ]
    assert weights(state) == dict(model["LogisticRegression"].weights)
    assert state.model["LogisticRegression"].intercept == model["LogisticRegression"].intercept
    assert state.model["StandardScaler"].means == model["StandardScaler"].means
    assert state.model["StandardScaler"].vars == model["StandardScaler"].vars
    assert state.updater.batches == -(-len(events) // batch_size)


# -- against step, event by event ------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [32, 256])
def test_equals_step_but_for_rounding(batch_size):
    events = agrawal(2000, unlabelled_fraction=0.2)
    expected, got, worst, waits = compare_with_step(
        micro(batch_size), micro(batch_size), events, report_every=100, waiting=True
    )
    print(f"batch {batch_size}: largest |P| difference from predict_proba_one {worst:.3g}")
    assert sum(o.report_due for o in got) == 16  # 1600-odd scored events, every 100th
    assert [o.prediction.model_version for o in got] == [
        o.prediction.model_version for o in expected
    ]
    assert waits[0].keys() == waits[1].keys() and len(waits[0]) > 300
    for event_id, stored in waits[0].items():
        kept = waits[1][event_id]
        assert kept.proba == pytest.approx(stored.proba, abs=TOLERANCE)
        assert replace(kept, proba={}) == replace(stored, proba={})


def test_learning_equals_steps_exactly():
    # Micro-batches learn the buffered examples, not the predictions: nothing to round.
    events = agrawal(2000)
    a, b = micro(64), micro(64)
    compare_with_step(a, b, events)
    assert weights(a) == weights(b)
    assert a.model["StandardScaler"].vars == b.model["StandardScaler"].vars


# -- however the input is cut --------------------------------------------------------------


def mixed_stream() -> list[Event]:
    """Agrawal with unlabelled events, irregular and sometimes decreasing times, a
    missing feature, a string where a number belongs and an extreme value."""
    rng = random.Random(3)
    events = agrawal(600, unlabelled_fraction=0.3)
    ts = 0
    for i, e in enumerate(events):
        ts += rng.choice([0, 200, 900, 4000]) - (1500 if i % 97 == 0 else 0)
        e.ts = ts
    events[50].features = {**events[50].features, "age": None}
    events[120].features = {**events[120].features, "car": "a string"}
    events[300].features = {**events[300].features, "salary": 1e12}
    return events


@pytest.mark.parametrize("interval", [0, 5000])
def test_outputs_do_not_depend_on_how_the_input_is_cut(interval):
    events = mixed_stream()
    rules = {"features": {"salary": {"outliers": "reject"}}, "outlier_warmup": 50}
    by_step = micro(32, interval, validation=rules)
    expected = run_step(by_step, events, report_every=50, waiting={})
    runs = []
    for chunk in (1, 7, 100, None):
        state = micro(32, interval, validation=rules)
        waiting: dict = {}
        outputs = run_many(state, events, chunk=chunk, report_every=50, waiting=waiting)
        runs.append((outputs, waiting, state))
    first_outputs, first_waiting, first_state = runs[0]
    assert {o.rejection.reason for o in first_outputs if o.rejection} == {
        "feature_outlier",
        "model_rejected_input",
    }
    for outputs, _, state in runs:
        assert largest_difference(expected, outputs) < TOLERANCE
        assert_same_state(by_step, state)
    for outputs, waiting, state in runs[1:]:
        # OpenBLAS rounds a row's product by its place in the DataFrame: the last bit only.
        assert largest_difference(first_outputs, outputs) <= 1e-15
        assert waiting.keys() == first_waiting.keys()
        assert_same_state(first_state, state)
        assert weights(state) == weights(first_state)  # learning does not depend on it


def test_one_event_at_a_time_is_step_exactly():
    # A lone row is predicted with predict_proba_one: nothing is left to round.
    events = mixed_stream()
    a, b = micro(32, 5000), micro(32, 5000)
    waits: tuple[dict, dict] = ({}, {})
    expected = run_step(a, events, report_every=50, waiting=waits[0])
    assert run_many(b, events, chunk=1, report_every=50, waiting=waits[1]) == expected
    assert waits[0] == waits[1]
    assert_same_state(a, b)


# -- edge cases, each against step ----------------------------------------------------------


def test_a_cleaner_refused_event_mid_batch_is_refused_as_step_refuses_it():
    events = agrawal(400)
    events[150].features = {**events[150].features, "salary": 1e9}
    rules = {"features": {"salary": {"outliers": "reject"}}, "outlier_warmup": 50}
    got = compare_with_step(micro(32, validation=rules), micro(32, validation=rules), events).got
    assert got[150].rejection.reason == "feature_outlier"
    assert got[149].prediction.model_version == got[151].prediction.model_version


def test_imputed_missing_values_keep_the_batch():
    events = agrawal(300)
    for i in (40, 41, 100):
        events[i].features = {**events[i].features, "age": None}
    rules = {"features": {"age": {"missing": "impute"}}}
    a, b = micro(32, validation=rules), micro(32, validation=rules)
    compare_with_step(a, b, events)
    assert b.cleaner.summary()["imputed"] == {"age": 3}


def test_a_row_with_other_features_is_predicted_apart():
    events = agrawal(300)
    events[70].features = {k: v for k, v in events[70].features.items() if k != "car"}
    events[71].features = {**events[71].features, "extra": 1.5}
    events[72].features = dict(reversed(list(events[72].features.items())))
    got = compare_with_step(micro(32), micro(32), events).got
    assert all(o.prediction is not None for o in got)


def test_a_row_the_model_refuses_is_refused_with_steps_reason():
    events = agrawal(300)
    events[70].features = {**events[70].features, "car": "a string"}
    got = compare_with_step(micro(32), micro(32), events).got
    assert got[70].rejection.reason == "model_rejected_input"
    assert "TypeError" in got[70].rejection.detail
    assert sum(o.rejection is not None for o in got) == 1


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # River's own overflow, both paths
def test_a_non_finite_row_in_a_batch_is_refused_as_step_refuses_it():
    rng = random.Random(0)
    events = []
    for i in range(40):
        a, b = rng.random(), rng.random()
        events.append(Event(str(i), i, {"a": a, "b": b}, a > b))
    events[37].features = {"a": 1e308, "b": 1e308}  # +inf and -inf in the logit: NaN
    got = compare_with_step(micro(32), micro(32), events).got
    assert got[37].rejection.reason == "model_output_not_finite"
    assert "{False: nan, True: nan}" in got[37].rejection.detail


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # River's own overflow, both paths
def test_an_overflowed_model_is_predicted_as_step_predicts_it():
    # Once 1e308 is learned the scaler's variance is NaN: transform_one then gives NaN
    # (step refuses the event) but transform_many skips the division. The first-row
    # check sends such a batch back to predict_proba_one.
    events = [
        Event(str(i), i, {"x": v}, i % 2 == 0)
        for i, v in enumerate([1.0, 2.0, 1e308, -1e308, 1e308, 3.0, 1.0, 2.0])
    ]
    got = compare_with_step(micro(2), micro(2), events).got
    assert [o.rejection.reason for o in got[6:]] == ["model_output_not_finite"] * 2


def test_unlabelled_events_wait_as_with_step():
    events = agrawal(200, unlabelled_fraction=0.5)
    by_step, by_many = compare_with_step(micro(16), micro(16), events, waiting=True).waiting
    assert len(by_many) == sum(e.label is None for e in events) == len(by_step)


def test_interval_updates_with_gaps_in_event_time():
    events = agrawal(1000)
    rng = random.Random(5)
    ts = 0
    for e in events:
        ts += rng.choice([10, 100, 2000])
        e.ts = ts
    a, b = micro(1000, interval=3000), micro(1000, interval=3000)
    got = compare_with_step(a, b, events).got
    versions = [o.prediction.model_version for o in got]
    assert b.updater.batches > 100 and len(set(versions)) == b.updater.batches + 1


def test_the_plan_gives_way_when_a_refused_event_moves_the_buffer_start():
    # Planned: the buffer starts at "bad" (ts 5000), so nothing is due at ts 5500.
    # In fact the model refuses "bad", the buffer starts at ts 0, and 5500 is due.
    events = [
        Event("bad", 5000, {"x": "not a number"}, True),
        Event("early", 0, {"x": 1.0}, True),
        Event("later", 5500, {"x": 2.0}, None),
        Event("last", 5600, {"x": 3.0}, False),
    ]
    got = compare_with_step(micro(10, interval=5000), micro(10, interval=5000), events).got
    assert got[0].rejection.reason == "model_rejected_input"
    assert [o.prediction.model_version for o in got[1:]] == [0, 1, 1]


def test_report_due_where_step_says():
    events = agrawal(500)
    got = compare_with_step(micro(32), micro(32), events, report_every=64).got
    assert [i for i, o in enumerate(got) if o.report_due] == [63, 127, 191, 255, 319, 383, 447]


def test_a_tree_is_not_batched_and_is_stepped_as_step_steps_it():
    tree = {"model": [{"tree.HoeffdingTreeClassifier": {"grace_period": 50}}]}
    a, b = micro(32, **tree), micro(32, **tree)
    assert not batchable(b, learn=True)
    expected = run_step(a, agrawal(300))
    got = run_many(b, agrawal(300), chunk=64)
    assert got == expected
    assert_same_state(a, b)


# -- when batching applies -------------------------------------------------------------------


def test_batchable_for_micro_batch_linear_models():
    assert batchable(micro(32), learn=True)
    lone = {"model": ["linear_model.LogisticRegression"]}
    assert batchable(micro(32, **lone), learn=True)


@pytest.mark.parametrize(
    "sections",
    [
        {"update": {"mode": "per_sample"}},
        {"update": {"mode": "periodic", "interval": 1000}},
        {"drift": {"detector": "drift.ADWIN"}},
        {"candidates": [{"name": "tree", "model": ["tree.HoeffdingTreeClassifier"]}]},
        {"active": {"strategy": "random", "budget": 0.1}},
        {"curation": {"hard_examples": {"size": 50, "p": 0.3}}},
        {"curation": {"label_filter": {"min_confidence": 0.3}}},
        {"model": ["tree.HoeffdingTreeClassifier"]},
        {"model": ["preprocessing.StandardScaler", "tree.HoeffdingTreeClassifier"]},
    ],
)
def test_not_batchable(sections):
    cfg = {"update": {"mode": "micro_batch"}, **sections}
    assert not batchable(ModelState.new(load_config(cfg)), learn=True)


def test_not_batchable_without_learning():
    assert not batchable(micro(32), learn=False)
