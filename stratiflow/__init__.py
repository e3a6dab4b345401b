"""stratiflow: online learning on streams with Kafka, PyFlink and River.

The ``stratiflow`` package is the pure core: records, validation, the learner
step, metrics and configuration. It never imports PyFlink, so it is tested
without Java. ``operators/`` wraps it in Flink functions and ``jobs/`` wires
those into job graphs.
"""

__version__ = "0.1.0"

from stratiflow import _moved

_moved.install()
