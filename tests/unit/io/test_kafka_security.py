"""Kafka security settings: the Java properties → kafka-python translation, file-based
credentials, secrets kept out of the environment the Flink cluster logs, TLS preflight."""

from __future__ import annotations

import base64
import hashlib
import hmac
import socket
import struct
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from stratiflow.config import ConfigError, load_config, redact
from stratiflow.io.kafka import client_options, resolve_providers, secret_environ
from stratiflow.io.preflight import PreflightError, check_kafka, check_login, check_tls, sasl_login

FILE_PROVIDER = "org.apache.kafka.common.config.provider.FileConfigProvider"
DIR_PROVIDER = "org.apache.kafka.common.config.provider.DirectoryConfigProvider"


def test_tls_properties_map_to_kafka_python_options():
    options = client_options(
        {
            "security.protocol": "SSL",
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": "/tls/ca.pem",
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": "/tls/client.pem",
            "ssl.key.password": "pw",
            "ssl.endpoint.identification.algorithm": "https",
            "ssl.enabled.protocols": "TLSv1.3",  # Java only: skipped, not guessed
        }
    )
    assert options == {
        "security_protocol": "SSL",
        "ssl_cafile": "/tls/ca.pem",
        "ssl_certfile": "/tls/client.pem",
        "ssl_password": "pw",
        "ssl_check_hostname": True,
    }


@pytest.mark.parametrize(("algorithm", "check"), [("", False), ("HTTPS", True), (" ", False)])
def test_endpoint_identification_turns_hostname_checks_on_or_off(algorithm, check):
    options = client_options({"ssl.endpoint.identification.algorithm": algorithm})
    assert options["ssl_check_hostname"] is check


def test_stores_without_a_type_are_read_as_pem():
    options = client_options({"ssl.truststore.location": "/ca.pem"})
    assert options == {"ssl_cafile": "/ca.pem"}


@pytest.mark.parametrize(
    ("store", "kind"),
    [("ssl.truststore", "JKS"), ("ssl.keystore", "PKCS12")],
)
def test_stores_kafka_python_cannot_read_are_refused_with_the_field(store, kind):
    with pytest.raises(ConfigError) as exc:
        client_options({f"{store}.location": "/store", f"{store}.type": kind})
    assert exc.value.path == f"kafka.properties.{store}.type"
    assert "PEM" in str(exc.value)


def test_a_type_without_a_location_is_harmless():
    assert client_options({"ssl.truststore.type": "JKS"}) == {}


def test_sasl_credentials_come_out_of_the_jaas_config():
    options = client_options(
        {
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "SCRAM-SHA-256",
            "sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule "
            'required username="alice" password="s3cret";',
        }
    )
    assert options["sasl_plain_username"] == "alice"
    assert options["sasl_plain_password"] == "s3cret"
    assert options["sasl_mechanism"] == "SCRAM-SHA-256"


# -- credentials from a file (Kafka's config providers) -----------------------------------


def _providers(**classes: str) -> dict[str, str]:
    return {
        "config.providers": ",".join(classes),
        **{f"config.providers.{name}.class": cls for name, cls in classes.items()},
    }


def test_file_provider_references_are_resolved_for_kafka_python(tmp_path):
    secrets = tmp_path / "kafka.properties"
    secrets.write_text("# comment\n! also a comment\nkey.password = p4ss\nuser: bob\n\n")
    props = {
        **_providers(file=FILE_PROVIDER),
        "ssl.keystore.location": "/tls/client.pem",
        "ssl.key.password": f"${{file:{secrets}:key.password}}",
        "sasl.jaas.config": f'x required username="${{file:{secrets}:user}}" password="p";',
    }
    options = client_options(props)
    assert options["ssl_password"] == "p4ss"
    assert options["sasl_plain_username"] == "bob"


def test_directory_provider_reads_a_whole_file(tmp_path):
    (tmp_path / "key-password").write_text("from-a-mounted-secret")
    props = {
        **_providers(secrets=DIR_PROVIDER),
        "ssl.key.password": f"${{secrets:{tmp_path}:key-password}}",
    }
    assert resolve_providers(props)["ssl.key.password"] == "from-a-mounted-secret"


