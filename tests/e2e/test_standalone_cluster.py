"""As a user runs it: broker + produce + submit to a standalone cluster + tail."""

import json
import subprocess

import pytest
import yaml

from stratiflow.io import kafka as kafka_io
from stratiflow.local import flink as local_flink
from tests.e2e.cli import run_cli, write_config

pytestmark = pytest.mark.e2e

BAD = [
    b"{{{ definitely not json",
    b'{"id": "x1", "ts": 5, "features": {"a": Infinity}, "label": true}',
    b'{"id": "x2", "ts": 5, "features": {}, "label": true}',
    b'{"id": "x3", "ts": "noon", "features": {"a": 1}}',
    b"\xc3\x28 invalid utf-8",
]


def tail(config, topic, *extra):
    out = run_cli(
        "tail", topic, "--config", str(config), "--from-beginning", "--idle-exit", "5", *extra
    )
    return [line for line in out.stdout.splitlines() if line.strip()]


def test_user_flow_on_a_standalone_cluster(broker, flink_cluster, tmp_path):
    config = write_config(tmp_path / "job.yaml", broker.bootstrap, f"user-{tmp_path.name}")
    topics = yaml.safe_load(config.read_text())["topics"]
    run_cli("produce", "phishing", "--config", str(config), "--limit", "600", "--quiet")
    producer = kafka_io.producer(broker.bootstrap)
    for raw in BAD:
        producer.send(topics["events"], value=raw)
    producer.flush()
    producer.close()
    n_in = 600 + len(BAD)

    run_cli(
        "submit",
        "--config",
        str(config),
        "--jobmanager",
        flink_cluster.jobmanager,
        "--bounded",
        timeout=240,
    )

    predictions = tail(config, "predictions", "--json")
    letters = [json.loads(line) for line in tail(config, "dead-letters", "--json")]
    assert len(predictions) == 600  # every good event, exactly once
    assert len(predictions) + len(letters) == n_in
    assert sorted(d["reason"] for d in letters) == sorted(
        ["invalid_json", "non_finite_number", "bad_features", "bad_timestamp", "not_utf8"]
    )
    assert all(d["topic"] == topics["events"] and d["offset"] is not None for d in letters)

    pretty = tail(config, "metrics")
    assert any("(final)" in line for line in pretty)  # the table of the final report
    assert any(line.startswith("cumulative") for line in pretty)
    shown = tail(config, "predictions", "--max", "3")
    assert len(shown) == 3 and all(line.startswith("prediction id=") for line in shown)

    jobs = local_flink.status(flink_cluster.instance)
    assert jobs is not None  # the cluster is still up after the job finished


def test_flink_run_py_works_directly(broker, flink_cluster, tmp_path):
    """`flink run -py jobs/train_predict.py --config job.yaml`, no stratiflow CLI in between."""
    config = write_config(tmp_path / "job.yaml", broker.bootstrap, f"flinkrun-{tmp_path.name}")
    topics = yaml.safe_load(config.read_text())["topics"]
    run_cli("produce", "bananas", "--config", str(config), "--limit", "300", "--quiet")
    flink = str(local_flink.flink_cli())
    host, port = flink_cluster.jobmanager.split(":")
    result = subprocess.run(
        [
            flink,
            "run",
            f"-Drest.address={host}",
            f"-Drest.port={port}",
            "-py",
            "jobs/train_predict.py",
            "--config",
            str(config),
            "--bounded",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=flink_cluster.env,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    values = list(kafka_io.read_topic(broker.bootstrap, topics["predictions"], idle_timeout_s=3))
    assert len(values) == 300
