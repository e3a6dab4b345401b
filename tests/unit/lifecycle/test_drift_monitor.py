"""The drift monitor sees exactly what a River detector driven by hand sees."""

from __future__ import annotations

import pickle
import random

import pytest
from river import drift

from stratiflow.config.drift import parse_drift
from stratiflow.lifecycle import DriftMonitor, RollingAccuracy


def errors(n: int = 3000, change: int = 1500, seed: int = 1) -> list[float]:
    """0/1 errors: 10 % wrong, then 60 % wrong from ``change`` on (an abrupt drift)."""
    rng = random.Random(seed)
    return [float(rng.random() < (0.1 if i < change else 0.6)) for i in range(n)]


@pytest.mark.parametrize(
    ("spec", "river_detector"),
    [("drift.ADWIN", drift.ADWIN), ("drift.binary.DDM", drift.binary.DDM),
     ("drift.binary.HDDM_A", drift.binary.HDDM_A), ("drift.PageHinkley", drift.PageHinkley)],
)  # fmt: skip
def test_warnings_and_drifts_are_river_s_own(spec, river_detector) -> None:
    monitor = DriftMonitor.new(parse_drift({"drift": {"detector": spec}}))
    by_hand = river_detector()
    drifts, warnings = [], []
    expected_drifts, expected_warnings = [], []
    in_warning = False
    for i, e in enumerate(errors()):
        seen = monitor.observe(error=e, correct=not e)
        by_hand.update(e)
        if seen.drift:
            drifts.append(i)
        if seen.warning:
            warnings.append(i)
        if by_hand.drift_detected:
            expected_drifts.append(i)
        warn = getattr(by_hand, "warning_detected", False) and not by_hand.drift_detected
        if warn and not in_warning:
            expected_warnings.append(i)
        in_warning = warn
    assert drifts == expected_drifts and warnings == expected_warnings
    assert expected_drifts, "the stream must drift for this test to mean anything"
    assert (monitor.drifts, monitor.warnings) == (len(drifts), len(warnings))


def test_a_pickled_monitor_goes_on_as_if_never_pickled() -> None:
    settings = parse_drift({"drift": {"detector": "drift.ADWIN"}})
    stream = errors()
    a = DriftMonitor.new(settings)
    for e in stream[:1600]:
        a.observe(error=e, correct=not e)
    b = pickle.loads(pickle.dumps(a))
    rest_a = [a.observe(error=e, correct=not e).drift for e in stream[1600:]]
    rest_b = [b.observe(error=e, correct=not e).drift for e in stream[1600:]]
    assert rest_a == rest_b and a.drifts == b.drifts


def test_rolling_accuracy_covers_the_last_window() -> None:
    rolling = RollingAccuracy(window=3)
    assert rolling.value is None
    for hit in (True, False, False, True, True):
        rolling.add(hit)
    assert rolling.value == pytest.approx(2 / 3)
    assert len(rolling.hits) == 3


def test_an_observation_carries_the_rolling_accuracy_before_and_after() -> None:
    monitor = DriftMonitor.new(parse_drift({"drift": {"detector": "drift.ADWIN"}}), window=2)
    monitor.observe(error=0.0, correct=True)
    seen = monitor.observe(error=1.0, correct=False)
    assert (seen.before, seen.after) == (1.0, 0.5)


def test_with_direction_increase_a_falling_error_is_an_improvement_not_a_drift() -> None:
    """ADWIN flags the error falling (60 % wrong, then 10 %) as a change too."""
    falling = list(reversed(errors()))
    monitors = {
        direction: DriftMonitor.new(
            parse_drift({"drift": {"detector": "drift.ADWIN", "direction": direction}})
        )
        for direction in ("increase", "any")
    }
    seen = {
        d: [m.observe(error=e, correct=not e).drift for e in falling] for d, m in monitors.items()
    }
    by_hand = drift.ADWIN()
    river_drifts = []
    for e in falling:
        by_hand.update(e)
        river_drifts.append(by_hand.drift_detected)
    assert seen["any"] == river_drifts and any(river_drifts)
    assert not any(seen["increase"])
    assert monitors["increase"].improvements == sum(river_drifts) == monitors["any"].drifts
