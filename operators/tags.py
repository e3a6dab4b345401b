"""Side-output tags and timer constants shared by the operators and the job graph."""

from pyflink.common import Types
from pyflink.datastream import OutputTag

#: Rejected inputs, as dead-letter JSON strings.
DEAD_LETTERS = OutputTag("dead-letters", Types.STRING())
#: Metrics reports, as JSON strings.
METRICS = OutputTag("metrics", Types.STRING())
#: Per window and model key: what the sampler saw and what it sent to training.
SAMPLING_STATS = OutputTag("sampling-stats", Types.STRING())

#: An event-time timer here fires when a bounded input ends (the final
#: watermark is Long.MAX_VALUE) and never on an unbounded one.
END_OF_INPUT = 2**63 - 2
