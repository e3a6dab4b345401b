"""The raw record every source produces: value bytes plus where they came from, keyed.

Sources emit :data:`KEYED_RAW_RECORD` rows, ``Row(model_key, (topic, partition,
offset, value, has_value))``: the Kafka source computes the model key in Java
(``io.stratiflow.flink.ModelKeys``), the in-memory sources with
:func:`stratiflow.validation.parse.model_key_of`. The job can then key records by model
key without running Python first. The record is a tuple because Python decodes
a tuple much faster than a named row, once per event.

A tuple's fields cannot be null, so a record with no value (a Kafka tombstone)
travels as ``value=b""`` with ``has_value=False``; :func:`unpack` gives its value
as ``None`` again, and its dead letter has ``raw: null`` (``raw_encoding: none``),
unlike a record whose value is zero bytes (``raw: ""``).
"""

from typing import Any

from pyflink.common import Row, Types
from pyflink.datastream import DataStream, KeyedStream
from pyflink.java_gateway import get_gateway

from stratiflow.records import SourceRef
from stratiflow.validation.parse import MAX_PAYLOAD_BYTES, model_key_of

#: ``(topic, partition, offset, value, has_value)``; matches
#: ``io.stratiflow.flink.KeyedRawRecordDeserializationSchema#rawRecordType``.
RAW_RECORD = Types.TUPLE(
    [
        Types.STRING(),
        Types.INT(),
        Types.LONG(),
        Types.PRIMITIVE_ARRAY(Types.BYTE()),
        Types.BOOLEAN(),
    ]
)
KEYED_RAW_RECORD = Types.ROW([Types.STRING(), RAW_RECORD])
#: ``Row(model_key, [raw record, ...])``, what :func:`batch_by_model_key` emits; matches
#: ``io.stratiflow.flink.RecordBatcher#producedType``.
RAW_BATCH = Types.OBJECT_ARRAY(RAW_RECORD)


def raw_of(row: Row) -> tuple[str, int, int, bytes, bool]:
    """The raw record inside a keyed raw row."""
    return row[1]


def unpack(record: Any) -> tuple[SourceRef, bytes | None]:
    """Where a raw record came from, and its value bytes (``None`` for no value)."""
    topic, partition, offset, value, has_value = record
    return SourceRef(topic, partition, offset), bytes(value) if has_value else None


def raw_row(
    topic: str,
    partition: int,
    offset: int,
    value: bytes | None,
    *,
    max_payload_bytes: int = MAX_PAYLOAD_BYTES,
) -> Row:
    """A keyed raw record for bounded in-memory sources (backtest, tests); ``value=None``
    is a record with no value."""
    record = (topic, partition, offset, b"" if value is None else value, value is not None)
    return Row(model_key_of(value, max_payload_bytes), record)


def batch_by_model_key(stream: DataStream, max_records: int, linger_ms: int) -> DataStream:
    """Group keyed raw rows into ``Row(model_key, [raw record, ...])`` batches, in Java.

    ``io.stratiflow.flink.RecordBatcher`` runs chained to ``stream`` (same
    parallelism, so per-key order is kept). It sends a key's batch when it holds
    ``max_records``, ``linger_ms`` after its first record, and before every
    watermark, checkpoint barrier and the end of input, so it holds no state.
    The uid is derived from the input's, so savepoints stay compatible.
    """
    jvm = get_gateway().jvm
    j_input = stream._j_data_stream
    j_batched = (
        j_input.transform(
            f"batch by model key (<= {max_records}, {linger_ms} ms)",
            jvm.io.stratiflow.flink.RecordBatcher.producedType(),
            jvm.io.stratiflow.flink.RecordBatcher(max_records, linger_ms),
        )
        .setParallelism(j_input.getParallelism())
        .uid(f"{j_input.getTransformation().getUid() or j_input.getId()}-batches")
    )
    return DataStream(j_batched)


def key_by_model_key(stream: DataStream, value_type: Any = RAW_RECORD) -> KeyedStream:
    """Key a stream of keyed raw rows (or batches) by their model key, with no Python
    key selector.

    This is what PyFlink's ``key_by`` does after it has run a Python function to
    build ``Row(key, value)``; our sources already emit that shape.
    """
    jvm = get_gateway().jvm
    j_keyed = stream._j_data_stream.keyBy(
        jvm.KeyByKeySelector(), Types.ROW([Types.STRING()]).get_java_type_info()
    )
    return KeyedStream(j_keyed, value_type, stream)
