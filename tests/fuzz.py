"""A seeded corpus of bad records mixed with good events, for the fuzz tests.

Each bad record belongs to a category a hostile or broken producer sends; the
tests do not hard-code what happens to each one: they compute the expected
outcome with the pure core (parse, then replay) and demand that the job
matches it record for record.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

from stratiflow.io.sources import river_events

Maker = Callable[[random.Random, dict[str, Any]], bytes]


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def _random_bytes(rng: random.Random, n: int) -> bytes:
    # No line breaks: the corpus is a JSONL file, one record per line.
    # And never blank (a blank line is not a record).
    return b"\x01" + bytes(b for b in rng.randbytes(n) if b not in (10, 13))


def _with(event: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = {**event, **changes}
    return {k: v for k, v in out.items() if v is not _DROP}


_DROP = object()

CATEGORIES: dict[str, Maker] = {
    "not_json": lambda rng, e: rng.choice([b"hello", b"{'single': 'quotes'}", b"{,}", b"nul"]),
    "random_bytes": lambda rng, e: _random_bytes(rng, rng.randint(1, 200)),
    "non_utf8": lambda rng, e: b'{"id": "\xff\xfe", "ts": 1, "features": {"a": 1}}',
    "truncated": lambda rng, e: (raw := _dumps(e))[: rng.randint(1, len(raw) - 1)],
    "nan_infinity": lambda rng, e: (
        _dumps(e).replace(b"}", b', "z": NaN}', 1)
        if rng.random() < 0.5
        else _dumps(e).replace(b"}", b', "z": -Infinity}', 1)
    ),
    "nested_features": lambda rng, e: _dumps(_with(e, features={"x": {"y": {"z": [1, [2]]}}})),
    "nested_json": lambda rng, e: (
        b'{"id": "n", "ts": 1, "features": ' + b"[" * 200 + b"]" * 200 + b"}"
    ),
    "wrong_id": lambda rng, e: _dumps(_with(e, id=rng.choice([7, None, "", [1], {"a": 1}]))),
    "missing_id": lambda rng, e: _dumps(_with(e, id=_DROP)),
    "wrong_ts": lambda rng, e: _dumps(_with(e, ts=rng.choice(["now", -5, 1.5, 2**60, None]))),
    "future_ts": lambda rng, e: _dumps(_with(e, ts=4_102_444_800_000)),  # the year 2100
    "wrong_features": lambda rng, e: _dumps(_with(e, features=rng.choice([[1, 2], "x", 3, {}]))),
    "wrong_feature_value": lambda rng, e: _dumps(
        _with(e, features={**e["features"], "bad": rng.choice([[1], {"a": 1}])})
    ),
    "string_feature": lambda rng, e: _dumps(
        _with(e, features={**e["features"], "age_of_domain": "old"})
    ),
    "wrong_label": lambda rng, e: _dumps(_with(e, label=rng.choice([0.5, [True], {"y": 1}]))),
    "new_class": lambda rng, e: _dumps(_with(e, label=rng.choice(["spam", 7, "ham"]))),
    "wrong_key": lambda rng, e: _dumps(_with(e, key=rng.choice([3, "", ["k"]]))),
    "not_an_object": lambda rng, e: rng.choice([b"[1, 2]", b'"text"', b"42", b"null", b"true"]),
    "bad_label_record": lambda rng, e: _dumps({"id": e["id"], "label": True}),
}

#: Expensive records (large), a few of each.
HEAVY: dict[str, tuple[int, Maker]] = {
    "huge_payload": (2, lambda rng, e: _dumps(_with(e, features={"blob": "x" * 1_100_000}))),
    "too_many_features": (
        3,
        lambda rng, e: _dumps(_with(e, features={f"f{i}": i for i in range(10_001)})),
    ),
    "deep_brackets": (5, lambda rng, e: b"[" * 50_000 + b"]" * 50_000),
}

#: Records that look odd but are valid: the job must predict them.
ODD_BUT_VALID: dict[str, Maker] = {
    "duplicate_id": lambda rng, e: _dumps(e),  # the same event again
    "far_past_ts": lambda rng, e: _dumps(_with(e, ts=0, id=e["id"] + "-past")),
    "new_feature_names": lambda rng, e: _dumps(
        _with(e, id=e["id"] + "-new", features={**e["features"], f"new_{rng.randint(0, 9)}": 1.0})
    ),
    "unlabelled": lambda rng, e: _dumps(_with(e, id=e["id"] + "-u", label=_DROP)),
    "null_feature": lambda rng, e: _dumps(
        _with(e, id=e["id"] + "-null", features={**e["features"], "long_url": None})
    ),
}


def corpus(n_bad: int, n_good: int, *, seed: int = 11) -> list[tuple[str, bytes]]:
    """``(category, raw)`` lines: ``n_good`` Phishing events, ``n_bad`` bad records
    spread over every category (a few heavy ones: payloads over 1 MB, 10k+ features,
    50k-deep nesting), and some odd-but-valid records; shuffled with the good events
    kept in their order."""
    rng = random.Random(seed)
    good = list(river_events("phishing", n=n_good, seed=seed, interval_ms=10))
    lines: list[tuple[str, bytes]] = [("good", _dumps(e)) for e in good]
    makers = list(CATEGORIES.items())
    bad = []
    heavy = sum(count for count, _ in HEAVY.values())
    for i in range(n_bad - heavy):
        name, make = makers[i % len(makers)]
        bad.append((name, make(rng, rng.choice(good))))
    for name, (count, make) in HEAVY.items():
        bad += [(name, make(rng, rng.choice(good))) for _ in range(count)]
    for name, make in ODD_BUT_VALID.items():
        for _ in range(20):
            bad.append((name, make(rng, rng.choice(good))))
    # Insert the bad records at random places; good events keep their relative order.
    for item in bad:
        lines.insert(rng.randrange(len(lines) + 1), item)
    return lines


def expected_outcomes(
    lines: list[tuple[str, bytes]], cfg: Any, topic: str, now_ms: int
) -> tuple[dict[int, str], list[str]]:
    """What the job must do with each line, by the pure core: ``{line: dead-letter
    reason}`` and the ids it must predict (in order)."""
    from dataclasses import replace

    from stratiflow.config.model import build_model
    from stratiflow.learning.state import label_policy
    from stratiflow.records import Event, Rejection, SourceRef
    from stratiflow.runner.replay import replay
    from stratiflow.validation.parse import Limits, parse_event

    v = cfg.validation
    limits = Limits(v.max_payload_bytes, v.max_features)
    limits = replace(limits, latest_ts=now_ms + v.max_future_ms)
    policy = label_policy(build_model(cfg.model))
    rejected: dict[int, str] = {}
    events = []
    for number, (_, raw) in enumerate(lines):
        source = SourceRef(topic, 0, number)
        result = parse_event(raw, source, limits=limits, label_policy=policy, rules=v)
        if isinstance(result, Rejection):
            rejected[number] = result.reason
        else:
            assert isinstance(result, Event), f"line {number}: a label record"
            events.append(result)
    run = replay(events, cfg)
    for letter in run.dead_letters:
        assert letter.source is not None
        rejected[letter.source.offset] = letter.reason
    return rejected, [p.id for p in run.predictions]
