"""Small mergeable summaries of streams of non-negative numbers (durations).

:class:`QuantileSketch` is a DDSketch-style histogram (Masson, Rim and Lee,
VLDB 2019): values fall into buckets whose bounds grow geometrically, so every
quantile comes back within a fixed *relative* error however skewed the values
are, and the state is a sparse dict of bucket counts that pickles small.

>>> s = QuantileSketch(relative_accuracy=0.01)
>>> for ms in [1, 2, 3, 4, 100]:
...     s.add(ms / 1000)
>>> s.count, round(s.quantile(0.5) * 1000, 1), s.max
(5, 3.0, 0.1)
>>> summary = s.summary(scale=1000)
>>> round(summary["p99"], 1), round(summary["mean"], 1)
(4.0, 22.0)
"""

from __future__ import annotations

import math

#: Values below this are counted in the zero bucket and reported as 0.0.
MIN_VALUE = 1e-9


class QuantileSketch:
    """Quantiles of non-negative values within a relative accuracy.

    Guarantee: for ``0 <= q <= 1``, ``quantile(q)`` is within
    ``relative_accuracy`` (relative error, up to float rounding) of the exact
    value at rank ``floor(q * (count - 1))`` of the sorted values -- the lower
    (``numpy.quantile(..., method="lower")``) quantile. Values below
    :data:`MIN_VALUE` are reported as 0.0. ``mean`` and ``max`` are exact.

    Memory is one counter per occupied bucket: about
    ``ln(max / min) / (2 * relative_accuracy)`` buckets for values spread
    between ``min`` and ``max`` (roughly 1,000 for microseconds to minutes at
    1%), however many values were added.

    Parameters
    ----------
    relative_accuracy
        The relative error bound, ``0 < relative_accuracy < 1``.
    """

    __slots__ = ("_log_gamma", "buckets", "count", "max", "relative_accuracy", "total", "zeros")

    def __init__(self, relative_accuracy: float = 0.01) -> None:
        if not 0.0 < relative_accuracy < 1.0:
            raise ValueError(f"relative_accuracy must be in (0, 1), got {relative_accuracy}")
        self.relative_accuracy = relative_accuracy
        # Bucket i holds (gamma**(i-1), gamma**i]; its midpoint in relative terms,
        # 2 * gamma**i / (gamma + 1), is within relative_accuracy of every value in it.
        gamma = (1.0 + relative_accuracy) / (1.0 - relative_accuracy)
        self._log_gamma = math.log(gamma)
        self.buckets: dict[int, int] = {}
        self.zeros = 0
        self.count = 0
        self.total = 0.0
        self.max = 0.0

    def add(self, x: float) -> None:
        """Count one value; negative or NaN values raise ``ValueError``."""
        if x >= MIN_VALUE:
            i = math.ceil(math.log(x) / self._log_gamma)
            buckets = self.buckets
            buckets[i] = buckets.get(i, 0) + 1
        elif x >= 0.0:
            self.zeros += 1
        else:  # negative or NaN
            raise ValueError(f"QuantileSketch takes non-negative values, got {x}")
        self.count += 1
        self.total += x
        if x > self.max:
            self.max = x

    def _value(self, i: int) -> float:
        gamma = math.exp(self._log_gamma)
        return 2.0 * math.exp(i * self._log_gamma) / (gamma + 1.0)

    def quantile(self, q: float) -> float | None:
        """The value at rank ``floor(q * (count - 1))``, or ``None`` when empty."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"q must be in [0, 1], got {q}")
        if not self.count:
            return None
        rank = math.floor(q * (self.count - 1))
        if rank == self.count - 1:
            return self.max  # the top rank is the maximum, which is kept exactly
        if rank < self.zeros:
            return 0.0
        seen = self.zeros
        for i in sorted(self.buckets):
            seen += self.buckets[i]
            if seen > rank:
                # The exact value is <= max, so clamping can only bring us closer;
                # it makes the top quantiles of a constant stream exact.
                return min(self._value(i), self.max)
        raise AssertionError("bucket counts do not add up to count")  # pragma: no cover

    def merge(self, other: QuantileSketch) -> None:
        """Add another sketch's values to this one (same relative accuracy only)."""
        if other.relative_accuracy != self.relative_accuracy:
            raise ValueError("can only merge sketches with the same relative_accuracy")
        for i, n in other.buckets.items():
            self.buckets[i] = self.buckets.get(i, 0) + n
        self.zeros += other.zeros
        self.count += other.count
        self.total += other.total
        self.max = max(self.max, other.max)

    def summary(self, scale: float = 1.0) -> dict[str, float | int | None]:
        """Median, 99th percentile, mean and max times ``scale``, and the count."""
        if not self.count:
            return {"p50": None, "p99": None, "mean": None, "max": None, "count": 0}
        p50 = self.quantile(0.5)
        p99 = self.quantile(0.99)
        assert p50 is not None and p99 is not None
        return {
            "p50": p50 * scale,
            "p99": p99 * scale,
            "mean": self.total / self.count * scale,
            "max": self.max * scale,
            "count": self.count,
        }
