"""Every failure a user can cause ends in one ``error:`` line, exit 2; never a traceback.

The first tests run the installed ``stratiflow`` as a user does (a subprocess, nothing
listening on 127.0.0.1:1); the rest drive :mod:`stratiflow.cli.errors` in-process.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from stratiflow.cli.errors import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    CliError,
    configure_logging,
    report,
    run_command,
)
from stratiflow.cli.main import main
from stratiflow.local.errors import LocalInfraError

STRATIFLOW = str(Path(sys.executable).parent / "stratiflow")
#: Nothing listens on port 1: a connection is refused at once.
NO_BROKER = "127.0.0.1:1"


def cli(*args: str, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "STRATIFLOW_DEBUG"}
    return subprocess.run(
        [STRATIFLOW, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env
    )


def one_error_line(result: subprocess.CompletedProcess) -> str:
    """The only line on stderr, which must be an ``error:`` line; exit status 2."""
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.fixture
def restore_hooks() -> Iterator[None]:
    """``main`` sets process-wide hooks and a logging handler; put them back."""
    hooks = threading.excepthook, sys.unraisablehook
    yield
    threading.excepthook, sys.unraisablehook = hooks
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "stratiflow_cli", False):
            root.removeHandler(handler)
    root.setLevel(logging.WARNING)


# -- the real CLI, as a user runs it --------------------------------------------------------


@pytest.mark.parametrize("topic", ["metrics", "predictions", "dead-letters"])
def test_tail_without_a_broker_is_one_line_naming_the_fix(topic: str) -> None:
    line = one_error_line(cli("tail", topic, "--bootstrap-servers", NO_BROKER, "--idle-exit", "1"))
    assert line.startswith(f"error: cannot reach the Kafka broker at {NO_BROKER}")
    assert "`stratiflow local broker start`" in line


def test_produce_without_a_broker_is_one_line() -> None:
    line = one_error_line(
        cli("produce", "phishing", "--limit", "3", "--bootstrap-servers", NO_BROKER)
    )
    assert "cannot reach the Kafka broker" in line


def test_bad_inputs_are_one_line_each(tmp_path: Path) -> None:
    (tmp_path / "garbled.yaml").write_text("model: [\n  - a\n")
    (tmp_path / "notes.jsonl").write_text("hello\nworld\n")
    cases = {
        ("tail", "metrics", "--config", "nope.yaml"): "config file nope.yaml does not exist",
        ("tail", "metrics", "--config", "garbled.yaml"): "garbled.yaml is not valid YAML: "
        "expected the node content, but found '-' (line 2, column 3)",
        ("tail", "metrics", "--set", "metrics.report_every"): "expected PATH=VALUE",
        ("produce", "nope.jsonl"): "nope.jsonl does not exist",
        ("backtest", "--events", "notes.jsonl", "--out", "out"): "notes.jsonl is not JSONL: "
        "line 1 is not JSON",
        ("stop", "--jobmanager", "nohost"): "--jobmanager: expected HOST:PORT",
    }
    for args, message in cases.items():
        line = one_error_line(cli(*args, cwd=tmp_path))
        assert message in line, (args, line)


def test_a_misspelt_estimator_gets_a_suggestion() -> None:
    result = cli("submit", "--set", "model=[linear_model.LogisticRegresion]")
    line = one_error_line(result)
    assert line == (
        "error: model[0].linear_model.LogisticRegresion: river.linear_model has no estimator "
        "'LogisticRegresion'; did you mean linear_model.LogisticRegression?"
    )


def test_debug_shows_the_traceback_then_the_same_line() -> None:
    result = cli("tail", "metrics", "--bootstrap-servers", NO_BROKER, "--debug")
    assert result.returncode == 2
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("error: cannot reach the Kafka broker")


def test_version() -> None:
    from importlib.metadata import version

    result = cli("--version")
    assert result.returncode == 0, result.stderr
    text = result.stdout.strip()
    assert text.startswith(f"stratiflow {version('stratiflow')} (Python ")
    assert f"River {version('river')}" in text and f"PyFlink {version('apache-flink')}" in text


def test_ctrl_c_stops_a_job_without_its_traceback(tmp_path: Path) -> None:
    """The terminal sends SIGINT to the whole foreground group: the job's process (here a
    Python that sleeps) must not answer it with a traceback; the command stops it and
    says ``interrupted``, exit 130."""
    harness = tmp_path / "harness.py"
    harness.write_text(
        textwrap.dedent(
            """
            import sys
            from stratiflow.cli.child import run_child
            from stratiflow.cli.errors import run_command

            def command(args):
                return run_child(
                    [sys.executable, "-c", "import time; time.sleep(60)"],
                    every=lambda: print("running", flush=True),
                    period_s=0.1,
                )

            sys.exit(run_command(command, None))
            """
        )
    )
    proc = subprocess.Popen(
        [sys.executable, str(harness)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        process_group=0,  # a group of its own, as a terminal's foreground job
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "running\n"
        started = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == EXIT_INTERRUPTED
    assert err == "interrupted\n"  # no KeyboardInterrupt traceback from either process
    assert time.monotonic() - started < 8  # stopped, not waited for


# -- in-process -----------------------------------------------------------------------------


def _raises(exc: BaseException):  # type: ignore[no-untyped-def]
    def command(args: argparse.Namespace) -> int:
        raise exc

    return command


def test_an_unexpected_error_is_one_line_with_the_debug_hint(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = run_command(_raises(ZeroDivisionError("division by zero")), argparse.Namespace())
    err = capsys.readouterr().err
    assert code == EXIT_ERROR
    assert err == (
        "error: unexpected ZeroDivisionError: division by zero (run again with --debug "
        "(or STRATIFLOW_DEBUG=1) to see the traceback)\n"
    )
    code = run_command(_raises(ZeroDivisionError("x")), argparse.Namespace(), debug=True)
    err = capsys.readouterr().err
    assert code == EXIT_ERROR and "Traceback" in err and "--debug" not in err


def test_interrupt_and_closed_pipe(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_command(_raises(KeyboardInterrupt()), argparse.Namespace()) == 130
    assert capsys.readouterr().err == "interrupted\n"
    assert run_command(_raises(CliError("no events")), argparse.Namespace()) == 2
    assert capsys.readouterr().err == "error: no events\n"
    # `stratiflow tail metrics | head`: the reader left; nothing to say about it.
    assert run_command(_raises(BrokenPipeError()), argparse.Namespace()) == 0
    assert capsys.readouterr().err == ""


def test_a_kafka_client_error_names_the_servers(capsys: pytest.CaptureFixture[str]) -> None:
    from kafka.errors import KafkaTimeoutError

    args = argparse.Namespace(kafka_servers="10.0.0.9:9092")
    assert run_command(_raises(KafkaTimeoutError("Unable to bootstrap")), args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the Kafka client failed talking to the broker at 10.0.0.9:9092")
    assert err.count("\n") == 1


def test_an_excerpt_comes_before_the_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    report(LocalInfraError("broker exited; last lines of b.log:\n  | boom\n  | bang"))
    assert capsys.readouterr().err.splitlines() == [
        "  | boom",
        "  | bang",
        "error: broker exited; last lines of b.log (above)",
    ]


def test_library_logs_stay_quiet_without_debug(
    capsys: pytest.CaptureFixture[str], restore_hooks: None
) -> None:
    configure_logging(debug=False)
    try:
        raise ConnectionError("refused")
    except ConnectionError:
        logging.getLogger("kafka.conn").error("connect failed", exc_info=True)
        logging.getLogger("stratiflow.io").warning("slow\nbroker", exc_info=True)
    assert capsys.readouterr().err == "warning: slow broker\n"
    configure_logging(debug=True)
    try:
        raise ConnectionError("refused")
    except ConnectionError:
        logging.getLogger("kafka.conn").error("connect failed", exc_info=True)
    err = capsys.readouterr().err
    assert "ERROR kafka.conn: connect failed" in err and "Traceback" in err


def test_a_dying_background_thread_is_one_warning(
    capsys: pytest.CaptureFixture[str], restore_hooks: None
) -> None:
    configure_logging(debug=False)

    def boom() -> None:
        raise RuntimeError("sender died")

    thread = threading.Thread(target=boom, name="kafka-sender")
    thread.start()
    thread.join()
    err = capsys.readouterr().err
    assert err.startswith("warning: kafka-sender failed: RuntimeError: sender died")
    assert err.count("\n") == 1


def test_train_on_a_file_without_valid_events(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    restore_hooks: None,
) -> None:
    monkeypatch.setenv("STRATIFLOW_SNAPSHOT_KEY", "ab" * 32)
    events = tmp_path / "events.jsonl"
    events.write_text('{"id": "a", "ts": 1}\n{"id": "b", "ts": 2, "features": 3}\n')
    code = main(["train", "--events", str(events), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"error: {events} holds no valid event (2 lines rejected; line 1: ")
    assert err.count("\n") == 1 and not (tmp_path / "out").exists()


def test_produce_suggests_a_dataset(
    capsys: pytest.CaptureFixture[str], restore_hooks: None
) -> None:
    assert main(["produce", "phising", "--bootstrap-servers", NO_BROKER]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: 'phising' is neither a file nor a dataset")
    assert err.endswith("; did you mean phishing?\n")
