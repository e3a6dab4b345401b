"""Batched prediction in ``update.mode: micro_batch``: :func:`step` for a run of events.

With ``micro_batch`` the model only changes when a micro-batch is learned, so every
event between two updates is predicted by the same model: the one left by the
previous batch (just as :func:`~stratiflow.learning.learner.step` predicts it with
``predict_proba_one``). :func:`step_many` predicts such a run with one
``predict_proba_many`` call on a DataFrame of the events' cleaned features, then
does ``step``'s bookkeeping event by event, in order: the same predictions
(versions, labels, ``y_pred``), rejections, counts, scores, learning and
``report_due`` flags as calling ``step`` for each event in turn.

The probabilities are River's many-methods' results, computed with numpy rather
than pure Python: equal to ``predict_proba_many`` on the same micro-batches (and the
model equal to ``learn_many``'s), and within the last bits of ``predict_proba_one``:
the largest difference measured with ``StandardScaler | LogisticRegression``
(20 000 Agrawal and Hyperplane events, the 1 250 Phishing ones; micro-batches of 32
and 256) is 2.2e-16, one or two units in the last place; where River's scalar
sigmoid clamps a saturated logit (beyond ±30) to exactly 0 and 1, numpy gives up to
exp(-30) = 9.4e-14. The first row of each call is also predicted with
``predict_proba_one``: if the two differ by more than :data:`AGREEMENT` (a model
whose many-methods mean something else), that call's rows are predicted one by one,
as ``step`` predicts them.

A lone row (a call with one event, or the only one with its feature list) is
predicted with ``predict_proba_one``, exactly as ``step`` predicts it. The last bit
of a row's probabilities can also depend on its position in the DataFrame (OpenBLAS
computes the matrix-vector product in blocks). So the probabilities may differ in
their last bit with how the input is cut into :func:`step_many` calls; everything
else (learning, versions, ``y_pred``, counts) does not.

>>> from stratiflow.config import load_config
>>> from stratiflow.records import Event
>>> cfg = load_config({"update": {"mode": "micro_batch", "batch_size": 2}})
>>> state = ModelState.new(cfg)
>>> batchable(state, learn=True)
True
>>> events = [Event(str(i), i, {"x": float(i)}, label=i % 2 == 0) for i in range(4)]
>>> [o.prediction.model_version for o in step_many(state, events, now_ms=0)]
[0, 0, 2, 2]
>>> state.counts.learned, state.updater.batches
(4, 2)
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping, Sequence
from functools import lru_cache
from time import perf_counter
from typing import Any, TypeAlias

from river import base as river_base

from stratiflow.learning.learner import StepOutput, _model_error, _tick, settle, step
from stratiflow.learning.state import ModelState, StoredPrediction
from stratiflow.learning.updates import MicroBatch, numeric_frame
from stratiflow.records import Event, Label, Rejection

__all__ = ["batchable", "step_many"]

#: One row's prediction: the probability per class, or why the model refused the row;
#: and the seconds it cost (its share of a batched call).
_Predicted = tuple[dict[Label, float] | Rejection, float]
#: Largest difference from ``predict_proba_one`` taken for rounding (measured: 2.2e-16,
#: and exp(-30) = 9.4e-14 where River's scalar sigmoid clamps a saturated logit).
AGREEMENT = 1e-9

#: A model's class, or a pipeline's class and its steps' shapes (hashable: a cache key).
_Shape: TypeAlias = type | tuple[type, tuple["_Shape", ...]]


def batchable(state: ModelState, *, learn: bool) -> bool:
    """Whether :func:`step_many` predicts ``state``'s events in batches.

    Only when nothing but the micro-batch update changes the model between events:
    ``update.mode: micro_batch``, learning from labelled events (``sampling.strategy:
    none``), no drift detection, candidates, active learning, hard examples or label
    filter; and a model whose every step has River's mini-batch methods
    (``learn_many``; ``transform_many`` for the transformers, ``predict_proba_many``
    for the classifier). It is asked per input batch: the model's answer is cached by
    the model's classes (its pipeline's shape).

    Parameters
    ----------
    state
        The key's state.
    learn
        The events' labels are learned at once (``sampling.strategy: none``).

    Returns
    -------
    bool
        Whether :func:`step_many` takes the batched path (otherwise it calls
        :func:`~stratiflow.learning.learner.step` per event).

    Examples
    --------
    >>> from stratiflow.config import load_config
    >>> micro = {"update": {"mode": "micro_batch"}}
    >>> batchable(ModelState.new(load_config(micro)), learn=True)
    True
    >>> batchable(ModelState.new(load_config(micro)), learn=False)
    False
    >>> batchable(ModelState.new(load_config()), learn=True)  # per_sample
    False
    >>> tree = {**micro, "model": ["tree.HoeffdingTreeClassifier"]}
    >>> batchable(ModelState.new(load_config(tree)), learn=True)
    False
    """
    return (
        learn
        and isinstance(state.updater.policy, MicroBatch)
        and state.drift is None
        and state.selection is None
        and state.active is None
        and state.hard is None
        and state.label_filter is None
        and _predicts_many(_shape(state.model))
    )


def step_many(
    state: ModelState,
    events: Sequence[Event],
    *,
    now_ms: int,
    report_every: int = 0,
    waiting: MutableMapping[str, StoredPrediction] | None = None,
    on_report: Callable[[], None] | None = None,
) -> list[StepOutput]:
    """:func:`~stratiflow.learning.learner.step` for each event in turn, each run of
    events the same model predicts in one ``predict_proba_many`` call.

    The events are cut where the model changes: after the event whose example fills
    the micro-batch, and before an event whose time makes an ``interval`` update due.
    When :func:`batchable` is false every event goes through ``step``.

    Parameters
    ----------
    state
        The key's state; updated in place.
    events
        Validated events of this key, in arrival order.
    now_ms
        Wall-clock time for ``emitted_at``.
    report_every
        Ask for a metrics report after every this many scored events (0: never).
    waiting
        Where an unlabelled event's prediction is kept for its delayed label
        (``None``: delayed labels are off).
    on_report
        Called right after each event whose output is ``report_due``, while ``state``
        is what ``step`` would have left after that event (the report is made then).

    Returns
    -------
    list[StepOutput]
        One output per event, in order, equal to ``step``'s but for the last bits of
        the probabilities.

    Examples
    --------
    A refused event is passed over; the others still share one call:

    >>> from stratiflow.config import load_config
    >>> cfg = load_config({"update": {"mode": "micro_batch", "batch_size": 8}})
    >>> state = ModelState.new(cfg)
    >>> events = [Event("a", 0, {"x": 1.0}, True), Event("b", 1, {"x": "?"}, False),
    ...           Event("c", 2, {"x": 2.0}, False)]
    >>> outs = step_many(state, events, now_ms=0)
    >>> [o.rejection.reason if o.rejection else o.prediction.proba for o in outs]
    [{False: 0.5, True: 0.5}, 'model_rejected_input', {False: 0.5, True: 0.5}]
    """
    outputs: list[StepOutput] = []
    if len(events) < 2 or not batchable(state, learn=True):  # nothing to batch
        for e in events:
            out = step(state, e, now_ms=now_ms, report_every=report_every, waiting=waiting)
            outputs.append(out)
            if on_report is not None and out.report_due:
                on_report()
        return outputs
    cleaned = _Cleaned(state, events)
    start = 0
    while start < len(events):
        start = _run(
            state, events, cleaned, start, outputs, now_ms, report_every, waiting, on_report
        )
    return outputs


class _Cleaned:
    """The events' cleaned features, by index: cleaned in order when first asked for,
    forgotten once stepped (so a long input's features are not all held at once).

    The cleaner only looks at features, never at the model, so cleaning a run's
    events before any of them is stepped leaves it as ``step`` would.
    """

    def __init__(self, state: ModelState, events: Sequence[Event]) -> None:
        self._clean = state.cleaner.clean
        self._events = events
        self._kept: dict[int, tuple[dict[str, Any], Rejection | None]] = {}
        self._next = 0

    def __getitem__(self, index: int) -> tuple[dict[str, Any], Rejection | None]:
        kept = self._kept
        while self._next <= index:
            kept[self._next] = self._clean(self._events[self._next].features)
            self._next += 1
        return kept[index]

    def forget(self, index: int) -> None:
        del self._kept[index]


def _run(
    state: ModelState,
    events: Sequence[Event],
    cleaned: _Cleaned,
    start: int,
    outputs: list[StepOutput],
    now_ms: int,
    report_every: int,
    waiting: MutableMapping[str, StoredPrediction] | None,
    on_report: Callable[[], None] | None = None,
) -> int:
    """Step the events from ``start`` on while the model stays the same; where to go on."""
    n = len(events)
    first = start
    while first < n:
        refused = cleaned[first][1]
        if refused is None:
            break
        outputs.append(_refused(state, refused))
        cleaned.forget(first)
        first += 1
    if first == n:
        return n
    _tick(state, events[first].ts)  # a timed update due by now comes first, as in step
    end = _run_end(state, events, cleaned, first)
    rows = [x for x, refused in map(cleaned.__getitem__, range(first, end)) if refused is None]
    predicted = _predict(state.model, rows)

    # The plan above assumed every labelled event is learned; the checks below catch
    # a model that changes earlier (e.g. an event refused by the model moved the
    # buffer's start), so the rest is predicted again with the new model.
    updater = state.updater
    policy = updater.policy
    row = 0
    for k in range(first, end):
        event = events[k]
        x, refused = cleaned[k]
        if refused is not None:
            outputs.append(_refused(state, refused))
            cleaned.forget(k)
            continue
        since = updater.since
        if row and since is not None and policy.due(since, event.ts) is not None:
            return k
        cleaned.forget(k)
        result, seconds = predicted[row]
        row += 1
        if isinstance(result, Rejection):
            out = _refused(state, result)
        else:
            state.counts.seen += 1
            out = settle(
                state, event, x, result, seconds,
                now_ms=now_ms, report_every=report_every, waiting=waiting,
            )  # fmt: skip
        outputs.append(out)
        if on_report is not None and out.report_due:
            on_report()
        if event.label is not None and out.prediction is not None and not updater.buffer:
            return k + 1  # its example completed a micro-batch: the model changed
    return end


def _run_end(
    state: ModelState,
    events: Sequence[Event],
    cleaned: _Cleaned,
    first: int,
) -> int:
    """Where the model next changes, after the events ``first`` (already ticked) on:
    after the event whose example fills the buffer, or before one that makes an
    ``interval`` update due."""
    updater = state.updater
    policy = updater.policy
    buffered = len(updater)
    since = updater.since
    for k in range(first, len(events)):
        if cleaned[k][1] is not None:
            continue  # refused by the cleaner: step neither ticks nor learns for it
        event = events[k]
        if k > first and since is not None and policy.due(since, event.ts) is not None:
            return k
        if event.label is not None:
            if since is None:
                since = event.ts
            buffered += 1
            if policy.full(buffered):
                return k + 1
    return len(events)


def _refused(state: ModelState, rejection: Rejection) -> StepOutput:
    state.counts.seen += 1
    state.counts.rejected += 1
    return StepOutput(rejection=rejection)


def _predict(model: Any, rows: list[dict[str, Any]]) -> list[_Predicted]:
    """Each row's probabilities: one ``predict_proba_many`` call per feature list.

    Rows with other features (a missing or an extra one) are predicted in a call of
    their own, never in a DataFrame padded with NaN; a lone row with
    ``predict_proba_one``. A call that raises, or whose first row ``predict_proba_one``
    answers otherwise, is not used: its rows are predicted one by one, as ``step``
    predicts them (and refused with its reasons).
    """
    groups: dict[tuple[str, ...], list[int]] = {}
    for index, x in enumerate(rows):
        groups.setdefault(tuple(x), []).append(index)
    out: list[_Predicted] = [({}, 0.0)] * len(rows)
    for members in groups.values():
        if len(members) == 1:  # what the check below would ask anyway, and all it needs
            out[members[0]] = _predict_one(model, rows[members[0]])
            continue
        t0 = perf_counter()
        probas = _predict_many(model, [rows[m] for m in members])
        if probas is not None and _agrees(model, rows[members[0]], probas[0]):
            share = (perf_counter() - t0) / len(members)
            for m, proba in zip(members, probas, strict=True):
                out[m] = (proba, share)
            continue
        for m in members:
            out[m] = _predict_one(model, rows[m])
    return out


def _agrees(model: Any, x: dict[str, Any], batched: dict[Label, float]) -> bool:
    """Whether ``predict_proba_one`` gives ``x`` the batched answer, up to rounding.

    One row per call is enough to catch a model whose many-methods mean something
    else (e.g. River's ``StandardScaler.transform_many`` skips the NaN deviation of an
    overflowed scaler, where ``transform_one`` gives NaN and step refuses the event).
    """
    try:
        one = model.predict_proba_one(x)
    except Exception:  # River raises TypeError/ValueError/KeyError on odd inputs
        return False
    return list(one) == list(batched) and all(
        abs(p - batched[c]) <= AGREEMENT for c, p in one.items()
    )


def _predict_one(model: Any, x: dict[str, Any]) -> _Predicted:
    """What step does: ``predict_proba_one``, its error as the rejection."""
    t0 = perf_counter()
    try:
        proba = model.predict_proba_one(x)
    except Exception as exc:  # River raises TypeError/ValueError/KeyError on odd inputs
        return _model_error("predict", exc), 0.0
    return dict(proba), perf_counter() - t0


def _predict_many(model: Any, rows: list[dict[str, Any]]) -> list[dict[Label, float]] | None:
    """``predict_proba_many`` on rows with one feature list, as plain dicts (``None``: it
    raised, or a value is not a number)."""
    # River's mini-batch API takes pandas; imported only when used (as in updates.py).
    import numpy as np

    try:
        # Numbers only (booleans count as 0/1, as in predict_proba_one): a string or a
        # huge integer, and the rows go one by one. The frame learn_many is given too.
        frame = numeric_frame(rows)
        if frame is None:
            return None
        # numpy warns where River's scalar code silently clamps (exp of a large logit):
        # a non-finite result is refused per event, as step refuses it.
        with np.errstate(over="ignore", invalid="ignore"):
            probas = model.predict_proba_many(frame)
        # Column labels may be numpy scalars (np.True_): predictions carry Python ones.
        classes = [c.item() if isinstance(c, np.generic) else c for c in probas.columns]
        values = probas.to_numpy(dtype=np.float64).tolist()
    except Exception:  # River raises assorted errors; the rows are predicted one by one
        return None
    if len(values) != len(rows):
        return None
    return [dict(zip(classes, row, strict=True)) for row in values]


def _shape(model: Any) -> _Shape:
    """The model's classes, nested as its pipelines: what :func:`_predicts_many` looks at."""
    steps = getattr(model, "steps", None)
    if isinstance(steps, dict):
        return type(model), tuple(_shape(s) for s in steps.values())
    return type(model)


@lru_cache(maxsize=64)
def _predicts_many(shape: _Shape) -> bool:
    """Whether a model of this shape can predict and learn a DataFrame."""
    if isinstance(shape, tuple):
        _, steps = shape
        *transformers, last = steps
        return all(_transforms_many(t) for t in transformers) and _predicts_many(last)
    predict_many = getattr(shape, "predict_proba_many", None)
    # MiniBatchClassifier's own predict_proba_many only raises NotImplementedError.
    return (
        callable(predict_many)
        and predict_many is not river_base.MiniBatchClassifier.predict_proba_many
        and callable(getattr(shape, "learn_many", None))
    )


def _transforms_many(shape: _Shape) -> bool:
    if isinstance(shape, tuple):
        return all(_transforms_many(s) for s in shape[1])
    return callable(getattr(shape, "learn_many", None)) and callable(
        getattr(shape, "transform_many", None)
    )
