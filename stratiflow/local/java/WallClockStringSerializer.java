package io.stratiflow.flink;

import java.nio.charset.StandardCharsets;
import org.apache.flink.connector.kafka.sink.KafkaRecordSerializationSchema;
import org.apache.kafka.clients.producer.ProducerRecord;

/**
 * Writes each string as a UTF-8 value to one topic, without a key, stamped by the producer's
 * clock.
 *
 * <p>Flink's own serializer stamps a Kafka record with the Flink record's timestamp. Records a
 * timer emits at the end of input carry the final watermark (Long.MAX_VALUE - 1) as theirs, and
 * Apache Kafka (4.x: {@code log.message.timestamp.after.max.ms}, one hour by default) refuses a
 * timestamp that far ahead, which fails the sink. A prediction carries its event's {@code ts} in
 * its value; the record's timestamp says when it was written.
 */
public final class WallClockStringSerializer implements KafkaRecordSerializationSchema<String> {
    private static final long serialVersionUID = 1L;

    private final String topic;

    public WallClockStringSerializer(String topic) {
        this.topic = topic;
    }

    @Override
    public ProducerRecord<byte[], byte[]> serialize(
            String element, KafkaSinkContext context, Long timestamp) {
        return new ProducerRecord<>(
                topic, null, null, null, element.getBytes(StandardCharsets.UTF_8));
    }
}
