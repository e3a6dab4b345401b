"""Kafka over TLS end to end: CLI produce, the job on a MiniCluster, CLI tail.

The broker is a plain Tansu behind a TLS-terminating proxy that requires a client
certificate (mutual TLS), so nothing reaches the broker without the configured trust
store, key store and key password. The trust store's path comes from the environment
(``${VAR}``), the key password from the environment in the job and from a file
(Kafka's ``FileConfigProvider``) in the CLI-only test; the password is a sentinel that
must never show up in any output or log.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError

from stratiflow.kafka_io import client_options
from stratiflow.local.paths import LocalPaths
from stratiflow.local.procs import free_port, port_accepts
from stratiflow.sources import river_events
from tests.e2e.cli import run_cli, write_config
from tests.e2e.tls_proxy import (
    TlsProxy,
    client_keystore,
    loopback_clients_of,
    make_ca,
    server_cert,
)
from tests.helpers import assert_matches_river, river_reference

pytestmark = pytest.mark.e2e
START_TS = 1_700_000_000_000
#: The client key's password: a secret that must never be printed or logged.
SENTINEL = f"tls-sentinel-{uuid.uuid4().hex}"
CA_VAR = "STRATIFLOW_TEST_TLS_CA"
PASSWORD_VAR = "STRATIFLOW_TEST_TLS_KEY_PASSWORD"


@dataclass
class TlsBroker:
    plain_port: int
    proxy: TlsProxy
    ca: Path
    other_ca: Path
    keystore: Path
    #: Local ports of every connection seen to the plain port while the module ran.
    seen_clients: set[int]

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.proxy.listen_port}"

    def properties(self, **overrides: str) -> dict[str, str]:
        """Java client properties for this broker, secrets referenced from the environment."""
        return {
            "security.protocol": "SSL",
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": "${" + CA_VAR + "}",
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(self.keystore),
            "ssl.key.password": "${" + PASSWORD_VAR + "}",
            "ssl.endpoint.identification.algorithm": "https",
            **overrides,
        }

    def environ(self, ca: Path | None = None) -> dict[str, str]:
        return {**os.environ, CA_VAR: str(ca or self.ca), PASSWORD_VAR: SENTINEL}


@pytest.fixture(scope="module")
def tls_broker(local_paths: LocalPaths, tmp_path_factory: Any) -> Iterator[TlsBroker]:
    """Tansu on a plain port that advertises the TLS proxy's port, and the proxy."""
    tmp = tmp_path_factory.mktemp("tls")
    ca = make_ca(tmp / "ca")
    cert, key = server_cert(ca)
    keystore = client_keystore(ca, SENTINEL)
    other_ca = make_ca(tmp / "other-ca", "not-the-brokers-ca")
    plain, tls = free_port(), free_port()
    with (tmp / "tansu.log").open("wb") as log:
        broker = subprocess.Popen(
            [
                str(local_paths.tansu),
                "broker",
                "--listener-url",
                f"tcp://127.0.0.1:{plain}",
                "--advertised-listener-url",
                f"tcp://127.0.0.1:{tls}",
                "--storage-engine",
                "memory://tansu/",
            ],
            env={**os.environ, "RUST_LOG": "warn"},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    proxy = None
    stop = threading.Event()
    seen: set[int] = set()

    def watch() -> None:  # who connects to the plain port, sampled every 0.1 s
        while not stop.wait(0.1):
            seen.update(loopback_clients_of(plain))

    watcher = threading.Thread(target=watch, name="plain-port-watch", daemon=True)
    try:
        deadline = time.monotonic() + 20
        while not port_accepts(plain):
            assert broker.poll() is None, (tmp / "tansu.log").read_text()
            assert time.monotonic() < deadline, "Tansu did not start"
            time.sleep(0.05)
        proxy = TlsProxy(tls, plain, cert, key, client_ca=ca.cert).start()
        watcher.start()
        yield TlsBroker(plain, proxy, ca.cert, other_ca.cert, keystore, seen)
    finally:
        stop.set()
        if proxy is not None:
            proxy.stop()
        broker.terminate()
        try:
            broker.wait(10)
        except subprocess.TimeoutExpired:
            broker.kill()
            broker.wait()


def _admin_fails(bootstrap: str, **options: Any) -> bool:
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            request_timeout_ms=3000,
            bootstrap_timeout_ms=3000,
            **options,
        )
    except KafkaError:
        return True
    try:
        admin.list_topics()
    except KafkaError:
        return True
    finally:
        admin.close()
    return False


def test_clients_without_tls_or_a_client_certificate_are_refused(tls_broker):
    before = tls_broker.proxy.accepted
    assert _admin_fails(tls_broker.bootstrap)  # plaintext
    no_certificate = client_options(
        {"security.protocol": "SSL", "ssl.truststore.location": str(tls_broker.ca)}
    )
    assert _admin_fails(tls_broker.bootstrap, **no_certificate)
    assert tls_broker.proxy.accepted == before  # neither got through to the broker


