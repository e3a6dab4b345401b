"""The job configuration: one frozen, typed object built from YAML, env and CLI.

Every field is checked when the config is loaded, so a bad config fails at
submit time with a message naming the field, never halfway through a job.

>>> cfg = load_config({"model": [{"linear_model.LogisticRegression": {"l2": 0.0}}]})
>>> cfg.topics.events, cfg.metrics.report_every, cfg.sampling.strategy
('events', 500, 'none')
>>> load_config({"metrics": {"report_evry": 5}})
Traceback (most recent call last):
...
stratiflow.config.errors.ConfigError: metrics.report_evry: unknown field (expected one of: ...)
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, get_args

import yaml

from stratiflow.config.errors import ConfigError
from stratiflow.config.model import DEFAULT_MODEL, ModelStep, build_model, is_binary, model_steps
from stratiflow.records import class_key
from stratiflow.snapshots import SnapshotError, key_from_env, load_snapshot

# Closed option sets: the type says what a field may hold; the tuple is what the checks list.
LabelSource = Literal["events", "topic", "none"]
UpdateMode = Literal["per_sample", "micro_batch", "periodic"]
SamplingStrategy = Literal["none", "uniform", "balanced", "target", "undersample", "oversample"]
SamplingOrder = Literal["event_time", "arrival"]
ExecutionMode = Literal["process", "thread"]
StateBackend = Literal["rocksdb", "hashmap"]
DeliveryGuarantee = Literal["auto", "none", "at_least_once", "exactly_once"]
StartingOffsets = Literal["earliest", "latest", "committed"]
MissingPolicy = Literal["drop", "impute", "reject"]
OutlierPolicy = Literal["keep", "clip", "reject"]
UnknownFeaturePolicy = Literal["keep", "drop", "reject"]
FeatureType = Literal["number", "string", "boolean"]


@dataclass(frozen=True)
class JobSettings:
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


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: str = "127.0.0.1:9092"
    group_id: str = "stratiflow"
    starting_offsets: StartingOffsets = "earliest"
    #: Java Kafka client properties, passed unchanged to the Flink source and sink
    #: (security settings included); the CLI translates the ones kafka-python knows.
    properties: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Topics:
    events: str = "events"
    predictions: str = "predictions"
    metrics: str = "metrics"
    dead_letters: str = "dead-letters"
    #: Per window and model key: what the sampler saw and what the model trained on.
    sampling_stats: str = "sampling-stats"
    #: Label records, when ``labels.source`` is ``topic``.
    labels: str = "labels"


@dataclass(frozen=True)
class SamplingSettings:
    """How the training stream is sampled per class (see :mod:`stratiflow.sampling.windows`)."""

    strategy: SamplingStrategy = "none"
    #: Event-time tumbling window length, in ms (YAML accepts ``10s``).
    window: int = 10_000
    #: Watermark bound: how far out of order events may arrive and still be on time.
    max_out_of_orderness: int = 1_000
    #: Extra time a window stays open after the watermark passes its end.
    allowed_lateness: int = 0
    #: A source split without events for this long stops holding the watermark back.
    idle_timeout: int = 10_000
    #: How often watermarks are emitted (Flink's auto-watermark interval).
    watermark_interval: int = 100
    #: ``event_time``: an event is predicted by the model that learned every window
    #: closed before its time (reproducible at any speed; waits for the watermark).
    #: ``arrival``: predicted at once by whatever the model has learned so far.
    order: SamplingOrder = "event_time"
    #: Reservoir size per (model key, class, window); bounds the sampler's memory.
    capacity: int = 1_000
    #: ``uniform``: fraction of each class kept.
    rate: float = 0.1
    #: ``balanced``/``target``: training examples per window and model key.
    budget: int = 0
    #: ``balanced``/``target``: top up a short class by drawing with replacement.
    oversample: bool = False
    #: ``oversample``: interpolate new minority examples instead of duplicating.
    synthetic: bool = False
    #: ``synthetic``: same-class neighbours an interpolation partner is drawn from.
    neighbours: int = 5
    #: ``target``: the class mix, ``{class: share}``; shares sum to 1.
    target: Mapping[str, float] = field(default_factory=dict)
    #: ``balanced``/``target``: weight of the past in the per-class frequency
    #: estimate (0 = use only the current window).
    decay: float = 0.0
    #: The classes the job expects; when given, ``target`` may only name these.
    classes: tuple[str, ...] = ()


@dataclass(frozen=True)
class MetricsSettings:
    """What the metrics topic reports (see :mod:`stratiflow.runner.report`)."""

    #: A report per key after every this many scored predictions.
    report_every: int = 500
    #: Rolling metrics over the last N scored predictions (0: none).
    window: int = 1_000
    #: Fading factor in (0, 1) for prequential metrics with forgetting (``null``: none).
    fading: float | None = None
    #: The positive class for ROC AUC (default: ``true`` for binary models, else no AUC).
    positive_class: str | int | bool | None = None
    #: Score bins of the ROC AUC histograms (resolution 1/auc_bins).
    auc_bins: int = 1_000
    #: How many reports the stability spread (std, range) looks back over.
    stability_reports: int = 10
    #: Probe events' features, re-predicted at each report to measure volatility.
    probe: tuple[Mapping[str, Any], ...] = ()


@dataclass(frozen=True)
class LabelsSettings:
    """Delayed labels: label records joined to earlier predictions by event id."""

    #: ``events``: label records arrive on the events topic (one ordered stream);
    #: ``topic``: on ``topics.labels``; ``none``: labels only arrive inside events.
    source: LabelSource = "events"
    #: Event time a prediction waits for its label (and an early label for its
    #: event, and a joined id is remembered to spot duplicates).
    ttl: int = 3_600_000
    #: Per model key: ids held at most (waiting or remembered); the oldest go first.
    max_pending: int = 100_000


@dataclass(frozen=True)
class UpdateSettings:
    """When the model learns the examples it is given (see :mod:`stratiflow.learning.updates`)."""

    #: ``per_sample``, ``micro_batch`` (N examples or T of event time) or ``periodic`` (every T).
    mode: UpdateMode = "per_sample"
    #: ``micro_batch``: examples per batch.
    batch_size: int = 32
    #: ``micro_batch``: flush a batch this old (event time; 0: size only);
    #: ``periodic``: learn every this much event time.
    interval: int = 0


@dataclass(frozen=True)
class FeatureRule:
    """How one declared feature is checked and cleaned (:mod:`stratiflow.validation.cleaning`)."""

    #: ``number``, ``string`` or ``boolean`` (``None``: any).
    type: FeatureType | None = None
    min: float | None = None
    max: float | None = None
    #: The only values accepted (empty: any).
    allowed: tuple[Any, ...] = ()
    #: A missing/null value: ``drop`` (the model sees it missing), ``impute``, ``reject``.
    missing: MissingPolicy = "drop"
    #: Numbers outside the learned quantile range: ``keep``, ``clip`` or ``reject``.
    outliers: OutlierPolicy = "keep"
    #: The quantiles that bound the normal range.
    quantiles: tuple[float, float] = (0.01, 0.99)
    #: Widen that range by this multiple of its width on each side (Tukey-style fences).
    fence: float = 0.0


@dataclass(frozen=True)
class ValidationSettings:
    max_payload_bytes: int = 1_048_576
    max_features: int = 10_000
    #: Declared features and their rules (empty: no per-feature checks).
    features: Mapping[str, FeatureRule] = field(default_factory=dict)
    #: Features not declared: ``keep``, ``drop`` or ``reject`` (only with ``features``).
    unknown_features: UnknownFeaturePolicy = "keep"
    #: Values a feature's quantiles are learned from before outlier rules apply.
    outlier_warmup: int = 100
    #: Events and labels stamped further than this ahead of the wall clock are
    #: dead-lettered (``ts_in_future``); 0 turns the check off.
    max_future_ms: int = 86_400_000


@dataclass(frozen=True)
class SnapshotSettings:
    """Signed model snapshots (see :mod:`stratiflow.snapshots`)."""

    #: Start every model key from this snapshot instead of an untrained model.
    warm_start: str = ""
    #: The environment variable holding the signing key (never the key itself).
    key_env: str = "STRATIFLOW_SNAPSHOT_KEY"


@dataclass(frozen=True)
class Config:
    """A complete, validated job configuration."""

    job: JobSettings = field(default_factory=JobSettings)
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    topics: Topics = field(default_factory=Topics)
    model: tuple[ModelStep, ...] = DEFAULT_MODEL
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    validation: ValidationSettings = field(default_factory=ValidationSettings)
    seed: int = 42
    labels: LabelsSettings = field(default_factory=LabelsSettings)
    update: UpdateSettings = field(default_factory=UpdateSettings)
    snapshots: SnapshotSettings = field(default_factory=SnapshotSettings)

    def to_dict(self) -> dict[str, Any]:
        """A plain mapping that :func:`load_config` turns back into this config."""
        return {
            "job": {**vars_of(self.job), "flink": dict(self.job.flink)},
            "kafka": {**vars_of(self.kafka), "properties": dict(self.kafka.properties)},
            "topics": vars_of(self.topics),
            "model": [{s.path: dict(s.params)} for s in self.model],
            "sampling": {
                **vars_of(self.sampling),
                "target": dict(self.sampling.target),
                "classes": list(self.sampling.classes),
            },
            "metrics": {
                **vars_of(self.metrics),
                "probe": [dict(p) for p in self.metrics.probe],
            },
            "validation": {
                **vars_of(self.validation),
                "features": {
                    name: {
                        **vars_of(rule),
                        "allowed": list(rule.allowed),
                        "quantiles": list(rule.quantiles),
                    }
                    for name, rule in self.validation.features.items()
                },
            },
            "seed": self.seed,
            "labels": vars_of(self.labels),
            "update": vars_of(self.update),
            "snapshots": vars_of(self.snapshots),
        }


def vars_of(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__dataclass_fields__}


_TOPIC_RE = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
DURATION_PATTERN = r"^\s*(\d+)\s*(ms|s|m|h)?\s*$"
_DURATION_RE = re.compile(DURATION_PATTERN)
_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# "keystore.key": ssl.keystore.key, a PEM private key given inline.
_SECRET_HINTS = ("password", "secret", "jaas", "token", "credential", "keystore.key", "sasl")
_SECTIONS = (
    "job",
    "kafka",
    "topics",
    "model",
    "sampling",
    "metrics",
    "validation",
    "seed",
    "labels",
    "update",
    "snapshots",
)
LABEL_SOURCES: tuple[str, ...] = get_args(LabelSource)
UPDATE_MODES: tuple[str, ...] = get_args(UpdateMode)
SAMPLING_STRATEGIES: tuple[str, ...] = get_args(SamplingStrategy)
_SAMPLING_DURATIONS = (
    "window",
    "max_out_of_orderness",
    "allowed_lateness",
    "idle_timeout",
    "watermark_interval",
)
#: Per section, the fields given as durations (``500ms``, ``10s``, ``5m``, ``1h`` or ms).
DURATION_FIELDS: Mapping[str, tuple[str, ...]] = {
    "job": (
        "checkpoint_interval_ms",
        "transaction_timeout_ms",
        "restart_delay_ms",
        "input_batch_linger_ms",
    ),
    "sampling": _SAMPLING_DURATIONS,
    "labels": ("ttl",),
    "update": ("interval",),
    "validation": ("max_future_ms",),
}
SAMPLING_ORDERS: tuple[str, ...] = get_args(SamplingOrder)
EXECUTION_MODES: tuple[str, ...] = get_args(ExecutionMode)
STATE_BACKENDS: tuple[str, ...] = get_args(StateBackend)
DELIVERY_GUARANTEES: tuple[str, ...] = get_args(DeliveryGuarantee)
STARTING_OFFSETS: tuple[str, ...] = get_args(StartingOffsets)


def load_config(
    source: str | Path | Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    check_model: bool = True,
) -> Config:
    """Build a :class:`Config` from a YAML file or mapping, then apply overrides.

    Parameters
    ----------
    source
        A YAML file path, an already-parsed mapping, or ``None`` for all defaults.
    overrides
        Dotted paths to values, e.g. ``{"kafka.bootstrap_servers": "host:9092"}``
        (what ``--set`` and ``--bootstrap-servers`` on the CLI produce).
    environ
        Where ``${VAR}`` and ``${VAR:-default}`` in string values are looked up
        (defaults to ``os.environ``); secrets stay out of the YAML this way.
    check_model
        Instantiate the model once so bad estimators or parameters fail here.
    """
    if source is None:
        raw: dict[str, Any] = {}
    elif isinstance(source, Mapping):
        raw = _deep_copy(source)
    else:
        path = Path(source)
        try:
            loaded = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise ConfigError("", f"config file {path} does not exist") from None
        except yaml.YAMLError as exc:
            raise ConfigError("", f"{path} is not valid YAML: {exc}") from None
        raw = loaded if loaded is not None else {}
    if not isinstance(raw, dict):
        raise ConfigError("", "the config must be a mapping of sections")
    for dotted, value in (overrides or {}).items():
        _set_dotted(raw, dotted, value)
    raw = _expand_env(raw, os.environ if environ is None else environ, "")
    return _build(raw, check_model=check_model)


def load_cli_config(
    path: str | Path | None,
    set_items: list[str] | None = None,
    bootstrap_servers: str | None = None,
    *,
    check_model: bool = True,
) -> Config:
    """A config from ``--config``, repeated ``--set PATH=VALUE`` and ``--bootstrap-servers``.

    Values after ``=`` are read as YAML, so ``--set metrics.report_every=100`` is an int.
    """
    overrides: dict[str, Any] = {}
    for item in set_items or []:
        dotted, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(item, "expected PATH=VALUE")
        overrides[dotted] = yaml.safe_load(value)
    if bootstrap_servers:
        overrides["kafka.bootstrap_servers"] = bootstrap_servers
    return load_config(path, overrides, check_model=check_model)


def with_overrides(cfg: Config, overrides: Mapping[str, Any]) -> Config:
    """A copy of ``cfg`` with dotted-path overrides applied and re-validated."""
    return load_config(cfg.to_dict(), overrides)


def parse_duration_ms(value: Any, path: str) -> int:
    """Milliseconds from ``250``, ``"250ms"``, ``"10s"``, ``"5m"`` or ``"1h"``.

    >>> parse_duration_ms("10s", "x"), parse_duration_ms(250, "x")
    (10000, 250)
    """
    if isinstance(value, bool):
        raise ConfigError(path, f"expected a duration such as 10s, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ConfigError(path, "a duration cannot be negative")
        return value
    if isinstance(value, str):
        match = _DURATION_RE.match(value)
        if match:
            number, unit = int(match.group(1)), match.group(2) or "ms"
            return number * {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}[unit]
    raise ConfigError(path, f"expected a duration such as 500ms, 10s or 5m, got {value!r}")


def redact(properties: Mapping[str, Any]) -> dict[str, Any]:
    """Kafka properties safe to print: values of secret-looking keys are masked.

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


