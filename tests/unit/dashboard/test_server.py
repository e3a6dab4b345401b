"""The live dashboard's server, run for real (uvicorn on loopback) and read over HTTP."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from stratiflow.dashboard.board import Board
from stratiflow.dashboard.server import Dashboard
from stratiflow.local.procs import free_port


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Dashboard, str]]:
    dashboard = Dashboard(title="unit", board=Board(max_patches=50))
    dashboard.follow_run(tmp_path)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(dashboard.app(), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield dashboard, f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    assert dashboard.stop.is_set()  # the readers stop with the app


def get(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status, response.headers["content-type"], response.read()


def sse_messages(url: str, wanted: int) -> list[dict]:
    messages = []
    with urllib.request.urlopen(url, timeout=10) as response:
        for line in response:
            if line.startswith(b"data: "):
                messages.append(json.loads(line[6:]))
                if len(messages) >= wanted:
                    break
    return messages


def test_the_page_and_its_bundled_assets_are_served(served):
    _, base = served
    status, kind, body = get(base + "/")
    assert status == 200 and kind.startswith("text/html")
    page = body.decode()
    for asset in ("static/vendor/uPlot.iife.min.js", "static/app.js", "static/app.css"):
        assert asset in page
        status, _, data = get(f"{base}/{asset}")
        assert status == 200 and len(data) > 100


def test_the_snapshot_follows_the_files_of_the_run(served, tmp_path: Path):
    _, base = served
    (tmp_path / "dead_letters.jsonl").write_text('{"reason": "invalid_json"}\n')
    deadline = time.monotonic() + 10
    while True:
        snap = json.loads(get(base + "/api/snapshot")[2])
        if snap["dead_letters"]:
            break
        assert time.monotonic() < deadline, snap
        time.sleep(0.1)
    assert snap["dead_letters"] == {"invalid_json": 1}
    assert snap["sources"]["files"]["ok"] is True


def test_server_sent_events_carry_the_patches_after_the_page_s_sequence(served):
    dashboard, base = served
    with dashboard.lock:
        dashboard.board.add("label_requests", {"key": "k", "id": "1"})
        seq = dashboard.board.seq
        dashboard.board.add("label_requests", {"key": "k", "id": "2"})
    (message,) = sse_messages(f"{base}/api/events?since={seq}", 1)
    kinds = [(p["kind"], p["seq"]) for p in message["patches"]]
    assert kinds == [("label_request", seq + 1)]


def test_a_page_too_far_behind_is_told_to_reload(served):
    dashboard, base = served
    with dashboard.lock:
        for n in range(60):  # more than the 50 patches kept
            dashboard.board.add("label_requests", {"key": "k", "id": str(n)})
    (message,) = sse_messages(f"{base}/api/events?since=1", 1)
    assert [p["kind"] for p in message["patches"]] == ["reset"]


def test_a_bad_sequence_number_is_refused(served):
    _, base = served
    with pytest.raises(urllib.error.HTTPError) as error:
        get(base + "/api/events?since=abc")
    assert error.value.code == 400
