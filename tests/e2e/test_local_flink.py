"""The local standalone Flink cluster, for real: start, report (REST and Prometheus), stop
without leftovers."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request
from typing import Any

import pytest

from stratiflow.local import flink
from stratiflow.local.errors import PortInUseError
from stratiflow.local.paths import LocalPaths
from stratiflow.local.procs import free_port

pytestmark = pytest.mark.e2e


def _java_processes_of(path: str) -> list[str]:
    """``pgrep -af`` lines of java processes whose command line mentions ``path``."""
    out = subprocess.run(["pgrep", "-af", path], capture_output=True, text=True, check=False)
    return [line for line in out.stdout.splitlines() if " java " in f" {line} " or "/java " in line]


def _prometheus_scopes(ports: str) -> dict[int, set[str]]:
    """Port -> the metric scopes (``jobmanager``, ``taskmanager``) served there, in ``ports``."""
    no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    found: dict[int, set[str]] = {}
    for port in flink.prometheus_ports(ports):
        try:
            with no_proxy.open(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
                text = resp.read().decode()
        except (OSError, urllib.error.URLError):
            continue
        found[port] = {
            scope for scope in ("jobmanager", "taskmanager") if f"\nflink_{scope}_Status_" in text
        }
    return found


def test_start_status_stop_leaves_no_jvm(local_paths: LocalPaths) -> None:
    instance = f"t-flink-{os.getpid()}"
    port = free_port()
    first = free_port()
    reporter = f"{first}-{first + 15}"  # each daemon takes the first free port
    instance_dir = str(local_paths.flink_instance_dir(instance))
    info = flink.start(
        port, slots=2, instance=instance, paths=local_paths, prometheus_port=reporter
    )
    try:
        assert info.rest_url == f"http://127.0.0.1:{port}"
        assert (info.taskmanagers, info.slots_total, info.slots_available) == (1, 2, 2)
        # The JobManager and the TaskManager each serve their metrics to Prometheus.
        assert info.prometheus_port == reporter
        scopes = _prometheus_scopes(reporter)
        assert sorted(map(sorted, scopes.values())) == [["jobmanager"], ["taskmanager"]], scopes

        status = flink.status(instance, local_paths)
        assert status is not None
        assert (status.taskmanagers, status.slots_total, status.jobs_running) == (1, 2, 0)
        assert flink.start(port, slots=2, instance=instance, paths=local_paths).already_running
        # JobManager and TaskManager, both ours.
        assert len(_java_processes_of(instance_dir)) == 2

        # Another cluster cannot take the same REST port; the check comes
        # before any JVM is launched.
        with pytest.raises(PortInUseError, match=rf"port {port} is already in use"):
            flink.start(port, instance=f"{instance}-b", paths=local_paths)
    finally:
        stopped = flink.stop(instance, local_paths, purge=True)
    assert stopped
    assert _java_processes_of(instance_dir) == []
    assert flink.status(instance, local_paths) is None
    assert flink.stop(instance, local_paths) is False


def test_session_cluster_fixture(flink_cluster: Any) -> None:
    no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with no_proxy.open(f"{flink_cluster.rest_url}/overview", timeout=5) as resp:
        overview = json.load(resp)
    assert overview["taskmanagers"] == 1 and overview["slots-total"] == 2
    assert flink_cluster.jobmanager == f"127.0.0.1:{flink_cluster.rest_port}"
    env = flink_cluster.env
    assert env["FLINK_CONF_DIR"].endswith(
        f"/flink/{flink_cluster.instance}/conf"
    ) and os.path.isfile(os.path.join(env["FLINK_CONF_DIR"], "config.yaml"))
    # The CLI finds the cluster through FLINK_CONF_DIR alone (rest.address/port).
    result = subprocess.run(
        [str(flink.flink_cli()), "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "No running jobs" in result.stdout
