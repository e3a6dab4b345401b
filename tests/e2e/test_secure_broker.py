"""The real secure broker end to end: SASL_SSL (SCRAM-SHA-512) and mutual TLS.

One Apache Kafka started with ``--secure`` for the module (``local broker start
--secure``: a SASL_SSL listener with the SCRAM user made at format time, an SSL
listener that requires client certificates, a throw-away CA). The CLI produces, the
job runs on a MiniCluster or the standalone test cluster, the CLI tails, and the
predictions must equal River's. The SCRAM password (and the broker's keystore
password) must show up in no output, no log and no process's command line; wrong
credentials and wrong CAs must fail in seconds with a sentence naming the setting.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError

from stratiflow.io.kafka import client_options
from stratiflow.io.sources import river_events
from stratiflow.local import broker as local_broker
from stratiflow.local import tls
from stratiflow.local.paths import LocalPaths
from stratiflow.local.procs import free_port
from tests.e2e.cli import run_cli, write_config
from tests.e2e.conftest import KEEP_LOGS, instance_name
from tests.helpers import assert_matches_river, river_reference

pytestmark = pytest.mark.e2e
START_TS = 1_700_000_000_000
N_EVENTS = 300
PASSWORD_VAR = "STRATIFLOW_TEST_SCRAM_PASSWORD"
PYFLINK_LOG = Path(__import__("pyflink").__file__).parent / "log"


@dataclass
class SecureBroker:
    info: local_broker.BrokerInfo
    paths: LocalPaths
    #: Java client properties per listener (``bootstrap.servers`` included).
    settings: dict[str, dict[str, str]]
    #: The SCRAM user's password.
    password: str
    #: The broker's keystore password (in server.properties only).
    keystore_password: str
    material: tls.Material
    #: A CA that did not sign the broker's certificate.
    other_ca: Path

    @property
    def secrets(self) -> list[str]:
        return [self.password, self.keystore_password]

    def listener(self, name: str) -> tuple[str, dict[str, str]]:
        """``bootstrap.servers`` and the other properties of listener ``name``."""
        props = dict(self.settings[name])
        return props.pop("bootstrap.servers"), props

    def env_password_properties(self) -> tuple[str, dict[str, str]]:
        """SASL_SSL with the password from ``${STRATIFLOW_TEST_SCRAM_PASSWORD}``."""
        bootstrap, props = self.listener("SASL_SSL")
        for key in ("config.providers", "config.providers.file.class"):
            props.pop(key)
        props["sasl.jaas.config"] = (
            f'{tls.SCRAM_LOGIN} required username="{local_broker.SCRAM_USER}" '
            f'password="${{{PASSWORD_VAR}}}";'
        )
        return bootstrap, props

    def environ(self) -> dict[str, str]:
        return {**os.environ, PASSWORD_VAR: self.password}


@pytest.fixture(scope="module")
def secure_broker(local_paths: LocalPaths, tmp_path_factory: Any) -> Iterator[SecureBroker]:
    instance = instance_name("secure")
    local_broker.stop(instance, local_paths, purge=True)  # leftovers of a crashed run
    info = local_broker.start(free_port(), instance=instance, paths=local_paths, secure=True)
    try:
        material = tls.Material(local_paths.tls_dir(instance))
        other = tls.ensure_material(tmp_path_factory.mktemp("other-ca") / "tls")
        yield SecureBroker(
            info=info,
            paths=local_paths,
            settings=local_broker.client_settings(info, local_paths),
            password=tls.scram_password(material.folder),
            keystore_password=material.keystore_password_file.read_text().strip(),
            material=material,
            other_ca=other.ca,
        )
    finally:
        local_broker.stop(instance, local_paths, purge=True)
        if not KEEP_LOGS:
            local_paths.broker_log(instance).unlink(missing_ok=True)


# -- watching for leaks ---------------------------------------------------------------------


@dataclass
class CmdlineWatch:
    """Every process's command line, sampled every 100 ms while the block runs."""

    secrets: list[str]
    seen: set[str] = field(default_factory=set)
    leaks: set[str] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _sample(self) -> None:
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                raw = (entry / "cmdline").read_bytes()
            except OSError:
                continue  # gone already
            args = raw.replace(b"\0", b" ").decode(errors="replace")
            self.seen.add(args)
            if any(s in args for s in self.secrets):
                self.leaks.add(args)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self._sample()

    def __enter__(self) -> CmdlineWatch:
        self._thread = threading.Thread(target=self._run, name="cmdline-watch", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def saw(self, needle: str) -> bool:
        return any(needle in args for args in self.seen)


def _recent_files(folders: list[Path], since: float) -> dict[Path, str]:
    """The text of the files in ``folders`` written since ``since`` (epoch seconds)."""
    files = [f for d in folders if d.is_dir() for f in d.rglob("*") if f.is_file()]
    return {f: f.read_text(errors="replace") for f in files if f.stat().st_mtime >= since - 1}


def assert_no_leak(
    broker: SecureBroker,
    outputs: list[Any],
    watch: CmdlineWatch,
    log_dirs: list[Path],
    since: float,
) -> dict[Path, str]:
    """No secret in the CLI's output, the broker log, the Flink logs or a command line.

    Returns the logs written since ``since`` (for further checks).
    """
    for result in outputs:
        for secret in broker.secrets:
            assert secret not in result.stdout + result.stderr, result.args
    broker_log = broker.paths.broker_log(broker.info.instance).read_text(errors="replace")
    assert "sasl.enabled.mechanisms = [SCRAM-SHA-512]" in broker_log  # the log of this broker
    assert [s for s in broker.secrets if s in broker_log] == []
    logs = _recent_files([*log_dirs, broker.paths.log_dir], since)
    assert [f for f, text in logs.items() if any(s in text for s in broker.secrets)] == []
    assert watch.leaks == set()
    ours = str(broker.paths.broker_dir(broker.info.instance) / "server.properties")
    assert watch.saw(ours) and watch.saw("stratiflow"), "the watch missed the broker or CLI"
    return logs


def _kafka_clients_logged(logs: dict[Path, str], bootstrap: str) -> list[Path]:
    """The logs in which the job's Java Kafka clients printed their (masked) config."""
    return [
        f
        for f, text in logs.items()
        if f"bootstrap.servers = [{bootstrap}]" in text and "sasl.jaas.config = [hidden]" in text
    ]


# -- end to end -----------------------------------------------------------------------------


def _events() -> list[dict[str, Any]]:
    return list(river_events("phishing", start_ts=START_TS))[:N_EVENTS]


def _produce_submit_tail(
    config: Path, env: dict[str, str], *submit_args: str
) -> tuple[list[Any], list[dict[str, Any]]]:
    common = ["--config", str(config)]
    produced = run_cli(
        "produce", "phishing", *common, "--limit", str(N_EVENTS), "--start-ts", str(START_TS),
        "--quiet", env=env,
    )  # fmt: skip
    submitted = run_cli("submit", *common, "--bounded", *submit_args, env=env, timeout=300)
    tail = run_cli(
        "tail", "predictions", *common, "--from-beginning", "--json", "--idle-exit", "3", env=env
    )
    predictions = [json.loads(line) for line in tail.stdout.splitlines() if line.strip()]
    return [produced, submitted, tail], predictions


def _assert_parity(predictions: list[dict[str, Any]]) -> None:
    events = _events()
    assert len(predictions) == N_EVENTS  # every event once
    assert sorted(p["id"] for p in predictions) == sorted(e["id"] for e in events)
    assert assert_matches_river(predictions, river_reference(events)) == N_EVENTS


@pytest.mark.parametrize("credentials", ["env", "file"])
def test_scram_over_sasl_ssl_on_a_minicluster_matches_river_and_leaks_no_secret(
    secure_broker, tmp_path, credentials
):
    """The password from ``${ENV}`` in sasl.jaas.config, or from FileConfigProvider."""
    started = time.time()
    if credentials == "env":
        bootstrap, props = secure_broker.env_password_properties()
        env = secure_broker.environ()
    else:
        bootstrap, props = secure_broker.listener("SASL_SSL")
        env = dict(os.environ)  # the password only in its file
        assert secure_broker.password not in json.dumps(props)
    config = write_config(
        tmp_path / "job.yaml", bootstrap, f"scram-{credentials}-{tmp_path.name}",
        kafka={"properties": props},
    )  # fmt: skip
    with CmdlineWatch(secure_broker.secrets) as watch:
        outputs, predictions = _produce_submit_tail(config, env)
    _assert_parity(predictions)
    assert watch.saw("jobs.train_predict"), "the job ran while nobody watched"
    assert "'sasl.jaas.config': '***'" in outputs[1].stderr  # submit prints the settings
    logs = assert_no_leak(secure_broker, outputs, watch, [PYFLINK_LOG], started)
    assert _kafka_clients_logged(logs, bootstrap), "the job's Kafka clients log elsewhere"


def test_scram_over_sasl_ssl_on_a_standalone_cluster(secure_broker, flink_cluster, tmp_path):
    started = time.time()
    bootstrap, props = secure_broker.env_password_properties()
    config = write_config(
        tmp_path / "job.yaml", bootstrap, f"scram-cluster-{tmp_path.name}",
        kafka={"properties": props},
    )  # fmt: skip
    with CmdlineWatch(secure_broker.secrets) as watch:
        outputs, predictions = _produce_submit_tail(
            config,
            secure_broker.environ(),
            "--jobmanager",
            flink_cluster.jobmanager,
            "--flink-instance",
            flink_cluster.instance,
        )
    _assert_parity(predictions)
    assert watch.saw("org.apache.flink.client.cli.CliFrontend"), "flink run ran unwatched"
    cluster_logs = Path(flink_cluster.env["FLINK_LOG_DIR"])
    logs = assert_no_leak(secure_broker, outputs, watch, [cluster_logs, PYFLINK_LOG], started)
    # The TaskManager's Kafka clients logged their config where we looked (masked).
    assert any(f.is_relative_to(cluster_logs) for f in _kafka_clients_logged(logs, bootstrap))


def test_mutual_tls_on_a_minicluster_matches_river(secure_broker, tmp_path):
    started = time.time()
    bootstrap, props = secure_broker.listener("SSL")
    assert props["ssl.keystore.location"] == str(secure_broker.material.client_pem)
    config = write_config(
        tmp_path / "job.yaml", bootstrap, f"mtls-{tmp_path.name}", kafka={"properties": props}
    )
    with CmdlineWatch(secure_broker.secrets) as watch:
        outputs, predictions = _produce_submit_tail(config, dict(os.environ))
    _assert_parity(predictions)
    assert_no_leak(secure_broker, outputs, watch, [PYFLINK_LOG], started)


# -- refusals -------------------------------------------------------------------------------


def _metadata(bootstrap: str, **options: Any) -> list[str] | None:
    """The topic list, or ``None`` when the broker gives no metadata to this client."""
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            request_timeout_ms=3000,
            bootstrap_timeout_ms=4000,
            **options,
        )
    except KafkaError:
        return None
    try:
        return list(admin.list_topics())
    except KafkaError:
        return None
    finally:
        admin.close()


