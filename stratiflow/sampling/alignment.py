"""Event-time alignment of prediction and learning for one model key.

With a sampler, training batches reach the model some time after the events
they were drawn from. :class:`EventTimeAligner` fixes *which* model predicts an
event, independent of processing speed: the event with time ``ts`` is predicted
by the model that has learned every window whose fire time is at most
``ts - max_out_of_orderness - 1`` (the watermark that event implies), and no
other. Events keep their arrival order. The Flink model operator releases
items as its watermark advances; :func:`stratiflow.runner.replay.replay` follows the
same rule, so a backtest, a replayed Kafka topic and a live job agree.

The watermark alone is not enough in Flink: batches reach the model on another
path than events, and when the source has been idle (``sampling.idle_timeout``)
Flink leaves the idle batch path out of the model's watermark until it catches
up, so the watermark can pass a window whose batch is still on its way. Given
the window size, the aligner therefore also keeps the windows it saw labelled
examples of, and holds every item after such a window's fire time until the
window is *resolved*: its batch came, or stage 1 said the example was late
(:class:`~stratiflow.sampling.LateExample`), in which case no batch comes for it.
The other way round, while the events' path is idle the watermark can pass
events still on their way, so a batch is learned only once an item of its key
whose turn is at or after the batch's fire time has arrived (or at the end of
input): a key's items arrive in order, so everything before the batch is here.

>>> from stratiflow.records import Event
>>> from stratiflow.sampling.windows import TrainingBatch
>>> aligner = EventTimeAligner(max_out_of_orderness=0)
>>> aligner.add_event(Event("a", 500, {}))
499
>>> aligner.add_batch(TrainingBatch("default", 0, 1000, 999, []))
>>> aligner.add_event(Event("b", 1500, {}))
1499
>>> [getattr(item, "id", "batch") for item in aligner.release(watermark=2000)]
['a', 'batch', 'b']
"""

from __future__ import annotations

import heapq
import pickle
from collections import deque
from collections.abc import Iterator
from typing import Any

from stratiflow.config import SamplingSettings
from stratiflow.labels import labelled_examples
from stratiflow.sampling.windows import END_OF_TIME, TrainingBatch, pickled_once, window_start

__all__ = ["END_OF_TIME", "EventTimeAligner"]


