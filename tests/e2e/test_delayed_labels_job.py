"""Delayed labels on their own topic, through the local broker, as a user runs it.

Events are produced without labels; their labels follow on the labels topic
(``stratiflow produce --label-delay``), plus bad label records. Every count in
the final metrics records must reconcile with what was produced.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from stratiflow.io.sources import river_events
from tests.e2e.cli import run_cli, write_config
from tests.helpers import label_outcomes, topic_values

pytestmark = pytest.mark.e2e
START_TS = 1_700_000_000_000
N = 1200
KEYS = ("alpha", "beta")


def test_labels_topic_counts_reconcile_with_what_was_produced(broker, tmp_path):
    prefix = f"labels-{tmp_path.name}"
    config = write_config(
        tmp_path / "job.yaml",
        broker.bootstrap,
        prefix,
        topics={"labels": f"{prefix}-labels"},
        labels={"source": "topic", "ttl": "3s"},
        job={"parallelism": 2},
        metrics={"report_every": 200, "window": 100, "fading": 0.99},
    )
    produce = [
        "produce", "phishing", "--config", str(config), "--n", str(N),
        "--start-ts", str(START_TS), "--interval-ms", "10", "--keys", ",".join(KEYS),
        "--unlabelled-fraction", "0.1", "--label-delay", "400", "--quiet",
    ]  # fmt: skip
    run_cli(*produce)
    events = list(
        river_events(
            "phishing", n=N, start_ts=START_TS, interval_ms=10, keys=KEYS,
            unlabelled_fraction=0.1,
        )
    )  # fmt: skip
    labelled = [e for e in events if e["label"] is not None]
    # Bad label records on the labels topic: a duplicate, an unknown id, an event.
    bad = [
        {"id": labelled[5]["id"], "label": True, "ts": START_TS + 60_000, "key": "alpha"},
        {"id": "no-such-event", "label": False, "ts": START_TS + 100, "key": "beta"},
        {"id": "x", "ts": START_TS, "features": {"a": 1.0}},  # not a label record
    ]
    bad_file = tmp_path / "bad-labels.jsonl"
    bad_file.write_text("".join(json.dumps(r) + "\n" for r in bad))
    run_cli("produce", str(bad_file), "--config", str(config), "--topic", f"{prefix}-labels")

    run_cli("submit", "--config", str(config), "--bounded", timeout=600)

    predictions = topic_values(broker.bootstrap, f"{prefix}-predictions")
    assert sorted(p["id"] for p in predictions) == sorted(e["id"] for e in events)
    assert all("y_true" not in p for p in predictions)  # every label came later
    dead = topic_values(broker.bootstrap, f"{prefix}-dead-letters")
    finals = {
        m["key"]: m for m in topic_values(broker.bootstrap, f"{prefix}-metrics") if m["final"]
    }
    assert set(finals) == set(KEYS)

    label_records = len(labelled) + len(bad)
    reasons = Counter(d["reason"] for d in dead)
    assert reasons["not_a_label"] == 1
    received = sum(f["labels"]["received"] for f in finals.values())
    assert received + reasons["not_a_label"] == label_records
    for key, report in finals.items():
        counts, labels = report["counts"], report["labels"]
        produced = [e for e in events if e["key"] == key]
        assert counts["seen"] == counts["predicted"] == counts["unlabelled"] == len(produced)
        assert labels["received"] == label_outcomes(labels)
        # Each unlabelled prediction was scored, expired, or is still waiting.
        assert counts["unlabelled"] == labels["joined"] + labels["never_came"] + labels["waiting"]
        assert counts["scored"] == labels["joined"] == counts["learned"]
        assert report["model_version"] == counts["learned"]
        assert labels["delay_ms"]["count"] == labels["joined"]
        assert report["rolling"]["n"] == min(100, labels["joined"])
    total = Counter()
    for report in finals.values():
        for name in ("unknown", "duplicate", "expired", "event_rejected"):
            total[name] += report["labels"][name]
    for name, reason in (
        ("unknown", "label_unknown_id"),
        ("duplicate", "label_duplicate"),
        ("expired", "label_expired"),
        ("event_rejected", "label_event_rejected"),
    ):
        assert reasons[reason] == total[name], name
    # The unknown id and the re-sent label are refused or still held; which of those the
    # re-sent one ends as depends on how far the two topics' reads have drifted apart.
    held = sum(r["labels"]["held"] for r in finals.values())
    assert total["unknown"] >= 1 and total["unknown"] + total["duplicate"] + held >= 2
    # In = out: every event predicted once, every label record joined, held or dead-lettered.
    joined_or_held = sum(r["labels"]["joined"] + r["labels"]["held"] for r in finals.values())
    assert len(events) + label_records == len(predictions) + joined_or_held + len(dead)
    for letter in dead:
        assert letter["topic"] == f"{prefix}-labels" and letter["offset"] is not None
