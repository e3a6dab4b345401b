"""Helpers of the fault tests: sizes, pacing, waiting, and the results table of ``make chaos``.

``make test`` runs the fault tests at smoke size; ``make chaos`` at full size
(``STRATIFLOW_CHAOS_N``, default 50 000 there) and writes each run's row to
``STRATIFLOW_CHAOS_RESULTS`` for the table in docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stratiflow.io import kafka as kafka_io

N = int(os.environ.get("STRATIFLOW_CHAOS_N", "4000"))
RESULTS = os.environ.get("STRATIFLOW_CHAOS_RESULTS")
START_TS = 1_700_000_000_000


def rest(port: int, path: str, method: str = "GET") -> Any:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    with urllib.request.urlopen(request, timeout=5) as response:
        body = response.read()
    return json.loads(body) if body else None


def count(bootstrap: str, topic: str) -> int:
    return kafka_io.count_records(bootstrap, topic)


def wait_for(predicate, timeout: float, what: str, every: float = 0.5) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)
    return time.monotonic() - start


def send_paced(
    send: Callable[[int], None],
    first: int,
    last: int,
    rate: float,
    sent: list[int],
    *,
    wait: Callable[[float], object] = time.sleep,
) -> None:
    """``send(i)`` for i in [first, last) at ``rate`` per second; ``sent[0]`` follows along.

    ``wait`` sleeps between sends: an ``Event.wait`` stops the pacing once it is set.
    """
    start = time.monotonic()
    for i in range(first, last):
        delay = start + (i - first) / rate - time.monotonic()
        if delay > 0:
            wait(delay)
        send(i)
        sent[0] = i + 1


def record_result(row: dict[str, Any]) -> None:
    if not RESULTS:
        return
    path = Path(RESULTS)
    rows = json.loads(path.read_text()) if path.exists() else []
    rows = [r for r in rows if r["fault"] != row["fault"]] + [row]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=2) + "\n")
