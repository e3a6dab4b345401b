"""Concept drift per model key: a River detector fed by every scored prediction, and
the adaptation it triggers (``drift.adaptation``).

:class:`DriftMonitor` is part of the key's state (checkpointed with the model). The
model state calls :meth:`DriftMonitor.observe` once per scored prediction, in the
order predictions are scored, and carries out what it answers: nothing, a fresh
model (``reset``), or the background model taking over (``background``). Each
warning, drift and adaptation becomes a ``model_events`` record.

>>> from stratiflow.config.drift import parse_drift
>>> monitor = DriftMonitor.new(parse_drift({"drift": {"detector": "drift.binary.DDM"}}))
>>> [monitor.observe(error=1.0, correct=False).drift for _ in range(3)]
[False, False, False]
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from stratiflow.config.drift import DriftSettings, build_detector
from stratiflow.config.model import ModelStep, build_model
from stratiflow.records import Label

__all__ = ["DriftMonitor", "Observation", "RollingAccuracy"]

#: Scored events the rolling accuracy of ``model_events`` records covers.
ROLLING_WINDOW = 1000


@dataclass
class RollingAccuracy:
    """Share of correct predictions over the last ``window`` scored events (O(1) per event)."""

    window: int = ROLLING_WINDOW
    hits: deque[bool] = field(default_factory=deque)
    correct: int = 0

    def add(self, correct: bool) -> None:
        """Count one scored prediction."""
        hits = self.hits
        hits.append(correct)
        self.correct += correct
        if len(hits) > self.window:
            self.correct -= hits.popleft()

    @property
    def value(self) -> float | None:
        """The accuracy now (``None`` before the first scored event)."""
        return self.correct / len(self.hits) if self.hits else None


@dataclass(frozen=True, slots=True)
class Observation:
    """What the detector said about one scored prediction."""

    warning: bool = False
    drift: bool = False
    #: The warning zone ended with this prediction, without a drift.
    warning_cleared: bool = False
    #: The key's rolling accuracy before and after this prediction was counted.
    before: float | None = None
    after: float | None = None


@dataclass
class DriftMonitor:
    """One model key's drift detector, its counts and its background model (picklable).

    Parameters
    ----------
    settings
        The ``drift`` section.
    detector
        The River detector in its current state.
    """

    settings: DriftSettings
    detector: Any
    #: The model's pipeline: what a fresh model (reset, background) is built from.
    model_steps: tuple[ModelStep, ...] = ()
    warnings: int = 0
    drifts: int = 0
    resets: int = 0
    swaps: int = 0
    #: Drifts the detector reported while its estimate fell (``direction: increase``).
    improvements: int = 0
    #: Whether the detector's last update was in its warning zone.
    in_warning: bool = False
    rolling: RollingAccuracy = field(default_factory=RollingAccuracy)
    #: ``background``: the fresh model learning since a warning or a drift, and its record.
    background: Any = None
    background_learned: int = 0
    #: Background models started so far: a delayed label scores a stored background answer
    #: only if the model that gave it is still the background one.
    background_serial: int = 0
    background_scored: int = 0
    #: Correct predictions of the background and of the serving model on the events the
    #: background was scored on (the same events).
    background_correct: int = 0
    serving_correct: int = 0

    @classmethod
    def new(
        cls,
        settings: DriftSettings,
        model_steps: tuple[ModelStep, ...] = (),
        window: int = ROLLING_WINDOW,
    ) -> DriftMonitor:
        """A monitor with a fresh detector (``settings.detector`` must be set).

        Parameters
        ----------
        settings
            The ``drift`` section.
        model_steps
            The ``model`` section: fresh models (``reset``, ``background``) are built from it.
        window
            Scored events the rolling accuracy in ``model_events`` records covers.

        Returns
        -------
        DriftMonitor
            No warning, no drift, no background model yet.
        """
        if settings.detector is None:
            raise ValueError("drift.detector is not set: there is nothing to monitor")
        return cls(
            settings,
            build_detector(settings.detector),
            tuple(model_steps),
            rolling=RollingAccuracy(window),
        )

    @property
    def detector_name(self) -> str:
        """The detector's path under ``river.``, as configured."""
        assert self.settings.detector is not None
        return self.settings.detector.path

    def observe(self, *, error: float, correct: bool) -> Observation:
        """Feed one scored prediction's signal to the detector.

        Parameters
        ----------
        error
            The signal: 0/1 error, or the log loss with ``signal: loss``.
        correct
            Whether the prediction was right (for the rolling accuracy).

        Returns
        -------
        Observation
            Whether this update entered the warning zone or detected a drift.
        """
        rolling = self.rolling
        before = rolling.value
        rolling.add(correct)
        detector = self.detector
        estimate = getattr(detector, "estimation", None)
        detector.update(error)
        drift = bool(detector.drift_detected)
        fell = estimate is not None and detector.estimation <= estimate
        if drift and fell and self.settings.direction == "increase":
            drift = False  # the signal fell: the model got better, nothing to adapt to
            self.improvements += 1
        warning = bool(getattr(detector, "warning_detected", False)) and not drift
        new_warning = warning and not self.in_warning
        cleared = self.in_warning and not warning and not drift
        self.in_warning = warning
        if new_warning:
            self.warnings += 1
        if drift:
            self.drifts += 1
        return Observation(new_warning, drift, cleared, before, rolling.value)

    # -- adaptation ------------------------------------------------------------------

    def fresh_model(self) -> Any:
        """A new, untrained model of the configured pipeline."""
        return build_model(self.model_steps)

    def start_background(self, model: Any = None) -> None:
        """A fresh model (``model``, or one of the configured pipeline) starts learning
        beside the serving one."""
        self.background = model if model is not None else self.fresh_model()
        self.background_serial += 1
        self.background_learned = 0
        self.background_scored = self.background_correct = self.serving_correct = 0

    def learn_background(self, x: dict[str, Any], y: Label) -> None:
        """The background model learns one example (a failure is not counted against it)."""
        try:
            self.background.learn_one(x, y)
        except Exception:  # River raises assorted errors on odd inputs
            return
        self.background_learned += 1

    def shadow_predict(self, x: dict[str, Any]) -> Label | None:
        """The background model's answer for an event (``None``: no answer)."""
        try:
            proba = self.background.predict_proba_one(x)
        except Exception:  # an answer it cannot give counts as a wrong one
            return None
        return max(proba, key=proba.__getitem__) if proba else None

    def shadow_score(self, shadow: Label | None, y_true: Label, serving_correct: bool) -> None:
        """Score the background's answer and the serving model's on the same event."""
        self.background_scored += 1
        self.background_correct += shadow == y_true
        self.serving_correct += serving_correct

    def background_is_better(self) -> bool:
        """Has the background model beaten the serving one over ``min_scored`` events?"""
        return (
            self.background is not None
            and self.background_scored >= self.settings.min_scored
            and self.background_correct > self.serving_correct
        )

    def background_accuracy(self) -> float | None:
        """The background model's accuracy on the events it was scored on."""
        return self.background_correct / self.background_scored if self.background_scored else None

    def take_background(self) -> tuple[Any, int]:
        """Hand the background model over (and how many examples it learned)."""
        model, learned = self.background, self.background_learned
        self.background = None
        self.background_learned = self.background_scored = 0
        self.background_correct = self.serving_correct = 0
        return model, learned

    def summary(self) -> dict[str, Any]:
        """The ``drift`` section of the metrics record."""
        return {
            "detector": self.detector_name,
            "adaptation": self.settings.adaptation,
            "warnings": self.warnings,
            "drifts": self.drifts,
            "resets": self.resets,
            "swaps": self.swaps,
            "improvements": self.improvements,
            "background_learned": self.background_learned if self.background is not None else None,
        }
