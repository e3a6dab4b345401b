package io.stratiflow.flink;

import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.connector.kafka.source.reader.deserializer.KafkaRecordDeserializationSchema;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;
import org.apache.kafka.clients.consumer.ConsumerRecord;

/**
 * Hands every Kafka record to Python untouched, with where it came from.
 *
 * <p>Produces {@code Row(topic, partition, offset, timestamp, key, value)}; key and value are the
 * raw bytes (possibly null). Nothing is parsed on the Java side, so no record can fail here: bad
 * payloads reach the Python validator, which routes them to the dead-letter topic with their
 * source coordinates.
 */
public final class RawRecordDeserializationSchema implements KafkaRecordDeserializationSchema<Row> {
    private static final long serialVersionUID = 1L;

    public static final String[] FIELD_NAMES = {
        "topic", "partition", "offset", "timestamp", "key", "value"
    };

    @Override
    public void deserialize(ConsumerRecord<byte[], byte[]> record, Collector<Row> out) {
        out.collect(Row.of(
            record.topic(),
            record.partition(),
            record.offset(),
            record.timestamp(),
            record.key(),
            record.value()));
    }

    @Override
    public TypeInformation<Row> getProducedType() {
        return Types.ROW_NAMED(
            FIELD_NAMES,
            Types.STRING,
            Types.INT,
            Types.LONG,
            Types.LONG,
            Types.PRIMITIVE_ARRAY(Types.BYTE),
            Types.PRIMITIVE_ARRAY(Types.BYTE));
    }
}
