"""The ``job``, ``kafka``, ``topics`` and ``snapshots`` sections: how the job runs and
what it reads and writes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, get_args

from stratiflow.config.errors import ConfigError
from stratiflow.config.fields import choice, parse_duration_ms, read_section

__all__ = [
    "DELIVERY_GUARANTEES",
    "DURATIONS",
    "EXECUTION_MODES",
    "STARTING_OFFSETS",
    "STATE_BACKENDS",
    "DeliveryGuarantee",
    "ExecutionMode",
    "JobSettings",
    "KafkaSettings",
    "SnapshotSettings",
    "StartingOffsets",
    "StateBackend",
    "Topics",
    "parse_job",
    "parse_kafka",
    "parse_snapshots",
    "parse_topics",
    "redact",
]

ExecutionMode = Literal["process", "thread"]
StateBackend = Literal["rocksdb", "hashmap"]
DeliveryGuarantee = Literal["auto", "none", "at_least_once", "exactly_once"]
StartingOffsets = Literal["earliest", "latest", "committed"]
EXECUTION_MODES: tuple[str, ...] = get_args(ExecutionMode)
STATE_BACKENDS: tuple[str, ...] = get_args(StateBackend)
DELIVERY_GUARANTEES: tuple[str, ...] = get_args(DeliveryGuarantee)
STARTING_OFFSETS: tuple[str, ...] = get_args(StartingOffsets)
_TOPIC_RE = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
# "keystore.key": ssl.keystore.key, a PEM private key given inline.
_SECRET_HINTS = ("password", "secret", "jaas", "token", "credential", "keystore.key", "sasl")
#: The fields given as durations.
DURATIONS = (
    "checkpoint_interval_ms",
    "transaction_timeout_ms",
    "restart_delay_ms",
    "input_batch_linger_ms",
)


@dataclass(frozen=True)
class JobSettings:
    """How the job runs: parallelism, checkpoints, delivery, restarts, input batching and the
    figures it gives Flink's metric system.

    Attributes
    ----------
    name
        The Flink job's name (and the default ``transactional_id_prefix``).
    parallelism
        Parallel instances of each operator (at least 1).
    checkpoint_interval_ms
        Time between checkpoints (YAML accepts ``10s``; 0: no checkpoints).
    python_execution_mode
        How PyFlink runs the Python operators: ``process`` or ``thread``.
    restart_delay_ms
        The wait between two restart attempts.
    input_batch_linger_ms
        How long a batch of input records waits to fill (see ``input_batch_size``).
    """

    name: str = "stratiflow-train-predict"
    parallelism: int = 1
    checkpoint_interval_ms: int = 10_000
    python_execution_mode: ExecutionMode = "process"
    #: ``exactly_once`` (Kafka transactions committed on each checkpoint) whenever
    #: checkpointing is on; ``at_least_once`` without checkpoints. Either can be chosen.
    delivery_guarantee: DeliveryGuarantee = "auto"
    #: Prefix of the sinks' transactional ids; it must stay the same across restarts
    #: of a job and differ between jobs (empty: the job's ``name``).
    transactional_id_prefix: str = ""
    #: ``transaction.timeout.ms`` of the exactly-once sinks: at most the broker's
    #: ``transaction.max.timeout.ms`` (15 min by default on Apache Kafka).
    transaction_timeout_ms: int = 900_000
    #: Keyed state backend: ``rocksdb`` (in Flink's distribution) or ``hashmap`` (heap).
    state_backend: StateBackend = "rocksdb"
    #: Where checkpoints go (a file:// or s3:// URI; empty: the cluster's default).
    checkpoint_dir: str = ""
    #: On failure, restart from the last checkpoint this many times, this long apart.
    restart_attempts: int = 10
    restart_delay_ms: int = 2_000
    #: Without a sampler, records cross into Python in per-key batches of up to this
    #: many (1: one at a time), each sent at the latest ``input_batch_linger_ms``
    #: after its first record arrived (processing time).
    input_batch_size: int = 256
    input_batch_linger_ms: int = 5
    #: Flink configuration keys set on the job's environment, e.g.
    #: ``python.fn-execution.bundle.size``; they win over stratiflow's own settings.
    flink: Mapping[str, str] = field(default_factory=dict)
    #: Serve Flink's metrics, stratiflow's among them, to Prometheus on this port of the job's
    #: own MiniCluster (``stratiflow submit`` without ``--jobmanager``; 0: off). A cluster
    #: serves them from its own configuration (``stratiflow local flink start
    #: --prometheus-port``, deploy/).
    prometheus_port: int = 0
    #: Each model subtask gives the first this many model keys it scores a Flink gauge of
    #: the serving model's rolling accuracy (0: none); the counters cover every key.
    gauge_keys: int = 20


@dataclass(frozen=True)
class KafkaSettings:
    """Where the job reads and writes: the brokers, the consumer group, client properties.

    Attributes
    ----------
    bootstrap_servers
        Brokers as ``host:port``, comma-separated.
    group_id
        The Kafka consumer group of the job's sources.
    starting_offsets
        Where the sources start: ``earliest``, ``latest``, or ``committed`` (the
        group's committed offsets; a partition without one starts at its earliest).
    """

    bootstrap_servers: str = "127.0.0.1:9092"
    group_id: str = "stratiflow"
    starting_offsets: StartingOffsets = "earliest"
    #: Java Kafka client properties, passed unchanged to the Flink source and sink
    #: (security settings included); the CLI translates the ones kafka-python knows.
    properties: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Topics:
    """The Kafka topics the job reads and writes, by role.

    Attributes
    ----------
    events
        Input: events (and label records, when ``labels.source`` is ``events``).
    predictions
        Output: one prediction per accepted event.
    metrics
        Output: the metrics records.
    dead_letters
        Output: rejected records, with the reason and the raw payload.
    """

    events: str = "events"
    predictions: str = "predictions"
    metrics: str = "metrics"
    dead_letters: str = "dead-letters"
    #: Per window and model key: what the sampler saw and what the model trained on.
    sampling_stats: str = "sampling-stats"
    #: Label records, when ``labels.source`` is ``topic``.
    labels: str = "labels"
    #: Output, with a ``drift.detector``: drift warnings, drifts and model resets or swaps.
    model_events: str = "model-events"
    #: Output, with ``active.strategy``: the label requests.
    label_requests: str = "label-requests"


@dataclass(frozen=True)
class SnapshotSettings:
    """Signed model snapshots (see :mod:`stratiflow.snapshots`)."""

    #: Start every model key from this snapshot instead of an untrained model.
    warm_start: str = ""
    #: The environment variable holding the signing key (never the key itself).
    key_env: str = "STRATIFLOW_SNAPSHOT_KEY"


def parse_job(raw: dict[str, Any]) -> JobSettings:
    """The ``job`` section, checked."""
    job = read_section(raw, "job", JobSettings)
    if job.parallelism < 1:
        raise ConfigError("job.parallelism", "must be at least 1")
    job = replace(
        job,
        checkpoint_interval_ms=parse_duration_ms(
            job.checkpoint_interval_ms, "job.checkpoint_interval_ms"
        ),
    )
    job = replace(
        job, restart_delay_ms=parse_duration_ms(job.restart_delay_ms, "job.restart_delay_ms")
    )
    job = replace(
        job,
        input_batch_linger_ms=parse_duration_ms(
            job.input_batch_linger_ms, "job.input_batch_linger_ms"
        ),
    )
    if job.input_batch_size < 1:
        raise ConfigError("job.input_batch_size", "must be at least 1 (1: no batching)")
    if not 0 <= job.prometheus_port <= 65535:
        raise ConfigError(
            "job.prometheus_port", f"must be a TCP port or 0 (off), got {job.prometheus_port}"
        )
    if job.gauge_keys < 0:
        raise ConfigError("job.gauge_keys", "must be 0 (no accuracy gauges) or more")
    if not isinstance(job.flink, Mapping):
        raise ConfigError("job.flink", "must be a mapping of Flink configuration keys")
    job = replace(job, flink={str(k): _flink_value(v) for k, v in job.flink.items()})
    choice(job.python_execution_mode, EXECUTION_MODES, "job.python_execution_mode")
    choice(job.state_backend, STATE_BACKENDS, "job.state_backend")
    if job.restart_attempts < 0:
        raise ConfigError("job.restart_attempts", "must be 0 (fail at once) or more")
    if job.delivery_guarantee == "auto":
        job = replace(
            job,
            delivery_guarantee="exactly_once" if job.checkpoint_interval_ms else "at_least_once",
        )
    choice(job.delivery_guarantee, DELIVERY_GUARANTEES, "job.delivery_guarantee")
    if not job.transactional_id_prefix.strip():
        job = replace(job, transactional_id_prefix=job.name)
    job = replace(
        job,
        transaction_timeout_ms=parse_duration_ms(
            job.transaction_timeout_ms, "job.transaction_timeout_ms"
        ),
    )
    if job.delivery_guarantee == "exactly_once" and (
        job.transaction_timeout_ms <= job.checkpoint_interval_ms
    ):
        raise ConfigError(
            "job.transaction_timeout_ms",
            "must be longer than job.checkpoint_interval_ms (a transaction stays open "
            "from one checkpoint to the next)",
        )
    if job.delivery_guarantee == "exactly_once" and job.checkpoint_interval_ms == 0:
        raise ConfigError(
            "job.delivery_guarantee",
            "exactly_once needs checkpointing (checkpoint_interval_ms > 0)",
        )
    return job


def parse_kafka(raw: dict[str, Any]) -> KafkaSettings:
    """The ``kafka`` section, checked."""
    kafka = read_section(raw, "kafka", KafkaSettings)
    if not kafka.bootstrap_servers.strip():
        raise ConfigError("kafka.bootstrap_servers", "must name at least one broker host:port")
    choice(kafka.starting_offsets, STARTING_OFFSETS, "kafka.starting_offsets")
    props = kafka.properties
    if not isinstance(props, Mapping):
        raise ConfigError("kafka.properties", "must be a mapping of Kafka client properties")
    kafka = replace(kafka, properties={str(k): str(v) for k, v in props.items()})
    return kafka


def parse_topics(raw: dict[str, Any]) -> Topics:
    """The ``topics`` section, checked."""
    topics = read_section(raw, "topics", Topics)
    for name in Topics.__dataclass_fields__:
        value = getattr(topics, name)
        if not isinstance(value, str) or not _TOPIC_RE.match(value):
            raise ConfigError(
                f"topics.{name}",
                f"needs a topic name (letters, digits, '.', '_', '-'), got {value!r}",
            )
    return topics


def parse_snapshots(raw: dict[str, Any]) -> SnapshotSettings:
    """The ``snapshots`` section (the warm-start snapshot is verified with the model)."""
    return read_section(raw, "snapshots", SnapshotSettings)


def redact(properties: Mapping[str, Any]) -> dict[str, Any]:
    """Kafka properties safe to print: values of secret-looking keys are masked.

    A key is secret-looking when it contains ``password``, ``secret``, ``jaas``,
    ``token``, ``credential``, ``keystore.key`` or ``sasl`` (any case), except
    ``security.protocol`` and the ``*.mechanism`` keys.

    Parameters
    ----------
    properties
        Kafka client properties, e.g. ``kafka.properties``; not changed.

    Returns
    -------
    dict[str, Any]
        A copy with each secret-looking key's value replaced by ``***``.

    Examples
    --------
    >>> redact({"security.protocol": "SASL_SSL", "sasl.jaas.config": "user=bob password=x"})
    {'security.protocol': 'SASL_SSL', 'sasl.jaas.config': '***'}
    """
    return {
        k: "***"
        if any(h in k.lower() for h in _SECRET_HINTS)
        and k != "security.protocol"
        and not k.lower().endswith(".mechanism")
        else v
        for k, v in properties.items()
    }


def _flink_value(value: Any) -> str:
    """Flink reads every option as a string; YAML booleans become ``true``/``false``."""
    return str(value).lower() if isinstance(value, bool) else str(value)
