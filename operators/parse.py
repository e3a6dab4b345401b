"""Parse and validate raw records; rejects go to the dead-letter side output."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from pyflink.datastream import ProcessFunction

from stratiflow.config import Config
from stratiflow.config.model import build_model
from stratiflow.learning.state import label_policy
from stratiflow.operators.metrics import DeadLetterCounters, stratiflow_group
from stratiflow.operators.raw import raw_of, unpack
from stratiflow.operators.tags import dead_letter
from stratiflow.records import DeadLetter, Event, LabelRecord, Rejection
from stratiflow.validation.parse import Limits, parse_event


class RawParser:
    """Raw Kafka record → :class:`~stratiflow.records.Event` or label record, or its
    :class:`~stratiflow.records.DeadLetter`. Never raises on bad input.

    Build it in an operator's ``open`` (it builds the model once to learn
    which labels the model takes).
    """

    def __init__(self, cfg: Config, *, labels_only: bool = False) -> None:
        self.cfg = cfg
        #: Reading ``topics.labels`` only: every record must be a label record.
        self.labels_only = labels_only
        #: With ``labels.source: topic`` in one stream: records from this topic are labels.
        self.labels_topic = cfg.topics.labels if cfg.labels.source == "topic" else None
        self.limits = Limits(
            max_payload_bytes=cfg.validation.max_payload_bytes,
            max_features=cfg.validation.max_features,
        )
        self.label_policy = label_policy(build_model(cfg.model))
        #: The limits with ``latest_ts`` for the millisecond ``_limits_at`` (see parse).
        self._limits_at: int | None = None
        self._dated_limits = self.limits

    def parse(self, value: Any) -> Event | LabelRecord | DeadLetter:
        """The record, or its dead letter (reason, raw bytes, where it came from)."""
        source, raw = unpack(value)
        now = int(time.time() * 1000)
        limits = self.limits
        if self.cfg.validation.max_future_ms:
            # Rebuilt only when the millisecond changes: a dataclass replace per record
            # was ~3 % of the per-record path, and the limits are a function of ``now``.
            if now != self._limits_at:
                self._limits_at = now
                self._dated_limits = replace(
                    limits, latest_ts=now + self.cfg.validation.max_future_ms
                )
            limits = self._dated_limits
        try:
            result = parse_event(
                raw,
                source,
                limits=limits,
                label_policy=self.label_policy,
                labels=self.cfg.labels.source != "none",
                rules=self.cfg.validation,
            )
            labels_only = self.labels_only or source.topic == self.labels_topic
            if labels_only and isinstance(result, Event):
                result = Rejection(
                    "not_a_label",
                    "an event on the labels topic; label records are {id, label, ts, key?}",
                )
        except Exception as exc:  # a validator bug must not kill the job or lose the record
            result = Rejection("invalid_event", f"validation failed: {type(exc).__name__}: {exc}")
        if isinstance(result, Rejection):
            return DeadLetter.of(result, raw, source, at=now)
        return result


class ParseEvents(ProcessFunction):
    """Keyed raw record → :class:`~stratiflow.records.Event`, or a dead letter.

    Never raises on bad input: every record leaves either as an event on the
    main output or as a dead letter carrying its reason, raw payload and
    topic/partition/offset. Dead letters are counted by reason in Flink's metric
    system (:mod:`stratiflow.operators.metrics`; one call per dead letter, none
    per accepted record).
    """

    def __init__(self, cfg: Config, *, labels_only: bool = False) -> None:
        self.cfg = cfg
        self.labels_only = labels_only
        self.parser: RawParser | None = None  # builds the model once: made in open()
        self.dead_letters: DeadLetterCounters | None = None

    def open(self, runtime_context: Any) -> None:
        self.parser = RawParser(self.cfg, labels_only=self.labels_only)
        group = stratiflow_group(runtime_context)
        if group is not None:
            self.dead_letters = DeadLetterCounters(group)

    def process_element(self, value: Any, ctx: ProcessFunction.Context) -> Iterator[Any]:
        assert self.parser is not None
        result = self.parser.parse(raw_of(value))
        if isinstance(result, DeadLetter):
            if self.dead_letters is not None:
                self.dead_letters.inc(result.reason)
            yield dead_letter(result)
        else:
            yield result
