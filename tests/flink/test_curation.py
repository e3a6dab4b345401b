"""Active learning and curation in the Flink job equal the pure core.

The backtest runs the job graph on a MiniCluster; ``stratiflow.runner.replay`` is the
pure core (checked against River driven by hand in tests/unit/curation). Predictions,
label requests (``label_requests.jsonl``) and the final metrics' ``active`` and
``curation`` sections must be the same: at parallelism 2 without a sampler, and with a
sampler, delayed labels and Tomek links.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from stratiflow.config import load_config
from stratiflow.io.sources import river_events
from stratiflow.jobs.backtest import run_backtest
from stratiflow.runner.replay import replay
from tests.helpers import assert_predictions_equal, late_labels, read_jsonl

pytestmark = pytest.mark.flink

MODEL = [{"preprocessing.StandardScaler": {}}, {"linear_model.LogisticRegression": {}}]


def requests_per_key(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        out.setdefault(r["key"], []).append({k: v for k, v in r.items() if k != "requested_at"})
    return out


def run(tmp_path, stream: list[dict[str, Any]], raw_cfg: dict[str, Any]):
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in stream))
    cfg = load_config({"model": MODEL, "metrics": {"report_every": 1000}, **raw_cfg})
    result = run_backtest(path, cfg, tmp_path / "out")
    return result, replay(stream, cfg)


def assert_same(result, reference) -> None:
    assert_predictions_equal(read_jsonl(result.out_dir / "predictions.jsonl"), reference)
    requests = read_jsonl(result.out_dir / "label_requests.jsonl")
    assert result.label_requests == len(requests) == len(reference.label_requests) > 0
    assert requests_per_key(requests) == requests_per_key(reference.label_requests)
    finals = {m["key"]: m for m in read_jsonl(result.out_dir / "metrics.jsonl") if m["final"]}
    expected = {r["key"]: r for r in reference.reports if r["final"]}
    assert finals.keys() == expected.keys()
    for key, report in expected.items():
        got = finals[key]
        assert (got["active"], got["curation"]) == (report["active"], report["curation"]), key
        assert got["counts"]["learned"] == report["counts"]["learned"]


def test_simulated_requests_hard_examples_and_the_contradiction_filter_at_parallelism_2(
    tmp_path,
):
    stream = list(river_events("agrawal", n=4000, seed=6, interval_ms=10, keys=("a", "b")))
    result, reference = run(
        tmp_path,
        stream,
        {
            "job": {"parallelism": 2},
            "active": {"strategy": "variable_uncertainty", "budget": 0.2, "simulate": True},
            "curation": {
                "hard_examples": {"size": 30, "p": 0.2},
                "label_filter": {"contradiction": 0.9, "warmup": 100},
            },
        },
    )
    assert_same(result, reference)
    final = next(r for r in reference.reports if r["final"])
    assert final["curation"]["replayed"] > 0 and final["curation"]["withheld"] > 0


def test_requests_answered_late_with_a_sampler_tomek_links_and_label_confidence(tmp_path):
    raw = list(river_events("agrawal", n=3000, seed=7, interval_ms=20))
    stream = late_labels(
        raw, 5, lambda j, _: {"confidence": ((j + 5) % 10) / 10, "annotator": f"a{(j + 5) % 3}"}
    )
    result, reference = run(
        tmp_path,
        stream,
        {
            "sampling": {"strategy": "uniform", "window": "5s", "rate": 1.0},
            "labels": {"ttl": "1h"},
            "active": {"strategy": "uncertainty", "budget": 0.1},
            "curation": {"tomek_links": True, "label_filter": {"min_confidence": 0.25}},
        },
    )
    assert_same(result, reference)
    stats = read_jsonl(result.out_dir / "sampling_stats.jsonl")

    def tomek_dropped(records: list[dict[str, Any]]) -> int:
        return sum(c.get("tomek_dropped", 0) for r in records for c in r["classes"].values())

    assert tomek_dropped(stats) == tomek_dropped(reference.stats) > 0
    final = next(r for r in reference.reports if r["final"])
    assert final["curation"]["dropped"]["low_confidence"] > 0
    assert final["curation"]["answered"] > 0 and final["curation"]["unrequested"] > 0
