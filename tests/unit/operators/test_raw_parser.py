"""The raw parser: records with no value, and the wall-clock limit (validation.max_future_ms),
recomputed per millisecond."""

import json
import time
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from stratiflow.config import load_config
from stratiflow.operators.parse import RawParser
from stratiflow.operators.raw import raw_of, raw_row, unpack
from stratiflow.records import DeadLetter, Event, SourceRef, to_json

SCHEMAS = Path(__file__).resolve().parents[3] / "schemas"


def _raw(ts: int, offset: int) -> tuple[str, int, int, bytes, bool]:
    event = {"id": f"e{offset}", "ts": ts, "features": {"x": 1.0}, "label": True}
    return ("events", 0, offset, json.dumps(event).encode(), True)


def _wire(letter: object) -> dict[str, Any]:
    """A dead letter as the job writes it to its topic."""
    assert isinstance(letter, DeadLetter)
    return json.loads(to_json(letter.to_dict()))


def test_a_record_with_no_value_is_told_from_an_empty_one():
    """A tombstone's dead letter has raw null (encoding none); a zero-byte value's has ""."""
    parser = RawParser(load_config(None))
    tombstone = _wire(parser.parse(raw_of(raw_row("events", 2, 7, None))))
    empty = _wire(parser.parse(raw_of(raw_row("events", 2, 8, b""))))
    assert tombstone["reason"] == empty["reason"] == "empty_payload"
    assert (tombstone["raw"], tombstone["raw_encoding"]) == (None, "none")
    assert (empty["raw"], empty["raw_encoding"]) == ("", "utf-8")
    assert (tombstone["partition"], tombstone["offset"], empty["offset"]) == (2, 7, 8)
    schema = json.loads((SCHEMAS / "dead_letter.schema.json").read_text(encoding="utf-8"))
    assert Draft202012Validator(schema).is_valid(tombstone)
    assert Draft202012Validator(schema).is_valid(empty)


def test_raw_rows_carry_whether_the_record_had_a_value():
    # Tuple fields cannot be null in Flink: no value travels as b"" plus a flag.
    assert raw_of(raw_row("t", 0, 1, None)) == ("t", 0, 1, b"", False)
    assert raw_of(raw_row("t", 0, 2, b"")) == ("t", 0, 2, b"", True)
    assert unpack(("t", 0, 1, b"", False)) == (SourceRef("t", 0, 1), None)
    assert unpack(("t", 0, 2, b"", True)) == (SourceRef("t", 0, 2), b"")
    assert unpack(("t", 0, 3, b"{}", True)) == (SourceRef("t", 0, 3), b"{}")


def test_future_limit_follows_the_wall_clock_across_records():
    parser = RawParser(load_config({"validation": {"max_future_ms": 1000}}))
    for offset in range(200):  # many records within the same milliseconds
        now = int(time.time() * 1000)
        assert isinstance(parser.parse(_raw(now + 500, offset)), Event)
        letter = parser.parse(_raw(now + 5000, offset))
        assert isinstance(letter, DeadLetter) and letter.reason == "ts_in_future"
    time.sleep(0.05)
    later = int(time.time() * 1000)
    # A ts beyond the first records' limit but within this one's: the limit moved on.
    assert isinstance(parser.parse(_raw(later + 990, 999)), Event)


def test_no_future_limit_when_disabled():
    parser = RawParser(load_config({"validation": {"max_future_ms": 0}}))
    far = int(time.time() * 1000) + 10**9
    assert isinstance(parser.parse(_raw(far, 0)), Event)
