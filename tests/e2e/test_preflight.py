"""Bad config and unreachable infrastructure fail fast at submit, with a sentence."""

from __future__ import annotations

import socket
import time

import pytest

from tests.e2e.cli import run_cli, write_config

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def submit(config, *extra):
    start = time.monotonic()
    result = run_cli("submit", "--config", str(config), *extra, check=False, timeout=120)
    return result, time.monotonic() - start


def test_broker_down_fails_fast(tmp_path):
    config = write_config(tmp_path / "job.yaml", f"127.0.0.1:{free_port()}", "down")
    result, took = submit(config)
    assert result.returncode == 2
    assert "cannot reach the Kafka broker" in result.stderr and "Traceback" not in result.stderr
    assert took < 60


def test_missing_input_topic_fails_fast(broker, tmp_path):
    config = write_config(tmp_path / "job.yaml", broker.bootstrap, f"missing-{tmp_path.name}")
    result, _ = submit(config, "--bounded")
    assert result.returncode == 2
    assert "input topic" in result.stderr and "does not exist" in result.stderr


def test_unknown_model_class_fails_with_the_field_path(tmp_path):
    config = write_config(tmp_path / "job.yaml", "127.0.0.1:1", "model")
    result, _ = submit(config, "--set", "model=[linear_model.NoSuchModel]")
    assert result.returncode == 2
    assert "model[0].linear_model.NoSuchModel" in result.stderr
    assert "Traceback" not in result.stderr


def test_secrets_in_kafka_properties_never_reach_the_output(tmp_path):
    config = write_config(
        tmp_path / "job.yaml",
        f"127.0.0.1:{free_port()}",
        "secret",
        kafka={
            "properties": {
                "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanism": "PLAIN",
                "sasl.jaas.config": "org.apache.kafka.common.security.plain.PlainLoginModule "
                'required username="bob" password="hunter2-s3cret";',
            }
        },
    )
    result, _ = submit(config)
    assert result.returncode == 2
    assert "hunter2-s3cret" not in result.stderr + result.stdout
    assert "SASL_PLAINTEXT" in result.stderr  # the non-secret settings are shown
