"""Active learning and curation in the job's core equal River driven by hand.

Each test runs :func:`stratiflow.runner.replay.replay` and a plain River loop written from
the documented semantics (the curation classes themselves, e.g. the label requester, are
tested on their own in this folder); predictions, model versions and counts must agree.
"""

from __future__ import annotations

import random
from collections import deque

import pytest
from river import compose, linear_model, preprocessing

from stratiflow.config import ConfigError, load_config
from stratiflow.curation import HardExamples, requester_from
from stratiflow.evaluation.metrics import log_loss_term
from stratiflow.io.sources import river_events
from stratiflow.runner.replay import replay
from stratiflow.sampling import derive_seed
from stratiflow.sampling.tomek import tomek_drops
from tests.helpers import late_labels

MODEL = [{"preprocessing.StandardScaler": {}}, {"linear_model.LogisticRegression": {}}]
N = 3000


def pipeline():
    return compose.Pipeline(preprocessing.StandardScaler(), linear_model.LogisticRegression())


def raw_events(name: str = "agrawal", n: int = N, seed: int = 1) -> list[dict]:
    return list(river_events(name, n=n, seed=seed, interval_ms=10))


def final(result) -> dict:
    (report,) = [r for r in result.reports if r["final"]]
    return report


def as_tuples(predictions) -> list[tuple]:
    return [(p.id, p.proba, p.model_version) for p in predictions]


def hand_predict(model, x) -> dict:
    return model.predict_proba_one(x)


@pytest.mark.parametrize("strategy", ["random", "uncertainty", "variable_uncertainty"])
def test_simulated_active_learning_learns_exactly_the_requested_labels(strategy):
    raw = raw_events()
    section = {"strategy": strategy, "budget": 0.1, "budget_window": 200, "simulate": True}
    cfg = load_config({"model": MODEL, "active": section})
    result = replay(raw, cfg, now_ms=0)

    model, learned = pipeline(), 0
    requester = requester_from(cfg.active, derive_seed(cfg.seed, "default", "active"))
    expected, requested = [], []
    for e in raw:
        x, y = e["features"], e["label"]
        proba = model.predict_proba_one(x)
        expected.append((e["id"], proba, learned))
        if requester.decide(proba) is not None:
            requested.append(e["id"])
            model.learn_one(x, y)
            learned += 1
    assert as_tuples(result.predictions) == expected
    assert [r["id"] for r in result.label_requests] == requested
    report = final(result)
    assert report["counts"]["learned"] == len(requested) == report["active"]["requested"]
    assert report["curation"]["withheld"] == N - len(requested)
    assert report["counts"]["scored"] == N  # every event is still scored with its label
    assert all(r["simulated"] and r["strategy"] == strategy for r in result.label_requests)


def test_the_budget_is_a_hard_limit_over_every_window_of_events():
    """No run of ``budget_window`` consecutive events of a key has more requests than
    budget x budget_window, whatever the strategy wants (random at a high rate here)."""
    raw = list(river_events("agrawal", n=4000, seed=2, interval_ms=10, keys=("a", "b")))
    section = {"strategy": "uncertainty", "budget": 0.05, "budget_window": 100, "threshold": 1.0}
    cfg = load_config({"model": MODEL, "active": section})
    stream = [{**e, "label": None} for e in raw]
    result = replay(stream, cfg, now_ms=0)
    requested = {r["id"] for r in result.label_requests}
    for key in ("a", "b"):
        marks = [e["id"] in requested for e in raw if e["key"] == key]
        window = deque(maxlen=100)
        worst = 0
        for mark in marks:
            window.append(mark)
            worst = max(worst, sum(window))
        assert worst == 5, key  # the limit is reached, never passed
        (report,) = [r for r in result.reports if r["final"] and r["key"] == key]
        assert report["active"]["requested"] == sum(marks)
        assert report["active"]["refused_by_budget"] > 0


