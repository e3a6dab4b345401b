"""The simulated annotator behind ``stratiflow label-oracle``."""

from __future__ import annotations

import json

import pytest

from stratiflow.curation import LabelOracle, read_true_labels


def requests(n: int) -> list[dict]:
    return [{"id": f"e{i}", "key": "k", "ts": 1000 + i} for i in range(n)]


def test_answers_are_the_true_labels_after_the_delay():
    labels = {f"e{i}": i % 3 for i in range(100)}
    oracle = LabelOracle(labels, delay_ms=250)
    answers = oracle.answers(requests(100), now_ms=10_000)
    assert [due for due, _ in answers] == [10_250] * 100
    assert [(r["id"], r["label"], r["ts"]) for _, r in answers] == [
        (f"e{i}", i % 3, 1250 + i) for i in range(100)
    ]
    assert oracle.answered == 100 and oracle.wrong == 0


def test_noise_flips_about_its_share_to_another_class_reproducibly():
    labels = {f"e{i}": ("a", "b", "c")[i % 3] for i in range(20_000)}
    first = LabelOracle(labels, noise=0.2, seed=7).answers(requests(20_000), now_ms=0)
    again = LabelOracle(labels, noise=0.2, seed=7).answers(requests(20_000), now_ms=0)
    other = LabelOracle(labels, noise=0.2, seed=8).answers(requests(20_000), now_ms=0)
    wrong = [r for _, r in first if r["label"] != labels[r["id"]]]
    assert abs(len(wrong) / 20_000 - 0.2) < 0.01
    assert {r["label"] for r in wrong} <= {"a", "b", "c"}
    assert first == again and first != other


def test_unknown_ids_are_counted_not_answered():
    oracle = LabelOracle({"e0": True})
    assert len(oracle.answers(requests(3), now_ms=0)) == 1
    assert oracle.unknown == 2


def test_true_labels_come_from_events_or_label_records(tmp_path):
    path = tmp_path / "truth.jsonl"
    lines = [
        {"id": "a", "ts": 1, "features": {"x": 1}, "label": True},
        {"id": "b", "ts": 2, "features": {"x": 2}},  # unlabelled: skipped
        {"id": "c", "label": "spam", "ts": 3},
    ]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    assert read_true_labels(path) == {"a": True, "c": "spam"}


@pytest.mark.parametrize("kwargs", [{"noise": 1.5}, {"delay_ms": -1}])
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        LabelOracle({}, **kwargs)
