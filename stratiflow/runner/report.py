"""The metrics record: one per model key per report (``schema_version`` 2).

Every field is documented in docs/records.md and in ``schemas/metrics.schema.json``.

>>> from stratiflow.config import load_config
>>> from stratiflow.learning.learner import ModelState
>>> report = metrics_report(ModelState.new(load_config()), "default", now_ms=0)
>>> report["schema_version"], report["counts"]["seen"], report["cumulative"]["accuracy"]
(2, 0, None)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stratiflow.learning.learner import ModelState
from stratiflow.records import METRICS_SCHEMA_VERSION


def metrics_report(
    state: ModelState,
    key: str,
    *,
    now_ms: int,
    final: bool = False,
    probe: tuple[Mapping[str, Any], ...] = (),
) -> dict[str, Any]:
    """The metrics record for ``key`` now; ``probe`` is ``metrics.probe``.

    Parameters
    ----------
    state
        The key's model state; changed in place (the report count, the stability
        history, the probe answers and the throughput baseline move on).
    key
        The model key.
    now_ms
        The wall clock: ``emitted_at``, and the end of the throughput interval.
    final
        The key's last report (end of a bounded input).
    probe
        Features re-predicted to measure how often the model's answers change.

    Returns
    -------
    dict[str, Any]
        The metrics record (``schema_version`` 2; every field is in docs/records.md).
    """
    state.reports += 1
    c = state.counts
    views = state.evaluation.report(state.model, probe)
    return {
        "schema_version": METRICS_SCHEMA_VERSION,
        "key": key,
        "report": state.reports,
        "final": final,
        "event_ts": state.last_ts,
        "emitted_at": now_ms,
        "model_version": state.model_version,
        "counts": {
            "seen": c.seen,
            "predicted": c.predicted,
            "scored": c.scored,
            "learned": c.learned,
            "labelled": c.labelled,
            "unlabelled": c.unlabelled,
            "rejected": c.rejected,
            "learn_failed": c.learn_failed,
            "late": c.late,
            "buffered": len(state.updater),
        },
        "labels": state.labels.summary(),
        "trained_on": dict(sorted(state.trained_on.items())),
        "cleaning": state.cleaner.summary(),
        **views,
        "update": {
            "mode": state.updater.settings.mode,
            "batches": state.updater.batches,
            "fallback_batches": state.updater.fallback_batches,
        },
        "cost": state.cost.summary(state.model, state, c.predicted, now_ms),
        "generation": state.generation,
        "drift": state.drift.summary() if state.drift is not None else None,
        "candidates": (
            state.selection.summary(state.model_version) if state.selection is not None else None
        ),
        "active": state.active.summary() if state.active is not None else None,
        "curation": _curation(state),
    }


def _curation(state: ModelState) -> dict[str, Any] | None:
    """The ``curation`` section: every curation decision, counted (``None``: none made)."""
    if state.curation is None:
        return None
    return {
        **state.curation.summary(),
        "hard_examples": state.hard.summary() if state.hard is not None else None,
    }
