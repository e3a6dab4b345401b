"""Stratified window sampling: what the model trains on.

Two stages, both pure and driven by whoever runs the job (the Flink operators,
:mod:`stratiflow.runner.replay`, the tests):

1. :class:`ClassWindows` — one per (model key, class). Each event-time window
   keeps a seeded :class:`Reservoir` of the class's events and their count;
   events whose window has already closed are counted as late.
2. :class:`WindowAllocator` — one per model key. At window end it sees every
   class's reservoir and count, splits the window's training examples by
   ``sampling.strategy`` (:mod:`stratiflow.sampling.allocation`), draws them, shuffles them and
   reports what it did (a ``sampling-stats`` record).

Seeds derive from (base seed, model key, class, window start), and the
reservoir keeps the events with the smallest seeded hash of their id, so the
sample depends only on *which* events fell in the window, not on the order
or parallelism in which they arrived.

>>> from stratiflow.config import SamplingSettings
>>> from stratiflow.records import Event, class_key
>>> settings = SamplingSettings(strategy="undersample", window=1000)
>>> windows = {c: ClassWindows("k", c, settings, seed=7) for c in ("true", "false")}
>>> for i in range(10):
...     event = Event(f"e{i}", ts=i * 50, features={"x": float(i)}, label=i % 5 == 0)
...     _ = windows[class_key(event.label)].offer(event, watermark=None)
>>> allocator = WindowAllocator("k", settings, seed=7)
>>> for w in windows.values():
...     _ = allocator.receive(w.close(0))
>>> batch, stats = allocator.close(0, now_ms=0)
>>> len(batch.examples), stats["classes"]["false"]["seen"], stats["classes"]["true"]["seen"]
(4, 8, 2)
>>> stats["classes"]["false"]["sampled"], stats["trained_mix"]
(2, {'false': 0.5, 'true': 0.5})
"""

from __future__ import annotations

import hashlib
import heapq
import math
import pickle
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stratiflow.config import SamplingSettings
from stratiflow.records import SAMPLING_STATS_SCHEMA_VERSION, Event, Label, class_key
from stratiflow.sampling.allocation import Quota, allocation_for

#: A class whose decayed per-window count falls below this is no longer "seen".
_FORGET_PRIOR = 1e-6


def derive_seed(base: int, *parts: object) -> int:
    """A 64-bit seed from the base seed and the parts that identify a sample.

    Parameters
    ----------
    base
        The base seed (the config's ``seed``).
    *parts
        What identifies the sample, e.g. model key, class and window start; each is
        used as its ``str``.

    Returns
    -------
    int
        A seed from 0 to ``2**64 - 1``, the same for the same arguments in any process.

    Examples
    --------
    >>> derive_seed(42, "key", "true", 0) == derive_seed(42, "key", "true", 0)
    True
    >>> derive_seed(42, "key", "true", 0) == derive_seed(42, "key", "true", 1000)
    False
    """
    text = "\x1f".join(str(p) for p in (base, *parts)).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")


def window_start(ts: int, size_ms: int) -> int:
    """Start of the tumbling event-time window holding ``ts`` (aligned to epoch 0).

    Parameters
    ----------
    ts
        An event time, in ms.
    size_ms
        The window length, in ms.

    Returns
    -------
    int
        The largest multiple of ``size_ms`` not after ``ts``.

    Examples
    --------
    >>> window_start(12_345, 10_000), window_start(-1, 10_000)
    (10000, -10000)
    """
    return ts - ts % size_ms


def pickled_once(entry: list[Any], item_at: int) -> bytes:
    """The pickle of ``entry[item_at]``, made on first use and kept in ``entry[-1]``.

    Held items (a reservoir's sample, an aligner's waiting events) sit in state that
    PyFlink pickles whole at every bundle end; pickling each item once and copying
    its bytes afterwards makes those writes cheap. The items must not change while
    held.

    Parameters
    ----------
    entry
        A held item's entry; its last element holds the pickle (``None`` until made).
    item_at
        The item's index in ``entry``.

    Returns
    -------
    bytes
        The item's pickle (highest protocol), the same object at every call.

    Examples
    --------
    >>> entry = [0, {"x": 1.0}, None]
    >>> first = pickled_once(entry, 1)
    >>> pickled_once(entry, 1) is first is entry[-1]
    True
    """
    if entry[-1] is None:
        entry[-1] = pickle.dumps(entry[item_at], pickle.HIGHEST_PROTOCOL)
    return entry[-1]


