"""Event-time alignment of prediction and learning for one model key.

With a sampler, training batches reach the model some time after the events
they were drawn from. :class:`EventTimeAligner` fixes *which* model predicts an
event, independent of processing speed: the event with time ``ts`` is predicted
by the model that has learned every window whose fire time is at most
``ts - max_out_of_orderness - 1`` (the watermark that event implies), and no
other. Events keep their arrival order. The Flink model operator releases
items as its watermark advances; :func:`stratiflow.replay.replay` follows the
same rule, so a backtest, a replayed Kafka topic and a live job agree.

>>> from stratiflow.records import Event
>>> from stratiflow.sampling import TrainingBatch
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

from stratiflow.sampling import END_OF_TIME, TrainingBatch, pickled_once

__all__ = ["END_OF_TIME", "EventTimeAligner"]


class EventTimeAligner:
    """Holds a key's events and batches until the watermark says their turn has come."""

    def __init__(self, max_out_of_orderness: int) -> None:
        self.delay = max_out_of_orderness + 1
        # Events and the label join's outputs (anything with a ``ts``), in arrival order,
        # as [release, item, item pickled or None] (see __getstate__).
        self.events: deque[list[Any]] = deque()
        self.batches: list[tuple[int, int, TrainingBatch]] = []
        self.horizon: int | None = None
        #: The event-time timer its Flink operator has registered for :meth:`next_due`
        #: and not yet seen fire (bookkeeping that rides along in the same state, so
        #: the operator registers a timer only when the next turn changes).
        self.timer: int | None = None

    def add_event(self, event: Any) -> int:
        """Queue an event (or a label outcome); returns the watermark it waits for
        (non-decreasing)."""
        release = event.ts - self.delay
        if self.horizon is not None and self.horizon > release:
            release = self.horizon  # never overtake an earlier event
        self.horizon = release
        self.events.append([release, event, None])
        return release

    def add_batch(self, batch: TrainingBatch) -> None:
        """Queue a window's batch; it is learned once the watermark reaches its fire time."""
        heapq.heappush(self.batches, (batch.fire, batch.start, batch))

    def release(self, watermark: int) -> Iterator[Any]:
        """Items whose turn has come by ``watermark``, in order: a batch before any
        event whose release time has reached the batch's fire time."""
        while True:
            event_due = bool(self.events) and self.events[0][0] <= watermark
            batch_due = bool(self.batches) and self.batches[0][0] <= watermark
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
        state = {"timer": None, **state}
        if "packed_events" in state:
            packed = state.pop("packed_events")
            state["events"] = deque([r, pickle.loads(b), b] for r, b in packed)
        else:  # pickled before items were kept as bytes: (release, item) pairs
            state["events"] = deque([r, item, None] for r, item in state["events"])
        self.__dict__.update(state)
