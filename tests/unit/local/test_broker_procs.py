"""Broker and process bookkeeping without starting a broker (no network, no Java)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from stratiflow.local import broker, procs
from stratiflow.local.errors import LocalInfraError, PortInUseError
from stratiflow.local.paths import LocalPaths, check_instance


@pytest.fixture
def paths(tmp_path: Path) -> LocalPaths:
    return LocalPaths(tmp_path)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_port_taken_is_detected(paths: LocalPaths, fake_kafka_libs: Path, fake_java: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert not procs.port_is_free(port)
        with pytest.raises(PortInUseError, match=rf"port {port} is already in use") as err:
            broker.start(port, instance="unit", paths=paths)
        assert err.value.port == port
        # Nothing was started, written or recorded.
        assert not paths.broker_pid_file("unit").exists()
        assert not paths.broker_dir("unit").exists()
    assert procs.port_is_free(port)


def test_free_port_is_free() -> None:
    assert procs.port_is_free(procs.free_port())


def test_free_ports_stay_out_of_the_range_outgoing_connections_use() -> None:
    # A port from that range can be taken by any client's connection before it is bound.
    low, _ = procs._ephemeral_range()
    assert all(10000 <= procs.free_port() < low for _ in range(50))


def test_missing_classpath_says_how_to_get_it(paths: LocalPaths) -> None:
    with pytest.raises(LocalInfraError) as err:
        broker.start(procs.free_port(), instance="unit", paths=paths)
    message = str(err.value)
    assert message.startswith(f"the Kafka broker's classpath is missing ({paths.kafka_libs})")
    assert "make setup" in message and "stratiflow local setup" in message
    # A libs dir without the Kafka jar is no classpath either.
    paths.kafka_libs.mkdir(parents=True)
    (paths.kafka_libs / "log4j-api-2.25.3.jar").write_bytes(b"")
    with pytest.raises(LocalInfraError, match="classpath is missing"):
        broker.start(procs.free_port(), instance="unit", paths=paths)


def test_missing_java_says_what_to_install(
    paths: LocalPaths, fake_kafka_libs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(LocalInfraError, match=r"^`java` not found .*Java 17 JDK"):
        broker.start(procs.free_port(), instance="unit", paths=paths)
    assert not paths.broker_dir("unit").exists()


def test_java_home_wins_over_path(paths: LocalPaths, fake_java: Path) -> None:
    cmd = broker.broker_command(paths, "unit")
    assert cmd[0] == str(fake_java)
    assert cmd[-2:] == [broker.MAIN_CLASS, str(paths.broker_dir("unit") / "server.properties")]
    assert cmd[cmd.index("-cp") + 1] == f"{paths.kafka_libs}/*"
    assert not any("password" in arg.lower() for arg in cmd)


def test_stale_pid_file_of_a_dead_process(paths: LocalPaths) -> None:
    pid_file = paths.broker_pid_file("unit")
    pid_file.parent.mkdir(parents=True)
    pid_file.write_text(json.dumps({"pid": _dead_pid(), "port": 9092}))
    assert broker.status("unit", paths) is None
    assert not pid_file.exists()
    pid_file.write_text(json.dumps({"pid": _dead_pid(), "port": 9092}))
    assert broker.stop("unit", paths) is False
    assert not pid_file.exists()


def test_stale_pid_file_pointing_at_an_unrelated_live_process(paths: LocalPaths) -> None:
    """A reused PID must neither count as the broker nor be killed by stop."""
    pid_file = paths.broker_pid_file("unit")
    pid_file.parent.mkdir(parents=True)
    pid_file.write_text(json.dumps({"pid": os.getpid(), "port": 9092}))
    assert broker.status("unit", paths) is None
    pid_file.write_text(json.dumps({"pid": os.getpid(), "port": 9092}))
    assert broker.stop("unit", paths) is False
    assert procs.pid_alive(os.getpid())


def test_garbage_pid_file(paths: LocalPaths) -> None:
    pid_file = paths.broker_pid_file("unit")
    pid_file.parent.mkdir(parents=True)
    pid_file.write_text("not json")
    assert broker.status("unit", paths) is None
    assert not pid_file.exists()


def test_bootstrap_servers_of_a_stopped_instance(paths: LocalPaths) -> None:
    with pytest.raises(LocalInfraError, match="local broker start --instance other"):
        broker.bootstrap_servers("other", paths)


@pytest.mark.parametrize("name", ["", "a b", "../x", "-x", "x" * 65, "a/b"])
def test_bad_instance_names(name: str) -> None:
    with pytest.raises(ValueError, match="invalid instance name"):
        check_instance(name)


def test_terminate_stops_and_reaps_a_child() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    procs.remember_child(proc)
    assert procs.pid_alive(proc.pid)
    assert procs.terminate([proc.pid], timeout=5) == [proc.pid]
    assert not procs.pid_alive(proc.pid)
    assert proc.returncode is not None


def test_terminate_escalates_to_sigkill() -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print(1, flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline()  # handler installed
    procs.remember_child(proc)
    procs.terminate([proc.pid], timeout=0.3)
    assert proc.wait(timeout=5) == -9
    proc.stdout.close()


def test_tail_and_pids_matching(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert procs.tail(log, 2) == "line 98\nline 99"
    assert procs.tail(tmp_path / "missing.log") == ""
    assert procs.pids_matching(f"no-such-process-{os.getpid()}-{tmp_path}") == []
