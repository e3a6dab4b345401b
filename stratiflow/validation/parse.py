"""Turn raw bytes into an :class:`~stratiflow.records.Event` or a reason why not.

Validation never raises on bad input: it returns a
:class:`~stratiflow.records.Rejection`, which the job sends to the dead-letter
topic with the raw payload and its source coordinates.

>>> parse_event(b'{"id": "a", "ts": 1, "features": {"x": 1}, "label": 1}')
Event(id='a', ts=1, features={'x': 1}, label=1, key='default', source=None)
>>> parse_event(b'{"id": "a", "ts": 1, "features": {"x": NaN}}').reason
'non_finite_number'
>>> parse_event(b'{"id": "a", "ts": 9, "label": true}')
LabelRecord(id='a', label=True, ts=9, key='default', source=None, raw=b'{"id": ...}', ...)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import orjson

from stratiflow.config import ValidationSettings
from stratiflow.records import DEFAULT_KEY, Event, Label, LabelRecord, Rejection, SourceRef
from stratiflow.validation.cleaning import check_features

#: Reasons a record can be rejected, with what they mean (documented in docs/records.md).
REASONS: dict[str, str] = {
    "empty_payload": "the Kafka record has no value (null or zero bytes)",
    "payload_too_large": "the payload is larger than validation.max_payload_bytes",
    "not_utf8": "the payload is not valid UTF-8 text",
    "invalid_json": "the payload is not valid JSON",
    "non_finite_number": "the JSON contains NaN or Infinity",
    "not_an_object": "the JSON value is not an object",
    "missing_field": "a required field (id, ts, features) is absent",
    "bad_id": "id is not a non-empty string",
    "bad_timestamp": "ts is not an integer number of milliseconds since the epoch",
    "ts_in_future": "ts is further ahead of the wall clock than validation.max_future_ms",
    "bad_key": "key is not a non-empty string",
    "bad_features": "features is not an object, or is empty, or has too many entries",
    "bad_feature_value": "a feature value is not a number, string, boolean or null",
    "bad_label": "label is not a string, integer or boolean",
    "label_not_supported": "the configured model cannot learn this label (e.g. a binary model)",
    "bad_confidence": "a label record's confidence is not a number from 0 to 1",
    "bad_annotator": "a label record's annotator is not a string of 1 to 200 characters",
    "model_rejected_input": "the model raised an error on this event's features",
    "model_output_not_finite": "the model's probabilities were NaN or infinite for this event",
    "labels_disabled": "a label record arrived but labels.source is none",
    "not_a_label": "a record on the labels topic is not a label record {id, label, ts}",
    "label_unknown_id": "no event with this id arrived (under this key) within labels.ttl",
    "label_duplicate": "this event already has its label",
    "label_expired": "the label came after labels.ttl; the prediction was no longer waiting",
    "label_event_rejected": "the label's event was rejected, so there is no prediction to score",
    "unknown_feature": "a feature not declared in validation.features (unknown_features: reject)",
    "feature_missing": "a declared feature with missing: reject is absent or null",
    "feature_wrong_type": "a declared feature has another type than its rule says",
    "feature_out_of_range": "a declared feature is outside its rule's [min, max]",
    "feature_not_allowed": "a declared feature's value is not among its allowed values",
    "feature_outlier": "a feature is outside the quantile range learned for it (outliers: reject)",
}

_MAX_TS = 2**53  # JSON numbers above this lose integer precision in many clients.


@dataclass(frozen=True, slots=True)
class LabelPolicy:
    """Which labels the configured model can learn.

    Binary River classifiers (e.g. ``LogisticRegression``) learn booleans; JSON
    ``0``/``1`` are accepted too because River treats them as False/True.

    Attributes
    ----------
    binary
        The model is a binary classifier; otherwise any string, integer or boolean
        label is accepted.

    Examples
    --------
    >>> LabelPolicy(binary=True).check(1) is None
    True
    >>> LabelPolicy(binary=True).check("spam").reason
    'label_not_supported'
    """

    binary: bool = False

    def check(self, label: Label) -> Rejection | None:
        if self.binary and not (isinstance(label, bool) or label in (0, 1)):
            return Rejection(
                "label_not_supported",
                f"label {label!r} given to a binary model; use true/false (or 0/1)",
            )
        return None


MAX_PAYLOAD_BYTES = 1_048_576


@dataclass(frozen=True, slots=True)
class Limits:
    """Size limits that protect the job from hostile or broken producers.

    Attributes
    ----------
    max_payload_bytes
        Larger record values are rejected (``payload_too_large``).
    max_features
        Events with more features are rejected (``bad_features``).
    """

    max_payload_bytes: int = MAX_PAYLOAD_BYTES
    max_features: int = 10_000
    #: With ``now_ms``: the latest acceptable ``ts`` (``None``: no bound).
    latest_ts: int | None = None


def _reject_constant(name: str) -> Any:
    raise _NonFinite(name)


class _NonFinite(ValueError):
    pass


def parse_event(
    raw: bytes | None,
    source: SourceRef | None = None,
    *,
    limits: Limits = Limits(),
    label_policy: LabelPolicy = LabelPolicy(),
    default_key: str = DEFAULT_KEY,
    labels: bool = True,
    rules: ValidationSettings | None = None,
) -> Event | LabelRecord | Rejection:
    """Decode and validate one record value: an event, or (``labels``) a label record.

    Parameters
    ----------
    raw
        The Kafka record value, untouched.
    source
        Where it came from; copied onto the event for later dead letters.
    limits
        Payload and feature-count limits.
    label_policy
        Which labels the configured model accepts.
    default_key
        Model key for events that carry none.
    labels
        Accept label records (objects with ``label`` and no ``features``).
    rules
        ``validation.features`` checks applied to an event's features.

    Returns
    -------
    Event | LabelRecord | Rejection
        The event, the label record (only with ``labels``), or why the record was
        refused (bad input never raises).
    """
    if not raw:
        return Rejection("empty_payload", "the record has no value")
    if len(raw) > limits.max_payload_bytes:
        return Rejection(
            "payload_too_large",
            f"{len(raw)} bytes is more than the limit of {limits.max_payload_bytes} bytes",
        )
    try:
        # orjson accepts exactly the valid UTF-8, finite-number, 64-bit-integer JSON, and
        # gives what json.loads gives for it; anything else takes the stdlib path, which
        # says why it is refused (or, for a huge integer, accepts it as before).
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        obj = _loads_slowly(raw)
        if isinstance(obj, Rejection):
            return obj
    if isinstance(obj, dict) and "features" not in obj and "label" in obj:
        if not labels:
            return Rejection(
                "labels_disabled",
                "this is a label record, but labels.source is none (labels only inside events)",
            )
        record = label_from_object(obj, source, label_policy=label_policy, default_key=default_key)
        if isinstance(record, LabelRecord):
            record.raw = raw
        return record
    return event_from_object(
        obj,
        source,
        limits=limits,
        label_policy=label_policy,
        default_key=default_key,
        rules=rules,
    )


def _loads_slowly(raw: bytes) -> Any:
    """The stdlib path: the decoded value, or why the bytes are refused (a Rejection)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejection("not_utf8", f"byte {exc.start} is not valid UTF-8")
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except _NonFinite as exc:
        return Rejection(
            "non_finite_number", f"{exc} is not a JSON number; send null for a missing value"
        )
    except json.JSONDecodeError as exc:
        return Rejection("invalid_json", f"{exc.msg} at line {exc.lineno} column {exc.colno}")
    except RecursionError:
        return Rejection("invalid_json", "the JSON is nested too deeply")


