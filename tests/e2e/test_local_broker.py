"""The local Apache Kafka broker, for real: start, serve Kafka clients, stop."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer

from stratiflow.local import broker as local_broker
from stratiflow.local.errors import PortInUseError
from stratiflow.local.paths import LocalPaths
from stratiflow.local.procs import free_port, pid_alive
from stratiflow.local.provision import KAFKA_VERSION

pytestmark = pytest.mark.e2e


def _roundtrip(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        producer.send(topic, key=b"k1", value=b'{"x": 1}').get(timeout=10)
        producer.flush()
    finally:
        producer.close()
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=10_000,
    )
    try:
        for record in consumer:
            return [(record.key, record.value)]
    finally:
        consumer.close()
    return []


def test_start_produce_consume_status_stop(local_paths: LocalPaths, topic_name: str) -> None:
    instance = f"t-rt-{os.getpid()}"
    port = free_port()
    info = local_broker.start(port, instance=instance, paths=local_paths)
    try:
        assert info.bootstrap == f"127.0.0.1:{port}"
        assert not info.already_running
        assert _roundtrip(info.bootstrap, topic_name) == [(b"k1", b'{"x": 1}')]

        status = local_broker.status(instance, local_paths)
        assert status is not None and status.pid == info.pid and status.port == port
        assert local_broker.bootstrap_servers(instance, local_paths) == info.bootstrap
        again = local_broker.start(port, instance=instance, paths=local_paths)
        assert again.already_running and again.pid == info.pid
    finally:
        assert local_broker.stop(instance, local_paths)
    assert not pid_alive(info.pid)
    assert local_broker.status(instance, local_paths) is None
    assert not local_paths.broker_pid_file(instance).exists()
    assert local_broker.stop(instance, local_paths) is False
    local_paths.broker_log(instance).unlink(missing_ok=True)


def test_port_taken_is_a_clear_error(local_paths: LocalPaths) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(PortInUseError, match=rf"port {port} is already in use"):
            local_broker.start(port, instance=f"t-taken-{os.getpid()}", paths=local_paths)
    assert local_broker.status(f"t-taken-{os.getpid()}", local_paths) is None


def test_port_of_another_instance(local_paths: LocalPaths, broker: Any) -> None:
    with pytest.raises(PortInUseError, match="stratiflow broker instance"):
        local_broker.start(broker.port, instance=f"t-other-{os.getpid()}", paths=local_paths)


def test_session_fixture_serves_kafka(broker: Any, topic_name: str) -> None:
    assert broker.bootstrap == f"127.0.0.1:{broker.port}"
    assert _roundtrip(broker.bootstrap, topic_name) == [(b"k1", b'{"x": 1}')]


def test_cli_broker_outlives_the_command(local_paths: LocalPaths) -> None:
    """`local broker start` returns, the broker keeps running, `stop` ends it."""
    instance = f"t-cli-{os.getpid()}"
    port = free_port()
    script = textwrap.dedent(
        """
        import argparse, sys
        from stratiflow.local.cli import add_local_commands
        parser = argparse.ArgumentParser(prog="stratiflow")
        add_local_commands(parser.add_subparsers(dest="command", required=True))
        args = parser.parse_args(sys.argv[1:])
        sys.exit(args.func(args))
        """
    )
    env = {**os.environ, "STRATIFLOW_HOME": str(local_paths.home)}

    def cli(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", script, "local", "broker", *argv, "--instance", instance],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    started = cli("start", "--port", str(port))
    try:
        assert started.returncode == 0, started.stderr
        assert f"Apache Kafka {KAFKA_VERSION} ready on 127.0.0.1:{port} (pid" in started.stdout
        time.sleep(0.2)
        status = cli("status")
        assert status.returncode == 0 and f"127.0.0.1:{port}" in status.stdout
        assert local_broker.status(instance, local_paths) is not None
    finally:
        stopped = cli("stop")
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert cli("status").returncode == 3
    local_broker.stop(instance, local_paths, purge=True)
    local_paths.broker_log(instance).unlink(missing_ok=True)
