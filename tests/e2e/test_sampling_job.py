"""The sampled Kafka job via the local broker: sampling-stats reconcile with the events."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from collections import Counter

import pytest
import yaml

from stratiflow.config import load_cli_config
from stratiflow.io import kafka as kafka_io
from stratiflow.io.sources import river_events
from stratiflow.records import class_key, to_json_bytes
from stratiflow.runner.replay import replay
from tests.e2e.cli import run_cli, write_config
from tests.helpers import topic_values

pytestmark = pytest.mark.e2e
START_TS = 1_700_000_000_000
N = 2000


def test_sampling_stats_reconcile_with_the_events_produced(broker, tmp_path):
    """Two model keys, a 5% minority, 10% unlabelled, balanced sampling at parallelism 2:
    per key and class, on-time seen + late = labelled events produced; the model
    learned exactly what the stats say was sent; every event was predicted."""
    config = write_config(
        tmp_path / "job.yaml",
        broker.bootstrap,
        f"sampling-{tmp_path.name}",
        job={"parallelism": 2},
        sampling={"strategy": "balanced", "budget": 10, "window": "1s", "oversample": True},
    )
    produce = [
        "produce", "hyperplane", "--config", str(config), "--n", str(N),
        "--start-ts", str(START_TS), "--interval-ms", "10", "--keys", "alpha,beta",
        "--minority-share", "0.05", "--unlabelled-fraction", "0.1", "--seed", "3", "--quiet",
    ]  # fmt: skip
    run_cli(*produce)
    run_cli("submit", "--config", str(config), "--bounded")
    topics = yaml.safe_load(config.read_text())["topics"]

    events = list(
        river_events(
            "hyperplane", n=N, seed=3, start_ts=START_TS, interval_ms=10,
            keys=("alpha", "beta"), minority_share=0.05, unlabelled_fraction=0.1,
        )
    )  # fmt: skip
    produced = Counter((e["key"], class_key(e["label"])) for e in events if e["label"] is not None)
    assert len(produced) == 4  # both classes under both keys

    stats = topic_values(broker.bootstrap, topics["sampling_stats"])
    counted: Counter[tuple[str, str]] = Counter()
    sent: Counter[str] = Counter()
    for s in stats:
        assert s["strategy"] == "balanced"
        for c, v in s["classes"].items():
            counted[s["key"], c] += v["seen"] + v["late"]
            assert v["trained"] == v["sampled"] + v["duplicated"] + v["synthetic"]
        sent[s["key"]] += s["trained"]
    assert counted == produced
    # each full window sends its budget: 5 per class, the minority topped up by duplicates
    assert any(v["duplicated"] > 0 for s in stats for v in s["classes"].values())

    predictions = topic_values(broker.bootstrap, topics["predictions"])
    assert sorted(p["id"] for p in predictions) == sorted(e["id"] for e in events)
    finals = {m["key"]: m for m in topic_values(broker.bootstrap, topics["metrics"]) if m["final"]}
    assert set(finals) == {"alpha", "beta"}
    for key, report in finals.items():
        assert report["counts"]["learned"] == sent[key]
        assert report["counts"]["predicted"] == sum(1 for e in events if e["key"] == key)
        assert sum(report["trained_on"].values()) == sent[key]


@pytest.mark.timeout(420)
def test_pauses_longer_than_the_idle_timeout_change_no_prediction(broker, tmp_path):
    """A live stream that pauses: after each pause longer than ``sampling.idle_timeout``
    Flink marks the source idle, and the model's two inputs (events, and the batches
    the sampler makes from them) wake up at different moments. Each event must still
    be predicted by the model that learned every window closed before its time: the
    predictions equal ``stratiflow.runner.replay`` on the same events, which never pauses."""
    prefix = f"sampling-idle-{tmp_path.name}"
    config = write_config(
        tmp_path / "job.yaml",
        broker.bootstrap,
        prefix,
        # Thread mode: the Python operators answer at once, not per bundle, and the
        # two inputs' wake-ups race each other most.
        job={"checkpoint_interval_ms": "1s", "python_execution_mode": "thread"},
        sampling={
            "strategy": "balanced", "budget": 10, "window": "1s",
            "idle_timeout": "100ms", "watermark_interval": "20ms",
        },
    )  # fmt: skip
    n, bursts = 1200, 10
    events = list(
        river_events(
            "hyperplane", n=n, seed=5, start_ts=START_TS, interval_ms=10,
            keys=("alpha", "beta"), minority_share=0.1,
        )
    )  # fmt: skip
    # The watermark passes the last windows only when a later event comes.
    closer = {"id": "closer", "key": "alpha", "label": None, "ts": events[-1]["ts"] + 3_600_000}
    events.append({**events[-1], **closer})
    topics = yaml.safe_load(config.read_text())["topics"]
    kafka_io.ensure_topics(broker.bootstrap, {topics["events"]: 1})
    submitted = run_cli("submit", "--config", str(config), "--detached")
    match = re.search(r"pid (\d+),", submitted.stdout)
    assert match, submitted.stdout
    job = int(match.group(1))
    producer = kafka_io.producer(broker.bootstrap)
    try:
        for burst in range(bursts):
            for e in events[burst * n // bursts : (burst + 1) * n // bursts]:
                producer.send(topics["events"], key=e["key"].encode(), value=to_json_bytes(e))
            producer.flush()
            time.sleep(1)  # ten idle timeouts
        producer.send(topics["events"], key=b"alpha", value=to_json_bytes(events[-1]))
        producer.flush()
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            values = topic_values(broker.bootstrap, topics["predictions"])
            if any(p["id"] == "closer" for p in values):
                break
            time.sleep(2)
        predictions = {p["id"]: p for p in topic_values(broker.bootstrap, topics["predictions"])}
    finally:
        producer.close()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(job, signal.SIGKILL)

    assert set(predictions) == {e["id"] for e in events}
    reference = replay(events, load_cli_config(config))
    for expected in reference.predictions:
        got = predictions[expected.id]
        assert got["model_version"] == expected.model_version, expected.id
        for c, p in expected.proba.items():
            assert abs(got["proba"][class_key(c)] - p) <= 1e-9, expected.id