def model_key_of(raw: bytes | None, max_payload_bytes: int = MAX_PAYLOAD_BYTES) -> str:
    """The model key a record will be validated under, or ``""`` if it cannot be one.

    The job keys raw records by this before parsing them in the model's own
    operator. For every record :func:`parse_event` accepts, the result equals
    the record's ``key``; records it refuses may land under any key, since they
    only become dead letters.

    Parameters
    ----------
    raw
        The Kafka record value, untouched.
    max_payload_bytes
        A larger value gets ``""`` (:func:`parse_event` refuses it).

    Returns
    -------
    str
        The record's ``key``, ``"default"`` when it has none, or ``""``.

    Examples
    --------
    >>> model_key_of(b'{"id": "a", "ts": 1, "features": {"x": 1}, "key": "eu"}')
    'eu'
    >>> model_key_of(b'{"id": "a", "ts": 1, "features": {"x": 1}}')
    'default'
    >>> model_key_of(b'not json')
    ''
    """
    if not raw or len(raw) > max_payload_bytes:
        return ""
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):
        return ""
    if not isinstance(obj, dict):
        return ""
    key = obj.get("key")
    if key is None:
        return DEFAULT_KEY
    return key if isinstance(key, str) else ""


def label_from_object(
    obj: dict[str, Any],
    source: SourceRef | None = None,
    *,
    limits: Limits = Limits(),
    label_policy: LabelPolicy = LabelPolicy(),
    default_key: str = DEFAULT_KEY,
) -> LabelRecord | Rejection:
    """Validate a decoded label record ``{"id", "label", "ts", "key"?}``.

    Parameters
    ----------
    obj
        The decoded JSON object.
    source
        Where it came from; copied onto the label record.
    limits
        Only ``latest_ts`` applies: a later ``ts`` is refused (``ts_in_future``).
    label_policy
        Which labels the configured model accepts.
    default_key
        Model key for records that carry none.

    Returns
    -------
    LabelRecord | Rejection
        The label record, or the first reason it was refused.

    Examples
    --------
    >>> label_from_object({"id": "a", "label": True, "ts": 9, "key": "eu"})
    LabelRecord(id='a', label=True, ts=9, key='eu', source=None, raw=None, confidence=None, ...)
    >>> label_from_object({"id": "a", "label": 2, "ts": 9}, label_policy=LabelPolicy(binary=True))
    Rejection(reason='label_not_supported', detail='label 2 given to a binary model; ...')
    """
    for name in ("id", "ts", "label"):
        if name not in obj:
            return Rejection("missing_field", f"label record field {name!r} is missing")
    common = _id_ts_key(obj, default_key, limits)
    if isinstance(common, Rejection):
        return common
    event_id, ts, key = common
    label = obj["label"]
    rejection = _check_label(label, label_policy)
    if rejection is not None:
        return rejection
    assert label is not None  # _check_label refuses null in a label record
    confidence = obj.get("confidence")
    if confidence is not None and (
        isinstance(confidence, bool)
        or not isinstance(confidence, int | float)
        or not 0 <= confidence <= 1
    ):
        return Rejection(
            "bad_confidence", f"confidence must be a number from 0 to 1, got {confidence!r}"
        )
    annotator = obj.get("annotator")
    if annotator is not None and (not isinstance(annotator, str) or not 0 < len(annotator) <= 200):
        return Rejection(
            "bad_annotator", f"annotator must be a string of 1 to 200 characters, got {annotator!r}"
        )
    return LabelRecord(
        event_id, label, ts, key, source, None,
        None if confidence is None else float(confidence), annotator,
    )  # fmt: skip


