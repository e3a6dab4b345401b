"""Flink's Prometheus reporter on a job run as a user runs it (`stratiflow submit`, its own
MiniCluster, `job.prometheus_port`): the endpoint is scraped while the job runs, and
stratiflow's figures there reconcile with what the job wrote to its topics; every metric the
Grafana dashboard (deploy/grafana/) reads is served.

The job reads an unbounded source: a bounded job's metrics vanish with its MiniCluster.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from stratiflow.io import kafka as kafka_io
from stratiflow.io.sources import river_events
from stratiflow.local.procs import free_port
from stratiflow.operators.metrics import MODEL_EVENT_TYPES, PPM, prometheus_name
from tests.e2e.cli import STRATIFLOW, write_config
from tests.helpers import dashboard_metrics

pytestmark = pytest.mark.e2e
START_TS = 1_700_000_000_000
N = 300
#: Records the job must dead-letter, by the reason it must give.
BAD = {
    b"not json": "invalid_json",
    b'{"id": "x", "ts": 1}': "missing_field",
    b"[1, 2]": "not_an_object",
    b"{broken": "invalid_json",
}
_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')

Sample = tuple[str, dict[str, str], float]


def scrape(port: int) -> list[Sample] | None:
    """Every sample the reporter serves now (None while nothing listens)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except (OSError, urllib.error.URLError):
        return None
    samples = []
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match and not line.startswith("#"):
            name, labels, value = match.groups()
            samples.append((name, dict(_LABEL.findall(labels or "")), float(value)))
    return samples


def series(samples: list[Sample], metric: str) -> list[tuple[dict[str, str], float]]:
    return [(labels, value) for name, labels, value in samples if name == prometheus_name(metric)]


def total(samples: list[Sample], metric: str) -> float:
    return sum(value for _, value in series(samples, metric))


def by_label(samples: list[Sample], metric: str, label: str) -> dict[str, float]:
    out: Counter[str] = Counter()
    for labels, value in series(samples, metric):
        out[labels[label]] += value
    return dict(out)


def values(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    """Every committed record of ``topic`` (the job has stopped writing: a short idle wait)."""
    return [json.loads(r.value) for r in kafka_io.read_topic(bootstrap, topic, idle_timeout_s=1)]


def stop(proc: subprocess.Popen[bytes]) -> None:
    """End the submit CLI and what it started (the job, its JVM, the Python workers)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError):  # a JVM or worker that outlived the CLI
        os.killpg(proc.pid, signal.SIGKILL)


def produce(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    """N Phishing events of keys alpha and beta (alpha first), with BAD among them."""
    events = list(river_events("phishing", n=N, start_ts=START_TS, keys=("alpha", "beta")))
    kafka_io.ensure_topics(bootstrap, {topic: 1})  # one partition: one order
    out = kafka_io.producer(bootstrap, enable_idempotence=False)
    bad = iter(BAD)
    for i, event in enumerate(events):
        out.send(topic, value=json.dumps(event).encode())
        if i % 70 == 35:
            out.send(topic, value=next(bad))
    for rest in bad:
        out.send(topic, value=rest)
    out.flush()
    out.close()
    return events


def wait_for(what: str, check: Any, proc: subprocess.Popen[bytes], log: Path, timeout: float):
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found is not None:
            return found
        if proc.poll() is not None:
            raise AssertionError(f"the job exited ({proc.returncode}):\n{log.read_text()[-4000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} within {timeout:.0f} s:\n{log.read_text()[-4000:]}")
        time.sleep(1)


def test_a_running_job_serves_figures_that_reconcile_with_its_topics(broker, tmp_path):
    prefix = f"prom-{tmp_path.name}"
    port = free_port()
    config = write_config(
        tmp_path / "job.yaml",
        broker.bootstrap,
        prefix,
        job={"prometheus_port": port, "gauge_keys": 1, "checkpoint_interval_ms": 1000},
        metrics={"report_every": 1, "window": 50},
        # DDM warms up fast: warnings and a drift within these few events.
        drift={"detector": {"drift.binary.DDM": {"warm_start": 10}}},
        topics={"model_events": f"{prefix}-model-events"},
    )
    topics = yaml.safe_load(config.read_text())["topics"]
    produce(broker.bootstrap, topics["events"])
    log = tmp_path / "job.log"
    with log.open("wb") as handle:
        proc = subprocess.Popen(
            [STRATIFLOW, "submit", "--config", str(config)],
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def everything_counted() -> list[Sample] | None:
            samples = scrape(port)
            done = samples is not None and (
                total(samples, "predicted") == N and total(samples, "dead_letters") == len(BAD)
            )
            return samples if done else None

        wait_for("complete counts on the endpoint", everything_counted, proc, log, 240)
        time.sleep(1)  # nothing moves any more: one consistent scrape
        samples = scrape(port)
        assert samples is not None

        def all_on_topics() -> tuple[list[dict[str, Any]], ...] | None:
            predictions = values(broker.bootstrap, topics["predictions"])
            reports = values(broker.bootstrap, topics["metrics"])
            letters = values(broker.bootstrap, topics["dead_letters"])
            scored = sum(1 for p in predictions if "y_true" in p)
            complete = len(predictions) == N and len(letters) == len(BAD)
            return (predictions, reports, letters) if complete and len(reports) >= scored else None

        predictions, reports, letters = wait_for(
            "outputs on the topics", all_on_topics, proc, log, 60
        )
        model_events = values(broker.bootstrap, topics["model_events"])
    finally:
        stop(proc)

    # Counters: over the subtasks, the keys' latest counts (a report per scored event).
    latest = {}
    for report in reports:
        key = report["key"]
        if key not in latest or report["counts"]["scored"] > latest[key]["counts"]["scored"]:
            latest[key] = report
    assert set(latest) == {"alpha", "beta"}
    for name in ("predicted", "scored", "learned", "rejected"):
        assert total(samples, name) == sum(r["counts"][name] for r in latest.values()), name
    assert total(samples, "predicted") == len(predictions) == N
    assert total(samples, "scored") > 0

    # Dead letters by reason: what the dead-letter topic holds.
    assert by_label(samples, "dead_letters", "reason") == Counter(BAD.values())
    assert Counter(d["reason"] for d in letters) == Counter(BAD.values())

    # Model events: every type's series (0 until one happens), each what the topic holds.
    expected = dict.fromkeys(MODEL_EVENT_TYPES, 0.0)
    for event in model_events:
        expected[event["type"]] += 1
    assert by_label(samples, "model_events", "type") == expected
    assert expected["drift"] > 0 and expected["drift_warning"] > 0

    # The accuracy gauge: the first key only (job.gauge_keys: 1), as its latest report says.
    (gauge,) = series(samples, "rolling_accuracy_ppm")
    assert gauge[0]["model_key"] == "alpha"
    assert gauge[1] == round(latest["alpha"]["rolling"]["accuracy"] * PPM)

    # The dashboard reads only metrics a running job serves.
    served = {name for name, _, _ in samples}
    assert dashboard_metrics() <= served, dashboard_metrics() - served
