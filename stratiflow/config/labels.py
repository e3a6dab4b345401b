"""The ``labels`` section: delayed labels joined to earlier predictions
(:mod:`stratiflow.labels`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal, get_args

from stratiflow.config.errors import ConfigError
from stratiflow.config.fields import choice, parse_duration_ms, read_section

__all__ = [
    "DURATIONS",
    "LABEL_SOURCES",
    "LabelSource",
    "LabelsSettings",
    "parse_labels",
]

# Closed option sets: the type says what a field may hold; the tuple is what the checks list.
LabelSource = Literal["events", "topic", "none"]
LABEL_SOURCES: tuple[str, ...] = get_args(LabelSource)
#: The fields given as durations.
DURATIONS = ("ttl",)


@dataclass(frozen=True)
class LabelsSettings:
    """Delayed labels: label records joined to earlier predictions by event id."""

    #: ``events``: label records arrive on the events topic (one ordered stream);
    #: ``topic``: on ``topics.labels``; ``none``: labels only arrive inside events.
    source: LabelSource = "events"
    #: Event time a prediction waits for its label (and an early label for its
    #: event, and a joined id is remembered to spot duplicates).
    ttl: int = 3_600_000
    #: Per model key: ids held at most (waiting or remembered); the oldest go first.
    max_pending: int = 100_000


def parse_labels(raw: dict[str, Any]) -> LabelsSettings:
    """The ``labels`` section, checked."""
    labels = read_section(raw, "labels", LabelsSettings, durations=DURATIONS)
    labels = replace(labels, ttl=parse_duration_ms(labels.ttl, "labels.ttl"))
    choice(labels.source, LABEL_SOURCES, "labels.source")
    if labels.ttl < 1:
        raise ConfigError("labels.ttl", "must be a positive duration")
    if labels.max_pending < 1:
        raise ConfigError("labels.max_pending", "must be at least 1")
    return labels
