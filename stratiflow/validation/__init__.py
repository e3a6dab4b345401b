"""Checking input before learning: raw bytes to typed records or a reason why not (``parse``),
and per-feature cleaning (``cleaning``).
"""

from __future__ import annotations

from stratiflow.validation.cleaning import (
    ABSURD,
    FEATURE_TYPES,
    Cleaner,
    check_features,
)
from stratiflow.validation.parse import (
    MAX_PAYLOAD_BYTES,
    REASONS,
    LabelPolicy,
    Limits,
    event_from_object,
    label_from_object,
    model_key_of,
    parse_event,
)

__all__ = [
    "ABSURD",
    "FEATURE_TYPES",
    "MAX_PAYLOAD_BYTES",
    "REASONS",
    "Cleaner",
    "LabelPolicy",
    "Limits",
    "check_features",
    "event_from_object",
    "label_from_object",
    "model_key_of",
    "parse_event",
]
