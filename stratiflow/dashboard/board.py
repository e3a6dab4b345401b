"""The dashboard's view of a run: the job's output records folded into chart rows per key.

Pure and synchronous: the live server, the static report and the tests feed records in
and read the same rows out, so what the page draws is what is tested here. Every change
is also kept as a *patch* (a small dict) with a sequence number, which the live page
applies without reloading everything.
"""

from __future__ import annotations

import json
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from stratiflow.records import MODEL_EVENT_TYPES

Stream = Literal["metrics", "sampling_stats", "model_events", "label_requests", "dead_letters"]

#: The output streams the dashboard follows (topic roles in ``topics``, files of a backtest).
STREAMS: tuple[Stream, ...] = get_args(Stream)

#: model-events types drawn as markers on the metric charts: all of them.
MARKER_TYPES = MODEL_EVENT_TYPES

#: The key under which dead letters without a model key are counted.
NO_KEY = "(no key)"


def _get(record: Mapping[str, Any], *path: str) -> Any:
    value: Any = record
    for name in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(name)
    return value


def _seconds(ms: Any) -> float | None:
    return ms / 1000.0 if isinstance(ms, int | float) and not isinstance(ms, bool) else None


def metric_row(record: Mapping[str, Any]) -> dict[str, Any]:
    """One metrics record as a chart row (x = event time in seconds).

    >>> row = metric_row({"key": "k", "report": 1, "event_ts": 2000, "model_version": 5,
    ...     "counts": {"scored": 4, "predicted": 5}, "cumulative": {"accuracy": 0.75}})
    >>> row["t"], row["acc"], row["scored"], row["r_acc"]
    (2.0, 0.75, 4, None)
    """
    rolling = record.get("rolling") if isinstance(record.get("rolling"), Mapping) else None
    per_class = _get(rolling or record.get("cumulative") or {}, "per_class") or {}
    predicted = _get(record, "counts", "predicted")
    waiting = _get(record, "labels", "waiting")
    candidates = record.get("candidates") if isinstance(record.get("candidates"), Mapping) else None
    metric_name = candidates.get("metric") if candidates else None
    pipelines = {}
    if candidates:
        for name, pipeline in (candidates.get("pipelines") or {}).items():
            if isinstance(pipeline, Mapping):
                pipelines[str(name)] = {
                    "role": pipeline.get("role"),
                    "value": pipeline.get(metric_name) if metric_name else None,
                    "learned": pipeline.get("learned"),
                }
    return {
        "t": _seconds(record.get("event_ts")),
        "report": record.get("report"),
        "final": bool(record.get("final")),
        "emitted_at": record.get("emitted_at"),
        "model_version": record.get("model_version"),
        "generation": record.get("generation"),
        "seen": _get(record, "counts", "seen"),
        "predicted": predicted,
        "scored": _get(record, "counts", "scored"),
        "learned": _get(record, "counts", "learned"),
        "rejected": _get(record, "counts", "rejected"),
        "acc": _get(record, "cumulative", "accuracy"),
        "bal_acc": _get(record, "cumulative", "balanced_accuracy"),
        "macro_f1": _get(record, "cumulative", "macro", "f1"),
        "log_loss": _get(record, "cumulative", "log_loss"),
        "r_acc": _get(rolling or {}, "accuracy"),
        "r_bal_acc": _get(rolling or {}, "balanced_accuracy"),
        "r_macro_f1": _get(rolling or {}, "macro", "f1"),
        "r_log_loss": _get(rolling or {}, "log_loss"),
        "recall": {str(c): m.get("recall") for c, m in per_class.items() if isinstance(m, Mapping)},
        "trained_on": dict(record.get("trained_on") or {}),
        "label_lag_p50": _get(record, "labels", "delay_ms", "p50"),
        "label_lag_p99": _get(record, "labels", "delay_ms", "p99"),
        "waiting_share": (
            waiting / predicted
            if isinstance(waiting, int) and isinstance(predicted, int) and predicted > 0
            else None
        ),
        "active_used": _get(record, "active", "used_in_window"),
        "active_limit": _get(record, "active", "limit"),
        "active_requested": _get(record, "active", "requested"),
        "champion": candidates.get("champion") if candidates else None,
        "candidate_metric": metric_name,
        "pipelines": pipelines,
        "drifts": _get(record, "drift", "drifts"),
        "warnings": _get(record, "drift", "warnings"),
        # update time and resources (cost), and how stable the model is
        "predict_p50": _get(record, "cost", "predict_us", "p50"),
        "predict_p99": _get(record, "cost", "predict_us", "p99"),
        "learn_p50": _get(record, "cost", "learn_us", "p50"),
        "learn_p99": _get(record, "cost", "learn_us", "p99"),
        "events_per_s": _get(record, "cost", "events_per_s"),
        "model_bytes": _get(record, "cost", "model_bytes"),
        "state_bytes": _get(record, "cost", "state_bytes"),
        "spread_acc_std": _get(record, "stability", "spread", "accuracy", "std"),
        "probe_changed": _get(record, "stability", "probe_changed"),
    }


