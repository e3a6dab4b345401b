"""The model's lifecycle per key: concept-drift detection and adaptation, and the
choice of the serving pipeline among candidates.

:mod:`stratiflow.lifecycle.drift` holds the detector state a model key keeps and what it
decides; :mod:`stratiflow.lifecycle.selection` the challengers and when one is promoted.
The model state (:mod:`stratiflow.learning.learner`) carries both out.
"""

from stratiflow.lifecycle.drift import DriftMonitor, Observation, RollingAccuracy
from stratiflow.lifecycle.selection import CHECK_EVERY, Challenger, Selection

__all__ = [
    "CHECK_EVERY",
    "Challenger",
    "DriftMonitor",
    "Observation",
    "RollingAccuracy",
    "Selection",
]
