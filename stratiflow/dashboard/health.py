"""The job's health from Flink's REST API: state, rates, back-pressure, watermarks, checkpoints."""

from __future__ import annotations

import json
import time
import urllib.request
from typing import Any


class FlinkHealth:
    """Asks a JobManager's REST API about the newest running (or last) job.

    Parameters
    ----------
    jobmanager
        ``HOST:PORT`` of the REST endpoint (the web UI's address).

    Rates are per second between two calls of :meth:`poll` (``None`` on the first).
    """

    def __init__(self, jobmanager: str, timeout_s: float = 3.0):
        base = jobmanager if "://" in jobmanager else f"http://{jobmanager}"
        self.base = base.rstrip("/")
        self.timeout_s = timeout_s
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self._last: tuple[float, int, int] | None = None

    def get(self, path: str) -> Any:
        with self._opener.open(self.base + path, timeout=self.timeout_s) as response:
            return json.loads(response.read())

    def poll(self) -> dict[str, Any]:
        """One health record; raises ``OSError`` when the REST API cannot be reached."""
        jobs = self.get("/jobs/overview").get("jobs", [])
        if not jobs:
            return {"jobmanager": self.base, "job": None}
        running = [j for j in jobs if j.get("state") == "RUNNING"]
        job = max(running or jobs, key=lambda j: j.get("start-time", 0))
        job_id = job["jid"]
        details = self.get(f"/jobs/{job_id}")
        vertices = details.get("vertices", [])
        sources, last = _ends(details)
        # A source task's read-records are the records its source read (the events, even
        # when the task sends them on in batches); the last tasks' write-records are what
        # they emitted to the sinks chained into them (predictions, metrics, dead letters).
        read_in = sum(_metric(v, "read-records") for v in vertices if v.get("id") in sources)
        written = sum(_metric(v, "write-records") for v in vertices if v.get("id") in last)
        now = time.monotonic()
        rate_in = rate_out = None
        if self._last is not None and now > self._last[0]:
            elapsed = now - self._last[0]
            rate_in = max(read_in - self._last[1], 0) / elapsed
            rate_out = max(written - self._last[2], 0) / elapsed
        self._last = (now, read_in, written)
        health: dict[str, Any] = {
            "jobmanager": self.base,
            "job": job.get("name"),
            "job_id": job_id,
            "state": job.get("state"),
            "started_ms": job.get("start-time"),
            "duration_ms": job.get("duration"),
            "records_in": read_in,
            "records_out": written,
            "rate_in": rate_in,
            "rate_out": rate_out,
            "backpressure": None,
            "watermark_lag_ms": None,
            "last_checkpoint": None,
            "restarts": None,
        }
        if job.get("state") != "RUNNING":
            return health
        health["backpressure"] = self._backpressure(job_id, vertices)
        health["watermark_lag_ms"] = self._watermark_lag(job_id, vertices)
        health["last_checkpoint"] = self._checkpoint(job_id)
        health["restarts"] = self._restarts(job_id)
        return health

    def _backpressure(self, job_id: str, vertices: list[dict[str, Any]]) -> str | None:
        order = {"ok": 0, "low": 1, "high": 2}
        worst: str | None = None
        for vertex in vertices:
            level = self.get(f"/jobs/{job_id}/vertices/{vertex['id']}/backpressure").get(
                "backpressure-level"
            )
            if level in order and (worst is None or order[level] > order[worst]):
                worst = level
        return worst

    def _watermark_lag(self, job_id: str, vertices: list[dict[str, Any]]) -> float | None:
        lowest = None
        for vertex in vertices:
            for item in self.get(f"/jobs/{job_id}/vertices/{vertex['id']}/watermarks"):
                try:
                    value = int(item.get("value"))
                except (TypeError, ValueError):
                    continue
                # Long.MIN_VALUE: no watermark yet
                if value > -(2**62) and (lowest is None or value < lowest):
                    lowest = value
        return None if lowest is None else time.time() * 1000 - lowest

    def _checkpoint(self, job_id: str) -> dict[str, Any] | None:
        stats = self.get(f"/jobs/{job_id}/checkpoints")
        latest = (stats.get("latest") or {}).get("completed")
        counts = stats.get("counts") or {}
        if not latest:
            return {"completed": counts.get("completed", 0), "failed": counts.get("failed", 0)}
        return {
            "id": latest.get("id"),
            "at_ms": latest.get("latest_ack_timestamp"),
            "duration_ms": latest.get("end_to_end_duration"),
            "size_bytes": latest.get("state_size", latest.get("checkpointed_size")),
            "completed": counts.get("completed", 0),
            "failed": counts.get("failed", 0),
        }

    def _restarts(self, job_id: str) -> int | None:
        for item in self.get(f"/jobs/{job_id}/metrics?get=numRestarts"):
            if item.get("id") == "numRestarts":
                try:
                    return int(float(item.get("value")))
                except (TypeError, ValueError):
                    return None
        return None


def _metric(vertex: dict[str, Any], name: str) -> int:
    value = vertex.get("metrics", {}).get(name, 0)
    return value if isinstance(value, int) else 0


def _ends(details: dict[str, Any]) -> tuple[set[str], set[str]]:
    """The ids of the plan's source vertices (no input) and last vertices (no output)."""
    nodes = details.get("plan", {}).get("nodes", [])
    fed = {edge.get("id") for node in nodes for edge in node.get("inputs", []) or []}
    sources = {node.get("id") for node in nodes if not node.get("inputs")}
    sinks = {node.get("id") for node in nodes if node.get("id") not in fed}
    return sources, sinks
