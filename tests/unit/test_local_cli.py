"""``stratiflow local ...`` argument handling and exit codes (nothing is started)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from stratiflow.local.cli import add_local_commands


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
    assert _run(["local", "broker", "start", "--port", "1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: Tansu broker binary not found at ")
    assert "stratiflow local setup" in err and "Traceback" not in err

    assert _run(["local", "broker", "start", "--instance", "no good"]) == 1
    assert "error: invalid instance name" in capsys.readouterr().err

    assert _run(["local", "flink", "start", "--slots", "0"]) == 1
    assert "error: --slots must be at least 1" in capsys.readouterr().err


def test_defaults_and_choices() -> None:
    parser = argparse.ArgumentParser(prog="stratiflow")
    add_local_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["local", "flink", "start"])
    assert (args.port, args.slots, args.instance) == (None, 2, "default")
    args = parser.parse_args(["local", "setup", "--force"])
    assert args.force
    with pytest.raises(SystemExit):
        parser.parse_args(["local", "broker", "restart"])
