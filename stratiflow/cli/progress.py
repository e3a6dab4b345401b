"""Progress on stderr for the commands that go through many events (produce, train,
backtest): a bar with the rate and, when the total is known, the time left; then one
summary line.

>>> p = Progress(total=1000, live=False)
>>> p.start -= 2.0  # as if it had run for two seconds
>>> p.update(500)
>>> p.status(p.start + 2.0)
'[###############...............] 500/1,000 events  250 ev/s  50%  ETA 0:02'
>>> p.summary("produced", now=p.start + 2.0)
'produced 500 events in 2.0 s (250 ev/s)'
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TextIO

__all__ = ["LineCounter", "Progress", "count_lines", "format_clock", "format_duration"]

#: Width of the bar, in characters.
BAR = 30


def format_clock(seconds: float) -> str:
    """``m:ss``, or ``h:mm:ss`` from an hour on (an ETA, say).

    >>> format_clock(7), format_clock(125.4), format_clock(3725)
    ('0:07', '2:05', '1:02:05')
    """
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_duration(seconds: float) -> str:
    """A duration for a summary: ``12.3 s`` under a minute, then ``2 min 05 s``, ``1 h 02 min``.

    >>> format_duration(0.25), format_duration(125), format_duration(3725)
    ('0.2 s', '2 min 05 s', '1 h 02 min')
    """
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


class Progress:
    """A one-line progress bar on stderr, and the summary line a command ends with.

    Parameters
    ----------
    total
        How many items there will be, when known: the bar then shows the share done
        and the time left (ETA) at the rate so far.
    stream
        Where the bar goes (stderr).
    quiet
        No bar (the summary is still available).
    unit
        What is counted, e.g. ``events``.
    live
        Draw the bar; by default only on a terminal, so logs and pipes get no
        carriage-return noise, only the summary.
    """

    def __init__(
        self,
        total: int | None,
        stream: TextIO | None = None,
        quiet: bool = False,
        *,
        unit: str = "events",
        live: bool | None = None,
    ) -> None:
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.unit = unit
        if live is None:
            isatty = getattr(self.stream, "isatty", None)
            live = bool(isatty and isatty())
        self.live = live and not quiet
        self.count = 0
        self.start = time.monotonic()
        self._last_draw = 0.0
        self._drawn = False
        self._closed = False

    @property
    def rate_unit(self) -> str:
        return "ev/s" if self.unit == "events" else f"{self.unit}/s"

    def update(self, n: int = 1) -> None:
        """Count ``n`` more, redrawing at most five times a second."""
        self.set(self.count + n)

    def set(self, count: int) -> None:
        """The count so far (for progress read from elsewhere, e.g. output files)."""
        self.count = count
        now = time.monotonic()
        if self.live and not self._closed and now - self._last_draw >= 0.2:
            self._draw(now)

    def elapsed(self, now: float | None = None) -> float:
        return (time.monotonic() if now is None else now) - self.start

    def rate(self, now: float | None = None) -> float:
        """Items per second since the start."""
        return self.count / max(self.elapsed(now), 1e-9)

    def eta(self, now: float | None = None) -> float | None:
        """Seconds left at the rate so far (``None``: no total, or nothing counted yet).

        >>> p = Progress(total=100, live=False)
        >>> p.eta() is None
        True
        >>> p.count = 25
        >>> round(p.eta(p.start + 5.0), 6)
        15.0
        """
        if not self.total or self.count <= 0:
            return None
        return max(self.total - self.count, 0) / self.rate(now)

    def status(self, now: float | None = None) -> str:
        """The bar's text (without the carriage return that redraws it).

        >>> p = Progress(total=None, live=False)
        >>> p.count = 42
        >>> p.status(p.start + 2.0)
        '42 events  21 ev/s  0:02 elapsed'
        """
        now = time.monotonic() if now is None else now
        rate = f"{self.rate(now):,.0f} {self.rate_unit}"
        if not self.total:
            return f"{self.count:,} {self.unit}  {rate}  {format_clock(self.elapsed(now))} elapsed"
        share = min(self.count / self.total, 1.0)
        done = int(BAR * share)
        eta = self.eta(now)
        left = "ETA --:--" if eta is None else f"ETA {format_clock(eta)}"
        return (
            f"[{'#' * done}{'.' * (BAR - done)}] {self.count:,}/{self.total:,} {self.unit}  "
            f"{rate}  {share:.0%}  {left}"
        )

    def summary(self, verb: str, detail: str = "", now: float | None = None) -> str:
        """The line a command ends with: ``VERB N UNIT[ DETAIL] in T (R UNIT/s)``."""
        now = time.monotonic() if now is None else now
        detail = f" {detail}" if detail else ""
        return (
            f"{verb} {self.count:,} {self.unit}{detail} in "
            f"{format_duration(self.elapsed(now))} ({self.rate(now):,.0f} {self.rate_unit})"
        )

    def close(self) -> None:
        """Draw the final state and end the bar's line (nothing when no bar was drawn);
        the bar stays closed."""
        if self._closed:
            return
        self._closed = True
        if self.live:
            self._draw(time.monotonic())
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False

    def _draw(self, now: float) -> None:
        self._last_draw = now
        # Pad so that a shorter line fully covers the longer one before it.
        self.stream.write(f"\r{self.status(now):<78}")
        self.stream.flush()
        self._drawn = True


def count_lines(path: Path) -> int:
    """Lines of a file (a last line without a newline counts), read in 1 MiB blocks.

    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile("wb") as f:
    ...     _ = f.write(b'{"a": 1}\\n{"a": 2}\\n{"a": 3}')
    ...     f.flush()
    ...     count_lines(Path(f.name))
    3
    """
    lines, last = 0, b"\n"
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            lines += block.count(b"\n")
            last = block[-1:]
    return lines + (last != b"\n")


class LineCounter:
    """Counts the lines of a file another process is writing, reading only what is new.

    A file older than ``since`` (a previous run's output, not yet truncated by the new
    writer) counts as empty; a file that shrank was truncated and is counted again.

    Parameters
    ----------
    path
        The file.
    since
        Wall-clock time (``time.time()``) before which the file's content is stale.
    """

    def __init__(self, path: Path, since: float) -> None:
        self.path = path
        self.since_ns = int(since * 1e9)
        self.lines = 0
        self._offset = 0

    def poll(self) -> int:
        """The number of complete lines written so far."""
        try:
            info = self.path.stat()
        except OSError:
            return self.lines
        if info.st_mtime_ns < self.since_ns:
            return self.lines
        if info.st_size < self._offset:
            self.lines, self._offset = 0, 0
        if info.st_size > self._offset:
            with self.path.open("rb") as handle:
                handle.seek(self._offset)
                chunk = handle.read(info.st_size - self._offset)
            complete = chunk.rfind(b"\n") + 1  # a partial last line waits for its newline
            self.lines += chunk.count(b"\n", 0, complete)
            self._offset += complete
        return self.lines
