"""Update strategies: per_sample, micro_batch (learn_many or a learn_one loop), periodic.

Each is compared with River driven by hand on the same events in the same order.
"""

from __future__ import annotations

import pandas as pd
import pytest
from river import tree

from stratiflow.config import ConfigError, UpdateSettings, load_config
from stratiflow.io.sources import river_events, with_delayed_labels
from stratiflow.learning.updates import Updater, supports_learn_many
from stratiflow.runner.replay import replay
from tests.helpers import reference_model

N = 600


def phishing(n: int = N) -> list[dict]:
    return list(river_events("phishing", n=n, start_ts=0, interval_ms=10))


def probas(result) -> list[dict]:
    return [p.proba for p in result.predictions]


def by_hand(events, make_model, flush_due, *, batch: bool) -> list[dict]:
    """Predict each event with the latest model, buffer its example, learn when
    ``flush_due(buffer, event)`` says so (before or after buffering, as marked)."""
    model, buffer, out = make_model(), [], []

    def learn():
        nonlocal buffer
        if not buffer:
            return
        if batch and len(buffer) > 1:
            model.learn_many(
                pd.DataFrame([x for x, _ in buffer]), pd.Series([y for _, y in buffer])
            )
        else:
            for x, y in buffer:
                model.learn_one(x, y)
        buffer = []

    for e in events:
        if flush_due(buffer, e, "before"):
            learn()
        out.append(model.predict_proba_one(e["features"]))
        buffer.append((e["features"], e["label"]))
        if flush_due(buffer, e, "after"):
            learn()
    return out


def assert_same(ours, theirs):
    assert len(ours) == len(theirs)
    for p, q in zip(ours, theirs, strict=True):
        assert p.keys() == q.keys()
        for k in q:
            assert p[k] == pytest.approx(q[k], abs=1e-12)


def test_micro_batch_of_one_equals_per_sample_exactly():
    events = phishing()
    per_sample = replay(events, load_config())
    micro = replay(events, load_config({"update": {"mode": "micro_batch", "batch_size": 1}}))
    assert probas(micro) == probas(per_sample)  # bit-for-bit
    assert [p.model_version for p in micro.predictions] == list(range(N))
    a, b = per_sample.reports[-1], micro.reports[-1]
    assert a["cumulative"] == b["cumulative"] and a["counts"] == b["counts"]


def test_micro_batch_learns_many_like_river_does():
    events = phishing()
    result = replay(events, load_config({"update": {"mode": "micro_batch", "batch_size": 8}}))
    theirs = by_hand(
        events, reference_model, lambda buf, e, when: when == "after" and len(buf) == 8, batch=True
    )
    assert_same(probas(result), theirs)
    final = result.reports[-1]
    assert final["update"]["batches"] == N // 8 and final["update"]["fallback_batches"] == 0
    assert final["model_version"] == N and final["counts"]["buffered"] == 0
    # The model only changes between batches: versions step by 8.
    assert {p.model_version % 8 for p in result.predictions} == {0}
    # And learning in batches really differs from learning one by one.
    assert probas(result) != probas(replay(events, load_config()))


def test_models_without_learn_many_learn_one_by_one_per_batch():
    cfg = load_config(
        {
            "model": ["tree.HoeffdingTreeClassifier"],
            "update": {"mode": "micro_batch", "batch_size": 5},
        }
    )
    assert not supports_learn_many(tree.HoeffdingTreeClassifier())
    assert supports_learn_many(reference_model())
    events = phishing()
    result = replay(events, cfg)
    theirs = by_hand(
        events,
        tree.HoeffdingTreeClassifier,
        lambda buf, e, when: when == "after" and len(buf) == 5,
        batch=False,
    )
    assert_same(probas(result), theirs)
    assert result.reports[-1]["update"]["fallback_batches"] == N // 5


