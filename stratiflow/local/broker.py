"""A local Kafka-compatible broker (Tansu) for demos and tests.

Tansu is a single Rust binary that speaks the Kafka protocol; with the
``memory://`` storage engine it needs no disk or ZooKeeper/KRaft setup and is
ready in milliseconds. Each broker is a named *instance* (so tests can run
their own next to a developer's ``default`` one), started detached so it
outlives the CLI command that started it. Its PID and port are kept in
``run/broker-<instance>.json`` and its output in ``logs/broker-<instance>.log``.

By default data lives in the broker's memory only: stopping it drops every
topic. With ``durable=True`` (``local broker start --durable``) Tansu keeps its
topics in a loopback S3 server of the instance's own
(:mod:`stratiflow.local.s3server`), which runs on when the broker is stopped or
killed: starting the instance again with ``durable=True`` finds every topic and
acknowledged record. The S3 server keeps them in memory, so they last until it
is stopped (``stop(..., with_storage=True)``), not across a reboot.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from stratiflow.local import procs, s3server
from stratiflow.local.errors import LocalInfraError, PortInUseError
from stratiflow.local.paths import LocalPaths, check_instance, local_paths

DEFAULT_PORT = 9092
SETUP_HINT = "run `make setup` or `stratiflow local setup`"
#: Tansu's ``--storage-engine`` without ``durable``.
MEMORY_STORAGE = "memory://tansu/"


@dataclass(frozen=True)
class BrokerInfo:
    """A running broker instance."""

    instance: str
    pid: int
    port: int
    log_file: Path
    host: str = procs.LOOPBACK
    #: True when ``start`` found the instance already running.
    already_running: bool = False
    #: Tansu's ``--storage-engine``: ``memory://...`` or ``s3://...`` (durable).
    storage: str = MEMORY_STORAGE
    #: The S3 server a durable broker writes to (``None`` in memory mode).
    s3_endpoint: str | None = None

    @property
    def bootstrap(self) -> str:
        """``host:port`` for ``bootstrap.servers``."""
        return f"{self.host}:{self.port}"

    @property
    def durable(self) -> bool:
        """Are the topics kept outside the broker process (``start --durable``)?"""
        return self.storage.startswith("s3://")


def broker_command(tansu: Path, port: int, storage: str = MEMORY_STORAGE) -> list[str]:
    """Tansu on ``127.0.0.1:port`` with storage engine ``storage``.

    >>> broker_command(Path("/x/tansu"), 9092, "s3://b/")[1:]  # doctest: +NORMALIZE_WHITESPACE
    ['broker', '--listener-url', 'tcp://127.0.0.1:9092',
     '--advertised-listener-url', 'tcp://127.0.0.1:9092', '--storage-engine', 's3://b/']
    """
    url = f"tcp://{procs.LOOPBACK}:{port}"
    return [
        str(tansu),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        storage,
    ]


def broker_env(
    s3_endpoint: str | None = None, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Tansu's environment: ``base`` (default ``os.environ``) with ``RUST_LOG`` and,
    for durable storage, the S3 settings (:func:`s3server.broker_env`).

    Tansu's flags also read env vars (``LISTENER_URL``, ``STORAGE_ENGINE``, ...);
    the explicit flags of :func:`broker_command` win. ``RUST_LOG=warn`` keeps the
    log small (the default level logs every request); ``STRATIFLOW_BROKER_LOG``
    overrides it.
    """
    source = dict(os.environ if base is None else base)
    env = source if s3_endpoint is None else s3server.broker_env(s3_endpoint, source)
    env["RUST_LOG"] = source.get("STRATIFLOW_BROKER_LOG", "warn")
    return env


def _paths(paths: LocalPaths | None) -> LocalPaths:
    return paths or local_paths()


def _is_our_broker(pid: int, port: int) -> bool:
    """Is ``pid`` alive and the Tansu process we started on ``port``?

    PIDs are reused: a stale PID file may point at an unrelated process, which
    must never be reported as the broker (or killed by ``stop``).
    """
    if not procs.pid_alive(pid):
        return False
    args = procs.cmdline(pid)
    if args is None:  # no /proc: trust the PID
        return True
    return bool(args) and Path(args[0]).name == "tansu" and f"tcp://{procs.LOOPBACK}:{port}" in args


