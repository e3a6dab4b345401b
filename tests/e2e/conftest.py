"""Shared fixtures for the end-to-end tier: a provisioned home, a broker, a Flink cluster.

Test infrastructure never uses the default instance names or ports, so a
developer's own ``stratiflow local broker start`` / ``flink start`` keeps
running undisturbed while the tests run. Set ``STRATIFLOW_KEEP_TEST_LOGS=1``
to keep the test cluster's directory (logs, conf) after the session.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from stratiflow.local import broker as local_broker
from stratiflow.local import flink as local_flink
from stratiflow.local.paths import LocalPaths
from stratiflow.local.paths import local_paths as default_local_paths
from stratiflow.local.procs import free_port
from stratiflow.local.provision import ensure_provisioned

KEEP_LOGS = bool(os.environ.get("STRATIFLOW_KEEP_TEST_LOGS"))


def instance_name(kind: str) -> str:
    """An instance name unique to this test process."""
    return f"test-{kind}-{os.getpid()}"


@pytest.fixture(scope="session")
def local_paths() -> LocalPaths:
    """The ``STRATIFLOW_HOME`` layout, provisioned (broker binary, jars) once."""
    paths = default_local_paths()
    ensure_provisioned(paths, log=lambda _msg: None)
    return paths


@dataclass(frozen=True)
class BrokerHandle:
    """A running test broker."""

    instance: str
    port: int
    pid: int

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest.fixture(scope="session")
def broker(local_paths: LocalPaths) -> Iterator[BrokerHandle]:
    """An Apache Kafka broker on a free port, for the whole session."""
    instance = instance_name("broker")
    info = local_broker.start(free_port(), instance=instance, paths=local_paths)
    try:
        yield BrokerHandle(instance=instance, port=info.port, pid=info.pid)
    finally:
        local_broker.stop(instance, local_paths, purge=True)
        if not KEEP_LOGS:
            local_paths.broker_log(instance).unlink(missing_ok=True)


@dataclass(frozen=True)
class FlinkHandle:
    """A running standalone test cluster."""

    instance: str
    rest_port: int
    #: Environment for ``flink run`` against this cluster (``flink_cli()``).
    env: dict[str, str]

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def jobmanager(self) -> str:
        """``host:port`` for ``flink run -m`` / ``--jobmanager``."""
        return f"127.0.0.1:{self.rest_port}"


@pytest.fixture(scope="session")
def flink_cluster(local_paths: LocalPaths) -> Iterator[FlinkHandle]:
    """A standalone Flink cluster (1 TaskManager, 2 slots) on a free port."""
    instance = instance_name("flink")
    info = local_flink.start(free_port(), slots=2, instance=instance, paths=local_paths)
    try:
        yield FlinkHandle(
            instance=instance,
            rest_port=info.rest_port,
            env=local_flink.cluster_env(instance, local_paths),
        )
    finally:
        local_flink.stop(instance, local_paths, purge=not KEEP_LOGS)


@pytest.fixture
def topic_name(request: pytest.FixtureRequest) -> str:
    """A topic name no other test (or earlier run on the same broker) uses."""
    base = "".join(c if c.isalnum() else "-" for c in request.node.name)[:60].strip("-")
    return f"{base}-{uuid.uuid4().hex[:8]}"
