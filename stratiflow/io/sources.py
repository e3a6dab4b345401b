"""Event sources for ``stratiflow produce``: JSONL/CSV files and River datasets.

River datasets and generators are converted to the event contract with
deterministic ids and timestamps, so the same command gives the same events.

>>> events = list(river_events("phishing", n=2, start_ts=0, interval_ms=10))
>>> [(e["id"], e["ts"], e["label"], e["key"]) for e in events]
[('phishing-0', 0, True, 'default'), ('phishing-1', 10, True, 'default')]
"""

from __future__ import annotations

import csv
import itertools
import json
import random
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from stratiflow.records import DEFAULT_KEY

DEFAULT_SYNTH_N = 10_000
#: Where the ``*_drift`` streams switch concept (abruptly): half way through the default size.
DRIFT_POSITION = 5_000


def _datasets() -> dict[str, tuple[Callable[[int], Any], int | None]]:
    from river import datasets
    from river.datasets import synth

    # name → (factory(seed), size or None for endless generators)
    return {
        "phishing": (lambda seed: datasets.Phishing(), 1250),
        "bananas": (lambda seed: datasets.Bananas(), 5300),
        "sea": (lambda seed: synth.SEA(variant=0, seed=seed), None),
        "agrawal": (lambda seed: synth.Agrawal(classification_function=0, seed=seed), None),
        "hyperplane": (lambda seed: synth.Hyperplane(seed=seed), None),
        "sine": (lambda seed: synth.Sine(seed=seed), None),
        "stagger": (lambda seed: synth.STAGGER(seed=seed), None),
        "led": (lambda seed: synth.LED(seed=seed), None),
        "random_rbf": (lambda seed: synth.RandomRBF(seed_model=seed, seed_sample=seed), None),
        "mixed": (lambda seed: synth.Mixed(seed=seed), None),
        # One abrupt concept drift at DRIFT_POSITION (River's ConceptDriftStream).
        "sea_drift": (
            lambda seed: _drifting(
                synth.SEA(variant=0, seed=seed), synth.SEA(variant=3, seed=seed), seed
            ),
            None,
        ),
        "agrawal_drift": (
            lambda seed: _drifting(
                synth.Agrawal(classification_function=0, seed=seed),
                synth.Agrawal(classification_function=2, seed=seed),
                seed,
            ),
            None,
        ),
        "stagger_drift": (
            lambda seed: _drifting(
                synth.STAGGER(classification_function=0, seed=seed),
                synth.STAGGER(classification_function=2, seed=seed),
                seed,
            ),
            None,
        ),
    }


def _drifting(before: Any, after: Any, seed: int) -> Any:
    from river.datasets import synth

    # width 50: the switch takes about 50 events (River overflows on much narrower ones).
    return synth.ConceptDriftStream(before, after, seed=seed, position=DRIFT_POSITION, width=50)


#: What :func:`river_events` can generate, named without importing River (the CLI's help
#: lists them, and River's import takes seconds).
DATASET_NAMES = (
    "agrawal",
    "agrawal_drift",
    "bananas",
    "hyperplane",
    "led",
    "mixed",
    "phishing",
    "random_rbf",
    "sea",
    "sea_drift",
    "sine",
    "stagger",
    "stagger_drift",
)


def dataset_names() -> list[str]:
    """The datasets and generators :func:`river_events` knows, sorted.

    >>> dataset_names() == sorted(_datasets())
    True
    """
    return list(DATASET_NAMES)


def dataset_length(name: str, n: int | None = None) -> int:
    """How many events :func:`river_events` yields for ``name`` and ``n``.

    >>> dataset_length("phishing"), dataset_length("sea"), dataset_length("sea", n=5)
    (1250, 10000, 5)
    """
    _, size = _datasets()[name]
    return n if n is not None else (size or DEFAULT_SYNTH_N)


def _plain(value: Any) -> Any:
    """numpy scalars → Python values JSON understands."""
    if isinstance(value, bool | str) or value is None:
        return value
    if hasattr(value, "item"):
        value = value.item()
    return value


def river_events(
    name: str,
    *,
    n: int | None = None,
    seed: int = 42,
    start_ts: int = 0,
    interval_ms: int = 1000,
    keys: Sequence[str] = (DEFAULT_KEY,),
    unlabelled_fraction: float = 0.0,
    minority_share: float | None = None,
) -> Iterator[dict[str, Any]]:
    """Events from a River dataset or generator.

    Parameters
    ----------
    name
        One of :func:`dataset_names`.
    n
        Number of events (default: the whole dataset, or 10 000 for generators).
    keys
        Model keys, assigned round-robin so each key gets an interleaved share.
    unlabelled_fraction
        Share of events sent without a label (chosen with ``seed``).
    minority_share
        Make a binary dataset imbalanced: each event's class is drawn first
        (positive — ``True``/``1`` — with this probability, seeded), then the
        generator is read until it yields an example of that class. The
        concept stays the generator's; only the class prior changes.
    """
    table = _datasets()
    if name not in table:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(sorted(table))}")
    factory, size = table[name]
    limit = n if n is not None else (size or DEFAULT_SYNTH_N)
    rng = random.Random(seed)
    stream = iter(factory(seed))
    if minority_share is not None:
        if not 0.0 < minority_share < 1.0:
            raise ValueError(f"minority_share must be in (0, 1), got {minority_share}")
        stream = _with_prior(stream, minority_share, random.Random(seed + 1))
    for i, (x, y) in enumerate(itertools.islice(stream, limit)):
        label = _plain(y)
        if unlabelled_fraction and rng.random() < unlabelled_fraction:
            label = None
        event: dict[str, Any] = {
            "id": f"{name}-{i}",
            "ts": start_ts + i * interval_ms,
            "features": {str(k): _plain(v) for k, v in x.items()},
            "key": keys[i % len(keys)],
        }
        event["label"] = label
        yield event


