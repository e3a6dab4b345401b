package io.stratiflow.flink;

import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple5;
import org.apache.flink.connector.kafka.source.reader.deserializer.KafkaRecordDeserializationSchema;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;
import org.apache.kafka.clients.consumer.ConsumerRecord;

/**
 * Every Kafka record's value untouched, with where it came from and its model key.
 *
 * <p>Produces {@code Row(model_key, Tuple5(topic, partition, offset, value, has_value))}: the
 * shape PyFlink's {@code key_by} gives a keyed Python operator, so the job keys records on the
 * Java side (see {@link ModelKeys}) and the first Python code a record meets is the model's own
 * operator. The record itself is a tuple, which Python decodes far more cheaply than a named row.
 * Nothing can fail here: bad payloads reach the Python validator, which dead-letters them with
 * their source coordinates.
 *
 * <p>Tuple fields cannot be null (copying or serializing one throws), so a record with no value
 * (a tombstone) carries an empty {@code value} and {@code has_value = false}; Python turns it
 * back into {@code None} ({@code operators.raw.unpack}), so its dead letter's {@code raw} is null,
 * unlike a record whose value is zero bytes.
 */
public final class KeyedRawRecordDeserializationSchema
        implements KafkaRecordDeserializationSchema<Row> {
    private static final long serialVersionUID = 1L;

    private static final byte[] NO_VALUE = new byte[0];

    private final int maxPayloadBytes;

    public KeyedRawRecordDeserializationSchema(int maxPayloadBytes) {
        this.maxPayloadBytes = maxPayloadBytes;
    }

    /**
     * The raw record's type, {@code Tuple5(topic, partition, offset, value, has_value)}; Python's
     * {@code operators.raw.RAW_RECORD} must match it.
     */
    public static TypeInformation<Tuple5<String, Integer, Long, byte[], Boolean>> rawRecordType() {
        return Types.TUPLE(
                Types.STRING,
                Types.INT,
                Types.LONG,
                Types.PRIMITIVE_ARRAY(Types.BYTE),
                Types.BOOLEAN);
    }

    @Override
    public void deserialize(ConsumerRecord<byte[], byte[]> record, Collector<Row> out) {
        byte[] value = record.value();
        Tuple5<String, Integer, Long, byte[], Boolean> raw =
                Tuple5.of(
                        record.topic(),
                        record.partition(),
                        record.offset(),
                        value == null ? NO_VALUE : value,
                        value != null);
        out.collect(Row.of(ModelKeys.of(value, maxPayloadBytes), raw));
    }

    @Override
    public TypeInformation<Row> getProducedType() {
        return Types.ROW(Types.STRING, rawRecordType());
    }
}
