"""The Kafka job on an embedded MiniCluster: parity with River, backtest equality, no lost tail."""

import pytest

from stratiflow.io import kafka as kafka_io
from stratiflow.io.sources import river_events
from tests.e2e.cli import run_cli, write_config
from tests.helpers import (
    assert_matches_river,
    phishing_accuracy,
    read_jsonl,
    river_progressive_accuracy,
    river_reference,
    topic_values,
)

pytestmark = pytest.mark.e2e
START_TS = 1_700_000_000_000


@pytest.fixture(scope="module")
def phishing_job(broker, tmp_path_factory):
    """Phishing produced with the CLI, then the job run to the topic's end with the CLI."""
    tmp = tmp_path_factory.mktemp("kafka-job")
    config = write_config(tmp / "job.yaml", broker.bootstrap, f"parity-{tmp.name}")
    run_cli("produce", "phishing", "--config", str(config), "--start-ts", str(START_TS), "--quiet")
    run_cli("submit", "--config", str(config), "--bounded")
    import yaml

    topics = yaml.safe_load(config.read_text())["topics"]
    return config, topics


def test_kafka_predictions_equal_river_and_final_accuracy_is_exact(broker, phishing_job):
    _, topics = phishing_job
    events = list(river_events("phishing", start_ts=START_TS))
    predictions = topic_values(broker.bootstrap, topics["predictions"])
    assert len(predictions) == 1250
    assert assert_matches_river(predictions, river_reference(events)) == 1250
    finals = [m for m in topic_values(broker.bootstrap, topics["metrics"]) if m["final"]]
    assert len(finals) == 1
    assert finals[0]["cumulative"]["accuracy"] == phishing_accuracy()
    assert finals[0]["counts"]["seen"] == 1250


def test_bounded_read_does_not_lose_the_tail(broker, phishing_job):
    _, topics = phishing_job
    ids = {p["id"] for p in topic_values(broker.bootstrap, topics["predictions"])}
    assert "phishing-1249" in ids  # the very last record produced
    true_ends = kafka_io.end_offsets(broker.bootstrap, topics["events"])
    assert sum(true_ends.values()) == 1250


def test_backtest_gives_the_same_predictions_as_the_kafka_path(broker, phishing_job, tmp_path):
    config, topics = phishing_job
    events_file = tmp_path / "events.jsonl"
    with events_file.open("w") as handle:
        for record in kafka_io.read_topic(broker.bootstrap, topics["events"], idle_timeout_s=3):
            handle.write(record.value.decode() + "\n")
    run_cli(
        "backtest",
        "--events",
        str(events_file),
        "--config",
        str(config),
        "--out",
        str(tmp_path / "out"),
    )
    offline = {p["id"]: p for p in read_jsonl(tmp_path / "out" / "predictions.jsonl")}
    online = {p["id"]: p for p in topic_values(broker.bootstrap, topics["predictions"])}
    assert offline.keys() == online.keys() and len(offline) == 1250
    for event_id, p in online.items():
        assert offline[event_id]["proba"] == p["proba"]
        assert offline[event_id]["model_version"] == p["model_version"]


def test_two_keys_at_parallelism_two_through_kafka(broker, tmp_path):
    config = write_config(
        tmp_path / "job.yaml", broker.bootstrap, f"two-keys-{tmp_path.name}", job={"parallelism": 2}
    )
    run_cli(
        "produce",
        "phishing",
        "--config",
        str(config),
        "--keys",
        "alpha,beta",
        "--start-ts",
        str(START_TS),
        "--quiet",
    )
    run_cli("submit", "--config", str(config), "--bounded")
    import yaml

    topics = yaml.safe_load(config.read_text())["topics"]
    events = list(river_events("phishing", start_ts=START_TS, keys=("alpha", "beta")))
    predictions = topic_values(broker.bootstrap, topics["predictions"])
    assert assert_matches_river(predictions, river_reference(events)) == 1250
    finals = {m["key"]: m for m in topic_values(broker.bootstrap, topics["metrics"]) if m["final"]}
    for key in ("alpha", "beta"):
        own = [e for e in events if e["key"] == key]
        assert finals[key]["cumulative"]["accuracy"] == river_progressive_accuracy(own)