# -- building -----------------------------------------------------------------------------


def _build(raw: dict[str, Any], *, check_model: bool) -> Config:
    _no_unknown(raw, _SECTIONS, "")
    job = _section(raw, "job", JobSettings)
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
    if not isinstance(job.flink, Mapping):
        raise ConfigError("job.flink", "must be a mapping of Flink configuration keys")
    job = replace(job, flink={str(k): _flink_value(v) for k, v in job.flink.items()})
    _choice(job.python_execution_mode, EXECUTION_MODES, "job.python_execution_mode")
    _choice(job.state_backend, STATE_BACKENDS, "job.state_backend")
    if job.restart_attempts < 0:
        raise ConfigError("job.restart_attempts", "must be 0 (fail at once) or more")
    if job.delivery_guarantee == "auto":
        job = replace(
            job,
            delivery_guarantee="exactly_once" if job.checkpoint_interval_ms else "at_least_once",
        )
    _choice(job.delivery_guarantee, DELIVERY_GUARANTEES, "job.delivery_guarantee")
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

    kafka = _section(raw, "kafka", KafkaSettings)
    if not kafka.bootstrap_servers.strip():
        raise ConfigError("kafka.bootstrap_servers", "must name at least one broker host:port")
    _choice(kafka.starting_offsets, STARTING_OFFSETS, "kafka.starting_offsets")
    props = kafka.properties
    if not isinstance(props, Mapping):
        raise ConfigError("kafka.properties", "must be a mapping of Kafka client properties")
    kafka = replace(kafka, properties={str(k): str(v) for k, v in props.items()})

    topics = _section(raw, "topics", Topics)
    for name in Topics.__dataclass_fields__:
        value = getattr(topics, name)
        if not isinstance(value, str) or not _TOPIC_RE.match(value):
            raise ConfigError(
                f"topics.{name}",
                f"needs a topic name (letters, digits, '.', '_', '-'), got {value!r}",
            )

    sampling = _sampling(raw)

    metrics = _metrics(raw)
    labels = _section(raw, "labels", LabelsSettings, durations=DURATION_FIELDS["labels"])
    labels = replace(labels, ttl=parse_duration_ms(labels.ttl, "labels.ttl"))
    _choice(labels.source, LABEL_SOURCES, "labels.source")
    if labels.ttl < 1:
        raise ConfigError("labels.ttl", "must be a positive duration")
    if labels.max_pending < 1:
        raise ConfigError("labels.max_pending", "must be at least 1")
    update = _update(raw)

    validation = _validation(raw)

    seed = raw.get("seed", 42)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError("seed", f"must be an integer, got {seed!r}")

    model = model_steps(raw.get("model"))
    snapshots = _section(raw, "snapshots", SnapshotSettings)
    cfg = Config(
        job, kafka, topics, model, sampling, metrics, validation, seed, labels, update, snapshots
    )
    if check_model:
        model = build_model(cfg.model)
        if snapshots.warm_start:
            try:  # verified now, so a bad snapshot fails at submit, not in a TaskManager
                model = load_snapshot(
                    Path(snapshots.warm_start), key=key_from_env(snapshots.key_env)
                ).model
            except SnapshotError as exc:
                raise ConfigError("snapshots.warm_start", str(exc)) from None
        if is_binary(model) and sampling.strategy == "target":
            _known_classes(
                sampling.target, ("false", "true", "0", "1"), "the model is binary, its classes are"
            )
    return cfg


