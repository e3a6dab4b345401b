"""Curation on the learning paths of one key: label requests (``active``), the label
filter, and hard examples learned again (:mod:`stratiflow.curation` decides; this module
carries the decisions out on the key's state and counts them).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stratiflow.curation import CurationCounts, LabelRequester, filter_label
from stratiflow.evaluation.metrics import log_loss_term
from stratiflow.learning.state import ModelState
from stratiflow.records import LABEL_REQUESTS_SCHEMA_VERSION, Event, Label, class_key

__all__ = ["ask_label", "counts_of", "label_kept", "learn_hard", "predict_quietly"]


def counts_of(state: ModelState) -> CurationCounts:
    """The key's curation counts (made on first use: e.g. a first annotator)."""
    if state.curation is None:
        state.curation = CurationCounts()
    return state.curation


def ask_label(
    state: ModelState,
    requester: LabelRequester,
    event: Event,
    proba: Mapping[Label, float],
    version: int,
    generation: int,
) -> bool:
    """Decide whether to request the event's label; keep the request record if so."""
    request = requester.decide(proba)
    if request is None:
        return False
    state.request(
        {
            "schema_version": LABEL_REQUESTS_SCHEMA_VERSION,
            "id": event.id,
            "key": state.key,
            "ts": event.ts,
            "strategy": request.strategy,
            "score": request.score,
            "proba": {class_key(c): p for c, p in proba.items()},
            "model_version": version,
            "generation": generation,
            "simulated": requester.simulate,
        }
    )
    return True


def label_kept(
    state: ModelState,
    label: Label,
    proba: Mapping[Label, float],
    *,
    confidence: float | None = None,
    annotator: str | None = None,
    y_pred: Label | None = None,
) -> bool:
    """Whether the model may learn this label (the filter's drop is counted), and the
    annotator's counts. ``proba`` is the model's answer for the event (empty: the
    contradiction rule does not apply)."""
    rules = state.label_filter
    reason = None
    if rules is not None:
        reason = filter_label(
            rules, label, confidence=confidence, proba=proba, learned=state.model_version
        )
        if reason is not None:
            counts_of(state).drop(reason)
    if annotator is not None:
        counts_of(state).annotate(
            annotator, y_pred is not None and y_pred == label, reason is not None
        )
    return reason is None


def learn_hard(
    state: ModelState,
    event_id: str,
    x: dict[str, Any],
    y: Label,
    proba: Mapping[Label, float],
    ts: int,
) -> int:
    """Offer a learned example to the hard-example buffer (its loss is the prediction's),
    then maybe learn a buffered one again; how many examples were learned now."""
    hard = state.hard
    if hard is None:
        return 0
    hard.offer(event_id, x, y, log_loss_term(y, proba))
    again = hard.replay()
    if again is None:
        return 0
    counts_of(state).replayed += 1
    _, x_again, y_again = again
    return state.learn(x_again, y_again, ts=ts)


def predict_quietly(model: Any, x: dict[str, Any]) -> dict[Label, float]:
    """The model's probabilities, or none if it raises (a sampled example is not refused
    for it: it was predicted and scored when its event arrived)."""
    try:
        return dict(model.predict_proba_one(x))
    except Exception:  # River raises assorted errors on odd inputs
        return {}
