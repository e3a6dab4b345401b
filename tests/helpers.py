"""Test helpers shared by every tier: reference River runs and event builders."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from river import datasets, evaluate, linear_model, metrics, preprocessing

from stratiflow.config import Config, load_config
from stratiflow.io.sources import river_events
from stratiflow.learning.learner import ModelState
from stratiflow.records import Event, class_key
from stratiflow.runner.keyed import final_report, handle
from stratiflow.validation.parse import event_from_object

PHISHING_N = 1250
#: The Grafana dashboard for the job's Prometheus metrics.
GRAFANA_DASHBOARD = (
    Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "stratiflow-dashboard.json"
)
_METRIC_NAME = re.compile(r"\bflink_[A-Za-z0-9_]+")


def reference_model() -> Any:
    """The issue's pipeline, built directly with River (not through our config)."""
    return preprocessing.StandardScaler() | linear_model.LogisticRegression(l2=0.0)


def phishing_events(
    keys: Sequence[str] = ("default",), start_ts: int = 1_700_000_000_000
) -> list[dict[str, Any]]:
    return list(river_events("phishing", start_ts=start_ts, keys=keys))


def river_reference(
    events: Iterable[dict[str, Any]], model_factory: Any = reference_model
) -> dict[str, dict[str, Any]]:
    """predict_proba_one then learn_one per key, in order: {event id: {proba, y_pred, key}}."""
    models: dict[str, Any] = {}
    out: dict[str, dict[str, Any]] = {}
    for e in events:
        model = models.setdefault(e["key"], model_factory())
        x = {k: v for k, v in e["features"].items() if v is not None}
        proba = model.predict_proba_one(x)
        out[e["id"]] = {"proba": proba, "key": e["key"]}
        if e.get("label") is not None:
            model.learn_one(x, e["label"])
    return out


def river_progressive_accuracy(
    events: Iterable[dict[str, Any]], model_factory: Any = reference_model
) -> float:
    stream = [
        ({k: v for k, v in e["features"].items() if v is not None}, e["label"]) for e in events
    ]
    return float(evaluate.progressive_val_score(stream, model_factory(), metrics.Accuracy()).get())


def phishing_accuracy() -> float:
    return float(
        evaluate.progressive_val_score(
            datasets.Phishing(), reference_model(), metrics.Accuracy()
        ).get()
    )


def proba_by_class(prediction: dict[str, Any]) -> dict[str, float]:
    return dict(prediction["proba"])


def assert_matches_river(
    predictions: Iterable[dict[str, Any]], reference: dict[str, dict[str, Any]], tol: float = 1e-9
) -> int:
    """Every prediction's probabilities equal River's for the same event (within ``tol``)."""
    from stratiflow.records import class_key

    checked = 0
    for p in predictions:
        ref = reference[p["id"]]
        expected = {class_key(c): v for c, v in ref["proba"].items()}
        assert p["key"] == ref["key"]
        assert set(p["proba"]) == set(expected), (p["id"], p["proba"], expected)
        for c, v in expected.items():
            assert abs(p["proba"][c] - v) <= tol, (p["id"], c, p["proba"][c], v)
        checked += 1
    return checked


def read_jsonl(path: Any) -> list[dict[str, Any]]:
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


