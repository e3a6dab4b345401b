"""A job that dies with a Kafka transaction open (FLINK-39218), and the command that clears it.

The job runs on a MiniCluster inside ``stratiflow submit``; SIGKILL of that process
takes the whole Flink runtime down while its exactly-once sinks have a transaction
open, and nothing restarts it. ``read_committed`` readers of the predictions
topic then stop at that transaction's first record (the last stable offset) until
it times out. ``stratiflow transactions`` lists it, ``--abort`` fences it, and a
resubmitted job carries on from the group's committed offsets.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from stratiflow.io import kafka as kafka_io
from stratiflow.io.sources import river_events
from stratiflow.local.procs import descendants, job_environ
from stratiflow.records import to_json_bytes
from tests.e2e.cli import STRATIFLOW, run_cli, write_config
from tests.e2e.faults import START_TS, count, send_paced, wait_for
from tests.helpers import topic_values

pytestmark = pytest.mark.e2e

N = 3000


def start_job(config: Path, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    """``stratiflow submit`` on a MiniCluster, in a process group of its own."""
    with log.open("ab") as handle:
        return subprocess.Popen(
            [STRATIFLOW, "submit", "--config", str(config), *extra],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=job_environ(),
            start_new_session=True,
        )


def kill_job(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the job and everything it started (JVM, Python workers)."""
    for pid in [proc.pid, *descendants(proc.pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=30)


def stable_and_high(bootstrap: str, topic: str) -> tuple[int, int]:
    """The partition's last stable offset (where read_committed readers stop) and its
    high-water mark."""
    from kafka import TopicPartition

    tp = TopicPartition(topic, 0)
    committed = kafka_io.consumer(bootstrap)
    uncommitted = kafka_io.consumer(bootstrap, isolation_level="read_uncommitted")
    try:
        return int(committed.end_offsets([tp])[tp]), int(uncommitted.end_offsets([tp])[tp])
    finally:
        committed.close()
        uncommitted.close()


def test_a_dead_jobs_open_transaction_is_listed_aborted_and_the_resubmitted_job_proceeds(
    broker: Any, tmp_path: Path
) -> None:
    prefix = f"hanging-{tmp_path.name}"
    config = write_config(
        tmp_path / "job.yaml",
        broker.bootstrap,
        prefix,
        # A checkpoint every 30 s: the sinks' first transaction stays open that long,
        # so the kill below surely lands while it holds records.
        job={"name": prefix, "checkpoint_interval_ms": "30s"},
        metrics={"report_every": 1000},
    )
    events_topic, predictions_topic = f"{prefix}-events", f"{prefix}-predictions"
    events = list(river_events("hyperplane", n=N, seed=3, start_ts=START_TS, interval_ms=10))
    kafka_io.ensure_topics(broker.bootstrap, {events_topic: 1})
    producer = kafka_io.producer(broker.bootstrap)
    sent = [0]

    def send(i: int) -> None:
        producer.send(events_topic, key=b"default", value=to_json_bytes(events[i]))

    def produce(first: int, last: int, rate: float) -> None:
        send_paced(send, first, last, rate, sent)
        producer.flush()

    log = tmp_path / "job.log"
    first_job = start_job(config, log)
    second_job: subprocess.Popen[bytes] | None = None
    try:
        flow = threading.Thread(target=produce, args=(0, N // 2, 300), daemon=True)
        flow.start()

        def predictions_in_a_transaction() -> bool:
            open_now = kafka_io.open_transactions(broker.bootstrap, f"{prefix}-")
            return any(f"{predictions_topic}-0" in t.partitions for t in open_now)

        wait_for(predictions_in_a_transaction, 180, "the job to write predictions", every=0.5)
        kill_job(first_job)
        flow.join(timeout=60)

        # Nothing restarts it: the transaction stays open and holds back committed reads.
        listed = run_cli("transactions", "--config", str(config))
        assert f"{prefix}-{predictions_topic}-" in listed.stdout, listed.stdout
        assert "Ongoing" in listed.stdout
        stable, high = stable_and_high(broker.bootstrap, predictions_topic)
        assert stable < high, (stable, high)
        seen_before = count(broker.bootstrap, predictions_topic)

        # Younger than the default threshold (twice the checkpoint interval + 30 s): kept.
        kept = run_cli("transactions", "--config", str(config), "--abort", check=False)
        assert kept.returncode == 1 and "kept" in kept.stdout, kept.stdout
        aborted = run_cli("transactions", "--config", str(config), "--abort", "--older-than", "0")
        assert "aborted" in aborted.stdout, aborted.stdout
        assert "0 open transactions" in run_cli("transactions", "--config", str(config)).stdout
        stable, high = stable_and_high(broker.bootstrap, predictions_topic)
        assert stable == high, (stable, high)
        # The aborted records stay invisible: committed reads see what they saw before.
        assert count(broker.bootstrap, predictions_topic) == seen_before

        # The job comes back from the offsets its last checkpoint committed and goes on.
        second_job = start_job(
            config,
            log,
            *("--set", "kafka.starting_offsets=committed"),
            *("--set", "job.checkpoint_interval_ms=1s"),
        )
        produce(N // 2, N, rate=1e9)
        producer.close()

        def all_predicted() -> bool:
            ids = {p["id"] for p in topic_values(broker.bootstrap, predictions_topic)}
            return ids >= {e["id"] for e in events}

        wait_for(all_predicted, 240, "every event to have a committed prediction", every=3)
    finally:
        for proc in (first_job, second_job):
            if proc is not None and proc.poll() is None:
                kill_job(proc)