def _check_future(ts: int, limits: Limits) -> Rejection | None:
    # One event from the year 2100 would move every watermark past all real data.
    if limits.latest_ts is not None and ts > limits.latest_ts:
        return Rejection(
            "ts_in_future",
            f"ts {ts} is {ts - limits.latest_ts} ms beyond the latest accepted time "
            "(validation.max_future_ms ahead of the wall clock)",
        )
    return None


def _check_label(label: Any, label_policy: LabelPolicy) -> Rejection | None:
    if not isinstance(label, str | int):  # bool is an int
        return Rejection(
            "bad_label", f"label must be a string, integer or boolean, got {_json_type(label)}"
        )
    return label_policy.check(label)


def _id_ts_key(
    obj: dict[str, Any], default_key: str, limits: Limits
) -> tuple[str, int, str] | Rejection:
    event_id = obj["id"]
    if not isinstance(event_id, str) or not event_id:
        return Rejection("bad_id", f"id must be a non-empty string, got {_json_type(event_id)}")
    ts = obj["ts"]
    if isinstance(ts, bool) or not isinstance(ts, int) or not 0 <= ts < _MAX_TS:
        return Rejection(
            "bad_timestamp",
            f"ts must be an integer of milliseconds since the epoch, got {_short(ts)}",
        )
    key = obj.get("key", default_key)
    if key is None:
        key = default_key
    if not isinstance(key, str) or not key:
        return Rejection("bad_key", f"key must be a non-empty string, got {_json_type(key)}")
    future = _check_future(ts, limits)
    if future is not None:
        return future
    return event_id, ts, key


