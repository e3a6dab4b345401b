"""Where local infrastructure lives on disk.

Everything the local tooling resolves, builds or runs (the Kafka broker's classpath,
connector jars, broker data, PID files, logs, the standalone Flink configuration) sits under one
project-owned directory, ``STRATIFLOW_HOME``. In a source checkout it defaults to
``<repo>/.stratiflow``; in an installed package to ``~/.cache/stratiflow``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

#: Instance names end up in file names and process command lines.
_INSTANCE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_instance(name: str) -> str:
    """Return ``name`` if it is a valid instance name, else raise ``ValueError``.

    >>> check_instance("test-123")
    'test-123'
    """
    if not _INSTANCE_RE.match(name):
        raise ValueError(
            f"invalid instance name {name!r}: use letters, digits, '.', '_' or '-' "
            "(at most 64 characters, not starting with a punctuation mark)"
        )
    return name


def _default_home() -> Path:
    if (REPO_ROOT / "pyproject.toml").is_file() and (REPO_ROOT / "jobs").is_dir():
        return REPO_ROOT / ".stratiflow"
    return Path.home() / ".cache" / "stratiflow"


@dataclass(frozen=True)
class LocalPaths:
    """The directory layout under ``STRATIFLOW_HOME``."""

    home: Path

    @property
    def bin_dir(self) -> Path:
        return self.home / "bin"

    @property
    def lib_dir(self) -> Path:
        """Connector jars shipped with every job (``env.add_jars``)."""
        return self.home / "lib"

    @property
    def run_dir(self) -> Path:
        """PID files and other per-process runtime files."""
        return self.home / "run"

    @property
    def log_dir(self) -> Path:
        return self.home / "logs"

    @property
    def downloads_dir(self) -> Path:
        return self.home / "downloads"

    @property
    def flink_dir(self) -> Path:
        """The standalone cluster's own configuration, logs and PID files."""
        return self.home / "flink"

    @property
    def kafka_libs(self) -> Path:
        """The Apache Kafka broker's runtime classpath, resolved by Maven."""
        return self.home / "kafka" / "libs"

    def broker_dir(self, instance: str = "default") -> Path:
        """One broker: ``server.properties``, its log4j2 file, ``data/`` (the log dir), ``tls/``."""
        return self.home / "kafka" / check_instance(instance)

    def broker_data(self, instance: str = "default") -> Path:
        """Kafka's ``log.dirs``: topics and the KRaft metadata log, kept across restarts."""
        return self.broker_dir(instance) / "data"

    def tls_dir(self, instance: str = "default") -> Path:
        """The throw-away CA, broker keystore and client certificates of ``--secure``."""
        return self.home / "tls" / check_instance(instance)

    @property
    def stratiflow_jar(self) -> Path:
        """Our own Java helpers, compiled from ``stratiflow/local/java``."""
        return self.lib_dir / "stratiflow-connectors.jar"

    @property
    def versions_file(self) -> Path:
        """What ``ensure_provisioned`` installed: versions and checksums."""
        return self.lib_dir / "VERSIONS.json"

    def broker_pid_file(self, instance: str = "default") -> Path:
        return self.run_dir / f"broker-{check_instance(instance)}.json"

    def broker_log(self, instance: str = "default") -> Path:
        return self.log_dir / f"broker-{check_instance(instance)}.log"

    def flink_instance_dir(self, instance: str = "default") -> Path:
        """One standalone cluster: ``conf/``, ``log/``, ``run/`` and its state file."""
        return self.flink_dir / check_instance(instance)

    def jars(self) -> list[Path]:
        """All jars a job needs on its classpath, in a stable order."""
        return sorted(self.lib_dir.glob("*.jar"))


def local_paths() -> LocalPaths:
    """Return the layout for ``$STRATIFLOW_HOME`` (or the default)."""
    env = os.environ.get("STRATIFLOW_HOME")
    return LocalPaths(Path(env).resolve() if env else _default_home())
