"""Broker crash: SIGKILL Apache Kafka mid-stream and start it again on the same data dir.

The job
runs on a standalone cluster and must get through the outage on its own (its
restart strategy; nobody resubmits it), and every event whose send the broker
acknowledged (acks=all) must get a prediction. ``make test`` runs it at a smoke
size; ``make chaos`` at ``STRATIFLOW_BROKER_RESTART_N`` (50 000 there) and writes
its row to ``STRATIFLOW_CHAOS_RESULTS``.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from stratiflow.io import kafka as kafka_io
from stratiflow.io.sources import river_events
from stratiflow.local import broker as local_broker
from stratiflow.local.paths import LocalPaths
from stratiflow.local.procs import free_port, pid_alive
from stratiflow.records import to_json_bytes
from tests.e2e.cli import run_cli, write_config
from tests.e2e.conftest import KEEP_LOGS, BrokerHandle, FlinkHandle
from tests.e2e.faults import START_TS, count, record_result, rest, send_paced, wait_for
from tests.helpers import topic_values

pytestmark = pytest.mark.e2e

N = int(os.environ.get("STRATIFLOW_BROKER_RESTART_N", "4000"))
#: How long the broker stays dead before it is started again.
DOWN_S = float(os.environ.get("STRATIFLOW_BROKER_DOWN_S", "2"))
REPORT_EVERY = 1000
FAULT = "broker SIGKILL + restart (same data dir)"


@pytest.fixture
def durable_broker(local_paths: LocalPaths) -> Iterator[BrokerHandle]:
    """An Apache Kafka instance of this test's own (its log dir survives a kill)."""
    instance = f"test-restart-{os.getpid()}"
    info = local_broker.start(free_port(), instance=instance, paths=local_paths)
    assert not info.already_running
    try:
        yield BrokerHandle(instance=instance, port=info.port, pid=info.pid)
    finally:
        local_broker.stop(instance, local_paths, purge=True)
        if not KEEP_LOGS:
            local_paths.broker_log(instance).unlink(missing_ok=True)


def job_restarts(port: int, job: str) -> int:
    metrics = rest(port, f"/jobs/{job}/metrics?get=numRestarts")
    return int(metrics[0]["value"]) if metrics else 0