def test_references_to_other_or_unlisted_providers_are_left_alone(tmp_path):
    props = {
        "config.providers.file.class": FILE_PROVIDER,  # not listed in config.providers
        "ssl.key.password": f"${{file:{tmp_path}/x:pw}}",
        "sasl.jaas.config": "${vault:kafka:jaas}",
    }
    assert resolve_providers(props) == props


def test_a_missing_key_or_file_names_the_property_not_the_secret(tmp_path):
    secrets = tmp_path / "kafka.properties"
    secrets.write_text("other=hunter2\n")
    base = _providers(file=FILE_PROVIDER)
    with pytest.raises(ConfigError) as exc:
        client_options({**base, "ssl.key.password": f"${{file:{secrets}:key.password}}"})
    assert exc.value.path == "kafka.properties.ssl.key.password"
    assert "no key 'key.password'" in str(exc.value) and "hunter2" not in str(exc.value)
    with pytest.raises(ConfigError, match=r"cannot read .*nowhere"):
        client_options({**base, "ssl.key.password": f"${{file:{tmp_path}/nowhere:pw}}"})


def test_config_loading_leaves_provider_references_for_the_java_client():
    ref = "${file:/etc/kafka/secrets.properties:key.password}"
    cfg = load_config(
        {"kafka": {"properties": {"ssl.key.password": ref, "ssl.truststore.location": "${CA}"}}},
        environ={"CA": "/tls/ca.pem"},
    )
    assert cfg.kafka.properties == {
        "ssl.key.password": ref,
        "ssl.truststore.location": "/tls/ca.pem",
    }


# -- secrets never printed, nor handed to the Flink cluster's environment -----------------


def test_redact_masks_passwords_and_inline_private_keys_only():
    props = {
        "security.protocol": "SSL",
        "ssl.truststore.location": "/tls/ca.pem",
        "ssl.keystore.location": "/tls/client.pem",
        "ssl.keystore.password": "a",
        "ssl.key.password": "b",
        "ssl.keystore.key": "-----BEGIN ENCRYPTED PRIVATE KEY-----...",
        "ssl.keystore.certificate.chain": "-----BEGIN CERTIFICATE-----...",
        "sasl.mechanism": "PLAIN",
        "sasl.jaas.config": 'x required password="c";',
    }
    masked = {k for k, v in redact(props).items() if v == "***"}
    assert masked == {
        "ssl.keystore.password",
        "ssl.key.password",
        "ssl.keystore.key",
        "sasl.jaas.config",
    }


def test_secret_environ_finds_whole_and_quoted_secrets_only():
    props = {
        "security.protocol": "SASL_SSL",
        "ssl.key.password": "key-pw-123",
        "sasl.jaas.config": 'PlainLoginModule required username="svc" password="jaas-pw";',
        "ssl.truststore.location": "/tls/ca.pem",
    }
    environ = {
        "KEY_PW": "key-pw-123",
        "JAAS_PW": "jaas-pw",
        "KAFKA_USER": "svc",  # quoted inside a secret value: goes too
        "CA": "/tls/ca.pem",  # not a secret
        "PROTO": "SASL_SSL",
        "EMPTY": "",
        "PART": "pw",  # a substring, not a whole quoted value
    }
    assert sorted(secret_environ(props, environ)) == ["JAAS_PW", "KAFKA_USER", "KEY_PW"]


# -- TLS preflight --------------------------------------------------------------------------


@pytest.fixture
def plaintext_server() -> Iterator[int]:
    """A loopback TCP server that answers nothing and hangs up: not TLS."""
    server = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(2)
    server.close()


def test_tls_check_does_nothing_without_ssl(plaintext_server):
    check_tls(f"127.0.0.1:{plaintext_server}", {"security.protocol": "SASL_PLAINTEXT"})


