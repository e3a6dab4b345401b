"""Delayed labels: the join, its dead letters and counts, and parity with River's
``progressive_val_score`` when labels arrive later (``moment``/``delay``)."""

from __future__ import annotations

import json
import pickle

import pytest
from river import evaluate, metrics, tree

from stratiflow.config import load_config
from stratiflow.io.sources import river_events, with_delayed_labels
from stratiflow.labels import Answer, Expiry, LabelJoin, LabelOutcome
from stratiflow.records import Event, LabelRecord
from stratiflow.runner.replay import replay
from tests.helpers import label_outcomes, proba_by_class, reference_model

INTERVAL = 10


def phishing(n: int = 1250) -> list[dict]:
    return list(river_events("phishing", n=n, start_ts=0, interval_ms=INTERVAL))


def river_run(events, make_model, delay):
    """River's own delayed progressive validation: the scored predictions' probabilities
    and classes (River yields them as each label is revealed, in answer order) and the
    final accuracy. ``moment`` is the event index; ``delay`` is in events (events are
    INTERVAL ms apart)."""
    dataset = [(e["features"], e["label"]) for e in events]

    def run(metric):
        steps = evaluate.iter_progressive_val_score(
            dataset, make_model(), metric, delay=delay, step=1, yield_predictions=True
        )
        return [s["Prediction"] for s in steps]

    probas = run(metrics.LogLoss())  # a metric on probabilities: River calls predict_proba_one
    accuracy = metrics.Accuracy()
    classes = run(accuracy)  # a metric on classes: River calls predict_one
    return probas, classes, accuracy.get()


def labels_cfg(**extra):
    return load_config({"labels": {"ttl": "1h"}, **extra})


def assert_predictions_equal(predictions, river, records):
    """Our predictions, taken in the order their labels arrived, equal River's."""
    by_id = {p.id: p for p in predictions}
    ours = [by_id[r["id"]] for r in records if "features" not in r]
    probas, classes, _ = river
    assert len(ours) == len(probas) == len(classes) == len(predictions)
    for p, q, c in zip(ours, probas, classes, strict=True):
        assert p.proba.keys() == q.keys()
        for k in q:
            assert p.proba[k] == pytest.approx(q[k], abs=1e-12)
        assert p.y_pred == c


@pytest.mark.parametrize("delay_events", [1, 25, 400])
def test_fixed_delay_equals_progressive_val_score(delay_events):
    events = phishing()
    records = with_delayed_labels(events, delay_events * INTERVAL)
    assert sum("features" not in r for r in records) == len(events)
    result = replay(records, labels_cfg())
    ours = [p for p in result.predictions]
    river = river_run(events, reference_model, delay_events)
    assert_predictions_equal(ours, river, records)
    accuracy = river[2]
    final = result.reports[-1]
    assert final["cumulative"]["accuracy"] == accuracy  # exact
    assert final["labels"]["joined"] == final["counts"]["scored"] == len(events)
    assert final["labels"]["delay_ms"]["p50"] == pytest.approx(delay_events * INTERVAL, rel=0.01)


def test_variable_delays_out_of_order_labels_equal_progressive_val_score():
    events = phishing()

    def delay_of(features) -> int:  # deterministic, 0..49 events, labels overtake each other
        return int(sum(abs(v) for v in features.values()) * 97) % 50

    records = with_delayed_labels(events, lambda e: delay_of(e["features"]) * INTERVAL)
    label_order = [r["id"] for r in records if "features" not in r]
    assert label_order != sorted(label_order, key=lambda i: int(i.split("-")[1]))
    result = replay(records, labels_cfg())
    river = river_run(events, reference_model, lambda x, _: delay_of(x))
    assert_predictions_equal(result.predictions, river, records)
    assert result.reports[-1]["cumulative"]["accuracy"] == river[2]


def test_a_tree_without_an_answer_is_not_scored_like_river():
    events = phishing(600)
    records = with_delayed_labels(events, 30 * INTERVAL)
    cfg = load_config({"model": ["tree.HoeffdingTreeClassifier"]})
    result = replay(records, cfg)
    theirs, _, accuracy = river_run(events, tree.HoeffdingTreeClassifier, 30)
    assert [proba_by_class(p.to_dict()) == {} for p in result.predictions] == [
        q == {} for q in theirs
    ]
    final = result.reports[-1]
    assert final["cumulative"]["accuracy"] == accuracy
    assert final["counts"]["scored"] < final["labels"]["joined"] == len(events)


def test_the_stored_prediction_is_scored_not_a_fresh_one():
    # Ten identical unlabelled events, labels after all of them: a fresh prediction
    # at label time would come from a model that has learned; the stored one did not.
    events = [{"id": f"e{i}", "ts": i, "features": {"x": 1.0}, "label": None} for i in range(10)]
    labels = [{"id": f"e{i}", "label": True, "ts": 100 + i} for i in range(10)]
    result = replay(events + labels, labels_cfg())
    assert {p.model_version for p in result.predictions} == {0}
    final = result.reports[-1]
    # The untrained model said 0.5/0.5 → predicted False (first max) for all ten.
    assert final["cumulative"]["accuracy"] == 0.0
    assert final["model_version"] == 10


