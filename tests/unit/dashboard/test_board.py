"""The dashboard's board: records of every output stream folded into chart rows and patches."""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

import pytest

from stratiflow.dashboard.board import Board, metric_row, mix_row
from stratiflow.dashboard.page import live_page, report_page
from stratiflow.dashboard.sources import RunDirectory


def metrics_record(key: str, report: int, **over) -> dict:
    record = {
        "schema_version": 2,
        "key": key,
        "report": report,
        "final": False,
        "event_ts": 1_700_000_000_000 + report * 1000,
        "emitted_at": 1,
        "model_version": 100 * report,
        "generation": 0,
        "counts": {"seen": 100 * report, "predicted": 100 * report, "scored": 99 * report,
                   "learned": 100 * report, "rejected": 0},
        "labels": {"waiting": 10, "delay_ms": {"p50": 250.0, "p99": 900.0}},
        "trained_on": {"0": 60 * report, "1": 40 * report},
        "cumulative": {"accuracy": 0.5 + report / 100, "balanced_accuracy": 0.4,
                       "macro": {"f1": 0.3}, "log_loss": 0.7,
                       "per_class": {"0": {"recall": 0.9}, "1": {"recall": 0.2}}},
        "rolling": {"accuracy": 0.6, "balanced_accuracy": 0.55, "macro": {"f1": 0.5},
                    "log_loss": 0.65,
                    "per_class": {"0": {"recall": 0.8}, "1": {"recall": 0.3}}},
        "drift": None,
        "candidates": None,
        "active": None,
        "cost": {"predict_us": {"p50": 10.0, "p99": 30.0}, "learn_us": {"p50": 20.0, "p99": 60.0},
                 "events_per_s": 1234.5, "model_bytes": 5000, "state_bytes": 9000},
        "stability": {"spread": {"accuracy": {"std": 0.02, "range": 0.05}},
                      "probe_changed": 0.1},
    }  # fmt: skip
    record.update(over)
    return record


def test_a_metrics_record_becomes_a_row_of_the_values_it_holds():
    row = metric_row(metrics_record("k", 2))
    assert row["t"] == 1_700_000_002.0
    assert (row["acc"], row["bal_acc"], row["macro_f1"], row["log_loss"]) == (0.52, 0.4, 0.3, 0.7)
    assert (row["r_acc"], row["r_bal_acc"], row["r_macro_f1"]) == (0.6, 0.55, 0.5)
    # per-class recall is the rolling window's when there is one
    assert row["recall"] == {"0": 0.8, "1": 0.3}
    assert row["waiting_share"] == 10 / 200
    assert (row["label_lag_p50"], row["label_lag_p99"]) == (250.0, 900.0)
    assert (row["scored"], row["model_version"], row["champion"]) == (198, 200, None)
    # update time, resources and stability
    assert (row["predict_p50"], row["predict_p99"], row["learn_p50"], row["learn_p99"]) == (
        10.0, 30.0, 20.0, 60.0,
    )  # fmt: skip
    assert (row["events_per_s"], row["model_bytes"], row["state_bytes"]) == (1234.5, 5000, 9000)
    assert (row["spread_acc_std"], row["probe_changed"]) == (0.02, 0.1)


def test_without_a_rolling_window_recall_is_the_cumulative_one():
    row = metric_row(metrics_record("k", 1, rolling=None))
    assert row["recall"] == {"0": 0.9, "1": 0.2}
    assert row["r_acc"] is None


def test_candidates_and_the_active_budget_are_read():
    candidates = {
        "champion": "tree",
        "metric": "accuracy",
        "promotions": 1,
        "pipelines": {
            "main": {"role": "challenger", "learned": 10, "accuracy": 0.5},
            "tree": {"role": "champion", "learned": 4, "accuracy": 0.7},
        },
    }
    active = {"used_in_window": 20, "limit": 50, "requested": 70}
    row = metric_row(metrics_record("k", 1, candidates=candidates, active=active))
    assert row["champion"] == "tree"
    assert row["pipelines"] == {
        "main": {"role": "challenger", "value": 0.5, "learned": 10},
        "tree": {"role": "champion", "value": 0.7, "learned": 4},
    }
    assert (row["active_used"], row["active_limit"], row["active_requested"]) == (20, 50, 70)


def test_the_class_mix_between_reports_is_the_difference_of_trained_on():
    board = Board()
    board.add("metrics", metrics_record("k", 1))
    board.add("metrics", metrics_record("k", 3))
    first, second = board.keys["k"].metrics
    assert first["trained_delta"] == {"0": 60, "1": 40}
    assert second["trained_delta"] == {"0": 120, "1": 80}


def test_a_sampling_window_becomes_a_mix_row_and_a_late_only_record_none():
    record = {
        "key": "k",
        "window": {"start": 0, "end": 2000},
        "trained": 7,
        "classes": {"0": {"trained": 5}, "1": {"trained": 2}},
    }
    assert mix_row(record) == {"t": 2.0, "trained": 7, "counts": {"0": 5, "1": 2}}
    assert mix_row({**record, "window": {"start": None, "end": None}}) is None


