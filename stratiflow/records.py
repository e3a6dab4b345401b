"""The records that flow through stratiflow and their JSON codec.

Every Kafka record is one JSON object. Inputs are *events*; outputs are
*predictions*, *metrics* reports and *dead letters*. The JSON Schemas in
``schemas/`` describe the same contracts; docs/records.md documents every field.

>>> event = Event(id="e1", ts=1_700_000_000_000, features={"x": 1.5}, label=True)
>>> event.key, event.labelled
('default', True)
>>> class_key(True), class_key(3), class_key("spam")
('true', '3', 'spam')
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import orjson

#: A label as it arrives in JSON. Floats are not labels (classification only).
Label = str | int | bool
#: A feature value as it arrives in JSON (``None`` means missing).
FeatureValue = float | int | str | bool | None

DEFAULT_KEY = "default"
METRICS_SCHEMA_VERSION = 2
SAMPLING_STATS_SCHEMA_VERSION = 1
MODEL_EVENTS_SCHEMA_VERSION = 1
LABEL_REQUESTS_SCHEMA_VERSION = 1

#: The ``type`` of a model-events record (``schemas/model_event.schema.json``).
ModelEventType = Literal[
    "drift_warning",
    "drift",
    "background_start",
    "background_drop",
    "model_reset",
    "model_swap",
    "promotion",
]
MODEL_EVENT_TYPES: tuple[ModelEventType, ...] = get_args(ModelEventType)


@dataclass(frozen=True, slots=True)
class SourceRef:
    """Where a record was read from, so a user can find it again."""

    topic: str
    partition: int
    offset: int


@dataclass(slots=True)
class Event:
    """One sample: features, an optional label, and the model key it belongs to."""

    id: str
    ts: int
    features: dict[str, FeatureValue]
    label: Label | None = None
    key: str = DEFAULT_KEY
    source: SourceRef | None = None

    @property
    def labelled(self) -> bool:
        return self.label is not None

    def model_input(self) -> dict[str, Any]:
        """Features as River sees them: missing (null) features are left out."""
        return {name: value for name, value in self.features.items() if value is not None}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "ts": self.ts, "features": self.features}
        if self.label is not None:
            out["label"] = self.label
        out["key"] = self.key
        return out


@dataclass(slots=True)
class LabelRecord:
    """A label that arrives after its event: ``{"id", "label", "ts", "key"?}``.

    ``key`` is the event's model key (default ``"default"``); the label is
    joined to the prediction made for event ``id`` under that key.
    """

    id: str
    label: Label
    ts: int
    key: str = DEFAULT_KEY
    source: SourceRef | None = None
    #: The record's original bytes, for a dead letter if it cannot be joined.
    raw: bytes | None = None
    #: How sure the annotator was, 0-1 (``curation.label_filter.min_confidence``).
    confidence: float | None = None
    #: Who gave the label (counted per annotator in the metrics record).
    annotator: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "label": self.label, "ts": self.ts, "key": self.key}
        if self.confidence is not None:
            out["confidence"] = self.confidence
        if self.annotator is not None:
            out["annotator"] = self.annotator
        return out


@dataclass(slots=True)
class Prediction:
    """What the model said about one event, before it learned from that event."""

    id: str
    ts: int
    key: str
    y_pred: Label | None
    proba: dict[Label, float]
    model_version: int
    emitted_at: int
    y_true: Label | None = None
    #: How many times the key's serving model was replaced (drift reset or swap) before it.
    generation: int = 0
    #: Which candidate made it (``main``: the ``model`` section).
    model: str = "main"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "ts": self.ts,
            "key": self.key,
            "y_pred": self.y_pred,
            "proba": {class_key(c): p for c, p in self.proba.items()},
            "model_version": self.model_version,
            "model": self.model,
            "generation": self.generation,
            "emitted_at": self.emitted_at,
        }
        if self.y_true is not None:
            out["y_true"] = self.y_true
        return out


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why an input cannot be used: a stable machine ``reason`` and a sentence for people."""

    reason: str
    detail: str


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A rejected input with everything needed to find, understand and replay it."""

    reason: str
    detail: str
    raw: bytes | None
    source: SourceRef | None
    at: int
    key: str | None = field(default=None)

    @classmethod
    def of(
        cls,
        rejection: Rejection,
        raw: bytes | None,
        source: SourceRef | None,
        at: int,
        key: str | None = None,
    ) -> DeadLetter:
        return cls(rejection.reason, rejection.detail, raw, source, at, key)

    def to_dict(self) -> dict[str, Any]:
        raw_text, encoding = encode_raw(self.raw)
        return {
            "reason": self.reason,
            "detail": self.detail,
            "raw": raw_text,
            "raw_encoding": encoding,
            "topic": self.source.topic if self.source else None,
            "partition": self.source.partition if self.source else None,
            "offset": self.source.offset if self.source else None,
            "key": self.key,
            "at": self.at,
        }


def encode_raw(raw: bytes | None) -> tuple[str | None, str]:
    """Original bytes as text when they are UTF-8, else base64.

    >>> encode_raw(b'{"a": 1}')
    ('{"a": 1}', 'utf-8')
    >>> encode_raw(b"\\xff\\x00")
    ('/wA=', 'base64')
    """
    if raw is None:
        return None, "none"
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), "base64"


def class_key(label: Label) -> str:
    """The JSON object key used for a class in ``proba`` and per-class metrics.

    JSON object keys are strings, so booleans become ``"true"``/``"false"`` (as in
    JSON itself) and integers their decimal text.
    """
    if isinstance(label, bool):
        return "true" if label else "false"
    return str(label)


#: What ``json.dumps(record, separators=(",", ":"), allow_nan=False, ensure_ascii=False)``
#: builds for every call; an encoder keeps no state between ``encode`` calls.
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False, ensure_ascii=False)


def to_json(record: Mapping[str, Any]) -> str:
    """Compact JSON; NaN/Infinity are refused because JSON has no such numbers."""
    return _ENCODER.encode(record)


def prediction_json(prediction: Prediction) -> str:
    """A prediction record's JSON, the hot path's encoder (orjson).

    Its probabilities are finite (the model step refuses an event otherwise), so the
    only value orjson would write differently from :func:`to_json` cannot occur; a label
    orjson cannot encode (an integer beyond 64 bits) takes :func:`to_json`.

    >>> p = Prediction("a", 1, "k", True, {True: 0.75, False: 0.25}, 3, 9)
    >>> json.loads(prediction_json(p)) == json.loads(to_json(p.to_dict()))
    True
    """
    record = prediction.to_dict()
    try:
        return orjson.dumps(record).decode()
    except TypeError:  # orjson.JSONEncodeError: e.g. an integer label beyond 64 bits
        return to_json(record)


def to_json_bytes(record: Mapping[str, Any]) -> bytes:
    return to_json(record).encode("utf-8")
