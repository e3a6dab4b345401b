"""The raw parser's wall-clock limit (validation.max_future_ms), recomputed per millisecond."""

import json
import time

from operators.parse import RawParser
from stratiflow.config import load_config
from stratiflow.records import Event


def _raw(ts: int, offset: int) -> tuple[str, int, int, bytes]:
    event = {"id": f"e{offset}", "ts": ts, "features": {"x": 1.0}, "label": True}
    return ("events", 0, offset, json.dumps(event).encode())


def test_future_limit_follows_the_wall_clock_across_records():
    parser = RawParser(load_config({"validation": {"max_future_ms": 1000}}))
    for offset in range(200):  # many records within the same milliseconds
        now = int(time.time() * 1000)
        assert isinstance(parser.parse(_raw(now + 500, offset)), Event)
        letter = parser.parse(_raw(now + 5000, offset))
        assert isinstance(letter, str) and json.loads(letter)["reason"] == "ts_in_future"
    time.sleep(0.05)
    later = int(time.time() * 1000)
    # A ts beyond the first records' limit but within this one's: the limit moved on.
    assert isinstance(parser.parse(_raw(later + 990, 999)), Event)


def test_no_future_limit_when_disabled():
    parser = RawParser(load_config({"validation": {"max_future_ms": 0}}))
    far = int(time.time() * 1000) + 10**9
    assert isinstance(parser.parse(_raw(far, 0)), Event)
