"""Running a job's own process in the foreground (``submit``, ``backtest``).

Ctrl-C at the terminal goes to every process of the foreground group; a job's Python
process would answer it with a traceback of its own. The child starts with SIGINT
ignored instead (Python keeps an inherited ``SIG_IGN``, and so do the JVM and the
Python workers it starts), and this process stops it on Ctrl-C: SIGTERM, then SIGKILL
after a grace period. The child stays in this process group, so whoever kills the
group (a test's or a benchmark's timeout) still kills the job too.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

__all__ = ["run_child"]

#: How long a job gets to exit after SIGTERM before it is killed.
GRACE_S = 10.0


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread handles signals (and may change their handlers)
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run_child(
    command: list[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    every: Callable[[], None] | None = None,
    period_s: float = 0.5,
) -> int:
    """Run ``command`` to its end and return its exit status.

    Parameters
    ----------
    command
        The program and its arguments; its stdout and stderr are this process's.
    env, cwd
        Its environment and working directory.
    every
        Called every ``period_s`` while it runs (to draw progress, say).
    period_s
        How often ``every`` is called.

    Raises
    ------
    KeyboardInterrupt
        After Ctrl-C, once the child has been stopped.
    """
    with _sigint_ignored():
        proc = subprocess.Popen(command, env=None if env is None else dict(env), cwd=cwd)
    try:
        while True:
            try:
                return proc.wait(timeout=period_s)
            except subprocess.TimeoutExpired:
                if every is not None:
                    every()
    except BaseException:  # Ctrl-C above all: the job must not outlive the command
        _stop(proc)
        raise


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    deadline = time.monotonic() + GRACE_S
    while proc.poll() is None and time.monotonic() < deadline:
        with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C: keep stopping it
            time.sleep(0.1)
    if proc.poll() is None:
        proc.kill()
        proc.wait()
