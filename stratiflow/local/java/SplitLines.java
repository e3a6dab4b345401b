package io.stratiflow.flink;

import org.apache.flink.api.common.functions.FlatMapFunction;
import org.apache.flink.util.Collector;

/**
 * Splits a newline-joined batch of records into one record per line (empty lines are dropped).
 *
 * <p>The model operator emits the predictions of one input batch as a single string, their JSON
 * lines joined with {@code \n}: PyFlink pays a fixed cost per element it hands back to the JVM (a
 * row wrapping each result, its encoding, the data channel, the JVM-side decoding), so one
 * element per batch pays it once. JSON text never holds a raw newline (it is escaped inside
 * strings), so a line is exactly one record. Chained to the model operator, this restores the
 * one-record-per-element stream the sinks expect.
 */
public final class SplitLines implements FlatMapFunction<String, String> {
    private static final long serialVersionUID = 1L;

    @Override
    public void flatMap(String lines, Collector<String> out) {
        int length = lines.length();
        int start = 0;
        while (start < length) {
            int end = lines.indexOf('\n', start);
            if (end < 0) {
                end = length;
            }
            if (end > start) {
                out.collect(lines.substring(start, end));
            }
            start = end + 1;
        }
    }
}
