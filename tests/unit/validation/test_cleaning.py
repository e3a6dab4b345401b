"""validation.features: stateless checks at parse time, and the per-key cleaner."""

from __future__ import annotations

import pickle
import random

import pytest
from river import stats

from stratiflow.config import ConfigError, load_config
from stratiflow.io.sources import river_events
from stratiflow.learning.learner import ModelState, step
from stratiflow.records import Event
from stratiflow.runner.replay import replay
from stratiflow.validation.cleaning import Cleaner, check_features


def settings(features, **extra):
    return load_config({"validation": {"features": features, **extra}}).validation


def test_clip_winsorises_at_quantiles_learned_from_the_stream_like_river():
    rules = settings({"x": {"outliers": "clip", "quantiles": [0.05, 0.95]}}, outlier_warmup=50)
    cleaner = Cleaner(rules)
    rng = random.Random(3)
    values = [rng.gauss(0, 1) for _ in range(2_000)]
    values[500] = 1e308
    values[900] = -1e308
    low, high = stats.Quantile(0.05), stats.Quantile(0.95)
    clips = 0
    for i, v in enumerate(values):
        got = cleaner.clean({"x": v})[0]["x"]
        want, learn = v, True
        if i >= 50:  # after the warm-up: winsorised at the quantiles learned so far
            lo, hi = low.get(), high.get()
            want = min(max(v, lo), hi)
            clips += want != v
            learn = lo - 10 * (hi - lo) <= v <= hi + 10 * (hi - lo)  # absurd: not learned
        assert got == want
        if learn:
            low.update(v)
            high.update(v)
    assert cleaner.clipped["x"] == clips and 150 < clips < 250  # ~10% outside a 5-95% band
    assert -10 < low.get() < high.get() < 10  # the extremes never entered the estimates


def test_clipping_keeps_an_extreme_value_from_poisoning_the_model():
    events = list(river_events("phishing", n=600, seed=1, interval_ms=10))
    for e in events[300:303]:
        e["features"]["long_url"] = 1e308
    keep = replay(events, load_config())
    clip = replay(
        events,
        load_config(
            {"validation": {"features": {"long_url": {"outliers": "clip"}}, "outlier_warmup": 50}}
        ),
    )
    # Without cleaning the scaler overflows and later events are dead-lettered.
    assert {d.reason for d in keep.dead_letters} == {"model_output_not_finite"}
    assert not clip.dead_letters and len(clip.predictions) == 600
    final = clip.reports[-1]
    assert final["cleaning"]["clipped"]["long_url"] >= 3
    assert final["cumulative"]["accuracy"] > 0.8


def test_outliers_reject_dead_letters_only_after_the_warmup():
    cfg = load_config(
        {
            "validation": {
                "features": {"x": {"outliers": "reject", "fence": 0.5}},
                "outlier_warmup": 20,
            }
        }
    )
    state = ModelState.new(cfg, "k")
    rejected = []
    for i in range(60):
        # Normal values 0..4; the quantile band sits just inside them, the fence covers that.
        x = 1e6 if i in (5, 40) else float(i % 5)
        out = step(state, Event(str(i), i, {"x": x}, label=i % 2 == 0, key="k"), now_ms=0)
        if out.rejection is not None:
            rejected.append((i, out.rejection.reason))
    assert rejected == [(40, "feature_outlier")]  # i=5 came during the warm-up
    assert state.counts.rejected == 1 == state.cleaner.outliers_rejected


def test_impute_uses_the_running_mean_and_the_most_frequent_string():
    rules = settings({"x": {"missing": "impute"}, "c": {"missing": "impute"}})
    cleaner = Cleaner(rules)
    assert cleaner.clean({"x": None, "c": None})[0] == {}  # nothing learned yet: left missing
    for x, c in [(1.0, "a"), (2.0, "b"), (6.0, "b")]:
        cleaner.clean({"x": x, "c": c})
    assert cleaner.clean({"x": None})[0] == {"x": 3.0, "c": "b"}
    assert cleaner.summary()["imputed"] == {"c": 1, "x": 1}
    restored = pickle.loads(pickle.dumps(cleaner))
    assert restored.clean({"c": None}, learn=False)[0] == {"x": 3.0, "c": "b"}


def test_unknown_features_drop_or_reject():
    drop = Cleaner(settings({"x": {}}, unknown_features="drop"))
    assert drop.clean({"x": 1, "y": 2, "z": 3})[0] == {"x": 1}
    assert drop.summary()["dropped_unknown"] == 2
    rejection = check_features({"x": 1, "y": 2}, settings({"x": {}}, unknown_features="reject"))
    assert rejection is not None and rejection.reason == "unknown_feature"
    assert check_features({"x": 1, "y": 2}, settings({"x": {}})) is None  # keep


@pytest.mark.parametrize(
    "features, value, reason",
    [
        ({"x": {"type": "number"}}, "3", "feature_wrong_type"),
        ({"x": {"type": "string"}}, 3, "feature_wrong_type"),
        ({"x": {"type": "boolean"}}, 1, "feature_wrong_type"),
        ({"x": {"min": 0}}, -0.5, "feature_out_of_range"),
        ({"x": {"max": 10}}, 10.5, "feature_out_of_range"),
        ({"x": {"allowed": ["a", "b"]}}, "c", "feature_not_allowed"),
        ({"x": {"missing": "reject"}}, None, "feature_missing"),
        ({"x": {"type": "number", "min": 0, "max": 1}}, 0.5, None),
        ({"x": {"missing": "drop"}}, None, None),
    ],
)
def test_stateless_checks(features, value, reason):
    rejection = check_features({"x": value}, settings(features))
    assert (rejection.reason if rejection else None) == reason
    if rejection:
        assert "'x'" in rejection.detail  # says which feature, in words


def test_cleaning_counts_are_reported():
    events = list(river_events("phishing", n=300, seed=2, interval_ms=10))
    for e in events[::10]:
        e["features"]["age_of_domain"] = None
    cfg = load_config({"validation": {"features": {"age_of_domain": {"missing": "impute"}}}})
    final = replay(events, cfg).reports[-1]
    # The first event's value is missing before anything was learned: left missing.
    assert final["cleaning"]["imputed"] == {"age_of_domain": 29}


@pytest.mark.parametrize(
    "validation, path",
    [
        ({"features": {"x": {"outliers": "clip", "type": "string"}}}, "outliers"),
        ({"features": {"x": {"missing": "fill"}}}, "missing"),
        ({"features": {"x": {"allowed": "a"}}}, "allowed"),
        ({"features": {"x": {"min": "0"}}}, "min"),
        ({"outlier_warmup": 0}, "outlier_warmup"),
    ],
)
def test_bad_rules_fail_at_load_with_the_field_path(validation, path):
    with pytest.raises(ConfigError, match=path):
        load_config({"validation": validation})
