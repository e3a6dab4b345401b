"""Kafka source and sinks configured from the job config, and the backtest's file source.

The source hands raw bytes plus topic/partition/offset to Python (through a
small Java deserializer built by ``stratiflow local setup``), so nothing can
fail before validation and every dead letter can say where its record was.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pyflink.datastream.connectors import Source
from pyflink.datastream.connectors.base import DeliveryGuarantee
from pyflink.datastream.connectors.kafka import (
    KafkaOffsetsInitializer,
    KafkaSink,
    KafkaSource,
)
from pyflink.java_gateway import get_gateway
from pyflink.util.java_utils import to_jarray

from stratiflow.config import Config


def _committed_offsets() -> KafkaOffsetsInitializer:
    """The group's committed offsets; a partition without one starts at its earliest.

    Built through the JVM: PyFlink's ``committed_offsets()`` looks up
    ``OffsetResetStrategy`` under the package the SQL connector jar relocates it
    to, which the official ``flink-connector-kafka`` jar does not have.
    """
    jvm = get_gateway().jvm
    initializer = jvm.org.apache.flink.connector.kafka.source.enumerator.initializer
    reset = jvm.org.apache.kafka.clients.consumer.OffsetResetStrategy.EARLIEST
    return KafkaOffsetsInitializer(initializer.OffsetsInitializer.committedOffsets(reset))


_STARTING = {
    "earliest": KafkaOffsetsInitializer.earliest,
    "latest": KafkaOffsetsInitializer.latest,
    "committed": _committed_offsets,
}
_GUARANTEES = {
    "none": DeliveryGuarantee.NONE,
    "at_least_once": DeliveryGuarantee.AT_LEAST_ONCE,
    "exactly_once": DeliveryGuarantee.EXACTLY_ONCE,
}


def offsets_spec(topic: str, offsets: Mapping[int, int]) -> str:
    """``topic:partition:offset,...`` as ``io.stratiflow.flink.ExplicitOffsets`` reads it."""
    return ",".join(f"{topic}:{p}:{o}" for p, o in sorted(offsets.items()))


def events_source(
    cfg: Config, stop_offsets: Mapping[int, int] | None = None, *, topic: str | None = None
) -> KafkaSource:
    """The events topic (or ``topic``) as keyed raw records, bounded at ``stop_offsets``.

    See :data:`stratiflow.operators.raw.KEYED_RAW_RECORD`.
    """
    topic = topic or cfg.topics.events
    jvm = get_gateway().jvm
    builder = (
        KafkaSource.builder()
        .set_bootstrap_servers(cfg.kafka.bootstrap_servers)
        .set_topics(topic)
        .set_group_id(cfg.kafka.group_id)
        .set_starting_offsets(_STARTING[cfg.kafka.starting_offsets]())
        # Input written by an exactly-once producer (another job, say) counts only once
        # committed; a user's own isolation.level wins.
        .set_properties({"isolation.level": "read_committed", **cfg.kafka.properties})
    )
    # PyFlink exposes only value-only deserializers; the Java builder takes ours.
    deserializer = jvm.io.stratiflow.flink.KeyedRawRecordDeserializationSchema(
        cfg.validation.max_payload_bytes
    )
    builder._j_builder.setDeserializer(deserializer)
    if stop_offsets is not None:
        spec = offsets_spec(topic, stop_offsets)
        builder._j_builder.setBounded(jvm.io.stratiflow.flink.ExplicitOffsets.parse(spec))
    return builder.build()


def string_sink(cfg: Config, topic: str) -> KafkaSink:
    """A sink writing JSON strings to ``topic`` with the configured delivery guarantee.

    Records are stamped with the time they are written
    (``io.stratiflow.flink.WallClockStringSerializer`` says why).
    """
    builder = (
        KafkaSink.builder()
        .set_bootstrap_servers(cfg.kafka.bootstrap_servers)
        .set_delivery_guarantee(_GUARANTEES[cfg.job.delivery_guarantee])
    )
    # PyFlink's set_record_serializer accepts only its own builder's schema.
    serializer = get_gateway().jvm.io.stratiflow.flink.WallClockStringSerializer(topic)
    builder._j_builder.setRecordSerializer(serializer)
    if cfg.job.delivery_guarantee == "exactly_once":
        # Stable per job and topic across restarts: Flink aborts the transactions a
        # failed attempt left open by these ids when the job comes back.
        builder = builder.set_transactional_id_prefix(f"{cfg.job.transactional_id_prefix}-{topic}")
        builder = builder.set_property(
            "transaction.timeout.ms", str(cfg.job.transaction_timeout_ms)
        )
    for key, value in cfg.kafka.properties.items():
        builder = builder.set_property(key, value)
    return builder.build()


def jsonl_file_source(path: Path, max_payload_bytes: int) -> Source:
    """A JSONL file as keyed raw records, read in the JVM (``io.stratiflow.flink.JsonLinesFormat``):
    the file's path is the records' topic and the 0-based line number their offset, as
    :func:`stratiflow.io.sources.jsonl_lines` numbers them.

    Parameters
    ----------
    path
        The file.
    max_payload_bytes
        ``validation.max_payload_bytes``: a longer line gets no model key (it is a dead letter).

    Returns
    -------
    Source
        A bounded source of :data:`stratiflow.operators.raw.KEYED_RAW_RECORD` rows.
    """
    jvm = get_gateway().jvm
    file_format = jvm.io.stratiflow.flink.JsonLinesFormat(str(path), max_payload_bytes)
    j_path = jvm.org.apache.flink.core.fs.Path(str(path.resolve()))
    j_source = jvm.org.apache.flink.connector.file.src.FileSource.forRecordStreamFormat(
        file_format, to_jarray(jvm.org.apache.flink.core.fs.Path, [j_path])
    ).build()
    return Source(j_source)
