"""The ``drift`` section: a concept-drift detector per model key, and what to do
when it fires (:mod:`stratiflow.lifecycle.drift`).

The detector is any ``river.drift`` or ``river.drift.binary`` detector, named the
way model steps are. Building it is the check, as for the model.

>>> settings = parse_drift({"drift": {"detector": {"drift.binary.DDM": {}}}})
>>> settings.detector.path, settings.signal, settings.adaptation
('drift.binary.DDM', 'error', 'none')
>>> detector_kind(settings.detector)
('binary', True, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

from stratiflow.config.errors import ConfigError
from stratiflow.config.fields import choice, read_section
from stratiflow.config.model import ModelStep, instantiate, model_step

__all__ = [
    "DRIFT_ADAPTATIONS",
    "DRIFT_DIRECTIONS",
    "DRIFT_SIGNALS",
    "DriftAdaptation",
    "DriftDirection",
    "DriftSettings",
    "DriftSignal",
    "build_detector",
    "detector_kind",
    "parse_drift",
]

DriftSignal = Literal["error", "loss"]
DriftAdaptation = Literal["none", "reset", "background"]
DriftDirection = Literal["increase", "any"]
DRIFT_SIGNALS: tuple[str, ...] = get_args(DriftSignal)
DRIFT_ADAPTATIONS: tuple[str, ...] = get_args(DriftAdaptation)
DRIFT_DIRECTIONS: tuple[str, ...] = get_args(DriftDirection)


@dataclass(frozen=True)
class DriftSettings:
    """Concept-drift detection and adaptation per model key (off without a detector)."""

    #: Any ``river.drift`` / ``river.drift.binary`` detector, as ``{drift.ADWIN: {delta:
    #: 0.002}}`` (the syntax of a model step); ``null``: no detection.
    detector: ModelStep | None = None
    #: What the detector is fed per scored prediction: ``error`` (1 when the prediction
    #: was wrong, else 0) or ``loss`` (the prediction's log loss; not for binary detectors).
    signal: DriftSignal = "error"
    #: ``none``: report only; ``reset``: a fresh model replaces the serving one at a drift;
    #: ``background``: a fresh model starts learning at a warning and replaces the serving
    #: one at the drift, or once it has been better over ``min_scored`` scored events (it
    #: is dropped when the warning zone ends without a drift); a
    #: drift with no warning before it brings a fresh model in, as a reset does (River's
    #: ``DriftRetrainingClassifier`` does the same).
    adaptation: DriftAdaptation = "none"
    #: ``background``: scored events over which a background model must beat the serving
    #: one (both scored on the same events) to replace it before a drift.
    min_scored: int = 500
    #: ``increase``: a drift the detector reports while its estimate of the signal fell (the
    #: model got better: ADWIN flags changes both ways) is counted as an improvement, not
    #: acted on; ``any``: every drift the detector reports counts. Only detectors with an
    #: ``estimation`` (ADWIN) can tell; the binary ones only look for increases anyway.
    direction: DriftDirection = "increase"


def detector_kind(step: ModelStep) -> tuple[Literal["binary", "continuous"], bool, bool]:
    """Whether the detector takes 0/1 input only (``binary``), whether it warns, and
    whether it can detect at all (``drift.NoDrift`` cannot).

    Parameters
    ----------
    step
        The detector's path under ``river.`` and its parameters.

    Returns
    -------
    tuple
        ``("binary" | "continuous", warns, detects)``.
    """
    from river import base, drift  # River's import takes seconds: only when drift is on

    detector = build_detector(step)
    binary = isinstance(detector, base.BinaryDriftDetector)
    warns = isinstance(detector, base.DriftAndWarningDetector | base.BinaryDriftAndWarningDetector)
    return ("binary" if binary else "continuous"), warns, not isinstance(detector, drift.NoDrift)


def build_detector(step: ModelStep, where: str = "drift.detector") -> Any:
    """A new River drift detector from its step; the step's path in errors.

    Parameters
    ----------
    step
        The detector's path under ``river.`` and its parameters.
    where
        The config path errors start with.

    Returns
    -------
    river.base.DriftDetector or river.base.BinaryDriftDetector
        A detector in its initial state.

    Raises
    ------
    ConfigError
        No such class under ``river``, a parameter it does not take, or not a detector.
    """
    from river import base

    detector = instantiate(step.path, step.params, f"{where}.{step.path}", any_river_object=True)
    if not isinstance(detector, base.DriftDetector | base.BinaryDriftDetector):
        raise ConfigError(
            where,
            f"{step.path} is not a drift detector (any river.drift or river.drift.binary "
            "detector, e.g. drift.ADWIN or drift.binary.DDM)",
        )
    return detector


def parse_drift(raw: dict[str, Any]) -> DriftSettings:
    """The ``drift`` section, checked: the detector builds, and it suits the signal and
    the adaptation.

    Parameters
    ----------
    raw
        The whole job config as loaded from YAML.

    Returns
    -------
    DriftSettings
        The section's settings.

    Raises
    ------
    ConfigError
        With the field path: an unknown detector or parameter, ``signal: loss`` with a
        binary detector, ``background`` with a detector that neither warns nor detects.
    """
    settings = read_section(raw, "drift", DriftSettings)
    choice(settings.signal, DRIFT_SIGNALS, "drift.signal")
    choice(settings.adaptation, DRIFT_ADAPTATIONS, "drift.adaptation")
    choice(settings.direction, DRIFT_DIRECTIONS, "drift.direction")
    if isinstance(settings.min_scored, bool) or not isinstance(settings.min_scored, int):
        raise ConfigError("drift.min_scored", f"must be an integer, got {settings.min_scored!r}")
    if settings.min_scored < 1:
        raise ConfigError("drift.min_scored", "must be at least 1")
    value = settings.detector
    if value is None:
        if settings.adaptation != "none":
            raise ConfigError(
                "drift.adaptation", f"{settings.adaptation} needs a drift.detector to act on"
            )
        return settings
    step = _detector_step(value)
    kind, warns, detects = detector_kind(step)
    if settings.signal == "loss" and kind == "binary":
        raise ConfigError(
            "drift.signal",
            f"loss is a real number, but {step.path} is a binary detector (0/1 input): use "
            "signal: error, or a detector for real values (drift.ADWIN, drift.KSWIN, "
            "drift.PageHinkley)",
        )
    if settings.adaptation != "none" and not (warns or detects):
        raise ConfigError(
            "drift.adaptation",
            f"{settings.adaptation} needs a detector that warns or detects; {step.path} "
            "does neither",
        )
    return DriftSettings(
        step, settings.signal, settings.adaptation, settings.min_scored, settings.direction
    )


def _detector_step(value: Any) -> ModelStep:
    message = "must be one mapping {drift.Detector: {params}}, e.g. drift.ADWIN"
    return model_step(value, "drift.detector", message)
