"""Golden cases: fixed configs and inputs whose outputs must not change by accident.

Each case runs the job's semantics (parse + validate each raw line, then
:func:`~stratiflow.runner.replay.replay`) and summarises every output stream
(predictions, metrics reports, dead letters, sampling stats) as a count and a
SHA-256 of its canonical JSON, plus the final metrics reports in full so a
difference can be read. Wall-clock fields (``emitted_at``, ``at``) and the measured
costs (``cost``: microseconds and bytes) are left out: they are measurements.

``python -m tests.golden.cases`` rewrites ``tests/golden/expected.json``; do that
only for a change that is meant to change outputs, and say so in the commit.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from stratiflow.config import load_config
from stratiflow.io.sources import river_events
from stratiflow.records import Rejection, SourceRef, to_json
from stratiflow.runner.replay import replay
from stratiflow.validation.parse import parse_event

EXPECTED = Path(__file__).with_name("expected.json")
WALL_CLOCK = ("emitted_at", "at", "cost")
#: Fields added after expected.json was written, left out when they hold the value every
#: golden case had then (no drift detector, one model): a change there still shows.
ADDED_LATER = {
    "model": "main",
    "generation": 0,
    "drift": None,
    "candidates": None,
    "active": None,
    "curation": None,
}


def _bad_lines() -> list[bytes]:
    return [
        b"not json",
        b'{"id": "no-features", "ts": 5}',
        b'{"id": "bad-label", "ts": 6, "features": {"x": 1.0}, "label": [1]}',
        b'{"id": "nan", "ts": 7, "features": {"x": NaN}, "label": true}',
        b"",
    ]


def _phishing(n: int) -> list[dict[str, Any]]:
    return list(river_events("phishing", n=n, seed=1, interval_ms=10))


def _imbalanced(n: int, keys: tuple[str, ...]) -> list[dict[str, Any]]:
    events = list(
        river_events("hyperplane", n=n, seed=7, interval_ms=10, minority_share=0.05, keys=keys)
    )
    for e in events[5:n:97]:
        e["label"] = None
    return events


def _delayed(events: list[dict[str, Any]], every: int, lag: int) -> list[dict[str, Any]]:
    """Every ``every``-th event loses its label, which comes ``lag`` events later."""
    out: list[dict[str, Any]] = []
    pending: list[tuple[int, dict[str, Any]]] = []
    for i, e in enumerate(events):
        if i % every == 0 and e["label"] is not None:
            label = {"id": e["id"], "label": e["label"], "ts": e["ts"] + lag * 10, "key": e["key"]}
            pending.append((i + lag, label))
            e = {**e, "label": None}
        out.append(e)
        while pending and pending[0][0] <= i:
            out.append(pending.pop(0)[1])
    return out + [label for _, label in pending]


MODEL = [{"preprocessing.StandardScaler": {}}, {"linear_model.LogisticRegression": {"l2": 0.0}}]

CASES: dict[str, tuple[dict[str, Any], Any]] = {
    "per-sample": ({"model": MODEL}, lambda: _phishing(1000)),
    "balanced-two-keys": (
        {"sampling": {"strategy": "balanced", "budget": 10, "window": "1s", "oversample": True}},
        lambda: _imbalanced(2000, ("alpha", "beta")),
    ),
    "synthetic-oversampling": (
        {
            "sampling": {
                "strategy": "oversample",
                "window": "1s",
                "synthetic": True,
            },
        },
        lambda: _imbalanced(1500, ("default",)),
    ),
    "undersample": (
        {"sampling": {"strategy": "undersample", "window": "1s"}},
        lambda: _imbalanced(1500, ("default",)),
    ),
    "target-with-decay": (
        {
            "sampling": {
                "strategy": "target",
                "budget": 20,
                "window": "1s",
                "decay": 0.8,
                "target": {"1": 0.3, "0": 0.7},
            },
        },
        lambda: _imbalanced(1500, ("default",)),
    ),
    "micro-batch-delayed-labels": (
        {"update": {"mode": "micro_batch", "batch_size": 16}, "metrics": {"report_every": 200}},
        lambda: _delayed(_phishing(1000), every=3, lag=7),
    ),
    "cleaning-rules": (
        {
            "model": MODEL,
            "validation": {
                "features": {
                    "long_url": {"outliers": "clip"},
                    "popup_window": {"missing": "impute"},
                },
                "outlier_warmup": 50,
            },
        },
        lambda: _phishing(800),
    ),
}


def run(name: str) -> dict[str, Any]:
    """The summary of one case's outputs."""
    raw_config, inputs = CASES[name]
    cfg = load_config(raw_config)
    lines = [json.dumps(e).encode() for e in inputs()]
    lines[10:10] = _bad_lines()
    records, letters = [], []
    for offset, raw in enumerate(lines):
        source = SourceRef("golden", 0, offset)
        parsed = parse_event(raw, source, rules=cfg.validation)
        if isinstance(parsed, Rejection):
            letters.append({"reason": parsed.reason, "detail": parsed.detail, "offset": offset})
        else:
            records.append(parsed)
    result = replay(records, cfg, now_ms=0)
    streams = {
        "predictions": [p.to_dict() for p in result.predictions],
        "metrics": result.reports,
        "dead_letters": letters + [d.to_dict() for d in result.dead_letters],
        "sampling_stats": result.stats,
    }
    summary: dict[str, Any] = {}
    for stream, items in streams.items():
        canonical = [_without_wall_clock(item) for item in items]
        text = "\n".join(to_json(item) for item in canonical)
        summary[stream] = {
            "count": len(items),
            "sha256": hashlib.sha256(text.encode()).hexdigest(),
        }
    summary["final_reports"] = [_without_wall_clock(r) for r in result.reports if r["final"]]
    return summary


def _without_wall_clock(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _without_wall_clock(v)
            for k, v in value.items()
            if k not in WALL_CLOCK and not (k in ADDED_LATER and ADDED_LATER[k] == v)
        }
    if isinstance(value, list):
        return [_without_wall_clock(v) for v in value]
    return value


def main() -> int:
    expected = {name: run(name) for name in CASES}
    EXPECTED.write_text(json.dumps(expected, indent=1, sort_keys=True) + "\n")
    print(f"wrote {EXPECTED} ({len(expected)} cases)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