@pytest.mark.parametrize("listener", ["SASL_SSL", "SSL"])
def test_plaintext_clients_get_no_metadata_from_the_secure_listeners(secure_broker, listener):
    bootstrap, props = secure_broker.listener(listener)
    assert _metadata(bootstrap, **client_options(props)) is not None  # configured: served
    assert _metadata(bootstrap, security_protocol="PLAINTEXT") is None


def test_a_client_without_a_certificate_is_refused_by_the_mtls_listener(secure_broker, tmp_path):
    bootstrap, props = secure_broker.listener("SSL")
    no_cert = {k: v for k, v in props.items() if not k.startswith("ssl.keystore.")}
    assert _metadata(bootstrap, **client_options(no_cert)) is None
    # The CLI says so at once, naming the setting to add.
    config = write_config(
        tmp_path / "job.yaml", bootstrap, f"nocert-{tmp_path.name}", kafka={"properties": no_cert}
    )
    start = time.monotonic()
    result = run_cli(
        "produce", "phishing", "--limit", "5", "--config", str(config), "--quiet", check=False
    )
    assert time.monotonic() - start < 30
    assert result.returncode == 2, result.stderr
    assert "requires a client certificate" in result.stderr
    assert "ssl.keystore.location" in result.stderr and "Traceback" not in result.stderr