def test_micro_batch_also_flushes_by_event_time():
    events = phishing()
    cfg = load_config({"update": {"mode": "micro_batch", "batch_size": 1000, "interval": 95}})
    result = replay(events, cfg)
    # Reference rule: a batch is learned when an event arrives 95 ms or more after the
    # batch's first example, before that event is predicted.
    model, buffer, first, theirs = reference_model(), [], None, []
    for e in events:
        if buffer and e["ts"] >= first + 95:
            model.learn_many(
                pd.DataFrame([x for x, _ in buffer]), pd.Series([y for _, y in buffer])
            )
            buffer = []
        theirs.append(model.predict_proba_one(e["features"]))
        if not buffer:
            first = e["ts"]
        buffer.append((e["features"], e["label"]))
    assert_same(probas(result), theirs)
    assert {p.model_version % 10 for p in result.predictions} == {0}  # 10 events per 95 ms


def test_periodic_learns_everything_buffered_every_interval():
    events = phishing()
    result = replay(events, load_config({"update": {"mode": "periodic", "interval": 1000}}))
    # Periods are [0, 1000), [1000, 2000), ...: the first event of a new period
    # triggers learning of everything before it.
    theirs = by_hand(
        events,
        reference_model,
        lambda buf, e, when: when == "before" and bool(buf) and e["ts"] % 1000 == 0,
        batch=True,
    )
    assert_same(probas(result), theirs)
    assert {p.model_version for p in result.predictions} == set(range(0, N, 100))
    final = result.reports[-1]
    assert final["model_version"] == N  # the last period is learned at end of input


def test_end_of_input_flushes_the_buffer():
    result = replay(phishing(13), load_config({"update": {"mode": "micro_batch", "batch_size": 5}}))
    final = result.reports[-1]
    assert final["model_version"] == 13 and final["counts"]["buffered"] == 0
    assert sum(final["trained_on"].values()) == 13


def test_rows_with_different_features_fall_back_to_learn_one():
    events = phishing(20)
    for e in events[::3]:
        e["features"] = dict(list(e["features"].items())[:-1])  # one feature missing
    result = replay(events, load_config({"update": {"mode": "micro_batch", "batch_size": 4}}))
    theirs = by_hand(
        events,
        reference_model,
        lambda buf, e, when: when == "after" and len(buf) == 4,
        batch=False,
    )
    assert_same(probas(result), theirs)
    assert result.reports[-1]["update"]["fallback_batches"] == 5


def test_delayed_labels_in_micro_batches():
    events = phishing()
    records = with_delayed_labels(events, 200)
    result = replay(records, load_config({"update": {"mode": "micro_batch", "batch_size": 16}}))
    final = result.reports[-1]
    assert final["labels"]["joined"] == N == final["model_version"]
    assert final["update"]["batches"] == N // 16 + (N % 16 > 0)


@pytest.mark.parametrize(
    "update",
    [
        {"mode": "periodic"},
        {"mode": "per_sample", "batch_size": 4},
        {"mode": "per_sample", "interval": "1s"},
        {"mode": "micro_batch", "batch_size": 0},
        {"mode": "sometimes"},
    ],
)
def test_bad_update_settings_fail_at_load(update):
    with pytest.raises(ConfigError, match="update"):
        load_config({"update": update})


def test_micro_batches_with_boolean_features_are_learned_as_numbers():
    # A frame of bool columns made River's learn_many raise on every batch, so a model
    # with a boolean feature never learned in micro_batch mode.
    from river import linear_model, preprocessing

    rows = [({"a": float(i % 5), "flag": i % 3 == 0}, i % 2 == 0) for i in range(64)]
    model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    updater = Updater(UpdateSettings(mode="micro_batch", batch_size=16))
    results = [r for i, (x, y) in enumerate(rows) for r in updater.add(model, x, y, ts=i)]
    assert [(r.learned, r.failed, r.batch) for r in results] == [(16, 0, True)] * 4
    reference = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    for at in range(0, 64, 16):
        chunk = rows[at : at + 16]
        X = pd.DataFrame([{k: float(v) for k, v in x.items()} for x, _ in chunk])
        reference.learn_many(X, pd.Series([y for _, y in chunk]))
    weights = model["LogisticRegression"].weights
    assert weights == reference["LogisticRegression"].weights and weights["flag"] != 0.0
