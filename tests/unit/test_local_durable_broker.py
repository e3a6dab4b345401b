"""``local broker start --durable`` without a broker or S3 server (no network, no Java).

Processes that must look like Tansu or the moto S3 server to the PID checks
are stand-ins: a Python that sleeps, started under the right name/arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from stratiflow.local import broker, procs, provision, s3server
from stratiflow.local.cli import add_local_commands
from stratiflow.local.errors import LocalInfraError
from stratiflow.local.paths import LocalPaths

SLEEP = "import time; time.sleep(120)"


@pytest.fixture
def paths(tmp_path: Path) -> LocalPaths:
    return LocalPaths(tmp_path / "home")


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    procs.terminate([p.pid for p in started], timeout=2)
    for proc in started:
        proc.wait(timeout=5)


def _spawn(
    children: list[subprocess.Popen[bytes]], cmd: list[str], env: dict[str, str] | None = None
) -> int:
    proc = subprocess.Popen(cmd, env=env)
    procs.remember_child(proc)
    children.append(proc)
    return int(proc.pid)


def fake_s3_server(
    paths: LocalPaths, tmp_path: Path, children: list[subprocess.Popen[bytes]], port: int
) -> int:
    """A sleeping stand-in for moto's server on PORT (same command line), with its state
    file."""
    module = tmp_path / "fake" / "moto"
    module.mkdir(parents=True, exist_ok=True)
    (module / "__init__.py").write_text("")
    (module / "server.py").write_text("import time\n\ndef main(argv):\n    time.sleep(120)\n")
    cmd = s3server.server_command(Path(sys.executable), port)
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "fake")}
    pid = _spawn(children, cmd, env=env)
    paths.run_dir.mkdir(parents=True, exist_ok=True)
    paths.s3_pid_file("unit").write_text(json.dumps({"pid": pid, "port": port, "bucket": "b"}))
    return pid


def fake_broker(
    paths: LocalPaths,
    tmp_path: Path,
    children: list[subprocess.Popen[bytes]],
    port: int,
    state: dict[str, object],
) -> int:
    """A sleeping process named ``tansu`` whose arguments name ``port``, with a state file."""
    named = tmp_path / "fakebin" / "tansu"
    named.parent.mkdir(parents=True, exist_ok=True)
    named.symlink_to(sys.executable)
    pid = _spawn(children, [str(named), "-c", SLEEP, f"tcp://127.0.0.1:{port}"])
    paths.run_dir.mkdir(parents=True, exist_ok=True)
    record = {"pid": pid, "port": port, **state}
    paths.broker_pid_file("unit").write_text(json.dumps(record))
    return pid


def _cli(argv: list[str], home: Path, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv("STRATIFLOW_HOME", str(home))
    parser = argparse.ArgumentParser(prog="stratiflow")
    add_local_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


# --- command lines and environments -------------------------------------------------------


def test_broker_command_names_the_storage_engine(paths: LocalPaths) -> None:
    memory = broker.broker_command(paths.tansu, 9092)
    assert memory[0] == str(paths.tansu) and memory[1] == "broker"
    assert memory[memory.index("--storage-engine") + 1] == "memory://tansu/"
    assert memory.count("tcp://127.0.0.1:9092") == 2  # listener and advertised listener
    durable = broker.broker_command(paths.tansu, 9300, s3server.storage_url())
    assert durable[durable.index("--storage-engine") + 1] == "s3://stratiflow/"


def test_durable_broker_env_points_at_the_local_s3_and_drops_real_credentials() -> None:
    base = {
        "HOME": "/home/u",
        "AWS_ACCESS_KEY_ID": "AKIAREAL",
        "AWS_SECRET_ACCESS_KEY": "real-secret",
        "AWS_SESSION_TOKEN": "token",
        "AWS_PROFILE": "prod",
        "AWS_REGION": "eu-west-1",
        "NO_PROXY": "corp.example",
    }
    env = broker.broker_env("http://127.0.0.1:4566", base)
    assert env["AWS_ENDPOINT"] == "http://127.0.0.1:4566"
    assert env["AWS_ALLOW_HTTP"] == "true"
    assert env["AWS_DEFAULT_REGION"] == s3server.REGION
    assert env["AWS_ACCESS_KEY_ID"] == s3server.ACCESS_KEY_ID != "AKIAREAL"
    assert env["AWS_SECRET_ACCESS_KEY"] == s3server.SECRET_ACCESS_KEY
    assert "AWS_SESSION_TOKEN" not in env and "AWS_PROFILE" not in env
    assert "AWS_REGION" not in env
    assert "real-secret" not in env.values()
    assert env["HOME"] == "/home/u" and env["RUST_LOG"] == "warn"
    # Loopback S3 requests never go through a proxy; the user's exceptions stay.
    assert env["NO_PROXY"].split(",") == ["corp.example", "127.0.0.1", "localhost"]
    assert env["no_proxy"] == env["NO_PROXY"]
    assert base["AWS_ACCESS_KEY_ID"] == "AKIAREAL"  # the caller's mapping is not changed


def test_memory_broker_env_is_the_environment_plus_log_level() -> None:
    base = {"AWS_PROFILE": "prod", "STRATIFLOW_BROKER_LOG": "info"}
    env = broker.broker_env(None, base)
    assert env == {**base, "RUST_LOG": "info"}


def test_s3_server_command_and_env() -> None:
    cmd = s3server.server_command(Path("/h/s3-venv/bin/python"), 4566)
    assert cmd[:2] == ["/h/s3-venv/bin/python", "-c"] and "moto.server" in cmd[2]
    assert cmd[3:] == ["-H", "127.0.0.1", "-p", "4566"]
    env = s3server.server_env(
        {"PATH": "/bin", "PYTHONPATH": "/proj/site-packages", "VIRTUAL_ENV": "/proj/.venv"}
        | {"AWS_SECRET_ACCESS_KEY": "real", "PYTHONHOME": "/x"}
    )
    assert env == {"PATH": "/bin"}
    assert s3server.endpoint_url(4566) == "http://127.0.0.1:4566"


def test_paths_of_the_durable_pieces(paths: LocalPaths) -> None:
    assert paths.s3_venv == paths.home / "s3-venv"
    assert paths.s3_python == paths.home / "s3-venv" / "bin" / "python"
    assert paths.s3_pid_file("x") == paths.run_dir / "s3-x.json"
    assert paths.s3_log("x") == paths.log_dir / "s3-x.log"
    with pytest.raises(ValueError, match="invalid instance name"):
        paths.s3_pid_file("../x")


# --- state files --------------------------------------------------------------------------


def test_status_reports_durable_mode_from_the_state_file(
    paths: LocalPaths, tmp_path: Path, children: list[subprocess.Popen[bytes]]
) -> None:
    port = procs.free_port()
    state = {"storage": "s3://stratiflow/", "s3_endpoint": "http://127.0.0.1:1", "durable": True}
    pid = fake_broker(paths, tmp_path, children, port, state)
    info = broker.status("unit", paths)
    assert info is not None and info.pid == pid
    assert info.durable and info.storage == "s3://stratiflow/"
    assert info.s3_endpoint == "http://127.0.0.1:1"


def test_state_file_without_storage_is_in_memory(
    paths: LocalPaths, tmp_path: Path, children: list[subprocess.Popen[bytes]]
) -> None:
    """State files written before --durable existed describe in-memory brokers."""
    fake_broker(paths, tmp_path, children, procs.free_port(), {})
    info = broker.status("unit", paths)
    assert info is not None and not info.durable and info.s3_endpoint is None


def test_s3_status_finds_its_server_and_drops_stale_files(
    paths: LocalPaths, tmp_path: Path, children: list[subprocess.Popen[bytes]]
) -> None:
    port = procs.free_port()
    pid = fake_s3_server(paths, tmp_path, children, port)
    info = s3server.status("unit", paths)
    assert info is not None and (info.pid, info.port, info.bucket) == (pid, port, "b")
    assert info.endpoint == f"http://127.0.0.1:{port}" and info.storage_url == "s3://b/"
    # The same PID recorded with another port is not our server (PIDs are reused).
    paths.s3_pid_file("unit").write_text(json.dumps({"pid": pid, "port": port + 1}))
    assert s3server.status("unit", paths) is None
    assert not paths.s3_pid_file("unit").exists()
    assert s3server.stop("unit", paths) is False
    assert procs.pid_alive(pid)  # not killed: it did not match


def test_memory_start_refuses_while_durable_storage_holds_the_topics(
    paths: LocalPaths, fake_tansu: Path, tmp_path: Path, children: list[subprocess.Popen[bytes]]
) -> None:
    fake_s3_server(paths, tmp_path, children, procs.free_port())
    with pytest.raises(LocalInfraError) as err:
        broker.start(procs.free_port(), instance="unit", paths=paths)
    message = str(err.value)
    assert "has durable storage" in message
    assert "local broker start --durable --instance unit" in message
    assert "local broker stop --with-storage --instance unit" in message
    assert not paths.broker_pid_file("unit").exists()


def test_durable_start_refuses_an_in_memory_broker_running_on_the_port(
    paths: LocalPaths, fake_tansu: Path, tmp_path: Path, children: list[subprocess.Popen[bytes]]
) -> None:
    port = procs.free_port()
    fake_broker(paths, tmp_path, children, port, {"storage": "memory://tansu/"})
    with pytest.raises(LocalInfraError, match="already running with in-memory storage"):
        broker.start(port, instance="unit", paths=paths, durable=True)
    assert not paths.s3_pid_file("unit").exists()  # no S3 server was started
    # Asking for the mode it has (or for nothing in particular) is idempotent.
    assert broker.start(port, instance="unit", paths=paths).already_running


def test_durable_start_of_a_running_durable_broker_is_idempotent(
    paths: LocalPaths, fake_tansu: Path, tmp_path: Path, children: list[subprocess.Popen[bytes]]
) -> None:
    port = procs.free_port()
    state = {"storage": "s3://stratiflow/", "s3_endpoint": "http://127.0.0.1:1"}
    pid = fake_broker(paths, tmp_path, children, port, state)
    again = broker.start(port, instance="unit", paths=paths, durable=True)
    assert again.already_running and again.pid == pid and again.durable
    assert broker.start(port, instance="unit", paths=paths).durable  # no mode downgrade


def test_missing_binary_is_reported_before_any_s3_server_starts(paths: LocalPaths) -> None:
    with pytest.raises(LocalInfraError, match="Tansu broker binary not found"):
        broker.start(procs.free_port(), instance="unit", paths=paths, durable=True)
    assert not paths.s3_pid_file("unit").exists() and not paths.s3_venv.exists()


def test_stop_keeps_the_storage_unless_asked(
    paths: LocalPaths, tmp_path: Path, children: list[subprocess.Popen[bytes]]
) -> None:
    s3_pid = fake_s3_server(paths, tmp_path, children, procs.free_port())
    state = {"storage": "s3://stratiflow/"}
    broker_pid = fake_broker(paths, tmp_path, children, procs.free_port(), state)
    assert broker.stop("unit", paths, timeout=2) is True
    assert not procs.pid_alive(broker_pid) and procs.pid_alive(s3_pid)
    assert s3server.status("unit", paths) is not None
    # A stopped broker's storage can still be stopped on its own.
    assert broker.stop("unit", paths, timeout=2, with_storage=True) is False
    assert not procs.pid_alive(s3_pid)
    assert not paths.s3_pid_file("unit").exists()


# --- the S3 server's venv -----------------------------------------------------------------


def test_s3_venv_is_built_once_then_reused(
    paths: LocalPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps: list[list[str]] = []

    def fake_step(cmd: list[str], what: str, timeout: float) -> None:
        steps.append(cmd)
        if cmd[1:3] == ["-m", "venv"]:  # what `python -m venv` would leave behind
            paths.s3_python.parent.mkdir(parents=True)
            paths.s3_python.write_text("#!/bin/sh\n")
            paths.s3_python.chmod(0o755)

    monkeypatch.setattr(provision, "_run_step", fake_step)
    messages: list[str] = []
    assert provision.ensure_s3_venv(paths, log=messages.append) == paths.s3_python
    assert [cmd[1:3] for cmd in steps] == [["-m", "venv"], ["-m", "pip"]]
    assert steps[1][0] == str(paths.s3_python)  # installed into the new venv, not ours
    assert steps[1][-len(provision.S3_SERVER_REQUIREMENTS) :] == list(
        provision.S3_SERVER_REQUIREMENTS
    )
    assert any("moto" in req and "==" in req for req in provision.S3_SERVER_REQUIREMENTS)
    assert len(messages) == 1 and str(paths.s3_venv) in messages[0]
    assert provision.s3_venv_is_current(paths)
    assert (paths.home / ".s3-venv.lock").exists()

    steps.clear()
    provision.ensure_s3_venv(paths, log=messages.append)
    assert steps == [] and len(messages) == 1  # nothing to do the second time


def test_s3_venv_left_half_built_or_with_old_pins_is_rebuilt(
    paths: LocalPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    leftover = paths.s3_venv / "lib" / "junk"
    leftover.parent.mkdir(parents=True)
    leftover.write_text("x")
    (paths.s3_venv / "stratiflow-requirements.json").write_text('["moto[s3]==0.0.1"]')
    built: list[str] = []

    def fake_step(cmd: list[str], what: str, timeout: float) -> None:
        built.append(what)
        if cmd[1:3] == ["-m", "venv"]:
            assert not leftover.exists()  # started from scratch
            paths.s3_python.parent.mkdir(parents=True)
            paths.s3_python.write_text("")
            paths.s3_python.chmod(0o755)

    monkeypatch.setattr(provision, "_run_step", fake_step)
    provision.ensure_s3_venv(paths, log=lambda _m: None)
    assert len(built) == 2 and provision.s3_venv_is_current(paths)


def test_failed_pip_install_is_a_sentence(paths: LocalPaths, tmp_path: Path) -> None:
    script = tmp_path / "failing"
    script.write_text("#!/bin/sh\necho 'ERROR: no matching distribution' >&2\nexit 1\n")
    script.chmod(0o755)
    with pytest.raises(LocalInfraError, match=r"`pip install x` failed \(exit 1\)") as err:
        provision._run_step([str(script)], "`pip install x`", timeout=10)
    assert "no matching distribution" in str(err.value)
    assert not provision.s3_venv_is_current(paths)


# --- CLI ----------------------------------------------------------------------------------


def test_cli_flags_belong_to_their_action(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _cli(["local", "broker", "stop", "--durable"], tmp_path, monkeypatch) == 1
    assert "error: --durable goes with `start`" in capsys.readouterr().err
    assert _cli(["local", "broker", "start", "--with-storage"], tmp_path, monkeypatch) == 1
    assert "error: --with-storage goes with `stop`" in capsys.readouterr().err
    assert _cli(["local", "broker", "start", "--durable"], tmp_path, monkeypatch) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: Tansu broker binary not found") and "Traceback" not in err


def test_cli_status_and_stop_tell_about_kept_storage(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    children: list[subprocess.Popen[bytes]],
) -> None:
    paths = LocalPaths(tmp_path / "home")
    port = procs.free_port()
    s3_pid = fake_s3_server(paths, tmp_path, children, port)
    home = paths.home
    assert _cli(["local", "broker", "status", "--instance", "unit"], home, monkeypatch) == 3
    out = capsys.readouterr().out
    assert "is not running; its durable storage" in out and f"127.0.0.1:{port}" in out
    assert "local broker start --durable --instance unit" in out

    assert _cli(["local", "broker", "stop", "--instance", "unit"], home, monkeypatch) == 0
    out = capsys.readouterr().out
    assert "was not running" in out and "keeps the topics" in out and procs.pid_alive(s3_pid)

    argv = ["local", "broker", "stop", "--with-storage", "--instance", "unit"]
    assert _cli(argv, home, monkeypatch) == 0
    assert "its topics are gone" in capsys.readouterr().out
    assert not procs.pid_alive(s3_pid)


def test_cli_status_of_a_durable_broker_whose_storage_is_gone(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    children: list[subprocess.Popen[bytes]],
) -> None:
    paths = LocalPaths(tmp_path / "home")
    state = {"storage": "s3://stratiflow/", "s3_endpoint": "http://127.0.0.1:1"}
    fake_broker(paths, tmp_path, children, procs.free_port(), state)
    assert _cli(["local", "broker", "status", "--instance", "unit"], paths.home, monkeypatch) == 1
    out = capsys.readouterr().out
    assert "durable storage s3://stratiflow/" in out and "NOT running" in out


def test_cli_help_says_what_durable_keeps(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="stratiflow")
    add_local_commands(parser.add_subparsers(dest="command", required=True))
    with pytest.raises(SystemExit):
        parser.parse_args(["local", "broker", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--durable" in text and "--with-storage" in text
    assert "in memory" in text and "crash" in text
