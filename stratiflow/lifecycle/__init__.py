"""The model's lifecycle per key: concept-drift detection and adaptation.

:mod:`stratiflow.lifecycle.drift` holds the detector state a model key keeps and
what it decides; the model state (:mod:`stratiflow.learning.learner`) carries it out.
"""

from stratiflow.lifecycle.drift import DriftMonitor, Observation, RollingAccuracy

__all__ = ["DriftMonitor", "Observation", "RollingAccuracy"]
