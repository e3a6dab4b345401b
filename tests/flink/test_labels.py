"""Delayed labels and update strategies on a MiniCluster, against the pure core.

Label records travel on the events stream (one ordered input per key), so the
Flink job must emit exactly what :func:`stratiflow.runner.replay.replay` emits: the same
predictions, the same dead letters, the same final metrics.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from stratiflow.config import load_config
from stratiflow.io.sources import river_events, with_delayed_labels
from stratiflow.jobs.backtest import run_backtest
from stratiflow.records import class_key
from stratiflow.runner.replay import replay
from tests.helpers import read_jsonl

pytestmark = pytest.mark.flink

N = 800


def events(keys=("default",), n=N) -> list[dict[str, Any]]:
    return list(river_events("phishing", n=n, start_ts=0, interval_ms=10, keys=keys))


def run(tmp_path, records, settings, parallelism=1):
    path = tmp_path / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    cfg = load_config(
        {"job": {"parallelism": parallelism}, "metrics": {"report_every": 200}, **settings}
    )
    result = run_backtest(path, cfg, tmp_path / "out")
    return cfg, result


def outputs(result):
    out = result.out_dir
    return (
        read_jsonl(out / "predictions.jsonl"),
        read_jsonl(out / "dead_letters.jsonl"),
        read_jsonl(out / "metrics.jsonl"),
    )


def comparable(report: dict[str, Any]) -> dict[str, Any]:
    """A final report minus what depends on the wall clock or the machine."""
    skip = {"emitted_at", "cost", "stability", "report"}
    return {k: v for k, v in report.items() if k not in skip}


def assert_same_as_replay(records, cfg, result):
    reference = replay(records, cfg)
    predictions, dead, metrics = outputs(result)
    by_id = {(p["key"], p["id"]): p for p in predictions}
    assert len(by_id) == len(predictions) == len(reference.predictions)
    for expected in reference.predictions:
        got = by_id[expected.key, expected.id]
        assert got["model_version"] == expected.model_version, expected.id
        for c, p in expected.proba.items():
            assert abs(got["proba"][class_key(c)] - p) <= 1e-9, expected.id
    assert Counter(d["reason"] for d in dead) == Counter(d.reason for d in reference.dead_letters)
    finals = {m["key"]: m for m in metrics if m["final"]}
    expected_finals = {r["key"]: r for r in reference.reports if r["final"]}
    assert finals.keys() == expected_finals.keys()
    for key, report in expected_finals.items():
        assert comparable(finals[key]) == comparable(report), key
    return predictions, dead, finals


@pytest.mark.parametrize("parallelism", [1, 2])
def test_labels_in_order_on_the_events_stream_equal_the_pure_core(tmp_path, parallelism):
    records = with_delayed_labels(events(keys=("alpha", "beta")), 150)
    cfg, result = run(tmp_path, records, {}, parallelism)
    _, dead, finals = assert_same_as_replay(records, cfg, result)
    assert not dead
    for report in finals.values():
        assert report["labels"]["joined"] == report["counts"]["unlabelled"] == N // 2
        assert report["model_version"] == N // 2 and report["labels"]["waiting"] == 0


def test_out_of_order_duplicate_unknown_and_expired_labels(tmp_path):
    base = events()
    records = with_delayed_labels(base, lambda e: (int(e["ts"] / 10) * 37 % 41) * 10)
    # duplicates, unknown ids, labels arriving after the TTL, a label before its event
    records.insert(40, {"id": base[30]["id"], "label": True, "ts": base[30]["ts"] + 500})
    records.insert(60, {"id": "never-sent", "label": False, "ts": 400})
    records.append({"id": base[100]["id"], "label": True, "ts": 9_000})
    early = {"id": "early", "label": True, "ts": 5_000}
    records.insert(100, early)
    records.insert(110, {"id": "early", "ts": 5_001, "features": base[0]["features"]})
    cfg, result = run(tmp_path, records, {"labels": {"ttl": "1s"}})
    predictions, dead, finals = assert_same_as_replay(records, cfg, result)
    labels = finals["default"]["labels"]
    assert labels["duplicate"] >= 1 and labels["unknown"] >= 1 and labels["expired"] >= 1
    assert labels["never_came"] >= 1
    # Every record in ends in exactly one place.
    held = labels["held"]
    assert len(records) == len(predictions) + labels["joined"] + held + len(dead)
    for letter in dead:
        assert letter["reason"].startswith("label_") and letter["raw"] and letter["offset"] >= 0
        assert letter["topic"] == str(result.out_dir.parent / "records.jsonl")


def test_delayed_labels_through_the_sampler(tmp_path):
    records = with_delayed_labels(events(), 300)
    settings = {
        "sampling": {
            "strategy": "balanced",
            "budget": 10,
            "window": "1s",
            "max_out_of_orderness": "50ms",
            "watermark_interval": "20ms",
        }
    }
    cfg, result = run(tmp_path, records, settings)
    reference = replay(records, cfg)
    stats = read_jsonl(result.out_dir / "sampling_stats.jsonl")
    on_time = sum(c["seen"] for s in stats for c in s["classes"].values())
    late = sum(c["late"] for s in stats for c in s["classes"].values())
    assert on_time + late == N  # every joined label reached the sampler
    predictions, _, metrics = outputs(result)
    assert len(predictions) == N
    final = next(m for m in metrics if m["final"])
    assert final["labels"]["joined"] == N and final["counts"]["late"] == late
    assert final["counts"]["learned"] == sum(s["trained"] for s in stats)
    if late == 0:  # then the samples, and so the predictions, are the replay's
        expected = {p.id: p.model_version for p in reference.predictions}
        assert {p["id"]: p["model_version"] for p in predictions} == expected


def test_micro_batches_on_flink_equal_the_pure_core(tmp_path):
    records = events()
    for r in records[::5]:
        r["label"] = None  # unlabelled events are predicted between batches
    cfg, result = run(
        tmp_path, records, {"update": {"mode": "micro_batch", "batch_size": 16, "interval": 500}}
    )
    _, _, finals = assert_same_as_replay(records, cfg, result)
    report = finals["default"]
    assert report["update"]["batches"] > 0 and report["counts"]["buffered"] == 0
    assert report["model_version"] == report["counts"]["labelled"]
