"""Where the dashboard's records come from: a backtest's output files or the job's topics."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from stratiflow.config import Config
from stratiflow.dashboard.board import STREAMS, Board, Stream

#: The file each stream is written to by ``stratiflow backtest`` (``jobs/backtest.py``).
RUN_FILES: dict[Stream, str] = {stream: f"{stream}.jsonl" for stream in STREAMS}


class RunDirectory:
    """Reads a backtest's output directory, and what is appended to its files later.

    Only complete lines are read, so a file being written is read again from the first
    incomplete line at the next :meth:`poll`.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> run = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (run / "dead_letters.jsonl").write_text('{"reason": "invalid_json"}\\n{"rea')
    >>> board = Board()
    >>> RunDirectory(run).poll(board)
    1
    >>> board.dead_letters["invalid_json"]
    1
    """

    def __init__(self, path: Path):
        self.path = path
        self.offsets: dict[Stream, int] = dict.fromkeys(STREAMS, 0)

    def poll(self, board: Board) -> int:
        """Add the lines written since the last poll; return how many."""
        if not self.path.is_dir():
            board.set_source("files", False, f"no run directory at {self.path}")
            return 0
        added = 0
        present = []
        for stream, name in RUN_FILES.items():
            file = self.path / name
            if not file.exists():
                continue
            present.append(name)
            with file.open("rb") as handle:
                handle.seek(self.offsets[stream])
                data = handle.read()
            end = data.rfind(b"\n") + 1
            for line in data[:end].splitlines():
                if line.strip():
                    board.add_bytes(stream, line)
                    added += 1
            self.offsets[stream] += end
        if not present:
            board.set_source(
                "files", False, f"{self.path} holds none of {', '.join(RUN_FILES.values())}"
            )
        else:
            board.set_source("files", True, f"{self.path}: {len(present)} output files")
        return added


class TopicFollower:
    """Follows the job's output topics (committed records only) into a :class:`Board`.

    Reads every partition from the beginning without a consumer group, so it never
    moves anyone's offsets; a missing broker or topic is shown on the page and tried
    again every ``retry_s``.
    """

    def __init__(
        self,
        bootstrap: str,
        topics: Mapping[Stream, str],
        properties: Mapping[str, str] | None = None,
        retry_s: float = 2.0,
    ):
        self.bootstrap = bootstrap
        self.topics = dict(topics)
        self.properties = dict(properties or {})
        self.retry_s = retry_s

    @classmethod
    def of_job(cls, cfg: Config, retry_s: float = 2.0) -> TopicFollower:
        """The follower of a job's output topics, with its broker and client settings."""
        topics = {stream: getattr(cfg.topics, stream) for stream in STREAMS}
        return cls(cfg.kafka.bootstrap_servers, topics, cfg.kafka.properties, retry_s)

    def run(self, board: Board, lock: threading.Lock, stop: threading.Event) -> None:
        """Poll until ``stop`` is set; each record is added to ``board`` under ``lock``."""
        from stratiflow.io import kafka as kafka_io
        from stratiflow.io.preflight import PreflightError, check_broker

        stream_of = {topic: stream for stream, topic in self.topics.items()}
        client: Any = None
        assigned: set[str] = set()
        next_try = 0.0
        while not stop.is_set():
            try:
                if client is None:
                    try:  # a broker that is down or a wrong TLS setting: said in seconds
                        check_broker(self.bootstrap, self.properties, timeout_s=3)
                    except PreflightError as exc:
                        _set(board, lock, "kafka", False, f"cannot read from the broker: {exc}")
                        stop.wait(self.retry_s)
                        continue
                    client = kafka_io.consumer(
                        self.bootstrap,
                        self.properties,
                        request_timeout_ms=5000,
                        # asking for a topic must not create it: the job creates its
                        # topics with their partitions
                        allow_auto_create_topics=False,
                    )
                if len(assigned) < len(stream_of) and time.monotonic() >= next_try:
                    found = self._partitions(client, [t for t in stream_of if t not in assigned])
                    if found:
                        assigned |= {tp.topic for tp in found}
                        current = list(client.assignment()) + found
                        client.assign(current)
                        client.seek_to_beginning(*found)
                    missing = sorted(set(stream_of) - assigned)
                    _set(board, lock, "kafka", True, _kafka_message(self.bootstrap, missing))
                    next_try = time.monotonic() + self.retry_s
                if not assigned:
                    stop.wait(self.retry_s)
                    continue
                batch = client.poll(timeout_ms=250)
                if batch:
                    with lock:
                        for tp, records in batch.items():
                            stream = stream_of[tp.topic]
                            for record in records:
                                board.add_bytes(stream, record.value)
            except Exception as exc:  # the broker went away: say so and try again
                message = f"cannot read from the broker at {self.bootstrap}: {exc}"
                _set(board, lock, "kafka", False, message)
                if client is not None:
                    _close(client)
                client, assigned = None, set()
                stop.wait(self.retry_s)
        if client is not None:
            _close(client)

    @staticmethod
    def _partitions(client: Any, topics: list[str]) -> list[Any]:
        from kafka import TopicPartition

        found = []
        for topic in topics:
            ids = client.partitions_for_topic(topic)
            found += [TopicPartition(topic, p) for p in sorted(ids or ())]
        return found


def _kafka_message(bootstrap: str, missing: list[str]) -> str:
    if not missing:
        return f"following the job's topics on {bootstrap}"
    # a job makes model-events and label-requests only with drift, candidates or active
    # learning configured, so a missing topic is normal, not an error
    return f"following {bootstrap}; no such topic (yet): {', '.join(missing)}"


def _set(board: Board, lock: threading.Lock, name: str, ok: bool, message: str) -> None:
    with lock:
        board.set_source(name, ok, message)


def _close(client: Any) -> None:
    # closing a consumer of a dead broker may raise; there is nothing to keep
    with contextlib.suppress(Exception):
        client.close()


def poll_forever(
    poll: Callable[[], Any], stop: threading.Event, every_s: float, on_error: Callable[[str], None]
) -> None:
    """Call ``poll`` every ``every_s`` until ``stop``; an exception is reported, not raised."""
    while not stop.is_set():
        try:
            poll()
        except Exception as exc:  # shown on the page; the next poll tries again
            on_error(str(exc) or type(exc).__name__)
        stop.wait(every_s)
