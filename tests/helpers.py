"""Test helpers shared by every tier: reference River runs and event builders."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from river import datasets, evaluate, linear_model, metrics, preprocessing

from stratiflow.sources import river_events

PHISHING_N = 1250


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
    from stratiflow import kafka_io

    return [json.loads(r.value) for r in kafka_io.read_topic(bootstrap, topic, idle_timeout_s=3)]


def label_outcomes(labels: dict[str, Any]) -> int:
    """Label records accounted for in a metrics record's ``labels`` section: each is
    joined, refused (unknown, duplicate, expired, event rejected) or still held."""
    return sum(
        labels[name]
        for name in ("joined", "unknown", "duplicate", "expired", "event_rejected", "held")
    )