def test_every_stream_lands_in_its_key_and_dead_letters_by_reason():
    board = Board()
    board.add("metrics", metrics_record("a", 1))
    board.add("sampling_stats", {"key": "a", "window": {"start": 0, "end": 1000},
                                 "trained": 1, "classes": {"0": {"trained": 1}}})  # fmt: skip
    board.add("model_events", {"key": "a", "type": "drift", "ts": 5000, "scored": 40})
    board.add("model_events", {"key": "a", "type": "some_future_type", "ts": 5000})
    board.add("label_requests", {"key": "b", "id": "e-1"})
    board.add("dead_letters", {"reason": "invalid_json", "key": None})
    board.add("dead_letters", {"reason": "bad_label", "key": "a"})
    board.add("dead_letters", {"reason": "bad_label", "key": "a"})
    snap = json.loads(json.dumps(board.snapshot()))
    assert sorted(snap["keys"]) == ["(no key)", "a", "b"]
    a = snap["keys"]["a"]
    assert len(a["metrics"]) == len(a["mix"]) == len(a["markers"]) == 1
    assert a["markers"][0] == {"t": 5.0, "type": "drift", "scored": 40, "id": None, "detail": ""}
    assert a["dead_letters"] == {"bad_label": 2}
    assert snap["keys"]["b"]["label_requests"] == 1
    assert snap["dead_letters"] == {"invalid_json": 1, "bad_label": 2}
    assert snap["records"] == {"metrics": 1, "sampling_stats": 1, "model_events": 2,
                               "label_requests": 1, "dead_letters": 3}  # fmt: skip


def test_unreadable_records_are_counted_not_drawn():
    board = Board()
    board.add_bytes("metrics", b"not json")
    board.add_bytes("metrics", b"[1, 2]")
    board.add_bytes("metrics", None)
    board.add_bytes("metrics", b'{"report": 1}')  # no key
    assert board.unreadable == {"metrics": 4}
    assert board.keys == {}


def test_patches_since_a_sequence_number_and_a_reset_when_too_far_behind():
    board = Board(max_patches=3)
    for n in range(5):
        board.add("label_requests", {"key": "k", "id": str(n)})
    assert board.seq == 5
    assert [p["seq"] for p in board.patches_since(3)] == [4, 5]
    assert board.patches_since(5) == []
    assert board.patches_since(2) == [p for _, p in board._patches]
    assert board.patches_since(1) is None  # patch 2 is gone: the page reloads


def test_past_max_rows_the_older_half_is_thinned_and_the_page_reloads():
    board = Board(max_rows=4)
    patches = [board.add("metrics", metrics_record("k", n)) for n in range(1, 6)]
    assert [p[0]["kind"] for p in patches] == ["row"] * 4 + ["reset"]
    assert [r["report"] for r in board.keys["k"].metrics] == [1, 3, 4, 5]


def test_a_run_directory_is_read_line_by_line_as_it_grows(tmp_path: Path):
    metrics = tmp_path / "metrics.jsonl"
    first = json.dumps(metrics_record("k", 1))
    second = json.dumps(metrics_record("k", 2))
    metrics.write_text(first + "\n" + second[:20])
    run, board = RunDirectory(tmp_path), Board()
    assert run.poll(board) == 1
    with metrics.open("a") as handle:
        handle.write(second[20:] + "\n")
    assert run.poll(board) == 1
    assert [r["report"] for r in board.keys["k"].metrics] == [1, 2]
    assert board.sources["files"]["ok"]


def test_a_missing_run_directory_is_said_on_the_board(tmp_path: Path):
    board = Board()
    RunDirectory(tmp_path / "nope").poll(board)
    assert board.sources["files"]["ok"] is False
    assert "no run directory" in board.sources["files"]["message"]
    RunDirectory(tmp_path).poll(board)
    assert "holds none of" in board.sources["files"]["message"]


def test_the_vendored_chart_library_is_the_pinned_release():
    static = resources.files("stratiflow.dashboard") / "static" / "vendor"
    manifest = json.loads((static / "VENDORED.json").read_text())["uplot"]
    assert manifest["version"] == "1.6.32"
    for name, digest in manifest["files"].items():
        assert hashlib.sha256((static / name).read_bytes()).hexdigest() == digest, name


def test_the_report_page_holds_everything_and_cannot_be_broken_out_of():
    board = Board()
    board.add("metrics", metrics_record("</script><script>alert(1)</script>", 1))
    page = report_page("a <b> title", board.snapshot())
    assert "http://" not in page and "https://" not in page.replace("https://github", "")
    assert 'src="' not in page  # no external script, style or image
    assert "a &lt;b&gt; title" in page
    # the only closing script tags are the page's own three
    assert page.count("</script>") == 3
    data = page.split('<script id="snapshot" type="application/json">')[1].split("</script>")[0]
    assert json.loads(data)["keys"].keys() == {"</script><script>alert(1)</script>"}


@pytest.mark.parametrize("page", [live_page("t"), report_page("t", Board().snapshot())])
def test_the_page_has_every_placeholder_filled(page: str):
    assert "{{" not in page
