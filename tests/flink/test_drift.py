"""Drift detection and adaptation in the Flink job equal the pure core.

The backtest runs the job graph on a MiniCluster; ``stratiflow.runner.replay`` is the
pure core (itself checked against River driven by hand in tests/unit/lifecycle).
Predictions (with their generation), model-events records and the final metrics'
drift sections must be the same, at parallelism 1 and 2 and with a sampler.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from stratiflow.config import load_config
from stratiflow.io.sources import river_events
from stratiflow.jobs.backtest import run_backtest
from stratiflow.runner.replay import replay
from stratiflow.validation.parse import event_from_object
from tests.helpers import assert_predictions_equal, per_key, read_jsonl

pytestmark = pytest.mark.flink

MODEL = [{"preprocessing.StandardScaler": {}}, {"linear_model.LogisticRegression": {}}]


def run(tmp_path, keys: tuple[str, ...], parallelism: int, **sections: Any):
    events = list(river_events("agrawal_drift", n=7000, seed=5, interval_ms=10, keys=keys))
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    cfg = load_config(
        {
            "model": MODEL,
            "job": {"parallelism": parallelism},
            "metrics": {"report_every": 1000},
            **sections,
        }
    )
    result = run_backtest(path, cfg, tmp_path / "out")
    reference = replay([event_from_object(e) for e in events], cfg)
    return result, reference


def assert_same(result, reference) -> None:
    assert_predictions_equal(read_jsonl(result.out_dir / "predictions.jsonl"), reference)
    events = read_jsonl(result.out_dir / "model_events.jsonl")
    assert result.model_events == len(events) == len(reference.model_events) > 0
    assert per_key(events) == per_key(reference.model_events)
    finals = {m["key"]: m for m in read_jsonl(result.out_dir / "metrics.jsonl") if m["final"]}
    for report in reference.reports:
        if report["final"]:
            got = finals[report["key"]]
            assert (got["drift"], got["generation"]) == (report["drift"], report["generation"])


def test_resets_at_the_same_events_as_the_pure_core(tmp_path):
    """Parallelism 1 here; the champion/challenger test below resets at parallelism 2."""
    result, reference = run(
        tmp_path,
        ("a", "b"),
        1,
        drift={"detector": "drift.ADWIN", "adaptation": "reset"},
    )
    assert_same(result, reference)
    assert any(m["type"] == "model_reset" for m in reference.model_events)


def test_background_models_and_a_sampler_as_in_the_pure_core(tmp_path):
    result, reference = run(
        tmp_path,
        ("default",),
        1,
        drift={"detector": "drift.binary.DDM", "adaptation": "background", "min_scored": 300},
        sampling={"strategy": "uniform", "rate": 0.5, "window": "1s"},
    )
    assert_same(result, reference)
    assert {"drift_warning", "background_start"} <= {m["type"] for m in reference.model_events}


def test_champion_and_challenger_as_in_the_pure_core(tmp_path):
    """Two keys at parallelism 2, a Hoeffding tree beside the logistic regression: the
    promotions, the published pipeline per prediction and the final candidates sections."""
    tree = [{"tree.HoeffdingTreeClassifier": {"grace_period": 50}}]
    result, reference = run(
        tmp_path,
        ("a", "b"),
        2,
        candidates=[{"name": "tree", "model": tree}],
        drift={"detector": "drift.ADWIN", "adaptation": "reset"},
    )
    assert_same(result, reference)
    predictions = {p["id"]: p for p in read_jsonl(result.out_dir / "predictions.jsonl")}
    assert all(predictions[p.id]["model"] == p.model for p in reference.predictions)
    assert "promotion" in {m["type"] for m in reference.model_events}
    finals = {m["key"]: m for m in read_jsonl(result.out_dir / "metrics.jsonl") if m["final"]}
    for report in reference.reports:
        if report["final"]:
            assert finals[report["key"]]["candidates"] == report["candidates"]
