"""The dashboard and the static report of a real backtest, read in a real browser.

One backtest (MiniCluster) with two keys, drift resets, a challenger, simulated
active learning and a few bad lines; the page's numbers are compared with the records the
job wrote, for the live page (``stratiflow dashboard --run``) and the report file.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from stratiflow.config import load_config
from stratiflow.dashboard.board import MARKER_TYPES
from stratiflow.io.sources import river_events
from stratiflow.jobs.backtest import run_backtest
from stratiflow.local.procs import free_port
from tests.browser import (
    ARTIFACTS,
    browser_page,
    dashboard_process,
    read_page,
    screenshot,
    select_key,
    shown,
)
from tests.e2e.cli import run_cli
from tests.helpers import read_jsonl

pytestmark = pytest.mark.flink

KEYS = ("a", "b")
BAD_LINES = [
    "not json",
    '{"id": "x"}',
    '{"id": "y", "ts": 1, "features": {"a": 1}, "label": [1], "key": "a"}',
    # valid, but StandardScaler raises on a string: the model's dead letter, under key a
    '{"id": "z", "ts": 1, "features": {"salary": "high"}, "label": 1, "key": "a"}',
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("dashboard")
    events = list(river_events("agrawal_drift", n=5000, seed=5, interval_ms=10, keys=KEYS))
    lines = [json.dumps(e) for e in events]
    for n, bad in enumerate(BAD_LINES):
        lines.insert(1000 * (n + 1), bad)
    path = tmp / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")
    cfg = load_config(
        {
            "model": [
                {"preprocessing.StandardScaler": {}},
                {"linear_model.LogisticRegression": {}},
            ],
            "metrics": {"report_every": 250},
            "drift": {"detector": "drift.ADWIN", "adaptation": "reset"},
            "candidates": [
                {"name": "tree", "model": [{"tree.HoeffdingTreeClassifier": {"grace_period": 50}}]}
            ],
            "active": {"strategy": "variable_uncertainty", "budget": 0.3, "simulate": True},
        }
    )
    result = run_backtest(path, cfg, tmp / "out")
    assert result.dead_letters == len(BAD_LINES)
    return result.out_dir


def expected(run: Path) -> dict[str, Any]:
    metrics = read_jsonl(run / "metrics.jsonl")
    last = {m["key"]: m for m in metrics}  # the file keeps each key's order
    return {
        "all": metrics,
        "last": last,
        "dead": Counter(d["reason"] for d in read_jsonl(run / "dead_letters.jsonl")),
        "key_dead": {
            key: Counter(
                d["reason"] for d in read_jsonl(run / "dead_letters.jsonl") if d["key"] == key
            )
            for key in KEYS
        },
        "requests": Counter(r["key"] for r in read_jsonl(run / "label_requests.jsonl")),
        "markers": {
            key: [
                [m["type"], str(m["scored"])]
                for m in read_jsonl(run / "model_events.jsonl")
                if m["key"] == key and m["type"] in MARKER_TYPES
            ]
            for key in KEYS
        },
    }


def assert_page_shows(page: Any, run: Path, name: str) -> None:
    want = expected(run)
    shot = None
    for key in KEYS:
        select_key(page, key)
        seen = read_page(page)
        final = want["last"][key]
        assert final["final"] is True
        row = seen["keys"][key]
        assert row["scored"] == shown(final["counts"]["scored"])
        assert row["acc"] == shown(final["cumulative"]["accuracy"])
        assert row["r_acc"] == shown(final["rolling"]["accuracy"])
        assert row["model_version"] == shown(final["model_version"])
        assert row["generation"] == shown(final["generation"])
        assert row["serving"] == final["candidates"]["champion"]
        assert row["label_requests"] == shown(want["requests"][key]) != "0"
        tiles = seen["tiles"]
        assert tiles["acc"] == shown(final["cumulative"]["accuracy"])
        assert tiles["bal_acc"] == shown(final["cumulative"]["balanced_accuracy"])
        assert tiles["macro_f1"] == shown(final["cumulative"]["macro"]["f1"])
        assert tiles["log_loss"] == shown(final["cumulative"]["log_loss"])
        assert tiles["drifts"] == shown(final["drift"]["drifts"])
        active = final["active"]
        assert tiles["active"] == f"{active['used_in_window']} / {active['limit']}"
        assert [m[1:3] for m in seen["markers"]] == want["markers"][key]
        assert seen["keyDead"] == dict(want["key_dead"][key])
        assert want["markers"][key], "the run should have drifted"
        charts = {"accuracy", "rolling", "recall", "log_loss", "mix", "active", "cost", "size"}
        assert charts | {"stability"} <= set(seen["charts"])
        assert tiles["learn_p99"] == shown(final["cost"]["learn_us"]["p99"], 1)
        assert tiles["model_kb"] == shown(final["cost"]["model_bytes"] / 1000, 1)
        # the plotted lines are the key's metrics records, in order
        plotted = page.evaluate("() => window.stratiflow.plotted()")
        records = [m for m in want["all"] if m["key"] == key]
        accuracy = plotted["accuracy"]
        assert accuracy["labels"][1] == "accuracy"
        assert accuracy["data"][0] == [m["event_ts"] / 1000 for m in records]
        assert accuracy["data"][1] == [m["cumulative"]["accuracy"] for m in records]
        rolling = plotted["rolling"]
        for pipeline in ("main", "tree"):  # champion and challenger overlaid
            line = rolling["data"][rolling["labels"].index(f"{pipeline} (accuracy)")]
            assert line == [m["candidates"]["pipelines"][pipeline]["accuracy"] for m in records]
        shot = screenshot(page, f"{name}-{key}")
    assert seen["dead"] == dict(want["dead"])
    # the model's rejection is the one dead letter with a model key
    assert {k: dict(c) for k, c in want["key_dead"].items()} == {
        "a": {"model_rejected_input": 1},
        "b": {},
    }
    assert sum(seen["dead"].values()) == len(BAD_LINES)
    assert shot is not None and shot.stat().st_size > 10_000


def test_the_live_page_of_a_run_shows_the_numbers_the_job_wrote(run_dir: Path):
    port = free_port()
    with dashboard_process("--run", str(run_dir), port=port), browser_page() as page:
        page.goto(f"http://127.0.0.1:{port}/")
        page.wait_for_selector("#tiles .tile")
        assert page.inner_text("#status") == "live: following the run"
        assert_page_shows(page, run_dir, "dashboard-run")


def test_the_report_is_one_file_with_the_same_numbers_and_pngs(run_dir: Path, tmp_path: Path):
    out = tmp_path / "report.html"
    result = run_cli("report", str(run_dir), "--out", str(out), "--png")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(out, ARTIFACTS / "report.html")  # kept with the screenshots
    assert "2 model keys" in result.stdout
    pngs = sorted(p.name for p in tmp_path.glob("report-*.png"))
    assert {f"report-{k}-{c}.png" for k in KEYS for c in ("accuracy", "mix")} <= set(pngs)
    with browser_page() as page:
        # nothing but the file: a request that leaves it fails the page
        page.route("**/*", lambda route: route.abort() if not route.request.url.startswith(
            "file://") else route.continue_())  # fmt: skip
        page.goto(out.as_uri())
        page.wait_for_selector("#tiles .tile")
        assert page.inner_text("#status").startswith("report:")
        assert_page_shows(page, run_dir, "report")
