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
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError
from kafka.net.sasl.scram import ScramClient  # the SCRAM client kafka-python's own clients use

from stratiflow.config import Config
from stratiflow.io.kafka import client_options

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

    servers = cfg.kafka.bootstrap_servers
    timeout_ms = int(timeout_s * 1000)
    check_reachable(servers, timeout_s=timeout_s)
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
    if cfg.drift.detector is not None or cfg.candidates:
        outputs.append(cfg.topics.model_events)
    if cfg.active.strategy != "none":
        outputs.append(cfg.topics.label_requests)
    return [
        f"output topic {t!r} does not exist yet; the broker must create it on first write"
        for t in outputs
        if t not in existing
    ]


def _connect_first(servers: str, timeout_s: float) -> tuple[socket.socket, str, int] | list[str]:
    """A TCP connection to the first bootstrap server that accepts one (with its host
    and port), or why each refused."""
    errors = []
    for server in servers.split(","):
        host, _, port = server.strip().rpartition(":")
        host = host.strip("[]")
        try:
            return socket.create_connection((host, int(port)), timeout=timeout_s), host, int(port)
        except (OSError, ValueError) as exc:
            errors.append(f"{server.strip()}: {getattr(exc, 'strerror', None) or exc}")
    return errors


def check_reachable(servers: str, *, timeout_s: float = 10.0) -> None:
    """Raise :class:`PreflightError` at once when no bootstrap server accepts a TCP
    connection (a Kafka client would retry until its timeout before saying so)."""
    connected = _connect_first(servers, timeout_s)
    if isinstance(connected, tuple):
        connected[0].close()
        return
    if len(connected) == 1:  # one server: its address is in the sentence already
        connected = [connected[0].split(": ", 1)[-1]]
    raise PreflightError(
        f"cannot reach the Kafka broker at {servers} ({'; '.join(connected)}); is it running? "
        "Start a local one with `stratiflow local broker start`, or point --bootstrap-servers "
        "(kafka.bootstrap_servers) at yours"
    )


def check_broker(
    servers: str, properties: Mapping[str, str] | None = None, *, timeout_s: float = 10.0
) -> None:
    """:func:`check_reachable`, then :func:`check_tls`: what every command that talks to
    the broker checks first, so that a broker that is down or a wrong TLS setting fails
    in seconds with one sentence instead of after a client's retries.

    >>> try:
    ...     check_broker("127.0.0.1:1", timeout_s=1)
    ... except PreflightError as exc:
    ...     print(str(exc).split(" (")[0])
    cannot reach the Kafka broker at 127.0.0.1:1
    """
    check_reachable(servers, timeout_s=timeout_s)
    check_tls(servers, properties or {}, timeout_s=timeout_s)


