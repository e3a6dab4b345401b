"""Active learning through the broker, as a user runs it: the job asks for labels on the
label-requests topic, ``stratiflow label-oracle`` answers them on the labels topic, and
the answers come back through the delayed-label join. Every request is accounted for."""

from __future__ import annotations

import json
import os
import re
import signal
from collections import deque

import pytest

from stratiflow.io import kafka as kafka_io
from stratiflow.io.sources import river_events
from stratiflow.local.procs import pid_alive
from tests.e2e.cli import run_cli, write_config
from tests.e2e.faults import count, wait_for
from tests.helpers import topic_values

pytestmark = pytest.mark.e2e

START_TS = 1_700_000_000_000
N = 1200  # the Phishing dataset has 1250 events
BUDGET, WINDOW = 0.1, 100


def test_requests_answered_by_the_label_oracle_are_joined_and_learned(broker, tmp_path):
    prefix = f"active-{tmp_path.name}"
    config = write_config(
        tmp_path / "job.yaml",
        broker.bootstrap,
        prefix,
        topics={"labels": f"{prefix}-labels", "label_requests": f"{prefix}-label-requests"},
        labels={"source": "topic", "ttl": "1h"},
        active={"strategy": "uncertainty", "budget": BUDGET, "budget_window": WINDOW},
        metrics={"report_every": 1},  # a report per joined answer: the last one counts all
        job={"checkpoint_interval_ms": 1000},
    )
    events = list(river_events("phishing", n=N, start_ts=START_TS, interval_ms=10))
    truth = tmp_path / "truth.jsonl"
    truth.write_text("".join(json.dumps(e) + "\n" for e in events))
    run_cli(
        "produce", "phishing", "--n", str(N), "--config", str(config), "--start-ts",
        str(START_TS), "--interval-ms", "10", "--unlabelled-fraction", "1.0", "--quiet",
    )  # fmt: skip
    kafka_io.ensure_topics(broker.bootstrap, {f"{prefix}-labels": 1})  # answers come later
    submitted = run_cli("submit", "--config", str(config), "--detached")
    match = re.search(r"pid (\d+), log (\S+)\)", submitted.stdout)
    assert match, submitted.stdout
    pid = int(match.group(1))
    try:
        wait_for(lambda: count(broker.bootstrap, f"{prefix}-predictions") >= N, 240, "predictions")
        requests = topic_values(broker.bootstrap, f"{prefix}-label-requests")
        oracle = run_cli(
            "label-oracle", "--labels", str(truth), "--config", str(config),
            "--delay-ms", "50", "--idle-exit", "5",
        )  # fmt: skip
        assert f"{len(requests)} requests read, {len(requests)} labels sent" in oracle.stderr

        def answered() -> int:
            reports = topic_values(broker.bootstrap, f"{prefix}-metrics")
            return max((r["curation"]["answered"] for r in reports if r["curation"]), default=0)

        wait_for(lambda: answered() >= len(requests), 180, "every answer joined")
    finally:
        if pid_alive(pid):  # an unbounded job: stop it (its own session, see submit)
            os.killpg(pid, signal.SIGTERM)
            try:
                wait_for(lambda: not pid_alive(pid), 30, "the job to stop")
            except AssertionError:
                os.killpg(pid, signal.SIGKILL)

    reports = topic_values(broker.bootstrap, f"{prefix}-metrics")
    last = max(reports, key=lambda r: r["curation"]["answered"])
    assert last["curation"]["answered"] == last["labels"]["joined"] == len(requests)
    assert last["curation"]["unrequested"] == 0
    assert last["counts"]["learned"] == len(requests)
    assert last["active"]["requested"] == len(requests)
    # The budget held over every window of WINDOW consecutive events.
    requested = {r["id"] for r in requests}
    window: deque[bool] = deque(maxlen=WINDOW)
    worst = 0
    for e in events:
        window.append(e["id"] in requested)
        worst = max(worst, sum(window))
    assert 0 < worst <= BUDGET * WINDOW
    predictions = topic_values(broker.bootstrap, f"{prefix}-predictions")
    assert len({p["id"] for p in predictions}) == N
    tail = run_cli(
        "tail", "label-requests", "--config", str(config), "--from-beginning", "--idle-exit", "3"
    )
    assert tail.stdout.count("label-request id=") == len(requests)
