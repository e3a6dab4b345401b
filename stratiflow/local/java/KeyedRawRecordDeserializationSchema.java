package io.stratiflow.flink;

import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.connector.kafka.source.reader.deserializer.KafkaRecordDeserializationSchema;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;
import org.apache.kafka.clients.consumer.ConsumerRecord;

/**
 * Every Kafka record untouched, with where it came from and its model key.
 *
 * <p>Produces {@code Row(model_key, Row(topic, partition, offset, timestamp, key, value))}: the
 * shape PyFlink's {@code key_by} gives a keyed Python operator, so the job keys records on the
 * Java side (see {@link ModelKeys}) and the first Python code a record meets is the model's own
 * operator. Nothing can fail here.
 */
public final class KeyedRawRecordDeserializationSchema
        implements KafkaRecordDeserializationSchema<Row> {
    private static final long serialVersionUID = 1L;

    private final int maxPayloadBytes;

    public KeyedRawRecordDeserializationSchema(int maxPayloadBytes) {
        this.maxPayloadBytes = maxPayloadBytes;
    }

    @Override
    public void deserialize(ConsumerRecord<byte[], byte[]> record, Collector<Row> out) {
        Row raw = Row.of(
            record.topic(),
            record.partition(),
            record.offset(),
            record.timestamp(),
            record.key(),
            record.value());
        out.collect(Row.of(ModelKeys.of(record.value(), maxPayloadBytes), raw));
    }

    @Override
    public TypeInformation<Row> getProducedType() {
        return Types.ROW(Types.STRING, new RawRecordDeserializationSchema().getProducedType());
    }
}
