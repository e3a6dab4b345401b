"""The sampled Kafka job via the local broker: sampling-stats reconcile with the events."""

from __future__ import annotations

from collections import Counter

import pytest
import yaml

from stratiflow.records import class_key
from stratiflow.sources import river_events
from tests.e2e.cli import run_cli, write_config
from tests.helpers import topic_values

pytestmark = pytest.mark.e2e
START_TS = 1_700_000_000_000
N = 2000


def test_sampling_stats_reconcile_with_the_events_produced(broker, tmp_path):
    """Two model keys, a 5% minority, 10% unlabelled, balanced sampling at parallelism 2:
    per key and class, on-time seen + late = labelled events produced; the model
    learned exactly what the stats say was sent; every event was predicted."""
    config = write_config(
        tmp_path / "job.yaml",
        broker.bootstrap,
        f"sampling-{tmp_path.name}",
        job={"parallelism": 2},
        sampling={"strategy": "balanced", "budget": 10, "window": "1s", "oversample": True},
    )
    produce = [
        "produce", "hyperplane", "--config", str(config), "--n", str(N),
        "--start-ts", str(START_TS), "--interval-ms", "10", "--keys", "alpha,beta",
        "--minority-share", "0.05", "--unlabelled-fraction", "0.1", "--seed", "3", "--quiet",
    ]  # fmt: skip
    run_cli(*produce)
    run_cli("submit", "--config", str(config), "--bounded")
    topics = yaml.safe_load(config.read_text())["topics"]

    events = list(
        river_events(
            "hyperplane", n=N, seed=3, start_ts=START_TS, interval_ms=10,
            keys=("alpha", "beta"), minority_share=0.05, unlabelled_fraction=0.1,
        )
    )  # fmt: skip
    produced = Counter((e["key"], class_key(e["label"])) for e in events if e["label"] is not None)
    assert len(produced) == 4  # both classes under both keys

    stats = topic_values(broker.bootstrap, topics["sampling_stats"])
    counted: Counter[tuple[str, str]] = Counter()
    sent: Counter[str] = Counter()
    for s in stats:
        assert s["strategy"] == "balanced"
        for c, v in s["classes"].items():
            counted[s["key"], c] += v["seen"] + v["late"]
            assert v["trained"] == v["sampled"] + v["duplicated"] + v["synthetic"]
        sent[s["key"]] += s["trained"]
    assert counted == produced
    # each full window sends its budget: 5 per class, the minority topped up by duplicates
    assert any(v["duplicated"] > 0 for s in stats for v in s["classes"].values())

    predictions = topic_values(broker.bootstrap, topics["predictions"])
    assert sorted(p["id"] for p in predictions) == sorted(e["id"] for e in events)
    finals = {m["key"]: m for m in topic_values(broker.bootstrap, topics["metrics"]) if m["final"]}
    assert set(finals) == {"alpha", "beta"}
    for key, report in finals.items():
        assert report["counts"]["learned"] == sent[key]
        assert report["counts"]["predicted"] == sum(1 for e in events if e["key"] == key)
        assert sum(report["trained_on"].values()) == sent[key]