def _log_files() -> list[Path]:
    """Where a run leaves logs: stratiflow's log dir and PyFlink's (the MiniCluster's)."""
    from stratiflow.local.paths import local_paths

    spec = importlib.util.find_spec("pyflink")
    assert spec is not None and spec.submodule_search_locations
    folders = [local_paths().log_dir, Path(next(iter(spec.submodule_search_locations))) / "log"]
    if os.environ.get("FLINK_LOG_DIR"):
        folders.append(Path(os.environ["FLINK_LOG_DIR"]))
    return [f for d in folders if d.is_dir() for f in d.iterdir() if f.is_file()]


def test_produce_job_and_tail_over_tls_match_river_and_leak_no_secret(tls_broker, tmp_path):
    started = time.time()
    prefix = f"tls-{tmp_path.name}"
    config = write_config(
        tmp_path / "job.yaml",
        tls_broker.bootstrap,
        prefix,
        kafka={"properties": tls_broker.properties()},
    )
    env = tls_broker.environ()
    outputs = [
        run_cli(
            "produce",
            "phishing",
            "--config",
            str(config),
            "--start-ts",
            str(START_TS),
            "--quiet",
            env=env,
        ),
        run_cli("submit", "--config", str(config), "--bounded", env=env, timeout=180),
    ]
    tail = run_cli(
        "tail", "predictions", "--from-beginning", "--json", "--idle-exit", "3",
        "--config", str(config), env=env,
    )  # fmt: skip
    outputs.append(tail)

    predictions = [json.loads(line) for line in tail.stdout.splitlines() if line.strip()]
    events = list(river_events("phishing", start_ts=START_TS))
    assert len(predictions) == len(events) == 1250
    assert sorted(p["id"] for p in predictions) == sorted(e["id"] for e in events)
    assert assert_matches_river(predictions, river_reference(events)) == 1250

    # The password is never printed; the settings that are not secret are.
    for result in outputs:
        assert SENTINEL not in result.stdout + result.stderr
    assert "'ssl.key.password': '***'" in outputs[1].stderr
    assert str(tls_broker.ca) in outputs[1].stderr  # ${VAR} was expanded
    # ...nor logged: not by the Kafka clients in the job, and not by Beam, which logs the
    # Python workers' whole environment (where the password came from) into the Flink log.
    logs = [f for f in _log_files() if f.stat().st_mtime >= started - 1]
    texts = {f: f.read_text(errors="replace") for f in logs}
    assert [f for f, text in texts.items() if SENTINEL in text] == []
    job_logs = [f for f, t in texts.items() if f"bootstrap.servers = [{tls_broker.bootstrap}]" in t]
    assert job_logs, "the job's Kafka clients logged their config somewhere else"
    assert any("ssl.key.password = [hidden]" in texts[f] for f in job_logs)

    # Every connection to the plain port came from the proxy (none bypassed TLS).
    assert tls_broker.seen_clients, "the watcher saw no connection at all"
    assert tls_broker.seen_clients <= tls_broker.proxy.upstream_ports


def test_key_password_from_a_file_reaches_the_cli_clients(tls_broker, tmp_path):
    secrets = tmp_path / "kafka-secrets.properties"
    secrets.write_text(f"# read by FileConfigProvider\nkey.password={SENTINEL}\n")
    provider = "org.apache.kafka.common.config.provider.FileConfigProvider"
    properties = tls_broker.properties(
        **{
            "config.providers": "file",
            "config.providers.file.class": provider,
            "ssl.key.password": "${file:" + str(secrets) + ":key.password}",
        }
    )
    prefix = f"tls-file-{tmp_path.name}"
    config = write_config(
        tmp_path / "job.yaml", tls_broker.bootstrap, prefix, kafka={"properties": properties}
    )
    env = {**os.environ, CA_VAR: str(tls_broker.ca)}  # no password in the environment
    produced = run_cli(
        "produce", "phishing", "--limit", "20", "--config", str(config), "--quiet", env=env
    )
    tail = run_cli(
        "tail", "events", "--from-beginning", "--json", "--idle-exit", "2",
        "--config", str(config), env=env,
    )  # fmt: skip
    assert len(tail.stdout.splitlines()) == 20
    assert SENTINEL not in produced.stderr + tail.stderr + tail.stdout


@pytest.mark.parametrize("command", ["produce", "submit"])
def test_a_wrong_ca_fails_fast_with_a_sentence(tls_broker, tmp_path, command):
    config = write_config(
        tmp_path / "job.yaml",
        tls_broker.bootstrap,
        f"tls-wrong-ca-{tmp_path.name}",
        kafka={"properties": tls_broker.properties()},
    )
    args = ["produce", "phishing", "--limit", "5"] if command == "produce" else ["submit"]
    start = time.monotonic()
    result = run_cli(
        *args,
        "--config",
        str(config),
        env=tls_broker.environ(ca=tls_broker.other_ca),
        check=False,
        timeout=120,
    )
    took = time.monotonic() - start
    assert result.returncode == 2, result.stderr
    assert "certificate of the Kafka broker at" in result.stderr
    assert "is not trusted" in result.stderr and "ssl.truststore.location" in result.stderr
    assert "Traceback" not in result.stderr and "Exception" not in result.stderr
    assert SENTINEL not in result.stdout + result.stderr
    assert took < 20, took
