"""Carrying out the key's lifecycle on its state: what the drift detector and the
champion/challenger selection (:mod:`stratiflow.lifecycle`) decide after each scored
prediction, a reset, a swap or a promotion, each with its ``model_events`` record.
"""

from __future__ import annotations

from typing import Any

from stratiflow.evaluation.metrics import log_loss_term
from stratiflow.learning.state import ModelState
from stratiflow.lifecycle import DriftMonitor, Selection
from stratiflow.records import MODEL_EVENTS_SCHEMA_VERSION, Label

__all__ = ["select_champion", "watch_drift"]


def watch_drift(
    state: ModelState,
    drift: DriftMonitor,
    event_id: str,
    ts: int,
    y_true: Label,
    y_pred: Label,
    proba: dict[Label, float],
    shadow: Label | None = None,
    *,
    shadowed: bool = False,
) -> None:
    """Feed one scored prediction to the key's detector and carry out what it decides.

    ``shadow`` is the background model's answer for the same event; ``shadowed``: it
    gave one (the background model was there when the event was predicted, and is still
    the background one).

    With ``adaptation: background`` a warning starts a background model, dropped if the
    warning zone ends without a drift (as River's ``DriftRetrainingClassifier`` trains its
    background model only in the warning zone); a drift hands
    the serving place to it if it has learned anything, else to a fresh model (no
    warning came first: the same as a reset, as River's ``DriftRetrainingClassifier``
    does); between the two, it takes over once it beats the serving model over
    ``min_scored`` events.
    """
    correct = y_pred == y_true
    if drift.settings.signal == "error":
        signal = 0.0 if correct else 1.0
    else:
        signal = log_loss_term(y_true, proba)
    if shadowed and drift.background is not None and drift.background_learned:
        drift.shadow_score(shadow, y_true, correct)
    seen = drift.observe(error=signal, correct=correct)
    where = {"key": state.key, "id": event_id, "ts": ts, "scored": state.counts.scored}
    metric = (seen.before, seen.after)
    adaptation = drift.settings.adaptation
    if seen.warning:
        _event(state, drift, "drift_warning", where, metric)
        if adaptation == "background" and drift.background is None:
            drift.start_background(_fresh(state, drift))
            _event(state, drift, "background_start", where, metric)
    if seen.warning_cleared and adaptation == "background" and drift.background is not None:
        # A warning that came to nothing: the background model has mostly learned the
        # concept the serving model already knows; the next warning starts a fresh one.
        drift.take_background()
        _event(state, drift, "background_drop", where, metric)
    if seen.drift:
        _event(state, drift, "drift", where, metric)
        if adaptation == "background" and drift.background is not None and drift.background_learned:
            _swap(state, drift, where)
        elif adaptation != "none":
            if drift.background is not None:
                drift.take_background()  # it learned nothing: a fresh model is the same
            _replace(state, drift, "model_reset", where, _fresh(state, drift), 0, None)
            drift.resets += 1
    elif drift.background_is_better():
        _swap(state, drift, where)


def _fresh(state: ModelState, drift: DriftMonitor) -> Any:
    """A new, untrained model of the serving pipeline (a candidate, once promoted)."""
    if state.selection is not None:
        return state.selection.fresh_champion()
    return drift.fresh_model()


def select_champion(state: ModelState, selection: Selection, event_id: str, ts: int) -> None:
    """Promote the best challenger when it beats the champion (checked now and then)."""
    found = selection.candidate_to_promote(state.counts.scored)
    if found is None:
        return
    index, value, champion_value = found
    before = selection.champion
    versions = (state.model_version, selection.challengers[index].learned)
    generations = (state.generation, state.generation + 1)
    new = selection.promote(index, state.model, state.model_version)
    state.replace_model(new.model, new.learned)
    where = {"key": state.key, "id": event_id, "ts": ts, "scored": state.counts.scored}
    metric = {"name": selection.settings.metric, "window": selection.settings.window}
    _record(
        state, "promotion", where, {**metric, "before": champion_value, "after": value},
        versions, generations, model={"before": before, "after": new.name},
    )  # fmt: skip


def _swap(state: ModelState, drift: DriftMonitor, where: dict[str, Any]) -> None:
    before = drift.background_accuracy()
    model, learned = drift.take_background()
    _replace(state, drift, "model_swap", where, model, learned, before)
    drift.swaps += 1


def _replace(
    state: ModelState,
    drift: DriftMonitor,
    kind: str,
    where: dict[str, Any],
    model: Any,
    learned: int,
    new_accuracy: float | None,
) -> None:
    serving = drift.rolling.value
    versions = (state.model_version, learned)
    generations = (state.generation, state.generation + 1)
    state.replace_model(model, learned)
    _event(state, drift, kind, where, (serving, new_accuracy), versions, generations)


def _event(
    state: ModelState,
    drift: DriftMonitor,
    kind: str,
    where: dict[str, Any],
    metric: tuple[float | None, float | None],
    versions: tuple[int, int] | None = None,
    generations: tuple[int, int] | None = None,
) -> None:
    """Keep one drift record: the metric is the detector's rolling accuracy."""
    rolling = {"name": "accuracy", "window": drift.rolling.window}
    _record(
        state, kind, where, {**rolling, "before": metric[0], "after": metric[1]},
        versions, generations,
    )  # fmt: skip


def _record(
    state: ModelState,
    kind: str,
    where: dict[str, Any],
    metric: dict[str, Any],
    versions: tuple[int, int] | None,
    generations: tuple[int, int] | None,
    **extra: Any,
) -> None:
    """Keep one ``model_events`` record; versions and generations default to no change,
    detector and adaptation are the key's (``None`` without a detector)."""
    drift = state.drift
    version, generation = state.model_version, state.generation
    v_before, v_after = versions or (version, version)
    g_before, g_after = generations or (generation, generation)
    state.emit(
        {
            "schema_version": MODEL_EVENTS_SCHEMA_VERSION,
            "type": kind,
            **where,
            "detector": drift.detector_name if drift is not None else None,
            "adaptation": drift.settings.adaptation if drift is not None else None,
            "metric": metric,
            "model_version": {"before": v_before, "after": v_after},
            "generation": {"before": g_before, "after": g_after},
            **extra,
        }
    )
