"""A short `make bench` run: the harness measures all three contestants on the same
events and the job's predictions equal bare River's. Nothing here is timed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from stratiflow.local.procs import free_port, job_environ

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_the_benchmark_harness_runs_end_to_end_and_the_job_matches_bare_river(tmp_path):
    out = tmp_path / "bench.json"
    # "thread" also guards thread mode, which once hung in a silent GIL deadlock.
    command = [sys.executable, "benchmarks/bench.py", "--events", "2000"]
    command += ["--variants", "base", "thread"]
    command += [
        "--port",
        str(free_port()),
        "--instance",
        "bench-smoke",
        "--work",
        str(tmp_path / "work"),
        "--out",
        str(out),
    ]
    command += ["--latency", "--latency-seconds", "3", "--latency-warmup", "2"]
    # The framework peers (Quix Streams, Bytewax) need venvs installed from PyPI: not here.
    command += ["--run-timeout", "180", "--peers", "--no-framework-peers", "--backtest"]
    done = subprocess.run(
        command, cwd=REPO_ROOT, env=job_environ(), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads(out.read_text())
    base, thread = results["runs"]
    for run in base, thread:
        assert "error" not in run, run
        assert run["complete"] and run["stratiflow"]["distinct_ids"] == 2000
        assert run["max_p_true_difference"] == 0.0  # the same model, step for step
        assert run["bare_river"]["eps"] > 0 and run["kafka_loop"]["steady_eps"] > 0
        assert run["stratiflow"]["steady_eps"] > 0 and run["stratiflow"]["peak_rss_mb"] > 0
    # River's own evaluation loop and the confluent-kafka loop: same events, same model.
    peers = base["peers"]
    assert set(peers) == {"progressive_val_score", "confluent_kafka_loop"}
    for name, peer in peers.items():
        assert "error" not in peer, (name, peer)
        assert peer["max_p_true_difference"] == 0.0 and peer["eps"] > 0, (name, peer)
    # The backtest on the same events file: complete, bare River's probabilities.
    backtest = base["backtest"]
    assert "error" not in backtest, backtest
    assert backtest["complete"] and backtest["predictions"] == 2000
    assert backtest["max_p_true_difference"] == 0.0 and backtest["steady_eps"] > 0
    assert "backtest" not in thread  # the first variant only
    # Thread mode runs Python inside the JVM (PyFlink falls back to process mode silently).
    assert base["stratiflow"]["python_workers"] == 1
    assert thread["stratiflow"]["python_workers"] == 0
    latency = results["latency"]
    assert latency["sent"] > 0 and latency["answered"] == latency["sent"]
    assert latency["p50_ms"] is not None and latency["p99_ms"] >= latency["p50_ms"]
    assert latency["warmup_p99_ms"] is not None  # the warm-up's events are answered too
    # make test installs the bench extra, so the load generator is librdkafka's.
    assert latency["producer_client"].startswith("confluent-kafka"), latency