class Reservoir:
    """A uniform sample of at most ``capacity`` items from a stream of any length.

    Each item gets a priority from a keyed hash of its id; the reservoir keeps
    the ``capacity`` smallest (bottom-k sampling). With a good hash every subset
    of ``capacity`` items is equally likely, the result does not depend on the
    arrival order, and the first ``m`` items of :meth:`items` are themselves a
    uniform sample of size ``m``. Memory is O(capacity).

    Parameters
    ----------
    capacity
        The most items kept.
    seed
        Keys the hash (0 to ``2**64 - 1``, e.g. from :func:`derive_seed`); the same
        seed keeps the same items.

    Examples
    --------
    >>> r = Reservoir(3, seed=1)
    >>> for i in range(100):
    ...     r.add(str(i), i)
    >>> r.seen, len(r.items())
    (100, 3)
    """

    __slots__ = ("_heap", "_key", "_order", "capacity", "seen")

    def __init__(self, capacity: int, seed: int) -> None:
        self.capacity = capacity
        self.seen = 0
        self._key = seed.to_bytes(8, "big")
        # Max-heap on priority (stored negated); _order only breaks exact ties
        # (events sharing an id). Entries are [-priority, -order, item, item pickled
        # or None] (see __getstate__); the unique order means items are never compared.
        self._heap: list[list[Any]] = []
        self._order = 0

    def priority(self, item_id: str) -> int:
        digest = hashlib.blake2b(item_id.encode(), digest_size=8, key=self._key).digest()
        return int.from_bytes(digest, "big")

    def add(self, item_id: str, item: Any) -> None:
        self.seen += 1
        p = self.priority(item_id)
        self._order += 1
        if len(self._heap) < self.capacity:
            heapq.heappush(self._heap, [-p, -self._order, item, None])
        elif p < -self._heap[0][0]:
            heapq.heapreplace(self._heap, [-p, -self._order, item, None])

    def items(self) -> list[Any]:
        """The sample, smallest priority first."""
        return [entry[2] for entry in sorted(self._heap, reverse=True)]

    def __len__(self) -> int:
        return len(self._heap)

    def __getstate__(self) -> dict[str, Any]:
        """Each kept item is pickled once and its bytes reused by later pickles.

        A Flink operator keeps its key's reservoirs in one ``ValueState``, pickled
        whole at every bundle end in which the key saw an event, while a full
        reservoir's items rarely change (bottom-k: the ``n``-th item enters with
        probability ``capacity / n``): copying bytes instead of pickling events
        again makes that write cheap.
        """
        heap = [(entry[0], entry[1], pickled_once(entry, 2)) for entry in self._heap]
        return {
            "capacity": self.capacity,
            "seen": self.seen,
            "_key": self._key,
            "_order": self._order,
            "packed_heap": heap,
        }

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple):  # pickled before __getstate__: (None, slot values)
            state = dict(state[1])
            heap = [[p, o, item, None] for p, o, item in state.pop("_heap")]
        else:
            heap = [[p, o, pickle.loads(b), b] for p, o, b in state.pop("packed_heap")]
        for name, value in state.items():
            setattr(self, name, value)
        self._heap = heap


#: The watermark at the end of a bounded input (Flink's Long.MAX_VALUE).
END_OF_TIME = 2**63 - 1


@dataclass(slots=True)
class ClassSummary:
    """What stage 1 hands stage 2 for one (model key, class, window).

    Attributes
    ----------
    key
        The model key.
    cls
        The class, as :func:`~stratiflow.records.class_key` names it.
    start
        The window's start; ``None`` for a summary that only carries late counts
        (sent when the input ends).
    end
        The window's end (exclusive).
    fire
        The watermark at which the window closed.
    seen
        The class's on-time events in the window.
    late
        The class's late events since the previous summary.
    samples
        The reservoir's sample of those events.
    """

    key: str
    cls: str
    start: int | None
    end: int | None
    fire: int | None
    seen: int
    late: int
    samples: list[Event]


