"""Tomek links: clean one window's training sample at the class boundary.

A Tomek link is a pair of examples of different classes that are each other's
nearest neighbour. Removing the non-minority member of each link (as
imbalanced-learn's ``TomekLinks(sampling_strategy="auto")`` does) clears the
boundary region the minority class has to compete for.

Distances are Euclidean over the examples' features, **not standardised**
(imbalanced-learn does not standardise either): the columns are the union of
the feature names; numbers are used as they are, booleans as 0/1, and a string
value ``v`` of feature ``f`` becomes a 0/1 column ``f=v`` (one-hot); a feature
an example lacks, ``None``, a non-finite number and any other value count as
0.0. Classes are told apart by :func:`~stratiflow.records.class_key`.

Cost: O(n² · d) time for n examples and d columns; rows are processed in
blocks, so memory stays about O(n · d + block · n) floats (a window of a few
thousand examples takes well under a second).

>>> from stratiflow.sampling.windows import Example
>>> sample = [Example("a", {"x": 0.0}, False), Example("b", {"x": 1.0}, False),
...           Example("c", {"x": 2.0}, False), Example("d", {"x": 2.4}, True)]
>>> tomek_drops(sample)
[2]
>>> kept, dropped = drop_tomek_links(sample)
>>> [e.id for e in kept], dropped
(['a', 'b', 'd'], 1)
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

import numpy as np

from stratiflow.records import Label, class_key


class Labelled(Protocol):
    """A training example as this module reads it (:class:`~stratiflow.sampling.Example`)."""

    @property
    def x(self) -> dict[str, Any]: ...

    @property
    def y(self) -> Label: ...


Example = TypeVar("Example", bound=Labelled)

#: Upper bound on the floats in one block of the distance matrix (rows x examples).
_BLOCK_FLOATS = 1 << 22


def tomek_drops(examples: Sequence[Example]) -> list[int]:
    """Indices of the examples a Tomek-link cleaning removes, in increasing order.

    Each example's nearest neighbour is the other example at the smallest
    Euclidean distance (ties go to the lowest index). Two examples of different
    classes that are each other's nearest neighbour form a link, and a linked
    example is dropped unless its class is the minority class (the class with
    the fewest examples; among equally small classes, the lowest label, as in
    imbalanced-learn's ``sampling_strategy="auto"``, i.e. "not minority"). So
    with two classes the majority member of each link goes; with more, a link
    between two non-minority classes loses both members.

    Parameters
    ----------
    examples
        One window's training sample.

    Returns
    -------
    list[int]
        Sorted indices into ``examples``; empty for fewer than two examples or a
        single class.

    Examples
    --------
    >>> from stratiflow.sampling.windows import Example
    >>> sample = [Example("a", {"x": 0.0, "c": "red"}, "A"),
    ...           Example("b", {"x": 0.1, "c": "blue"}, "B"),
    ...           Example("c", {"x": 5.0, "c": "red"}, "C"),
    ...           Example("d", {"x": 5.1, "c": "red"}, "B"),
    ...           Example("e", {"x": 9.0, "c": "red"}, "C"),
    ...           Example("f", {"x": 20.0}, "B")]
    >>> tomek_drops(sample)  # minority "A": b goes; c-d are both non-minority
    [1, 2, 3]
    """
    n = len(examples)
    if n < 2:
        return []
    classes = [class_key(e.y) for e in examples]
    if len(set(classes)) < 2:
        return []
    minority = _minority([e.y for e in examples])
    nearest = _nearest_neighbours(_matrix(examples))
    drops = []
    for i, j in enumerate(nearest):
        if classes[i] != minority and classes[j] != classes[i] and nearest[j] == i:
            drops.append(i)
    return drops


def drop_tomek_links(examples: Sequence[Example]) -> tuple[list[Example], int]:
    """The examples left after removing Tomek links (:func:`tomek_drops`), in order.

    Parameters
    ----------
    examples
        One window's training sample.

    Returns
    -------
    tuple[list[Example], int]
        The kept examples in their original order, and how many were dropped.

    Examples
    --------
    >>> from stratiflow.sampling.windows import Example
    >>> sample = [Example("a", {"x": 0.0}, 1), Example("b", {"x": 0.5}, 0),
    ...           Example("c", {"x": 3.0}, 0), Example("d", {"x": 4.0}, 0)]
    >>> kept, dropped = drop_tomek_links(sample)
    >>> [e.id for e in kept], dropped
    (['a', 'c', 'd'], 1)
    >>> drop_tomek_links([])
    ([], 0)
    """
    drops = set(tomek_drops(examples))
    kept = [e for i, e in enumerate(examples) if i not in drops]
    return kept, len(drops)


def _minority(labels: Sequence[Label]) -> str:
    """The class key of the smallest class; ties go to the lowest label."""
    counts = Counter(class_key(y) for y in labels)
    first = {class_key(y): y for y in reversed(labels)}  # one label per class
    try:
        order = sorted(first.values())
    except TypeError:  # mixed label types: any fixed order will do
        order = sorted(first.values(), key=lambda y: (type(y).__name__, class_key(y)))
    keys = [class_key(y) for y in order]
    return min(keys, key=lambda k: (counts[k], keys.index(k)))


def _columns(x: dict[str, Any]) -> dict[tuple[str, int, str], float]:
    """One example's non-zero columns: ``(f, 0, "")`` numeric, ``(f, 1, v)`` one-hot."""
    out: dict[tuple[str, int, str], float] = {}
    for f, v in x.items():
        if isinstance(v, bool):
            out[(f, 0, "")] = 1.0 if v else 0.0
        elif isinstance(v, int | float):
            value = float(v)
            out[(f, 0, "")] = value if math.isfinite(value) else 0.0
        elif isinstance(v, str):
            out[(f, 1, v)] = 1.0
    return out


def _matrix(examples: Sequence[Example]) -> np.ndarray:
    """The examples as an ``n x d`` float matrix, columns in sorted order."""
    rows = [_columns(e.x) for e in examples]
    names = sorted({c for row in rows for c in row})
    index = {c: k for k, c in enumerate(names)}
    matrix = np.zeros((len(rows), len(names)), dtype=float)
    for i, row in enumerate(rows):
        for c, value in row.items():
            matrix[i, index[c]] = value
    return matrix


def _nearest_neighbours(matrix: np.ndarray) -> list[int]:
    """Each row's nearest other row (squared Euclidean; ties: the lowest index)."""
    n, d = matrix.shape
    block = max(1, _BLOCK_FLOATS // max(n, 1))
    nearest = np.empty(n, dtype=np.int64)
    for start in range(0, n, block):
        stop = min(n, start + block)
        distance = np.zeros((stop - start, n), dtype=float)
        with np.errstate(over="ignore"):  # huge features: an infinite distance still ranks
            for k in range(d):  # feature by feature: the same sums as a plain loop
                diff = matrix[start:stop, k, None] - matrix[None, :, k]
                distance += diff * diff
        distance[np.arange(stop - start), np.arange(start, stop)] = np.inf
        nearest[start:stop] = np.argmin(distance, axis=1)  # first minimum: lowest index
    # A row whose every distance overflowed may land on itself: take the lowest other index.
    return [(0 if i else 1) if j == i else int(j) for i, j in enumerate(nearest)]
