"""Delayed labels: label records joined by event id to the events they belong to.

An event may arrive without a label; its label comes later as a label record
``{"id", "label", "ts", "key"?}``. :class:`LabelJoin` (one per model key) holds
unlabelled events for ``labels.ttl`` of event time and turns each arriving
label into exactly one outcome:

- an :class:`Answer` (the event with its label: score the prediction made when
  the event arrived, then learn from it),
- or a :class:`LabelOutcome` saying why not (``duplicate``, ``expired``,
  ``unknown`` — dead-lettered downstream), or that it is ``held`` because its
  event has not arrived yet.

Unlabelled events whose label never comes leave as an :class:`Expiry`. The
join's clock is the largest ``ts`` the key has seen (events and labels) — or,
when labels come from their own topic (``two_inputs``), the smaller of the two
inputs' largest ``ts``, so one input running ahead cannot expire what the other
has not delivered yet. Results depend only on the order of the input, never on
the wall clock.
Memory is bounded: ``max_pending`` ids per key at most, oldest evicted first.

>>> from stratiflow.records import Event, LabelRecord
>>> join = LabelJoin("default", ttl=1_000, max_pending=100)
>>> [type(o).__name__ for o in join.on_event(Event("a", 10, {"x": 1.0}))]
['Event']
>>> [type(o).__name__ for o in join.on_label(LabelRecord("a", True, 50))]
['Answer']
>>> join.on_label(LabelRecord("a", False, 60))[0].kind
'duplicate'
>>> [type(o).__name__ for o in join.on_event(Event("b", 100, {"x": 1.0}))]
['Event']
>>> [(type(o).__name__, o.id) for o in join.on_event(Event("c", 2_000, {"x": 1.0}))]
[('Expiry', 'b'), ('Event', 'c')]
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any, Literal

from stratiflow.records import Event, Label, LabelRecord, SourceRef

Status = Literal["waiting", "held", "joined", "expired"]
OutcomeKind = Literal["held", "duplicate", "expired", "unknown"]


@dataclass(slots=True)
class Answer:
    """A label joined to its event: the example ``(event.features, label)``.

    Attributes
    ----------
    key
        The model key.
    id
        The event's id.
    ts
        When the example became available to learn from: the label's time (or the
        event's, if the label came first and waited for it).
    label
        The label.
    event
        The event, as it arrived.
    raw
        The label record's bytes (``None``: the label was given as an object).
    """

    key: str
    id: str
    ts: int
    label: Label
    event: Event
    #: Where the label record came from, and its bytes (for a dead letter downstream).
    source: SourceRef | None = None
    raw: bytes | None = None
    #: The label arrived before its event and waited for it.
    was_held: bool = False
    #: The label record's ``confidence`` and ``annotator`` (``None``: not given).
    confidence: float | None = None
    annotator: str | None = None

    @property
    def delay(self) -> int:
        """Label time minus event time, in ms (how late the label came)."""
        return self.ts - self.event.ts

    def as_event(self) -> Event:
        """The labelled example as an event at the label's time (what the sampler sees)."""
        e = self.event
        return Event(e.id, self.ts, e.features, label=self.label, key=e.key, source=e.source)


@dataclass(slots=True)
class Expiry:
    """An unlabelled event whose label did not come within the TTL (or was evicted).

    An event that arrives again under the id of one still waiting also ends the
    earlier one this way: its prediction will never be scored.

    Attributes
    ----------
    key
        The model key.
    id
        The event's id.
    ts
        The join's clock when the event expired.
    event_ts
        The event's time.
    evicted
        Dropped before its TTL because ``max_pending`` was reached.
    """

    key: str
    id: str
    ts: int
    event_ts: int
    evicted: bool = False


@dataclass(slots=True)
class LabelOutcome:
    """A label record that was not joined (yet): ``held``, or refused with a reason.

    Attributes
    ----------
    key
        The model key.
    ts
        The label record's time.
    kind
        ``held`` (waiting for its event), or why it was refused: ``duplicate``,
        ``expired`` or ``unknown``.
    record
        The label record.
    detail
        Why, in a sentence (empty for ``held``).
    was_held
        The label had been held, waiting for its event, before this outcome.
    """

    key: str
    ts: int
    kind: OutcomeKind
    record: LabelRecord
    detail: str = ""
    was_held: bool = False

    @property
    def reason(self) -> str:
        """The dead-letter reason (``held`` labels are not dead letters)."""
        return f"label_{'unknown_id' if self.kind == 'unknown' else self.kind}"


JoinOutput = Event | Answer | Expiry | LabelOutcome


@dataclass(slots=True)
class Entry:
    """What the join remembers about one id.

    Attributes
    ----------
    status
        ``waiting`` (an event for its label), ``held`` (a label for its event), or
        resolved and remembered to spot a second label: ``joined`` or ``expired``.
    expire_at
        The join's clock at which the entry expires.
    event
        The waiting event (``waiting`` only).
    record
        The held label record (``held`` only).
    """

    status: Status
    expire_at: int
    event: Event | None = None
    record: LabelRecord | None = None