def mix_row(record: Mapping[str, Any]) -> dict[str, Any] | None:
    """One sampling-stats window as a class-mix row; ``None`` for a late-events-only record."""
    end = _seconds(_get(record, "window", "end"))
    if end is None:
        return None
    trained = record.get("trained") or 0
    classes = record.get("classes") or {}
    return {
        "t": end,
        "trained": trained,
        "counts": {
            str(c): v.get("trained", 0) for c, v in classes.items() if isinstance(v, Mapping)
        },
    }


def marker_row(record: Mapping[str, Any]) -> dict[str, Any]:
    """One model-events record as a marker on the metric charts."""
    kind = record.get("type")
    detail = ""
    if kind == "promotion":
        detail = f"{_get(record, 'model', 'before')} → {_get(record, 'model', 'after')}"
    elif kind in ("model_reset", "model_swap"):
        before, after = _get(record, "generation", "before"), _get(record, "generation", "after")
        detail = f"generation {before} → {after}"
    return {
        "t": _seconds(record.get("ts")),
        "type": kind,
        "scored": record.get("scored"),
        "id": record.get("id"),
        "detail": detail,
    }


@dataclass
class KeyView:
    """What the dashboard holds for one model key."""

    metrics: list[dict[str, Any]] = field(default_factory=list)
    #: Trained-on class mix per sampling window (``sampling_stats``).
    mix: list[dict[str, Any]] = field(default_factory=list)
    markers: list[dict[str, Any]] = field(default_factory=list)
    label_requests: int = 0
    dead_letters: Counter[str] = field(default_factory=Counter)

    def to_json(self) -> dict[str, Any]:
        return {
            "metrics": self.metrics,
            "mix": self.mix,
            "markers": self.markers,
            "label_requests": self.label_requests,
            "dead_letters": dict(self.dead_letters),
        }


