"""``stratiflow doctor``: one line per check, saying what to do when something is wrong."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from stratiflow.cli import doctor
from stratiflow.local.paths import LocalPaths

STRATIFLOW = str(Path(sys.executable).parent / "stratiflow")
LINE = re.compile(r"^(ok  |warn|FAIL) [a-z]+: \S")


def test_doctor_on_an_unprovisioned_machine_without_a_broker(tmp_path: Path) -> None:
    env = {**os.environ, "STRATIFLOW_HOME": str(tmp_path / "home")}
    env.pop("STRATIFLOW_DEBUG", None)
    result = subprocess.run(
        [STRATIFLOW, "doctor", "--bootstrap-servers", "127.0.0.1:1"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 2, result.stdout + result.stderr  # the jars are missing
    assert result.stderr == ""
    *checks, last = result.stdout.splitlines()
    assert all(LINE.match(line) for line in checks), checks
    by_name = {line[5:].split(":", 1)[0]: line for line in checks}
    assert list(by_name) == [
        "python", "packages", "java", "jars", "maven", "config", "broker", "flink", "ports",
        "memory", "disk", "chromium",
    ]  # fmt: skip
    broker = by_name["broker"]
    assert broker.startswith("warn broker: cannot reach the Kafka broker at 127.0.0.1:1")
    assert "`stratiflow local broker start`" in broker
    jars = by_name["jars"]
    assert jars.startswith("FAIL jars: none of the ") and "run `stratiflow local setup`" in jars
    assert by_name["config"] == "ok   config: the defaults (no --config)"
    assert last.startswith("doctor: ") and last.endswith(" failed (jars)")


def test_a_config_that_does_not_load_fails_its_line(tmp_path: Path) -> None:
    import argparse

    from stratiflow.cli.main import _config_from

    bad = tmp_path / "job.yaml"
    bad.write_text("modle: []\n")
    args = argparse.Namespace(config=bad, set=[], bootstrap_servers="127.0.0.1:1")
    check, cfg = doctor.check_config(args, _config_from)
    assert check.status == "FAIL" and "did you mean model?" in check.detail
    assert cfg.kafka.bootstrap_servers == "127.0.0.1:1"  # the other checks go on with it


def test_low_memory_is_a_warning(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:        4000000 kB\nMemAvailable:     900000 kB\n")
    check = doctor.check_memory(meminfo)
    assert check.status == "warn" and check.detail.startswith("0.9 GiB available of 3.8 GiB")
    meminfo.write_text("MemTotal:       16000000 kB\nMemAvailable:   12000000 kB\n")
    assert doctor.check_memory(meminfo) == doctor.Check(
        "memory", "ok", "11.4 GiB available of 15.3 GiB"
    )
    assert doctor.check_memory(tmp_path / "none").status == "warn"


def test_a_taken_port_is_named(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        check = doctor.check_ports(LocalPaths(tmp_path), {port: "broker"})
    assert check.status == "warn"
    assert check.detail.startswith(f"{port} (broker) is taken by ")
    assert "--port" in check.detail
    assert doctor.check_ports(LocalPaths(tmp_path), {port: "broker"}).status == "ok"


def test_no_chromium_is_a_warning() -> None:
    check = doctor.check_chromium(["no-such-browser-here"])
    assert check.status == "warn" and "apt-get install chromium" in check.detail


@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('openjdk version "21" 2023-09-19', 21),
        ('java version "1.8.0_392"', 8),
        ("no version here", None),
    ],
)
def test_java_major(output: str, major: int | None) -> None:
    assert doctor.java_major(output) == major


def test_the_summary_counts_and_names_failures() -> None:
    checks = [doctor.Check("a", "ok", "x"), doctor.Check("b", "ok", "y")]
    assert doctor.summary(checks) == "doctor: 2 ok, 0 warnings, 0 failed"
    checks += [doctor.Check("jars", "FAIL", "z"), doctor.Check("java", "FAIL", "z")]
    assert doctor.summary(checks) == "doctor: 2 ok, 0 warnings, 2 failed (jars, java)"