FAULTS = {
    # fault: (the setting the one sentence must name, what it says)
    "password": ("sasl.jaas.config", "refused the login"),
    "ca": ("ssl.truststore.location", "is not trusted"),
}


@pytest.mark.parametrize("command", ["produce", "tail", "submit"])
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_wrong_password_or_ca_fails_fast_with_one_sentence(
    secure_broker, tmp_path, fault, command
):
    bootstrap, props = secure_broker.env_password_properties()
    env = secure_broker.environ()
    if fault == "password":
        env[PASSWORD_VAR] = "not-" + secure_broker.password
    else:
        props["ssl.truststore.location"] = str(secure_broker.other_ca)
    config = write_config(
        tmp_path / "job.yaml", bootstrap, f"wrong-{fault}-{command}-{tmp_path.name}",
        kafka={"properties": props},
    )  # fmt: skip
    args = {
        "produce": ["produce", "phishing", "--limit", "5", "--quiet"],
        "tail": ["tail", "events", "--from-beginning", "--idle-exit", "2"],
        "submit": ["submit", "--bounded"],
    }[command]
    start = time.monotonic()
    result = run_cli(*args, "--config", str(config), env=env, check=False, timeout=120)
    took = time.monotonic() - start
    setting, phrase = FAULTS[fault]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-3000:]
    assert len(errors) == 1 and setting in errors[0] and phrase in errors[0], result.stderr
    assert "Traceback" not in result.stderr and "Exception" not in result.stderr
    assert all(s not in result.stdout + result.stderr for s in secure_broker.secrets)
    assert env[PASSWORD_VAR] not in result.stdout + result.stderr
    assert took < 30, took
