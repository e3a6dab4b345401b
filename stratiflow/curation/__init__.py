"""Curating what a model learns from: active learning with a label budget (``active``),
the label filter and the curation counts (``labels``), and a buffer of the hardest
examples to learn again (``hard_examples``). Tomek links, an operation on a window's
sample, live in :mod:`stratiflow.sampling.tomek`."""

from __future__ import annotations

from stratiflow.curation.active import (
    ACTIVE_STRATEGIES,
    REQUEST_STRATEGIES,
    ActiveStrategy,
    LabelBudget,
    LabelRequester,
    RandomRequests,
    Request,
    RequestStrategy,
    UncertaintyRequests,
    VariableUncertaintyRequests,
    requester_for,
    requester_from,
    uncertainty,
)
from stratiflow.curation.hard_examples import HardExamples
from stratiflow.curation.labels import AnnotatorCounts, CurationCounts, DropReason, filter_label
from stratiflow.curation.oracle import LabelOracle, read_true_labels

__all__ = [
    "ACTIVE_STRATEGIES",
    "REQUEST_STRATEGIES",
    "ActiveStrategy",
    "AnnotatorCounts",
    "CurationCounts",
    "DropReason",
    "HardExamples",
    "LabelBudget",
    "LabelOracle",
    "LabelRequester",
    "RandomRequests",
    "Request",
    "RequestStrategy",
    "UncertaintyRequests",
    "VariableUncertaintyRequests",
    "filter_label",
    "read_true_labels",
    "requester_for",
    "requester_from",
    "uncertainty",
]
