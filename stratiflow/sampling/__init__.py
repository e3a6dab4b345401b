"""Stratified window sampling: per-class reservoirs and each window's training batch
(``windows``), the strategies that allocate it (``allocation``), and the event-time
alignment of batches with predictions (``alignment``).
"""

from __future__ import annotations

from stratiflow.sampling import windows as _former
from stratiflow.sampling.alignment import (
    EventTimeAligner,
)
from stratiflow.sampling.allocation import (
    ALLOCATIONS,
    Allocation,
    Quota,
    allocation_for,
    plan_quotas,
)
from stratiflow.sampling.windows import (
    END_OF_TIME,
    ClassSummary,
    ClassWindows,
    Example,
    LateExample,
    Reservoir,
    TrainingBatch,
    WindowAllocator,
    derive_seed,
    pickled_once,
    synthesize,
    window_start,
)

__all__ = [
    "ALLOCATIONS",
    "END_OF_TIME",
    "Allocation",
    "ClassSummary",
    "ClassWindows",
    "EventTimeAligner",
    "Example",
    "LateExample",
    "Quota",
    "Reservoir",
    "TrainingBatch",
    "WindowAllocator",
    "allocation_for",
    "derive_seed",
    "pickled_once",
    "plan_quotas",
    "synthesize",
    "window_start",
]


def __getattr__(name: str) -> object:
    """Private names of the former ``stratiflow.sampling`` module (``_Pending``, in stage 2's
    state), for state pickled by it."""
    return getattr(_former, name)
