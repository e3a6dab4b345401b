"""Provisioning logic that needs neither network nor a JDK."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from stratiflow.local import provision
from stratiflow.local.errors import LocalInfraError
from stratiflow.local.paths import LocalPaths


def test_connector_versions_are_the_single_source() -> None:
    assert dict(provision.CONNECTOR_VERSIONS) == {
        "flink-connector-kafka": "4.0.1-2.0",
        "kafka-clients": "3.9.1",
    }
    jar_names = {Path(n).stem for n in provision._JARS_WHEEL.members.values()}
    assert jar_names == set(provision.CONNECTOR_VERSIONS)
    for artifact, version in provision.CONNECTOR_VERSIONS.items():
        assert provision.MAVEN_ARTIFACTS[artifact].endswith(f":{artifact}:{version}")
    assert provision.maven_url("flink-connector-kafka") == (
        "https://repo1.maven.org/maven2/org/apache/flink/flink-connector-kafka/"
        "4.0.1-2.0/flink-connector-kafka-4.0.1-2.0.jar"
    )


def test_checksum_mismatch_is_a_clear_error(tmp_path: Path) -> None:
    wheel = tmp_path / "x.whl"
    wheel.write_bytes(b"not the real wheel")
    with pytest.raises(LocalInfraError, match=r"checksum mismatch for x\.whl") as err:
        provision.verify_wheel(wheel, "0" * 64)
    assert "--force" in str(err.value)
    provision.verify_wheel(wheel, provision.sha256_of(wheel))


def _jar(path: Path, members: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return path


def test_jar_version(tmp_path: Path) -> None:
    clients = _jar(
        tmp_path / "c.jar", {"kafka/kafka-version.properties": "commitId=x\nversion=3.9.1\n"}
    )
    connector = _jar(
        tmp_path / "k.jar",
        {"META-INF/MANIFEST.MF": "Manifest-Version: 1.0\nImplementation-Version: 4.0.1-2.0\n"},
    )
    assert provision.jar_version(clients) == "3.9.1"
    assert provision.jar_version(connector) == "4.0.1-2.0"
    assert provision.jar_version(_jar(tmp_path / "e.jar", {"a.txt": ""})) is None


def _provisioned_home(tmp_path: Path) -> LocalPaths:
    """A home that looks fully provisioned with the current pins."""
    paths = LocalPaths(tmp_path)
    paths.bin_dir.mkdir(parents=True)
    paths.tansu.write_text("#!/bin/sh\n")
    paths.tansu.chmod(0o755)
    paths.lib_dir.mkdir(parents=True)
    for name in ("flink-connector-kafka.jar", "kafka-clients.jar", "stratiflow-connectors.jar"):
        _jar(paths.lib_dir / name, {"a.txt": name})
    future = time.time() + 60  # newer than every .java source
    os.utime(paths.stratiflow_jar, (future, future))
    record = provision._expected_record()
    record["jars"] = {j.name: provision.sha256_of(j) for j in paths.jars()}
    paths.versions_file.write_text(json.dumps(record))
    return paths


def _no_subprocess(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError(f"unexpected subprocess {args}")


def test_already_provisioned_is_a_no_op(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = _provisioned_home(tmp_path)
    before = paths.versions_file.read_text()
    monkeypatch.setattr(provision.subprocess, "run", _no_subprocess)
    messages: list[str] = []
    provision.ensure_provisioned(paths, log=messages.append)
    assert messages == []
    assert paths.versions_file.read_text() == before
    assert provision.is_provisioned(paths)


def test_changed_java_source_rebuilds_only_the_helper_jar(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = _provisioned_home(tmp_path)
    os.utime(paths.stratiflow_jar, (0, 0))  # older than the sources now
    monkeypatch.setattr(provision.shutil, "which", lambda name: None)
    with pytest.raises(LocalInfraError, match="javac not found: install a JDK 17"):
        provision.ensure_provisioned(paths, log=lambda _m: None)


def test_jar_is_written_without_the_jar_tool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    classes = tmp_path / "classes"
    (classes / "io" / "x").mkdir(parents=True)
    (classes / "io" / "x" / "A.class").write_bytes(b"\xca\xfe\xba\xbe")
    monkeypatch.setattr(provision.shutil, "which", lambda name: None)
    jar = tmp_path / "out.jar"
    provision._write_jar(classes, jar)
    with zipfile.ZipFile(jar) as archive:
        assert sorted(archive.namelist()) == ["META-INF/MANIFEST.MF", "io/x/A.class"]


def test_java_sources_are_packaged() -> None:
    names = {p.name for p in provision.java_sources()}
    assert {"ExplicitOffsets.java", "KeyedRawRecordDeserializationSchema.java"} <= names
    assert "ModelKeys.java" in names


def test_local_tooling_never_imports_pyflink() -> None:
    """stratiflow/ is the pure core: finding Flink must not import PyFlink."""
    code = (
        "import sys\n"
        "from stratiflow.local import broker, cli, flink, provision\n"
        "assert (provision.pyflink_home() / 'bin' / 'flink').is_file()\n"
        "flink.cluster_env('x')\n"
        "assert 'pyflink' not in sys.modules, 'pyflink was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