def test_tls_check_explains_a_port_that_does_not_speak_tls(plaintext_server):
    with pytest.raises(PreflightError, match=r"TLS handshake with the Kafka broker at .* failed"):
        check_tls(f"127.0.0.1:{plaintext_server}", {"security.protocol": "SSL"}, timeout_s=2)


def test_tls_check_leaves_an_unreachable_broker_to_the_connection_check():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    check_tls(f"127.0.0.1:{port}", {"security.protocol": "SSL"}, timeout_s=1)


def test_tls_check_explains_unreadable_stores(tmp_path):
    with pytest.raises(PreflightError, match=r"cannot load the CA file .*nowhere\.pem"):
        check_tls(
            "127.0.0.1:1",
            {"security.protocol": "SSL", "ssl.truststore.location": str(tmp_path / "nowhere.pem")},
        )
    garbage = tmp_path / "client.pem"
    garbage.write_text("not a key store")
    props = {
        "security.protocol": "SSL",
        "ssl.keystore.location": str(garbage),
        "ssl.key.password": "hunter2",
    }
    with pytest.raises(PreflightError, match="cannot load the key store") as exc:
        check_tls("127.0.0.1:1", props)
    assert "hunter2" not in str(exc.value)


def test_submit_preflight_runs_the_tls_check_first(plaintext_server):
    cfg = load_config(
        {
            "kafka": {
                "bootstrap_servers": f"127.0.0.1:{plaintext_server}",
                "properties": {"security.protocol": "SSL"},
            }
        },
        check_model=False,
    )
    with pytest.raises(PreflightError, match="does it serve TLS on that port"):
        check_kafka(cfg, timeout_s=2)


def test_the_producer_takes_enable_idempotence_from_the_properties():
    from stratiflow.io.kafka import producer

    for value, expected in (("false", False), ("true", True)):
        made = producer("127.0.0.1:1", {"enable.idempotence": value}, api_version=(3, 0))
        try:
            assert made.config["enable_idempotence"] is expected
        finally:
            made.close(timeout=0)


# -- SASL login preflight -------------------------------------------------------------------


def _fake_sasl_broker(sock: socket.socket, mechanisms: list[str], password: str) -> None:
    """Answer SaslHandshake v1 and SaslAuthenticate v1 like Kafka, for user ``svc``
    (PLAIN, or SCRAM-SHA-512 with the server side of RFC 5802), until the peer hangs up."""

    def read(n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = sock.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def reply(correlation: int, body: bytes) -> None:
        sock.sendall(struct.pack(">ii", len(body) + 4, correlation) + body)

    def authenticated(code: int, message: str | None = None, auth: bytes = b"") -> bytes:
        text = b"" if message is None else message.encode()
        length = -1 if message is None else len(text)
        return (
            struct.pack(">hh", code, length)
            + text
            + struct.pack(">i", len(auth))
            + auth
            + (struct.pack(">q", 0))
        )

    refused = "Authentication failed during authentication due to invalid credentials"
    salt, rounds, scram = b"pepper", 4096, {}
    salted = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, rounds)
    try:
        while True:
            (size,) = struct.unpack(">i", read(4))
            request = read(size)
            api_key, _version, correlation, n = struct.unpack(">hhih", request[:10])
            body = request[10 + n :]
            if api_key == 17:  # SaslHandshake
                names = b"".join(struct.pack(">h", len(m)) + m.encode() for m in mechanisms)
                reply(correlation, struct.pack(">hi", 0, len(mechanisms)) + names)
                continue
            token = body[4:]
            if token.startswith(b"\0"):  # PLAIN
                ok = token == b"\0svc\0" + password.encode()
                reply(correlation, authenticated(0) if ok else authenticated(58, refused))
            elif "first" not in scram:
                scram["first"] = token[3:].decode()  # after the GS2 header "n,,"
                nonce = dict(kv.split("=", 1) for kv in scram["first"].split(","))["r"] + "srv"
                scram["server"] = f"r={nonce},s={base64.b64encode(salt).decode()},i={rounds}"
                reply(correlation, authenticated(0, None, scram["server"].encode()))
            else:
                final = token.decode()
                without_proof, proof = final.rsplit(",p=", 1)
                message = f"{scram['first']},{scram['server']},{without_proof}".encode()
                client_key = hmac.new(salted, b"Client Key", "sha512").digest()
                stored = hashlib.sha512(client_key).digest()
                signature = hmac.new(stored, message, "sha512").digest()
                given = bytes(
                    a ^ b for a, b in zip(base64.b64decode(proof), signature, strict=True)
                )
                user = dict(kv.split("=", 1) for kv in scram["first"].split(","))["n"]
                if user != "svc" or hashlib.sha512(given).digest() != stored:
                    reply(correlation, authenticated(58, refused))
                    continue
                server_key = hmac.new(salted, b"Server Key", "sha512").digest()
                verifier = base64.b64encode(hmac.new(server_key, message, "sha512").digest())
                reply(correlation, authenticated(0, None, b"v=" + verifier))
    except (EOFError, OSError):
        pass
    finally:
        sock.close()