@pytest.mark.timeout(int(600 + N / 100))
def test_broker_killed_mid_stream_restarts_on_its_storage_and_the_job_recovers(
    durable_broker: BrokerHandle,
    flink_cluster: FlinkHandle,
    local_paths: LocalPaths,
    tmp_path: Any,
) -> None:
    """SIGKILL the broker while events flow, start it again on the same storage:
    the job carries on by itself (same job, RUNNING), every acknowledged event is
    predicted, and the final metrics count every event on the topic."""
    bootstrap = durable_broker.bootstrap
    prefix = f"broker-restart-{tmp_path.name}"
    config = write_config(
        tmp_path / "job.yaml",
        bootstrap,
        prefix,
        job={"checkpoint_interval_ms": "1s", "restart_delay_ms": "1s", "restart_attempts": 20},
        metrics={"report_every": REPORT_EVERY},
    )
    events_topic, predictions_topic = f"{prefix}-events", f"{prefix}-predictions"
    # N events plus up to one report interval more to make the total a multiple of it.
    events = list(
        river_events("hyperplane", n=N + REPORT_EVERY, seed=11, start_ts=START_TS, interval_ms=10)
    )
    kafka_io.ensure_topics(bootstrap, {events_topic: 1})
    run_cli(
        "submit", "--config", str(config), "--jobmanager", flink_cluster.jobmanager, "--detached"
    )
    port = flink_cluster.rest_port

    def running_jobs() -> list[str]:
        return [str(j["id"]) for j in rest(port, "/jobs")["jobs"] if j["status"] == "RUNNING"]

    wait_for(lambda: len(running_jobs()) == 1, 60, "the job to run")
    (job,) = running_jobs()
    try:
        # The test's producer keeps Kafka's defaults (idempotent, acks=all), retries
        # through the outage and reconnects quickly once the broker is back.
        producer = kafka_io.producer(bootstrap, reconnect_backoff_max_ms=1000)
        acked: set[str] = set()
        failed: list[str] = []
        sent = [0]

        def send(i: int) -> None:
            event_id = events[i]["id"]
            future = producer.send(events_topic, key=b"default", value=to_json_bytes(events[i]))
            future.add_callback(lambda _md, eid=event_id: acked.add(eid))
            future.add_errback(lambda _exc, eid=event_id: failed.append(eid))

        rate = max(N / 20, 300)

        def produce(first: int, last: int) -> None:
            send_paced(send, first, last, rate, sent)
            producer.flush()

        warmup = min(200, N // 10)
        produce(0, warmup)
        wait_for(lambda: count(bootstrap, predictions_topic) > 0, 120, "first predictions")
        thread = threading.Thread(target=produce, args=(warmup, N), daemon=True)
        thread.start()
        wait_for(lambda: sent[0] >= N // 2, 120, "half the events sent", every=0.1)

        os.kill(durable_broker.pid, signal.SIGKILL)
        killed_at = time.time()
        sent_at_kill = sent[0]
        wait_for(lambda: not pid_alive(durable_broker.pid), 10, "the broker to die", every=0.05)
        time.sleep(DOWN_S)
        restarted = local_broker.start(
            durable_broker.port, instance=durable_broker.instance, paths=local_paths
        )
        restarted_at = time.time()
        assert restarted.pid != durable_broker.pid
        thread.join(timeout=300)
        assert not thread.is_alive()

        # Make the number of records on the topic a multiple of the report interval, so
        # that the last metrics report of this unbounded job counts every one. (Records,
        # not offsets: the producer's transaction markers take offsets too.)
        top_up = (-len(topic_values(bootstrap, events_topic))) % REPORT_EVERY
        for i in range(N, N + top_up):
            send(i)
        producer.flush()
        producer.close()
        event_records = topic_values(bootstrap, events_topic)
        total = len(event_records)
        assert total % REPORT_EVERY == 0, (total, top_up)
        topic_ids = {e["id"] for e in event_records}
        assert acked <= topic_ids  # every acknowledged record survived the crash

        missing: list[set[str]] = [topic_ids]

        def complete() -> bool:
            if count(bootstrap, predictions_topic) < len(topic_ids):
                return False
            predicted = {p["id"] for p in topic_values(bootstrap, predictions_topic)}
            missing[0] = topic_ids - predicted
            return not missing[0]

        try:
            wait_for(complete, 120 + N / 200, "every event to be predicted", every=3)
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}: {len(missing[0])} of {len(topic_ids)} events have no prediction "
                f"(e.g. {sorted(missing[0])[:5]}); job {job} restarted "
                f"{job_restarts(port, job)} times, running jobs: {running_jobs()}"
            ) from None

        def final_report() -> dict[str, Any] | None:
            reports = topic_values(bootstrap, f"{prefix}-metrics")
            last = max(reports, key=lambda r: r["counts"]["seen"], default=None)
            return last if last and last["counts"]["seen"] >= total else None

        wait_for(lambda: final_report() is not None, 60, "the last metrics report", every=2)
        last = final_report()
        predictions = topic_values(bootstrap, predictions_topic)

        # The job got through on its own: the same job, still (or again) running.
        assert running_jobs() == [job]
        restarts = job_restarts(port, job)
    finally:
        rest(port, f"/jobs/{job}?mode=cancel", method="PATCH")

    assert last is not None
    assert last["counts"]["seen"] == last["counts"]["predicted"] == total
    by_id: dict[str, list[dict[str, Any]]] = {}
    for p in predictions:
        by_id.setdefault(p["id"], []).append(p)
    assert set(by_id) == topic_ids
    lost = len(acked - set(by_id))
    assert lost == 0
    # Idempotent producers and exactly-once sinks: no event was written twice, and the
    # committed output holds one prediction per event, with no deduplication.
    assert total == len(topic_ids)
    assert len(predictions) == len(by_id)
    # The model saw every record once, in topic order: the k-th record (an event the
    # producer's retry wrote twice counts twice) was predicted by a model that had
    # learned k records, and copies of one prediction (replays) are identical.
    copies: dict[tuple[str, int], set[str]] = {}
    for p in predictions:
        copies.setdefault((p["id"], p["model_version"]), set()).add(json.dumps(p["proba"]))
    assert all(len(probas) == 1 for probas in copies.values())
    for k, event in enumerate(event_records):
        assert (event["id"], k) in copies, (k, event["id"])
    after = [p["emitted_at"] / 1000 for p in predictions if p["emitted_at"] / 1000 >= restarted_at]
    assert after, "no prediction was made after the broker came back"
    recovery_s = min(after) - killed_at
    assert sent_at_kill < N  # the kill landed mid-stream
    record_result(
        {
            "fault": FAULT,
            "events_in": len(acked),
            "predictions_out": len(predictions),
            "duplicates": len(predictions) - len(by_id),
            "lost": lost,
            "recovery_s": round(recovery_s, 1),
            "broker_down_s": round(restarted_at - killed_at, 1),
            "sends_failed": len(failed),
            "event_records_on_topic": total,
            "events_written_twice": total - len(topic_ids),
            "job_restarts": restarts,
            "sent_before_kill": sent_at_kill,
        }
    )