class Board:
    """The records of a run folded into per-key chart rows, with a patch log.

    Parameters
    ----------
    max_rows
        Rows kept per key and series; past it the oldest half is thinned to every other
        row (the page reloads when that happens: a ``reset`` patch).
    max_patches
        Patches kept for live pages that fell behind; an older page reloads.

    Examples
    --------
    >>> board = Board()
    >>> patches = board.add("dead_letters", {"reason": "invalid_json", "key": None})
    >>> board.snapshot()["dead_letters"], patches[0]["kind"], board.seq
    ({'invalid_json': 1}, 'dead_letter', 1)
    """

    def __init__(self, max_rows: int = 5000, max_patches: int = 20000):
        self.max_rows = max_rows
        self.keys: dict[str, KeyView] = {}
        self.dead_letters: Counter[str] = Counter()
        self.records: Counter[str] = Counter()
        #: Records that were not JSON objects (counted, shown on the page, not drawn).
        self.unreadable: Counter[str] = Counter()
        self.health: dict[str, Any] | None = None
        self.sources: dict[str, dict[str, Any]] = {}
        self.seq = 0
        self._patches: deque[tuple[int, dict[str, Any]]] = deque(maxlen=max_patches)

    def view(self, key: str) -> KeyView:
        if key not in self.keys:
            self.keys[key] = KeyView()
        return self.keys[key]

    def add_bytes(self, stream: Stream, value: bytes | str | None) -> list[dict[str, Any]]:
        """Decode one record (a Kafka value or a JSONL line) and :meth:`add` it."""
        try:
            record = json.loads(value) if value else None
        except ValueError:
            record = None
        if not isinstance(record, dict):
            self.unreadable[stream] += 1
            return [self._patch({"kind": "unreadable", "stream": stream})]
        return self.add(stream, record)

    def add(self, stream: Stream, record: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Fold one record in; return the patches it made (often one)."""
        self.records[stream] += 1
        key = record.get("key")
        key = str(key) if key is not None else None
        if stream == "dead_letters":
            reason = str(record.get("reason") or "unknown")
            self.dead_letters[reason] += 1
            self.view(key or NO_KEY).dead_letters[reason] += 1
            return [self._patch({"kind": "dead_letter", "key": key or NO_KEY, "reason": reason})]
        if key is None:
            self.unreadable[stream] += 1
            return [self._patch({"kind": "unreadable", "stream": stream})]
        view = self.view(key)
        if stream == "metrics":
            row = metric_row(record)
            previous = view.metrics[-1]["trained_on"] if view.metrics else {}
            # the class mix learned between two reports: what the model trained on
            # when no sampler reports windows
            row["trained_delta"] = {c: n - previous.get(c, 0) for c, n in row["trained_on"].items()}
            return self._append(key, "metrics", view.metrics, row)
        if stream == "sampling_stats":
            window = mix_row(record)
            return [] if window is None else self._append(key, "mix", view.mix, window)
        if stream == "model_events":
            if record.get("type") not in MARKER_TYPES:
                return []
            return self._append(key, "markers", view.markers, marker_row(record))
        view.label_requests += 1
        return [self._patch({"kind": "label_request", "key": key})]

    def add_all(self, stream: Stream, records: Iterable[Mapping[str, Any]]) -> None:
        for record in records:
            self.add(stream, record)

    def set_health(self, health: dict[str, Any] | None) -> list[dict[str, Any]]:
        """The job's health from Flink's REST API (``None``: not asked)."""
        self.health = health
        return [self._patch({"kind": "health", "health": health})]

    def set_source(self, name: str, ok: bool, message: str) -> list[dict[str, Any]]:
        """Whether a source (a topic, a file, the REST API) is being read, in words."""
        state = {"ok": ok, "message": message}
        if self.sources.get(name) == state:
            return []
        self.sources[name] = state
        return [self._patch({"kind": "source", "name": name, **state})]

    def patches_since(self, seq: int) -> list[dict[str, Any]] | None:
        """Patches after ``seq``; ``None`` when some were dropped (the page must reload)."""
        if seq >= self.seq:
            return []
        if not self._patches or self._patches[0][0] > seq + 1:
            return None
        return [patch for n, patch in self._patches if n > seq]

    def snapshot(self) -> dict[str, Any]:
        """Everything the page draws, as JSON-ready data."""
        return {
            "seq": self.seq,
            "keys": {key: self.keys[key].to_json() for key in sorted(self.keys)},
            "dead_letters": dict(self.dead_letters),
            "records": dict(self.records),
            "unreadable": dict(self.unreadable),
            "health": self.health,
            "sources": self.sources,
        }

    def _append(
        self, key: str, series: str, rows: list[dict[str, Any]], row: dict[str, Any]
    ) -> list[dict[str, Any]]:
        rows.append(row)
        if len(rows) > self.max_rows:
            half = len(rows) // 2
            rows[:half] = rows[:half:2]
            return [self._patch({"kind": "reset"})]
        return [self._patch({"kind": "row", "key": key, "series": series, "row": row})]

    def _patch(self, patch: dict[str, Any]) -> dict[str, Any]:
        self.seq += 1
        patch["seq"] = self.seq
        self._patches.append((self.seq, patch))
        return patch