def event_from_object(
    obj: Any,
    source: SourceRef | None = None,
    *,
    limits: Limits = Limits(),
    label_policy: LabelPolicy = LabelPolicy(),
    default_key: str = DEFAULT_KEY,
    rules: ValidationSettings | None = None,
) -> Event | Rejection:
    """Validate an already-decoded JSON value against the event contract
    (and ``rules``, the stateless ``validation.features`` checks).

    Parameters
    ----------
    obj
        The decoded JSON value.
    source
        Where it came from; copied onto the event for later dead letters.
    limits
        The feature-count limit, and the latest acceptable ``ts``.
    label_policy
        Which labels the configured model accepts (for an event that carries one).
    default_key
        Model key for events that carry none.
    rules
        ``validation.features`` checks applied to the features (``None``: none).

    Returns
    -------
    Event | Rejection
        The event, or the first reason it was refused.

    Examples
    --------
    >>> event_from_object({"id": "a", "ts": 1, "features": {"x": 1.5, "city": None}})
    Event(id='a', ts=1, features={'x': 1.5, 'city': None}, label=None, key='default', source=None)
    >>> event_from_object({"id": "a", "ts": 1, "features": {"x": [1, 2]}}).detail
    "feature 'x' is an array; use a number, string, boolean or null"
    """
    if not isinstance(obj, dict):
        return Rejection("not_an_object", f"expected a JSON object, got {_json_type(obj)}")
    for name in ("id", "ts", "features"):
        if name not in obj:
            return Rejection("missing_field", f"required field {name!r} is missing")

    common = _id_ts_key(obj, default_key, limits)
    if isinstance(common, Rejection):
        return common
    event_id, ts, key = common

    features = obj["features"]
    if not isinstance(features, dict):
        return Rejection("bad_features", f"features must be an object, got {_json_type(features)}")
    if not features:
        return Rejection("bad_features", "features is empty")
    if len(features) > limits.max_features:
        return Rejection(
            "bad_features",
            f"{len(features)} features is more than the limit of {limits.max_features}",
        )
    for name, value in features.items():
        if value is not None and not isinstance(value, int | float | str):
            return Rejection(
                "bad_feature_value",
                f"feature {name!r} is {_json_type(value)}; use a number, string, boolean or null",
            )

    label = obj.get("label")
    if label is not None:
        rejection = _check_label(label, label_policy)
        if rejection is not None:
            return rejection
    if rules is not None:
        rejection = check_features(features, rules)
        if rejection is not None:
            return rejection

    return Event(id=event_id, ts=ts, features=features, label=label, key=key, source=source)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
