"""A local Apache Kafka broker (KRaft combined mode) for demos and tests.

One JVM runs Kafka as broker and controller of a single-node cluster on
loopback, from the classpath ``stratiflow local setup`` resolved with Maven
(``kafka/libs``). Each broker is a named *instance* (tests run their own next to
a developer's ``default`` one) with its own directory ``kafka/<instance>/``:
``server.properties``, ``log4j2.yaml`` and ``data/``, Kafka's log dir. The
storage is formatted on first start and kept across restarts, crashes and
``stop``; ``stop(purge=True)`` deletes it. The PID and ports are kept in
``run/broker-<instance>.json`` and the output in ``logs/broker-<instance>.log``.

``secure=True`` also opens a SASL_SSL listener (SCRAM-SHA-512, the user created
at format time) and an SSL listener that requires client certificates, with a
throw-away CA (:mod:`stratiflow.local.tls`); :func:`client_settings` says how
to connect. No secret is put on a command line: they live in files of mode 0600.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient
from kafka.errors import KafkaConfigurationError, KafkaError

from stratiflow.io.kafka import client_options
from stratiflow.local import procs, tls
from stratiflow.local.errors import LocalInfraError, PortInUseError
from stratiflow.local.paths import LocalPaths, check_instance, local_paths

DEFAULT_PORT = 9092
SETUP_HINT = "run `make setup` or `stratiflow local setup`"
#: Broker heap: Kafka's scripts default to 1 GB; a one-node loopback broker on these
#: 2-core machines runs in 512 MB (``STRATIFLOW_BROKER_HEAP_MB`` overrides it).
HEAP_MB = 512
#: The largest ``transaction.timeout.ms`` a producer may ask for. Flink's KafkaSink asks
#: for 1 h by default; Kafka's broker default (15 min) would refuse it.
TRANSACTION_MAX_TIMEOUT_MS = 3_600_000
#: The SCRAM user ``--secure`` creates at format time.
SCRAM_USER = "stratiflow"
MAIN_CLASS = "kafka.Kafka"
_LOG4J2 = """\
Configuration:
  status: warn
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: {level}
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.request.logger
        level: warn
      - name: org.apache.kafka.controller
        level: {level}
      - name: state.change.logger
        level: warn