class ClassWindows:
    """Stage 1 state for one (model key, class): open windows and the late count.

    Parameters
    ----------
    key
        The model key.
    cls
        The class, as :func:`~stratiflow.records.class_key` names it.
    settings
        The ``sampling`` section: window length, allowed lateness, reservoir capacity.
    seed
        The base seed; each window's reservoir seed derives from it, the key, the
        class and the window's start.
    """

    def __init__(self, key: str, cls: str, settings: SamplingSettings, seed: int) -> None:
        self.key = key
        self.cls = cls
        self.size = settings.window
        self.lateness = settings.allowed_lateness
        self.capacity = settings.capacity
        self.seed = seed
        self.open: dict[int, Reservoir] = {}
        self.late = 0

    def fire_time(self, start: int) -> int:
        """Watermark at which the window starting at ``start`` closes."""
        return start + self.size - 1 + self.lateness

    def offer(self, event: Event, watermark: int | None) -> int | None:
        """Sample ``event``; the window's fire time if on time, ``None`` if late.

        An event is late when the watermark has already reached its window's
        fire time (the window was closed and handed on).
        """
        start = window_start(event.ts, self.size)
        fire = self.fire_time(start)
        if watermark is not None and watermark >= fire:
            self.late += 1
            return None
        reservoir = self.open.get(start)
        if reservoir is None:
            seed = derive_seed(self.seed, self.key, self.cls, start)
            reservoir = self.open[start] = Reservoir(self.capacity, seed)
        reservoir.add(event.id, event)
        return fire

    def close(self, start: int) -> ClassSummary:
        """Hand over the window starting at ``start`` (and the late count so far)."""
        reservoir = self.open.pop(start)
        late, self.late = self.late, 0
        return ClassSummary(
            self.key,
            self.cls,
            start,
            start + self.size,
            self.fire_time(start),
            reservoir.seen,
            late,
            reservoir.items(),
        )

    def take_late(self) -> ClassSummary | None:
        """A late-only summary when late events are waiting to be reported."""
        if not self.late:
            return None
        late, self.late = self.late, 0
        return ClassSummary(self.key, self.cls, None, None, None, 0, late, [])


@dataclass(frozen=True, slots=True)
class LateExample:
    """Stage 1 found a labelled example of this window late.

    It travels with the batches to the model, whose aligner waits for every window
    it saw an example of (:mod:`stratiflow.sampling.alignment`): this window may send no
    batch, and this says it need not be waited for.

    Attributes
    ----------
    key
        The model key.
    start
        The window's start.
    """

    key: str
    start: int


@dataclass(frozen=True, slots=True)
class Example:
    """One training example: features and label, and where it came from.

    Attributes
    ----------
    id
        The event's id; a drawn example adds ``~duplicate<j>`` or ``~synthetic<j>``.
    x
        The features the model learns from (missing ones left out).
    y
        The label.
    kind
        ``real`` (a sampled event), ``duplicate`` or ``synthetic``.
    """

    id: str
    x: dict[str, Any]
    y: Label
    kind: str = "real"  # real | duplicate | synthetic


@dataclass(frozen=True, slots=True)
class TrainingBatch:
    """A window's allocated examples for one model key, already shuffled.

    Attributes
    ----------
    key
        The model key.
    start
        The window's start (``END_OF_TIME`` for the empty batch that carries late
        counts at the end of input).
    end
        The window's end (exclusive).
    fire
        The watermark at which the window closed: the model learns the batch once
        its own watermark reaches it (:mod:`stratiflow.sampling.alignment`).
    examples
        The examples to learn, in order.
    """

    key: str
    start: int
    end: int
    fire: int
    examples: list[Example]
    #: Labelled events found late (behind the watermark) since the previous batch.
    late: int = 0


