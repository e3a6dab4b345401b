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

from jobs.backtest import run_backtest
from stratiflow.config import load_config
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
