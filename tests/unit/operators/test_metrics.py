"""The model operators' figures for Flink's metric system (stratiflow.operators.metrics).

The metric group here is PyFlink's MetricGroup interface kept in memory (no JVM, and no
PyFlink import in the unit tier): what matters is what the operators register and how often
they call it; the e2e tier scrapes a real reporter.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stratiflow.config import load_config
from stratiflow.learning.state import ModelState
from stratiflow.operators.metrics import (
    COUNTERS,
    DEAD_LETTER_REASONS,
    MODEL_EVENT_TYPES,
    PPM,
    ModelMetrics,
    accuracy_ppm,
    prometheus_name,
    prometheus_names,
)
from stratiflow.records import Event
from stratiflow.runner.keyed import handle_events
from stratiflow.runner.report import metrics_report

SCHEMAS = Path(__file__).resolve().parents[3] / "schemas"


class _Counter:
    def __init__(self, calls: list[str], name: str) -> None:
        self.calls, self.name, self.count = calls, name, 0

    def inc(self, n: int = 1) -> None:
        self.calls.append(self.name)
        self.count += n

    def dec(self, n: int = 1) -> None:
        self.inc(-n)

    def get_count(self) -> int:
        return self.count


class Group:
    """PyFlink's MetricGroup in memory: metrics by scope path, every call recorded."""

    def __init__(self, path: tuple[str, ...] = (), root: Group | None = None) -> None:
        self.path = path
        self.root = root or self
        if root is None:
            self.counters: dict[tuple[str, ...], _Counter] = {}
            self.gauges: dict[tuple[str, ...], Callable[[], int]] = {}
            self.calls: list[str] = []

    def add_group(self, name: str, extra: str | None = None) -> Group:
        return Group((*self.path, name if extra is None else f"{name}={extra}"), self.root)

    def counter(self, name: str) -> _Counter:
        key = (*self.path, name)
        counters = self.root.counters
        if key not in counters:
            counters[key] = _Counter(self.root.calls, "/".join(key))
        return counters[key]

    def gauge(self, name: str, obj: Callable[[], int]) -> None:
        self.root.calls.append("gauge")
        self.root.gauges[(*self.path, name)] = obj


def _events(key: str, n: int, start: int = 0) -> list[Event]:
    return [
        Event(f"{key}{i}", i, {"x": float(i % 7)}, label=(i * 3) % 5 < 2, key=key)
        for i in range(start, start + n)
    ]


def _run(metrics: ModelMetrics, state: ModelState, events: list[Event], cfg: Any) -> None:
    """What a model operator does with one input element of ``events``."""
    before = metrics.start(state)
    out = handle_events(state, events, {}, cfg, now_ms=0)
    for letter in out.dead_letters:
        metrics.dead_letter(letter.reason)
    metrics.model_events(out.model_events)
    metrics.flush(before, state)


def _counts(group: Group) -> dict[str, int]:
    return {key[-1]: c.count for key, c in group.counters.items() if len(key) == 1}


def test_counters_equal_the_keys_counts_and_move_once_per_element() -> None:
    cfg = load_config({"metrics": {"window": 50}})
    group = Group()
    metrics = ModelMetrics(group, gauge_keys=20, gauges=True, model_events=False)
    states = {key: ModelState.new(cfg, key) for key in ("a", "b")}
    _run(metrics, states["a"], _events("a", 256), cfg)
    calls = len(group.calls)
    assert calls <= len(COUNTERS) + 1  # the counters and one gauge, for 256 events
    _run(metrics, states["b"], _events("b", 100), cfg)
    _run(metrics, states["a"], _events("a", 40, start=256), cfg)
    for name in COUNTERS:
        assert _counts(group)[name] == sum(getattr(s.counts, name) for s in states.values())
    assert _counts(group)["predicted"] == 396
    # Per element, never per record.
    assert len(group.calls) - calls <= 2 * (len(COUNTERS) + 1)


def test_every_counter_exists_from_the_first_element_even_at_zero() -> None:
    cfg = load_config(None)
    group = Group()
    metrics = ModelMetrics(group, gauge_keys=0, gauges=True, model_events=False)
    _run(metrics, ModelState.new(cfg, "a"), _events("a", 3), cfg)
    assert set(_counts(group)) == set(COUNTERS)
    assert _counts(group)["rejected"] == 0


