package io.stratiflow.flink;

import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple4;
import org.apache.flink.connector.kafka.source.reader.deserializer.KafkaRecordDeserializationSchema;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;
import org.apache.kafka.clients.consumer.ConsumerRecord;

/**
 * Every Kafka record's value untouched, with where it came from and its model key.
 *
 * <p>Produces {@code Row(model_key, Tuple4(topic, partition, offset, value))}: the shape PyFlink's
 * {@code key_by} gives a keyed Python operator, so the job keys records on the Java side (see
 * {@link ModelKeys}) and the first Python code a record meets is the model's own operator. The
 * record itself is a tuple, which Python decodes far more cheaply than a named row. Nothing can
 * fail here: bad payloads reach the Python validator, which dead-letters them with their source
 * coordinates.
 */
public final class KeyedRawRecordDeserializationSchema
        implements KafkaRecordDeserializationSchema<Row> {
    private static final long serialVersionUID = 1L;

    private static final byte[] NO_VALUE = new byte[0];

    private final int maxPayloadBytes;

    public KeyedRawRecordDeserializationSchema(int maxPayloadBytes) {
        this.maxPayloadBytes = maxPayloadBytes;
    }

    @Override
    public void deserialize(ConsumerRecord<byte[], byte[]> record, Collector<Row> out) {
        // Tuple fields cannot be null (copying or serializing one throws), so a record with
        // no value (a tombstone) travels as an empty value: both become empty_payload.
        byte[] value = record.value() == null ? NO_VALUE : record.value();
        Tuple4<String, Integer, Long, byte[]> raw =
                Tuple4.of(record.topic(), record.partition(), record.offset(), value);
        out.collect(Row.of(ModelKeys.of(record.value(), maxPayloadBytes), raw));
    }

    @Override
    public TypeInformation<Row> getProducedType() {
        return Types.ROW(
                Types.STRING,
                Types.TUPLE(Types.STRING, Types.INT, Types.LONG, Types.PRIMITIVE_ARRAY(Types.BYTE)));
    }
}
