"""The operators' figures in Flink's metric system, for Flink's metric reporters.

Each model operator subtask registers, in its operator metric group, a group ``stratiflow``:

- counters :data:`COUNTERS` (``predicted``, ``scored``, ``learned``, ``rejected``): what the
  :class:`~stratiflow.learning.state.Counts` of the keys it serves grew by, so over all subtasks
  they equal the sums of ``counts`` in the keys' latest metrics records;
- a counter ``dead_letters`` per ``reason`` (the codes of
  :data:`stratiflow.validation.parse.REASONS`, ``invalid_event``, and ``other`` for anything
  else: a closed set), also in the parse operators of the sampled graph;
- with a drift detector or candidates, a counter ``model_events`` per ``type`` (the closed set
  :data:`MODEL_EVENT_TYPES`, registered at 0 so a dashboard sees every series at once);
- a gauge ``rolling_accuracy_ppm`` per ``model_key`` for the first ``job.gauge_keys`` keys the
  subtask scores: the serving model's accuracy over the last ``metrics.window`` scored
  predictions (the cumulative accuracy with ``metrics.window: 0``) in parts per million, as in
  the metrics records (PyFlink's gauges carry integers).

A key-value group (``reason``, ``type``, ``model_key``) becomes a label in Prometheus:
:func:`prometheus_name` gives the names Flink's Prometheus reporter shows, and the Grafana
dashboard in ``deploy/grafana/`` queries exactly those (a test checks it).

Every update is a call into Beam's (process mode) or Flink's (thread mode) metric objects, so
the model operators tally in plain Python while they handle an input element and
:meth:`ModelMetrics.flush` the tally once at its end (about 2 microseconds, measured with
Beam's metric container): without a sampler an element is a batch of up to
``job.input_batch_size`` records, never one call per record. PyFlink reads gauges when a bundle
ends (process mode), so an accuracy gauge keeps a reference to its key's latest state and
computes the accuracy then, not per element; thread mode would call the gauge from the
reporter's thread, so there the accuracy gauges are left out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from operator import attrgetter
from typing import Any

from pyflink.metrics import Counter, MetricGroup

from stratiflow.learning.state import Counts, ModelState
from stratiflow.records import MODEL_EVENT_TYPES
from stratiflow.validation.parse import REASONS

#: The group every stratiflow metric is registered in, under the operator's group.
GROUP = "stratiflow"
#: Counters of the :class:`~stratiflow.learning.state.Counts` field of the same name.
COUNTERS = ("predicted", "scored", "learned", "rejected")
#: The dead-letter counter, one per reason: (label, metric).
DEAD_LETTERS = ("reason", "dead_letters")
#: The model-events counter, one per record type: (label, metric).
MODEL_EVENTS = ("type", "model_events")
#: The accuracy gauge, one per tracked model key: (label, metric).
ACCURACY = ("model_key", "rolling_accuracy_ppm")
#: The dead-letter reasons counted by name; any other is counted as ``other``.
DEAD_LETTER_REASONS = (*REASONS, "invalid_event")
#: The scope Flink's Prometheus reporter puts in front of an operator's metrics.
PROMETHEUS_SCOPE = "flink_taskmanager_job_task_operator"
#: The accuracy gauge's unit: parts per million.
PPM = 1_000_000


def prometheus_name(metric: str) -> str:
    """What Flink's Prometheus reporter calls the stratiflow metric ``metric``.

    A labelled metric's name includes its group's key (the reporter's logical scope).

    >>> prometheus_name("scored")
    'flink_taskmanager_job_task_operator_stratiflow_scored'
    >>> prometheus_name("dead_letters")
    'flink_taskmanager_job_task_operator_stratiflow_reason_dead_letters'
    """
    return f"{PROMETHEUS_SCOPE}_{GROUP}_{'_'.join(prometheus_names()[metric])}"


def prometheus_names() -> dict[str, tuple[str, ...]]:
    """Each stratiflow metric, and the scope parts between ``stratiflow`` and its name.

    >>> prometheus_names()["rolling_accuracy_ppm"]
    ('model_key', 'rolling_accuracy_ppm')
    """
    names: dict[str, tuple[str, ...]] = {name: (name,) for name in COUNTERS}
    for label, metric in (DEAD_LETTERS, MODEL_EVENTS, ACCURACY):
        names[metric] = (label, metric)
    return names


def accuracy_ppm(state: ModelState) -> int | None:
    """The serving model's rolling accuracy (cumulative without a window) in parts per
    million, as the accuracy gauge shows it; ``None`` before anything was scored."""
    evaluation = state.evaluation
    view = evaluation.rolling if evaluation.rolling is not None else evaluation.cumulative
    accuracy = view.accuracy
    return None if accuracy is None else round(accuracy * PPM)


#: The :data:`COUNTERS` fields of a :class:`~stratiflow.learning.state.Counts`, as a tuple.
_counts: Callable[[Counts], tuple[int, ...]] = attrgetter(*COUNTERS)


class DeadLetterCounters:
    """``dead_letters`` counters by reason, registered as reasons first occur."""

    def __init__(self, group: MetricGroup) -> None:
        self.group = group
        self._by_reason: dict[str, Counter] = {}

    def inc(self, reason: str, n: int = 1) -> None:
        """Count ``n`` dead letters of ``reason`` (an unknown reason counts as ``other``)."""
        if reason not in DEAD_LETTER_REASONS:
            reason = "other"
        counter = self._by_reason.get(reason)
        if counter is None:
            label, metric = DEAD_LETTERS
            counter = self._by_reason[reason] = self.group.add_group(label, reason).counter(metric)
        counter.inc(n)


def stratiflow_group(runtime_context: Any) -> MetricGroup | None:
    """The operator's ``stratiflow`` metric group; ``None`` when PyFlink's Python metrics
    are off (``python.metric.enabled: false``)."""
    group = runtime_context.get_metrics_group()
    return None if group is None else group.add_group(GROUP)


class ModelMetrics:
    """A model operator subtask's metrics: a tally while an element is handled, flushed once.

    Parameters
    ----------
    group
        The operator's ``stratiflow`` group (:func:`stratiflow_group`).
    gauge_keys
        How many model keys get an accuracy gauge (the first ones scored).
    gauges
        Whether gauges may be registered (PyFlink's process mode).
    model_events
        Whether the job makes model events (a drift detector or candidates): their counters
        are registered at 0 on the first flush.
    """

    def __init__(
        self, group: MetricGroup, *, gauge_keys: int, gauges: bool, model_events: bool
    ) -> None:
        self.group = group
        self.counters = {name: group.counter(name) for name in COUNTERS}
        self.dead_letters = DeadLetterCounters(group)
        self._event_counters: dict[str, Counter] = {}
        self._wants_events = model_events
        self.gauge_keys = gauge_keys if gauges else 0
        #: The tracked keys' latest states, which their gauges read when a bundle ends.
        self.tracked: dict[str, ModelState] = {}
        self._counters_registered = False
        #: What the element being handled produced so far.
        self.reasons: dict[str, int] = {}
        self.events: dict[str, int] = {}

    def start(self, state: ModelState) -> tuple[int, ...]:
        """The key's counts before an element is handled (see :meth:`flush`)."""
        return _counts(state.counts)

    def dead_letter(self, reason: str) -> None:
        """Tally a dead letter (plain Python: counted in the metric system at the flush)."""
        self.reasons[reason] = self.reasons.get(reason, 0) + 1

    def model_events(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Tally model-events records by type."""
        for record in records:
            kind = str(record.get("type"))
            self.events[kind] = self.events.get(kind, 0) + 1

    def flush(self, before: tuple[int, ...] | None, state: ModelState | None) -> None:
        """Pass the element's tally to the metric system: the growth of ``state``'s counts
        since ``before`` (:meth:`start`), the dead letters and model events tallied; and the
        key's state for its accuracy gauge, when the key is tracked. ``state`` is ``None`` for
        an element that reached no model (only rejected records)."""
        if self._wants_events and not self._event_counters:
            self._events_counters()  # every type's series from the start
        if state is not None and before is not None:
            first = not self._counters_registered  # every counter's series from the start
            self._counters_registered = True
            for name, old, new in zip(COUNTERS, before, _counts(state.counts), strict=True):
                if new != old or first:
                    self.counters[name].inc(new - old)
            if self.gauge_keys:
                self._track(state)
        if self.reasons:
            for reason, n in self.reasons.items():
                self.dead_letters.inc(reason, n)
            self.reasons = {}
        if self.events:
            counters = self._events_counters()
            for kind, n in self.events.items():
                if kind not in counters:
                    kind = "other"
                    if kind not in counters:
                        label, metric = MODEL_EVENTS
                        counters[kind] = self.group.add_group(label, kind).counter(metric)
                counters[kind].inc(n)
            self.events = {}

    def _events_counters(self) -> dict[str, Counter]:
        """The model-events counters, every known type's registered at 0 on first use."""
        if not self._event_counters:
            label, metric = MODEL_EVENTS
            for kind in MODEL_EVENT_TYPES:
                counter = self.group.add_group(label, kind).counter(metric)
                counter.inc(0)
                self._event_counters[kind] = counter
        return self._event_counters

    def _track(self, state: ModelState) -> None:
        """Keep the latest state of a tracked key (a new key is tracked once scored, while
        there is room): its gauge computes the accuracy when read, not per element."""
        key = state.key
        tracked = self.tracked
        if key in tracked:
            tracked[key] = state  # the element may have handled another copy of the state
        elif len(tracked) < self.gauge_keys and state.counts.scored:
            tracked[key] = state
            label, metric = ACCURACY
            self.group.add_group(label, key).gauge(metric, self._reader(key))

    def _reader(self, key: str) -> Callable[[], int]:
        tracked = self.tracked
        return lambda: accuracy_ppm(tracked[key]) or 0
