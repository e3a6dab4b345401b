"""The ``drift`` section: detectors named like model steps, checked at load."""

from __future__ import annotations

import pytest

from stratiflow.config import ConfigError, load_config
from stratiflow.config.drift import parse_drift


def drift(**section):
    return parse_drift({"drift": section})


def test_off_by_default() -> None:
    settings = load_config({}).drift
    assert settings.detector is None and settings.adaptation == "none"


@pytest.mark.parametrize(
    "detector",
    ["drift.ADWIN", {"drift.ADWIN": {"delta": 0.01}}, {"drift.binary.DDM": None},
     {"drift.KSWIN": {"alpha": 0.001, "seed": 1}}, "drift.PageHinkley", "drift.binary.HDDM_W"],
)  # fmt: skip
def test_any_river_detector_in_model_step_syntax(detector) -> None:
    settings = drift(detector=detector)
    assert settings.detector is not None and settings.detector.path.startswith("drift.")


@pytest.mark.parametrize(
    ("section", "path", "message"),
    [
        ({"detector": "drift.NoSuch"}, "drift.detector.drift.NoSuch", "no class 'NoSuch'"),
        ({"detector": {"drift.ADWIN": {"deltaa": 1}}}, "drift.detector.drift.ADWIN.deltaa",
         "unknown parameter"),
        ({"detector": "linear_model.Perceptron"}, "drift.detector", "not a drift detector"),
        ({"detector": ["drift.ADWIN"]}, "drift.detector", "one mapping"),
        ({"detector": "drift.binary.DDM", "signal": "loss"}, "drift.signal", "binary detector"),
        ({"detector": "drift.NoDrift", "adaptation": "background"}, "drift.adaptation",
         "does neither"),
        ({"adaptation": "reset"}, "drift.adaptation", "needs a drift.detector"),
        ({"detector": "drift.ADWIN", "signal": "lose"}, "drift.signal", "lose"),
        ({"detector": "drift.ADWIN", "adaptation": "retrain"}, "drift.adaptation", "retrain"),
        ({"detector": "drift.ADWIN", "min_scored": 0}, "drift.min_scored", "at least 1"),
        ({"detektor": "drift.ADWIN"}, "drift.detektor", ""),
    ],
)  # fmt: skip
def test_bad_config_fails_at_load_with_the_field_path(section, path, message) -> None:
    with pytest.raises(ConfigError) as info:
        load_config({"drift": section})
    assert str(info.value).startswith(path), str(info.value)
    assert message in str(info.value)


def test_loss_with_a_detector_of_real_values_is_accepted() -> None:
    assert drift(detector="drift.ADWIN", signal="loss").signal == "loss"