"""


@dataclass(frozen=True)
class Listeners:
    """The ports of one instance; all but ``port`` are fixed at format time."""

    port: int
    controller_port: int
    sasl_ssl_port: int | None = None
    ssl_port: int | None = None

    @property
    def secure(self) -> bool:
        return self.sasl_ssl_port is not None


@dataclass(frozen=True)
class BrokerInfo:
    """A running broker instance."""

    instance: str
    pid: int
    listeners: Listeners
    log_file: Path
    data_dir: Path
    cluster_id: str
    host: str = procs.LOOPBACK
    #: True when ``start`` found the instance already running.
    already_running: bool = False

    @property
    def port(self) -> int:
        return self.listeners.port

    @property
    def bootstrap(self) -> str:
        """``host:port`` of the PLAINTEXT listener, for ``bootstrap.servers``."""
        return f"{self.host}:{self.port}"

    @property
    def secure(self) -> bool:
        return self.listeners.secure

    @property
    def sasl_ssl_bootstrap(self) -> str | None:
        port = self.listeners.sasl_ssl_port
        return None if port is None else f"{self.host}:{port}"

    @property
    def ssl_bootstrap(self) -> str | None:
        port = self.listeners.ssl_port
        return None if port is None else f"{self.host}:{port}"


def _paths(paths: LocalPaths | None) -> LocalPaths:
    return paths or local_paths()


def _flag(instance: str) -> str:
    return "" if instance == "default" else f" --instance {instance}"


def new_cluster_id() -> str:
    """A KRaft cluster id as ``kafka-storage random-uuid`` prints it (22 base64url chars).

    >>> len(new_cluster_id())
    22
    """
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):  # Kafka's Uuid.randomUuid avoids these too
            return text


def server_properties(
    listeners: Listeners,
    data_dir: Path,
    security: Mapping[str, str] | None = None,
    host: str = procs.LOOPBACK,
) -> dict[str, str]:
    """``server.properties`` of a one-node combined broker+controller on ``host``.

    >>> props = server_properties(Listeners(9092, 9093), Path("/d"))
    >>> props["process.roles"], props["listeners"]
    ('broker,controller', 'PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093')
    """
    names = {"PLAINTEXT": listeners.port, "CONTROLLER": listeners.controller_port}
    advertised = {"PLAINTEXT": listeners.port}
    if listeners.sasl_ssl_port is not None and listeners.ssl_port is not None:
        names |= {"SASL_SSL": listeners.sasl_ssl_port, "SSL": listeners.ssl_port}
        advertised |= {"SASL_SSL": listeners.sasl_ssl_port, "SSL": listeners.ssl_port}
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"{host}:{listeners.controller_port}",
        "controller.listener.names": "CONTROLLER",
        "listeners": ",".join(f"{n}://{host}:{p}" for n, p in names.items()),
        "advertised.listeners": ",".join(f"{n}://{host}:{p}" for n, p in advertised.items()),
        "listener.security.protocol.map": ",".join(
            f"{n}:{'PLAINTEXT' if n == 'CONTROLLER' else n}" for n in names
        ),
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": "1",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        # One node: every internal topic has one replica, and few partitions.
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "4",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "share.coordinator.state.topic.num.partitions": "1",
        "group.initial.rebalance.delay.ms": "0",
        "transaction.max.timeout.ms": str(TRANSACTION_MAX_TIMEOUT_MS),
        # Large dead-letter payloads (validation.max_payload_bytes) must fit.
        "message.max.bytes": str(8 * 1024 * 1024 + 1024),
        "log.segment.bytes": str(64 * 1024 * 1024),
        "log.retention.hours": "168",
    }
    props.update(security or {})
    return props


def _properties_text(props: Mapping[str, str]) -> str:
    return "".join(f"{k}={v}\n" for k, v in props.items())


def _java() -> str:
    return procs.java_executable("the Kafka broker")


def _heap_mb() -> int:
    return int(os.environ.get("STRATIFLOW_BROKER_HEAP_MB", HEAP_MB))


def _jvm_args(p: LocalPaths, instance: str) -> list[str]:
    heap = _heap_mb()
    return [
        f"-Xmx{heap}m",
        f"-Xms{min(heap, 256)}m",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:+ExplicitGCInvokesConcurrent",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={p.broker_dir(instance) / 'log4j2.yaml'}",
        f"-Dkafka.logs.dir={p.log_dir}",
        "-cp",
        f"{p.kafka_libs}/*",
    ]


def broker_command(p: LocalPaths, instance: str) -> list[str]:
    """The broker's command line (it holds no secret: those are in ``server.properties``)."""
    props = p.broker_dir(instance) / "server.properties"
    return [_java(), *_jvm_args(p, instance), MAIN_CLASS, str(props)]


def _is_our_broker(pid: int, instance: str, p: LocalPaths) -> bool:
    """Is ``pid`` alive and the Kafka JVM of ``instance``?

    PIDs are reused: a stale PID file may point at an unrelated process, which
    must never be reported as the broker (or killed by ``stop``).
    """
    if not procs.pid_alive(pid):
        return False
    args = procs.cmdline(pid)
    if args is None:  # no /proc: trust the PID
        return True
    props = str(p.broker_dir(instance) / "server.properties")
    return MAIN_CLASS in args and props in args


