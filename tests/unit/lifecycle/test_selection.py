"""Champion and challengers: every candidate learns what River alone would learn, and a
clearly better one takes over, after which the published predictions are its own."""

from __future__ import annotations

import pytest
from river import compose, linear_model, preprocessing, tree

from stratiflow.config import ConfigError, load_config
from stratiflow.io.sources import river_events
from stratiflow.lifecycle import CHECK_EVERY
from stratiflow.runner.replay import replay
from stratiflow.validation.parse import event_from_object
from tests.helpers import late_labels

MAIN = [{"preprocessing.StandardScaler": {}}, {"linear_model.LogisticRegression": {}}]
TREE = [{"tree.HoeffdingTreeClassifier": {"grace_period": 50}}]


def events(n: int = 6000) -> list:
    return [event_from_object(e) for e in river_events("agrawal", n=n, seed=1)]


def run(stream, **selection):
    cfg = load_config(
        {"model": MAIN, "candidates": [{"name": "tree", "model": TREE}], "selection": selection}
    )
    return replay(stream, cfg, now_ms=0)


def alone(model, stream) -> list[dict]:
    """River by itself: predict_proba_one, then learn_one, for every event."""
    out = []
    for e in stream:
        out.append(model.predict_proba_one(e.features))
        model.learn_one(e.features, e.label)
    return out


def test_a_clearly_better_candidate_is_promoted_and_then_publishes_its_own_predictions():
    stream = events()
    result = run(stream)
    promotions = [m for m in result.model_events if m["type"] == "promotion"]
    assert len(promotions) == 1
    promotion = promotions[0]
    assert promotion["model"] == {"before": "main", "after": "tree"}
    assert promotion["scored"] % CHECK_EVERY == 0 and promotion["scored"] >= 500
    assert promotion["metric"]["after"] > promotion["metric"]["before"]
    assert promotion["generation"] == {"before": 0, "after": 1}

    main_alone = alone(
        compose.Pipeline(preprocessing.StandardScaler(), linear_model.LogisticRegression()), stream
    )
    tree_alone = alone(tree.HoeffdingTreeClassifier(grace_period=50), stream)
    switch = promotion["scored"]  # every event is labelled and scored: event i is the i+1-th
    for i, p in enumerate(result.predictions):
        expected, name = (main_alone, "main") if i < switch else (tree_alone, "tree")
        assert (p.model, p.generation) == (name, 0 if i < switch else 1), i
        assert p.proba == expected[i], i
        assert p.model_version == i  # each pipeline learned every event before this one
    # The published accuracy over the second half is the candidate's own.
    half = len(stream) // 2
    published = sum(p.y_pred == p.y_true for p in result.predictions[half:])
    own = sum(
        max(p, key=p.get) == e.label for p, e in zip(tree_alone[half:], stream[half:], strict=True)
    )
    assert published == own


def test_the_metrics_record_carries_every_pipeline():
    result = run(events(2000))
    final = result.reports[-1]["candidates"]
    assert final["champion"] == "tree" and final["promotions"] == 1
    assert final["pipelines"]["main"]["role"] == "challenger"
    assert final["pipelines"]["tree"]["learned"] == final["pipelines"]["main"]["learned"] == 2000


def test_no_promotion_before_min_scored_nor_within_the_margin():
    stream = events(3000)
    assert not [m for m in run(stream, min_scored=5000).model_events]
    assert not [m for m in run(stream, margin=0.9).model_events]


def test_log_loss_is_compared_lower_is_better():
    promotions = [m for m in run(events(3000), metric="log_loss").model_events]
    assert promotions and promotions[0]["metric"]["after"] < promotions[0]["metric"]["before"]


@pytest.mark.parametrize(
    ("section", "path"),
    [
        ({"candidates": [{"name": "main", "model": TREE}]}, "candidates[0].name"),
        ({"candidates": [{"name": "a", "model": TREE}, {"name": "a", "model": TREE}]},
         "candidates[1].name"),
        ({"candidates": [{"name": "a", "model": [{"tree.Nope": {}}]}]},
         "candidates[0].model[0].tree.Nope"),
        ({"candidates": [{"name": "a"}]}, "candidates[0]"),
        ({"selection": {"metric": "auc"}}, "selection.metric"),
        ({"selection": {"window": 0}}, "selection.window"),
        ({"selection": {"margin": -0.1}}, "selection.margin"),
    ],
)  # fmt: skip
def test_bad_candidates_and_selection_fail_at_load_with_the_field_path(section, path):
    with pytest.raises(ConfigError) as info:
        load_config(section)
    assert info.value.path == path, str(info.value)


def test_challengers_are_scored_on_delayed_labels_too():
    """Every label comes five events after its event: the challengers' answers, stored
    with the waiting prediction, are scored when it is joined, and the tree is promoted."""
    stream = late_labels(list(river_events("agrawal", n=3000, seed=1, interval_ms=10)))
    cfg = load_config(
        {"model": MAIN, "candidates": [{"name": "tree", "model": TREE}], "labels": {"ttl": "1h"}}
    )
    result = replay(stream, cfg, now_ms=0)
    final = result.reports[-1]
    joined = final["labels"]["joined"]
    assert joined == 2995 and final["counts"]["scored"] == joined
    (promotion,) = [m for m in result.model_events if m["type"] == "promotion"]
    assert promotion["model"] == {"before": "main", "after": "tree"}
    selection = result.states["default"].selection
    assert selection is not None and selection.champion == "tree"
    # main, a challenger since its demotion, is scored on the labels of the events predicted
    # after it: the five joined next belong to events main itself served (no shadow of it).
    assert [c.scored for c in selection.challengers] == [joined - promotion["scored"] - 5]


def test_a_waiting_prediction_stored_before_candidates_existed_still_scores():
    """A savepoint from before this change holds StoredPredictions of four slots (no
    ``shadows``): their labels still join, scoring the champion and no challenger."""
    from stratiflow.labels import Answer
    from stratiflow.learning import ModelState, StoredPrediction, answer
    from stratiflow.records import Event

    cfg = load_config({"model": MAIN, "candidates": [{"name": "tree", "model": TREE}]})
    state = ModelState.new(cfg)
    old = StoredPrediction.__new__(StoredPrediction)
    StoredPrediction.__setstate__(old, [True, {True: 0.7, False: 0.3}, 0, 5])  # as unpickled
    assert not hasattr(old, "shadows")
    event = Event("e", 5, {"x": 1.0})
    state.labels.waiting = 1
    answer(state, Answer("default", "e", 6, False, event), old)
    assert state.counts.scored == 1 and state.labels.joined == 1
    assert state.selection is not None and [c.scored for c in state.selection.challengers] == [0]
