"""The job's configuration: typed settings read from YAML, each error naming its field path."""

from __future__ import annotations

from stratiflow.config.curation import (
    ACTIVE_STRATEGIES,
    ActiveSettings,
    ActiveStrategy,
    CurationSettings,
    HardExampleSettings,
    LabelFilterSettings,
)
from stratiflow.config.drift import (
    DRIFT_ADAPTATIONS,
    DRIFT_DIRECTIONS,
    DRIFT_SIGNALS,
    DriftAdaptation,
    DriftDirection,
    DriftSettings,
    DriftSignal,
)
from stratiflow.config.errors import (
    ConfigError,
)
from stratiflow.config.fields import (
    parse_duration_ms,
    vars_of,
)
from stratiflow.config.job import (
    DELIVERY_GUARANTEES,
    EXECUTION_MODES,
    STARTING_OFFSETS,
    STATE_BACKENDS,
    DeliveryGuarantee,
    ExecutionMode,
    JobSettings,
    KafkaSettings,
    SnapshotSettings,
    StartingOffsets,
    StateBackend,
    Topics,
    redact,
)
from stratiflow.config.labels import (
    LABEL_SOURCES,
    LabelSource,
    LabelsSettings,
)
from stratiflow.config.metrics import (
    MetricsSettings,
)
from stratiflow.config.model import (
    DEFAULT_MODEL,
    ModelStep,
    build_model,
)
from stratiflow.config.sampling import (
    SAMPLING_ORDERS,
    SAMPLING_STRATEGIES,
    SamplingOrder,
    SamplingSettings,
    SamplingStrategy,
)
from stratiflow.config.selection import (
    SELECTION_METRICS,
    Candidate,
    SelectionMetric,
    SelectionSettings,
)
from stratiflow.config.settings import (
    DURATION_FIELDS,
    Config,
    load_cli_config,
    load_config,
    with_overrides,
)
from stratiflow.config.update import (
    UPDATE_MODES,
    UpdateMode,
    UpdateSettings,
)
from stratiflow.config.validation import (
    FEATURE_TYPES,
    MISSING_POLICIES,
    OUTLIER_POLICIES,
    UNKNOWN_FEATURE_POLICIES,
    FeatureRule,
    FeatureType,
    MissingPolicy,
    OutlierPolicy,
    UnknownFeaturePolicy,
    ValidationSettings,
)

__all__ = [
    "ACTIVE_STRATEGIES",
    "DEFAULT_MODEL",
    "DELIVERY_GUARANTEES",
    "DRIFT_ADAPTATIONS",
    "DRIFT_DIRECTIONS",
    "DRIFT_SIGNALS",
    "DURATION_FIELDS",
    "EXECUTION_MODES",
    "FEATURE_TYPES",
    "LABEL_SOURCES",
    "MISSING_POLICIES",
    "OUTLIER_POLICIES",
    "SAMPLING_ORDERS",
    "SAMPLING_STRATEGIES",
    "SELECTION_METRICS",
    "STARTING_OFFSETS",
    "STATE_BACKENDS",
    "UNKNOWN_FEATURE_POLICIES",
    "UPDATE_MODES",
    "ActiveSettings",
    "ActiveStrategy",
    "Candidate",
    "Config",
    "ConfigError",
    "CurationSettings",
    "DeliveryGuarantee",
    "DriftAdaptation",
    "DriftDirection",
    "DriftSettings",
    "DriftSignal",
    "ExecutionMode",
    "FeatureRule",
    "FeatureType",
    "HardExampleSettings",
    "JobSettings",
    "KafkaSettings",
    "LabelFilterSettings",
    "LabelSource",
    "LabelsSettings",
    "MetricsSettings",
    "MissingPolicy",
    "ModelStep",
    "OutlierPolicy",
    "SamplingOrder",
    "SamplingSettings",
    "SamplingStrategy",
    "SelectionMetric",
    "SelectionSettings",
    "SnapshotSettings",
    "StartingOffsets",
    "StateBackend",
    "Topics",
    "UnknownFeaturePolicy",
    "UpdateMode",
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
