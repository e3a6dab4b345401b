"""The one exception type of the local tooling."""

from __future__ import annotations


class LocalInfraError(Exception):
    """Local infrastructure cannot be set up, started or stopped.

    The message is meant for a user at a terminal: it says what went wrong and
    what to do about it. The CLI prints it without a traceback.
    """
