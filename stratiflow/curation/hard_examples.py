"""Hard-example replay: keep the highest-loss labelled examples and learn them again.

One :class:`HardExamples` per model key holds the ``size`` examples with the
highest loss it was offered, and :meth:`HardExamples.replay` hands one back,
chosen uniformly at random, with probability ``p``. The state is a list of
plain tuples, a seeded :class:`random.Random` and three counters, so it
pickles small and a restored copy replays exactly what the original would.

>>> hard = HardExamples(size=2, p=1.0, seed=0)
>>> [hard.offer(f"e{i}", {"x": float(i)}, i % 2 == 0, loss) for i, loss in
...  enumerate([0.3, 0.9, 0.1, 0.5])]
[True, True, False, True]
>>> [item[:2] for item in hard.items()]
[(0.9, 'e1'), (0.5, 'e3')]
>>> hard.replay()
('e1', {'x': 1.0}, False)
"""

from __future__ import annotations

import heapq
import math
import random
from dataclasses import dataclass, field
from typing import Any

from stratiflow.records import Label

#: A buffered example: (loss, arrival number, id, features, label). The arrival
#: number is unique, so tuples never compare their dicts.
_Item = tuple[float, int, str, dict[str, Any], Label]


@dataclass
class HardExamples:
    """The ``size`` highest-loss labelled examples seen, replayed with probability ``p``.

    The buffer is a min-heap on ``(loss, arrival)``: it holds the ``size``
    largest such pairs offered so far, so among equal losses the newer
    example wins (a new example whose loss equals the smallest buffered loss
    replaces the oldest of those).

    Parameters
    ----------
    size
        How many examples the buffer holds (at least 1).
    p
        The probability that a :meth:`replay` call returns an example (0 to 1).
    seed
        Seeds the generator behind the replay coin and the pick.

    Attributes
    ----------
    offered
        Examples offered.
    kept
        Examples that entered the buffer (some may have been pushed out since).
    replayed
        Examples :meth:`replay` returned.

    Examples
    --------
    >>> hard = HardExamples(size=3, p=0.5, seed=1)
    >>> for i in range(10):
    ...     _ = hard.offer(f"e{i}", {"x": i}, i % 3, loss=float(i))
    >>> hard.summary()
    {'size': 3, 'p': 0.5, 'buffered': 3, 'offered': 10, 'kept': 10, 'replayed': 0,
     'min_loss': 7.0, 'max_loss': 9.0}
    >>> HardExamples(size=0, p=0.5, seed=1)
    Traceback (most recent call last):
    ...
    ValueError: size must be at least 1, got 0
    """

    size: int
    p: float
    seed: int
    offered: int = field(default=0, init=False)
    kept: int = field(default=0, init=False)
    replayed: int = field(default=0, init=False)
    _heap: list[_Item] = field(default_factory=list, init=False, repr=False)
    _arrivals: int = field(default=0, init=False, repr=False)
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1:
            raise ValueError(f"size must be at least 1, got {self.size!r}")
        if not 0.0 <= self.p <= 1.0:  # also rejects NaN
            raise ValueError(f"p must be between 0 and 1, got {self.p!r}")
        self._rng = random.Random(self.seed)

    def __len__(self) -> int:
        return len(self._heap)

    def offer(self, id: str, x: dict[str, Any], y: Label, loss: float) -> bool:
        """Offer a labelled example with its loss; keep it if it is among the highest.

        Parameters
        ----------
        id
            The example's id.
        x
            Its features (a shallow copy is kept).
        y
            Its label.
        loss
            The model's loss on it (any real number, ``inf`` included).

        Returns
        -------
        bool
            Whether it entered the buffer: always while the buffer is not full,
            then only if ``loss`` is at least the smallest buffered loss (which it
            pushes out).

        Raises
        ------
        ValueError
            If ``loss`` is NaN (it cannot be ranked).

        Examples
        --------
        >>> hard = HardExamples(size=1, p=0.0, seed=0)
        >>> hard.offer("a", {}, True, 0.5), hard.offer("b", {}, True, 0.2)
        (True, False)
        >>> hard.offer("c", {}, False, 0.5), [item[1] for item in hard.items()]
        (True, ['c'])
        """
        loss = float(loss)
        if math.isnan(loss):
            raise ValueError(f"loss of {id!r} is NaN")
        self.offered += 1
        item: _Item = (loss, self._arrivals, id, dict(x), y)
        self._arrivals += 1
        if len(self._heap) < self.size:
            heapq.heappush(self._heap, item)
        elif loss < self._heap[0][0]:
            return False
        else:
            heapq.heapreplace(self._heap, item)
        self.kept += 1
        return True

    def replay(self) -> tuple[str, dict[str, Any], Label] | None:
        """With probability ``p``, one buffered example chosen uniformly at random.

        Every call draws the coin, even on an empty buffer, so the coins depend
        only on the seed and the calls; a hit then draws the pick (unless the
        buffer is empty). The example stays in the buffer.

        Returns
        -------
        tuple[str, dict, Label] or None
            ``(id, x, y)`` (``x`` a copy), or ``None`` on a miss or an empty buffer.

        Examples
        --------
        >>> hard = HardExamples(size=4, p=1.0, seed=0)
        >>> hard.replay() is None
        True
        >>> _ = hard.offer("a", {"x": 1}, True, 2.0)
        >>> hard.replay(), hard.replayed
        (('a', {'x': 1}, True), 1)
        """
        if self._rng.random() >= self.p or not self._heap:
            return None
        _, _, id, x, y = self._heap[self._rng.randrange(len(self._heap))]
        self.replayed += 1
        return id, dict(x), y

    def items(self) -> list[tuple[float, str, dict[str, Any], Label]]:
        """The buffered examples as ``(loss, id, x, y)``, highest loss (then newest) first.

        Examples
        --------
        >>> hard = HardExamples(size=2, p=0.0, seed=0)
        >>> for i, loss in enumerate([1.0, 3.0, 2.0]):
        ...     _ = hard.offer(f"e{i}", {}, 0, loss)
        >>> [(loss, id) for loss, id, _, _ in hard.items()]
        [(3.0, 'e1'), (2.0, 'e2')]
        """
        ordered = sorted(self._heap, key=lambda item: (item[0], item[1]), reverse=True)
        return [(loss, id, dict(x), y) for loss, _, id, x, y in ordered]

    def summary(self) -> dict[str, Any]:
        """Settings, counters and the buffered loss range (``None`` when empty).

        Examples
        --------
        >>> HardExamples(size=5, p=0.1, seed=0).summary()["min_loss"] is None
        True
        """
        losses = [item[0] for item in self._heap]
        return {
            "size": self.size,
            "p": self.p,
            "buffered": len(self._heap),
            "offered": self.offered,
            "kept": self.kept,
            "replayed": self.replayed,
            "min_loss": min(losses) if losses else None,
            "max_loss": max(losses) if losses else None,
        }
