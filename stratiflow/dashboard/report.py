"""``stratiflow report``: a backtest's charts as one self-contained HTML file (and PNGs)."""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stratiflow.dashboard.board import Board, Stream
from stratiflow.dashboard.page import report_page
from stratiflow.dashboard.sources import RUN_FILES, RunDirectory

#: Where the browser is looked for (Debian's package), unless ``STRATIFLOW_CHROMIUM`` says.
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


class ReportError(Exception):
    """The report cannot be written; the message says what to do."""


@dataclass
class Report:
    html: Path
    records: int
    keys: list[str]
    pngs: list[Path] = field(default_factory=list)


def board_of_run(run_dir: Path) -> Board:
    """The board of a finished run directory (every complete line of its output files)."""
    if not run_dir.is_dir():
        raise ReportError(f"no run directory at {run_dir} (give the --out of a backtest)")
    if not any((run_dir / name).exists() for name in RUN_FILES.values()):
        raise ReportError(
            f"{run_dir} holds none of {', '.join(RUN_FILES.values())}: "
            "is it the --out directory of `stratiflow backtest`?"
        )
    board = Board(max_rows=20000)
    RunDirectory(run_dir).poll(board)
    return board


def board_of_runs(runs: Mapping[str, Mapping[Stream, Iterable[Mapping[str, Any]]]]) -> Board:
    """Several runs side by side: each run's records under the run's name as their key.

    For comparisons (``make eval-sampling`` and the like): the page's key table then
    compares the runs, and its key selector switches between them. A run with more than
    one model key shows each as ``run / key``.

    >>> board = board_of_runs({"uniform": {"metrics": [{"key": "default", "report": 1}]},
    ...                        "balanced": {"metrics": [{"key": "default", "report": 1}]}})
    >>> sorted(board.keys)
    ['balanced', 'uniform']
    """
    board = Board(max_rows=20000)
    for name, streams in runs.items():
        records = {stream: list(values) for stream, values in streams.items()}
        keys = {r.get("key") for values in records.values() for r in values if r.get("key")}
        for stream, values in records.items():
            for record in values:
                key = record.get("key")
                renamed = name if len(keys) <= 1 or key is None else f"{name} / {key}"
                board.add(stream, {**record, "key": renamed})
    return board


def write_report(run_dir: Path, out: Path, title: str | None = None, png: bool = False) -> Report:
    """Write ``out`` (HTML, opens offline) and with ``png`` one PNG per key and chart."""
    return write_board_report(board_of_run(run_dir), out, title or run_dir.resolve().name, png)


def write_board_report(board: Board, out: Path, title: str, png: bool = False) -> Report:
    """Write the charts of ``board`` to ``out``, and with ``png`` one PNG per key and chart."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report_page(title, board.snapshot()), encoding="utf-8")
    model_keys = sorted(key for key, view in board.keys.items() if view.metrics)
    report = Report(out, sum(board.records.values()), model_keys)
    if png:
        report.pngs = render_pngs(out, report.keys)
    return report


def find_chromium() -> str | None:
    """The path of a Chromium to drive, or ``None``."""
    import os

    named = os.environ.get("STRATIFLOW_CHROMIUM")
    if named:
        return named if Path(named).exists() else None
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def render_pngs(page: Path, keys: list[str]) -> list[Path]:
    """Screenshot each chart of each key of a written report (headless Chromium)."""
    chromium = find_chromium()
    if chromium is None:
        raise ReportError(
            "--png needs Chromium: install Debian's `chromium` (make setup-browser) "
            "or name one in STRATIFLOW_CHROMIUM"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        raise ReportError("--png needs Playwright: pip install playwright") from exc
    written = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            tab = browser.new_page(viewport={"width": 1300, "height": 900})
            tab.goto(page.resolve().as_uri())
            for key in keys:
                tab.evaluate("key => window.stratiflow.select(key)", key)
                tab.wait_for_timeout(100)
                for chart in tab.query_selector_all(".chart"):
                    name = chart.get_attribute("data-chart")
                    target = page.with_name(f"{page.stem}-{_safe(key)}-{name}.png")
                    chart.screenshot(path=str(target))
                    written.append(target)
        finally:
            browser.close()
    return written


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "_"