class EventTimeAligner:
    """Holds a key's events and batches until the watermark says their turn has come.

    Parameters
    ----------
    max_out_of_orderness
        The watermark bound: an event at ``ts`` waits for the watermark
        ``ts - max_out_of_orderness - 1``.
    window
        The sampler's window length (``None``: no windows to wait for, the
        watermark alone decides); :meth:`of` passes it.
    allowed_lateness
        The sampler's allowed lateness: a window closes at the watermark
        ``start + window - 1 + allowed_lateness``.
    min_confidence
        ``curation.label_filter.min_confidence``: labels less sure than this never reach
        the sampler, so no window waits for them.
    """

    #: A class attribute too: aligners pickled before label confidence existed restore.
    min_confidence = 0.0

    def __init__(
        self,
        max_out_of_orderness: int,
        window: int | None = None,
        allowed_lateness: int = 0,
        min_confidence: float = 0.0,
    ) -> None:
        self.delay = max_out_of_orderness + 1
        self.min_confidence = min_confidence
        #: The sampler's window size (``None``: no windows to wait for, the watermark rules).
        self.window = window
        self.lateness = allowed_lateness
        #: Windows with a labelled example seen here and neither batch nor late notice yet:
        #: start -> fire time. Nothing after the earliest fire time is released.
        self.unresolved: dict[int, int] = {}
        #: Windows whose batch or late notice came, until the watermark passes them.
        self.resolved: set[int] = set()
        #: The highest watermark seen; the windows it closed are forgotten.
        self.watermark: int | None = None
        # Events and the label join's outputs (anything with a ``ts``), in arrival order,
        # as [release, item, item pickled or None] (see __getstate__).
        self.events: deque[list[Any]] = deque()
        self.batches: list[tuple[int, int, TrainingBatch]] = []
        self.horizon: int | None = None
        #: The event-time timer its Flink operator has registered for :meth:`next_due`
        #: and not yet seen fire (bookkeeping that rides along in the same state, so
        #: the operator registers a timer only when the next turn changes).
        self.timer: int | None = None

    @classmethod
    def of(cls, settings: SamplingSettings, min_confidence: float = 0.0) -> EventTimeAligner:
        """The aligner for a sampled job: waits for the sampler's windows too."""
        return cls(
            settings.max_out_of_orderness,
            settings.window,
            settings.allowed_lateness,
            min_confidence,
        )

    def add_event(self, event: Any, watermark: int | None = None) -> int:
        """Queue an event (or a label outcome); returns the watermark it waits for
        (non-decreasing).

        ``watermark`` is the watermark where the item arrives: a labelled example
        whose window that watermark has already closed sets no wait (its batch, if
        any, came before it, or stage 1 finds it late).
        """
        release = event.ts - self.delay
        if self.horizon is not None and self.horizon > release:
            release = self.horizon  # never overtake an earlier event
        self.horizon = release
        self.events.append([release, event, None])
        if self.window is not None:
            for example in labelled_examples(event, self.min_confidence):
                self._expect(window_start(example.ts, self.window), watermark)
        return release

    def add_batch(self, batch: TrainingBatch) -> None:
        """Queue a window's batch; it is learned once the watermark reaches its fire time."""
        heapq.heappush(self.batches, (batch.fire, batch.start, batch))
        self.resolve(batch.start)

    def resolve(self, start: int) -> None:
        """The window starting at ``start`` sends nothing more (batch came, or late)."""
        if self.window is None:
            return
        self.unresolved.pop(start, None)
        # Remembered until the watermark passes it: more of its examples may follow
        # the batch here (the batch path can be ahead of the events').
        self.resolved.add(start)

    def _fire(self, start: int) -> int:
        assert self.window is not None
        return start + self.window - 1 + self.lateness

    def _expect(self, start: int, watermark: int | None) -> None:
        fire = self._fire(start)
        # The highest watermark seen, not only the caller's: ``resolved`` forgot the
        # windows it closed, and a stale one would wait for a batch that came.
        closed = max((w for w in (watermark, self.watermark) if w is not None), default=None)
        if (closed is not None and fire <= closed) or start in self.resolved:
            return
        self.unresolved[start] = fire

    def waits_for_windows(self) -> bool:
        """Whether it keeps window bookkeeping (so it must be stored even when it holds nothing)."""
        return bool(self.unresolved or self.resolved)

    def release(self, watermark: int) -> Iterator[Any]:
        """Items whose turn has come by ``watermark``, in order: a batch before any
        event whose release time has reached the batch's fire time (once such an
        event has come), and nothing whose turn is at or after an unresolved
        window's fire time (at the end of input, ``END_OF_TIME``, everything)."""
        if self.window is not None and (self.watermark is None or watermark > self.watermark):
            self.watermark = watermark
            if self.resolved:
                self.resolved = {s for s in self.resolved if self._fire(s) > watermark}
        limit = watermark
        if self.unresolved and watermark < END_OF_TIME:
            limit = min(watermark, min(self.unresolved.values()) - 1)
        # A batch also waits for an item of its key whose turn is at or after its fire
        # time: items arrive here in order, so every item that precedes the batch has
        # come. The watermark cannot say so while the items' path is idle in Flink.
        arrived = END_OF_TIME if watermark >= END_OF_TIME else self.horizon
        while True:
            event_due = bool(self.events) and self.events[0][0] <= limit
            batch_due = (
                bool(self.batches)
                and self.batches[0][0] <= limit
                and arrived is not None
                and self.batches[0][0] <= arrived
            )
            if batch_due and (not event_due or self.batches[0][0] <= self.events[0][0]):
                yield heapq.heappop(self.batches)[2]
            elif event_due:
                yield self.events.popleft()[1]
            else:
                return

    def next_due(self) -> int | None:
        """The watermark at which the next held item is released (``None``: nothing held)."""
        heads = [queue[0][0] for queue in (self.events, self.batches) if queue]
        return min(heads) if heads else None

    def __len__(self) -> int:
        return len(self.events) + len(self.batches)

    def __getstate__(self) -> dict[str, Any]:
        """Each held item is pickled once, at the first pickle that holds it; its bytes are reused.

        The Flink operator keeps the aligner in one ``ValueState``, which PyFlink
        pickles whole at every bundle end while the key holds anything: an item
        held across several bundles was pickled again at each (with dense event
        time the aligner holds thousands of events). Bytes are copied, not pickled.
        """
        state = self.__dict__.copy()
        state["packed_events"] = [
            (entry[0], pickled_once(entry, 1)) for entry in state.pop("events")
        ]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Aligners pickled before ``timer`` existed: no timer is known to be pending,
        # so the operator registers one (a duplicate of an existing one is harmless).
        # Before window bookkeeping: the watermark alone decides, as it did then.
        defaults = {"timer": None, "window": None, "lateness": 0}
        state = {**defaults, "unresolved": {}, "resolved": set(), "watermark": None, **state}
        if "packed_events" in state:
            packed = state.pop("packed_events")
            state["events"] = deque([r, pickle.loads(b), b] for r, b in packed)
        else:  # pickled before items were kept as bytes: (release, item) pairs
            state["events"] = deque([r, item, None] for r, item in state["events"])
        self.__dict__.update(state)