def test_answers_to_requests_and_labels_nobody_asked_for_are_both_learned_and_counted():
    raw = raw_events()
    section = {"strategy": "variable_uncertainty", "budget": 0.2, "budget_window": 500}
    cfg = load_config({"model": MODEL, "active": section, "labels": {"ttl": "1h"}})
    result = replay(late_labels(raw), cfg, now_ms=0)
    report = final(result)
    curation, labels = report["curation"], report["labels"]
    answered = {r["id"] for r in result.label_requests} - {e["id"] for e in raw[-5:]}
    assert curation["answered"] == len(answered) > 0
    assert curation["unrequested"] == labels["joined"] - len(answered) > 0
    assert report["counts"]["learned"] == labels["joined"] == N - 5
    for r in result.label_requests:
        assert set(r) >= {"schema_version", "id", "key", "ts", "strategy", "score", "proba"}
        assert r["simulated"] is False and 0 <= r["score"] <= 1


def test_low_confidence_labels_score_but_are_not_learned_and_annotators_are_counted():
    raw = raw_events()
    rng = random.Random(5)
    confidence = [round(rng.random(), 3) for _ in raw]

    def extra(i, _):
        return {"confidence": confidence[i], "annotator": "ann-" + str(i % 3)}

    cfg = load_config(
        {
            "model": MODEL,
            "labels": {"ttl": "1h"},
            "curation": {"label_filter": {"min_confidence": 0.3}},
        }
    )
    result = replay(late_labels(raw, extra=extra), cfg, now_ms=0)

    model, learned, expected, stored = pipeline(), 0, [], {}
    agreed = {f"ann-{k}": 0 for k in range(3)}
    for i, e in enumerate(raw):
        proba = model.predict_proba_one(e["features"])
        expected.append((e["id"], proba, learned))
        stored[e["id"]] = max(proba, key=proba.get) if proba else None
        if i >= 5:
            j = i - 5
            late = raw[j]
            agreed[f"ann-{j % 3}"] += stored[late["id"]] == late["label"]
            if confidence[j] >= 0.3:
                model.learn_one(late["features"], late["label"])
                learned += 1
    assert as_tuples(result.predictions) == expected
    report = final(result)
    dropped = sum(c < 0.3 for c in confidence[: N - 5])
    assert report["curation"]["dropped"]["low_confidence"] == dropped > 0
    assert report["counts"]["learned"] == N - 5 - dropped
    assert report["counts"]["scored"] == N - 5  # dropped labels still score
    annotators = report["curation"]["annotators"]
    assert {a: v["agreed"] for a, v in annotators.items()} == agreed
    assert sum(v["dropped"] for v in annotators.values()) == dropped


def test_labels_the_model_contradicts_are_dropped_after_the_warm_up():
    raw = raw_events("sea")
    rng = random.Random(9)
    flipped = {e["id"] for e in raw if rng.random() < 0.2}
    noisy = [{**e, "label": (not e["label"]) if e["id"] in flipped else e["label"]} for e in raw]
    rules = {"contradiction": 0.9, "warmup": 300}
    cfg = load_config({"model": MODEL, "curation": {"label_filter": rules}})
    result = replay(noisy, cfg, now_ms=0)

    model, learned, expected, dropped = pipeline(), 0, [], set()
    for e in noisy:
        x, y = e["features"], e["label"]
        proba = model.predict_proba_one(x)
        expected.append((e["id"], proba, learned))
        top = max(proba, key=proba.get) if proba else None
        if learned >= 300 and top is not None and top != y and proba[top] >= 0.9:
            dropped.add(e["id"])
            continue
        model.learn_one(x, y)
        learned += 1
    assert as_tuples(result.predictions) == expected
    report = final(result)
    assert report["curation"]["dropped"]["contradiction"] == len(dropped) > 0
    assert len(dropped & flipped) > len(dropped) / 2  # mostly the flipped labels


