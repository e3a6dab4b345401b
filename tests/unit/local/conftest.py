"""Fixtures shared by the unit tests of the local infrastructure."""

from __future__ import annotations

from pathlib import Path

import pytest

from stratiflow.local import provision
from stratiflow.local.paths import LocalPaths


@pytest.fixture
def fake_kafka_libs(paths: LocalPaths) -> Path:
    """A broker classpath that passes ``broker.start``'s "is it provisioned" check (the jar
    is empty: nothing here may run it); ``paths`` is each test module's own fixture."""
    paths.kafka_libs.mkdir(parents=True)
    (paths.kafka_libs / f"kafka_2.13-{provision.KAFKA_VERSION}.jar").write_bytes(b"")
    return paths.kafka_libs


@pytest.fixture
def fake_java(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``$JAVA_HOME/bin/java`` that fails if anything runs it (tests never start a JVM)."""
    java = tmp_path / "fake-jdk" / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text("#!/bin/sh\necho 'fake java must not run' >&2\nexit 97\n")
    java.chmod(0o755)
    monkeypatch.setenv("JAVA_HOME", str(java.parent.parent))
    return java
