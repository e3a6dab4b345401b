"""Checks before a job is submitted, so a mistake fails in seconds with a sentence,
not minutes later with a Java stack trace: the broker answers, the input topics
exist, the connector jars are there (the config and the model class were
already checked when the config was loaded).

>>> from stratiflow.config import load_config
>>> try:
...     check_kafka(load_config({"kafka": {"bootstrap_servers": "127.0.0.1:1"}}), timeout_s=1)
... except PreflightError as exc:
...     print(str(exc).split(" (")[0])
cannot reach the Kafka broker at 127.0.0.1:1
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Mapping
from pathlib import Path

from stratiflow.config import Config
from stratiflow.kafka_io import client_options

#: The jars every job ships (fetched by ``stratiflow local setup``).
REQUIRED_JARS = ("flink-connector-kafka.jar", "kafka-clients.jar", "stratiflow-connectors.jar")


class PreflightError(RuntimeError):
    """The job cannot run as configured; the message says why and what to do."""


def check_jars(lib: Path) -> list[Path]:
    """The required jars in ``lib``; :class:`PreflightError` naming any that are missing."""
    missing = [name for name in REQUIRED_JARS if not (lib / name).is_file()]
    if missing:
        raise PreflightError(
            f"missing connector jars in {lib}: {', '.join(missing)}; "
            "run `make setup` (or `stratiflow local setup`)"
        )
    return [lib / name for name in REQUIRED_JARS]


def check_kafka(cfg: Config, *, timeout_s: float = 10.0) -> list[str]:
    """Raise :class:`PreflightError` when the broker is unreachable or an input topic is
    missing; return warnings (output topics that do not exist yet)."""
    from kafka.admin import KafkaAdminClient
    from kafka.errors import KafkaError

    servers = cfg.kafka.bootstrap_servers
    timeout_ms = int(timeout_s * 1000)
    check_tls(servers, cfg.kafka.properties, timeout_s=timeout_s)
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=servers,
            request_timeout_ms=timeout_ms,
            bootstrap_timeout_ms=timeout_ms,
            **client_options(cfg.kafka.properties),
        )
    except KafkaError as exc:
        raise PreflightError(
            f"cannot reach the Kafka broker at {servers} ({type(exc).__name__}); is it running? "
            "(`stratiflow local broker start` for a local one)"
        ) from None
    try:
        existing = set(admin.list_topics())
    except KafkaError as exc:
        raise PreflightError(
            f"the Kafka broker at {servers} did not list its topics ({type(exc).__name__})"
        ) from None
    finally:
        admin.close()
    inputs = [cfg.topics.events] + ([cfg.topics.labels] if cfg.labels.source == "topic" else [])
    missing = [t for t in inputs if t not in existing]
    if missing:
        raise PreflightError(
            f"input topic {', '.join(repr(t) for t in missing)} does not exist on {servers}; "
            "create it, or produce to it first (`stratiflow produce ... --topic NAME`)"
        )
    outputs = [cfg.topics.predictions, cfg.topics.metrics, cfg.topics.dead_letters]
    if cfg.sampling.strategy != "none":
        outputs.append(cfg.topics.sampling_stats)
    return [
        f"output topic {t!r} does not exist yet; the broker must create it on first write"
        for t in outputs
        if t not in existing
    ]


def check_tls(servers: str, properties: Mapping[str, str], *, timeout_s: float = 10.0) -> None:
    """With ``security.protocol`` SSL or SASL_SSL, shake hands with the first bootstrap
    server that accepts a connection, with the TLS settings the CLI's clients use, and raise
    :class:`PreflightError` saying why when that fails (an untrusted certificate, a
    plaintext port, a key store that does not load). A client would otherwise retry until
    it times out. Unreachable servers are left to the caller's own check."""
    options = client_options(properties)
    if not str(options.get("security_protocol", "")).upper().endswith("SSL"):
        return
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # as kafka-python builds it
    ctx.check_hostname = options.get("ssl_check_hostname", True)
    try:
        if options.get("ssl_cafile"):
            ctx.load_verify_locations(options["ssl_cafile"])
        else:
            ctx.load_default_certs()
    except (OSError, ssl.SSLError) as exc:
        raise PreflightError(
            f"cannot load the CA file ssl.truststore.location={options['ssl_cafile']} "
            f"({getattr(exc, 'strerror', None) or exc}); it must be a PEM file"
        ) from None
    if options.get("ssl_certfile"):
        try:
            ctx.load_cert_chain(
                options["ssl_certfile"], options.get("ssl_keyfile"), options.get("ssl_password")
            )
        except (OSError, ssl.SSLError):
            raise PreflightError(
                f"cannot load the key store ssl.keystore.location={options['ssl_certfile']}: "
                "it must be a PEM file with the private key and certificate, and "
                "ssl.key.password must decrypt the key"
            ) from None
    for server in servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            sock = socket.create_connection((host, int(port)), timeout=timeout_s)
        except (OSError, ValueError):
            continue
        try:
            with ctx.wrap_socket(sock, server_hostname=host):
                return
        except ssl.SSLCertVerificationError as exc:
            raise PreflightError(
                f"TLS: the certificate of the Kafka broker at {host}:{port} is not trusted "
                f"({exc.verify_message}); check kafka.properties ssl.truststore.location (a PEM "
                "file with the CA that signed the broker's certificate) and "
                "ssl.endpoint.identification.algorithm"
            ) from None
        except (OSError, ssl.SSLError) as exc:
            raise PreflightError(
                f"TLS handshake with the Kafka broker at {host}:{port} failed "
                f"({type(exc).__name__}: {exc}); does it serve TLS on that port? "
                f"(security.protocol is {options['security_protocol']})"
            ) from None
        finally:
            sock.close()