def test_accuracy_gauges_for_the_first_keys_only_read_the_rolling_accuracy() -> None:
    cfg = load_config({"metrics": {"window": 30}})
    group = Group()
    metrics = ModelMetrics(group, gauge_keys=2, gauges=True, model_events=False)
    states = {key: ModelState.new(cfg, key) for key in ("k1", "k2", "k3")}
    for key, state in states.items():
        _run(metrics, state, _events(key, 80), cfg)
    assert set(group.gauges) == {
        ("model_key=k1", "rolling_accuracy_ppm"),
        ("model_key=k2", "rolling_accuracy_ppm"),
    }
    _run(metrics, states["k1"], _events("k1", 17, start=80), cfg)
    for key in ("k1", "k2"):
        report = metrics_report(states[key], key, now_ms=0)
        gauge = group.gauges[(f"model_key={key}", "rolling_accuracy_ppm")]
        assert gauge() == round(report["rolling"]["accuracy"] * PPM) == accuracy_ppm(states[key])


def test_without_a_window_the_gauge_reads_the_cumulative_accuracy() -> None:
    cfg = load_config({"metrics": {"window": 0}})
    state = ModelState.new(cfg, "k")
    handle_events(state, _events("k", 50), {}, cfg, now_ms=0)
    cumulative = metrics_report(state, "k", now_ms=0)["cumulative"]["accuracy"]
    assert accuracy_ppm(state) == round(cumulative * PPM)
    assert accuracy_ppm(ModelState.new(cfg, "new")) is None


def test_no_gauges_when_the_mode_cannot_read_them() -> None:
    cfg = load_config(None)
    group = Group()
    metrics = ModelMetrics(group, gauge_keys=20, gauges=False, model_events=False)
    _run(metrics, ModelState.new(cfg, "a"), _events("a", 20), cfg)
    assert group.gauges == {}


def test_dead_letters_are_counted_by_reason_in_a_closed_set() -> None:
    group = Group()
    metrics = ModelMetrics(group, gauge_keys=0, gauges=True, model_events=False)
    for reason in ("invalid_json", "invalid_json", "bad_id", "something_new"):
        metrics.dead_letter(reason)
    assert group.calls == []  # tallied, not yet in the metric system
    metrics.flush(None, None)
    by_reason = {k[0]: c.count for k, c in group.counters.items() if k[-1] == "dead_letters"}
    assert by_reason == {"reason=invalid_json": 2, "reason=bad_id": 1, "reason=other": 1}
    assert len(group.calls) == 3


def test_model_event_counters_exist_at_zero_and_count_by_type() -> None:
    group = Group()
    metrics = ModelMetrics(group, gauge_keys=0, gauges=True, model_events=True)
    metrics.model_events([{"type": "drift"}, {"type": "drift_warning"}, {"type": "drift"}])
    metrics.flush(None, None)
    by_type = {k[0]: c.count for k, c in group.counters.items() if k[-1] == "model_events"}
    assert by_type == {f"type={t}": 0 for t in MODEL_EVENT_TYPES} | {
        "type=drift": 2,
        "type=drift_warning": 1,
    }


def test_the_closed_sets_are_the_schemas_enums() -> None:
    letter = json.loads((SCHEMAS / "dead_letter.schema.json").read_text())
    event = json.loads((SCHEMAS / "model_event.schema.json").read_text())
    assert set(DEAD_LETTER_REASONS) == set(letter["properties"]["reason"]["enum"])
    assert set(MODEL_EVENT_TYPES) == set(event["properties"]["type"]["enum"])


def test_prometheus_names() -> None:
    scope = "flink_taskmanager_job_task_operator_stratiflow"
    assert {name: prometheus_name(name) for name in prometheus_names()} == {
        "predicted": f"{scope}_predicted",
        "scored": f"{scope}_scored",
        "learned": f"{scope}_learned",
        "rejected": f"{scope}_rejected",
        "dead_letters": f"{scope}_reason_dead_letters",
        "model_events": f"{scope}_type_model_events",
        "rolling_accuracy_ppm": f"{scope}_model_key_rolling_accuracy_ppm",
    }
