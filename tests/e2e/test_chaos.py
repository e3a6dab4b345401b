"""Fault tests against the real local broker and a standalone Flink cluster.

``make test`` runs them at smoke size; ``make chaos`` runs them at full size
(``STRATIFLOW_CHAOS_N``, default 50 000 there) and writes each run's row to
``STRATIFLOW_CHAOS_RESULTS`` for the table in the README.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stratiflow import kafka_io
from stratiflow.local import flink as local_flink
from stratiflow.local.procs import descendants, free_port, rss_mb
from stratiflow.records import to_json_bytes
from stratiflow.sources import river_events
from tests.e2e.cli import run_cli, write_config
from tests.helpers import topic_values

pytestmark = pytest.mark.e2e

N = int(os.environ.get("STRATIFLOW_CHAOS_N", "6000"))
RESULTS = os.environ.get("STRATIFLOW_CHAOS_RESULTS")
START_TS = 1_700_000_000_000


@pytest.fixture
def chaos_cluster(local_paths):
    """A cluster of our own: this test kills its TaskManager."""
    instance = f"test-chaos-{os.getpid()}"
    info = local_flink.start(free_port(), slots=2, instance=instance, paths=local_paths)
    try:
        yield instance, info
    finally:
        local_flink.stop(instance, local_paths, purge=True)


def rest(port: int, path: str, method: str = "GET") -> Any:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    with urllib.request.urlopen(request, timeout=5) as response:
        body = response.read()
    return json.loads(body) if body else None


def running_job(port: int) -> str:
    jobs = [j for j in rest(port, "/jobs")["jobs"] if j["status"] == "RUNNING"]
    assert len(jobs) == 1, jobs
    return str(jobs[0]["id"])


def count(bootstrap: str, topic: str) -> int:
    return sum(kafka_io.end_offsets(bootstrap, topic).values())


def wait_for(predicate, timeout: float, what: str, every: float = 0.5) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)
    return time.monotonic() - start


def send_paced(
    send: Callable[[int], None], first: int, last: int, rate: float, sent: list[int]
) -> None:
    """``send(i)`` for i in [first, last) at ``rate`` per second; ``sent[0]`` follows along."""
    start = time.monotonic()
    for i in range(first, last):
        delay = start + (i - first) / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        send(i)
        sent[0] = i + 1


def record_result(row: dict[str, Any]) -> None:
    if not RESULTS:
        return
    path = Path(RESULTS)
    rows = json.loads(path.read_text()) if path.exists() else []
    rows = [r for r in rows if r["fault"] != row["fault"]] + [row]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=2) + "\n")


def test_taskmanager_killed_mid_stream_recovers_from_its_checkpoint(
    broker, chaos_cluster, local_paths, tmp_path
):
    """SIGKILL the TaskManager while events flow, start a new one: the job restores
    from its last checkpoint and the model continues from its checkpointed state.
    After deduplication by event id every event has exactly one prediction, equal
    to the one an uninterrupted run makes (model_version = events learned before it)."""
    instance, info = chaos_cluster
    prefix = f"chaos-tm-{tmp_path.name}"
    config = write_config(
        tmp_path / "job.yaml",
        broker.bootstrap,
        prefix,
        job={"checkpoint_interval_ms": "1s", "restart_delay_ms": "1s"},
        metrics={"report_every": 1000},
    )
    events = list(river_events("hyperplane", n=N, seed=5, start_ts=START_TS, interval_ms=10))
    kafka_io.ensure_topics(broker.bootstrap, {f"{prefix}-events": 1})
    run_cli(
        "submit", "--config", str(config), "--jobmanager", f"127.0.0.1:{info.rest_port}",
        "--detached",
    )  # fmt: skip
    wait_for(lambda: running_job(info.rest_port) is not None, 60, "the job to run")

    # Produce at a steady rate in the background so the kill lands mid-stream.
    rate = max(N / 20, 300)
    producer = kafka_io.producer(broker.bootstrap)
    sent = [0]

    def send(i: int) -> None:
        producer.send(f"{prefix}-events", key=b"default", value=to_json_bytes(events[i]))

    def produce(first: int, last: int) -> None:
        send_paced(send, first, last, rate, sent)
        producer.flush()

    # A first slice, until the job is seen predicting; then the rest at a steady rate.
    warmup = min(200, N // 10)
    produce(0, warmup)
    predictions_topic = f"{prefix}-predictions"
    wait_for(lambda: count(broker.bootstrap, predictions_topic) > 0, 120, "first predictions")
    thread = threading.Thread(target=produce, args=(warmup, N), daemon=True)
    thread.start()
    wait_for(lambda: sent[0] >= N // 2, 120, "half the events sent")
    (pid,) = local_flink.taskmanager_pids(instance, local_paths)
    # The TaskManager and its Python workers die together, as when its machine fails
    # (a worker whose TaskManager is gone would otherwise linger as an orphan).
    for doomed in [pid, *descendants(pid)]:
        os.kill(doomed, signal.SIGKILL)
    killed_at = time.time()
    sent_at_kill = sent[0]
    before_kill = count(broker.bootstrap, predictions_topic)
    local_flink.start_taskmanager(instance, local_paths)
    thread.join(timeout=120)
    producer.close()

    def complete() -> bool:
        return (
            count(broker.bootstrap, predictions_topic) >= N
            and len({p["id"] for p in topic_values(broker.bootstrap, predictions_topic)}) >= N
        )

    wait_for(complete, 300, "every event to be predicted", every=3)
    predictions = topic_values(broker.bootstrap, predictions_topic)
    job = running_job(info.rest_port)
    rest(info.rest_port, f"/jobs/{job}?mode=cancel", method="PATCH")

    by_id: dict[str, list[dict[str, Any]]] = {}
    for p in predictions:
        by_id.setdefault(p["id"], []).append(p)
    assert set(by_id) == {e["id"] for e in events}  # nothing lost
    # Replays of the same event after the restore made the same prediction.
    for copies in by_id.values():
        assert len({(c["model_version"], json.dumps(c["proba"])) for c in copies}) == 1
    # The model continued from its checkpoint: event i saw a model that learned i events.
    versions = [by_id[e["id"]][0]["model_version"] for e in events]
    assert versions == list(range(N))
    after = [p["emitted_at"] for p in predictions if p["emitted_at"] > killed_at * 1000]
    recovery_s = (min(after) / 1000 - killed_at) if after else None
    duplicates = len(predictions) - N
    assert sent_at_kill < N and duplicates >= 0  # the kill landed mid-stream

    reports = topic_values(broker.bootstrap, f"{prefix}-metrics")
    last = max(reports, key=lambda r: r["counts"]["seen"])
    assert last["counts"]["seen"] == last["counts"]["predicted"] == N - N % 1000
    record_result(
        {
            "fault": "TaskManager SIGKILL mid-stream, new TaskManager started",
            "events_in": N,
            "predictions_out": len(predictions),
            "duplicates_before_dedupe": duplicates,
            "duplicates_after_dedupe": 0,
            "lost": N - len(by_id),
            "recovery_s": None if recovery_s is None else round(recovery_s, 1),
            "sent_before_kill": sent_at_kill,
            "predicted_before_kill": before_kill,
        }
    )


def test_stop_with_savepoint_and_resume_an_upgraded_job_with_the_same_model(
    broker, chaos_cluster, tmp_path
):
    """`stratiflow stop --savepoint`, then `submit --from-savepoint` with a changed
    non-model operator (same uids): the resumed job continues with the same model."""
    _, info = chaos_cluster
    jobmanager = f"127.0.0.1:{info.rest_port}"
    prefix = f"chaos-sp-{tmp_path.name}"
    n = max(N // 3, 1000)
    events = list(river_events("hyperplane", n=n, seed=9, start_ts=START_TS, interval_ms=10))
    half = n // 2
    config = write_config(tmp_path / "job.yaml", broker.bootstrap, prefix)
    kafka_io.ensure_topics(broker.bootstrap, {f"{prefix}-events": 1})
    producer = kafka_io.producer(broker.bootstrap)

    def produce(part):
        for e in part:
            producer.send(f"{prefix}-events", key=b"default", value=to_json_bytes(e))
        producer.flush()

    predictions_topic = f"{prefix}-predictions"
    produce(events[:half])
    run_cli("submit", "--config", str(config), "--jobmanager", jobmanager, "--detached")
    wait_for(lambda: count(broker.bootstrap, predictions_topic) >= half, 180, "the first half")
    stopped = run_cli(
        "stop", "--jobmanager", jobmanager, "--savepoint", str(tmp_path / "savepoints")
    )
    savepoint = stopped.stdout.strip()
    assert savepoint.startswith("file:") and Path(savepoint.removeprefix("file:")).exists()

    # The upgrade: parse/validation and reporting change, the graph's uids do not.
    upgraded = write_config(
        tmp_path / "job-v2.yaml",
        broker.bootstrap,
        prefix,
        metrics={"report_every": 100, "window": 50},
        validation={"max_features": 500},
    )
    produce(events[half:])
    producer.close()
    run_cli(
        "submit", "--config", str(upgraded), "--jobmanager", jobmanager, "--detached",
        "--from-savepoint", savepoint,
    )  # fmt: skip
    wait_for(lambda: count(broker.bootstrap, predictions_topic) >= n, 180, "the second half")
    predictions = topic_values(broker.bootstrap, predictions_topic)
    stop_job = run_cli("stop", "--jobmanager", jobmanager)
    assert stop_job.returncode == 0
    first = {}
    for p in predictions:
        first.setdefault(p["id"], p)
    assert set(first) == {e["id"] for e in events}
    # Event i was predicted by a model that had learned i events: no reset at the resume.
    assert [first[e["id"]]["model_version"] for e in events] == list(range(n))
    record_result(
        {
            "fault": "stop with savepoint, resume an upgraded job from it",
            "events_in": n,
            "predictions_out": len(predictions),
            "duplicates_before_dedupe": len(predictions) - len(first),
            "duplicates_after_dedupe": 0,
            "lost": n - len(first),
            "recovery_s": None,
        }
    )


SOAK_N = int(os.environ.get("STRATIFLOW_SOAK_N", "20000"))
SOAK_RESULTS = os.environ.get("STRATIFLOW_SOAK_RESULTS")


@pytest.mark.timeout(int(900 + SOAK_N / 200))  # ~1k events/s on this cluster, plus start-up
def test_long_run_memory_and_state_stay_bounded(broker, chaos_cluster, local_paths, tmp_path):
    """SOAK_N events (1M in `make chaos`) through the job on a standalone cluster while the
    TaskManager's and its Python workers' RSS is sampled; the curve is reported (not
    asserted: machines are noisy), the key's state size is checked to stay bounded."""
    instance, info = chaos_cluster
    prefix = f"chaos-soak-{tmp_path.name}"
    config = write_config(
        tmp_path / "job.yaml", broker.bootstrap, prefix, metrics={"report_every": 10_000}
    )
    kafka_io.ensure_topics(broker.bootstrap, {f"{prefix}-events": 1})
    run_cli(
        "produce", "hyperplane", "--config", str(config), "--n", str(SOAK_N), "--seed", "3",
        "--interval-ms", "10", "--start-ts", str(START_TS), "--quiet", timeout=1800,
    )  # fmt: skip
    started = time.monotonic()
    run_cli(
        "submit", "--config", str(config), "--jobmanager", f"127.0.0.1:{info.rest_port}",
        "--detached", "--bounded",
    )  # fmt: skip
    (tm,) = local_flink.taskmanager_pids(instance, local_paths)
    curve: list[dict[str, float]] = []
    done = threading.Event()

    def sample() -> None:  # its own thread: a slow broker query must not thin the curve
        while not done.is_set():
            curve.append(
                {
                    "t_s": round(time.monotonic() - started, 1),
                    "taskmanager_rss_mb": round(rss_mb(tm), 1),
                    "python_workers_rss_mb": round(sum(rss_mb(p) for p in descendants(tm)), 1),
                }
            )
            done.wait(2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()

    def finished() -> bool:
        jobs = rest(info.rest_port, "/jobs")["jobs"]
        return bool(jobs) and all(j["status"] == "FINISHED" for j in jobs)

    try:
        wait_for(finished, 3600, "the long run to finish", every=2)
    finally:
        done.set()
        sampler.join()
    took = time.monotonic() - started
    reports = topic_values(broker.bootstrap, f"{prefix}-metrics")
    final = next(r for r in reports if r["final"])
    assert final["counts"]["seen"] == final["counts"]["predicted"] == SOAK_N
    sizes = [r["cost"]["state_bytes"] for r in reports]
    # A key's state is the model, the bounded metric windows and sketches: it levels off.
    assert max(sizes) < 200_000 and max(sizes[len(sizes) // 2 :]) < 1.5 * max(sizes[:2] or [1])
    assert count(broker.bootstrap, f"{prefix}-predictions") == SOAK_N

    running = [c for c in curve if c["python_workers_rss_mb"] > 0]
    quarter = running[len(running) // 4] if running else None
    last = running[-1] if running else None
    if SOAK_RESULTS:
        Path(SOAK_RESULTS).write_text(
            json.dumps({"events": SOAK_N, "seconds": round(took, 1), "curve": curve}, indent=1)
        )
    record_result(
        {
            "fault": f"long run, {SOAK_N} events (RSS at 25% → end: TaskManager "
            f"{quarter and quarter['taskmanager_rss_mb']} → {last and last['taskmanager_rss_mb']} "
            f"MB, Python workers {quarter and quarter['python_workers_rss_mb']} → "
            f"{last and last['python_workers_rss_mb']} MB; state {max(sizes)} B)",
            "events_in": SOAK_N,
            "predictions_out": SOAK_N,
            "duplicates_before_dedupe": 0,
            "duplicates_after_dedupe": 0,
            "lost": SOAK_N - final["counts"]["predicted"],
            "recovery_s": None,
        }
    )
