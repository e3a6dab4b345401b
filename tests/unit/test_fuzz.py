"""Fuzz: thousands of bad records never raise, each is rejected for a reason a user can
read, and every record ends in exactly one place (pure core; tests/flink/test_fuzz.py
runs the same corpus through the Flink job)."""

from __future__ import annotations

import time
from collections import Counter

from stratiflow.config import load_config
from stratiflow.validate import REASONS
from tests.fuzz import CATEGORIES, HEAVY, ODD_BUT_VALID, corpus, expected_outcomes


def test_every_bad_record_is_rejected_with_a_reason_and_nothing_is_lost():
    lines = corpus(n_bad=10_000, n_good=1_250)
    rejected, predicted = expected_outcomes(lines, load_config(), "fuzz", int(time.time() * 1000))
    assert len(rejected) + len(predicted) == len(lines)  # in = predictions + dead letters
    assert set(rejected.values()) <= set(REASONS)
    by_category: dict[str, Counter[str]] = {}
    for number, (category, _) in enumerate(lines):
        outcome = rejected.get(number, "predicted")
        by_category.setdefault(category, Counter())[outcome] += 1
    for category in list(CATEGORIES) + list(HEAVY):
        assert "predicted" not in by_category[category], (category, by_category[category])
    for category in ODD_BUT_VALID:
        assert set(by_category[category]) == {"predicted"}, (category, by_category[category])
    assert set(by_category["good"]) == {"predicted"}
    assert sum(by_category[c].total() for c in list(CATEGORIES) + list(HEAVY)) == 10_000
    # Many distinct reasons, each meaning something specific.
    assert len(set(rejected.values())) >= 14
    assert by_category["future_ts"] == Counter({"ts_in_future": by_category["future_ts"].total()})
    assert by_category["string_feature"] == Counter(
        {"model_rejected_input": by_category["string_feature"].total()}
    )
