"""The dashboard's HTML: served live (assets by URL) or written as one self-contained file."""

from __future__ import annotations

import html
import json
import re
from importlib import resources
from typing import Any

#: The page's assets, in the order the page loads them.
SCRIPTS = ("vendor/uPlot.iife.min.js", "app.js")
STYLES = ("vendor/uPlot.min.css", "app.css")


def asset(name: str) -> str:
    """The text of a file in ``stratiflow/dashboard/static``."""
    return (resources.files("stratiflow.dashboard") / "static" / name).read_text("utf-8")


def live_page(title: str) -> str:
    """The page the server sends: assets from ``static/``, data from ``api/``."""
    styles = "\n".join(f'<link rel="stylesheet" href="static/{name}">' for name in STYLES)
    scripts = "\n".join(f'<script src="static/{name}"></script>' for name in SCRIPTS)
    return _fill(title, styles, scripts, "")


def report_page(title: str, snapshot: dict[str, Any]) -> str:
    """One HTML file holding the charts' code, styles and data (opens offline).

    >>> page = report_page("run", {"seq": 0, "keys": {}, "dead_letters": {}})
    >>> page.count("<script"), "uPlot" in page, 'id="snapshot"' in page
    (3, True, True)
    """
    styles = "\n".join(f"<style>\n{asset(name)}\n</style>" for name in STYLES)
    scripts = "\n".join(f"<script>\n{_script_text(asset(name))}\n</script>" for name in SCRIPTS)
    data = _script_text(json.dumps({**snapshot, "report": {"title": title}}))
    embedded = f'<script id="snapshot" type="application/json">{data}</script>'
    return _fill(title, styles, scripts, embedded)


def _script_text(text: str) -> str:
    # inside <script>, only "</" can end the element early; JSON and JS read "<\/" as "</"
    return text.replace("</", "<\\/")


def _fill(title: str, styles: str, scripts: str, snapshot: str) -> str:
    values = {
        "TITLE": html.escape(title),
        "STYLE": styles,
        "SNAPSHOT": snapshot,
        "SCRIPTS": scripts,
    }
    # one pass, so text inside the values is never taken for a placeholder
    return re.sub(r"\{\{(\w+)\}\}", lambda m: values[m.group(1)], asset("index.html"))


def report_snapshot(page: str) -> dict[str, Any]:
    """The data a page written by :func:`report_page` holds (its inverse, for checks).

    >>> report_snapshot(report_page("t", {"seq": 3, "keys": {}}))["seq"]
    3
    """
    start = page.index('<script id="snapshot" type="application/json">')
    data = page[page.index(">", start) + 1 : page.index("</script>", start)]
    return dict(json.loads(data.replace("<\\/", "</")))