def check_tls(servers: str, properties: Mapping[str, str], *, timeout_s: float = 10.0) -> None:
    """With ``security.protocol`` SSL or SASL_SSL, shake hands with the first bootstrap
    server that accepts a connection, with the TLS settings the CLI's clients use, and raise
    :class:`PreflightError` saying why when that fails (an untrusted certificate, a
    plaintext port, a key store that does not load, no client certificate where the broker
    requires one, a SASL login the broker refuses). A client would otherwise retry until
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
    connected = _connect_first(servers, timeout_s)
    if not isinstance(connected, tuple):
        return  # unreachable: the caller's own check says so
    sock, host, port = connected
    try:
        with ctx.wrap_socket(sock, server_hostname=host) as tls:
            check_login(tls, f"{host}:{port}", options)
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


# -- after the handshake: client certificate and SASL login ---------------------------------

#: SASL mechanisms :func:`check_login` can try (others are left to the client).
_SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_API_VERSIONS, _SASL_HANDSHAKE, _SASL_AUTHENTICATE = 18, 17, 36


def _frame(api_key: int, version: int, body: bytes, correlation_id: int = 1) -> bytes:
    """A Kafka request (header v1, client id ``stratiflow-preflight``), size-prefixed.

    >>> _frame(18, 0, b"")[:12].hex()
    '0000001e0012000000000001'
    """
    client = b"stratiflow-preflight"
    header = struct.pack(">hhih", api_key, version, correlation_id, len(client)) + client
    return struct.pack(">i", len(header) + len(body)) + header + body


def _read_exactly(sock: Any, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        data += chunk
    return data


def _call(sock: Any, api_key: int, version: int, body: bytes) -> bytes:
    """Send one request and return the response body (after the correlation id)."""
    sock.sendall(_frame(api_key, version, body))
    (size,) = struct.unpack(">i", _read_exactly(sock, 4))
    return _read_exactly(sock, size)[4:]


def _bytes(data: bytes) -> bytes:
    return struct.pack(">i", len(data)) + data


def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack(">h", len(raw)) + raw


def _sasl_error(response: bytes) -> tuple[int, str | None, bytes]:
    """SaslAuthenticate v1 response: error code, error message, auth bytes."""
    code, length = struct.unpack(">hh", response[:4])
    pos = 4 + max(length, 0)
    message = response[4:pos].decode(errors="replace") if length >= 0 else None
    (size,) = struct.unpack(">i", response[pos : pos + 4])
    return code, message, response[pos + 4 : pos + 4 + max(size, 0)]


def sasl_login(sock: Any, mechanism: str, username: str, password: str) -> str | None:
    """Log in over ``sock`` (SaslHandshake v1, SaslAuthenticate v1) as the client would.

    Returns why the broker refused (its own words, never the password), or ``None``
    when it accepted the login.
    """
    response = _call(sock, _SASL_HANDSHAKE, 1, _string(mechanism))
    code, count = struct.unpack(">hi", response[:6])
    enabled, pos = [], 6
    for _ in range(max(count, 0)):
        (length,) = struct.unpack(">h", response[pos : pos + 2])
        enabled.append(response[pos + 2 : pos + 2 + length].decode())
        pos += 2 + length
    if code != 0 or mechanism not in enabled:
        return f"it does not enable sasl.mechanism {mechanism} (it enables {', '.join(enabled)})"
    if mechanism == "PLAIN":
        tokens = [b"\0" + username.encode() + b"\0" + password.encode()]
        scram = None
    else:
        scram = ScramClient(username, password, mechanism)
        tokens = [scram.first_message()]
    while tokens:
        code, message, reply = _sasl_error(_call(sock, _SASL_AUTHENTICATE, 1, _bytes(tokens.pop())))
        if code != 0:
            return message or f"error code {code}"
        if scram is not None and not scram.stored_key:
            scram.process_server_first_message(reply)
            tokens.append(scram.final_message())
    return None


def check_login(sock: Any, server: str, options: Mapping[str, Any]) -> None:
    """After the TLS handshake: one request, so that a broker that wants a client
    certificate (TLS 1.3 says so only now) or refuses the SASL login is explained."""
    protocol = str(options.get("security_protocol", "")).upper()
    mechanism = str(options.get("sasl_mechanism", "GSSAPI")).upper()
    username = options.get("sasl_plain_username")
    password = options.get("sasl_plain_password")
    try:
        if protocol != "SASL_SSL":
            _call(sock, _API_VERSIONS, 0, b"")
            return
        if mechanism not in _SASL_MECHANISMS or username is None or password is None:
            return  # OAUTHBEARER, GSSAPI...: the client's business
        refused = sasl_login(sock, mechanism, username, password)
    except ssl.SSLError as exc:
        alert = str(exc).upper()
        if "CERTIFICATE_REQUIRED" not in alert and "BAD_CERTIFICATE" not in alert:
            return  # left to the client, which says more than a guess here would
        if not options.get("ssl_certfile"):
            raise PreflightError(
                f"TLS: the Kafka broker at {server} requires a client certificate; set "
                "kafka.properties ssl.keystore.location (a PEM file with the client's key and "
                "certificate, ssl.keystore.type PEM)"
            ) from None
        raise PreflightError(
            f"TLS: the Kafka broker at {server} refused the client certificate in "
            f"kafka.properties ssl.keystore.location={options['ssl_certfile']}; it must be "
            "signed by a CA the broker trusts"
        ) from None
    except (OSError, ValueError, struct.error):
        return
    if refused is not None:
        raise PreflightError(
            f"SASL: the Kafka broker at {server} refused the login as {username!r} "
            f"({refused}); check the username and password in kafka.properties "
            f"sasl.jaas.config and sasl.mechanism"
        )
