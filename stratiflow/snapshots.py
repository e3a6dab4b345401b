"""Model snapshots that leave the job: signed, versioned, verified before loading.

A snapshot is how a model leaves a job (``stratiflow train`` writes one) and
comes back (``snapshots.warm_start`` in the job YAML). River models are Python
objects, so the payload is a pickle; a pickle from an untrusted file can run
any code when loaded. So the file carries an HMAC-SHA256 over its header and
payload with a key only the operator knows (an environment variable, never the
YAML), and :func:`load_snapshot` checks it — and the format version and the
River version — *before* unpickling anything. A snapshot that was changed, or
signed with another key, or made by another River minor version, is refused
with a sentence that says which.

File layout: one JSON header line (``format``, ``version``, ``river``,
``model_key``, ``created_at``, ``payload_sha256``, ``hmac``), then the payload.

>>> from river import linear_model
>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "m.snap"
>>> write_snapshot(path, linear_model.LogisticRegression(), key=b"k" * 32, model_key="a")
>>> type(load_snapshot(path, key=b"k" * 32).model).__name__
'LogisticRegression'
>>> load_snapshot(path, key=b"x" * 32)
Traceback (most recent call last):
...
stratiflow.snapshots.SnapshotError: ... the signature does not match: ...
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import pickle
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORMAT = "stratiflow-snapshot"
VERSION = 1
#: The environment variable the signing key is read from by default.
KEY_ENV = "STRATIFLOW_SNAPSHOT_KEY"
MIN_KEY_BYTES = 16


class SnapshotError(ValueError):
    """A snapshot cannot be written or loaded; the message says why."""


@dataclass(frozen=True)
class Snapshot:
    model: Any
    header: dict[str, Any]


def key_from_env(name: str = KEY_ENV) -> bytes:
    """The signing key from environment variable ``name`` (at least 16 bytes)."""
    value = os.environ.get(name)
    if not value:
        raise SnapshotError(
            f"environment variable {name} is not set; snapshots are signed with it "
            "(e.g. `export {name}=$(openssl rand -hex 32)`)".format(name=name)
        )
    key = value.encode()
    if len(key) < MIN_KEY_BYTES:
        raise SnapshotError(f"{name} is too short: use at least {MIN_KEY_BYTES} characters")
    return key


def _river_version() -> str:
    import river

    return str(river.__version__)


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def _mac(key: bytes, header: dict[str, Any], payload: bytes) -> str:
    signed = json.dumps(header, sort_keys=True, separators=(",", ":")).encode() + b"\n" + payload
    return hmac.new(key, signed, hashlib.sha256).hexdigest()


def write_snapshot(path: Path, model: Any, *, key: bytes, model_key: str) -> None:
    """Write ``model`` to ``path`` as a signed snapshot."""
    if len(key) < MIN_KEY_BYTES:
        raise SnapshotError(f"the signing key must have at least {MIN_KEY_BYTES} bytes")
    payload = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
    header = {
        "format": FORMAT,
        "version": VERSION,
        "river": _river_version(),
        "model_key": model_key,
        "created_at": int(time.time() * 1000),
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
    }
    header["hmac"] = _mac(key, header, payload)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(json.dumps(header, sort_keys=True).encode() + b"\n" + payload)
    tmp.replace(path)  # never a half-written snapshot under the real name


def load_snapshot(path: Path, *, key: bytes) -> Snapshot:
    """Verify and load a snapshot; :class:`SnapshotError` (nothing unpickled) if it fails."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise SnapshotError(f"cannot read snapshot {path}: {exc.strerror}") from None
    head, sep, payload = data.partition(b"\n")
    try:
        header = json.loads(head) if sep else None
    except ValueError:
        header = None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise SnapshotError(f"{path} is not a stratiflow snapshot")
    if header.get("version") != VERSION:
        raise SnapshotError(
            f"{path} has snapshot format version {header.get('version')}; "
            f"this stratiflow reads version {VERSION}"
        )
    claimed = str(header.pop("hmac", ""))
    if not hmac.compare_digest(claimed, _mac(key, header, payload)):
        raise SnapshotError(
            f"refusing {path}: the signature does not match: the file was changed, or it "
            "was signed with another key"
        )
    river = str(header.get("river", "?"))
    if _minor(river) != _minor(_river_version()):
        raise SnapshotError(
            f"{path} holds a River {river} model; this job runs River {_river_version()} "
            "(River pickles do not load across minor versions)"
        )
    # Signed by the key holder, unchanged since: only now is the payload unpickled.
    model = pickle.loads(payload)
    return Snapshot(model=model, header={**header, "hmac": claimed})
