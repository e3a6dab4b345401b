"""The Kafka broker's configuration, storage layout and bookkeeping, without a real JVM.

Where a ``java`` is needed, a fake one (a script) stands in; where a running broker is
needed, a sleeping Python process whose command line looks like the broker's does.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import socket
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stratiflow.local import broker, procs, tls
from stratiflow.local.broker import Listeners
from stratiflow.local.errors import LocalInfraError, PortInUseError
from stratiflow.local.paths import LocalPaths

INSTANCE = "unit"


@pytest.fixture
def paths(tmp_path: Path) -> LocalPaths:
    return LocalPaths(tmp_path / "home")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _read_properties(path: Path) -> dict[str, str]:
    lines = [ln for ln in path.read_text().splitlines() if ln and not ln.startswith("#")]
    return dict(ln.split("=", 1) for ln in lines)


def _formatted(
    paths: LocalPaths,
    instance: str = INSTANCE,
    *,
    cluster_id: str = "AAAAAAAAAAAAAAAAAAAAAA",
    meta_cluster_id: str | None = None,
    secure: bool = False,
    controller_port: int = 19093,
) -> dict[str, Any]:
    """An instance dir as a completed first start leaves it."""
    layout = {
        "cluster_id": cluster_id,
        "controller_port": controller_port,
        "sasl_ssl_port": 19094 if secure else None,
        "ssl_port": 19095 if secure else None,
        "secure": secure,
        "kafka_libs": str(paths.kafka_libs),
    }
    data = paths.broker_data(instance)
    data.mkdir(parents=True)
    (data / "meta.properties").write_text(
        f"node.id=1\ndirectory.id=x\nversion=1\ncluster.id={meta_cluster_id or cluster_id}\n"
    )
    (paths.broker_dir(instance) / "instance.json").write_text(json.dumps(layout))
    return layout


def _no_format(*args: Any) -> None:
    raise AssertionError(f"unexpected format {args}")


# --- server.properties -------------------------------------------------------------------


def test_server_properties_of_a_plain_instance() -> None:
    props = broker.server_properties(Listeners(9092, 40001), Path("/d/data"))
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:40001"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9092"
    assert props["listener.security.protocol.map"] == "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert props["controller.quorum.bootstrap.servers"] == "127.0.0.1:40001"
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert props["log.dirs"] == "/d/data"
    # Flink's KafkaSink asks for transaction.timeout.ms = 1 h by default.
    assert int(props["transaction.max.timeout.ms"]) >= 3_600_000
    for key in ("offsets.topic.replication.factor", "transaction.state.log.replication.factor",
                "transaction.state.log.min.isr", "default.replication.factor"):  # fmt: skip
        assert props[key] == "1", key
    assert all(isinstance(v, str) and "\n" not in v for v in props.values())


def test_server_properties_of_a_secure_instance() -> None:
    security = {"ssl.keystore.location": "/t/broker.p12", "num.partitions": "3"}
    props = broker.server_properties(Listeners(9092, 40001, 40002, 40003), Path("/d"), security)
    assert props["listeners"] == (
        "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:40001,"
        "SASL_SSL://127.0.0.1:40002,SSL://127.0.0.1:40003"
    )
    assert props["advertised.listeners"] == (
        "PLAINTEXT://127.0.0.1:9092,SASL_SSL://127.0.0.1:40002,SSL://127.0.0.1:40003"
    )
    protocols = dict(x.split(":") for x in props["listener.security.protocol.map"].split(","))
    assert protocols == {
        "PLAINTEXT": "PLAINTEXT",
        "CONTROLLER": "PLAINTEXT",
        "SASL_SSL": "SASL_SSL",
        "SSL": "SSL",
    }
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert props["ssl.keystore.location"] == "/t/broker.p12"
    assert props["num.partitions"] == "3"  # the security settings are applied last


def test_listeners_secure_flag() -> None:
    assert not Listeners(1, 2).secure
    assert Listeners(1, 2, 3, 4).secure


# --- cluster ids -------------------------------------------------------------------------


def test_new_cluster_id_looks_like_kafka_storage_random_uuid() -> None:
    ids = {broker.new_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    for cid in ids:
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cid), cid
        assert not cid.startswith("-")
        assert len(base64.urlsafe_b64decode(cid + "==")) == 16


def test_new_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    dashed = uuid.UUID(bytes=b"\xf8" + bytes(15))  # base64url of 0b111110... is "-"
    plain = uuid.UUID(bytes=bytes(16))
    queue = [dashed, plain]
    monkeypatch.setattr(broker.uuid, "uuid4", lambda: queue.pop(0))
    assert broker.new_cluster_id() == "A" * 22
    assert queue == []


# --- _prepare: the storage layout ---------------------------------------------------------


def test_data_not_formatted_by_stratiflow_is_refused_and_kept(
    paths: LocalPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(broker, "_format", _no_format)
    data = paths.broker_data(INSTANCE)
    data.mkdir(parents=True)
    (data / "meta.properties").write_text("cluster.id=SomeoneElsesCluster\n")
    (data / "topic-0").mkdir()
    with pytest.raises(LocalInfraError) as err:
        broker._prepare(9092, INSTANCE, paths, False, lambda _m: None)
    message = str(err.value)
    assert f"{data} holds Kafka data (cluster SomeoneElsesCluster)" in message
    assert f"for instance {INSTANCE!r}" in message
    assert f"`stratiflow local broker stop --purge --instance {INSTANCE}`" in message
    assert (data / "topic-0").is_dir()  # nothing was deleted
    assert not (paths.broker_dir(INSTANCE) / "server.properties").exists()


def test_data_of_another_cluster_is_refused_and_kept(
    paths: LocalPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(broker, "_format", _no_format)
    _formatted(paths, cluster_id="A" * 22, meta_cluster_id="B" * 22)
    with pytest.raises(LocalInfraError) as err:
        broker._prepare(9092, INSTANCE, paths, False, lambda _m: None)
    message = str(err.value)
    assert f"formatted for another cluster ({'B' * 22}, instance {INSTANCE!r} " in message
    assert f"expects {'A' * 22})" in message
    assert "--purge --instance unit" in message
    assert (paths.broker_data(INSTANCE) / "meta.properties").is_file()


def test_secure_on_an_instance_formatted_without_it(
    paths: LocalPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(broker, "_format", _no_format)
    _formatted(paths, secure=False)
    with pytest.raises(LocalInfraError, match=r"was formatted without --secure") as err:
        broker._prepare(9092, INSTANCE, paths, True, lambda _m: None)
    assert "stop --purge --instance unit" in str(err.value)
    assert not paths.tls_dir(INSTANCE).exists()  # no CA made for nothing
    # Without --secure the same instance is fine.
    listeners, _ = broker._prepare(9092, INSTANCE, paths, False, lambda _m: None)
    assert not listeners.secure


def test_a_restart_reuses_the_layout_and_rewrites_the_config(
    paths: LocalPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(broker, "_format", _no_format)
    monkeypatch.setenv("STRATIFLOW_BROKER_LOG", "debug")
    layout = _formatted(paths, cluster_id="C" * 22, controller_port=19093)
    bdir = paths.broker_dir(INSTANCE)
    (bdir / "server.properties").write_text("stale=1\n")
    listeners, cluster_id = broker._prepare(9555, INSTANCE, paths, False, lambda _m: None)
    assert listeners == Listeners(9555, 19093)
    assert cluster_id == "C" * 22
    props = _read_properties(bdir / "server.properties")
    assert "stale" not in props
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9555,CONTROLLER://127.0.0.1:19093"
    assert props["log.dirs"] == str(paths.broker_data(INSTANCE))
    assert _mode(bdir / "server.properties") == 0o600
    assert "level: DEBUG" in (bdir / "log4j2.yaml").read_text()
    assert json.loads((bdir / "instance.json").read_text()) == layout


_RECORDING_JAVA = """\
#!{python}
import json, os, stat, sys
arg = sys.argv[1]
record = {{"argv": sys.argv[1:]}}
if arg.startswith("@"):
    record["mode"] = stat.S_IMODE(os.stat(arg[1:]).st_mode)
    record["args"] = [json.loads(line) for line in open(arg[1:])]