@pytest.fixture
def sasl_broker() -> Iterator[Any]:
    """``connect(mechanisms, password)``: a client socket to a fake SASL broker."""
    threads = []

    def connect(mechanisms: list[str], password: str) -> socket.socket:
        client, server = socket.socketpair()
        client.settimeout(5)
        thread = threading.Thread(
            target=_fake_sasl_broker, args=(server, mechanisms, password), daemon=True
        )
        thread.start()
        threads.append((thread, client))
        return client

    yield connect
    for thread, client in threads:
        client.close()
        thread.join(2)


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-512"])
def test_sasl_login_accepts_the_right_password_and_reports_the_brokers_refusal(
    sasl_broker, mechanism
):
    assert sasl_login(sasl_broker([mechanism], "s3cret"), mechanism, "svc", "s3cret") is None
    refused = sasl_login(sasl_broker([mechanism], "s3cret"), mechanism, "svc", "wrong")
    assert refused is not None and "invalid credentials" in refused
    assert sasl_login(sasl_broker([mechanism], "s3cret"), mechanism, "bob", "s3cret") is not None


def test_sasl_login_names_a_mechanism_the_broker_does_not_enable(sasl_broker):
    refused = sasl_login(sasl_broker(["SCRAM-SHA-512"], "pw"), "SCRAM-SHA-256", "svc", "pw")
    assert refused == "it does not enable sasl.mechanism SCRAM-SHA-256 (it enables SCRAM-SHA-512)"


def test_a_refused_login_is_one_sentence_naming_the_setting_not_the_password(sasl_broker):
    options = {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "svc",
        "sasl_plain_password": "hunter2-wrong",
    }
    with pytest.raises(PreflightError) as exc:
        check_login(sasl_broker(["SCRAM-SHA-512"], "hunter2"), "127.0.0.1:9094", options)
    text = str(exc.value)
    assert text.startswith("SASL: the Kafka broker at 127.0.0.1:9094 refused the login as 'svc'")
    assert "sasl.jaas.config" in text and "hunter2" not in text and "\n" not in text
    check_login(  # the right password: no error
        sasl_broker(["SCRAM-SHA-512"], "hunter2"),
        "127.0.0.1:9094",
        {**options, "sasl_plain_password": "hunter2"},
    )


def test_logins_the_check_cannot_try_are_left_to_the_client(sasl_broker):
    for options in (
        {"security_protocol": "SASL_SSL", "sasl_mechanism": "OAUTHBEARER"},
        {"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN"},  # no credentials
    ):
        check_login(sasl_broker(["PLAIN"], "pw"), "127.0.0.1:9094", options)
    server = socket.socketpair()
    server[1].close()  # a broker that hangs up: the client's own errors say more
    check_login(server[0], "127.0.0.1:9094", {"security_protocol": "SASL_SSL",
                "sasl_mechanism": "PLAIN", "sasl_plain_username": "u",
                "sasl_plain_password": "p"})  # fmt: skip
    server[0].close()