def test_unreachable_broker_fails_fast_with_a_clear_message(tmp_path):
    from stratiflow.local.procs import free_port

    config = write_config(tmp_path / "job.yaml", f"127.0.0.1:{free_port()}", "nowhere")
    result = run_cli("submit", "--config", str(config), "--bounded", check=False, timeout=180)
    assert result.returncode == 2
    assert "cannot reach the Kafka broker" in result.stderr  # the preflight check
    assert "Traceback" not in result.stderr
    # Without the preflight the job itself still fails with a sentence.
    result = run_cli(
        "submit", "--config", str(config), "--bounded", "--no-preflight", check=False, timeout=180
    )
    assert result.returncode == 2
    assert "cannot read the end offsets of 'nowhere-events'" in result.stderr
    assert "Traceback" not in result.stderr


def test_detached_local_submit_runs_in_the_background(broker, tmp_path):
    import re
    import time

    config = write_config(tmp_path / "job.yaml", broker.bootstrap, f"detached-{tmp_path.name}")
    run_cli("produce", "sea", "--n", "200", "--config", str(config), "--quiet")
    result = run_cli("submit", "--config", str(config), "--bounded", "--detached")
    match = re.search(r"pid (\d+), log (\S+)\)", result.stdout)
    assert match, result.stdout
    pid = int(match.group(1))
    from stratiflow.local.procs import pid_alive

    deadline = time.monotonic() + 180
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(1)
    assert not pid_alive(pid)
    predictions = topic_values(broker.bootstrap, f"detached-{tmp_path.name}-predictions")
    assert len(predictions) == 200


def test_tombstones_and_bad_records_are_dead_lettered_through_the_batcher(broker, tmp_path):
    """Records with no value (tombstones), an empty value, bad JSON and oversized payloads,
    between good events of two keys, all reach the dead-letter topic with their offsets;
    nothing is lost, and a tombstone (raw null) is told from an empty value (raw "")."""
    import json

    config = write_config(
        tmp_path / "job.yaml",
        broker.bootstrap,
        f"bad-{tmp_path.name}",
        job={"input_batch_size": 4},
        validation={"max_payload_bytes": 2000},
    )
    import yaml

    topics = yaml.safe_load(config.read_text())["topics"]
    kafka_io.ensure_topics(broker.bootstrap, {topics["events"]: 1})
    out = kafka_io.producer(broker.bootstrap, enable_idempotence=False)
    # kafka-python writes value=None as a null value (length -1) and b"" as zero bytes;
    # the broker keeps them apart.
    bad = {3: None, 7: b"not json", 11: b"{" + b" " * 3000 + b"}", 12: None, 15: b""}
    good = 0
    for offset in range(20):
        if offset in bad:
            # A tombstone (no value) must carry a key; the job never reads Kafka keys.
            out.send(topics["events"], value=bad[offset], key=b"bad")
            continue
        event = {
            "id": f"e{offset}",
            "ts": START_TS + offset,
            "features": {"x": float(offset)},
            "label": offset % 2 == 0,
            "key": "a" if offset % 3 else "b",
        }
        out.send(topics["events"], value=json.dumps(event).encode())
        good += 1
    out.flush()
    out.close()
    run_cli("submit", "--config", str(config), "--bounded")
    predictions = topic_values(broker.bootstrap, topics["predictions"])
    letters = topic_values(broker.bootstrap, topics["dead_letters"])
    assert len(predictions) == good == 15
    assert {d["offset"]: d["reason"] for d in letters} == {
        3: "empty_payload",
        7: "invalid_json",
        11: "payload_too_large",
        12: "empty_payload",
        15: "empty_payload",
    }
    assert all(d["topic"] == topics["events"] and d["partition"] == 0 for d in letters)
    raws = {d["offset"]: (d["raw"], d["raw_encoding"]) for d in letters}
    assert raws[3] == raws[12] == (None, "none")  # no value
    assert raws[15] == ("", "utf-8")  # a value of zero bytes
    assert raws[7] == ("not json", "utf-8")