def synthesize(samples: list[Event], n: int, neighbours: int, rng: random.Random) -> list[Example]:
    """``n`` synthetic examples interpolated between same-class neighbours (SMOTE).

    Each picks a base example, one of its ``neighbours`` nearest same-class
    examples (Euclidean over numeric features), and a point on the segment
    between them; non-numeric features are copied from the base. With a
    single example there is nothing to interpolate, so it is duplicated.

    Parameters
    ----------
    samples
        Labelled events of one class (at least one when ``n > 0``).
    n
        How many examples to make.
    neighbours
        How many nearest examples the partner is drawn from.
    rng
        Seeded; picks each base, partner and point.

    Returns
    -------
    list[Example]
        ``n`` examples of kind ``synthetic`` (ids ``<base id>~synthetic<j>``), or of
        kind ``duplicate`` when there is a single sample.

    Examples
    --------
    >>> from stratiflow.records import Event
    >>> samples = [Event("a", 0, {"x": 0.0, "city": "Oslo"}, label=True),
    ...            Event("b", 0, {"x": 1.0, "city": "Rome"}, label=True)]
    >>> made = synthesize(samples, 2, neighbours=5, rng=random.Random(0))
    >>> [(e.id, round(e.x["x"], 3), e.x["city"], e.kind) for e in made]
    [('b~synthetic0', 0.96, 'Rome', 'synthetic'), ('b~synthetic1', 0.082, 'Rome', 'synthetic')]
    """
    if n <= 0:
        return []
    if len(samples) < 2:
        return [_duplicate(samples[0], j) for j in range(n)]
    names = sorted({f for e in samples for f, v in e.features.items() if _is_number(v)})
    matrix = np.array(
        [[_number(e.features.get(f)) for f in names] for e in samples], dtype=float
    ).reshape(len(samples), len(names))
    filled = np.where(np.isnan(matrix), np.nanmean(matrix, axis=0, keepdims=True), matrix)
    filled = np.nan_to_num(filled)
    k = min(neighbours, len(samples) - 1)
    out = []
    for j in range(n):
        i = rng.randrange(len(samples))
        with np.errstate(over="ignore"):  # huge features: an infinite distance still ranks
            distance = ((filled - filled[i]) ** 2).sum(axis=1)
        distance[i] = np.inf
        nearest = np.argpartition(distance, k - 1)[:k]
        partner = samples[int(nearest[rng.randrange(k)])]
        base = samples[i]
        gap = rng.random()
        x = dict(base.model_input())
        for f in names:
            a, b = base.features.get(f), partner.features.get(f)
            if _is_number(a) and _is_number(b):
                # The convex form stays finite for any finite a, b; a + gap*(b - a)
                # overflows when b - a does (e.g. 1e308 and -1e308).
                x[f] = (1.0 - gap) * float(a) + gap * float(b)  # type: ignore[arg-type]
        assert base.label is not None
        out.append(Example(f"{base.id}~synthetic{j}", x, base.label, "synthetic"))
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number(value: Any) -> float:
    return float(value) if _is_number(value) else math.nan


def _real(event: Event) -> Example:
    assert event.label is not None
    return Example(event.id, event.model_input(), event.label)


def _duplicate(event: Event, j: int) -> Example:
    assert event.label is not None
    return Example(f"{event.id}~duplicate{j}", event.model_input(), event.label, "duplicate")


@dataclass(slots=True)
class _Pending:
    end: int
    fire: int
    classes: dict[str, ClassSummary] = field(default_factory=dict)


