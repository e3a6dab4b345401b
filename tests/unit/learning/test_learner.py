import pickle

import pytest
from river import metrics as river_metrics
from river import tree

from stratiflow.config import ConfigError, ModelStep, load_config
from stratiflow.config.model import build_model
from stratiflow.evaluation.metrics import CumulativeMetrics
from stratiflow.learning.learner import ModelState, label_policy, step
from stratiflow.records import Event
from stratiflow.runner.report import metrics_report
from tests.helpers import (
    assert_matches_river,
    phishing_accuracy,
    phishing_events,
    river_progressive_accuracy,
    river_reference,
)

PIPELINE = load_config(None).model  # StandardScaler | LogisticRegression


def new_state(steps=PIPELINE) -> ModelState:
    return ModelState.new(load_config({"model": [{s.path: dict(s.params)} for s in steps]}))


def accuracy(state: ModelState) -> float:
    return state.evaluation.cumulative.summary()["accuracy"]


def as_event(e) -> Event:
    return Event(e["id"], e["ts"], e["features"], e["label"], e["key"])


def run(events, steps=PIPELINE, report_every=0):
    state = new_state(steps)
    outs = [step(state, as_event(e), now_ms=0, report_every=report_every) for e in events]
    return state, outs


def test_build_model_from_config():
    model = build_model(PIPELINE)
    assert [type(s).__name__ for s in model.steps.values()] == [
        "StandardScaler",
        "LogisticRegression",
    ]
    assert label_policy(model).binary
    assert not label_policy(build_model([ModelStep("tree.HoeffdingTreeClassifier")])).binary
    with pytest.raises(ConfigError, match="not a classifier"):
        build_model([ModelStep("preprocessing.StandardScaler")])


def test_step_equals_river_on_phishing():
    events = phishing_events()
    state, outs = run(events)
    predictions = [o.prediction.to_dict() for o in outs]
    assert assert_matches_river(predictions, river_reference(events)) == 1250
    assert accuracy(state) == phishing_accuracy()  # exact, not approximate
    assert [p["model_version"] for p in predictions[:3]] == [0, 1, 2]


def test_step_equals_river_for_a_tree_that_starts_without_an_answer():
    events = phishing_events()
    state, outs = run(events, steps=[ModelStep("tree.HoeffdingTreeClassifier")])
    assert outs[0].prediction.y_pred is None  # an empty tree has no answer: not scored
    assert state.counts.scored == 1249 and state.counts.learned == 1250
    reference = river_progressive_accuracy(events, tree.HoeffdingTreeClassifier)
    assert accuracy(state) == reference


def test_unlabelled_events_are_predicted_not_learned():
    events = phishing_events()[:20]
    for e in events[::2]:
        e["label"] = None
    state, outs = run(events)
    assert all(o.prediction is not None for o in outs)
    assert state.counts.predicted == 20 and state.counts.learned == 10
    assert state.counts.unlabelled == 10 and state.counts.scored == 10
    assert "y_true" not in outs[0].prediction.to_dict()


def test_model_errors_become_rejections_not_crashes():
    state = new_state()
    out = step(state, Event("a", 0, {"x": "a string the scaler cannot scale"}, True), now_ms=0)
    assert out.prediction is None and out.rejection.reason == "model_rejected_input"
    assert "TypeError" in out.rejection.detail
    assert state.counts.rejected == 1 and state.counts.learned == 0
    ok = step(state, Event("b", 0, {"x": 1.0}, True), now_ms=0)
    assert ok.prediction is not None
    assert state.counts.seen == state.counts.predicted + state.counts.rejected


def test_non_finite_model_output_is_rejected_not_emitted():
    from stratiflow.records import to_json

    state = new_state()
    outs = [
        step(state, Event(str(i), 0, {"x": v}, i % 2 == 0), now_ms=0)
        for i, v in enumerate([1.0, 2.0, 1e308, -1e308, 1e308])
    ]
    rejected = [o.rejection for o in outs if o.rejection is not None]
    assert rejected and {r.reason for r in rejected} == {"model_output_not_finite"}
    for o in outs:
        if o.prediction is not None:
            to_json(o.prediction.to_dict())  # every emitted prediction is valid JSON
    assert state.counts.seen == state.counts.predicted + state.counts.rejected


def test_reports_every_n_scored_events_and_reconcile():
    state, outs = run(phishing_events()[:100], report_every=30)
    assert [i for i, o in enumerate(outs) if o.report_due] == [29, 59, 89]
    report = metrics_report(state, "default", now_ms=1, final=True)
    c = report["counts"]
    assert c["seen"] == 100 == c["predicted"] + c["rejected"]
    assert c["labelled"] + c["unlabelled"] == c["predicted"]
    assert report["schema_version"] == 2 and report["final"] is True
    assert report["model_version"] == 100


def test_state_survives_pickling_mid_stream():
    events = phishing_events()
    state, _ = run(events[:600])
    restored = pickle.loads(pickle.dumps(state))
    rest_a = [step(state, as_event(e), now_ms=0).prediction.proba for e in events[600:]]
    rest_b = [step(restored, as_event(e), now_ms=0).prediction.proba for e in events[600:]]
    assert rest_a == rest_b
    assert accuracy(restored) == accuracy(state) == phishing_accuracy()


def test_metrics_match_independent_river_metrics():
    y_true = [0, 1, 2, 2, 1, 0, 2, 1, 1, 0, 2, 2]
    y_pred = [0, 2, 2, 1, 1, 0, 2, 0, 1, 0, 2, 1]
    y_true, y_pred = [f"c{v}" for v in y_true], [f"c{v}" for v in y_pred]
    classes = ("c0", "c1", "c2")
    probas = [{c: (0.6 if c == p else 0.2) for c in classes} for p in y_pred]
    ours = CumulativeMetrics()
    acc, macro, weighted = (
        river_metrics.Accuracy(),
        river_metrics.MacroF1(),
        river_metrics.WeightedF1(),
    )
    loss = river_metrics.CrossEntropy()
    # River's binary metrics take booleans: one-vs-rest per class.
    per_class = {
        c: (river_metrics.Precision(), river_metrics.Recall(), river_metrics.F1()) for c in classes
    }
    for t, p, proba in zip(y_true, y_pred, probas, strict=True):
        ours.update(t, p, proba)
        for m in (acc, macro, weighted):
            m.update(t, p)
        loss.update(t, proba)
        for c, trio in per_class.items():
            for m in trio:
                m.update(t == c, p == c)
    summary = ours.summary()
    assert summary["accuracy"] == acc.get()
    assert summary["macro"]["f1"] == pytest.approx(macro.get(), abs=1e-12)
    assert summary["weighted"]["f1"] == pytest.approx(weighted.get(), abs=1e-12)
    assert summary["log_loss"] == pytest.approx(loss.get(), abs=1e-12)
    for c, (prec, rec, f1) in per_class.items():
        got = summary["per_class"][str(c)]
        assert got["precision"] == pytest.approx(prec.get(), abs=1e-12)
        assert got["recall"] == pytest.approx(rec.get(), abs=1e-12)
        assert got["f1"] == pytest.approx(f1.get(), abs=1e-12)
        assert got["support"] == y_true.count(c)