# --- the join's outcomes, counted and dead-lettered -------------------------------------


def ev(i, ts, label=None, key="default"):
    return {"id": f"e{i}", "ts": ts, "features": {"x": float(i % 7)}, "label": label, "key": key}


def lab(i, ts, label=True, key="default"):
    return {"id": f"e{i}", "label": label, "ts": ts, "key": key}


def reconcile(report, records_in: int, dead: int) -> None:
    counts, labels = report["counts"], report["labels"]
    assert counts["seen"] == counts["predicted"] + counts["rejected"]
    assert counts["predicted"] == counts["labelled"] + counts["unlabelled"]
    assert labels["received"] == label_outcomes(labels)
    assert counts["unlabelled"] >= labels["joined"] + labels["never_came"] + labels["waiting"]
    # Every record in ends in exactly one place.
    assert records_in == counts["predicted"] + labels["joined"] + labels["held"] + dead


def test_duplicates_unknown_expired_and_early_labels():
    cfg = load_config({"labels": {"ttl": 1_000}})
    records = [
        ev(1, 0),
        lab(1, 10),
        lab(1, 20, False),  # duplicate
        lab(99, 30),  # unknown id: held, dies after the TTL
        lab(5, 40),  # early: its event comes next
        ev(5, 50),
        ev(2, 100),
        ev(3, 2_000),  # moves the clock: e2 expires, the held e99 label dies
        lab(2, 2_100),  # too late: expired
        ev(4, 2_200),  # waits at the end
    ]
    result = replay(records, cfg)
    reasons = sorted(d.reason for d in result.dead_letters)
    assert reasons == ["label_duplicate", "label_expired", "label_unknown_id"]
    final = result.reports[-1]
    labels = final["labels"]
    assert labels["received"] == 5 and labels["joined"] == 2
    assert labels["duplicate"] == labels["unknown"] == labels["expired"] == 1
    assert labels["never_came"] == 1 and labels["waiting"] == 2 and labels["held"] == 0
    assert final["counts"]["scored"] == 2 and final["model_version"] == 2
    reconcile(final, len(records), len(result.dead_letters))
    letter = next(d for d in result.dead_letters if d.reason == "label_duplicate")
    assert json.loads(letter.raw) == {"id": "e1", "label": False, "ts": 20, "key": "default"}


def test_label_for_an_event_the_model_rejected_is_dead_lettered():
    records = [
        {"id": "bad", "ts": 0, "features": {"x": "text the scaler cannot take"}},
        {"id": "bad", "label": True, "ts": 5},
    ]
    result = replay(records, labels_cfg())
    assert [d.reason for d in result.dead_letters] == [
        "model_rejected_input",
        "label_event_rejected",
    ]
    final = result.reports[-1]
    assert final["labels"]["event_rejected"] == 1 and final["labels"]["waiting"] == 0
    reconcile(final, 2, 2)


def test_keys_are_joined_separately():
    records = [ev(1, 0, key="a"), ev(1, 0, key="b"), lab(1, 5, key="b"), lab(1, 6, key="a")]
    result = replay(records, labels_cfg())
    assert not result.dead_letters
    assert {k: s.labels.joined for k, s in result.states.items()} == {"a": 1, "b": 1}


def test_labels_source_none_sends_label_records_nowhere_but_events_still_work():
    cfg = load_config({"labels": {"source": "none"}})
    result = replay([ev(1, 0), ev(2, 1, True)], cfg)
    final = result.reports[-1]
    assert final["labels"]["waiting"] == 0 and final["counts"]["learned"] == 1


def test_memory_is_bounded_by_max_pending():
    join = LabelJoin("k", ttl=10**9, max_pending=100)
    outs = []
    for i in range(1_000):
        outs += join.on_event(Event(f"e{i}", i, {"x": 1.0}))
        outs += join.on_label(LabelRecord(f"x{i}", True, i))  # unknown ids, held
    assert join.size <= 100 and len(join.entries) <= 100
    assert sum(len(v) for v in join.buckets.values()) <= 10 * 100  # index stays bounded too
    evicted = [o for o in outs if isinstance(o, Expiry)]
    unknown = [o for o in outs if isinstance(o, LabelOutcome) and o.kind == "unknown"]
    assert evicted and all(o.evicted for o in evicted) and unknown
    # Everything evicted is accounted for: held now + dropped = everything given.
    assert len(evicted) + len(unknown) + join.size == 2_000


