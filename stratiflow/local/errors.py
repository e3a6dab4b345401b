"""The one exception type of the local tooling."""

from __future__ import annotations


class LocalInfraError(Exception):
    """Local infrastructure cannot be set up, started or stopped.

    The message is meant for a user at a terminal: it says what went wrong and
    what to do about it. The CLI prints it without a traceback.
    """


class PortInUseError(LocalInfraError):
    """A port the local tooling was asked to listen on is already taken.

    Callers may catch this to retry on another port (``procs.free_port``).
    """

    def __init__(self, message: str, port: int) -> None:
        super().__init__(message)
        self.port = port


def error_lines(message: str) -> list[str]:
    """How an error's message is printed: the last line is always ``error: ...``.

    A message's first line says what went wrong; the lines after it, if any, are an
    excerpt (a log's last lines, a tool's output). The excerpt comes first, so that a
    failure always ends in one line that names it.

    >>> error_lines("broker exited; last lines of x.log:\\n  | boom")
    ['  | boom', 'error: broker exited; last lines of x.log (above)']
    >>> error_lines("port 1 is in use")
    ['error: port 1 is in use']
    """
    head, *rest = message.strip().splitlines() or [""]
    excerpt = [line for line in rest if line.strip()]
    if excerpt:
        head = head.rstrip().rstrip(":") + " (above)"
    return [*excerpt, f"error: {head}"]
