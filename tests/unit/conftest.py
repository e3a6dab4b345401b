"""Fixtures shared by the unit tests of the local infrastructure."""

from __future__ import annotations

from pathlib import Path

import pytest

from stratiflow.local.paths import LocalPaths


@pytest.fixture
def fake_tansu(paths: LocalPaths) -> Path:
    """An executable where the broker binary goes (never run by these tests); ``paths``
    is each test module's own fixture."""
    paths.bin_dir.mkdir(parents=True)
    paths.tansu.write_text("#!/bin/sh\nexit 99\n")
    paths.tansu.chmod(0o755)
    return paths.tansu
