package io.stratiflow.flink;

import java.io.BufferedInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.util.Arrays;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple5;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.connector.file.src.reader.SimpleStreamFormat;
import org.apache.flink.connector.file.src.reader.StreamFormat;
import org.apache.flink.core.fs.FSDataInputStream;
import org.apache.flink.types.Row;

/**
 * A JSONL file as keyed raw records, read in the JVM: the backtest's source.
 *
 * <p>Each non-blank line becomes {@code Row(model_key, (topic, 0, line number, bytes, true))},
 * the shape the Kafka source emits ({@link KeyedRawRecordDeserializationSchema}), with the file
 * as the topic and the 0-based line number as the offset, so a dead letter names where its
 * record is. Lines are split at {@code \n} only and lose their trailing {@code \r}/{@code \n}
 * bytes; the bytes are kept as they are (no charset decoding), exactly as the Python reader
 * {@code stratiflow.io.sources.jsonl_lines} does. The model key comes from {@link ModelKeys}, as
 * for Kafka. Not splittable: one reader per file, lines in order.
 */
public final class JsonLinesFormat extends SimpleStreamFormat<Row> {
    private static final long serialVersionUID = 1L;

    private final String topic;
    private final int maxPayloadBytes;

    public JsonLinesFormat(String topic, int maxPayloadBytes) {
        this.topic = topic;
        this.maxPayloadBytes = maxPayloadBytes;
    }

    @Override
    public StreamFormat.Reader<Row> createReader(Configuration config, FSDataInputStream stream) {
        return new LineReader(new BufferedInputStream(stream, 1 << 16), topic, maxPayloadBytes);
    }

    @Override
    public TypeInformation<Row> getProducedType() {
        return Types.ROW(Types.STRING, KeyedRawRecordDeserializationSchema.rawRecordType());
    }

    private static final class LineReader implements StreamFormat.Reader<Row> {
        private final InputStream in;
        private final String topic;
        private final int maxPayloadBytes;
        private final ByteArrayOutputStream line = new ByteArrayOutputStream(1024);
        private long number = -1;
        private boolean ended;

        LineReader(InputStream in, String topic, int maxPayloadBytes) {
            this.in = in;
            this.topic = topic;
            this.maxPayloadBytes = maxPayloadBytes;
        }

        @Override
        public Row read() throws IOException {
            while (!ended) {
                byte[] bytes = nextLine();
                if (bytes == null) {
                    return null;
                }
                int end = bytes.length;
                while (end > 0 && (bytes[end - 1] == '\r' || bytes[end - 1] == '\n')) {
                    end--;
                }
                if (isBlank(bytes, end)) {
                    continue;
                }
                byte[] value = end == bytes.length ? bytes : Arrays.copyOf(bytes, end);
                Tuple5<String, Integer, Long, byte[], Boolean> record =
                        Tuple5.of(topic, 0, number, value, true);
                return Row.of(ModelKeys.of(value, maxPayloadBytes), record);
            }
            return null;
        }

        /** The next line without its {@code \n}, or null at the end of the file. */
        private byte[] nextLine() throws IOException {
            line.reset();
            int b;
            while ((b = in.read()) != -1) {
                if (b == '\n') {
                    number++;
                    return line.toByteArray();
                }
                line.write(b);
            }
            ended = true;
            if (line.size() == 0) {
                return null;
            }
            number++;
            return line.toByteArray();
        }

        /** Python's {@code bytes.strip()} whitespace: space, \t, \n, \r, \x0b, \x0c. */
        private static boolean isBlank(byte[] bytes, int end) {
            for (int i = 0; i < end; i++) {
                byte c = bytes[i];
                if (c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != 0x0b && c != 0x0c) {
                    return false;
                }
            }
            return true;
        }

        @Override
        public void close() throws IOException {
            in.close();
        }
    }
}
