"""``stratiflow local ...`` argument handling and exit codes (nothing is started)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from stratiflow.local.cli import add_local_commands
from stratiflow.local.paths import LocalPaths


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="stratiflow")
    add_local_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


@pytest.fixture(autouse=True)
def empty_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("STRATIFLOW_HOME", str(tmp_path))
    return tmp_path


def test_status_of_stopped_things_exits_3(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["local", "broker", "status"]) == 3
    assert "broker 'default' is not running" in capsys.readouterr().out
    assert _run(["local", "flink", "status", "--instance", "x"]) == 3
    assert "local flink start --instance x" in capsys.readouterr().out


def test_stop_of_stopped_things_is_fine(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(["local", "broker", "stop", "--instance", "x"]) == 0
    assert _run(["local", "flink", "stop"]) == 0
    assert "was not running" in capsys.readouterr().out


def test_errors_are_one_line_without_traceback(
    capsys: pytest.CaptureFixture[str], empty_home: Path
) -> None:
    assert _run(["local", "broker", "start", "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: the Kafka broker's classpath is missing ({empty_home}")
    assert "stratiflow local setup" in err and "Traceback" not in err
    assert err.count("\n") == 1

    assert _run(["local", "broker", "start", "--instance", "no good"]) == 2
    assert "error: invalid instance name" in capsys.readouterr().err

    assert _run(["local", "flink", "start", "--slots", "0"]) == 2
    assert "error: --slots must be at least 1" in capsys.readouterr().err


def test_secure_and_purge_go_with_their_action(capsys: pytest.CaptureFixture[str]) -> None:
    for argv, message in (
        (["stop", "--secure"], "error: --secure goes with `start`"),
        (["status", "--secure"], "error: --secure goes with `start`"),
        (["start", "--purge"], "error: --purge goes with `stop`"),
        (["status", "--purge"], "error: --purge goes with `stop`"),
    ):
        assert _run(["local", "broker", *argv]) == 2
        assert capsys.readouterr().err.startswith(message)


def test_stop_keeps_the_data_unless_purged(
    capsys: pytest.CaptureFixture[str], empty_home: Path
) -> None:
    paths = LocalPaths(empty_home)
    data = paths.broker_data("x")
    data.mkdir(parents=True)
    (data / "meta.properties").write_text("cluster.id=abc\n")
    tls = paths.tls_dir("x")
    tls.mkdir(parents=True)
    (tls / "ca.pem").write_text("")
    other = paths.broker_data("other")
    other.mkdir(parents=True)

    assert _run(["local", "broker", "stop", "--instance", "x"]) == 0
    out = capsys.readouterr().out
    assert f"its topics stay in {data}" in out and "stop --purge --instance x" in out
    assert (data / "meta.properties").is_file() and tls.is_dir()

    assert _run(["local", "broker", "stop", "--purge", "--instance", "x"]) == 0
    assert "its data, config and TLS material are deleted" in capsys.readouterr().out
    assert not paths.broker_dir("x").exists() and not tls.exists()
    assert other.is_dir()  # another instance's data is untouched


def test_defaults_and_choices() -> None:
    parser = argparse.ArgumentParser(prog="stratiflow")
    add_local_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["local", "flink", "start"])
    assert (args.port, args.slots, args.instance) == (None, 2, "default")
    args = parser.parse_args(["local", "setup", "--force"])
    assert args.force
    args = parser.parse_args(["local", "broker", "start"])
    assert (args.port, args.instance, args.secure, args.purge) == (None, "default", False, False)
    args = parser.parse_args(["local", "broker", "stop", "--purge", "--instance", "t"])
    assert (args.purge, args.instance) == (True, "t")
    assert parser.parse_args(["local", "broker", "start", "--secure"]).secure
    with pytest.raises(SystemExit):
        parser.parse_args(["local", "broker", "restart"])


@pytest.mark.parametrize("gone", ["--durable", "--with-storage"])
def test_the_tansu_era_flags_are_gone(gone: str, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="stratiflow")
    add_local_commands(parser.add_subparsers(dest="command", required=True))
    with pytest.raises(SystemExit):
        parser.parse_args(["local", "broker", "start", gone])
    assert f"unrecognized arguments: {gone}" in capsys.readouterr().err
