package io.stratiflow.flink;

import java.io.BufferedWriter;
import java.io.IOException;
import java.io.OutputStreamWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import org.apache.flink.api.connector.sink2.Sink;
import org.apache.flink.api.connector.sink2.SinkWriter;
import org.apache.flink.api.connector.sink2.WriterInitContext;

/**
 * Writes each string as one line of a local file: the backtest's output files.
 *
 * <p>The backtest used to send every output record back to the Python client
 * ({@code execute_and_collect}) through a Python map that tagged it with its stream: two more
 * crossings of the JVM/Python boundary per record, which cost more than the model itself. This
 * sink keeps the records in the JVM. Run it at parallelism 1: one subtask owns the file, and the
 * records of each upstream subtask keep their order. The file is truncated when the writer opens;
 * there is no checkpointed state (a bounded backtest either finishes or is run again).
 */
public final class LineFileSink implements Sink<String> {
    private static final long serialVersionUID = 1L;

    private final String path;

    public LineFileSink(String path) {
        this.path = path;
    }

    @Override
    public SinkWriter<String> createWriter(WriterInitContext context) throws IOException {
        int subtask = context.getTaskInfo().getIndexOfThisSubtask();
        Path file = Paths.get(subtask == 0 ? path : path + "." + subtask);
        Path parent = file.toAbsolutePath().getParent();
        if (parent != null) {
            Files.createDirectories(parent);
        }
        return new Writer(file);
    }

    private static final class Writer implements SinkWriter<String> {
        private final BufferedWriter out;

        Writer(Path file) throws IOException {
            this.out =
                    new BufferedWriter(
                            new OutputStreamWriter(
                                    Files.newOutputStream(file), StandardCharsets.UTF_8),
                            1 << 16);
        }

        @Override
        public void write(String element, Context context) throws IOException {
            out.write(element);
            out.write('\n');
        }

        @Override
        public void flush(boolean endOfInput) throws IOException {
            out.flush();
        }

        @Override
        public void close() throws IOException {
            out.close();
        }
    }
}