def _metrics(raw: dict[str, Any]) -> MetricsSettings:
    section = raw.get("metrics") or {}
    probe = section.get("probe", ()) if isinstance(section, dict) else ()
    fading = section.get("fading") if isinstance(section, dict) else None
    positive = section.get("positive_class") if isinstance(section, dict) else None
    rest = {k: v for k, v in section.items() if k not in ("probe", "fading", "positive_class")}
    metrics = _section({"metrics": rest}, "metrics", MetricsSettings)
    if metrics.report_every < 1:
        raise ConfigError("metrics.report_every", "must be at least 1")
    if metrics.window < 0:
        raise ConfigError("metrics.window", "must be 0 (no rolling metrics) or more")
    if metrics.auc_bins < 2:
        raise ConfigError("metrics.auc_bins", "must be at least 2")
    if metrics.stability_reports < 2:
        raise ConfigError("metrics.stability_reports", "must be at least 2")
    if fading is not None and (
        isinstance(fading, bool) or not isinstance(fading, int | float) or not 0 < fading < 1
    ):
        raise ConfigError("metrics.fading", f"must be a number between 0 and 1, got {fading!r}")
    if positive is not None and (
        isinstance(positive, float) or not isinstance(positive, str | int)
    ):
        raise ConfigError("metrics.positive_class", f"must be a class label, got {positive!r}")
    if probe is None:
        probe = ()
    if not isinstance(probe, list | tuple):
        raise ConfigError("metrics.probe", "must be a list of feature mappings")
    for i, features in enumerate(probe):
        bad = not isinstance(features, dict) or not features
        if not bad:
            bad = any(
                not isinstance(name, str)
                or (value is not None and not isinstance(value, int | float | str))
                for name, value in features.items()
            )
        if bad:
            raise ConfigError(
                f"metrics.probe[{i}]", "must be a non-empty mapping of feature name to value"
            )
    return replace(
        metrics,
        fading=None if fading is None else float(fading),
        positive_class=positive,
        probe=tuple(dict(p) for p in probe),
    )