open({out!r}, "w").write(json.dumps(record))
sys.exit({code})
"""


def _recording_java(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int = 0) -> Path:
    out = tmp_path / "java-call.json"
    java = tmp_path / "jdk" / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text(_RECORDING_JAVA.format(python=sys.executable, out=str(out), code=code))
    java.chmod(0o755)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk"))
    return out


def test_first_start_formats_the_storage_through_a_private_argfile(
    paths: LocalPaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = _recording_java(tmp_path, monkeypatch)
    data = paths.broker_data(INSTANCE)
    data.mkdir(parents=True)
    (data / "half-written").write_text("")  # a format that never completed
    messages: list[str] = []
    listeners, cluster_id = broker._prepare(9092, INSTANCE, paths, False, messages.append)

    call = json.loads(record.read_text())
    argfile = paths.broker_dir(INSTANCE) / ".java-args"
    assert call["argv"] == [f"@{argfile}"]  # nothing else on the command line
    assert call["mode"] == 0o600
    args = call["args"]
    at = args.index("kafka.tools.StorageTool")
    assert args[at + 1 : at + 5] == ["format", "--standalone", "-t", cluster_id]
    assert args[args.index("-c") + 1] == str(paths.broker_dir(INSTANCE) / "server.properties")
    assert "--add-scram" not in args
    assert not argfile.exists()

    assert not (data / "half-written").exists()
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", cluster_id)
    assert listeners.port == 9092 and listeners.controller_port != 9092
    assert not listeners.secure
    layout = json.loads((paths.broker_dir(INSTANCE) / "instance.json").read_text())
    assert layout["cluster_id"] == cluster_id
    assert layout["controller_port"] == listeners.controller_port
    assert layout["secure"] is False and layout["sasl_ssl_port"] is None
    assert any(f"formatting Kafka storage {data}" in m for m in messages)


def test_a_failed_format_leaves_no_layout_behind(
    paths: LocalPaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _recording_java(tmp_path, monkeypatch, code=3)
    with pytest.raises(LocalInfraError, match=r"^formatting .*/data failed \(exit 3\)"):
        broker._prepare(9092, INSTANCE, paths, False, lambda _m: None)
    # The next start formats again instead of trusting a half-made instance.
    assert not (paths.broker_dir(INSTANCE) / "instance.json").exists()
    assert not (paths.broker_dir(INSTANCE) / ".java-args").exists()


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")
def test_first_secure_start_makes_tls_material_and_a_scram_user(
    paths: LocalPaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = _recording_java(tmp_path, monkeypatch)
    listeners, _ = broker._prepare(9092, INSTANCE, paths, True, lambda _m: None)
    assert listeners.secure
    ports = [listeners.port, listeners.controller_port, listeners.sasl_ssl_port]
    assert len({*ports, listeners.ssl_port}) == 4
    args = json.loads(record.read_text())["args"]
    password = (paths.tls_dir(INSTANCE) / "client-secrets.properties").read_text()
    password = password.strip().removeprefix("password=")
    scram = args[args.index("--add-scram") + 1]
    assert scram == f"SCRAM-SHA-512=[name={broker.SCRAM_USER},password={password}]"
    server = paths.broker_dir(INSTANCE) / "server.properties"
    assert _mode(server) == 0o600  # it holds the keystore password
    props = _read_properties(server)
    assert f"SSL://127.0.0.1:{listeners.ssl_port}" in props["listeners"]
    assert props["listener.name.ssl.ssl.client.auth"] == "required"
    layout = json.loads((paths.broker_dir(INSTANCE) / "instance.json").read_text())
    assert layout["secure"] is True and layout["ssl_port"] == listeners.ssl_port


# --- status, stop and start against a stand-in process -----------------------------------


@pytest.fixture
def stand_ins() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _run_stand_in(
    stand_ins: list[subprocess.Popen[bytes]],
    paths: LocalPaths,
    instance: str,
    port: int,
    *,
    props_of: str | None = None,
) -> subprocess.Popen[bytes]:
    """A sleeping process whose command line is that of ``props_of``'s broker, and the
    PID file of ``instance`` pointing at it."""
    props = paths.broker_dir(props_of or instance) / "server.properties"
    code = "import time; time.sleep(120)"
    proc = subprocess.Popen([sys.executable, "-c", code, broker.MAIN_CLASS, str(props)])
    procs.remember_child(proc)
    stand_ins.append(proc)
    pid_file = paths.broker_pid_file(instance)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(json.dumps({"pid": proc.pid, "port": port, "controller_port": 1}))
    return proc


def test_status_ignores_a_pid_file_whose_process_is_not_our_broker(
    paths: LocalPaths, stand_ins: list[subprocess.Popen[bytes]]
) -> None:
    _formatted(paths)
    # A live Kafka-looking process, but another instance's broker.
    proc = _run_stand_in(stand_ins, paths, INSTANCE, 9092, props_of="other")
    assert broker.status(INSTANCE, paths) is None
    assert not paths.broker_pid_file(INSTANCE).exists()
    _run_stand_in(stand_ins, paths, INSTANCE, 9092, props_of="other")
    assert broker.stop(INSTANCE, paths) is False
    assert proc.poll() is None  # not killed


def test_status_and_stop_of_a_running_instance(
    paths: LocalPaths, stand_ins: list[subprocess.Popen[bytes]]
) -> None:
    _formatted(paths, cluster_id="D" * 22, secure=True, controller_port=19093)
    proc = _run_stand_in(stand_ins, paths, INSTANCE, 19092)
    info = broker.status(INSTANCE, paths)
    assert info is not None
    assert info.pid == proc.pid
    assert info.listeners == Listeners(19092, 19093, 19094, 19095)
    assert info.cluster_id == "D" * 22
    assert info.secure
    assert (info.bootstrap, info.sasl_ssl_bootstrap, info.ssl_bootstrap) == (
        "127.0.0.1:19092",
        "127.0.0.1:19094",
        "127.0.0.1:19095",
    )
    assert info.data_dir == paths.broker_data(INSTANCE)
    assert broker.bootstrap_servers(INSTANCE, paths) == "127.0.0.1:19092"

    assert broker.stop(INSTANCE, paths, timeout=5) is True
    assert proc.poll() is not None
    assert not paths.broker_pid_file(INSTANCE).exists()
    assert (paths.broker_data(INSTANCE) / "meta.properties").is_file()  # kept without purge
    assert broker.stop(INSTANCE, paths, purge=True) is False
    assert not paths.broker_dir(INSTANCE).exists()


def test_start_of_a_running_instance(
    paths: LocalPaths, stand_ins: list[subprocess.Popen[bytes]]
) -> None:
    _formatted(paths)
    proc = _run_stand_in(stand_ins, paths, INSTANCE, 19092)
    info = broker.start(19092, instance=INSTANCE, paths=paths)
    assert info.already_running and info.pid == proc.pid
    with pytest.raises(LocalInfraError, match=r"already running on 127.0.0.1:19092"):
        broker.start(19099, instance=INSTANCE, paths=paths)
    with pytest.raises(LocalInfraError, match=r"already running on 127.0.0.1:19092"):
        broker.start(19092, instance=INSTANCE, paths=paths, host="10.9.9.9")
    with pytest.raises(LocalInfraError, match=r"already running without --secure"):
        broker.start(19092, instance=INSTANCE, paths=paths, secure=True)
    assert proc.poll() is None


def test_start_refuses_a_port_of_another_running_instance(
    paths: LocalPaths,
    stand_ins: list[subprocess.Popen[bytes]],
    fake_kafka_libs: Path,
    fake_java: Path,
) -> None:
    _formatted(paths, "other", controller_port=19093)
    _run_stand_in(stand_ins, paths, "other", 19092)
    _formatted(paths, INSTANCE, controller_port=19093)  # its controller port collides
    with pytest.raises(PortInUseError, match=r"in use by stratiflow broker instance 'other'"):
        broker.start(procs.free_port(), instance=INSTANCE, paths=paths)
    assert not (paths.broker_dir(INSTANCE) / "server.properties").exists()


def test_a_taken_controller_port_says_it_was_fixed_at_format_time(
    paths: LocalPaths, fake_kafka_libs: Path, fake_java: Path
) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        taken = listener.getsockname()[1]
        _formatted(paths, controller_port=taken)
        with pytest.raises(PortInUseError, match="fixed when its storage was formatted") as err:
            broker.start(procs.free_port(), instance=INSTANCE, paths=paths)
        assert err.value.port == taken


def test_a_broker_that_exits_during_start_up_reports_its_log(
    paths: LocalPaths, fake_kafka_libs: Path, fake_java: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(broker, "_format", _no_format)
    _formatted(paths)
    with pytest.raises(LocalInfraError) as err:
        broker.start(procs.free_port(), instance=INSTANCE, paths=paths, ready_timeout=20)
    message = str(err.value)
    assert f"broker {INSTANCE!r} exited with code 97 during start-up" in message
    assert "fake java must not run" in message  # the log's tail
    assert not paths.broker_pid_file(INSTANCE).exists()


# --- client settings ----------------------------------------------------------------------


def test_client_settings_reference_secrets_without_inlining_them(paths: LocalPaths) -> None:
    info = broker.BrokerInfo(
        instance=INSTANCE,
        pid=1,
        listeners=Listeners(19092, 19093, 19094, 19095),
        log_file=paths.broker_log(INSTANCE),
        data_dir=paths.broker_data(INSTANCE),
        cluster_id="x",
    )
    tls_dir = paths.tls_dir(INSTANCE)
    settings = broker.client_settings(info, paths)
    assert set(settings) == {"PLAINTEXT", "SASL_SSL", "SSL"}
    sasl = settings["SASL_SSL"]
    assert sasl["bootstrap.servers"] == "127.0.0.1:19094"
    assert sasl["security.protocol"] == "SASL_SSL"
    assert sasl["sasl.mechanism"] == "SCRAM-SHA-512"
    assert f"${{file:{tls_dir / 'client-secrets.properties'}:password}}" in sasl["sasl.jaas.config"]
    assert f'username="{broker.SCRAM_USER}"' in sasl["sasl.jaas.config"]
    ssl = settings["SSL"]
    assert ssl["bootstrap.servers"] == "127.0.0.1:19095"
    assert ssl["ssl.keystore.location"] == str(tls_dir / "client.pem")
    assert ssl["ssl.truststore.location"] == str(tls_dir / "ca.pem")

    plain = broker.client_settings(
        broker.BrokerInfo(INSTANCE, 1, Listeners(19092, 19093), Path("l"), Path("d"), "x"),
        paths,
    )
    assert plain == {"PLAINTEXT": {"bootstrap.servers": "127.0.0.1:19092"}}


# --- TLS material (real openssl) ----------------------------------------------------------


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")
def test_tls_material_is_private_and_the_client_certificate_verifies(tmp_path: Path) -> None:
    folder = tmp_path / "tls"
    material = tls.ensure_material(folder)
    assert material.complete()
    assert _mode(folder) == 0o700
    for secret in ("ca.key", "keystore-password", "client.pem", "client-secrets.properties"):
        assert _mode(folder / secret) == 0o600, secret
    # No CSR, extension file or scratch dir left behind.
    assert sorted(p.name for p in folder.iterdir()) == [
        "broker.p12",
        "ca.key",
        "ca.pem",
        "client-secrets.properties",
        "client.pem",
        "keystore-password",
    ]  # fmt: skip

    pem = material.client_pem.read_text()
    assert pem.startswith("-----BEGIN PRIVATE KEY-----")  # PKCS#8, as Java's PEM keystore wants
    client_cert = pem[pem.index("-----BEGIN CERTIFICATE-----") :]
    client_cert = client_cert[: client_cert.index("-----END CERTIFICATE-----") + 25] + "\n"
    (tmp_path / "client.crt").write_text(client_cert)
    verify = subprocess.run(
        ["openssl", "verify", "-CAfile", str(material.ca), str(tmp_path / "client.crt")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert verify.returncode == 0 and verify.stdout.strip().endswith(": OK"), verify.stderr
    # ... and a certificate from another CA does not.
    other = tls.ensure_material(tmp_path / "other")
    rejected = subprocess.run(
        ["openssl", "verify", "-CAfile", str(other.ca), str(tmp_path / "client.crt")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert rejected.returncode != 0

    # The broker keystore opens with the recorded password and holds a 127.0.0.1 certificate.
    broker_cert = subprocess.run(
        ["openssl", "pkcs12", "-in", str(material.broker_keystore), "-clcerts", "-nokeys",
         "-passin", f"file:{material.keystore_password_file}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    text = subprocess.run(
        ["openssl", "x509", "-noout", "-text"],
        input=broker_cert,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "IP Address:127.0.0.1" in text and "DNS:localhost" in text

    # Generated once: a second call keeps the CA and the SCRAM password.
    ca, password = material.ca.read_bytes(), tls.scram_password(folder)
    assert len(password) >= 20
    assert tls.ensure_material(folder).ca.read_bytes() == ca
    assert tls.scram_password(folder) == password
    props = tls.broker_properties(material)
    assert props["ssl.keystore.password"] == material.keystore_password_file.read_text().strip()
    assert props["listener.name.ssl.ssl.client.auth"] == "required"


def test_server_properties_on_another_address_bind_and_advertise_it() -> None:
    props = broker.server_properties(Listeners(9092, 40001), Path("/d"), host="10.1.2.3")
    assert props["listeners"] == "PLAINTEXT://10.1.2.3:9092,CONTROLLER://10.1.2.3:40001"
    assert props["advertised.listeners"] == "PLAINTEXT://10.1.2.3:9092"
    assert props["controller.quorum.bootstrap.servers"] == "10.1.2.3:40001"