def topic_values(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    """Every record on ``topic`` (up to its true end), decoded from JSON."""
    from stratiflow.io import kafka as kafka_io

    return [json.loads(r.value) for r in kafka_io.read_topic(bootstrap, topic, idle_timeout_s=3)]


def label_outcomes(labels: dict[str, Any]) -> int:
    """Label records accounted for in a metrics record's ``labels`` section: each is
    joined, refused (unknown, duplicate, expired, event rejected) or still held."""
    return sum(
        labels[name]
        for name in ("joined", "unknown", "duplicate", "expired", "event_rejected", "held")
    )


# -- streams for the metrics record's tests (schemas, tables) ------------------------------

T0 = 1_700_000_000_000
#: Metrics settings that turn every section of the record on (probe features set per run).
FULL_METRICS = {"report_every": 5, "window": 10, "fading": 0.9, "stability_reports": 3}


def cfg_with(**sections: Any) -> Config:
    return load_config(sections)


def probe_of(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [dict(e["features"]) for e in events[:3]]


def late_labels(
    raw: list[dict[str, Any]],
    lag: int = 5,
    extra: Callable[[int, dict[str, Any]], dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Every event without its label; the label follows ``lag`` events later as a label
    record stamped with that event's ``ts`` (the last ``lag`` labels never come).
    ``extra(j, event)`` adds fields to event ``j``'s label record."""
    stream: list[dict[str, Any]] = []
    for i, e in enumerate(raw):
        stream.append({**e, "label": None})
        if i >= lag:
            late = raw[i - lag]
            label = {"id": late["id"], "label": late["label"], "ts": e["ts"]}
            if extra is not None:
                label |= extra(i - lag, late)
            stream.append(label)
    return stream


def delayed_stream() -> list[dict[str, Any]]:
    """Phishing events mostly without labels, whose labels come later as label records.

    By event index ``i % 5``: 0 labelled 3 events later (joined), 1 labelled 20 events later
    (after ``labels.ttl`` of 150 ms: expired, and the prediction never_came), 2 never labelled
    (never_came, or still waiting at the end), 3 labelled 1 event later and again 2 events
    later (duplicate), 4 carries its own label. Plus: an early label (held, then joined when
    its event comes), a label for an id that never comes (unknown once the ttl passes), an
    event the model rejects and its label (event_rejected), a label still held at the end, and
    a label for a key with no events at all (an empty report for that key).
    """
    events = list(river_events("phishing", n=50, seed=3, start_ts=T0, interval_ms=10))
    out: list[dict[str, Any]] = []
    due: dict[int, list[dict[str, Any]]] = {}

    def label_of(e: dict[str, Any]) -> dict[str, Any]:
        return {"id": e["id"], "label": e["label"]}

    for i, e in enumerate(events):
        for record in due.pop(i, []):
            out.append({**record, "ts": e["ts"] - 1})
        if i == 5:
            out.append({"id": "nobody", "label": True, "ts": e["ts"]})
        if i == 8:
            out.append({**label_of(events[12]), "ts": e["ts"]})  # before its event
        if i == 20:
            out.append({"id": "bad", "ts": e["ts"], "features": {"x": "text"}})
        if i == 22:
            out.append({"id": "bad", "label": True, "ts": e["ts"]})
        if i % 5 == 4:
            out.append(e)
            continue
        out.append({**e, "label": None})
        if i % 5 == 0:
            due.setdefault(i + 3, []).append(label_of(e))
        elif i % 5 == 1:
            due.setdefault(i + 20, []).append(label_of(e))
        elif i % 5 == 3:
            due.setdefault(i + 1, []).append(label_of(e))
            due.setdefault(i + 2, []).append(label_of(e))
    end = events[-1]["ts"]
    out.append({"id": "never", "label": False, "ts": end})
    out.append({"id": "g1", "label": True, "ts": end, "key": "ghost"})
    return out


def clocked(events: list[dict[str, Any]], cfg: Config) -> list[dict[str, Any]]:
    """Reports made as the Flink model operator makes them: ``handle`` with a moving wall
    clock (``replay`` keeps one ``now_ms``, so its ``events_per_s`` is always null)."""
    state = ModelState.new(cfg, "default")
    waiting: dict[str, Any] = {}
    reports = []
    for i, e in enumerate(events):
        event = event_from_object(e)
        assert isinstance(event, Event)
        reports += handle(state, event, waiting, cfg, now_ms=T0 + 10 * i).reports
    reports.append(final_report(state, cfg, now_ms=T0 + 10 * len(events)))
    return reports


def without_wall_clock(stats: list[dict[str, Any]]) -> list[str]:
    """Window records minus wall-clock time and late counts.

    Late counts travel with a class's next record, and which record that is
    depends on when Flink fires timers; :func:`late_by_class` checks their totals.
    """
    out = []
    for s in stats:
        if s["window"] is None:
            continue
        record = {k: v for k, v in s.items() if k != "emitted_at"}
        record["classes"] = {
            c: {k: v for k, v in counts.items() if k != "late"}
            for c, counts in s["classes"].items()
        }
        out.append(json.dumps(record))
    return sorted(out)


# -- drift and champion/challenger: a run against the pure core's ----------------------


def per_key(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Records grouped by model key, in order, without their wall-clock ``emitted_at``."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        out[r["key"]].append({k: v for k, v in r.items() if k != "emitted_at"})
    return dict(out)


def assert_predictions_equal(online: list[dict[str, Any]], reference: Any) -> None:
    """One prediction per event, each with the replay's probabilities, model version and
    generation (``reference`` is a :class:`~stratiflow.runner.replay.ReplayResult`)."""
    by_id = {p["id"]: p for p in online}
    assert len(by_id) == len(online) == len(reference.predictions)
    for expected in reference.predictions:
        got = by_id[expected.id]
        assert (got["model_version"], got["generation"]) == (
            expected.model_version,
            expected.generation,
        ), expected.id
        for c, p in expected.proba.items():
            assert abs(got["proba"][class_key(c)] - p) <= 1e-9, expected.id


def dashboard_queries(dashboard: dict[str, Any] | None = None) -> list[str]:
    """Every PromQL query of the Grafana dashboard: its panels' and its variables'."""
    board = dashboard or json.loads(GRAFANA_DASHBOARD.read_text())
    queries = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            queries.append(query["query"] if isinstance(query, dict) else query)
    return queries


def dashboard_metrics(dashboard: dict[str, Any] | None = None) -> set[str]:
    """The Prometheus metric names the dashboard's queries read."""
    return {name for q in dashboard_queries(dashboard) for name in _METRIC_NAME.findall(q)}
