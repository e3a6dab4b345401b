"""Side-output tags shared by the operators and the job graph."""

from pyflink.common import Types
from pyflink.datastream import OutputTag

#: Rejected inputs, as dead-letter JSON strings.
DEAD_LETTERS = OutputTag("dead-letters", Types.STRING())
#: Metrics reports, as JSON strings.
METRICS = OutputTag("metrics", Types.STRING())
