"""The sampled job's keyed state objects pickle cheaply and exactly.

:class:`~stratiflow.sampling.alignment.EventTimeAligner` and
:class:`~stratiflow.sampling.Reservoir` live in pickled ``ValueState`` that PyFlink
writes back at every bundle end; they keep each held item's bytes after its first
pickle so later writes copy bytes. These tests pin that the round trip is exact, that
the cached bytes are reused, that state pickled before the change still loads, and
that releasing in several steps gives the same items in the same order as releasing
once (the model operator releases up to the watermark at each timer).
"""

from __future__ import annotations

import base64
import pickle
import random

from stratiflow.records import Event
from stratiflow.sampling import Reservoir, TrainingBatch
from stratiflow.sampling.alignment import EventTimeAligner

# Pickled by the code before this change (git HEAD e38a029), protocol 4:
# EventTimeAligner(0) holding Event a (ts 500, label 1), a batch (fire 999) and Event b (ts 1500).
OLD_ALIGNER = (
    "gASVegEAAAAAAACMFHN0cmF0aWZsb3cuYWxpZ25tZW50lIwQRXZlbnRUaW1lQWxpZ25lcpSTlCmBlH2UKIwFZGVs"
    "YXmUSwGMBmV2ZW50c5SMC2NvbGxlY3Rpb25zlIwFZGVxdWWUk5QpUpQoTfMBjBJzdHJhdGlmbG93LnJlY29yZHOU"
    "jAVFdmVudJSTlCmBlE59lCiMAmlklIwBYZSMAnRzlE30AYwIZmVhdHVyZXOUfZSMAXiURz/wAAAAAAAAc4wFbGFi"
    "ZWyUSwGMA2tleZSMB2RlZmF1bHSUjAZzb3VyY2WUTnWGlGKGlE3bBWgNKYGUTn2UKGgQjAFilGgSTdwFaBN9lGgV"
    "R0AAAAAAAAAAc2gWTmgXaBhoGU51hpRihpRljAdiYXRjaGVzlF2UTecDSwCME3N0cmF0aWZsb3cuc2FtcGxpbmeU"
    "jA1UcmFpbmluZ0JhdGNolJOUKYGUXZQoaBhLAE3oA03nA12USwBlYoeUYYwHaG9yaXpvbpRN2wV1Yi4="
)
# Reservoir(2, seed=3) after adding Event(f"e{i}", i, {"x": float(i)}, i % 2) for i in 0..4.
OLD_RESERVOIR = (
    "gASVPgEAAAAAAACME3N0cmF0aWZsb3cuc2FtcGxpbmeUjAlSZXNlcnZvaXKUk5QpgZROfZQojAVfaGVhcJRdlCiK"
    "CMFzY56RFF+6Svv///+MEnN0cmF0aWZsb3cucmVjb3Jkc5SMBUV2ZW50lJOUKYGUTn2UKIwCaWSUjAJlNJSMAnRz"
    "lEsEjAhmZWF0dXJlc5R9lIwBeJRHQBAAAAAAAABzjAVsYWJlbJRLAIwDa2V5lIwHZGVmYXVsdJSMBnNvdXJjZZRO"
    "dYaUYoeUiggSGdYrB4rA60r/////aAkpgZROfZQoaAyMAmUwlGgOSwBoD32UaBFHAAAAAAAAAABzaBJLAGgTaBRo"
    "FU51hpRih5RljARfa2V5lEMIAAAAAAAAAAOUjAZfb3JkZXKUSwWMCGNhcGFjaXR5lEsCjARzZWVulEsFdYaUYi4="
)


def _events(n: int, seed: int = 1) -> list[Event]:
    rng = random.Random(seed)
    ts = 0
    out = []
    for i in range(n):
        ts += rng.choice([0, 1, 1, 3, 50])
        jitter = rng.randint(-40, 0)  # a little disorder
        out.append(Event(f"e{i}", ts + jitter, {"x": rng.random(), "c": "a"}, i % 3))
    return out


