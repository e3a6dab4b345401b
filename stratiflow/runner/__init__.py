"""Running the core without Flink: what happens to each item of a key (``keyed``), the
metrics record (``report``), and the whole job's semantics in one loop (``replay``).
"""

from __future__ import annotations

from stratiflow.runner.keyed import (
    Emitted,
    Item,
    final_report,
    handle,
    handle_events,
)
from stratiflow.runner.replay import (
    ReplayResult,
    replay,
)
from stratiflow.runner.report import (
    metrics_report,
)

__all__ = [
    "Emitted",
    "Item",
    "ReplayResult",
    "final_report",
    "handle",
    "handle_events",
    "metrics_report",
    "replay",
]
