"""Stratified window sampling: per-class reservoirs and the allocation of each window's
training batch (``windows``), and the event-time alignment of batches with predictions
(``alignment``).
"""

from __future__ import annotations

from stratiflow.sampling import windows as _former
from stratiflow.sampling.alignment import (
    EventTimeAligner,
)
from stratiflow.sampling.windows import (
    END_OF_TIME,
    ClassSummary,
    ClassWindows,
    Example,
    LateExample,
    Quota,
    Reservoir,
    TrainingBatch,
    WindowAllocator,
    derive_seed,
    pickled_once,
    plan_quotas,
    synthesize,
    window_start,
)

__all__ = [
    "END_OF_TIME",
    "ClassSummary",
    "ClassWindows",
    "EventTimeAligner",
    "Example",
    "LateExample",
    "Quota",
    "Reservoir",
    "TrainingBatch",
    "WindowAllocator",
    "derive_seed",
    "pickled_once",
    "plan_quotas",
    "synthesize",
    "window_start",
]


def __getattr__(name: str) -> object:
    """Private names of the former ``stratiflow.sampling`` module, for state pickled by it."""
    return getattr(_former, name)
