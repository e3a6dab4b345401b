"""When the model learns: per sample, in micro-batches, or periodically.

:class:`Updater` receives training examples in order and decides when the
model learns them (``update.mode``):

- ``per_sample``: ``learn_one`` at once;
- ``micro_batch``: buffer ``batch_size`` examples (or ``interval`` of event
  time, whichever comes first), then ``learn_many`` when every step of the
  model has it and the batch's rows share one feature set, else ``learn_one``
  in a loop;
- ``periodic``: buffer, and learn everything buffered every ``interval`` of
  event time.

Time is event time (the examples' ``ts``), so a replay learns exactly as the
live job did. The buffer lives in the key's state, so a checkpoint carries it;
:meth:`Updater.flush` empties it at the end of a bounded input.

>>> from river import linear_model
>>> from stratiflow.config import UpdateSettings
>>> model = linear_model.LogisticRegression()
>>> updater = Updater(UpdateSettings(mode="micro_batch", batch_size=2))
>>> updater.add(model, {"x": 1.0}, True, ts=0)
[]
>>> [r.learned for r in updater.add(model, {"x": -1.0}, False, ts=1)]
[2]
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, ClassVar

from stratiflow.config import UpdateSettings
from stratiflow.records import Label


@dataclass(slots=True)
class LearnResult:
    """What one learning call did: examples learned, failed, their labels, seconds spent.

    Attributes
    ----------
    learned
        Examples learned.
    failed
        Examples not learned because the model raised.
    labels
        The labels of the examples learned.
    seconds
        Time spent learning.
    batch
        One ``learn_many`` call (else ``learn_one`` per example).
    """

    learned: int
    failed: int
    labels: list[Label]
    seconds: float
    batch: bool
    #: The model's error when learning failed (for the dead letter).
    error: str = ""


class UpdatePolicy:
    """When buffered examples are learned: one class per ``update.mode``.

    A policy holds only its settings; the buffer and its start time live in the
    :class:`Updater` (the key's state), so a checkpoint taken before a policy
    changed still restores.

    Parameters
    ----------
    settings
        The ``update`` section; the policy reads only the fields in :attr:`uses`.
    """

    mode: ClassVar[str]
    #: The mode-specific settings it reads (``stratiflow.config.update.USED_BY``
    #: refuses them for every other mode).
    uses: ClassVar[frozenset[str]] = frozenset()
    #: Whether examples wait in the buffer (``per_sample``: learned at once).
    buffers: ClassVar[bool] = True

    def __init__(self, settings: UpdateSettings) -> None:
        self.settings = settings

    def full(self, buffered: int) -> bool:
        """Whether to learn now, ``buffered`` examples after an example was added."""
        return False

    def due(self, since: int, ts: int) -> int | None:
        """Event time reached ``ts`` with the buffer started at ``since``: the buffer's
        start from now on if the buffered examples are due, else ``None``."""
        return None

    def after_learn(self, since: int | None) -> int | None:
        """The buffer's start once it was learned."""
        return None


class PerSample(UpdatePolicy):
    """``per_sample``: every example is learned as it comes (nothing is buffered).

    Parameters
    ----------
    settings
        The ``update`` section (no field of it is read).
    """

    mode = "per_sample"
    buffers = False


class MicroBatch(UpdatePolicy):
    """``micro_batch``: learn ``batch_size`` examples at a time, or what came within
    ``interval`` of event time, whichever is first.

    Parameters
    ----------
    settings
        The ``update`` section: ``batch_size`` and ``interval`` (0: size only).

    Examples
    --------
    >>> from stratiflow.config import UpdateSettings
    >>> policy = MicroBatch(UpdateSettings(mode="micro_batch", batch_size=2, interval=1000))
    >>> policy.full(2), policy.due(since=0, ts=999), policy.due(since=0, ts=1000)
    (True, None, 0)
    """

    mode = "micro_batch"
    uses = frozenset({"batch_size", "interval"})

    def full(self, buffered: int) -> bool:
        return buffered >= self.settings.batch_size

    def due(self, since: int, ts: int) -> int | None:
        interval = self.settings.interval
        return since if interval and ts >= since + interval else None


class Periodic(UpdatePolicy):
    """``periodic``: learn what was buffered every ``interval`` of event time, in
    periods aligned to the first example's time (like a tumbling window).

    Parameters
    ----------
    settings
        The ``update`` section: ``interval``, the period.

    Examples
    --------
    At ``ts`` 2500 the buffer started at 0 is due; the next period starts at 2000:

    >>> from stratiflow.config import UpdateSettings
    >>> Periodic(UpdateSettings(mode="periodic", interval=1000)).due(since=0, ts=2500)
    2000
    """

    mode = "periodic"
    uses = frozenset({"interval"})

    def due(self, since: int, ts: int) -> int | None:
        interval = self.settings.interval
        if not interval or ts < since + interval:
            return None
        return since + (ts - since) // interval * interval

    def after_learn(self, since: int | None) -> int | None:
        return since


#: Every policy by its ``update.mode`` name.
UPDATE_POLICIES: dict[str, type[UpdatePolicy]] = {
    cls.mode: cls for cls in (PerSample, MicroBatch, Periodic)
}


@lru_cache(maxsize=64)
def policy_for(settings: UpdateSettings) -> UpdatePolicy:
    """The policy ``settings.mode`` names (one object per settings: it is stateless).

    Parameters
    ----------
    settings
        The ``update`` section.

    Returns
    -------
    UpdatePolicy
        The policy, cached per settings.

    Raises
    ------
    ValueError
        If no policy has that mode.

    Examples
    --------
    >>> from stratiflow.config import UpdateSettings
    >>> policy = policy_for(UpdateSettings(mode="micro_batch"))
    >>> type(policy).__name__, policy is policy_for(UpdateSettings(mode="micro_batch"))
    ('MicroBatch', True)
    """
    cls = UPDATE_POLICIES.get(settings.mode)
    if cls is None:
        raise ValueError(f"no update policy {settings.mode!r}")
    return cls(settings)


@dataclass
class Updater:
    """The update policy of one model key, with its buffer (picklable).

    Attributes
    ----------
    settings
        The ``update`` section.
    buffer
        The examples waiting to be learned, as ``(x, y)`` pairs.
    fallback_batches
        Batches of two or more examples learned with a ``learn_one`` loop.
    """

    settings: UpdateSettings
    buffer: list[tuple[dict[str, Any], Label]] = field(default_factory=list)
    #: Event time of the oldest buffered example (micro_batch) / of the period start (periodic).
    since: int | None = None
    #: Batches learned with ``learn_many``, and with a ``learn_one`` loop.
    batches: int = 0
    fallback_batches: int = 0

    @property
    def policy(self) -> UpdatePolicy:
        """The policy ``settings.mode`` names: looked up once per instance (it is asked on
        every event), kept out of pickles (it is derived from the settings)."""
        policy: UpdatePolicy | None = self.__dict__.get("_policy")
        if policy is None:
            policy = self.__dict__["_policy"] = policy_for(self.settings)
        return policy

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_policy"}

    def add(self, model: Any, x: dict[str, Any], y: Label, *, ts: int) -> list[LearnResult]:
        """Buffer one example at event time ``ts``; returns the learning it triggered.

        ``per_sample`` has nothing to buffer: its examples are learned at once by
        :meth:`stratiflow.learning.learner.ModelState.learn_sample`, the one per-sample path.
        """
        policy = self.policy
        if not policy.buffers:
            raise ValueError("per_sample learns each example at once; nothing is buffered")
        out = self.tick(model, ts)
        if self.since is None:  # a micro-batch (or the first period) starts here
            self.since = ts
        self.buffer.append((x, y))
        if policy.full(len(self.buffer)):
            out.append(self._learn(model))
        return out

    def tick(self, model: Any, ts: int) -> list[LearnResult]:
        """Event time has reached ``ts``: learn what is due by then."""
        if self.since is None:
            return []
        start = self.policy.due(self.since, ts)
        if start is None:
            return []
        self.since = start
        return [self._learn(model)] if self.buffer else []

    def flush(self, model: Any) -> list[LearnResult]:
        """Learn everything buffered now (end of input)."""
        return [self._learn(model)] if self.buffer else []

    def __len__(self) -> int:
        return len(self.buffer)

    def _learn(self, model: Any) -> LearnResult:
        batch, self.buffer = self.buffer, []
        self.since = self.policy.after_learn(self.since)
        if len(batch) > 1 and _can_learn_many(model, batch):
            self.batches += 1
            return _learn_many(model, batch)
        self.fallback_batches += len(batch) > 1
        results = [_learn_one(model, x, y) for x, y in batch]
        return LearnResult(
            learned=sum(r.learned for r in results),
            failed=sum(r.failed for r in results),
            labels=[label for r in results for label in r.labels],
            seconds=sum(r.seconds for r in results),
            batch=False,
        )


def _learn_one(model: Any, x: dict[str, Any], y: Label) -> LearnResult:
    t0 = time.perf_counter()
    try:
        model.learn_one(x, y)
    except Exception as exc:  # River raises assorted errors on odd inputs; counted, not fatal
        return LearnResult(0, 1, [], time.perf_counter() - t0, batch=False, error=learn_error(exc))
    return LearnResult(1, 0, [y], time.perf_counter() - t0, batch=False)


def learn_error(exc: Exception) -> str:
    """How a failed ``learn_one`` is described (``LearnResult.error``).

    Parameters
    ----------
    exc
        The exception the model raised.

    Returns
    -------
    str
        The exception's type and message, the message cut to 300 characters.

    Examples
    --------
    >>> learn_error(KeyError("x"))
    "KeyError: 'x'"
    """
    return f"{type(exc).__name__}: {str(exc)[:300]}"


def supports_learn_many(model: Any) -> bool:
    """Whether ``model`` (or every step of a pipeline) has ``learn_many``.

    Parameters
    ----------
    model
        A River estimator or pipeline.

    Returns
    -------
    bool
        Whether micro-batches may go to ``learn_many`` (their rows must also share
        one feature set).

    Examples
    --------
    >>> from river import linear_model, preprocessing, tree
    >>> supports_learn_many(preprocessing.StandardScaler() | linear_model.LogisticRegression())
    True
    >>> supports_learn_many(tree.HoeffdingTreeClassifier())
    False
    """
    steps = getattr(model, "steps", None)
    if isinstance(steps, dict):
        return all(supports_learn_many(step) for step in steps.values())
    return callable(getattr(model, "learn_many", None))


def _can_learn_many(model: Any, batch: list[tuple[dict[str, Any], Label]]) -> bool:
    # learn_many takes a DataFrame: rows with different feature sets would become NaN.
    names = batch[0][0].keys()
    return supports_learn_many(model) and all(x.keys() == names for x, _ in batch)


def numeric_frame(rows: list[dict[str, Any]]) -> Any:
    """The rows as a float64 DataFrame for River's many-methods, or ``None`` if a value is
    not a number or the rows do not list the same features in the same order.

    Booleans become 0.0/1.0, as the one-at-a-time methods do arithmetic with them (a
    frame of bool columns makes ``learn_many`` raise). The array is column-major, the
    layout ``pd.DataFrame(rows)`` gives numeric rows, so matrix products round alike.

    >>> numeric_frame([{"a": 1, "b": True}, {"a": 2.5, "b": False}]).to_dict("list")
    {'a': [1.0, 2.5], 'b': [1.0, 0.0]}
    >>> numeric_frame([{"a": "x"}]) is None, numeric_frame([{"a": 1}, {"b": 1}]) is None
    (True, True)
    """
    import numpy as np
    import pandas as pd  # River's mini-batch API takes pandas; imported only when used

    columns = tuple(rows[0])
    if any(tuple(x) != columns for x in rows):
        return None
    matrix = np.array([list(x.values()) for x in rows])
    if matrix.dtype.kind not in "biuf":  # a string or a huge integer: not numbers
        return None
    return pd.DataFrame(np.asfortranarray(matrix, dtype=np.float64), columns=list(columns))


def _learn_many(model: Any, batch: list[tuple[dict[str, Any], Label]]) -> LearnResult:
    import pandas as pd  # River's mini-batch API takes pandas; imported only when used

    rows = [x for x, _ in batch]
    X = numeric_frame(rows)
    if X is None:  # e.g. text features: pandas keeps them as objects
        X = pd.DataFrame(rows)
    y = pd.Series([label for _, label in batch])
    t0 = time.perf_counter()
    try:
        model.learn_many(X, y)
    except Exception:
        # The batch may be partly learned; count it as failed rather than learn it twice.
        return LearnResult(0, len(batch), [], time.perf_counter() - t0, batch=True)
    return LearnResult(len(batch), 0, [y for _, y in batch], time.perf_counter() - t0, batch=True)