def status(instance: str = "default", paths: LocalPaths | None = None) -> BrokerInfo | None:
    """Return the running broker ``instance`` or ``None``.

    A PID file whose process is gone (or is no longer Tansu) is removed.
    """
    p = _paths(paths)
    pid_file = p.broker_pid_file(instance)
    state = procs.read_pid_state(pid_file)
    if state is None:
        if pid_file.exists():
            pid_file.unlink(missing_ok=True)
        return None
    if not _is_our_broker(state["pid"], state["port"]):
        pid_file.unlink(missing_ok=True)
        return None
    storage = state.get("storage")
    endpoint = state.get("s3_endpoint")
    return BrokerInfo(
        instance=instance,
        pid=state["pid"],
        port=state["port"],
        log_file=Path(state.get("log", p.broker_log(instance))),
        storage=storage if isinstance(storage, str) else MEMORY_STORAGE,
        s3_endpoint=endpoint if isinstance(endpoint, str) else None,
    )


def bootstrap_servers(instance: str = "default", paths: LocalPaths | None = None) -> str:
    """``bootstrap.servers`` of a running instance.

    Raises
    ------
    LocalInfraError
        The instance is not running.
    """
    info = status(instance, paths)
    if info is None:
        flag = "" if instance == "default" else f" --instance {instance}"
        raise LocalInfraError(
            f"broker instance {instance!r} is not running; "
            f"start it with `stratiflow local broker start{flag}`"
        )
    return info.bootstrap


def _other_instance_on(port: int, p: LocalPaths) -> str | None:
    for pid_file in sorted(p.run_dir.glob("broker-*.json")):
        state = procs.read_pid_state(pid_file)
        if state and state["port"] == port and _is_our_broker(state["pid"], port):
            return pid_file.stem.removeprefix("broker-")
    return None


def _kafka_ready(bootstrap: str) -> bool:
    """Does a real Kafka request (Metadata) succeed against ``bootstrap``?"""
    from kafka import KafkaAdminClient  # heavy import, only needed here
    from kafka.errors import KafkaConfigurationError, KafkaError

    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            client_id="stratiflow-ready-check",
            request_timeout_ms=3000,
        )
    except KafkaConfigurationError:
        raise  # a bug here, not a broker that is still starting
    except (KafkaError, OSError):
        return False
    try:
        admin.list_topics()
        return True
    except (KafkaError, OSError):
        return False
    finally:
        admin.close()


def _flag(instance: str) -> str:
    return "" if instance == "default" else f" --instance {instance}"


def start(
    port: int = DEFAULT_PORT,
    *,
    instance: str = "default",
    paths: LocalPaths | None = None,
    ready_timeout: float = 20.0,
    durable: bool = False,
    log: Callable[[str], object] = lambda _msg: None,
) -> BrokerInfo:
    """Start a Tansu broker on ``127.0.0.1:port`` and wait until it serves requests.

    Idempotent: if the instance already runs on ``port`` its info is returned
    (with ``already_running=True``).

    ``durable`` keeps the topics in the instance's loopback S3 server
    (:mod:`stratiflow.local.s3server`; its venv is built on first use, ``log``
    says so), started here unless it runs already — in which case the broker
    comes back with every topic and record that server holds.

    Raises
    ------
    LocalInfraError
        Binary missing, port taken, instance running on another port or with
        in-memory storage when ``durable`` is asked for, durable storage left
        running but ``durable`` not asked for, the S3 server failed, or the
        broker did not become ready (the message carries its log tail).
    """
    check_instance(instance)
    p = _paths(paths)
    existing = status(instance, p)
    if existing is not None:
        if existing.port != port:
            raise LocalInfraError(
                f"broker instance {instance!r} is already running on port {existing.port} "
                f"(pid {existing.pid}); stop it first (`stratiflow local broker stop"
                f"{_flag(instance)}`) or use another --instance"
            )
        if durable and not existing.durable:
            raise LocalInfraError(
                f"broker instance {instance!r} is already running with in-memory storage "
                f"(pid {existing.pid}); stop it first (`stratiflow local broker stop"
                f"{_flag(instance)}`, which drops its topics), then start it with --durable"
            )
        return replace(existing, already_running=True)
    kept = s3server.status(instance, p)
    if kept is not None and not durable:
        raise LocalInfraError(
            f"broker instance {instance!r} has durable storage (S3 server on {kept.endpoint}, "
            f"pid {kept.pid}) holding its topics; start it with `stratiflow local broker start "
            f"--durable{_flag(instance)}` to keep them, or drop them first with "
            f"`stratiflow local broker stop --with-storage{_flag(instance)}`"
        )
    if not os.access(p.tansu, os.X_OK):
        raise LocalInfraError(f"Tansu broker binary not found at {p.tansu}; {SETUP_HINT}")
    other = _other_instance_on(port, p)
    if other is not None:
        raise PortInUseError(
            f"cannot start broker {instance!r}: port {port} is already in use by stratiflow "
            f"broker instance {other!r}; pick another --port",
            port,
        )
    procs.ensure_port_free(
        port, f"broker {instance!r}", "Pick another --port or stop whatever listens there."
    )

    s3 = s3server.start(instance, p, avoid_ports=frozenset({port}), log=log) if durable else None
    try:
        return _start_tansu(port, instance, p, ready_timeout, s3)
    except BaseException:
        if s3 is not None and not s3.already_running:
            s3server.stop(instance, p)  # started for this broker only, holds nothing yet
        raise


