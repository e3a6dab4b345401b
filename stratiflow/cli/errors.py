"""How ``stratiflow`` fails: one line on stderr that names what to fix, never a traceback.

Every command runs through :func:`run_command`, which turns the exceptions a user can
cause (a bad config, a missing file, no broker, Ctrl-C) into one ``error: ...`` line
and an exit status:

- 0: success;
- 1: the command ran and its answer is "no" (``transactions --abort`` kept a
  transaction, the demo's check failed);
- 2: an error: a bad argument or config, a missing file, no broker, a job that failed;
- 3: ``local broker|flink status``: not running;
- 130: interrupted (Ctrl-C).

Anything else is a bug: it is reported on one line too, with a hint to run again with
``--debug`` (or ``STRATIFLOW_DEBUG=1``), which prints the traceback and lets the
libraries log (kafka-python's own messages included).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import traceback
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from kafka.errors import KafkaError

from stratiflow.config import ConfigError
from stratiflow.io.preflight import PreflightError
from stratiflow.local.errors import LocalInfraError, error_lines
from stratiflow.snapshots import SnapshotError

__all__ = [
    "DEBUG_ENV",
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "CliError",
    "configure_logging",
    "debug_enabled",
    "describe",
    "report",
    "run_command",
]

EXIT_OK = 0
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130
#: Set to 1 (or pass ``--debug``) to see tracebacks and the libraries' log messages.
DEBUG_ENV = "STRATIFLOW_DEBUG"
DEBUG_HINT = f"run again with --debug (or {DEBUG_ENV}=1) to see the traceback"


class CliError(Exception):
    """A failure the user can fix; the message says what to do (printed as ``error: ...``)."""


#: Failures whose message is written for the person at the terminal already.
_USER_ERRORS: tuple[type[Exception], ...] = (
    CliError,
    ConfigError,
    PreflightError,
    LocalInfraError,
    SnapshotError,
)


def debug_enabled(flag: bool = False, environ: Mapping[str, str] | None = None) -> bool:
    """``--debug`` given, or ``STRATIFLOW_DEBUG`` set to anything but empty, 0, false or no.

    >>> debug_enabled(False, {"STRATIFLOW_DEBUG": "1"}), debug_enabled(False, {})
    (True, False)
    >>> debug_enabled(False, {"STRATIFLOW_DEBUG": "0"}), debug_enabled(True, {})
    (False, True)
    """
    value = (os.environ if environ is None else environ).get(DEBUG_ENV, "")
    return flag or value.strip().lower() not in ("", "0", "false", "no")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def describe(exc: BaseException, servers: str | None = None) -> str | None:
    """The message for a failure a user can cause, or ``None`` for anything else (a bug).

    Parameters
    ----------
    exc
        What the command raised.
    servers
        The Kafka bootstrap servers the command used, if it used any (named in the
        message of a Kafka client error).

    Returns
    -------
    str or None
        What to print after ``error:`` (its first line names the failure; more lines are
        an excerpt, see :func:`~stratiflow.local.errors.error_lines`).

    Examples
    --------
    >>> describe(FileNotFoundError(2, "No such file or directory", "events.jsonl"))
    'events.jsonl: No such file or directory'
    >>> describe(ZeroDivisionError("division by zero")) is None
    True
    """
    if isinstance(exc, _USER_ERRORS):
        return str(exc)
    if isinstance(exc, KafkaError):
        where = f" at {servers}" if servers else ""
        return (
            f"the Kafka client failed talking to the broker{where}: {_one_line(str(exc))}; "
            "is a Kafka broker running there? (`stratiflow doctor` checks)"
        )
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    if isinstance(exc, MemoryError):
        return "out of memory (`stratiflow doctor` shows the free memory)"
    return None


def report(
    exc: BaseException,
    *,
    servers: str | None = None,
    debug: bool = False,
    stream: TextIO | None = None,
) -> None:
    """Print ``exc`` as its ``error: ...`` line (after the traceback with ``debug``)."""
    stream = stream or sys.stderr
    if debug:
        traceback.print_exception(exc, file=stream)
    message = describe(exc, servers)
    if message is None:
        text = _one_line(str(exc))
        message = f"unexpected {type(exc).__name__}{': ' + text if text else ''}"
        if not debug:
            message += f" ({DEBUG_HINT})"
    print("\n".join(error_lines(message)), file=stream, flush=True)


def run_command(
    func: Callable[[argparse.Namespace], int], args: argparse.Namespace, *, debug: bool = False
) -> int:
    """Run a subcommand and return its exit status; a failure is printed on one line.

    Parameters
    ----------
    func
        The subcommand: takes the parsed arguments, returns an exit status.
    args
        The parsed arguments (``args.kafka_servers``, when a command set it, is named
        in Kafka client errors).
    debug
        Print tracebacks too.

    Returns
    -------
    int
        The command's status; 2 after an error, 130 after Ctrl-C, 0 when the reader of
        stdout went away (``stratiflow tail metrics | head``).
    """
    try:
        code = func(args)
        sys.stdout.flush()
        return code
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        print("interrupted", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _drop_stdout()
        return EXIT_OK
    except Exception as exc:
        report(exc, servers=getattr(args, "kafka_servers", None), debug=debug)
        return EXIT_ERROR


def _drop_stdout() -> None:
    """After the reader of stdout left: send what is still buffered nowhere, so that the
    interpreter's own flush at exit does not fail too."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


class _StratiflowOnly(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.name == "stratiflow" or record.name.startswith("stratiflow.")


class _OneLineFormatter(logging.Formatter):
    """``warning: message``, never a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {_one_line(record.getMessage())}"


def _thread_failed(hook_args: Any) -> None:
    name = hook_args.thread.name if hook_args.thread is not None else "a background thread"
    text = _one_line(str(hook_args.exc_value))
    print(
        f"warning: {name} failed: {hook_args.exc_type.__name__}{': ' + text if text else ''} "
        f"({DEBUG_HINT})",
        file=sys.stderr,
        flush=True,
    )


def _ignore_unraisable(hook_args: Any) -> None:
    """Errors in ``__del__`` at shutdown (a Kafka client closing a dead connection)."""


def configure_logging(debug: bool) -> None:
    """Set up logging and the hooks that print errors outside the command's own thread.

    Without ``debug`` only stratiflow's own warnings and errors are printed, one line
    each; libraries (kafka-python retrying a connection, say) stay quiet, a background
    thread that dies says so on one line, and errors in ``__del__`` at shutdown are
    dropped. With ``debug``, everything at INFO and above is logged with tracebacks,
    and Python's own hooks are back.

    Parameters
    ----------
    debug
        Whether ``--debug`` (or ``STRATIFLOW_DEBUG``) asked for the details.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "stratiflow_cli", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.stratiflow_cli = True  # type: ignore[attr-defined]
    if debug:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        root.setLevel(logging.INFO)
        threading.excepthook = threading.__excepthook__
        sys.unraisablehook = sys.__unraisablehook__
    else:
        handler.setLevel(logging.WARNING)
        handler.addFilter(_StratiflowOnly())
        handler.setFormatter(_OneLineFormatter())
        threading.excepthook = _thread_failed
        sys.unraisablehook = _ignore_unraisable
    root.addHandler(handler)
