"""The two-stage sampler on a MiniCluster against the pure core (``stratiflow.runner.replay``).

The same events and seed must give the same samples (every sampling-stats
record) and, with ``sampling.order: event_time``, the same predictions as the
replay — at parallelism 1 and 2, whatever the processing speed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from stratiflow.config import load_config
from stratiflow.io.sources import river_events
from stratiflow.jobs.backtest import run_backtest
from stratiflow.local.procs import job_environ
from stratiflow.records import class_key
from stratiflow.runner.replay import replay
from tests.helpers import read_jsonl, without_wall_clock

pytestmark = pytest.mark.flink

REPO_ROOT = Path(__file__).resolve().parents[2]

N = 2000
LATE = 20


def imbalanced_events(keys: tuple[str, ...] = ("default",), n: int = N) -> list[dict[str, Any]]:
    """~5% minority stream, 10 ms apart, in order, some events unlabelled."""
    events = list(
        river_events("hyperplane", n=n, seed=7, interval_ms=10, minority_share=0.05, keys=keys)
    )
    for e in events[5:n:97]:
        e["label"] = None
    return events


def with_late_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The last LATE events re-stamped into the first second: their windows have
    closed long before they arrive (if Flink has emitted a watermark by then)."""
    for i, e in enumerate(events[-LATE:]):
        e["ts"] = i * 10
    return events


def late_by_class(stats: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    late: Counter[tuple[str, str]] = Counter()
    for s in stats:
        for c, counts in s["classes"].items():
            late[s["key"], c] += counts["late"]
    return late


def run(tmp_path, events, sampling, parallelism=1, **job):
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    cfg = load_config(
        {
            "job": {"parallelism": parallelism, **job},
            "sampling": {
                "window": "1s",
                "max_out_of_orderness": "50ms",
                "watermark_interval": "20ms",
                **sampling,
            },
            "metrics": {"report_every": 1000},
        }
    )
    result = run_backtest(path, cfg, tmp_path / "out")
    return cfg, result


def assert_predictions_as_replay(events, reference, result):
    predictions = {p["id"]: p for p in read_jsonl(result.out_dir / "predictions.jsonl")}
    assert len(predictions) == len(events)
    for expected in reference.predictions:
        got = predictions[expected.id]
        assert got["model_version"] == expected.model_version, expected.id
        for c, p in expected.proba.items():
            assert abs(got["proba"][class_key(c)] - p) <= 1e-9, expected.id


def assert_same_as_replay(events, cfg, result):
    reference = replay(events, cfg)
    stats = read_jsonl(result.out_dir / "sampling_stats.jsonl")
    assert stats, "the sampler reported nothing"
    assert without_wall_clock(stats) == without_wall_clock(reference.stats)
    assert late_by_class(stats) == late_by_class(reference.stats)

    assert_predictions_as_replay(events, reference, result)

    finals = {m["key"]: m for m in read_jsonl(result.out_dir / "metrics.jsonl") if m["final"]}
    for report in reference.reports:
        if report["final"]:
            got = finals[report["key"]]
            assert got["counts"] == report["counts"]
            assert got["trained_on"] == report["trained_on"]
            assert got["cumulative"] == report["cumulative"]
    return stats


@pytest.mark.parametrize("parallelism", [1, 2])
def test_balanced_sampler_equals_the_pure_core(tmp_path, parallelism):
    events = imbalanced_events(keys=("alpha", "beta"))
    cfg, result = run(tmp_path, events, {"strategy": "balanced", "budget": 10}, parallelism)
    stats = assert_same_as_replay(events, cfg, result)
    assert {s["key"] for s in stats} == {"alpha", "beta"}
    assert sum(late_by_class(stats).values()) == 0


@pytest.mark.timeout(300)  # it used to hang (a GIL deadlock), not fail
@pytest.mark.parametrize("strategy", ["none", "balanced"])
def test_the_job_in_thread_mode_equals_the_pure_core(tmp_path, strategy):
    # Its own process: thread mode needs PYTHONPATH in the JVM's environment when the
    # JVM starts, and this test process's JVM is usually running already.
    events = imbalanced_events(keys=("alpha", "beta"))
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    sampling = {"strategy": "balanced", "budget": 10} if strategy == "balanced" else {}
    raw = {
        "job": {"parallelism": 1, "python_execution_mode": "thread"},
        "sampling": {
            "window": "1s",
            "max_out_of_orderness": "50ms",
            "watermark_interval": "20ms",
            **sampling,
        },
        "metrics": {"report_every": 1000},
    }
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(raw))
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "stratiflow.jobs.backtest",
        "--events",
        str(path),
        "--out",
        str(out),
    ]
    done = subprocess.run(
        [*command, "--config", str(config)],
        cwd=REPO_ROOT,
        env=job_environ(),
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    cfg, result = load_config(raw), SimpleNamespace(out_dir=out)
    if strategy == "none":
        assert_predictions_as_replay(events, replay(events, cfg), result)
    else:
        assert_same_as_replay(events, cfg, result)


def test_late_events_are_predicted_and_counted_never_lost(tmp_path):
    """Whether an event is late depends on when Flink emitted its watermarks, so
    this checks what holds either way: per class, on-time seen + late equals the
    labelled events produced, and every event is predicted."""
    events = with_late_events(imbalanced_events())
    _, result = run(tmp_path, events, {"strategy": "balanced", "budget": 10})
    stats = read_jsonl(result.out_dir / "sampling_stats.jsonl")
    produced = Counter(("default", class_key(e["label"])) for e in events if e["label"] is not None)
    counted = late_by_class(stats)
    late = sum(counted.values())
    for s in stats:
        for c, v in s["classes"].items():
            counted[s["key"], c] += v["seen"]
    assert counted == produced
    assert late <= LATE
    assert result.predictions == len(events)
    final = [m for m in read_jsonl(result.out_dir / "metrics.jsonl") if m["final"]][-1]
    assert final["counts"]["predicted"] == len(events)
    assert final["counts"]["learned"] == sum(s["trained"] for s in stats)


def test_synthetic_oversampling_equals_the_pure_core(tmp_path):
    events = imbalanced_events(n=1000)
    cfg, result = run(tmp_path, events, {"strategy": "oversample", "synthetic": True})
    stats = assert_same_as_replay(events, cfg, result)
    assert sum(s["classes"].get("1", {}).get("synthetic", 0) for s in stats) > 0


def test_undersampling_with_decay_free_arrival_order_still_samples_the_same(tmp_path):
    """``order: arrival`` changes when the model learns, never what is sampled."""
    events = imbalanced_events()
    cfg, result = run(tmp_path, events, {"strategy": "undersample", "order": "arrival"})
    stats = read_jsonl(result.out_dir / "sampling_stats.jsonl")
    assert without_wall_clock(stats) == without_wall_clock(replay(events, cfg).stats)
    final = [m for m in read_jsonl(result.out_dir / "metrics.jsonl") if m["final"]][-1]
    assert final["counts"]["learned"] == sum(s["trained"] for s in stats)
    assert result.predictions == len(events)