def _start_tansu(
    port: int, instance: str, p: LocalPaths, ready_timeout: float, s3: s3server.S3Info | None
) -> BrokerInfo:
    storage = MEMORY_STORAGE if s3 is None else s3.storage_url
    cmd = broker_command(p.tansu, port, storage)
    env = broker_env(None if s3 is None else s3.endpoint)
    log_file = p.broker_log(instance)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    p.run_dir.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=p.run_dir,
            # Own session: Ctrl-C in the terminal that ran `local broker start`
            # must not take the broker down with it.
            start_new_session=True,
        )
    procs.remember_child(proc)
    endpoint = None if s3 is None else s3.endpoint
    state = {
        "pid": proc.pid,
        "port": port,
        "instance": instance,
        "log": str(log_file),
        "started_at": time.time(),
        "cmd": cmd,
        "storage": storage,
        "durable": s3 is not None,
        "s3_endpoint": endpoint,
    }
    p.broker_pid_file(instance).write_text(json.dumps(state, indent=2) + "\n")
    info = BrokerInfo(
        instance=instance,
        pid=proc.pid,
        port=port,
        log_file=log_file,
        storage=storage,
        s3_endpoint=endpoint,
    )

    # kafka-python logs every refused connection while the broker starts.
    kafka_log = logging.getLogger("kafka")
    level = kafka_log.level
    kafka_log.setLevel(logging.CRITICAL)
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if proc.poll() is not None:
                p.broker_pid_file(instance).unlink(missing_ok=True)
                raise LocalInfraError(
                    f"broker {instance!r} exited with code {proc.returncode} during start-up; "
                    f"last lines of {log_file}:\n{procs.indented(procs.tail(log_file))}"
                )
            if procs.port_accepts(port) and _kafka_ready(info.bootstrap):
                return info
            if time.monotonic() > deadline:
                stop(instance, p)
                raise LocalInfraError(
                    f"broker {instance!r} did not answer Kafka requests within "
                    f"{ready_timeout:.0f} s; last lines of {log_file}:\n"
                    f"{procs.indented(procs.tail(log_file))}"
                )
            time.sleep(0.05)
    finally:
        kafka_log.setLevel(level)


def stop(
    instance: str = "default",
    paths: LocalPaths | None = None,
    timeout: float = 10.0,
    *,
    with_storage: bool = False,
) -> bool:
    """Stop broker ``instance``: SIGTERM, then SIGKILL after ``timeout`` s.

    A durable broker's S3 server keeps running (and keeps the topics for the
    next ``start(durable=True)``) unless ``with_storage``, which stops it too
    and so drops the topics.

    Returns
    -------
    bool
        True if a running broker was stopped, False if none was running (a
        stale PID file is removed either way).
    """
    p = _paths(paths)
    info = status(instance, p)  # drops stale PID files
    if info is not None:
        procs.terminate([info.pid], timeout=timeout)
        if procs.pid_alive(info.pid):
            raise LocalInfraError(
                f"broker {instance!r} (pid {info.pid}) did not stop, even on SIGKILL"
            )
        p.broker_pid_file(instance).unlink(missing_ok=True)
    if with_storage:
        s3server.stop(instance, p, timeout=timeout)
    return info is not None
