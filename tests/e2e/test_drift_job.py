"""Concept drift through the broker: the model-events topic, and a background model that
survives a savepoint taken in the middle of its warm-up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stratiflow.config import load_cli_config
from stratiflow.io import kafka as kafka_io
from stratiflow.io.sources import river_events
from stratiflow.records import to_json_bytes
from stratiflow.runner.replay import replay
from stratiflow.validation.parse import event_from_object
from tests.e2e.cli import run_cli, write_config
from tests.e2e.faults import count, wait_for
from tests.helpers import assert_predictions_equal, per_key, read_jsonl, topic_values

pytestmark = pytest.mark.e2e

START_TS = 1_700_000_000_000


def drift_config(path: Path, bootstrap: str, prefix: str, drift: dict[str, Any], **sections):
    return write_config(
        path,
        bootstrap,
        prefix,
        drift=drift,
        topics={"model_events": f"{prefix}-model-events"},
        **sections,
    )


def test_model_events_on_kafka_reconcile_with_the_backtest(broker, tmp_path):
    """Produce a drifting stream with two keys, run the job (parallelism 2, drift reset)
    to the topic's end, then backtest the same events: the model-events topic holds
    exactly the backtest's records, and the predictions say which generation made them."""
    prefix = f"drift-{tmp_path.name}"
    config = drift_config(
        tmp_path / "job.yaml",
        broker.bootstrap,
        prefix,
        {"detector": "drift.ADWIN", "adaptation": "reset"},
        job={"parallelism": 2},
    )
    run_cli(
        "produce", "agrawal_drift", "--n", "7000", "--seed", "5", "--keys", "a,b",
        "--config", str(config), "--start-ts", str(START_TS), "--quiet",
    )  # fmt: skip
    run_cli("submit", "--config", str(config), "--bounded")
    online_events = topic_values(broker.bootstrap, f"{prefix}-model-events")
    online_predictions = topic_values(broker.bootstrap, f"{prefix}-predictions")

    events_file = tmp_path / "events.jsonl"
    with events_file.open("w") as handle:
        for record in kafka_io.read_topic(broker.bootstrap, f"{prefix}-events", idle_timeout_s=3):
            handle.write(record.value.decode() + "\n")
    out = tmp_path / "out"
    run_cli("backtest", "--events", str(events_file), "--config", str(config), "--out", str(out))
    offline_events = read_jsonl(out / "model_events.jsonl")

    assert {m["type"] for m in online_events} >= {"drift", "model_reset"}
    assert per_key(online_events) == per_key(offline_events)
    offline = {p["id"]: p for p in read_jsonl(out / "predictions.jsonl")}
    assert len(online_predictions) == len(offline) == 7000
    for p in online_predictions:
        assert (p["proba"], p["model_version"], p["generation"]) == (
            offline[p["id"]]["proba"],
            offline[p["id"]]["model_version"],
            offline[p["id"]]["generation"],
        )
    finals = {
        m["key"]: m for m in topic_values(broker.bootstrap, f"{prefix}-metrics") if m["final"]
    }
    for key in ("a", "b"):
        resets = sum(m["type"] == "model_reset" and m["key"] == key for m in online_events)
        assert finals[key]["drift"]["resets"] == resets == finals[key]["generation"]
    tail = run_cli(
        "tail", "model-events", "--config", str(config), "--from-beginning", "--idle-exit", "3"
    )
    assert tail.stdout.count("model_reset") == sum(
        m["type"] == "model_reset" for m in online_events
    )


def test_a_savepoint_in_the_middle_of_a_background_warm_up_resumes_it(
    broker, flink_cluster, tmp_path
):
    """DDM warns at event ~5150 of this stream and a background model starts learning; the
    drift at ~5375 swaps it in. Stop the job with a savepoint half way between, resume it:
    the background model resumes where it was, and every prediction and model event equals
    `stratiflow.runner.replay`'s uninterrupted run."""
    prefix = f"drift-sp-{tmp_path.name}"
    drift = {"detector": "drift.binary.DDM", "adaptation": "background"}
    config = drift_config(tmp_path / "job.yaml", broker.bootstrap, prefix, drift)
    raw = list(river_events("agrawal_drift", n=7000, seed=7, start_ts=START_TS, interval_ms=10))
    cfg = load_cli_config(config, [], None)
    reference = replay([event_from_object(e) for e in raw], cfg)
    starts = [m["scored"] for m in reference.model_events if m["type"] == "background_start"]
    swaps = [m["scored"] for m in reference.model_events if m["type"] == "model_swap"]
    cut = (starts[0] + swaps[0]) // 2  # every event is labelled: event i is the i+1-th scored
    assert starts[0] < cut < swaps[0]

    kafka_io.ensure_topics(broker.bootstrap, {f"{prefix}-events": 1})
    producer = kafka_io.producer(broker.bootstrap)

    def produce(part: list[dict[str, Any]]) -> None:
        for e in part:
            producer.send(f"{prefix}-events", key=b"default", value=to_json_bytes(e))
        producer.flush()

    predictions_topic = f"{prefix}-predictions"
    produce(raw[:cut])
    run_cli(
        "submit", "--config", str(config), "--jobmanager", flink_cluster.jobmanager, "--detached"
    )
    wait_for(lambda: count(broker.bootstrap, predictions_topic) >= cut, 240, "the first part")
    stopped = run_cli(
        "stop", "--jobmanager", flink_cluster.jobmanager, "--savepoint", str(tmp_path / "sp")
    )
    savepoint = stopped.stdout.strip()
    before = topic_values(broker.bootstrap, f"{prefix}-model-events")
    assert [m["type"] for m in before if m["type"] != "drift_warning"][-1] == "background_start"

    produce(raw[cut:])
    producer.close()
    run_cli(
        "submit", "--config", str(config), "--jobmanager", flink_cluster.jobmanager,
        "--detached", "--from-savepoint", savepoint,
    )  # fmt: skip
    wait_for(lambda: count(broker.bootstrap, predictions_topic) >= len(raw), 240, "the rest")
    predictions = topic_values(broker.bootstrap, predictions_topic)
    events = topic_values(broker.bootstrap, f"{prefix}-model-events")
    run_cli("stop", "--jobmanager", flink_cluster.jobmanager)

    assert_predictions_equal(predictions, reference)
    assert per_key(events) == per_key(reference.model_events)
    assert "model_swap" in {m["type"] for m in events}
