"""The benchmark's live producer and backlog check (benchmarks/bench.py)."""

from __future__ import annotations

import json
import time

from benchmarks.bench import _keeps_up, _produce_at, _Template, find_sustainable_rate, generate


class _Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []

    def send(self, topic: str, value: bytes, key: bytes) -> None:
        self.sent.append((topic, value, key))


def test_a_template_sends_the_event_with_its_new_id_and_the_produce_time():
    event = generate("agrawal", 3, keys=2)[1]
    out = _Recorder()
    before = int(time.time() * 1000)
    _Template(event).send(out, "live", "live-7")
    after = int(time.time() * 1000)
    ((topic, value, key),) = out.sent
    sent = json.loads(value)
    assert topic == "live" and key == event["key"].encode()
    assert sent["id"] == "live-7" and before <= sent["ts"] <= after
    assert {k: v for k, v in sent.items() if k not in ("id", "ts")} == {
        k: v for k, v in event.items() if k not in ("id", "ts")
    }


def test_a_run_keeps_up_unless_its_last_third_waits_clearly_longer_or_over_a_second():
    assert _keeps_up(100.0, 150.0)
    assert _keeps_up(20.0, 80.0)  # +50 ms of slack for short latencies
    assert not _keeps_up(100.0, 400.0)
    assert not _keeps_up(None, 100.0)
    assert not _keeps_up(3640.0, 4828.0)  # steady, but seconds behind


def test_producing_at_a_rate_sends_that_many_events_with_numbered_ids():
    templates = [_Template(e) for e in generate("agrawal", 4, keys=1)]
    out = _Recorder()
    start = time.monotonic()
    sent = _produce_at(out, templates, "live", "warmup-", 2000, start, 0.3, offset=3)
    assert sent == len(out.sent) and 0 < sent <= 600  # never ahead of 2000/s over 0.3 s
    ids = [json.loads(value)["id"] for _, value, _ in out.sent]
    assert ids == [f"warmup-{i}" for i in range(sent)]
    # offset 3 rotates the templates: the first event is the fourth template's
    assert out.sent[0][1].endswith(templates[3].tail)


def test_the_sustainable_rate_is_the_highest_probed_rate_that_kept_up():
    probed: list[float] = []

    def measure(rate: float) -> dict:
        probed.append(rate)
        return {"rate": rate, "keeps_up": rate <= 5000}

    rate, probes = find_sustainable_rate(measure, 8000, steps=4)
    assert probed == [4400, 6200, 5300, 4850]  # bisection between 800 and 8000
    assert rate == 4850 and [p["rate"] for p in probes] == probed