MISSING_POLICIES: tuple[str, ...] = get_args(MissingPolicy)
OUTLIER_POLICIES: tuple[str, ...] = get_args(OutlierPolicy)
UNKNOWN_FEATURE_POLICIES: tuple[str, ...] = get_args(UnknownFeaturePolicy)
FEATURE_TYPES: tuple[str, ...] = get_args(FeatureType)


def _validation(raw: dict[str, Any]) -> ValidationSettings:
    section = raw.get("validation") or {}
    if not isinstance(section, dict):
        raise ConfigError("validation", f"must be a mapping, got {type(section).__name__}")
    rules = section.get("features") or {}
    rest = {k: v for k, v in section.items() if k != "features"}
    validation = _section({"validation": rest}, "validation", ValidationSettings)
    if validation.max_payload_bytes < 1:
        raise ConfigError("validation.max_payload_bytes", "must be at least 1")
    validation = replace(
        validation,
        max_future_ms=parse_duration_ms(validation.max_future_ms, "validation.max_future_ms"),
    )
    if validation.outlier_warmup < 1:
        raise ConfigError("validation.outlier_warmup", "must be at least 1")
    _choice(validation.unknown_features, UNKNOWN_FEATURE_POLICIES, "validation.unknown_features")
    if not isinstance(rules, dict):
        raise ConfigError("validation.features", "must map feature names to rules")
    parsed = {}
    for name, given in rules.items():
        where = f"validation.features.{name}"
        given = dict(given or {})
        allowed = given.pop("allowed", ())
        quantiles = given.pop("quantiles", (0.01, 0.99))
        kind = given.pop("type", None)
        bounds = {b: given.pop(b, None) for b in ("min", "max")}
        rule = _section({where: given}, where, FeatureRule)
        if kind is not None:
            _choice(kind, FEATURE_TYPES, f"{where}.type")
        _choice(rule.missing, MISSING_POLICIES, f"{where}.missing")
        _choice(rule.outliers, OUTLIER_POLICIES, f"{where}.outliers")
        for b, v in bounds.items():
            if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
                raise ConfigError(f"{where}.{b}", f"must be a number, got {v!r}")
        if None not in bounds.values() and bounds["min"] > bounds["max"]:
            raise ConfigError(f"{where}.min", "must not be larger than max")
        if not isinstance(allowed, list | tuple):
            raise ConfigError(f"{where}.allowed", "must be a list of values")
        if (
            not isinstance(quantiles, list | tuple)
            or len(quantiles) != 2
            or not all(isinstance(q, int | float) and 0 <= q <= 1 for q in quantiles)
            or not quantiles[0] < quantiles[1]
        ):
            raise ConfigError(f"{where}.quantiles", "must be [low, high] with 0 <= low < high <= 1")
        if rule.fence < 0:
            raise ConfigError(f"{where}.fence", "must be 0 or more")
        if rule.outliers != "keep" and kind not in (None, "number"):
            raise ConfigError(f"{where}.outliers", "outlier rules apply to numbers only")
        parsed[str(name)] = replace(
            rule,
            type=kind,
            min=bounds["min"],
            max=bounds["max"],
            allowed=tuple(allowed),
            quantiles=(float(quantiles[0]), float(quantiles[1])),
        )
    if validation.unknown_features != "keep" and not parsed:
        raise ConfigError(
            "validation.unknown_features", "needs validation.features to say which are known"
        )
    return replace(validation, features=parsed)


