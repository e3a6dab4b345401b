package io.stratiflow.flink;

import java.util.HashMap;
import java.util.Map;
import org.apache.flink.connector.kafka.source.enumerator.initializer.OffsetsInitializer;
import org.apache.kafka.common.TopicPartition;

/**
 * Builds an {@link OffsetsInitializer} from {@code "topic:partition:offset,..."}.
 *
 * <p>PyFlink's {@code KafkaOffsetsInitializer.offsets} looks up shaded Kafka classes the connector
 * jar lacks, and py4j turns small Python ints into Java Integers where Longs are needed; a string
 * spec sidesteps both.
 */
public final class ExplicitOffsets {
    private ExplicitOffsets() {}

    public static OffsetsInitializer parse(String spec) {
        Map<TopicPartition, Long> offsets = new HashMap<>();
        for (String item : spec.split(",")) {
            if (item.isEmpty()) {
                continue;
            }
            int last = item.lastIndexOf(':');
            int middle = item.lastIndexOf(':', last - 1);
            String topic = item.substring(0, middle);
            int partition = Integer.parseInt(item.substring(middle + 1, last));
            long offset = Long.parseLong(item.substring(last + 1));
            offsets.put(new TopicPartition(topic, partition), offset);
        }
        return OffsetsInitializer.offsets(offsets);
    }
}