def _ids(items: list[object]) -> list[str]:
    return [getattr(item, "id", f"batch@{getattr(item, 'start', '?')}") for item in items]


def test_aligner_round_trip_is_exact_and_reuses_bytes() -> None:
    aligner = EventTimeAligner(max_out_of_orderness=10)
    for event in _events(50):
        aligner.add_event(event)
    aligner.add_batch(TrainingBatch("default", 0, 100, 109, []))
    aligner.timer = 7
    first = pickle.dumps(aligner)
    packed = [entry[2] for entry in aligner.events]
    assert all(isinstance(b, bytes) for b in packed)
    assert pickle.dumps(aligner) == first  # the same bytes, not pickled again
    assert all(a is b for a, b in zip(packed, [e[2] for e in aligner.events], strict=True))

    copy = pickle.loads(first)
    assert copy.timer == 7 and copy.horizon == aligner.horizon and copy.delay == aligner.delay
    assert len(copy) == len(aligner) and copy.next_due() == aligner.next_due()
    assert list(copy.release(2**62)) == list(aligner.release(2**62))
    assert pickle.loads(pickle.dumps(copy)).events == copy.events  # an empty one too


def test_aligner_pickled_before_the_change_still_loads() -> None:
    aligner = pickle.loads(base64.b64decode(OLD_ALIGNER))
    assert aligner.timer is None and len(aligner) == 3 and aligner.next_due() == 499
    assert _ids(list(aligner.release(watermark=2000))) == ["a", "batch@0", "b"]
    again = pickle.loads(pickle.dumps(aligner))
    assert len(again) == 0


def test_releasing_in_steps_equals_releasing_once() -> None:
    """The model operator releases up to each watermark it sees, at elements and at timers."""
    events = _events(400, seed=3)
    batches = [TrainingBatch("default", s, s + 500, s + 499, []) for s in range(0, 10_000, 500)]

    def fill() -> EventTimeAligner:
        aligner = EventTimeAligner(max_out_of_orderness=20)
        for event in events:
            aligner.add_event(event)
        for batch in batches:
            aligner.add_batch(batch)
        return aligner

    once = list(fill().release(2**62))
    rng = random.Random(5)
    stepped_aligner = fill()
    stepped: list[object] = []
    watermark = -100
    while len(stepped) < len(once):
        watermark += rng.choice([1, 7, 100, 333])
        stepped += stepped_aligner.release(watermark)
        # round trips through pickle between steps, as between bundles
        stepped_aligner = pickle.loads(pickle.dumps(stepped_aligner))
    assert _ids(stepped) == _ids(once)


def test_reservoir_round_trip_is_exact_and_keeps_sampling_identically() -> None:
    a, b = Reservoir(20, seed=11), Reservoir(20, seed=11)
    events = _events(500, seed=4)
    for event in events[:250]:
        a.add(event.id, event)
        b.add(event.id, event)
    first = pickle.dumps(b)
    assert pickle.dumps(b) == first
    b = pickle.loads(first)
    assert b.items() == a.items() and b.seen == a.seen and len(b) == len(a)
    for event in events[250:]:
        a.add(event.id, event)
        b.add(event.id, event)
        if event.ts % 7 == 0:
            b = pickle.loads(pickle.dumps(b))
    assert b.items() == a.items() and b.seen == a.seen == 500


def test_reservoir_pickled_before_the_change_still_loads() -> None:
    reservoir = pickle.loads(base64.b64decode(OLD_RESERVOIR))
    assert reservoir.seen == 5 and reservoir.capacity == 2
    assert [e.id for e in reservoir.items()] == ["e0", "e4"]
    fresh = Reservoir(2, seed=3)
    for i in range(5):
        fresh.add(f"e{i}", Event(f"e{i}", i, {"x": float(i)}, i % 2))
    assert fresh.items() == reservoir.items()
    for r in (reservoir, fresh):
        for i in range(5, 40):
            r.add(f"e{i}", Event(f"e{i}", i, {"x": float(i)}, i % 2))
    assert pickle.loads(pickle.dumps(reservoir)).items() == fresh.items()