def _update(raw: dict[str, Any]) -> UpdateSettings:
    update = _section(raw, "update", UpdateSettings, durations=DURATION_FIELDS["update"])
    update = replace(update, interval=parse_duration_ms(update.interval, "update.interval"))
    _choice(update.mode, UPDATE_MODES, "update.mode")
    if update.batch_size < 1:
        raise ConfigError("update.batch_size", "must be at least 1")
    defaults = UpdateSettings()
    if update.mode == "periodic" and update.interval == 0:
        raise ConfigError("update.interval", "periodic updates need an interval, e.g. 10s")
    if update.mode != "micro_batch" and update.batch_size != defaults.batch_size:
        raise ConfigError(
            "update.batch_size", f"only micro_batch uses a batch size, not {update.mode}"
        )
    if update.mode == "per_sample" and update.interval != defaults.interval:
        raise ConfigError("update.interval", "per_sample learns at once; it has no interval")
    return update


def _sampling(raw: dict[str, Any]) -> SamplingSettings:
    sampling = _section(raw, "sampling", SamplingSettings, durations=_SAMPLING_DURATIONS)
    _choice(sampling.strategy, SAMPLING_STRATEGIES, "sampling.strategy")
    _choice(sampling.order, SAMPLING_ORDERS, "sampling.order")
    durations = {
        name: parse_duration_ms(getattr(sampling, name), f"sampling.{name}")
        for name in _SAMPLING_DURATIONS
    }
    target = sampling.target
    if not isinstance(target, Mapping):
        raise ConfigError("sampling.target", "must be a mapping {class: share}")
    classes = sampling.classes
    if not isinstance(classes, list | tuple):
        raise ConfigError("sampling.classes", "must be a list of class labels")
    sampling = replace(
        sampling,
        **durations,
        target={class_key(k): v for k, v in target.items()},
        classes=tuple(class_key(c) for c in classes),
    )
    strategy = sampling.strategy
    if sampling.window < 1:
        raise ConfigError("sampling.window", "must be at least 1ms")
    if sampling.watermark_interval < 1:
        raise ConfigError("sampling.watermark_interval", "must be at least 1ms")
    if sampling.capacity < 1:
        raise ConfigError("sampling.capacity", "must be at least 1")
    if sampling.neighbours < 1:
        raise ConfigError("sampling.neighbours", "must be at least 1")
    if not 0.0 < sampling.rate <= 1.0:
        raise ConfigError("sampling.rate", f"must be in (0, 1], got {sampling.rate!r}")
    if not 0.0 <= sampling.decay < 1.0:
        raise ConfigError("sampling.decay", f"must be in [0, 1), got {sampling.decay!r}")
    if strategy in ("balanced", "target") and sampling.budget <= 0:
        raise ConfigError("sampling.budget", f"{strategy} needs a budget > 0 examples per window")
    if sampling.budget and strategy not in ("balanced", "target"):
        raise ConfigError(
            "sampling.budget", f"only balanced and target use a budget, not {strategy}"
        )
    if sampling.rate != SamplingSettings.rate and strategy != "uniform":
        raise ConfigError("sampling.rate", f"only uniform uses a rate, not {strategy}")
    if sampling.decay and strategy not in ("balanced", "target"):
        raise ConfigError("sampling.decay", f"only balanced and target use decay, not {strategy}")
    if sampling.oversample and strategy not in ("balanced", "target"):
        raise ConfigError(
            "sampling.oversample",
            f"only balanced and target top up short classes (strategy is {strategy}; "
            "use strategy: oversample to grow every class)",
        )
    if sampling.synthetic and strategy != "oversample":
        raise ConfigError(
            "sampling.synthetic", f"only oversample makes synthetic examples, not {strategy}"
        )
    if strategy == "target":
        if not target:
            raise ConfigError("sampling.target", "target needs a class mix {class: share}")
        for name, share in sampling.target.items():
            if isinstance(share, bool) or not isinstance(share, int | float) or share < 0:
                raise ConfigError(f"sampling.target.{name}", f"must be a share >= 0, got {share!r}")
        total = sum(sampling.target.values())
        if abs(total - 1.0) > 1e-6:
            raise ConfigError("sampling.target", f"shares must sum to 1, they sum to {total:g}")
        if sampling.classes:
            _known_classes(sampling.target, sampling.classes, "sampling.classes lists")
    elif target:
        raise ConfigError(
            "sampling.target", f"only the target strategy uses a class mix, not {strategy}"
        )
    return sampling