def test_the_join_pickles_mid_stream_and_continues_identically():
    a = LabelJoin("k", ttl=50, max_pending=1_000)
    items = [Event(f"e{i}", i * 3, {"x": 1.0}) for i in range(40)]
    for e in items[:20]:
        a.on_event(e)
    b = pickle.loads(pickle.dumps(a))
    rest = [LabelRecord(f"e{i}", True, 60 + i) for i in range(0, 40, 3)] + items[20:]
    for thing in rest:
        out_a = a.on_event(thing) if isinstance(thing, Event) else a.on_label(thing)
        out_b = b.on_event(thing) if isinstance(thing, Event) else b.on_label(thing)
        assert [
            (type(o).__name__, o.id if not isinstance(o, LabelOutcome) else o.kind) for o in out_a
        ] == [
            (type(o).__name__, o.id if not isinstance(o, LabelOutcome) else o.kind) for o in out_b
        ]
    assert any(isinstance(o, Answer) for o in a.on_label(LabelRecord("e38", True, 160)))


def test_delayed_examples_go_through_the_sampler():
    events = list(river_events("phishing", n=800, start_ts=0, interval_ms=INTERVAL))
    records = with_delayed_labels(events, 50 * INTERVAL)
    cfg = load_config(
        {"sampling": {"strategy": "balanced", "window": "1s", "budget": 10}, "labels": {}}
    )
    result = replay(records, cfg)
    final = result.reports[-1]
    assert final["labels"]["joined"] == 800 and final["counts"]["labelled"] == 0
    sampled = sum(len(b.examples) for b in result.batches)
    assert sampled > 0 and final["counts"]["learned"] + final["counts"]["learn_failed"] == sampled
    seen = sum(c["seen"] + c["late"] for s in result.stats for c in s["classes"].values())
    assert seen == 800  # every joined example reached the sampler, on time or late


def test_with_a_labels_topic_one_input_running_ahead_expires_nothing():
    """Two topics have no order between them: all labels may be read before any event.
    The join's clock is then the slower input's, so those labels wait for their events."""
    events = [Event(f"e{i}", i * 10, {"x": 1.0}) for i in range(500)]
    labels = [LabelRecord(f"e{i}", True, i * 10 + 5) for i in range(500)]
    for two_inputs in (True, False):
        join = LabelJoin("k", ttl=100, max_pending=10_000, two_inputs=two_inputs)
        outs = [o for r in labels for o in join.on_label(r)]
        outs += [o for e in events for o in join.on_event(e)]
        joined = sum(isinstance(o, Answer) for o in outs)
        unknown = sum(isinstance(o, LabelOutcome) and o.kind == "unknown" for o in outs)
        if two_inputs:
            assert joined == 500 and unknown == 0
        else:  # one clock (events-topic mode): labels far ahead expire as unknown
            assert joined == 10 and unknown == 490


class CountingStore(dict):
    """A dict that counts lookups, like a MapState whose misses cost a round trip."""

    lookups = 0

    def get(self, key, default=None):
        self.lookups += 1
        return super().get(key, default)


def test_labelled_events_skip_the_lookup_while_no_label_is_held():
    store = CountingStore()
    join = LabelJoin("k", ttl=1_000, max_pending=1_000, entries=store)
    for i in range(50):
        join.on_event(Event(f"e{i}", i, {"x": 1.0}, True))
    assert store.lookups == 0 and join.held == 0
    # An early label makes lookups necessary again, and it still meets its event.
    join.on_label(LabelRecord("e60", True, 55))
    out = join.on_event(Event("e60", 60, {"x": 1.0}, False))
    assert join.held == 0 and store.lookups > 0
    assert [o.kind for o in out if isinstance(o, LabelOutcome)] == ["duplicate"]


def test_the_held_count_follows_the_entries_through_every_path():
    import random

    rng = random.Random(7)
    join = LabelJoin("k", ttl=40, max_pending=30)
    for step in range(3_000):
        ts = step
        i = rng.randrange(200)
        kind = rng.random()
        if kind < 0.35:
            join.on_event(Event(f"e{i}", ts, {"x": 1.0}))
        elif kind < 0.5:
            join.on_event(Event(f"e{i}", ts, {"x": 1.0}, True))
        else:
            join.on_label(LabelRecord(f"e{i}", True, ts))
        assert join.held == sum(e.status == "held" for e in join.entries.values())
        assert join.size == len(join.entries)


def test_a_join_pickled_before_held_was_counted_still_looks_up():
    join = LabelJoin("k", ttl=1_000, max_pending=1_000)
    join.on_label(LabelRecord("e1", True, 0))
    state = join.__getstate__()
    del state["held"]
    old = LabelJoin.__new__(LabelJoin)
    old.__setstate__(state)
    out = old.on_event(Event("e1", 1, {"x": 1.0}, True))
    assert [o.kind for o in out if isinstance(o, LabelOutcome)] == ["duplicate"]
