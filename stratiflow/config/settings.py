"""The job configuration: one frozen, typed object built from YAML, env and CLI.

Every field is checked when the config is loaded, so a bad config fails at
submit time with a message naming the field, never halfway through a job.

>>> cfg = load_config({"model": [{"linear_model.LogisticRegression": {"l2": 0.0}}]})
>>> cfg.topics.events, cfg.metrics.report_every, cfg.sampling.strategy
('events', 500, 'none')
>>> load_config({"metrics": {"report_evry": 5}})
Traceback (most recent call last):
...
stratiflow.config.errors.ConfigError: metrics.report_evry: unknown field (expected one of: \
...); did you mean metrics.report_every?
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from stratiflow.config.curation import (
    ActiveSettings,
    CurationSettings,
    parse_active,
    parse_curation,
)
from stratiflow.config.drift import DriftSettings, parse_drift
from stratiflow.config.errors import ConfigError
from stratiflow.config.fields import (
    known_classes,
    no_unknown,
    vars_of,
)
from stratiflow.config.job import DURATIONS as _JOB_DURATIONS
from stratiflow.config.job import (
    JobSettings,
    KafkaSettings,
    SnapshotSettings,
    Topics,
    parse_job,
    parse_kafka,
    parse_snapshots,
    parse_topics,
)
from stratiflow.config.labels import DURATIONS as _LABELS_DURATIONS
from stratiflow.config.labels import LabelsSettings, parse_labels
from stratiflow.config.metrics import MetricsSettings, parse_metrics
from stratiflow.config.model import DEFAULT_MODEL, ModelStep, build_model, is_binary, model_steps
from stratiflow.config.sampling import DURATIONS as _SAMPLING_DURATIONS
from stratiflow.config.sampling import (
    SamplingSettings,
    parse_sampling,
)
from stratiflow.config.selection import (
    Candidate,
    SelectionSettings,
    parse_candidates,
    parse_selection,
)
from stratiflow.config.update import DURATIONS as _UPDATE_DURATIONS
from stratiflow.config.update import UpdateSettings, parse_update
from stratiflow.config.validation import DURATIONS as _VALIDATION_DURATIONS
from stratiflow.config.validation import (
    ValidationSettings,
    parse_validation,
)
from stratiflow.snapshots import SnapshotError, key_from_env, load_snapshot

__all__ = ["DURATION_FIELDS", "Config", "load_cli_config", "load_config", "with_overrides"]


@dataclass(frozen=True)
class Config:
    """A complete, validated job configuration.

    Built by :func:`load_config` (or :func:`load_cli_config`); each attribute is one
    section of the YAML.

    Attributes
    ----------
    job
        How the job runs.
    kafka
        The brokers and Kafka client properties.
    topics
        The topics read and written.
    model
        The River estimators, in pipeline order.
    sampling
        How the training stream is sampled per class.
    metrics
        What the metrics topic reports.
    validation
        Limits on every record, and the per-feature rules.
    seed
        The base seed the sampler derives its seeds from (reproducible samples).
    labels
        How delayed labels are joined to earlier predictions.
    update
        When the model learns the examples it is given.
    snapshots
        The signed model snapshot to warm-start from.
    drift
        Concept-drift detection per model key, and the adaptation it triggers.
    candidates
        More pipelines per model key beside ``model`` (named ``main``), shadow-scored.
    selection
        How the pipeline whose predictions are published is chosen.
    active
        Active learning: which events get a label request, within a budget.
    curation
        Which labelled examples the model learns from: hard examples, label filters,
        Tomek links.
    """

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
    drift: DriftSettings = field(default_factory=DriftSettings)
    candidates: tuple[Candidate, ...] = ()
    selection: SelectionSettings = field(default_factory=SelectionSettings)
    active: ActiveSettings = field(default_factory=ActiveSettings)
    curation: CurationSettings = field(default_factory=CurationSettings)

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
            "drift": {
                **vars_of(self.drift),
                "detector": None
                if self.drift.detector is None
                else {self.drift.detector.path: dict(self.drift.detector.params)},
            },
            "candidates": [
                {"name": c.name, "model": [{s.path: dict(s.params)} for s in c.model]}
                for c in self.candidates
            ],
            "selection": vars_of(self.selection),
            "active": vars_of(self.active),
            "curation": {
                "hard_examples": None
                if self.curation.hard_examples is None
                else vars_of(self.curation.hard_examples),
                "label_filter": vars_of(self.curation.label_filter),
                "tomek_links": self.curation.tomek_links,
            },
        }


_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
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
    "drift",
    "candidates",
    "selection",
    "active",
    "curation",
)
#: Per section, the fields given as durations (``500ms``, ``10s``, ``5m``, ``1h`` or ms).
DURATION_FIELDS: Mapping[str, tuple[str, ...]] = {
    "job": _JOB_DURATIONS,
    "sampling": _SAMPLING_DURATIONS,
    "labels": _LABELS_DURATIONS,
    "update": _UPDATE_DURATIONS,
    "validation": _VALIDATION_DURATIONS,
}


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
        Instantiate the model once so bad estimators or parameters fail here (and
        verify the warm-start snapshot, if any).

    Returns
    -------
    Config
        The validated configuration.

    Raises
    ------
    ConfigError
        If the file is missing or not YAML, a ``${VAR}`` without a default is not
        set, or any value is wrong; the message starts with the field's path.
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
        except IsADirectoryError:
            raise ConfigError("", f"config file {path} is a directory, not a YAML file") from None
        except OSError as exc:
            raise ConfigError("", f"cannot read config file {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigError("", f"config file {path} is not a text (UTF-8) file") from None
        except yaml.YAMLError as exc:
            raise ConfigError("", f"{path} is not valid YAML: {yaml_problem(exc)}") from None
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

    Parameters
    ----------
    path
        The YAML file given with ``--config`` (``None``: all defaults).
    set_items
        The ``--set`` arguments, each ``PATH=VALUE``; a path given twice takes the
        last value.
    bootstrap_servers
        The ``--bootstrap-servers`` argument; it wins over ``kafka.bootstrap_servers``
        from the file or ``--set``.
    check_model
        Build the model once so a bad one fails now (see :func:`load_config`).

    Returns
    -------
    Config
        The validated configuration.

    Raises
    ------
    ConfigError
        If an item has no ``=``, or the resulting config is wrong (see :func:`load_config`).

    Examples
    --------
    >>> cfg = load_cli_config(None, ["metrics.report_every=100", "sampling.window=5s"])
    >>> cfg.metrics.report_every, cfg.sampling.window
    (100, 5000)
    """
    overrides: dict[str, Any] = {}
    for item in set_items or []:
        dotted, sep, value = item.partition("=")
        if not sep or not dotted.strip():
            raise ConfigError(item, "expected PATH=VALUE, e.g. --set metrics.report_every=100")
        try:
            overrides[dotted] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ConfigError(
                dotted, f"{value!r} is not a YAML value: {yaml_problem(exc)}"
            ) from None
    if bootstrap_servers:
        overrides["kafka.bootstrap_servers"] = bootstrap_servers
    return load_config(path, overrides, check_model=check_model)


