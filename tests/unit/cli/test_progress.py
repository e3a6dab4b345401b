"""The progress bar (rate, share, ETA), its summary line, and counting a growing file."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import pytest

from stratiflow.cli.progress import (
    LineCounter,
    Progress,
    count_lines,
    format_clock,
    format_duration,
)


@pytest.mark.parametrize(
    ("seconds", "clock"),
    [(0, "0:00"), (59.4, "0:59"), (59.6, "1:00"), (61, "1:01"), (3599, "59:59"), (3600, "1:00:00")],
)
def test_format_clock(seconds: float, clock: str) -> None:
    assert format_clock(seconds) == clock


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (3.14, "3.1 s"),
        (59.9, "59.9 s"),
        (60, "1 min 00 s"),
        (605, "10 min 05 s"),
        (7260, "2 h 01 min"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_eta_is_what_is_left_at_the_rate_so_far() -> None:
    p = Progress(total=10_000, live=False)
    t0 = p.start
    assert p.eta(t0 + 1) is None  # nothing done yet: no rate to go by
    assert p.status(t0 + 1).endswith("0%  ETA --:--")
    p.set(2_500)
    assert p.eta(t0 + 10) == pytest.approx(30.0)  # 250 ev/s, 7,500 to go
    assert p.status(t0 + 10) == (
        "[#######.......................] 2,500/10,000 events  250 ev/s  25%  ETA 0:30"
    )
    p.set(10_000)
    assert p.eta(t0 + 40) == 0.0
    assert p.status(t0 + 40).endswith("10,000/10,000 events  250 ev/s  100%  ETA 0:00")
    p.set(12_000)  # more than announced (label records, say): full bar, no negative ETA
    assert p.status(t0 + 40).startswith("[" + "#" * 30 + "] 12,000/10,000")
    assert p.eta(t0 + 40) == 0.0


def test_without_a_total_it_counts_up() -> None:
    p = Progress(total=None, unit="records", live=False)
    p.update(1_234)
    assert p.eta() is None
    assert p.status(p.start + 125) == "1,234 records  10 records/s  2:05 elapsed"


def test_summary() -> None:
    p = Progress(total=None, live=False)
    p.update(1_250)
    assert p.summary("produced", "to events on 127.0.0.1:9092", now=p.start + 2.5) == (
        "produced 1,250 events to events on 127.0.0.1:9092 in 2.5 s (500 ev/s)"
    )


def test_the_bar_is_drawn_on_a_terminal_only() -> None:
    quiet = io.StringIO()  # not a terminal: no bar, no stray newline
    p = Progress(total=10, stream=quiet)
    p.update(10)
    p.close()
    assert quiet.getvalue() == ""

    live = io.StringIO()
    p = Progress(total=10, stream=live, live=True)
    p.update(5)
    p.close()
    text = live.getvalue()
    assert text.startswith("\r[") and text.endswith("\n") and "10" in text
    assert "\r[###############...............] 5/10 events" in text
    p.close()  # a second close adds nothing
    assert live.getvalue() == text

    muted = io.StringIO()
    p = Progress(total=10, stream=muted, quiet=True, live=True)
    p.update(5)
    p.close()
    assert muted.getvalue() == ""


def test_count_lines(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_bytes(b"")
    assert count_lines(path) == 0
    path.write_bytes(b"a\nb\n")
    assert count_lines(path) == 2
    path.write_bytes(b"a\nb\nc")
    assert count_lines(path) == 3
    path.write_bytes(b"x\n" * 3_000_000)  # more than one block
    assert count_lines(path) == 3_000_000


def test_line_counter_follows_a_growing_file(tmp_path: Path) -> None:
    path = tmp_path / "predictions.jsonl"
    path.write_bytes(b"old\n" * 7)
    old = time.time() - 60
    os.utime(path, (old, old))  # a previous run's output
    counter = LineCounter(path, since=time.time() - 1)
    assert counter.poll() == 0  # stale: not counted before the job rewrites it
    with path.open("wb") as out:  # the job truncates it and writes
        out.write(b'{"id": 1}\n{"id": 2}\n{"id"')
        out.flush()
        assert counter.poll() == 2  # the partial third line waits
        out.write(b": 3}\n")
        out.flush()
        assert counter.poll() == 3
    path.write_bytes(b"a\n")  # truncated again (a restarted job): counted afresh
    assert counter.poll() == 1
    assert LineCounter(tmp_path / "missing.jsonl", since=0).poll() == 0
