"""The raw record every source produces: value bytes plus where they came from."""

from pyflink.common import Row, Types

RAW_FIELDS = ["topic", "partition", "offset", "timestamp", "key", "value"]
#: Matches ``io.stratiflow.flink.RawRecordDeserializationSchema#getProducedType``.
RAW_RECORD = Types.ROW_NAMED(
    RAW_FIELDS,
    [
        Types.STRING(),
        Types.INT(),
        Types.LONG(),
        Types.LONG(),
        Types.PRIMITIVE_ARRAY(Types.BYTE()),
        Types.PRIMITIVE_ARRAY(Types.BYTE()),
    ],
)


def raw_row(
    topic: str, partition: int, offset: int, timestamp: int, key: bytes | None, value: bytes | None
) -> Row:
    """A raw record for bounded in-memory sources (backtest, tests)."""
    row = Row(topic, partition, offset, timestamp, key, value)
    row.set_field_names(RAW_FIELDS)
    return row