def with_overrides(cfg: Config, overrides: Mapping[str, Any]) -> Config:
    """A copy of ``cfg`` with dotted-path overrides applied and re-validated.

    Parameters
    ----------
    cfg
        The configuration to start from; it is not changed.
    overrides
        Dotted paths to values, as :func:`load_config` takes them.

    Returns
    -------
    Config
        The new configuration.

    Raises
    ------
    ConfigError
        If the overrides make the configuration invalid.

    Examples
    --------
    >>> cfg = load_config()
    >>> changed = with_overrides(cfg, {"update.mode": "periodic", "update.interval": "10s"})
    >>> changed.update.interval, cfg.update.mode
    (10000, 'per_sample')
    >>> with_overrides(cfg, {"update.mode": "periodic"})
    Traceback (most recent call last):
    ...
    stratiflow.config.errors.ConfigError: update.interval: periodic updates need an interval, ...
    """
    return load_config(cfg.to_dict(), overrides)


# -- building -----------------------------------------------------------------------------


def _build(raw: dict[str, Any], *, check_model: bool) -> Config:
    no_unknown(raw, _SECTIONS, "")
    job = parse_job(raw)
    kafka = parse_kafka(raw)
    topics = parse_topics(raw)
    sampling = parse_sampling(raw)
    metrics = parse_metrics(raw)
    labels = parse_labels(raw)
    update = parse_update(raw)
    validation = parse_validation(raw)

    seed = raw.get("seed", 42)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ConfigError("seed", f"must be an integer, got {seed!r}")

    model = model_steps(raw.get("model"))
    snapshots = parse_snapshots(raw)
    drift = parse_drift(raw)
    candidates = parse_candidates(raw, check_model=check_model)
    selection = parse_selection(raw)
    active = parse_active(raw)
    curation = parse_curation(raw)
    _check_curation(active, curation, sampling, labels)
    cfg = Config(
        job,
        kafka,
        topics,
        model,
        sampling,
        metrics,
        validation,
        seed,
        labels,
        update,
        snapshots,
        drift,
        candidates,
        selection,
        active,
        curation,
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
            known_classes(
                sampling.target, ("false", "true", "0", "1"), "the model is binary, its classes are"
            )
    return cfg


def _check_curation(
    active: ActiveSettings,
    curation: CurationSettings,
    sampling: SamplingSettings,
    labels: LabelsSettings,
) -> None:
    """Active learning and curation against the sampler and the label source."""
    sampled = sampling.strategy != "none"
    if active.strategy != "none" and active.simulate and sampled:
        raise ConfigError(
            "active.simulate",
            "with a sampler the training stream is chosen before the model sees an event, "
            "so the model cannot hold labels back: use sampling.strategy: none, or "
            "simulate: false with labels coming back through labels.source",
        )
    if active.strategy != "none" and not active.simulate and labels.source == "none":
        raise ConfigError(
            "active.strategy",
            f"{active.strategy} sends label requests, but their answers have no way back: set "
            "labels.source (topic or events), or active.simulate: true",
        )
    if curation.tomek_links and not sampled:
        raise ConfigError(
            "curation.tomek_links",
            "Tomek links are dropped from each window's sample: set a sampling.strategy",
        )


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
        if isinstance(child, list):
            raise ConfigError(
                dotted, f"{part} is a list, not a section: set it whole, e.g. --set '{part}=[...]'"
            )
        if not isinstance(child, dict):
            raise ConfigError(dotted, f"{part} is not a section")
        node = child
    node[parts[-1]] = value


def yaml_problem(exc: yaml.YAMLError) -> str:
    """What a YAML error says, on one line, with where it happened.

    >>> try:
    ...     yaml.safe_load("model: [\\n  - a\\n")
    ... except yaml.YAMLError as exc:
    ...     print(yaml_problem(exc))
    expected the node content, but found '-' (line 2, column 3)
    """
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem:
        mark = exc.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        return f"{exc.problem}{where}"
    return " ".join(str(exc).split())


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
