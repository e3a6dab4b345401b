"""Throw-away TLS material and SCRAM credentials for ``local broker start --secure``.

Everything is generated once per broker instance under ``tls/<instance>/`` with
``openssl`` and kept (mode 0600 for secrets) until ``stop --purge``:

- ``ca.pem`` / ``ca.key``: a self-signed CA that signs the two certificates below;
- ``broker.p12``: the broker's key and certificate (for ``127.0.0.1`` and
  ``localhost``), a PKCS12 keystore whose password is in ``keystore-password``;
- ``client.pem``: a client key and certificate in one PEM file (Java clients:
  ``ssl.keystore.type=PEM``; kafka-python: ``ssl_certfile``);
- ``client-secrets.properties``: ``password=...`` of the SCRAM user, read through
  Kafka's ``FileConfigProvider`` so no password is written into a config.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from stratiflow.local import procs
from stratiflow.local.errors import LocalInfraError

CA_DAYS = 825
FILE_PROVIDER = "org.apache.kafka.common.config.provider.FileConfigProvider"
SCRAM_LOGIN = "org.apache.kafka.common.security.scram.ScramLoginModule"


@dataclass(frozen=True)
class Material:
    """Paths of one instance's TLS material."""

    folder: Path

    @property
    def ca(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def broker_keystore(self) -> Path:
        return self.folder / "broker.p12"

    @property
    def keystore_password_file(self) -> Path:
        return self.folder / "keystore-password"

    @property
    def client_pem(self) -> Path:
        """Client key and certificate, one PEM file."""
        return self.folder / "client.pem"

    @property
    def client_secrets(self) -> Path:
        """``password=<SCRAM password>``, for ``${file:<this>:password}``."""
        return self.folder / "client-secrets.properties"

    def complete(self) -> bool:
        return all(
            f.is_file()
            for f in (
                self.ca,
                self.broker_keystore,
                self.keystore_password_file,
                self.client_pem,
                self.client_secrets,
            )
        )


def _openssl(args: list[str], cwd: Path) -> None:
    exe = shutil.which("openssl")
    if exe is None:
        raise LocalInfraError(
            "`openssl` not found: `local broker start --secure` needs it to make its "
            "throw-away CA (e.g. `apt-get install openssl`)"
        )
    result = subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise LocalInfraError(f"`openssl {args[0]}` failed: {result.stderr.strip()[-400:]}")


def _sign(cwd: Path, name: str, subject: str, ext: str) -> None:
    _openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
              "-out", f"{name}.key"], cwd)  # fmt: skip
    _openssl(["req", "-new", "-key", f"{name}.key", "-subj", subject, "-out", f"{name}.csr"], cwd)
    (cwd / f"{name}.ext").write_text(ext)
    _openssl(["x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
              "-CAcreateserial", "-days", str(CA_DAYS), "-sha256", "-extfile", f"{name}.ext",
              "-out", f"{name}.crt"], cwd)  # fmt: skip


def ensure_material(folder: Path, log: Callable[[str], object] = lambda _m: None) -> Material:
    """Generate the CA, broker keystore, client certificate and SCRAM password once."""
    material = Material(folder)
    if material.complete():
        return material
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    log(f"generating a throw-away CA and certificates in {folder}")
    with tempfile.TemporaryDirectory(prefix=".tls-", dir=folder) as tmp:
        work = Path(tmp)
        _openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                  "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", str(CA_DAYS),
                  "-subj", "/CN=stratiflow local CA"], work)  # fmt: skip
        _sign(
            work,
            "broker",
            "/CN=localhost",
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        _sign(
            work,
            "client",
            "/CN=stratiflow-client",
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n",
        )
        password = secrets.token_urlsafe(18)
        procs.write_private(work / "keystore-password", password + "\n")
        # The password reaches openssl through a file descriptor of its own, not argv.
        _openssl(["pkcs12", "-export", "-in", "broker.crt", "-inkey", "broker.key",
                  "-certfile", "ca.pem", "-name", "broker", "-out", "broker.p12",
                  "-passout", f"file:{work / 'keystore-password'}"], work)  # fmt: skip
        # PKCS#8 key first, then the chain: what both Java's PEM keystore and Python read.
        _openssl(["pkcs8", "-topk8", "-nocrypt", "-in", "client.key", "-out", "client.p8"], work)
        procs.write_private(
            work / "client.pem",
            (work / "client.p8").read_text()
            + (work / "client.crt").read_text()
            + (work / "ca.pem").read_text(),
        )
        procs.write_private(
            work / "client-secrets.properties", f"password={secrets.token_urlsafe(18)}\n"
        )
        for name in ("ca.pem", "ca.key", "broker.p12", "keystore-password", "client.pem",
                     "client-secrets.properties"):  # fmt: skip
            (work / name).replace(folder / name)
    (folder / "ca.key").chmod(0o600)
    return material


def scram_password(folder: Path) -> str:
    """The SCRAM user's password (generated with the rest of the material)."""
    material = ensure_material(folder)
    for line in material.client_secrets.read_text().splitlines():
        if line.startswith("password="):
            return line.split("=", 1)[1]
    raise LocalInfraError(f"{material.client_secrets} has no password= line")


def broker_properties(material: Material) -> dict[str, str]:
    """The broker's SASL_SSL and SSL listener settings (mTLS required on SSL)."""
    keystore_password = material.keystore_password_file.read_text().strip()
    return {
        "sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "listener.name.sasl_ssl.sasl.enabled.mechanisms": "SCRAM-SHA-512",
        "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": f"{SCRAM_LOGIN} required;",
        "listener.name.sasl_ssl.ssl.client.auth": "none",
        "listener.name.ssl.ssl.client.auth": "required",
        "ssl.keystore.type": "PKCS12",
        "ssl.keystore.location": str(material.broker_keystore),
        "ssl.keystore.password": keystore_password,
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(material.ca),
        "ssl.endpoint.identification.algorithm": "https",
    }


def sasl_ssl_client_properties(material: Material, user: str) -> dict[str, str]:
    """Java client properties for the SASL_SSL listener; the password stays in its file."""
    return {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "config.providers": "file",
        "config.providers.file.class": FILE_PROVIDER,
        "sasl.jaas.config": (
            f'{SCRAM_LOGIN} required username="{user}" '
            f'password="${{file:{material.client_secrets}:password}}";'
        ),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(material.ca),
    }


def mtls_client_properties(material: Material) -> dict[str, str]:
    """Java client properties for the SSL listener (client certificate required)."""
    return {
        "security.protocol": "SSL",
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(material.ca),
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(material.client_pem),
    }
