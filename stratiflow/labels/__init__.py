"""Delayed labels: label records joined by event id to the events they belong to."""

from __future__ import annotations

from stratiflow.labels.join import (
    Answer,
    Entry,
    Expiry,
    JoinOutput,
    LabelJoin,
    LabelOutcome,
    labelled_examples,
)

__all__ = [
    "Answer",
    "Entry",
    "Expiry",
    "JoinOutput",
    "LabelJoin",
    "LabelOutcome",
    "labelled_examples",
]