def _known_classes(target: Mapping[str, float], known: tuple[str, ...], why: str) -> None:
    for name in target:
        if name not in known:
            raise ConfigError(
                f"sampling.target.{name}",
                f"unknown class ({why}: {', '.join(known)})",
            )


def _section(raw: dict[str, Any], name: str, cls: type, durations: tuple[str, ...] = ()) -> Any:
    value = raw.get(name, {})
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ConfigError(name, f"must be a mapping, got {type(value).__name__}")
    fields = dataclasses.fields(cls)
    _no_unknown(value, tuple(f.name for f in fields), name)
    defaults = cls()
    for key, given in value.items():
        expected = getattr(defaults, key)
        path = f"{name}.{key}"
        if isinstance(expected, bool) and not isinstance(given, bool):
            raise ConfigError(path, f"must be true or false, got {given!r}")
        if key.endswith("_ms") or key in durations:
            continue  # durations are parsed by the caller
        not_number = isinstance(given, bool) or not isinstance(given, int | float)
        if isinstance(expected, float) and not_number:
            raise ConfigError(path, f"must be a number, got {given!r}")
        is_int = isinstance(expected, int) and not isinstance(expected, bool)
        if is_int and (isinstance(given, bool) or not isinstance(given, int)):
            raise ConfigError(path, f"must be an integer, got {given!r}")
        if isinstance(expected, str) and not isinstance(given, str):
            raise ConfigError(path, f"must be a string, got {given!r}")
    return cls(**value)


