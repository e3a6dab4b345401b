"""The curation evaluation's own arithmetic (make eval-curation runs it at full size)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import benchmarks.eval_curation as ev
from benchmarks.eval_curation import FULL, flip_labels, format_tables, main, write_docs
from stratiflow.dashboard.page import report_snapshot


def _events(labels: list[object]) -> list[dict[str, object]]:
    return [
        {"id": f"e{i}", "ts": i, "features": {"x": float(i)}, "label": y}
        for i, y in enumerate(labels)
    ]


def test_flip_labels_flips_exactly_the_share_asked_for_and_is_seeded() -> None:
    events = _events([i % 2 == 0 for i in range(1000)])
    noisy, flipped = flip_labels(events, 0.2, seed=3)
    assert len(flipped) == 200
    for before, after in zip(events, noisy, strict=True):
        assert after["label"] == (
            not before["label"] if before["id"] in flipped else before["label"]
        )
    assert flip_labels(events, 0.2, seed=3) == (noisy, flipped)
    assert flip_labels(events, 0.2, seed=4)[1] != flipped
    assert [e["label"] for e in events] == [i % 2 == 0 for i in range(1000)]  # not changed


def test_a_multi_class_label_becomes_another_class() -> None:
    events = _events([i % 4 for i in range(400)])
    noisy, flipped = flip_labels(events, 0.5, seed=1)
    changed = {e["id"]: e["label"] for e in noisy if e["id"] in flipped}
    assert len(changed) == 200
    assert all(changed[e["id"]] != e["label"] for e in events if e["id"] in flipped)
    assert set(changed.values()) == {0, 1, 2, 3}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    out = tmp_path_factory.mktemp("curation") / "x.json"
    main(["--n", "1500", "--seeds", "1", "--streams", "sea", "stagger", "--out", str(out),
          "--no-docs"])  # fmt: skip
    return {**json.loads(out.read_text()), "html": out.with_suffix(".html").read_text()}


def test_the_evaluation_writes_its_charts_one_key_per_variant(results: dict) -> None:
    board = report_snapshot(results.pop("html"))
    variants = {FULL} | {f"{s} @ {b:g}" for s in ev.STRATEGIES for b in ev.BUDGETS}
    assert set(board["keys"]) == {f"{n}: {v}" for n in ("sea", "stagger") for v in variants}
    for name, view in board["keys"].items():
        asked = [row["active_requested"] for row in view["metrics"]]
        final = next(
            r for r in results["runs"]["active"] if f"{r['stream']}: {r['variant']}" == name
        )
        assert view["label_requests"] == (final["requested"] or 0) == (asked[-1] or 0)


def test_the_evaluation_writes_its_runs_summary_and_goals(results: dict) -> None:
    assert set(results) == {"setup", "summary", "runs"}
    setup = results["setup"]
    assert setup["n"] == 1500 and setup["budgets"] == [0.05, 0.1, 0.2]
    assert setup["checked_against_replay"] is True  # step() by hand == replay()
    active = results["summary"]["active"]
    assert set(active) == {"sea", "stagger"}
    expected = {FULL} | {f"{s} @ {b:g}" for s in ev.STRATEGIES for b in ev.BUDGETS}
    assert set(active["sea"]) == expected
    noise = results["summary"]["noise"]["sea"]
    assert list(noise) == [
        "clean labels", "clean labels, filter 0.95", "20% flipped", "20% flipped, filter 0.95",
        "20% flipped, filter 0.9", "20% flipped, filter 0.8",
    ]  # fmt: skip
    assert noise["20% flipped"]["flipped"] == 300 and noise["clean labels"]["flipped"] == 0
    goals = {(g["goal"], g["stream"]) for g in results["summary"]["goals"]}
    assert ("uncertainty beats random at 10%", "sea") in goals
    for row in results["runs"]["active"] + results["runs"]["noise"]:
        assert 0 <= row["accuracy"] <= 1


def test_active_learning_stays_within_the_budget(results: dict) -> None:
    n, window = results["setup"]["n"], results["setup"]["budget_window"]
    budgeted = [r for r in results["runs"]["active"] if r["budget"] is not None]
    assert len(budgeted) == 2 * 9
    for row in budgeted:
        limit = math.floor(row["budget"] * window + 1e-9)
        assert row["limit"] == limit
        assert row["requested"] == row["learned"]  # simulated: only requested labels learned
        assert row["learned"] <= math.ceil(n / window) * limit
        assert row["label_share"] <= row["budget"] + limit / n
        assert row["learned"] + row["withheld"] == row["labelled"] == n


def test_full_labelling_learns_every_label(results: dict) -> None:
    full = [r for r in results["runs"]["active"] if r["variant"] == FULL]
    assert len(full) == 2
    for row in full:
        assert row["label_share"] == 1.0 and row["learned"] == row["labelled"] == 1500
        assert row["requested"] is None and row["withheld"] == 0


def test_drops_are_scored_against_the_flipped_labels(results: dict) -> None:
    for row in results["runs"]["noise"]:
        assert row["dropped"] == row["dropped_reported"]  # per-event count == the job's count
        if row["contradiction"] is None:
            assert row["dropped"] == 0 and row["learned"] == 1500
        if row["precision"] is not None:
            assert row["precision"] == row["dropped_flipped"] / row["dropped"]
        if row["flipped"] and row["recall"] is not None:
            assert row["recall"] == row["dropped_flipped"] / row["flipped"]


def test_format_tables_renders_every_part(results: dict) -> None:
    tables = format_tables(results["setup"], results["summary"])
    assert "**Active learning**" in tables and "**Label noise**" in tables
    assert "**Goals**" in tables
    assert "| variable_uncertainty @ 0.1 |" in tables
    assert "| sea | 20% flipped, filter 0.95 |" in tables
    assert "**Drifting streams**" not in tables  # no stream here has a drift


def test_a_drifting_stream_reports_requests_around_the_drift(tmp_path: Path) -> None:
    out = tmp_path / "drift.json"
    main(["--n", "6000", "--seeds", "1", "--streams", "sea_drift", "--strategies",
          "uncertainty", "variable_uncertainty", "--budgets", "0.1", "--filters", "0.9",
          "--out", str(out), "--no-docs"])  # fmt: skip
    result = json.loads(out.read_text())
    part = result["summary"]["active"]["sea_drift"]
    for variant in ("uncertainty @ 0.1", "variable_uncertainty @ 0.1"):
        entry = part[variant]
        assert entry["requests_before_drift"] + entry["requests_after_drift"] == entry["requested"]
        assert entry["requests_after_drift"] <= 1 * 100  # 1000 events after 5000, 100 a window
    assert "requests_after_drift" not in part[FULL]
    goals = [g["goal"] for g in result["summary"]["goals"] if g["stream"] == "sea_drift"]
    assert [g for g in goals if g.startswith("variable uncertainty keeps adapting")]
    assert "**Drifting streams**" in format_tables(result["setup"], result["summary"])


def test_write_docs_replaces_only_what_is_between_the_markers(tmp_path, monkeypatch) -> None:
    page = tmp_path / "curation.md"
    page.write_text(f"# Title\n\nprose\n\n{ev.BEGIN}\nold table\n{ev.END}\n\n## More prose\n")
    monkeypatch.setattr(ev, "PAGE", page)
    write_docs("| new | table |\n")
    text = page.read_text()
    assert text == (f"# Title\n\nprose\n\n{ev.BEGIN}\n| new | table |\n{ev.END}\n\n## More prose\n")


def _noise(clean: float, noisy: float, filtered: float) -> dict[str, dict]:
    part = {"clean labels": {"accuracy": clean}, "20% flipped": {"accuracy": noisy}}
    part["20% flipped, filter 0.9"] = {"accuracy": filtered}
    for entry in part.values():
        entry["loss_vs_clean"] = clean - entry["accuracy"]
    lost = clean - noisy
    part["20% flipped, filter 0.9"] |= {
        "lost_to_noise": lost,
        "recovered": (filtered - noisy) / lost if lost > 0 else None,
    }
    return part


@pytest.mark.parametrize(
    ("clean", "noisy", "filtered", "met"),
    [
        (0.95, 0.91, 0.93, True),  # half of 4 points recovered
        (0.95, 0.91, 0.92, False),  # a quarter
        (0.95, 0.945, 0.95, None),  # noise costs half a point: the share means nothing
        (0.95, 0.945, 0.90, False),  # ... but a filter that costs 4.5 points misses anyway
    ],
)
def test_the_noise_goal_is_the_share_of_the_loss_recovered(clean, noisy, filtered, met) -> None:
    summary = {"active": {}, "noise": {"sea": _noise(clean, noisy, filtered)}}
    (goal,) = ev.goals(summary, ["sea"])
    assert goal["met"] is met
    assert goal["values"]["lost_to_noise"] == pytest.approx(clean - noisy)
