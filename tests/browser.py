"""A real browser for the dashboard tests: Debian's Chromium driven by Playwright.

Screenshots go to ``$STRATIFLOW_ARTIFACTS`` (default ``.stratiflow/artifacts``), kept as
the tests' artifacts.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from stratiflow.dashboard.report import find_chromium

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("STRATIFLOW_ARTIFACTS", REPO / ".stratiflow" / "artifacts"))
STRATIFLOW = str(Path(sys.executable).parent / "stratiflow")


@contextmanager
def browser_page() -> Iterator[Any]:
    """A fresh page in headless Chromium; page errors fail the test when it ends."""
    from playwright.sync_api import sync_playwright

    chromium = find_chromium()
    assert chromium, "no Chromium: `make setup-browser` installs Debian's chromium"
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 1000})
            page.on("pageerror", lambda error: errors.append(str(error)))
            yield page
        finally:
            browser.close()
    assert not errors, f"the page raised: {errors}"


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def shown(value: Any, digits: int = 4) -> str:
    """A value as the page formats it (``fmt`` in app.js)."""
    if value is None:
        return "\N{EN DASH}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if float(value).is_integer():
        return str(int(value))
    # Number.prototype.toFixed rounds the exact binary value, a tie away from zero
    exact = Decimal(value).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    return f"{exact:.{digits}f}"


def read_page(page: Any) -> dict[str, Any]:
    """What the page shows: the keys table, the selected key's tiles, model events and dead
    letters by reason, all dead letters by reason, and the status lines."""
    return page.evaluate(
        """() => {
        const text = (node) => node ? node.textContent : null;
        const keys = {};
        for (const tr of document.querySelectorAll('#keys tbody tr')) {
            const row = {};
            for (const td of tr.querySelectorAll('td')) row[td.dataset.field] = td.textContent;
            keys[tr.dataset.key] = row;
        }
        const tiles = {};
        for (const node of document.querySelectorAll('#tiles [data-value]')) {
            tiles[node.dataset.value] = node.textContent;
        }
        const reasons = (selector) => {
            const counts = {};
            for (const tr of document.querySelectorAll(`${selector} tbody tr[data-reason]`)) {
                const cell = tr.querySelector('[data-field=count]');
                counts[tr.dataset.reason] = Number(cell.textContent);
            }
            return counts;
        };
        const dead = reasons('#dead-letters');
        const keyDead = reasons('#key-dead-letters');
        const markers = [...document.querySelectorAll('#markers tbody tr[data-type]')]
            .map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent));
        const charts = [...document.querySelectorAll('.chart')].map((c) => c.dataset.chart);
        return {keys, tiles, dead, keyDead, markers, charts,
                status: text(document.getElementById('status')),
                sources: text(document.getElementById('sources')),
                selected: window.stratiflow.selected(),
                seq: Number(document.body.dataset.seq || -1)};
    }"""
    )


def select_key(page: Any, key: str) -> None:
    page.select_option("#key-select", key)
    page.wait_for_function("key => window.stratiflow.selected() === key", arg=key)


@contextmanager
def dashboard_process(*args: str, port: int) -> Iterator[subprocess.Popen[str]]:
    """``stratiflow dashboard ARGS --port PORT``, running until the block ends."""
    import urllib.request

    process = subprocess.Popen(
        [STRATIFLOW, "dashboard", *args, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.communicate()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/healthz", timeout=2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "the dashboard did not start"
                time.sleep(0.2)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
