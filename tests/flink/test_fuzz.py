"""Fuzz on a MiniCluster: 10k bad records mixed with good events through the job graph.

The job never fails; every record ends in exactly one place; each dead letter
carries the reason the pure core gives for that very record, its raw bytes and
its offset.
"""

from __future__ import annotations

import base64
import time
from collections import Counter

import pytest

from stratiflow.config import load_config
from stratiflow.jobs.backtest import run_backtest
from tests.fuzz import corpus, expected_outcomes
from tests.helpers import read_jsonl

pytestmark = pytest.mark.flink


def test_ten_thousand_bad_records_never_fail_the_job_and_all_reconcile(tmp_path):
    lines = corpus(n_bad=10_000, n_good=1_250)
    path = tmp_path / "fuzz.jsonl"
    path.write_bytes(b"".join(raw + b"\n" for _, raw in lines))
    cfg = load_config({"job": {"parallelism": 2}})
    now = int(time.time() * 1000)
    result = run_backtest(path, cfg, tmp_path / "out")
    rejected, predicted = expected_outcomes(lines, cfg, str(path), now)

    letters = read_jsonl(result.out_dir / "dead_letters.jsonl")
    predictions = read_jsonl(result.out_dir / "predictions.jsonl")
    assert result.events == len(lines) == len(letters) + len(predictions)
    assert {d["offset"]: d["reason"] for d in letters} == rejected
    assert len({d["offset"] for d in letters}) == len(letters)  # none twice
    assert Counter(p["id"] for p in predictions) == Counter(predicted)
    for letter in letters:
        assert letter["topic"] == str(path) and letter["detail"]
        raw = lines[letter["offset"]][1]
        if letter["reason"] not in ("model_rejected_input", "model_output_not_finite"):
            encoding = letter["raw_encoding"]
            shown = (
                letter["raw"].encode() if encoding == "utf-8" else base64.b64decode(letter["raw"])
            )
            assert shown == raw  # the original bytes, untouched


def test_the_java_model_key_agrees_with_the_python_one_on_every_accepted_record():
    # The Kafka source keys records in Java (io.stratiflow.flink.ModelKeys); the
    # validator parses them in Python. An accepted record keyed differently would
    # train another key's model (the operator would dead-letter it as misrouted).
    from pyflink.java_gateway import get_gateway

    from stratiflow.jobs.runtime import create_env
    from stratiflow.records import Event, LabelRecord
    from stratiflow.validation.parse import model_key_of, parse_event

    create_env(load_config())  # puts stratiflow's jar on the gateway's class path
    java = get_gateway().jvm.io.stratiflow.flink.ModelKeys
    limit = 1_048_576
    extra = [
        b'{"id": "u1", "ts": 1, "features": {"x": 1}, "label": true}',
        b'{"id": "u2", "ts": 1, "features": {"x": 1}, "key": null}',
        b'{"id": "u3", "ts": 2, "label": true, "key": "k\\u00e9\\ud83d\\ude00"}',
        b'{"key": "a", "id": "u4", "ts": 2, "features": {"key": "z"}, "key": "b"}',
        b'{"id": "u5", "ts": 2, "features": {"x": [1, {"key": "n"}]}, "key": "c"}',
        b'{"id": "u6", "ts": 2, "features": {"x": 1}, "key": "d"} trailing',
        b'[{"key": "e"}]',
        b"",
    ]
    accepted = 0
    for raw in [line for _, line in corpus(n_bad=2_000, n_good=200)] + extra:
        ours = java.of(bytearray(raw), limit)
        if isinstance(parse_event(raw), Event | LabelRecord):
            accepted += 1
            assert ours == model_key_of(raw) == parse_event(raw).key, raw[:200]
        # Refused records may land under any key: they only become dead letters.
    assert accepted > 300
