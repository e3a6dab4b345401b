"""`make demo` as a newcomer runs it: the dashboard's address first, the model learning on
it, and the summary at the end (its reconciliation and River parity checks)."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request

import pytest

from stratiflow.local.procs import free_port
from tests.e2e.cli import STRATIFLOW

pytestmark = pytest.mark.e2e


def test_the_demo_opens_with_the_dashboard_and_ends_with_its_summary():
    demo = subprocess.Popen(
        [STRATIFLOW, "demo", "--port", str(free_port())],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert demo.stdout is not None
    lines: list[str] = []
    url = None
    learned = 0
    for line in demo.stdout:
        lines.append(line)
        if url is None and line.startswith("==> dashboard: "):
            said = [ln for ln in lines if ln.startswith("==>")]
            assert said == [line], "the dashboard's address is the first thing the demo says"
            url = line.split()[2]
        if url is not None and "live metrics" in line:
            # while the job runs, the page's data is the job's metrics
            deadline = time.monotonic() + 120
            while learned == 0 and time.monotonic() < deadline:
                with urllib.request.urlopen(url + "api/snapshot", timeout=5) as response:
                    board = json.loads(response.read())
                rows = board["keys"].get("default", {}).get("metrics", [])
                learned = rows[-1]["learned"] if rows else 0
                time.sleep(0.5)
    code = demo.wait(timeout=60)
    text = "".join(lines)
    assert code == 0, text[-3000:]
    assert url is not None and learned > 0, text[-3000:]
    assert "reconciled         yes" in text and ", identical)" in text
    with pytest.raises(OSError):  # the dashboard stops with the demo
        urllib.request.urlopen(url + "api/healthz", timeout=2)
