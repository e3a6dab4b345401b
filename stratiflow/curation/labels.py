"""Which labels the model learns: the label filter, and what every curation decision
of a key adds up to (the metrics record's ``curation`` section).

A dropped label still scores the prediction made for its event; only learning is
skipped. Each drop is counted by reason, and per annotator when the label record
names one.

>>> from stratiflow.config.curation import LabelFilterSettings
>>> rules = LabelFilterSettings(min_confidence=0.6, contradiction=0.9, warmup=0)
>>> filter_label(rules, True, confidence=0.5, proba={True: 0.5, False: 0.5}, learned=10)
'low_confidence'
>>> filter_label(rules, True, confidence=None, proba={True: 0.05, False: 0.95}, learned=10)
'contradiction'
>>> filter_label(rules, True, confidence=0.9, proba={True: 0.2, False: 0.8}, learned=10) is None
True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from stratiflow.config.curation import LabelFilterSettings
from stratiflow.records import Label

__all__ = ["AnnotatorCounts", "CurationCounts", "DropReason", "filter_label"]

DropReason = Literal["low_confidence", "contradiction"]


def filter_label(
    rules: LabelFilterSettings,
    label: Label,
    *,
    confidence: float | None,
    proba: Mapping[Label, float],
    learned: int,
) -> DropReason | None:
    """Why a label is kept out of learning, or ``None`` to learn it.

    Parameters
    ----------
    rules
        ``curation.label_filter``.
    label
        The label given.
    confidence
        The label record's ``confidence`` (``None``: not given, never dropped for it).
    proba
        The model's probabilities for the event (what it predicted before learning it).
    learned
        Examples the model has learned: the contradiction rule waits for ``warmup``.

    Returns
    -------
    DropReason | None
        ``low_confidence``, ``contradiction``, or ``None``.
    """
    if confidence is not None and confidence < rules.min_confidence:
        return "low_confidence"
    bound = rules.contradiction
    if bound is not None and proba and learned >= rules.warmup:
        top = max(proba, key=proba.__getitem__)
        if top != label and proba[top] >= bound:
            return "contradiction"
    return None


@dataclass
class AnnotatorCounts:
    """One annotator's labels for a key: how many, how many the model agreed with
    (its prediction was the label), how many were dropped."""

    labels: int = 0
    agreed: int = 0
    dropped: int = 0


@dataclass
class CurationCounts:
    """What curation did for one model key (picklable, in the key's state)."""

    #: Labels kept out of learning, by reason.
    dropped: dict[str, int] = field(default_factory=dict)
    #: With ``active.simulate``: labelled events not learned because no request was made.
    withheld: int = 0
    #: Delayed labels that answered a request, and those nobody asked for (both learned).
    answered: int = 0
    unrequested: int = 0
    #: Examples learned again from the hard-example buffer.
    replayed: int = 0
    annotators: dict[str, AnnotatorCounts] = field(default_factory=dict)

    def drop(self, reason: DropReason) -> None:
        """Count one label kept out of learning."""
        self.dropped[reason] = self.dropped.get(reason, 0) + 1

    def annotate(self, annotator: str, agreed: bool, dropped: bool) -> None:
        """Count one label from a named annotator."""
        counts = self.annotators.get(annotator)
        if counts is None:
            counts = self.annotators[annotator] = AnnotatorCounts()
        counts.labels += 1
        counts.agreed += agreed
        counts.dropped += dropped

    def summary(self) -> dict[str, Any]:
        """The counts for the metrics record (agreement: the share of an annotator's
        labels the model had predicted).

        Returns
        -------
        dict[str, Any]
            ``dropped`` (by reason), ``withheld``, ``answered``, ``unrequested``,
            ``replayed`` and ``annotators``.
        """
        return {
            "dropped": {
                "low_confidence": self.dropped.get("low_confidence", 0),
                "contradiction": self.dropped.get("contradiction", 0),
            },
            "withheld": self.withheld,
            "answered": self.answered,
            "unrequested": self.unrequested,
            "replayed": self.replayed,
            "annotators": {
                name: {
                    "labels": c.labels,
                    "agreed": c.agreed,
                    "agreement": c.agreed / c.labels if c.labels else None,
                    "dropped": c.dropped,
                }
                for name, c in sorted(self.annotators.items())
            },
        }
