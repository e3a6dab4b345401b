"""Throw-away TLS material and a TLS-terminating proxy for the plain local broker.

Tansu 0.6.0 cannot serve TLS itself, so the TLS tests put this proxy on loopback in
front of a plain Tansu whose ``--advertised-listener-url`` is the proxy's port: every
client connection (bootstrap and the broker's advertised address alike) then goes
through TLS. Certificates are made with the ``openssl`` CLI (the ``cryptography``
package is not a project dependency).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import ssl
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest


def _openssl(*args: str, cwd: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl CLI is needed to make throw-away certificates")
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _ec_key(out: Path) -> None:
    _openssl(
        "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", out.name, cwd=out.parent
    )


@dataclass(frozen=True)
class CertificateAuthority:
    """A throw-away CA: ``cert`` is what clients trust (``ca.pem``)."""

    cert: Path
    key: Path

    def issue(self, name: str, *, usage: str, san: str = "") -> tuple[Path, Path]:
        """A certificate signed by this CA: (cert PEM, unencrypted key PEM) in the CA's dir."""
        folder = self.cert.parent
        key, csr, cert = folder / f"{name}.key", folder / f"{name}.csr", folder / f"{name}.pem"
        ext = folder / f"{name}.ext"
        ext.write_text(f"extendedKeyUsage={usage}\n" + (f"subjectAltName={san}\n" if san else ""))
        _ec_key(key)
        _openssl(
            "req", "-new", "-key", key.name, "-subj", f"/CN={name}", "-out", csr.name, cwd=folder
        )
        _openssl(
            "x509", "-req", "-in", csr.name, "-CA", self.cert.name, "-CAkey", self.key.name,
            "-CAcreateserial", "-days", "2", "-extfile", ext.name, "-out", cert.name,
            cwd=folder,
        )  # fmt: skip
        return cert, key


def make_ca(folder: Path, name: str = "stratiflow-test-ca") -> CertificateAuthority:
    """A new self-signed CA in ``folder`` (created)."""
    folder.mkdir(parents=True, exist_ok=True)
    key, cert = folder / "ca.key", folder / "ca.pem"
    _ec_key(key)
    _openssl(
        "req", "-x509", "-new", "-key", key.name, "-subj", f"/CN={name}", "-days", "2",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-out", cert.name,
        cwd=folder,
    )  # fmt: skip
    return CertificateAuthority(cert=cert, key=key)


def server_cert(ca: CertificateAuthority) -> tuple[Path, Path]:
    """The proxy's certificate, valid for ``localhost`` and ``127.0.0.1``."""
    return ca.issue("server", usage="serverAuth", san="DNS:localhost,IP:127.0.0.1")


def client_keystore(ca: CertificateAuthority, password: str) -> Path:
    """A PEM key store for a client: its private key, encrypted under ``password``
    (PKCS#8, as the Java client's ``ssl.keystore.type=PEM`` wants it), then its
    certificate. kafka-python loads the same file as ``ssl_certfile``."""
    cert, key = ca.issue("client", usage="clientAuth")
    encrypted = key.with_suffix(".p8")
    _encrypt_key(key, encrypted, password)
    store = key.parent / "client-keystore.pem"
    store.write_text(encrypted.read_text() + cert.read_text())
    key.unlink()  # only the encrypted key stays on disk
    return store


def _encrypt_key(key: Path, out: Path, password: str) -> None:
    # The password goes through a pipe, never a command line (``ps`` shows those). The Java
    # client (Kafka 3.9 on Java 17) cannot decrypt OpenSSL 3's default PBES2 scheme
    # ("PBES2 SecretKeyFactory not available"), so the key uses PBEWithSHA1AndDESede.
    if shutil.which("openssl") is None:
        pytest.skip("the openssl CLI is needed to make throw-away certificates")
    subprocess.run(
        [
            "openssl",
            "pkcs8",
            "-topk8",
            "-v1",
            "PBE-SHA1-3DES",
            "-in",
            key.name,
            "-out",
            out.name,
            "-passout",
            "stdin",
        ],
        cwd=key.parent,
        input=password + "\n",
        text=True,
        check=True,
        capture_output=True,
        timeout=60,
    )


@dataclass
class TlsProxy:
    """TLS on ``listen_port`` → plain TCP to ``upstream_port``, on its own thread.

    With ``client_ca`` set, clients must present a certificate signed by it (mutual TLS).
    ``accepted`` counts completed TLS handshakes (a refused client never gets that far);
    ``upstream_ports`` holds the local port of every connection the proxy opened to the
    broker, so a test can tell the proxy's connections from anyone else's.
    """

    listen_port: int
    upstream_port: int
    certfile: Path
    keyfile: Path
    client_ca: Path | None = None
    host: str = "127.0.0.1"
    accepted: int = 0
    upstream_ports: set[int] = field(default_factory=set)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _server: asyncio.base_events.Server | None = None

    def start(self) -> TlsProxy:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.certfile, self.keyfile)
        if self.client_ca is not None:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(self.client_ca)
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            # Refused handshakes (plaintext client, wrong CA) are expected: no log noise.
            loop.set_exception_handler(lambda _loop, _context: None)
            try:
                self._server = loop.run_until_complete(
                    asyncio.start_server(self._serve, self.host, self.listen_port, ssl=ctx)
                )
            except BaseException as exc:  # e.g. the port was taken
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            self._server.close()
            loop.run_until_complete(self._server.wait_closed())
            loop.close()

        self._thread = threading.Thread(target=run, name="tls-proxy", daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            broker_r, broker_w = await asyncio.open_connection(self.host, self.upstream_port)
        except OSError:
            client_w.close()
            return
        self.upstream_ports.add(broker_w.get_extra_info("sockname")[1])
        await asyncio.gather(_pipe(client_r, broker_w), _pipe(broker_r, client_w))

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (OSError, ssl.SSLError):
        pass
    finally:
        with contextlib.suppress(OSError, ssl.SSLError, RuntimeError):
            writer.close()


def loopback_clients_of(port: int) -> set[int]:
    """Local ports of the TCP connections to ``127.0.0.1:port`` open right now (Linux)."""
    found: set[int] = set()
    target = f"0100007F:{port:04X}"
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            parts = line.split()
            # local address, remote address, state (01 = ESTABLISHED)
            if len(parts) > 3 and parts[2] == target and parts[3] == "01":
                found.add(int(parts[1].split(":")[1], 16))
    return found