def test_hard_examples_are_learned_again_as_the_buffer_says():
    raw = raw_events()
    cfg = load_config({"model": MODEL, "curation": {"hard_examples": {"size": 50, "p": 0.3}}})
    result = replay(raw, cfg, now_ms=0)

    model, learned, expected = pipeline(), 0, []
    hard = HardExamples(50, 0.3, derive_seed(cfg.seed, "default", "hard_examples"))
    for e in raw:
        x, y = e["features"], e["label"]
        proba = model.predict_proba_one(x)
        expected.append((e["id"], proba, learned))
        model.learn_one(x, y)
        learned += 1
        hard.offer(e["id"], x, y, log_loss_term(y, proba))
        again = hard.replay()
        if again is not None:
            model.learn_one(again[1], again[2])
            learned += 1
    assert as_tuples(result.predictions) == expected
    report = final(result)
    assert report["curation"]["replayed"] == hard.replayed > 0
    assert report["counts"]["learned"] == N + hard.replayed
    assert report["curation"]["hard_examples"]["buffered"] == 50


def test_tomek_links_leave_each_window_s_sample_and_are_counted():
    raw = list(river_events("agrawal", n=2000, seed=3, interval_ms=50))
    sampling = {"strategy": "uniform", "window": "10s", "rate": 1.0}
    plain = replay(raw, load_config({"model": MODEL, "sampling": sampling}), now_ms=0)
    cfg = load_config({"model": MODEL, "sampling": sampling, "curation": {"tomek_links": True}})
    with_links = replay(raw, cfg, now_ms=0)
    assert len(plain.batches) == len(with_links.batches)
    total = 0
    windows = zip(plain.batches, with_links.batches, with_links.stats, strict=False)
    for before, after, stats in windows:
        drops = {before.examples[i].id for i in tomek_drops(before.examples)}
        assert {e.id for e in after.examples} == {e.id for e in before.examples} - drops
        per_class = stats["classes"]
        assert sum(c["tomek_dropped"] for c in per_class.values()) == len(drops)
        for c in per_class.values():
            sent = c["sampled"] + c["duplicated"] + c["synthetic"]
            assert c["trained"] == sent - c["tomek_dropped"]
        total += len(drops)
    assert total > 0


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ({"active": {"strategy": "random", "budget": 0}}, "active.budget"),
        ({"active": {"strategy": "random", "budget": 1.5}}, "active.budget"),
        ({"active": {"budget_window": 0}}, "active.budget_window"),
        ({"active": {"budget": 0.001, "budget_window": 100}}, "active.budget"),
        ({"active": {"strategy": "most_uncertain"}}, "active.strategy"),
        ({"active": {"strategy": "random"}, "labels": {"source": "none"}}, "active.strategy"),
        (
            {"active": {"strategy": "random", "simulate": True},
             "sampling": {"strategy": "uniform"}},
            "active.simulate",
        ),
        ({"curation": {"tomek_links": True}}, "curation.tomek_links"),
        ({"curation": {"hard_examples": {"size": 0}}}, "curation.hard_examples.size"),
        ({"curation": {"hard_examples": {"size": -3}}}, "curation.hard_examples.size"),
        ({"curation": {"hard_examples": {"p": 2}}}, "curation.hard_examples.p"),
        ({"curation": {"label_filter": {"min_confidence": -1}}},
         "curation.label_filter.min_confidence"),
        ({"curation": {"label_filter": {"contradiction": 0.3}}},
         "curation.label_filter.contradiction"),
        ({"curation": {"label_filter": {"warmup": -1}}}, "curation.label_filter.warmup"),
        ({"curation": {"nope": 1}}, "curation.nope"),
    ],
)  # fmt: skip
def test_bad_active_and_curation_config_fails_at_load_with_the_field_path(raw, path):
    with pytest.raises(ConfigError) as info:
        load_config(raw)
    assert info.value.path == path, str(info.value)
