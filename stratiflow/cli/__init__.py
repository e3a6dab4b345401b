"""The ``stratiflow`` command line (``main``), the demo behind ``make demo``, and the
plain-text tables ``stratiflow tail`` prints."""

from __future__ import annotations

from stratiflow.cli.main import main

__all__ = ["main"]
