"""`stratiflow dashboard` and `stratiflow report` as a user meets them when something is wrong:
one error line, exit 2."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

STRATIFLOW = str(Path(sys.executable).parent / "stratiflow")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([STRATIFLOW, *args], capture_output=True, text=True, timeout=60)


def test_a_taken_port_is_one_line(tmp_path: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("dashboard", "--run", str(tmp_path), "--port", str(port))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"error: port {port} is taken: stop what uses it or pass --port"
    ]


def test_a_missing_run_directory_is_one_line(tmp_path: Path):
    for args in (["dashboard", "--run"], ["report"]):
        result = run(*args, str(tmp_path / "nope"))
        assert result.returncode == 2, args
        (line,) = result.stderr.splitlines()
        assert line.startswith(f"error: no run directory at {tmp_path / 'nope'}")


def test_a_directory_without_outputs_is_named(tmp_path: Path):
    result = run("report", str(tmp_path), "--out", str(tmp_path / "r.html"))
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert "holds none of metrics.jsonl" in line and "stratiflow backtest" in line
    assert not (tmp_path / "r.html").exists()
