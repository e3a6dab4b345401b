"""The model of one key: its state (``state``), one ``step`` (predict, score, learn)
shared by every runner (``learner``), when it learns (``updates``), and the drift and
champion/challenger decisions carried out on it (``adaptation``).
"""

from __future__ import annotations

from stratiflow.learning.batched import batchable, step_many
from stratiflow.learning.learner import (
    Counts,
    ModelState,
    StepOutput,
    StoredPrediction,
    answer,
    expire,
    finish,
    initial_model,
    label_policy,
    learn_examples,
    refuse_label,
    step,
)
from stratiflow.learning.updates import (
    UPDATE_POLICIES,
    LearnResult,
    MicroBatch,
    Periodic,
    PerSample,
    UpdatePolicy,
    Updater,
    learn_error,
    policy_for,
    supports_learn_many,
)

__all__ = [
    "UPDATE_POLICIES",
    "Counts",
    "LearnResult",
    "MicroBatch",
    "ModelState",
    "PerSample",
    "Periodic",
    "StepOutput",
    "StoredPrediction",
    "UpdatePolicy",
    "Updater",
    "answer",
    "batchable",
    "expire",
    "finish",
    "initial_model",
    "label_policy",
    "learn_error",
    "learn_examples",
    "policy_for",
    "refuse_label",
    "step",
    "step_many",
    "supports_learn_many",
]
