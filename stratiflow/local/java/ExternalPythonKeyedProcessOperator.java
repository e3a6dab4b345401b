package io.stratiflow.flink;

import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeutils.TypeSerializer;
import org.apache.flink.api.java.typeutils.RowTypeInfo;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.runtime.state.VoidNamespaceSerializer;
import org.apache.flink.streaming.api.functions.python.DataStreamPythonFunctionInfo;
import org.apache.flink.streaming.api.operators.python.process.AbstractExternalDataStreamPythonFunctionOperator;

/**
 * PyFlink's keyed process operator (process mode), except that a checkpoint holds the timers its
 * last bundle registered.
 *
 * <p>Flink 2.3's operator finishes the Python bundle before a checkpoint barrier, but the timers
 * the Python function registered in that bundle reach the timer service only later, after the
 * snapshot; the keyed state changes of the same bundle are in it. After a restore, such a timer
 * never fires (a sampling window that never closes, a label that never expires). The watermark
 * path already registers them first; this does the same before the barrier. {@code
 * jobs/runtime.py} imports this class into PyFlink's gateway under the name PyFlink looks up, so
 * every keyed Python operator of the job is built from it.
 */
public class ExternalPythonKeyedProcessOperator<OUT>
        extends org.apache.flink.streaming.api.operators.python.process
                .ExternalPythonKeyedProcessOperator<OUT> {
    private static final long serialVersionUID = 1L;

    private final TypeSerializer namespaceSerializer;

    public ExternalPythonKeyedProcessOperator(
            Configuration config,
            DataStreamPythonFunctionInfo info,
            RowTypeInfo inputType,
            TypeInformation<OUT> outputType) {
        this(config, info, inputType, outputType, VoidNamespaceSerializer.INSTANCE);
    }

    public ExternalPythonKeyedProcessOperator(
            Configuration config,
            DataStreamPythonFunctionInfo info,
            RowTypeInfo inputType,
            TypeInformation<OUT> outputType,
            TypeSerializer namespaceSerializer) {
        super(config, info, inputType, outputType, namespaceSerializer);
        this.namespaceSerializer = namespaceSerializer;
    }

    @Override
    public void prepareSnapshotPreBarrier(long checkpointId) throws Exception {
        super.prepareSnapshotPreBarrier(checkpointId); // finishes the bundle
        drainUnregisteredTimers(); // its timers belong in this checkpoint
    }

    @Override
    public <T> AbstractExternalDataStreamPythonFunctionOperator<T> copy(
            DataStreamPythonFunctionInfo info, TypeInformation<T> outputType) {
        return new ExternalPythonKeyedProcessOperator<>(
                config, info, (RowTypeInfo) getInputTypeInfo(), outputType, namespaceSerializer);
    }
}
