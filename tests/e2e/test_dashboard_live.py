"""The live dashboard in a real browser, following a job through the broker.

The page is opened before anything exists; events (and bad records) are produced, the
job runs on the standalone cluster, and the page's numbers must become the newest
metrics record on the topic, its dead letters the topic's, and its job health Flink's.
Also: a page whose data cannot be had says so.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from stratiflow.io import kafka as kafka_io
from stratiflow.local.procs import free_port
from tests.browser import browser_page, dashboard_process, read_page, screenshot, shown
from tests.e2e.cli import run_cli, write_config
from tests.helpers import topic_values

pytestmark = pytest.mark.e2e

BAD = [b"{{{ not json", b'{"id": "x2", "ts": 5, "features": {}, "label": true}']
N = 1000


def wait_text(page, selector: str, text: str, timeout_ms: int = 60_000) -> None:
    page.wait_for_function(
        "([selector, text]) => { const node = document.querySelector(selector);"
        " return node !== null && node.textContent.includes(text); }",
        arg=[selector, text],
        timeout=timeout_ms,
    )


def test_the_page_follows_a_job_on_the_cluster(broker, flink_cluster, tmp_path: Path):
    prefix = f"dash-{tmp_path.name}"
    config = write_config(
        tmp_path / "job.yaml",
        broker.bootstrap,
        prefix,
        metrics={"report_every": 200},
        sampling={"strategy": "uniform", "rate": 1.0, "window": "100s"},
        job={"name": prefix},
    )
    port = free_port()
    with (
        dashboard_process(
            "--config", str(config), "--jobmanager", flink_cluster.jobmanager, port=port
        ),
        browser_page() as page,
    ):
        page.goto(f"http://127.0.0.1:{port}/")
        # nothing produced yet: the page says which topics it is waiting for
        wait_text(page, "#sources", f"no such topic (yet): {prefix}-dead-letters")
        wait_text(page, "#sources", f"job health from http://{flink_cluster.jobmanager}")

        run_cli(
            "produce", "phishing", "--config", str(config), "--limit", str(N), "--quiet",
            "--start-ts", "1700000000000",
        )  # fmt: skip
        producer = kafka_io.producer(broker.bootstrap)
        for raw in BAD:
            producer.send(f"{prefix}-events", value=raw)
        producer.flush()
        producer.close()
        run_cli(
            "submit", "--config", str(config), "--jobmanager", flink_cluster.jobmanager,
            "--detached", timeout=240,
        )  # fmt: skip
        try:
            wait_text(page, '#keys tr[data-key="default"] [data-field="scored"]', str(N), 180_000)
            wait_text(page, "#health-tiles [data-value=job-state]", "RUNNING")
            # every record produced was read by the job's source (Flink's REST API)
            page.wait_for_function(
                "n => (window.stratiflow.board().health || {}).records_in === n",
                arg=N + len(BAD),
                timeout=60_000,
            )
            page.wait_for_function(
                "n => Object.values(window.stratiflow.board().dead_letters)"
                ".reduce((a, b) => a + b, 0) === n",
                arg=len(BAD),
            )
            page.wait_for_timeout(500)  # one more draw
            seen = read_page(page)
            seen_health = page.evaluate("() => window.stratiflow.board().health")
            shot = screenshot(page, "dashboard-live")
        finally:
            run_cli("stop", "--jobmanager", flink_cluster.jobmanager)

    metrics = topic_values(broker.bootstrap, f"{prefix}-metrics")
    newest = metrics[-1]
    assert newest["counts"]["scored"] == N
    row = seen["keys"]["default"]
    assert row["acc"] == shown(newest["cumulative"]["accuracy"])
    assert row["r_acc"] == shown(newest["rolling"]["accuracy"])
    assert row["model_version"] == shown(newest["model_version"])
    assert seen["tiles"]["log_loss"] == shown(newest["cumulative"]["log_loss"])
    letters = topic_values(broker.bootstrap, f"{prefix}-dead-letters")
    assert seen["dead"] == dict(Counter(d["reason"] for d in letters))
    assert sum(seen["dead"].values()) == len(BAD)
    windows = topic_values(broker.bootstrap, f"{prefix}-sampling-stats")
    if windows:  # closed windows draw the class mix per sampling window
        assert "mix" in seen["charts"]
    assert {"accuracy", "recall", "log_loss"} <= set(seen["charts"])
    # the job has no drift detector, candidates or active learning: no such topics
    assert f"following {broker.bootstrap}; no such topic (yet): " in seen["sources"]
    assert f"{prefix}-metrics" not in seen["sources"]
    health = seen_health
    assert health["state"] == "RUNNING" and health["job"] == prefix
    assert health["restarts"] == 0
    assert shot.stat().st_size > 10_000


def test_a_page_without_a_broker_says_so(tmp_path: Path):
    closed = free_port()  # nothing listens there
    port = free_port()
    with (
        dashboard_process("--bootstrap-servers", f"127.0.0.1:{closed}", port=port),
        browser_page() as page,
    ):
        page.goto(f"http://127.0.0.1:{port}/")
        wait_text(page, "#sources", "cannot read from the broker: cannot reach the Kafka broker")
        assert f"127.0.0.1:{closed}" in page.inner_text("#sources [data-source=kafka]")
        assert "error" in page.get_attribute("#sources [data-source=kafka]", "class")


def test_a_page_whose_server_went_away_says_so(tmp_path: Path):
    (tmp_path / "metrics.jsonl").write_text("")
    port = free_port()
    with browser_page() as page:
        with dashboard_process("--run", str(tmp_path), port=port):
            page.goto(f"http://127.0.0.1:{port}/")
            wait_text(page, "#status", "live")
        wait_text(page, "#status", "lost the connection to the dashboard server")
        assert page.get_attribute("#status", "class") == "status error"


def test_a_run_directory_without_outputs_is_named_on_the_page(tmp_path: Path):
    port = free_port()
    with dashboard_process("--run", str(tmp_path), port=port), browser_page() as page:
        page.goto(f"http://127.0.0.1:{port}/")
        wait_text(page, "#sources", "holds none of")
