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
from tests.helpers import late_labels

N = 8000  # the *_drift streams switch concept at 5000


def events(name: str = "sea_drift", n: int = N) -> list:
    return [event_from_object(e) for e in river_events(name, n=n, seed=3)]


def pipeline():
    return compose.Pipeline(preprocessing.StandardScaler(), linear_model.LogisticRegression())


MODEL = [{"preprocessing.StandardScaler": {}}, {"linear_model.LogisticRegression": {}}]


class ByHand:
    """River alone: what the job's documented semantics say should happen."""

    def __init__(self, detector, adaptation: str, min_scored: int = 500):
        self.detector, self.adaptation, self.min_scored = detector, adaptation, min_scored
        self.model, self.learned, self.generation = pipeline(), 0, 0
        self.background, self.serial = None, 0
        self.bg_learned = self.bg_scored = self.bg_correct = self.serving_correct = 0
        self.in_warning = False
        self.shadow_scores = 0
        self.predictions, self.marks = [], []

    def predict(self, e):
        """The serving model's prediction, and the background's answer (serial, label)."""
        proba = self.model.predict_proba_one(e.features)
        shadow = None
        if self.background is not None:
            p = self.background.predict_proba_one(e.features)
            shadow = (self.serial, max(p, key=p.get) if p else None)
        self.predictions.append((e.id, proba, self.learned, self.generation))
        return (max(proba, key=proba.get) if proba else None), shadow

    def learn(self, x, y):
        self.model.learn_one(x, y)
        self.learned += 1
        if self.background is not None:
            self.background.learn_one(x, y)
            self.bg_learned += 1

    def _start_background(self, event_id):
        self.background, self.bg_learned, self.serial = pipeline(), 0, self.serial + 1
        self.bg_scored = self.bg_correct = self.serving_correct = 0
        self.marks.append(("background_start", event_id))

    def _serve(self, model, learned, kind, event_id):
        self.model, self.learned, self.generation = model, learned, self.generation + 1
        self.background, self.bg_learned = None, 0
        self.bg_scored = self.bg_correct = self.serving_correct = 0
        self.marks.append((kind, event_id))

    def score(self, event_id, y, y_pred, shadow):
        """Score one prediction, feed the detector, adapt."""
        correct = y_pred == y
        current = shadow is not None and shadow[0] == self.serial
        if current and self.background is not None and self.bg_learned:
            self.bg_scored += 1
            self.bg_correct += shadow[1] == y
            self.serving_correct += correct
            self.shadow_scores += 1
        detector = self.detector
        estimate = getattr(detector, "estimation", None)
        detector.update(0.0 if correct else 1.0)
        is_drift = detector.drift_detected
        if is_drift and estimate is not None and detector.estimation <= estimate:
            is_drift = False  # drift.direction: increase — the error fell, not a drift to act on
        warning = getattr(detector, "warning_detected", False) and not is_drift
        if warning and not self.in_warning:
            self.marks.append(("drift_warning", event_id))
            if self.adaptation == "background" and self.background is None:
                self._start_background(event_id)
        cleared = self.in_warning and not warning and not is_drift
        self.in_warning = warning
        if cleared and self.adaptation == "background" and self.background is not None:
            self.background, self.bg_learned = None, 0
            self.bg_scored = self.bg_correct = self.serving_correct = 0
            self.marks.append(("background_drop", event_id))
        if is_drift:
            self.marks.append(("drift", event_id))
            if self.adaptation == "background" and self.background is not None and self.bg_learned:
                self._serve(self.background, self.bg_learned, "model_swap", event_id)
            elif self.adaptation != "none":  # no warning came first: a fresh model, as in River
                self._serve(pipeline(), 0, "model_reset", event_id)
        elif (
            self.background is not None
            and self.bg_scored >= self.min_scored
            and self.bg_correct > self.serving_correct
        ):
            self._serve(self.background, self.bg_learned, "model_swap", event_id)


def by_hand(stream, detector, adaptation: str, min_scored: int = 500):
    """Labels inline: predict, learn, then score (River's test-then-train order)."""
    hand = ByHand(detector, adaptation, min_scored)
    for e in stream:
        y_pred, shadow = hand.predict(e)
        hand.learn(e.features, e.label)
        if y_pred is not None:
            hand.score(e.id, e.label, y_pred, shadow)
    return hand.predictions, hand.marks


def run(stream, **drift_section):
    cfg = load_config({"model": MODEL, "drift": drift_section})
    result = replay(stream, cfg, now_ms=0)
    predictions = [(p.id, p.proba, p.model_version, p.generation) for p in result.predictions]
    marks = [(m["type"], m["id"]) for m in result.model_events]
    return result, predictions, marks


@pytest.mark.parametrize("adaptation", ["none", "reset", "background"])
def test_adwin_on_the_error_sees_river_s_sequence_and_resets_at_the_same_event(adaptation):
    stream = events()
    result, predictions, marks = run(stream, detector="drift.ADWIN", adaptation=adaptation)
    expected_predictions, expected_marks = by_hand(stream, drift.ADWIN(), adaptation)
    assert marks == expected_marks
    assert predictions == expected_predictions
    assert any(kind == "drift" for kind, _ in marks), "the stream must drift for this to mean much"
    if adaptation != "none":  # ADWIN never warns: a background model is a fresh one at a drift
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
    assert {"background_start", "background_drop", "model_swap"} <= set(kinds)


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


def test_a_background_model_is_shadow_scored_on_delayed_labels():
    """Each label comes five events after its event: the background model's answer is
    stored with the waiting prediction and scored when the label is joined, if that model
    is still the background one (not for events predicted before it started)."""
    raw = list(river_events("agrawal_drift", n=N, seed=3, interval_ms=10))
    stream = late_labels(raw)
    drift_section = {"detector": "drift.binary.DDM", "adaptation": "background"}
    cfg = load_config({"model": MODEL, "drift": drift_section, "labels": {"ttl": "1h"}})
    result = replay(stream, cfg, now_ms=0)

    hand = ByHand(drift.binary.DDM(), "background")
    events_ = [event_from_object(e) for e in raw]
    waiting = []
    for i, e in enumerate(events_):
        waiting.append((e, *hand.predict(e)))
        if i >= 5:
            late, y_pred, shadow = waiting.pop(0)
            if y_pred is not None:
                hand.score(late.id, late.label, y_pred, shadow)
            hand.learn(late.features, late.label)
    predictions = [(p.id, p.proba, p.model_version, p.generation) for p in result.predictions]
    assert [(m["type"], m["id"]) for m in result.model_events] == hand.marks
    assert predictions == hand.predictions
    assert {"background_start", "model_swap"} <= {kind for kind, _ in hand.marks}
    assert hand.shadow_scores > 0
    swaps = [m for m in result.model_events if m["type"] == "model_swap"]
    assert all(m["metric"]["after"] is not None for m in swaps)  # the background's accuracy
