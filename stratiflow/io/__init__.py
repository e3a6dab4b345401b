"""The world outside the job: Kafka clients for the CLI and tests (``kafka``), event
sources for ``stratiflow produce`` (``sources``) and the checks before a submit
(``preflight``).

Each module is imported on its own (``from stratiflow.io import kafka``): they pull in
kafka-python and River, which the rest of the CLI need not wait for.
"""

__all__ = ["kafka", "preflight", "sources"]
