"""Signed snapshots: nothing is unpickled unless the signature, format and River version
check out; warm start continues from the snapshot."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import pytest

from stratiflow.config import ConfigError, load_config
from stratiflow.config.model import build_model
from stratiflow.io.sources import river_events
from stratiflow.runner.replay import replay
from stratiflow.snapshots import (
    SnapshotError,
    _mac,
    key_from_env,
    load_snapshot,
    write_snapshot,
)

KEY = b"0123456789abcdef-test-key"


class Boom:
    """Unpickling this creates a file: proof that a payload was (or was not) loaded."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def trained_model():
    cfg = load_config()
    result = replay(river_events("phishing", n=300, seed=1, interval_ms=10), cfg)
    return result.states["default"].model


def test_round_trip_keeps_the_model(tmp_path):
    model = trained_model()
    path = tmp_path / "m.snap"
    write_snapshot(path, model, key=KEY, model_key="default")
    loaded = load_snapshot(path, key=KEY)
    x = {"empty_server_form_handler": 1.0, "popup_window": 0.0, "https": 1.0}
    assert loaded.model.predict_proba_one(x) == model.predict_proba_one(x)
    assert loaded.header["model_key"] == "default" and loaded.header["format"]


def test_a_tampered_payload_is_refused_before_anything_is_unpickled(tmp_path):
    path = tmp_path / "m.snap"
    write_snapshot(path, trained_model(), key=KEY, model_key="default")
    head, payload = path.read_bytes().split(b"\n", 1)
    marker = tmp_path / "pwned"
    evil = pickle.dumps(Boom(str(marker)))
    # An attacker swaps the payload and even fixes the checksum; only the HMAC is unknown.
    header = json.loads(head)
    header["payload_sha256"] = __import__("hashlib").sha256(evil).hexdigest()
    path.write_bytes(json.dumps(header).encode() + b"\n" + evil)
    with pytest.raises(SnapshotError, match="signature does not match"):
        load_snapshot(path, key=KEY)
    assert not marker.exists()
    # A flipped byte in the genuine payload is refused too.
    path.write_bytes(head + b"\n" + payload[:-1] + bytes([payload[-1] ^ 1]))
    with pytest.raises(SnapshotError, match="signature does not match"):
        load_snapshot(path, key=KEY)


def test_another_key_another_river_or_another_format_is_refused(tmp_path):
    path = tmp_path / "m.snap"
    write_snapshot(path, trained_model(), key=KEY, model_key="default")
    with pytest.raises(SnapshotError, match="another key"):
        load_snapshot(path, key=b"someone-else-entirely")
    head, payload = path.read_bytes().split(b"\n", 1)
    header = json.loads(head)
    header.pop("hmac")
    header["river"] = "0.26.0"  # correctly signed, but made by a River we cannot load
    header["hmac"] = _mac(KEY, header, payload)
    path.write_bytes(json.dumps(header).encode() + b"\n" + payload)
    with pytest.raises(SnapshotError, match=r"River 0\.26\.0"):
        load_snapshot(path, key=KEY)
    path.write_bytes(b"\x80\x04plain pickle")
    with pytest.raises(SnapshotError, match="not a stratiflow snapshot"):
        load_snapshot(path, key=KEY)


def test_warm_start_continues_from_the_snapshot(tmp_path, monkeypatch):
    events = list(river_events("phishing", n=1250, seed=1, interval_ms=10))
    cfg = load_config()
    first = replay(events[:600], cfg)
    path = tmp_path / "default.snap"
    write_snapshot(path, first.states["default"].model, key=KEY, model_key="default")
    monkeypatch.setenv("STRATIFLOW_SNAPSHOT_KEY", KEY.decode())
    warm = load_config({"snapshots": {"warm_start": str(path)}})
    continued = replay(events[600:], warm)
    whole = replay(events, cfg)
    assert [p.proba for p in continued.predictions] == [p.proba for p in whole.predictions[600:]]
    cold = replay(events[600:], cfg)
    assert [p.proba for p in cold.predictions] != [p.proba for p in continued.predictions]


def test_a_bad_warm_start_fails_when_the_config_is_loaded(tmp_path, monkeypatch):
    path = tmp_path / "m.snap"
    write_snapshot(path, build_model(load_config().model), key=KEY, model_key="default")
    monkeypatch.delenv("STRATIFLOW_SNAPSHOT_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"snapshots\.warm_start: environment variable"):
        load_config({"snapshots": {"warm_start": str(path)}})
    monkeypatch.setenv("STRATIFLOW_SNAPSHOT_KEY", "a-different-key-of-16+")
    with pytest.raises(ConfigError, match="signature does not match"):
        load_config({"snapshots": {"warm_start": str(path)}})
    monkeypatch.setenv("STRATIFLOW_SNAPSHOT_KEY", "short")
    with pytest.raises(SnapshotError, match="too short"):
        key_from_env()


def test_stratiflow_train_writes_verifiable_snapshots(tmp_path):
    events = tmp_path / "events.jsonl"
    events.write_text(
        "".join(json.dumps(e) + "\n" for e in river_events("phishing", n=200, keys=("a", "b")))
        + "not json\n"
    )
    env = {"STRATIFLOW_SNAPSHOT_KEY": KEY.decode(), "PATH": ""}
    cmd = [sys.executable, "-m", "stratiflow.cli", "train", "--events", str(events), "--out"]
    done = subprocess.run([*cmd, str(tmp_path / "out")], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert "1 rejected" in done.stderr
    for key in ("a", "b"):
        loaded = load_snapshot(tmp_path / "out" / f"{key}.snap", key=KEY)
        assert loaded.header["model_key"] == key
    unsigned = subprocess.run(
        [*cmd, str(tmp_path / "x")], capture_output=True, text=True, env={"PATH": ""}
    )
    assert unsigned.returncode == 2 and "STRATIFLOW_SNAPSHOT_KEY" in unsigned.stderr