class WindowAllocator:
    """Stage 2 state for one model key: collects every class's window, then allocates.

    Parameters
    ----------
    key
        The model key.
    settings
        The ``sampling`` section: the strategy and the fields it uses.
    seed
        The base seed; each window's draws derive from it, the key and the window's
        start.
    tomek_links
        Drop the non-minority members of Tomek links from each window's sample
        (``curation.tomek_links``).
    """

    #: A class attribute too: allocators pickled before Tomek links existed restore without it.
    tomek_links = False

    def __init__(
        self, key: str, settings: SamplingSettings, seed: int, *, tomek_links: bool = False
    ) -> None:
        self.key = key
        self.settings = settings
        self.seed = seed
        self.tomek_links = tomek_links
        self.pending: dict[int, _Pending] = {}
        self.late: dict[str, int] = {}
        self.priors: dict[str, float] = {}
        self.trained: dict[str, int] = {}
        self.windows = 0

    def receive(self, summary: ClassSummary) -> int | None:
        """Take one class's summary; the window's fire time the first time it is seen.

        Stage 1 hands on every class's window when the watermark reaches that
        fire time, so the window is complete once the watermark passes it here.
        """
        if summary.late:
            self.late[summary.cls] = self.late.get(summary.cls, 0) + summary.late
        if summary.start is None or summary.end is None or summary.fire is None:
            return None
        pending = self.pending.get(summary.start)
        first = pending is None
        if pending is None:
            pending = self.pending[summary.start] = _Pending(summary.end, summary.fire)
        pending.classes[summary.cls] = summary
        return summary.fire if first else None

    def due(self, watermark: int) -> list[int]:
        """Starts of the pending windows the watermark ``watermark`` has closed, oldest first."""
        return sorted(start for start, p in self.pending.items() if p.fire <= watermark)

    def close(self, start: int, *, now_ms: int) -> tuple[TrainingBatch, dict[str, Any]]:
        """Allocate the window starting at ``start``: its training batch and stats record."""
        pending = self.pending.pop(start)
        summaries = pending.classes
        seen = {c: s.seen for c, s in summaries.items()}
        available = {c: len(s.samples) for c, s in summaries.items()}
        rng = random.Random(derive_seed(self.seed, self.key, "*", start))
        priors = self._update_priors(seen) if self.settings.decay else None
        plan = allocation_for(self.settings).plan(seen, available, rng, priors)

        examples: list[Example] = []
        per_class: dict[str, dict[str, int]] = {}
        for c in sorted(summaries):
            samples = summaries[c].samples
            quota = plan.get(c, Quota(0, 0))
            chosen = [_real(e) for e in samples[: quota.real]]
            synthetic: list[Example] = []
            duplicates: list[Example] = []
            if quota.extra:
                if self.settings.synthetic:
                    synthetic = synthesize(samples, quota.extra, self.settings.neighbours, rng)
                    # a lone example cannot be interpolated; synthesize duplicates it
                    duplicates = [e for e in synthetic if e.kind == "duplicate"]
                    synthetic = [e for e in synthetic if e.kind == "synthetic"]
                else:
                    duplicates = [
                        _duplicate(samples[rng.randrange(len(samples))], j)
                        for j in range(quota.extra)
                    ]
            trained = len(chosen) + len(duplicates) + len(synthetic)
            examples += chosen + duplicates + synthetic
            self.trained[c] = self.trained.get(c, 0) + trained
            per_class[c] = {
                "seen": seen[c],
                "late": self.late.pop(c, 0),
                "available": available[c],
                "wanted": quota.wanted,
                "sampled": len(chosen),
                "duplicated": len(duplicates),
                "synthetic": len(synthetic),
                "trained": trained,
            }
        if self.tomek_links:
            examples = self._drop_tomek_links(examples, per_class)
        rng.shuffle(examples)
        self.windows += 1
        late = sum(counts["late"] for counts in per_class.values())
        batch = TrainingBatch(self.key, start, pending.end, pending.fire, examples, late)
        window = {"start": start, "end": pending.end}
        return batch, self._stats(window, per_class, len(examples), priors, now_ms)

    def flush_late(self, *, now_ms: int) -> tuple[TrainingBatch, dict[str, Any]] | None:
        """Late events not yet reported (at end of input): an empty batch carrying
        their count to the model, and their stats record."""
        if not any(self.late.values()):
            return None
        per_class = {c: _late_only(n) for c, n in sorted(self.late.items())}
        late = sum(self.late.values())
        self.late.clear()
        batch = TrainingBatch(self.key, END_OF_TIME, END_OF_TIME, END_OF_TIME, [], late)
        return batch, self._stats(None, per_class, 0, None, now_ms)

    def _drop_tomek_links(
        self, examples: list[Example], per_class: dict[str, dict[str, int]]
    ) -> list[Example]:
        """The window's sample without the non-minority members of its Tomek links, each
        drop counted in its class's ``tomek_dropped`` (and taken off ``trained``)."""
        from stratiflow.sampling.tomek import tomek_drops  # numpy: only when asked for

        for counts in per_class.values():
            counts["tomek_dropped"] = 0
        drops = set(tomek_drops(examples))
        for i in drops:
            c = class_key(examples[i].y)
            per_class[c]["tomek_dropped"] += 1
            per_class[c]["trained"] -= 1
            self.trained[c] -= 1
        return [e for i, e in enumerate(examples) if i not in drops]

    def _update_priors(self, seen: Mapping[str, int]) -> dict[str, float]:
        d = self.settings.decay
        for c in set(self.priors) | set(seen):
            n = seen.get(c, 0)
            old = self.priors.get(c)
            self.priors[c] = float(n) if old is None else d * old + (1 - d) * n
        self.priors = {c: p for c, p in self.priors.items() if p >= _FORGET_PRIOR}
        return dict(self.priors)

    def _stats(
        self,
        window: dict[str, int] | None,
        per_class: dict[str, dict[str, int]],
        total: int,
        priors: dict[str, float] | None,
        now_ms: int,
    ) -> dict[str, Any]:
        record: dict[str, Any] = {
            "schema_version": SAMPLING_STATS_SCHEMA_VERSION,
            "key": self.key,
            "window": window,
            "strategy": self.settings.strategy,
            "classes": per_class,
            "trained": total,
            "trained_mix": {
                c: v["trained"] / total for c, v in per_class.items() if total and v["trained"]
            },
            "cumulative_trained": dict(sorted(self.trained.items())),
            "emitted_at": now_ms,
        }
        if priors is not None:
            record["priors"] = dict(sorted(priors.items()))
        return record


def _late_only(late: int) -> dict[str, int]:
    return {
        "seen": 0,
        "late": late,
        "available": 0,
        "wanted": 0,
        "sampled": 0,
        "duplicated": 0,
        "synthetic": 0,
        "trained": 0,
    }