def _no_unknown(value: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in value:
        if key not in allowed:
            path = f"{where}.{key}" if where else str(key)
            raise ConfigError(path, f"unknown field (expected one of: {', '.join(allowed)})")


def _flink_value(value: Any) -> str:
    """Flink reads every option as a string; YAML booleans become ``true``/``false``."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def _choice(value: str, allowed: tuple[str, ...], path: str) -> None:
    if value not in allowed:
        raise ConfigError(path, f"{value!r} is not one of: {', '.join(allowed)}")


def _set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    # Kafka property and Flink option names contain dots:
    # kafka.properties.security.protocol=SSL, job.flink.python.fn-execution.bundle.size=1000.
    for section, mapping in (("kafka", "properties"), ("job", "flink")):
        if parts[:2] == [section, mapping] and len(parts) > 2:
            props = raw.setdefault(section, {}).setdefault(mapping, {})
            props[".".join(parts[2:])] = value
            return
    node = raw
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(dotted, f"{part} is not a section")
        node = child
    node[parts[-1]] = value


def _expand_env(value: Any, environ: Mapping[str, str], path: str) -> Any:
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in environ:
                return environ[name]
            if default is not None:
                return default
            raise ConfigError(path, f"environment variable {name} is not set")

        return _ENV_RE.sub(sub, value)
    if isinstance(value, dict):
        return {
            k: _expand_env(v, environ, f"{path}.{k}" if path else str(k)) for k, v in value.items()
        }
    if isinstance(value, list):
        return [_expand_env(v, environ, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_deep_copy(v) for v in value]
    return value
