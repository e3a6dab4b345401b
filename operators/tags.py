"""Side-output tags and timer constants shared by the operators and the job graph."""

from typing import Any

from pyflink.common import Types
from pyflink.datastream import DataStream, OutputTag

from stratiflow.records import DeadLetter, to_json

#: Rejected inputs, as dead-letter JSON strings.
DEAD_LETTERS = OutputTag("dead-letters", Types.STRING())
#: Metrics reports, as JSON strings.
METRICS = OutputTag("metrics", Types.STRING())
#: Per window and model key: what the sampler saw and what it sent to training.
SAMPLING_STATS = OutputTag("sampling-stats", Types.STRING())
#: Drift warnings, drifts and model resets or swaps, as JSON strings.
MODEL_EVENTS = OutputTag("model-events", Types.STRING())
#: Label requests (``active``), as JSON strings.
LABEL_REQUESTS = OutputTag("label-requests", Types.STRING())

#: An event-time timer here fires when a bounded input ends (the final
#: watermark is Long.MAX_VALUE) and never on an unbounded one.
END_OF_INPUT = 2**63 - 2


def dead_letter(letter: DeadLetter) -> tuple[Any, str]:
    """A dead letter leaving an operator: its side output and its JSON.

    Operators pass dead letters around as :class:`~stratiflow.records.DeadLetter`
    values; this is the one place they are encoded.
    """
    return DEAD_LETTERS, to_json(letter.to_dict())


def side_output(stream: DataStream, tag: OutputTag) -> DataStream:
    """The records ``stream``'s operator emits with ``tag``, with no Python operator added.

    PyFlink's ``get_side_output`` appends an identity Python ``map``. In thread mode
    each such map is one more embedded interpreter thread state on the producing
    operator's task thread; the first one opened owns the thread's ``PyGILState``
    slot, and a pybind11 extension (scipy, imported by river) initialising in the
    operator's own thread state then waits forever for the GIL its thread holds
    (the model stayed INITIALIZING). Our tags carry a Java type, so the Java side
    output already holds what the sinks take.
    """
    return DataStream(stream._j_data_stream.getSideOutput(tag.get_java_output_tag()))