def _read_layout(p: LocalPaths, instance: str) -> dict[str, Any] | None:
    try:
        data = json.loads((p.broker_dir(instance) / "instance.json").read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _listeners_of(layout: Mapping[str, Any], port: int) -> Listeners:
    return Listeners(
        port=port,
        controller_port=int(layout["controller_port"]),
        sasl_ssl_port=layout.get("sasl_ssl_port"),
        ssl_port=layout.get("ssl_port"),
    )


def status(instance: str = "default", paths: LocalPaths | None = None) -> BrokerInfo | None:
    """Return the running broker ``instance`` or ``None``.

    A PID file whose process is gone (or is no longer this broker) is removed.
    """
    p = _paths(paths)
    pid_file = p.broker_pid_file(instance)
    state = procs.read_pid_state(pid_file)
    if state is None:
        if pid_file.exists():
            pid_file.unlink(missing_ok=True)
        return None
    if not _is_our_broker(state["pid"], instance, p):
        pid_file.unlink(missing_ok=True)
        return None
    layout = _read_layout(p, instance) or {"controller_port": state.get("controller_port", 0)}
    return BrokerInfo(
        instance=instance,
        pid=state["pid"],
        listeners=_listeners_of(layout, state["port"]),
        log_file=Path(state.get("log", p.broker_log(instance))),
        data_dir=p.broker_data(instance),
        cluster_id=str(layout.get("cluster_id", "")),
        host=str(state.get("host", procs.LOOPBACK)),
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
        raise LocalInfraError(
            f"broker instance {instance!r} is not running; "
            f"start it with `stratiflow local broker start{_flag(instance)}`"
        )
    return info.bootstrap


def _other_instance_on(ports: set[int], instance: str, p: LocalPaths) -> str | None:
    for pid_file in sorted(p.run_dir.glob("broker-*.json")):
        other = pid_file.stem.removeprefix("broker-")
        if other == instance:
            continue
        info = status(other, p)
        if info is None:
            continue
        theirs = {info.port, info.listeners.controller_port}
        theirs |= {x for x in (info.listeners.sasl_ssl_port, info.listeners.ssl_port) if x}
        if ports & theirs:
            return other
    return None


def kafka_ready(bootstrap: str, properties: Mapping[str, str] | None = None) -> bool:
    """Does a real Kafka request (Metadata) succeed against ``bootstrap``?"""
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            client_id="stratiflow-ready-check",
            request_timeout_ms=3000,
            **client_options(properties or {}),
        )
    except KafkaConfigurationError:
        raise  # a bug here, not a broker that is still starting
    except (KafkaError, OSError):
        return False
    try:
        admin.describe_cluster()
        return True
    except (KafkaError, OSError):
        return False
    finally:
        admin.close()


def _run_java_with_argfile(args: list[str], workdir: Path, what: str) -> str:
    """Run ``java @argfile``: the arguments (a password among them) stay off the process
    listing; the file is private and removed at once."""
    argfile = workdir / ".java-args"
    procs.write_private(argfile, "\n".join(json.dumps(a) for a in args) + "\n")
    try:
        result = subprocess.run(
            [_java(), f"@{argfile}"], capture_output=True, text=True, timeout=120, check=False
        )
    finally:
        argfile.unlink(missing_ok=True)
    if result.returncode != 0:
        out = "\n".join((result.stdout + result.stderr).strip().splitlines()[-10:])
        raise LocalInfraError(f"{what} failed (exit {result.returncode}):\n{procs.indented(out)}")
    return result.stdout


def _meta_cluster_id(data_dir: Path) -> str | None:
    meta = data_dir / "meta.properties"
    try:
        for line in meta.read_text().splitlines():
            if line.startswith("cluster.id="):
                return line.split("=", 1)[1].strip()
    except OSError:
        return None
    return None


def _format(p: LocalPaths, instance: str, cluster_id: str, secure: bool) -> None:
    """``kafka-storage format --standalone`` (with the SCRAM user when ``secure``)."""
    args = [
        *_jvm_args(p, instance),
        "kafka.tools.StorageTool",
        "format",
        "--standalone",
        "-t",
        cluster_id,
        "-c",
        str(p.broker_dir(instance) / "server.properties"),
    ]
    if secure:
        password = tls.scram_password(p.tls_dir(instance))
        args += ["--add-scram", f"SCRAM-SHA-512=[name={SCRAM_USER},password={password}]"]
    _run_java_with_argfile(args, p.broker_dir(instance), f"formatting {p.broker_data(instance)}")


def _allocate(port: int, secure: bool, host: str = procs.LOOPBACK) -> Listeners:
    taken = {port}

    def pick() -> int:
        while True:
            candidate = procs.free_port(host)
            if candidate not in taken:
                taken.add(candidate)
                return candidate

    controller = pick()
    return Listeners(
        port,
        controller,
        sasl_ssl_port=pick() if secure else None,
        ssl_port=pick() if secure else None,
    )


def _prepare(
    port: int,
    instance: str,
    p: LocalPaths,
    secure: bool,
    log: Callable[[str], object],
    host: str = procs.LOOPBACK,
) -> tuple[Listeners, str]:
    """Write the instance's config and format its storage on first start.

    Returns the listeners and the cluster id.
    """
    bdir, data = p.broker_dir(instance), p.broker_data(instance)
    layout = _read_layout(p, instance)
    formatted = _meta_cluster_id(data)
    if formatted is not None and layout is None:
        raise LocalInfraError(
            f"{data} holds Kafka data (cluster {formatted}) that stratiflow did not format for "
            f"instance {instance!r}; move it away or delete it "
            f"(`stratiflow local broker stop --purge{_flag(instance)}`)"
        )
    if layout is not None and formatted is not None and formatted != layout.get("cluster_id"):
        raise LocalInfraError(
            f"{data} was formatted for another cluster ({formatted}, instance {instance!r} "
            f"expects {layout.get('cluster_id')}); delete it with `stratiflow local broker stop "
            f"--purge{_flag(instance)}` (its topics are lost) or restore the right data dir"
        )
    if layout is not None and formatted is not None:
        if secure and not layout.get("secure"):
            raise LocalInfraError(
                f"broker instance {instance!r} was formatted without --secure (its SCRAM user "
                "is created at format time); start it without --secure, or drop its data "
                f"with `stratiflow local broker stop --purge{_flag(instance)}` first"
            )
        listeners = _listeners_of(layout, port)
        cluster_id = str(layout["cluster_id"])
    else:
        listeners = _allocate(port, secure, host)
        cluster_id = new_cluster_id()
        if data.exists():
            shutil.rmtree(data)  # a format that never completed
        layout = {
            "cluster_id": cluster_id,
            "controller_port": listeners.controller_port,
            "sasl_ssl_port": listeners.sasl_ssl_port,
            "ssl_port": listeners.ssl_port,
            "secure": secure,
            "kafka_libs": str(p.kafka_libs),
        }
    security: dict[str, str] = {}
    if listeners.secure:
        material = tls.ensure_material(p.tls_dir(instance), log=log)
        security = tls.broker_properties(material)
    level = os.environ.get("STRATIFLOW_BROKER_LOG", "INFO").upper()
    bdir.mkdir(parents=True, exist_ok=True)
    (bdir / "log4j2.yaml").write_text(_LOG4J2.format(level=level))
    # The keystore password is in here: private, like Kafka's own config files should be.
    procs.write_private(
        bdir / "server.properties",
        "# written by stratiflow local broker start; edits are overwritten\n"
        + _properties_text(server_properties(listeners, data, security, host)),
    )
    if formatted is None:
        log(f"formatting Kafka storage {data} (cluster {cluster_id})")
        _format(p, instance, cluster_id, listeners.secure)
        (bdir / "instance.json").write_text(json.dumps(layout, indent=2) + "\n")
    return listeners, cluster_id


def start(
    port: int = DEFAULT_PORT,
    *,
    instance: str = "default",
    paths: LocalPaths | None = None,
    ready_timeout: float = 60.0,
    secure: bool = False,
    log: Callable[[str], object] = lambda _msg: None,
    host: str = procs.LOOPBACK,
) -> BrokerInfo:
    """Start Apache Kafka on ``host:port`` and wait until it answers Metadata requests.

    ``host`` is the address every listener binds to and advertises: loopback by
    default; another address of this machine (or of its network namespace) makes
    the broker reachable from other hosts (without a secure listener's certificate
    naming it: ``--secure`` certificates name 127.0.0.1 and localhost).

    Idempotent: if the instance already runs on ``port`` its info is returned
    (with ``already_running=True``). The storage is formatted on first start
    and reused afterwards (topics and committed offsets survive restarts).

    Raises
    ------
    LocalInfraError
        Classpath or ``java`` missing, a port taken, the instance running on
        another port, a data dir formatted for another cluster, or the broker
        did not become ready (the message carries its log tail).
    """
    check_instance(instance)
    p = _paths(paths)
    existing = status(instance, p)
    if existing is not None:
        if existing.port != port or existing.host != host:
            raise LocalInfraError(
                f"broker instance {instance!r} is already running on {existing.bootstrap} "
                f"(pid {existing.pid}); stop it first (`stratiflow local broker stop"
                f"{_flag(instance)}`) or use another --instance"
            )
        if secure and not existing.secure:
            raise LocalInfraError(
                f"broker instance {instance!r} is already running without --secure "
                f"(pid {existing.pid}); stop it and start it again with --secure"
            )
        return replace(existing, already_running=True)
    if not (p.kafka_libs).is_dir() or not any(p.kafka_libs.glob("kafka_2.13-*.jar")):
        raise LocalInfraError(
            f"the Kafka broker's classpath is missing ({p.kafka_libs}); {SETUP_HINT}"
        )
    _java()
    layout = _read_layout(p, instance)
    planned = {port}
    if layout is not None:
        planned |= {int(layout["controller_port"])}
        planned |= {int(x) for x in (layout.get("sasl_ssl_port"), layout.get("ssl_port")) if x}
    other = _other_instance_on(planned, instance, p)
    if other is not None:
        raise PortInUseError(
            f"cannot start broker {instance!r}: a port it needs ({sorted(planned)}) is in use "
            f"by stratiflow broker instance {other!r}; pick another --port",
            port,
        )
    for needed in sorted(planned):
        procs.ensure_port_free(
            needed,
            f"broker {instance!r}",
            "Pick another --port or stop whatever listens there."
            if needed == port
            else "It is the instance's controller or secure listener, fixed when its storage "
            f"was formatted: stop that process or `stratiflow local broker stop --purge"
            f"{_flag(instance)}` to start afresh.",
            host,
        )
    listeners, cluster_id = _prepare(port, instance, p, secure, log, host)
    return _launch(listeners, cluster_id, instance, p, ready_timeout, host)


def _launch(
    listeners: Listeners,
    cluster_id: str,
    instance: str,
    p: LocalPaths,
    ready_timeout: float,
    host: str = procs.LOOPBACK,
) -> BrokerInfo:
    cmd = broker_command(p, instance)
    log_file = p.broker_log(instance)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    p.run_dir.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as out:
        out.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=p.broker_dir(instance),
            # Own session: Ctrl-C in the terminal that ran `local broker start`
            # must not take the broker down with it.
            start_new_session=True,
        )
    procs.remember_child(proc)
    state = {
        "pid": proc.pid,
        "port": listeners.port,
        "host": host,
        "controller_port": listeners.controller_port,
        "instance": instance,
        "log": str(log_file),
        "started_at": time.time(),
        "cmd": cmd,
    }
    p.broker_pid_file(instance).write_text(json.dumps(state, indent=2) + "\n")
    info = BrokerInfo(
        instance=instance,
        pid=proc.pid,
        listeners=listeners,
        log_file=log_file,
        data_dir=p.broker_data(instance),
        cluster_id=cluster_id,
        host=host,
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
            if procs.port_accepts(listeners.port, host) and kafka_ready(info.bootstrap):
                return info
            if time.monotonic() > deadline:
                stop(instance, p)
                raise LocalInfraError(
                    f"broker {instance!r} did not answer Kafka requests within "
                    f"{ready_timeout:.0f} s; last lines of {log_file}:\n"
                    f"{procs.indented(procs.tail(log_file))}"
                )
            time.sleep(0.1)
    finally:
        kafka_log.setLevel(level)


def stop(
    instance: str = "default",
    paths: LocalPaths | None = None,
    timeout: float = 30.0,
    *,
    purge: bool = False,
) -> bool:
    """Stop broker ``instance``: SIGTERM (Kafka's controlled shutdown), SIGKILL after
    ``timeout`` s. ``purge`` also deletes its data dir, config and TLS material.

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
    if purge:
        shutil.rmtree(p.broker_dir(instance), ignore_errors=True)
        shutil.rmtree(p.tls_dir(instance), ignore_errors=True)
    return info is not None


def client_settings(info: BrokerInfo, p: LocalPaths | None = None) -> dict[str, dict[str, str]]:
    """Java client properties for each listener of a running broker, by listener name.

    Secrets are not inlined: the SCRAM password is referenced through Kafka's
    ``FileConfigProvider`` (``${file:...:password}``), so the settings can be
    printed, pasted into a config and logged.
    """
    p = _paths(p)
    settings: dict[str, dict[str, str]] = {"PLAINTEXT": {"bootstrap.servers": info.bootstrap}}
    if info.sasl_ssl_bootstrap and info.ssl_bootstrap:
        material = tls.Material(p.tls_dir(info.instance))
        settings["SASL_SSL"] = {
            "bootstrap.servers": info.sasl_ssl_bootstrap,
            **tls.sasl_ssl_client_properties(material, SCRAM_USER),
        }
        settings["SSL"] = {
            "bootstrap.servers": info.ssl_bootstrap,
            **tls.mtls_client_properties(material),
        }
    return settings
