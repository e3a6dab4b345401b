import json

import pytest

from stratiflow.records import (
    DeadLetter,
    Event,
    Prediction,
    Rejection,
    SourceRef,
    class_key,
    encode_raw,
    to_json,
)
from stratiflow.validation.parse import REASONS, LabelPolicy, Limits, parse_event

GOOD = {
    "id": "e1",
    "ts": 1_700_000_000_000,
    "features": {"a": 1.5, "b": "red", "c": None, "d": True},
    "label": "spam",
    "key": "k",
}


def raw(obj) -> bytes:
    return json.dumps(obj).encode()


def test_good_event_round_trips():
    event = parse_event(raw(GOOD), SourceRef("events", 2, 17))
    assert isinstance(event, Event)
    assert (event.id, event.ts, event.label, event.key) == ("e1", 1_700_000_000_000, "spam", "k")
    assert event.source == SourceRef("events", 2, 17)
    assert event.model_input() == {"a": 1.5, "b": "red", "d": True}  # null = missing
    assert json.loads(to_json(event.to_dict())) == GOOD


def test_defaults_key_and_unlabelled():
    event = parse_event(raw({"id": "x", "ts": 0, "features": {"a": 1}}))
    assert isinstance(event, Event)
    assert event.key == "default" and event.label is None and not event.labelled


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty_payload"),
        (None, "empty_payload"),
        (b"\xff\xfe", "not_utf8"),
        (b"{not json", "invalid_json"),
        (b'{"id": "a", "ts": 1, "features": {"x": NaN}}', "non_finite_number"),
        (b'{"id": "a", "ts": 1, "features": {"x": Infinity}}', "non_finite_number"),
        (b"[1, 2]", "not_an_object"),
        (b'"just a string"', "not_an_object"),
        (raw({"ts": 1, "features": {"a": 1}}), "missing_field"),
        (raw({"id": "a", "features": {"a": 1}}), "missing_field"),
        (raw({"id": "a", "ts": 1}), "missing_field"),
        (raw({**GOOD, "id": ""}), "bad_id"),
        (raw({**GOOD, "id": 7}), "bad_id"),
        (raw({**GOOD, "ts": "yesterday"}), "bad_timestamp"),
        (raw({**GOOD, "ts": 1.5}), "bad_timestamp"),
        (raw({**GOOD, "ts": -1}), "bad_timestamp"),
        (raw({**GOOD, "ts": True}), "bad_timestamp"),
        (raw({**GOOD, "key": ""}), "bad_key"),
        (raw({**GOOD, "key": 3}), "bad_key"),
        (raw({**GOOD, "features": [1, 2]}), "bad_features"),
        (raw({**GOOD, "features": {}}), "bad_features"),
        (raw({**GOOD, "features": {"a": {"nested": 1}}}), "bad_feature_value"),
        (raw({**GOOD, "features": {"a": [1]}}), "bad_feature_value"),
        (raw({**GOOD, "label": 1.5}), "bad_label"),
        (raw({**GOOD, "label": ["a"]}), "bad_label"),
        (b"[" * 100_000 + b"]" * 100_000, "invalid_json"),
    ],
)
def test_rejections_name_their_reason(payload, reason):
    result = parse_event(payload)
    assert isinstance(result, Rejection), result
    assert result.reason == reason
    assert result.reason in REASONS
    assert result.detail  # a sentence for people


def test_payload_limit():
    big = raw({**GOOD, "features": {"a": "x" * 2000}})
    result = parse_event(big, limits=Limits(max_payload_bytes=1000))
    assert isinstance(result, Rejection) and result.reason == "payload_too_large"
    assert isinstance(parse_event(big), Event)


def test_binary_label_policy():
    policy = LabelPolicy(binary=True)
    for ok in (True, False, 0, 1):
        assert isinstance(parse_event(raw({**GOOD, "label": ok}), label_policy=policy), Event)
    result = parse_event(raw({**GOOD, "label": "spam"}), label_policy=policy)
    assert isinstance(result, Rejection) and result.reason == "label_not_supported"
    assert isinstance(parse_event(raw({**GOOD, "label": 2}), label_policy=policy), Rejection)
    # multiclass models take any string/int/bool label
    assert isinstance(parse_event(raw({**GOOD, "label": 2})), Event)


def test_dead_letter_carries_raw_and_source():
    letter = DeadLetter.of(Rejection("invalid_json", "bad"), b"\xff{", SourceRef("t", 1, 9), at=5)
    out = json.loads(to_json(letter.to_dict()))
    assert out == {
        "reason": "invalid_json",
        "detail": "bad",
        "raw": "/3s=",
        "raw_encoding": "base64",
        "topic": "t",
        "partition": 1,
        "offset": 9,
        "key": None,
        "at": 5,
    }
    assert encode_raw(b"ok") == ("ok", "utf-8")


def test_prediction_json_uses_string_class_keys():
    p = Prediction("a", 1, "k", True, {True: 0.75, False: 0.25}, 3, 9, y_true=False)
    assert p.to_dict() == {
        "id": "a",
        "ts": 1,
        "key": "k",
        "y_pred": True,
        "proba": {"true": 0.75, "false": 0.25},
        "model_version": 3,
        "model": "main",
        "generation": 0,
        "emitted_at": 9,
        "y_true": False,
    }
    assert "y_true" not in Prediction("a", 1, "k", None, {}, 0, 9).to_dict()
    assert [class_key(c) for c in (True, 0, "x")] == ["true", "0", "x"]


def test_json_refuses_nan_on_output():
    with pytest.raises(ValueError):
        to_json({"x": float("nan")})
