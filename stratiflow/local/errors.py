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
