"""Fuzz: thousands of bad records never raise, each is rejected for a reason a user can
read, and every record ends in exactly one place (pure core; tests/flink/test_fuzz.py
runs the same corpus through the Flink job)."""

from __future__ import annotations

import json
import time
from collections import Counter

from stratiflow.config import load_config
from stratiflow.io.sources import river_events, with_delayed_labels
from stratiflow.records import Event, LabelRecord
from stratiflow.validation.parse import REASONS, model_key_of, parse_event
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


def test_the_raw_key_is_the_parsed_key_for_every_accepted_record():
    # The job keys raw records by model_key_of before parsing them; a record
    # accepted under another key would train the wrong model.
    keyed = [json.dumps(e).encode() for e in river_events("phishing", n=200, keys=("a", "b"))]
    events = list(river_events("phishing", n=200, keys=("a", "b")))
    labelled = [json.dumps(r).encode() for r in with_delayed_labels(events, 5_000)]
    unkeyed = [
        b'{"id": "u1", "ts": 1, "features": {"x": 1}, "label": true}',
        b'{"id": "u2", "ts": 1, "features": {"x": 1}, "key": null}',
        b'{"id": "u3", "ts": 2, "label": true}',
    ]
    accepted = 0
    lines = [line for _, line in corpus(n_bad=3_000, n_good=300)] + keyed + labelled + unkeyed
    for raw in lines:
        record = parse_event(raw)
        if isinstance(record, Event | LabelRecord):
            accepted += 1
            assert model_key_of(raw) == record.key, raw[:200]
    assert accepted > 900