class LabelJoin:
    """The label join for one model key (state: a small header plus two id-keyed stores).

    Parameters
    ----------
    key
        The model key.
    ttl
        Event time (ms) an unlabelled event waits for its label; also how long
        an early label waits for its event and how long a resolved id is
        remembered so that a second label is recognised as a duplicate.
    max_pending
        Ids held at most; beyond it the entries closest to expiry go first.
    two_inputs
        Events and labels arrive on separate inputs with no order between them.
    entries, buckets
        Where entries and the expiry index live: dicts by default, Flink
        ``MapState`` views in the operator (see :meth:`bind`).
    """

    def __init__(
        self,
        key: str,
        ttl: int,
        max_pending: int,
        entries: MutableMapping[str, Entry] | None = None,
        buckets: MutableMapping[int, list[str]] | None = None,
        *,
        two_inputs: bool = False,
    ) -> None:
        self.key = key
        self.two_inputs = two_inputs
        #: Largest ts seen on each input (events, labels).
        self.seen_events: int | None = None
        self.seen_labels: int | None = None
        self.ttl = ttl
        self.max_pending = max_pending
        # Expiry is checked per bucket of this width: O(1) per item, no global heap.
        self.width = max(1, ttl // 16)
        self.clock: int | None = None
        self.size = 0
        #: Labels waiting for their event (None: unknown, in state from before it was counted).
        self.held: int | None = 0
        self.bucket_ids: list[int] = []
        self.entries: MutableMapping[str, Entry] = {} if entries is None else entries
        self.buckets: MutableMapping[int, list[str]] = {} if buckets is None else buckets

    def bind(
        self, entries: MutableMapping[str, Entry], buckets: MutableMapping[int, list[str]]
    ) -> LabelJoin:
        """Use these stores (the operator's keyed MapStates) for entries and the index."""
        self.entries, self.buckets = entries, buckets
        return self

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if not isinstance(self.entries, dict):  # external stores are saved by their owner
            state["entries"] = state["buckets"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state.setdefault("held", None)
        self.__dict__.update(state)

    # -- input ----------------------------------------------------------------------------

    def on_event(self, event: Event) -> list[JoinOutput]:
        """An event arrives; returns it, anything its arrival joined, and what expired."""
        self.seen_events = event.ts if self.seen_events is None else max(self.seen_events, event.ts)
        out = self._advance(event.ts)
        out.append(event)
        if event.label is not None:
            # Labelled events are not remembered: that would cost memory for every
            # event; a label record for one is held and ends as unknown.
            # Only a held label can meet a labelled event: with none held, no lookup
            # (in Flink a lookup of an absent id is a round trip to the state backend).
            entry = None if self.held == 0 else self.entries.get(event.id)
            if entry is not None and entry.status == "held":
                assert entry.record is not None
                self._drop(event.id, entry)
                out.append(
                    self._refuse(
                        entry.record, "duplicate", "the event carried its own label", held=True
                    )
                )
            return out
        entry = self.entries.get(event.id)
        if entry is not None and entry.status == "held":
            assert entry.record is not None
            out.append(self._answer(entry.record, event, held=True))
            self._remember(event.id, "joined", entry)
            return out
        if entry is not None and entry.status == "waiting":
            # The same id again before its label: the earlier one will never be scored.
            assert entry.event is not None
            out.insert(-1, Expiry(self.key, event.id, self._now(), entry.event.ts))
        self._put(event.id, Entry("waiting", event.ts + self.ttl, event=event), entry)
        out.extend(self._evict())
        return out

    def on_label(self, record: LabelRecord) -> list[JoinOutput]:
        """A label record arrives; returns exactly one outcome for it, plus anything due."""
        self.seen_labels = (
            record.ts if self.seen_labels is None else max(self.seen_labels, record.ts)
        )
        out = self._advance(record.ts)
        entry = self.entries.get(record.id)
        if entry is None:
            self._put(record.id, Entry("held", record.ts + self.ttl, record=record), None)
            out.append(LabelOutcome(self.key, record.ts, "held", record))
            out.extend(self._evict())
        elif entry.status == "waiting":
            assert entry.event is not None
            out.append(self._answer(record, entry.event, held=False))
            self._remember(record.id, "joined", entry)
        elif entry.status == "expired":
            out.append(
                self._refuse(record, "expired", f"its prediction waited {self.ttl} ms and expired")
            )
        else:
            detail = "this id already has its label"
            if entry.status == "held":
                detail = "another label for this id is already waiting for the event"
            out.append(self._refuse(record, "duplicate", detail))
        return out

    def advance(self, ts: int) -> list[JoinOutput]:
        """Move the clock to ``ts`` (e.g. a watermark) and return what expired."""
        return self._advance(ts)

    # -- internals ------------------------------------------------------------------------

    def _now(self) -> int:
        return self.clock if self.clock is not None else 0

    def _answer(self, record: LabelRecord, event: Event, *, held: bool) -> Answer:
        return Answer(
            self.key,
            record.id,
            max(record.ts, event.ts),
            record.label,
            event,
            source=record.source,
            raw=record.raw,
            was_held=held,
            confidence=record.confidence,
            annotator=record.annotator,
        )

    def _refuse(
        self, record: LabelRecord, kind: OutcomeKind, detail: str, *, held: bool = False
    ) -> LabelOutcome:
        return LabelOutcome(self.key, record.ts, kind, record, detail, was_held=held)

    def _remember(self, event_id: str, status: Status, old: Entry) -> None:
        """Keep a resolved id for one TTL so a late second label is recognised."""
        self._put(event_id, Entry(status, self._now() + self.ttl), old)

    def _count_held(self, change: int) -> None:
        if self.held is not None:
            self.held += change

    def _put(self, event_id: str, entry: Entry, old: Entry | None) -> None:
        """Store ``entry`` for ``event_id``, replacing ``old`` (what the store holds now)."""
        if old is None:
            self.size += 1
        elif old.status == "held":
            self._count_held(-1)
        if entry.status == "held":
            self._count_held(+1)
        self.entries[event_id] = entry
        bucket = entry.expire_at // self.width
        ids = self.buckets.get(bucket)
        if ids is None:
            bisect.insort(self.bucket_ids, bucket)
            ids = []
        ids.append(event_id)
        self.buckets[bucket] = ids

    def _drop(self, event_id: str, old: Entry) -> None:
        del self.entries[event_id]
        self.size -= 1
        if old.status == "held":
            self._count_held(-1)

    def _advance(self, ts: int) -> list[JoinOutput]:
        if self.two_inputs:
            if self.seen_events is None or self.seen_labels is None:
                return []  # until both inputs have spoken, nothing can be known to be late
            ts = min(self.seen_events, self.seen_labels)
        if self.clock is None or ts > self.clock:
            self.clock = ts
        out: list[JoinOutput] = []
        while self.bucket_ids and self.bucket_ids[0] <= self.clock // self.width:
            bucket = self.bucket_ids[0]
            keep = []
            for event_id in self.buckets.get(bucket) or []:
                entry = self.entries.get(event_id)
                if entry is None or entry.expire_at // self.width != bucket:
                    continue  # resolved, or moved to a later bucket since
                if entry.expire_at > self.clock:
                    keep.append(event_id)
                    continue
                out.extend(self._expire(event_id, entry, evicted=False))
            if keep:
                self.buckets[bucket] = keep
                break
            del self.buckets[bucket]
            self.bucket_ids.pop(0)
        return out

    def _expire(self, event_id: str, entry: Entry, *, evicted: bool) -> list[JoinOutput]:
        if entry.status == "waiting":
            assert entry.event is not None
            if evicted:
                self._drop(event_id, entry)
            else:
                self._remember(event_id, "expired", entry)
            return [Expiry(self.key, event_id, self._now(), entry.event.ts, evicted=evicted)]
        self._drop(event_id, entry)
        if entry.status == "held":
            assert entry.record is not None
            why = (
                f"labels.max_pending ({self.max_pending}) was reached"
                if evicted
                else f"no event with this id arrived within {self.ttl} ms"
            )
            return [self._refuse(entry.record, "unknown", why, held=True)]
        return []

    def _evict(self) -> list[JoinOutput]:
        out: list[JoinOutput] = []
        while self.size > self.max_pending and self.bucket_ids:
            bucket = self.bucket_ids[0]
            ids = self.buckets.get(bucket) or []
            while ids and self.size > self.max_pending:
                event_id = ids.pop(0)
                entry = self.entries.get(event_id)
                if entry is not None and entry.expire_at // self.width == bucket:
                    out.extend(self._expire(event_id, entry, evicted=True))
            if ids:
                self.buckets[bucket] = ids
            else:
                del self.buckets[bucket]
                self.bucket_ids.pop(0)
        return out

    def waiting(self) -> int:
        """How many ids the join holds (waiting, held or remembered)."""
        return self.size


def labelled_examples(item: Any, min_confidence: float = 0.0) -> Iterator[Event]:
    """What the sampler learns from: labelled events, and delayed labels joined to
    their events (at the label's time).

    Parameters
    ----------
    item
        Anything the label join outputs, or an event.
    min_confidence
        ``curation.label_filter.min_confidence``: a joined label whose record says it is
        less sure than this is not sampled (the model operator counts the drop).

    Yields
    ------
    Event
        A labelled event itself, or an :class:`Answer` as a labelled event at the
        answer's ``ts`` (:meth:`Answer.as_event`); nothing for anything else.

    Examples
    --------
    >>> from stratiflow.records import Event
    >>> event = Event("a", 100, {"x": 1.0})
    >>> list(labelled_examples(event))
    []
    >>> list(labelled_examples(Answer("default", "a", 250, True, event)))
    [Event(id='a', ts=250, features={'x': 1.0}, label=True, key='default', source=None)]
    """
    if isinstance(item, Answer):
        if item.confidence is None or item.confidence >= min_confidence:
            yield item.as_event()
    elif isinstance(item, Event) and item.label is not None:
        yield item
