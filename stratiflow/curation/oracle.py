"""A simulated annotator: answers label requests from a file of true labels, after a
delay, optionally wrong with a seeded probability (for demos and for evaluating active
learning against the real broker: ``stratiflow label-oracle``).

>>> oracle = LabelOracle({"a": "x", "b": "y"}, delay_ms=100, noise=0.0, seed=1)
>>> oracle.answer({"id": "a", "key": "k", "ts": 1000}, now_ms=5)
(105, {'id': 'a', 'label': 'x', 'ts': 1100, 'key': 'k', 'annotator': 'oracle'})
>>> oracle.answer({"id": "zz", "key": "k", "ts": 1000}, now_ms=5) is None
True
>>> oracle.unknown
1
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stratiflow.records import Label

__all__ = ["LabelOracle", "read_true_labels"]


def read_true_labels(path: Path) -> dict[str, Label]:
    """The ``id -> label`` map of a JSONL file of events or label records.

    Parameters
    ----------
    path
        One JSON object per line with ``id`` and ``label`` (other fields are ignored;
        lines without a label are skipped).

    Returns
    -------
    dict[str, Label]
        The true label of every id in the file.

    Raises
    ------
    ValueError
        A line that is not a JSON object (the message names the file and the line).
    """
    labels: dict[str, Label] = {}
    with path.open() as lines:
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError as exc:
                raise ValueError(f"{path}:{n}: not JSON ({exc})") from None
            if not isinstance(obj, dict):
                raise ValueError(f"{path}:{n}: not a JSON object")
            if obj.get("label") is not None and "id" in obj:
                labels[str(obj["id"])] = obj["label"]
    return labels


@dataclass
class LabelOracle:
    """Answers label requests from known labels (seeded noise, fixed delay).

    Parameters
    ----------
    labels
        The true label of each event id.
    delay_ms
        How long after a request its answer is due (wall clock), and how much later
        than the event its label's ``ts`` is.
    noise
        Probability of answering with another class (one of the labels' other values).
    seed
        Seeds the noise.
    annotator
        The ``annotator`` the label records name.
    """

    labels: Mapping[str, Label]
    delay_ms: int = 0
    noise: float = 0.0
    seed: int = 0
    annotator: str = "oracle"
    answered: int = 0
    wrong: int = 0
    unknown: int = 0
    rng: random.Random = field(init=False, repr=False)
    classes: list[Label] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0 <= self.noise <= 1:
            raise ValueError(f"noise must be in [0, 1], got {self.noise!r}")
        if self.delay_ms < 0:
            raise ValueError("delay_ms cannot be negative")
        self.rng = random.Random(self.seed)
        self.classes = sorted(set(self.labels.values()), key=lambda c: (type(c).__name__, c))

    def answer(
        self, request: Mapping[str, Any], *, now_ms: int
    ) -> tuple[int, dict[str, Any]] | None:
        """When to send the answer to one request, and the label record (``None``: the id
        has no known label; counted in :attr:`unknown`).

        Parameters
        ----------
        request
            A ``label_requests`` record (``id``, ``key``, ``ts``).
        now_ms
            The wall clock when the request was read.

        Returns
        -------
        tuple[int, dict] | None
            The wall-clock time the answer is due, and the label record.
        """
        label = self.labels.get(str(request.get("id")))
        if label is None:
            self.unknown += 1
            return None
        if self.noise and self.rng.random() < self.noise:
            others = [c for c in self.classes if c != label]
            if others:
                label = self.rng.choice(others)
                self.wrong += 1
        self.answered += 1
        record = {
            "id": request["id"],
            "label": label,
            "ts": int(request["ts"]) + self.delay_ms,
            "key": request.get("key", "default"),
            "annotator": self.annotator,
        }
        return now_ms + self.delay_ms, record

    def answers(
        self, requests: Iterable[Mapping[str, Any]], *, now_ms: int
    ) -> list[tuple[int, dict[str, Any]]]:
        """:meth:`answer` for several requests read at the same time.

        Parameters
        ----------
        requests
            ``label_requests`` records.
        now_ms
            The wall clock when they were read.

        Returns
        -------
        list
            The answers due, as ``(due_ms, label record)``, in request order.
        """
        out = []
        for request in requests:
            answered = self.answer(request, now_ms=now_ms)
            if answered is not None:
                out.append(answered)
        return out
