"""The closest these machines get to a multi-host deployment: the broker, the JobManager
and two TaskManagers each in a network namespace of their own (``ip netns`` + veth on a
bridge, addresses this test creates), the job at parallelism 2 spread over both
TaskManagers, one of them SIGKILLed mid-stream and replaced.

Smoke size in ``make test``; ``make chaos`` runs it at full size (``STRATIFLOW_CHAOS_N``).
Skipped where namespaces cannot be made (not root / no CAP_NET_ADMIN), saying why.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from stratiflow.io import kafka as kafka_io
from stratiflow.io.sources import river_events
from stratiflow.local import flink as local_flink
from stratiflow.local.procs import descendants, pid_alive
from stratiflow.records import to_json_bytes
from tests.e2e import netns
from tests.e2e.cli import STRATIFLOW, run_cli, write_config
from tests.e2e.faults import START_TS, N, record_result, send_paced, wait_for
from tests.helpers import topic_values

pytestmark = pytest.mark.e2e

REST_PORT = 8081
RPC_PORT = 6123
BROKER_PORT = 9092
#: Two model keys, each produced to a partition of its own (one per source subtask).
KEYS = ("k0", "k1")


def rest(address: str, path: str, method: str = "GET") -> Any:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(f"http://{address}{path}", method=method)
    with opener.open(request, timeout=5) as response:
        body = response.read()
    return json.loads(body) if body else None


@dataclass
class Daemon:
    """One Flink daemon (JobManager or TaskManager) of the namespaced cluster."""

    host: str
    kind: str  # jobmanager | taskmanager
    env: dict[str, str]

    @property
    def pid_file(self) -> Path:
        name = "standalonesession" if self.kind == "jobmanager" else "taskexecutor"
        return Path(self.env["FLINK_PID_DIR"]) / f"flink-stratiflow-{name}.pid"

    def pids(self) -> list[int]:
        if not self.pid_file.exists():
            return []
        return [int(p) for p in self.pid_file.read_text().split() if pid_alive(int(p))]


def make_daemon(
    net: netns.Network, host: str, kind: str, root: Path, local_paths, slots: int = 1
) -> Daemon:
    """A conf dir of the daemon's own: it binds to and announces its namespace's address."""
    home = root / host
    conf = home / "conf"
    if conf.exists():
        shutil.rmtree(conf)
    shutil.copytree(local_flink.flink_home() / "conf", conf)
    options = local_flink.cluster_options(
        rest_port=REST_PORT,
        rpc_port=RPC_PORT,
        slots=slots,
        instance_dir=home,
        host=net.hosts[host],
        jobmanager_host=net.hosts["jobmanager"],
    )
    # One checkpoint directory for all: the TaskManagers write it, the JobManager reads it.
    options["execution.checkpointing.dir"] = (root / "checkpoints").as_uri()
    local_flink.edit_config(conf / "config.yaml", options)
    env = local_flink.cluster_env("default", local_paths)
    env.update(
        FLINK_CONF_DIR=str(conf), FLINK_LOG_DIR=str(home / "log"), FLINK_PID_DIR=str(home / "run")
    )
    for d in ("log", "run"):
        (home / d).mkdir(parents=True, exist_ok=True)
    return Daemon(host=host, kind=kind, env=env)


def start_daemon(net: netns.Network, daemon: Daemon) -> None:
    script = local_flink.flink_home() / "bin" / f"{daemon.kind}.sh"
    argv = [str(script), "start"]
    subprocess.run(
        net.exec_argv(daemon.host, argv), env=daemon.env, check=True, capture_output=True,
        timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def kill_tree(pids: list[int]) -> None:
    for pid in pids:
        for doomed in [pid, *descendants(pid)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(doomed, signal.SIGKILL)


@pytest.fixture
def namespaced_hosts() -> Iterator[netns.Network]:
    why = netns.unavailable()
    if why:
        pytest.skip(f"network namespaces unavailable here: {why}")
    net = netns.Network.create(["broker", "jobmanager", "tm1", "tm2"])
    try:
        yield net
    finally:
        for host in net.hosts:
            kill_tree(net.pids_inside(host))
        net.delete()


def subtask_hosts(jobmanager: str, job: str) -> dict[str, list[str]]:
    """Vertex name -> the host of each subtask (where the JobManager deployed it)."""
    out = {}
    for vertex in rest(jobmanager, f"/jobs/{job}")["vertices"]:
        detail = rest(jobmanager, f"/jobs/{job}/vertices/{vertex['id']}")
        out[vertex["name"]] = [s.get("endpoint", s.get("host", "")) for s in detail["subtasks"]]
    return out


def test_taskmanager_on_another_host_killed_at_parallelism_2_keeps_exactly_once(
    namespaced_hosts, local_paths, tmp_path
):
    net = namespaced_hosts
    instance = f"test-netns-{os.getpid()}"
    broker_host = net.hosts["broker"]
    jobmanager = f"{net.hosts['jobmanager']}:{REST_PORT}"

    # The broker, started by the user's command inside its namespace, on its address.
    started = subprocess.run(
        net.exec_argv("broker", [STRATIFLOW, "local", "broker", "start", "--host", broker_host,
                                 "--port", str(BROKER_PORT), "--instance", instance]),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    bootstrap = f"{broker_host}:{BROKER_PORT}"
    try:
        kinds = {"jobmanager": "jobmanager", "tm1": "taskmanager", "tm2": "taskmanager"}
        daemons = {
            host: make_daemon(net, host, kind, tmp_path / "flink", local_paths)
            for host, kind in kinds.items()
        }
        for daemon in daemons.values():
            start_daemon(net, daemon)
        wait_for(
            lambda: _slots(jobmanager) >= 2, 90, "two TaskManagers (one slot each) to register"
        )
        _run_job(net, daemons, bootstrap, jobmanager, tmp_path)
    finally:
        subprocess.run(
            net.exec_argv("broker", [STRATIFLOW, "local", "broker", "stop", "--purge",
                                     "--instance", instance]),
            capture_output=True, timeout=60, check=False,
        )  # fmt: skip
        local_paths.broker_log(instance).unlink(missing_ok=True)


def _slots(jobmanager: str) -> int:
    try:
        return int(rest(jobmanager, "/overview")["slots-total"])
    except OSError:
        return 0


def _run_job(
    net: netns.Network, daemons: dict[str, Daemon], bootstrap: str, jobmanager: str, tmp_path
) -> None:
    prefix = f"netns-{tmp_path.name}"
    config = write_config(
        tmp_path / "job.yaml",
        bootstrap,
        prefix,
        job={"parallelism": 2, "checkpoint_interval_ms": "1s", "restart_delay_ms": "1s"},
        metrics={"report_every": 500},
    )
    per_key = max(N // 2, 1000)
    events = {
        key: list(
            river_events("hyperplane", n=per_key, seed=11 + i, start_ts=START_TS, interval_ms=10)
        )
        for i, key in enumerate(KEYS)
    }
    for key, evs in events.items():
        for e in evs:
            e["id"] = f"{key}-{e['id']}"
            e["key"] = key
    # Interleave the keys in event time; each key has a partition of its own.
    stream = [events[k][i] for i in range(per_key) for k in KEYS]
    total = len(stream)
    kafka_io.ensure_topics(bootstrap, {f"{prefix}-events": 2})
    run_cli("submit", "--config", str(config), "--jobmanager", jobmanager, "--detached")
    job = wait_for_job(jobmanager)

    producer = kafka_io.producer(bootstrap)
    sent = [0]

    def send(i: int) -> None:
        e = stream[i]
        producer.send(
            f"{prefix}-events", key=e["key"].encode(), value=to_json_bytes(e),
            partition=KEYS.index(e["key"]),
        )  # fmt: skip

    rate = max(total / 20, 300)

    def produce(first: int, last: int) -> None:
        send_paced(send, first, last, rate, sent)
        producer.flush()

    predictions_topic = f"{prefix}-predictions"
    produce(0, min(400, total // 10))
    wait_for(lambda: kafka_io.count_records(bootstrap, predictions_topic) > 0, 120, "predictions")
    # Spread over both TaskManagers: every operator has a subtask on each of them.
    hosts = subtask_hosts(jobmanager, job)
    tm_addresses = {net.hosts["tm1"], net.hosts["tm2"]}
    for name, where in hosts.items():
        assert {h.split(":")[0] for h in where} == tm_addresses, (name, where)
    thread = threading.Thread(target=produce, args=(sent[0], total), daemon=True)
    thread.start()
    wait_for(lambda: sent[0] >= total // 2, 120, "half the events sent")

    victim = daemons["tm2"]
    kill_tree(victim.pids())
    killed_at = time.time()
    sent_at_kill = sent[0]
    victim.pid_file.unlink(missing_ok=True)
    start_daemon(net, victim)  # the replacement, on the same host
    thread.join(timeout=180)
    producer.close()

    wait_for(
        lambda: kafka_io.count_records(bootstrap, predictions_topic) >= total, 300,
        "a prediction for every event", 3,
    )  # fmt: skip
    time.sleep(3)  # one more checkpoint: a late duplicate would show now
    predictions = topic_values(bootstrap, predictions_topic)
    reports = topic_values(bootstrap, f"{prefix}-metrics")
    rest(jobmanager, f"/jobs/{job}?mode=cancel", method="PATCH")

    ids = [p["id"] for p in predictions]
    duplicates = len(ids) - len(set(ids))
    lost = len({e["id"] for e in stream} - set(ids))
    assert (duplicates, lost) == (0, 0)
    assert sent_at_kill < total  # the kill landed mid-stream
    by_id = {p["id"]: p for p in predictions}
    for key in KEYS:
        # Each key's model continued from its checkpoint: event i saw i learned events.
        assert [by_id[e["id"]]["model_version"] for e in events[key]] == list(range(per_key))
    last = {}
    for r in reports:
        if r["counts"]["seen"] >= last.get(r["key"], {"counts": {"seen": -1}})["counts"]["seen"]:
            last[r["key"]] = r
    assert {k: (r["counts"]["seen"], r["counts"]["predicted"]) for k, r in last.items()} == {
        k: (per_key, per_key) for k in KEYS
    }
    after = [p["emitted_at"] for p in predictions if p["emitted_at"] > killed_at * 1000]
    record_result(
        {
            "fault": "TaskManager SIGKILL at parallelism 2, broker/JobManager/TaskManagers "
            "in own network namespaces",
            "events_in": total,
            "predictions_out": len(predictions),
            "duplicates": duplicates,
            "lost": lost,
            "recovery_s": round(min(after) / 1000 - killed_at, 1) if after else None,
            "sent_before_kill": sent_at_kill,
        }
    )


def wait_for_job(jobmanager: str) -> str:
    found: list[str] = []

    def running() -> bool:
        jobs = [j for j in rest(jobmanager, "/jobs")["jobs"] if j["status"] == "RUNNING"]
        found[:] = [j["id"] for j in jobs]
        return len(jobs) == 1

    wait_for(running, 90, "the job to run")
    return found[0]
