"""The drift evaluation's own arithmetic and streams (make eval-drift runs it at full size)."""

from __future__ import annotations

import json

import pytest

from benchmarks.eval_drift import (
    GENERATORS,
    JOB_VARIANTS,
    _plain,
    accuracy_after,
    detection_scores,
    drifting_events,
    main,
)
from stratiflow.dashboard.page import report_snapshot


def test_detections_are_scored_the_capymoa_way() -> None:
    scores = detection_scores([50, 1010, 1020, 2500, 3900], [1000, 2000, 3000], 4000, 500)
    # 1010 detects the drift at 1000 (delay 10); 1020 is a second alarm in that window;
    # the drift at 2000 is found by nobody within 500 (2500 is too late); 3000 is missed.
    assert scores["true_positives"] == 1 and scores["missed"] == 2
    assert scores["false_alarms"] == 4  # 50, 1020, 2500, 3900
    assert scores["recall"] == pytest.approx(1 / 3)
    assert scores["mean_delay"] == 10 and scores["false_alarms_per_1000"] == 1.0


def test_accuracy_after_covers_the_windows_after_each_drift() -> None:
    correct = [True] * 10 + [False] * 2 + [True] * 8 + [False] * 2 + [True] * 8
    assert accuracy_after(correct, [10, 20], 4) == 0.5


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_an_abrupt_stream_switches_concept_exactly_at_the_drift_points(name: str) -> None:
    drifts = [300, 600]
    events = list(drifting_events(name, "abrupt", 1, 900, drifts, 100))
    first = list(drifting_events(name, "abrupt", 1, 300, drifts, 100))
    assert events[:300] == first  # nothing of the second concept before the first drift
    # From 300 on, the second concept's generator takes over, from its own start.
    second = GENERATORS[name](1, 1)
    expected = [y for _, (x, y) in zip(range(300), second, strict=False)]
    assert [e["label"] for e in events[300:600]] == [_plain(y) for y in expected]
    assert [e["id"] for e in events] == [f"{name}-{i}" for i in range(900)]


def test_the_evaluation_runs_end_to_end_and_writes_its_results(tmp_path) -> None:
    out = tmp_path / "drift.json"
    main(
        ["--n", "2400", "--seeds", "1", "--streams", "stagger", "--kinds", "abrupt",
         "--after", "400", "--max-delay", "400", "--river",
         "River DriftRetrainingClassifier (DDM)", "--out", str(out), "--no-docs"]
    )  # fmt: skip
    result = json.loads(out.read_text())
    models = result["summary"]["abrupt"]["models"]
    assert "job: ADWIN, reset" in models and "River DriftRetrainingClassifier (DDM)" in models
    assert result["setup"]["drifts"] == [600, 1200, 1800]
    for run in result["runs"]:
        assert 0 <= run["accuracy_after_drift"] <= 1
    # the charts: one report key per stream, kind and job variant, drifts as markers
    board = report_snapshot(out.with_suffix(".html").read_text())
    assert set(board["keys"]) == {f"stagger abrupt: {v}" for v, _ in JOB_VARIANTS}
    adwin = board["keys"]["stagger abrupt: job: ADWIN, reset"]
    drifts = [m for m in adwin["markers"] if m["type"] == "drift"]
    run = next(r for r in result["runs"] if r["model"] == "job: ADWIN, reset")
    assert len(drifts) == len(run["detections"]) > 0
