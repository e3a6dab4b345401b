package io.stratiflow.flink;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.flink.api.common.operators.ProcessingTimeService.ProcessingTimeCallback;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.tuple.Tuple5;
import org.apache.flink.streaming.api.operators.AbstractStreamOperator;
import org.apache.flink.streaming.api.operators.BoundedOneInput;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;
import org.apache.flink.streaming.api.watermark.Watermark;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.types.Row;

/**
 * Groups keyed raw records into per-key batches before they cross into Python.
 *
 * <p>Input: {@code Row(model_key, record)} from the source, the record being a
 * {@link KeyedRawRecordDeserializationSchema#rawRecordType}. Output: {@code Row(model_key,
 * record[])}, the key's records in arrival order. A Python operator pays a fixed cost per element
 * (encoding, the Beam data channel, a call into the user function, a keyed-state context switch);
 * one element per batch pays it once for many records.
 *
 * <p>A key's batch is emitted when it holds {@code maxRecords}, when its oldest record has waited
 * {@code lingerMs} of processing time, before every watermark, before every checkpoint barrier
 * and when the input ends ({@link #endInput}). So the operator keeps no state: nothing is
 * buffered when a checkpoint is taken, and a restore replays from the source's offsets as before.
 * Chain it to the source (same parallelism) so records reach it without serialization.
 */
public final class RecordBatcher extends AbstractStreamOperator<Row>
        implements OneInputStreamOperator<Row, Row>, BoundedOneInput, ProcessingTimeCallback {
    private static final long serialVersionUID = 1L;

    private final int maxRecords;
    private final long lingerMs;

    /** Insertion-ordered, so batches of different keys leave in the order they were started. */
    private transient Map<Object, List<Tuple5<String, Integer, Long, byte[], Boolean>>> pending;

    private transient boolean timerSet;

    public RecordBatcher(int maxRecords, long lingerMs) {
        if (maxRecords < 1 || lingerMs < 0) {
            throw new IllegalArgumentException("maxRecords must be >= 1 and lingerMs >= 0");
        }
        this.maxRecords = maxRecords;
        this.lingerMs = lingerMs;
    }

    /** The Python-facing type of a batch: {@code Row(STRING, raw record[])}. */
    public static TypeInformation<Row> producedType() {
        return Types.ROW(
                Types.STRING,
                Types.OBJECT_ARRAY(KeyedRawRecordDeserializationSchema.rawRecordType()));
    }

    @Override
    public void open() throws Exception {
        super.open();
        pending = new LinkedHashMap<>();
        timerSet = false;
    }

    @Override
    @SuppressWarnings("unchecked")
    public void processElement(StreamRecord<Row> element) throws Exception {
        Row row = element.getValue();
        Object key = row.getField(0);
        List<Tuple5<String, Integer, Long, byte[], Boolean>> batch = pending.get(key);
        if (batch == null) {
            batch = new ArrayList<>();
            pending.put(key, batch);
        }
        batch.add((Tuple5<String, Integer, Long, byte[], Boolean>) row.getField(1));
        if (batch.size() >= maxRecords) {
            pending.remove(key);
            emit(key, batch);
        } else if (lingerMs == 0) {
            flushAll();
        } else if (!timerSet) {
            timerSet = true;
            long now = getProcessingTimeService().getCurrentProcessingTime();
            getProcessingTimeService().registerTimer(now + lingerMs, this);
        }
    }

    @Override
    public void onProcessingTime(long time) throws Exception {
        timerSet = false;
        flushAll();
    }

    @Override
    public void processWatermark(Watermark mark) throws Exception {
        flushAll();
        super.processWatermark(mark);
    }

    @Override
    public void prepareSnapshotPreBarrier(long checkpointId) throws Exception {
        flushAll();
        super.prepareSnapshotPreBarrier(checkpointId);
    }

    /** End of a bounded input, or stop-with-savepoint with drain. */
    @Override
    public void endInput() throws Exception {
        flushAll();
    }

    private void flushAll() {
        if (pending.isEmpty()) {
            return;
        }
        for (Map.Entry<Object, List<Tuple5<String, Integer, Long, byte[], Boolean>>> entry :
                pending.entrySet()) {
            emit(entry.getKey(), entry.getValue());
        }
        pending.clear();
    }

    @SuppressWarnings("unchecked")
    private void emit(Object key, List<Tuple5<String, Integer, Long, byte[], Boolean>> batch) {
        Tuple5<String, Integer, Long, byte[], Boolean>[] records = batch.toArray(new Tuple5[0]);
        output.collect(new StreamRecord<>(Row.of(key, records)));
    }
}
