"""Drift detection and adaptation in the job's core equal River driven by hand.

Each test runs :func:`stratiflow.runner.replay.replay` on a drifting stream and a plain
River loop written from the documented order: predict, learn, score, feed the detector,
then adapt. Predictions (probabilities, model version, generation) and the events where
warnings, drifts, resets and swaps happen must be the same.
"""

from __future__ import annotations

import pytest
from river import compose, drift, linear_model, preprocessing

from stratiflow.config import load_config
from stratiflow.io.sources import river_events
from stratiflow.runner.replay import replay
from stratiflow.validation.parse import event_from_object

N = 8000  # the *_drift streams switch concept at 5000


def events(name: str = "sea_drift", n: int = N) -> list:
    return [event_from_object(e) for e in river_events(name, n=n, seed=3)]


def pipeline():
    return compose.Pipeline(preprocessing.StandardScaler(), linear_model.LogisticRegression())


MODEL = [{"preprocessing.StandardScaler": {}}, {"linear_model.LogisticRegression": {}}]


def by_hand(stream, detector, adaptation: str, min_scored: int = 500):
    """River alone: what the job's documented semantics say should happen."""
    model, learned, generation = pipeline(), 0, 0
    background, bg_learned, bg_scored, bg_correct, serving_correct = None, 0, 0, 0, 0
    in_warning = False
    predictions, marks = [], []
    for e in stream:
        x, y = e.features, e.label
        proba = model.predict_proba_one(x)
        y_pred = max(proba, key=proba.get) if proba else None
        shadow = None
        if background is not None:
            p = background.predict_proba_one(x)
            shadow = max(p, key=p.get) if p else None
        predictions.append((e.id, proba, learned, generation))
        model.learn_one(x, y)
        learned += 1
        if background is not None:
            background.learn_one(x, y)
            bg_learned += 1
        if y_pred is None:
            continue
        correct = y_pred == y
        if background is not None and bg_learned:
            bg_scored += 1
            bg_correct += shadow == y
            serving_correct += correct
        estimate = getattr(detector, "estimation", None)
        detector.update(0.0 if correct else 1.0)
        is_drift = detector.drift_detected
        if is_drift and estimate is not None and detector.estimation <= estimate:
            is_drift = False  # drift.direction: increase — the error fell, not a drift to act on
        warning = getattr(detector, "warning_detected", False) and not is_drift
        if warning and not in_warning:
            marks.append(("drift_warning", e.id))
            if adaptation == "background" and background is None:
                background, bg_learned = pipeline(), 0
                bg_scored = bg_correct = serving_correct = 0
                marks.append(("background_start", e.id))
        in_warning = warning
        better = background is not None and bg_scored >= min_scored and bg_correct > serving_correct
        if is_drift:
            marks.append(("drift", e.id))
            if adaptation == "reset":
                model, learned, generation = pipeline(), 0, generation + 1
                marks.append(("model_reset", e.id))
            elif adaptation == "background":
                if background is not None and bg_learned:
                    better = True
                elif background is None:
                    background, bg_learned = pipeline(), 0
                    bg_scored = bg_correct = serving_correct = 0
                    marks.append(("background_start", e.id))
                    continue
        if better and (is_drift or adaptation == "background"):
            model, learned, generation = background, bg_learned, generation + 1
            background, bg_learned = None, 0
            bg_scored = bg_correct = serving_correct = 0
            marks.append(("model_swap", e.id))
    return predictions, marks


def run(stream, **drift_section):
    cfg = load_config({"model": MODEL, "drift": drift_section})
    result = replay(stream, cfg, now_ms=0)
    predictions = [(p.id, p.proba, p.model_version, p.generation) for p in result.predictions]
    marks = [(m["type"], m["id"]) for m in result.model_events]
    return result, predictions, marks


@pytest.mark.parametrize("adaptation", ["none", "reset"])
def test_adwin_on_the_error_sees_river_s_sequence_and_resets_at_the_same_event(adaptation):
    stream = events()
    result, predictions, marks = run(stream, detector="drift.ADWIN", adaptation=adaptation)
    expected_predictions, expected_marks = by_hand(stream, drift.ADWIN(), adaptation)
    assert marks == expected_marks
    assert predictions == expected_predictions
    assert any(kind == "drift" for kind, _ in marks), "the stream must drift for this to mean much"
    if adaptation == "reset":
        assert result.states["default"].generation == sum(k == "model_reset" for k, _ in marks) > 0


def test_with_adaptation_none_predictions_are_those_without_drift_detection():
    stream = events(n=6000)
    _, with_detector, marks = run(stream, detector="drift.ADWIN")
    plain = replay(stream, load_config({"model": MODEL}), now_ms=0)
    assert with_detector == [
        (p.id, p.proba, p.model_version, p.generation) for p in plain.predictions
    ]
    assert marks and plain.model_events == []


def test_a_background_model_starts_at_a_warning_and_takes_over_at_the_drift():
    stream = events("agrawal_drift")
    _, predictions, marks = run(
        stream, detector="drift.binary.DDM", adaptation="background", min_scored=500
    )
    expected_predictions, expected_marks = by_hand(stream, drift.binary.DDM(), "background")
    assert marks == expected_marks
    assert predictions == expected_predictions
    kinds = [k for k, _ in marks]
    assert "background_start" in kinds and "model_swap" in kinds


def test_model_events_say_what_changed():
    stream = events()
    result, _, _ = run(stream, detector="drift.ADWIN", adaptation="reset")
    resets = [m for m in result.model_events if m["type"] == "model_reset"]
    assert resets
    for m in resets:
        assert m["generation"]["after"] == m["generation"]["before"] + 1
        assert m["model_version"]["after"] == 0 < m["model_version"]["before"]
        assert m["metric"]["after"] is None and 0 <= m["metric"]["before"] <= 1
        assert m["schema_version"] == 1 and m["detector"] == "drift.ADWIN"
    final = [r for r in result.reports if r["final"]][-1]
    assert final["drift"]["resets"] == len(resets) == final["generation"]
    assert final["drift"]["drifts"] == sum(m["type"] == "drift" for m in result.model_events)
