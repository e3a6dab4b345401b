"""The job's configuration: typed settings read from YAML, each error naming its field path."""

from __future__ import annotations

from stratiflow.config import settings as _former
from stratiflow.config.errors import ConfigError
from stratiflow.config.model import DEFAULT_MODEL, ModelStep, build_model
from stratiflow.config.settings import (
    DELIVERY_GUARANTEES,
    EXECUTION_MODES,
    FEATURE_TYPES,
    LABEL_SOURCES,
    MISSING_POLICIES,
    OUTLIER_POLICIES,
    SAMPLING_ORDERS,
    SAMPLING_STRATEGIES,
    STARTING_OFFSETS,
    STATE_BACKENDS,
    UNKNOWN_FEATURE_POLICIES,
    UPDATE_MODES,
    Config,
    FeatureRule,
    JobSettings,
    KafkaSettings,
    LabelsSettings,
    MetricsSettings,
    SamplingSettings,
    SnapshotSettings,
    Topics,
    UpdateSettings,
    ValidationSettings,
    load_cli_config,
    load_config,
    parse_duration_ms,
    redact,
    vars_of,
    with_overrides,
)

__all__ = [
    "DEFAULT_MODEL",
    "DELIVERY_GUARANTEES",
    "EXECUTION_MODES",
    "FEATURE_TYPES",
    "LABEL_SOURCES",
    "MISSING_POLICIES",
    "OUTLIER_POLICIES",
    "SAMPLING_ORDERS",
    "SAMPLING_STRATEGIES",
    "STARTING_OFFSETS",
    "STATE_BACKENDS",
    "UNKNOWN_FEATURE_POLICIES",
    "UPDATE_MODES",
    "Config",
    "ConfigError",
    "FeatureRule",
    "JobSettings",
    "KafkaSettings",
    "LabelsSettings",
    "MetricsSettings",
    "ModelStep",
    "SamplingSettings",
    "SnapshotSettings",
    "Topics",
    "UpdateSettings",
    "ValidationSettings",
    "build_model",
    "load_cli_config",
    "load_config",
    "parse_duration_ms",
    "redact",
    "vars_of",
    "with_overrides",
]


def __getattr__(name: str) -> object:
    """Private names of the former ``stratiflow.config`` module, for state pickled by it."""
    return getattr(_former, name)