def _with_prior(
    stream: Iterator[tuple[dict[str, Any], Any]], share: float, rng: random.Random
) -> Iterator[tuple[dict[str, Any], Any]]:
    waiting: dict[bool, deque[tuple[dict[str, Any], Any]]] = {True: deque(), False: deque()}
    for _ in itertools.count():
        positive = rng.random() < share
        while not waiting[positive]:
            x, y = next(stream)
            is_positive = bool(_plain(y))
            if len(waiting[is_positive]) < 1000:  # bounded: skip surplus of the other class
                waiting[is_positive].append((x, y))
        yield waiting[positive].popleft()


def jsonl_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(0-based line number, raw bytes) of each non-blank line; bad lines pass through."""
    with path.open("rb") as handle:
        for number, line in enumerate(handle):
            stripped = line.rstrip(b"\r\n")
            if stripped.strip():
                yield number, stripped


def jsonl_records(path: Path) -> Iterator[bytes]:
    """Each non-blank line of a JSONL file, as raw bytes."""
    return (line for _, line in jsonl_lines(path))


def _csv_value(text: str) -> Any:
    if text == "":
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def csv_events(
    path: Path,
    *,
    label_column: str = "label",
    start_ts: int = 0,
    interval_ms: int = 1000,
) -> Iterator[dict[str, Any]]:
    """Events from a CSV file with a header row.

    Columns ``id``, ``ts`` and ``key`` are used when present; ``label_column``
    holds the label (empty = unlabelled); every other column is a feature
    (numbers parsed, empty cells become null).
    """
    with path.open(newline="") as handle:
        for i, row in enumerate(csv.DictReader(handle)):
            label = _csv_value(row.pop(label_column, "") or "")
            if isinstance(label, float):
                label = str(row.get(label_column, label))
            event_id = row.pop("id", "") or f"{path.stem}-{i}"
            ts_text = row.pop("ts", "")
            key = row.pop("key", "") or DEFAULT_KEY
            yield {
                "id": event_id,
                "ts": int(ts_text) if ts_text else start_ts + i * interval_ms,
                "features": {k: _csv_value(v) for k, v in row.items()},
                "label": label,
                "key": key,
            }


def record_key(raw: bytes) -> bytes | None:
    """The Kafka record key for a raw event: its model key, so per-key order holds."""
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    key = obj.get("key", DEFAULT_KEY) if isinstance(obj, dict) else None
    return key.encode("utf-8") if isinstance(key, str) and key else None


def with_delayed_labels(
    events: Sequence[dict[str, Any]], delay_ms: int | Callable[[dict[str, Any]], int]
) -> list[dict[str, Any]]:
    """Events without their labels, each label following later as a label record.

    A label arrives ``delay_ms`` (or ``delay_ms(event)``) after its event, at
    the position River's :func:`river.stream.simulate_qa` gives it with the
    event's ``ts`` as the moment; its record's ``ts`` is event ts + delay.
    Unlabelled input events stay unlabelled.

    >>> events = [{"id": f"e{i}", "ts": i, "features": {"x": i}, "label": True} for i in range(3)]
    >>> [(r["id"], "features" in r) for r in with_delayed_labels(events, 1)]
    [('e0', True), ('e0', False), ('e1', True), ('e1', False), ('e2', True), ('e2', False)]
    """
    from river import stream

    delay = delay_ms if callable(delay_ms) else (lambda _: delay_ms)
    questions: Any = [({"event": e}, e.get("label")) for e in events]
    out: list[dict[str, Any]] = []
    asked: set[int] = set()
    for i, x, y in stream.simulate_qa(
        questions, moment=lambda x: x["event"]["ts"], delay=lambda x, _: delay(x["event"])
    ):
        event = x["event"]
        if y is None:
            if i in asked:  # an unlabelled event's "answer": nothing to send
                continue
            asked.add(i)
            out.append({k: v for k, v in event.items() if k != "label"})
        else:
            label = {"id": event["id"], "label": y, "ts": event["ts"] + delay(event)}
            if event.get("key", DEFAULT_KEY) != DEFAULT_KEY:
                label["key"] = event["key"]
            out.append(label)
    return out


def is_label_record(raw: bytes) -> bool:
    """Whether a raw record is a label record (``label`` and no ``features``).

    >>> is_label_record(b'{"id": "a", "label": true, "ts": 1}'), is_label_record(b'{"id": "a"}')
    (True, False)
    """
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):
        return False
    return isinstance(obj, dict) and "label" in obj and "features" not in obj
