"""The ``sampling`` config section: every bad value fails at load, naming its field."""

from __future__ import annotations

from typing import Any

import pytest

from stratiflow.config import (
    ConfigError,
    SamplingSettings,
    load_cli_config,
    load_config,
    parse_duration_ms,
    with_overrides,
)

MULTICLASS = [{"tree.HoeffdingTreeClassifier": {}}]


def sampling(**fields: Any) -> dict[str, Any]:
    return {"sampling": fields}


def target(shares: Any, **fields: Any) -> dict[str, Any]:
    return sampling(**{"strategy": "target", "budget": 10, "target": shares, **fields})


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (sampling(strategy="magic"), "sampling.strategy"),
        (sampling(strategy="Balanced", budget=5), "sampling.strategy"),
        (target({"true": 0.5, "false": 0.4}), "sampling.target"),
        (target({"true": 0.7, "false": 0.7}), "sampling.target"),
        (target({}), "sampling.target"),
        (target({"true": -0.5, "false": 1.5}), "sampling.target.true"),
        (target({"true": "half", "false": 0.5}), "sampling.target.true"),
        (target({"true": 0.5, "false": 0.5}, budget=0), "sampling.budget"),
        (target({"true": 0.5, "false": 0.5}, budget=-1), "sampling.budget"),
        (sampling(strategy="balanced"), "sampling.budget"),
        (sampling(strategy="balanced", budget=0), "sampling.budget"),
        (sampling(strategy="balanced", budget=-5), "sampling.budget"),
        (sampling(strategy="balanced", budget=2.5), "sampling.budget"),
        (sampling(strategy="undersample", budget=10), "sampling.budget"),
        # a binary model only has true/false (or 0/1) classes
        (target({"true": 0.5, "spam": 0.5}), "sampling.target.spam"),
        # a multiclass model checks target against sampling.classes when given
        (
            {"model": MULTICLASS, **target({"a": 0.5, "c": 0.5}, classes=["a", "b"])},
            "sampling.target.c",
        ),
        ({"model": MULTICLASS, **target({1: 0.5, 3: 0.5}, classes=[1, 2])}, "sampling.target.3"),
        (sampling(strategy="uniform", rate=0), "sampling.rate"),
        (sampling(strategy="uniform", rate=-0.1), "sampling.rate"),
        (sampling(strategy="uniform", rate=1.01), "sampling.rate"),
        (sampling(strategy="uniform", rate="often"), "sampling.rate"),
        (sampling(strategy="undersample", rate=0.5), "sampling.rate"),
        (sampling(strategy="balanced", budget=5, decay=1.0), "sampling.decay"),
        (sampling(strategy="balanced", budget=5, decay=-0.1), "sampling.decay"),
        (sampling(strategy="undersample", decay=0.5), "sampling.decay"),
        (sampling(strategy="uniform", decay=0.5), "sampling.decay"),
        (sampling(strategy="oversample", decay=0.5), "sampling.decay"),
        (sampling(strategy="balanced", budget=5, synthetic=True), "sampling.synthetic"),
        (
            sampling(strategy="balanced", budget=5, oversample=True, synthetic=True),
            "sampling.synthetic",
        ),
        (sampling(strategy="undersample", synthetic=True), "sampling.synthetic"),
        (sampling(strategy="oversample", synthetic="yes"), "sampling.synthetic"),
        (sampling(strategy="undersample", oversample=True), "sampling.oversample"),
        (sampling(strategy="oversample", oversample=True), "sampling.oversample"),
        (sampling(strategy="undersample", window="0s"), "sampling.window"),
        (sampling(strategy="undersample", window=0), "sampling.window"),
        (sampling(strategy="undersample", window="soon"), "sampling.window"),
        (sampling(strategy="undersample", window=-5), "sampling.window"),
        (sampling(max_out_of_orderness="1 day"), "sampling.max_out_of_orderness"),
        (sampling(allowed_lateness=True), "sampling.allowed_lateness"),
        (sampling(idle_timeout="-1s"), "sampling.idle_timeout"),
        (sampling(capacity=0), "sampling.capacity"),
        (sampling(neighbours=0), "sampling.neighbours"),
        (sampling(strategy="none", target={"true": 1.0}), "sampling.target"),
        (sampling(strategy="balanced", budget=5, target={"true": 1.0}), "sampling.target"),
        (target(["true"]), "sampling.target"),
        (sampling(classes="a,b"), "sampling.classes"),
        (sampling(strategy="undersample", windw="1s"), "sampling.windw"),
    ],
)
def test_bad_sampling_config_names_the_field(raw, field):
    """Fails at load with a ConfigError whose message starts with the field's path."""
    with pytest.raises(ConfigError) as info:
        load_config(raw)
    assert info.value.path == field
    assert str(info.value).startswith(field + ":"), str(info.value)


@pytest.mark.parametrize(
    "raw",
    [
        sampling(strategy="none"),
        sampling(strategy="uniform", rate=1),
        sampling(strategy="uniform", rate=0.01),
        sampling(strategy="balanced", budget=1, decay=0.0),
        sampling(strategy="balanced", budget=20, oversample=True, decay=0.9),
        target({"true": 0.25, "false": 0.75}, oversample=True, decay=0.5),
        target({True: 0.5, False: 0.5}),
        target({"1": 0.1, "0": 0.9}),
        sampling(strategy="undersample"),
        sampling(strategy="oversample", synthetic=True, neighbours=1),
        {"model": MULTICLASS, **target({"a": 0.5, "b": 0.5}, classes=["a", "b", "c"])},
        {"model": MULTICLASS, **target({"x": 0.2, "y": 0.8})},  # no classes: not checked
    ],
)
def test_good_sampling_configs_load(raw):
    load_config(raw)


def test_durations_parse_to_milliseconds():
    cfg = load_config(
        sampling(
            strategy="undersample",
            window="10s",
            max_out_of_orderness="250ms",
            allowed_lateness="1m",
            idle_timeout=1500,
        )
    )
    s = cfg.sampling
    assert (s.window, s.max_out_of_orderness, s.allowed_lateness, s.idle_timeout) == (
        10_000,
        250,
        60_000,
        1500,
    )
    assert parse_duration_ms("1h", "x") == 3_600_000 and parse_duration_ms(" 2 s ", "x") == 2000
    assert load_config(None).sampling == SamplingSettings()


def test_target_class_names_are_normalized_like_prediction_classes():
    """YAML ``true:`` is a bool key; it becomes "true", like prediction proba keys."""
    cfg = load_config(target({True: 0.25, False: 0.75}))
    assert cfg.sampling.target == {"true": 0.25, "false": 0.75}
    multi = load_config({"model": MULTICLASS, **target({1: 0.5, 2: 0.5}, classes=[1, 2, 3])})
    assert multi.sampling.classes == ("1", "2", "3")
    assert multi.sampling.target == {"1": 0.5, "2": 0.5}


@pytest.mark.parametrize(
    "raw",
    [
        sampling(strategy="uniform", rate=0.25, window="2s", capacity=50),
        sampling(strategy="balanced", budget=20, oversample=True, decay=0.8, idle_timeout="0s"),
        target({"true": 0.3, "false": 0.7}, decay=0.5, allowed_lateness="500ms"),
        {"model": MULTICLASS, **target({"a": 0.5, "b": 0.5}, classes=["a", "b", "c"])},
        sampling(strategy="oversample", synthetic=True, neighbours=3),
    ],
)
def test_to_dict_round_trips(raw):
    cfg = load_config(raw)
    again = load_config(cfg.to_dict())
    assert again == cfg
    assert again.to_dict() == cfg.to_dict()


def test_set_style_overrides():
    """Dotted overrides (what --set produces) are applied before validation."""
    base = sampling(strategy="balanced", budget=20, window="1s")
    cfg = load_config(base, {"sampling.strategy": "undersample", "sampling.budget": 0})
    assert cfg.sampling.strategy == "undersample" and cfg.sampling.window == 1000
    with pytest.raises(ConfigError, match=r"^sampling\.budget: only balanced"):
        load_config(base, {"sampling.strategy": "undersample"})
    cli = load_cli_config(
        None, ["sampling.strategy=target", "sampling.budget=8", "sampling.target={true: 1.0}"]
    )
    assert cli.sampling.target == {"true": 1.0} and cli.sampling.budget == 8
    assert load_cli_config(None, ["sampling.window=2s"]).sampling.window == 2000
    tuned = with_overrides(load_config(base), {"sampling.decay": 0.5})
    assert tuned.sampling.decay == 0.5 and tuned.sampling.budget == 20
    with pytest.raises(ConfigError, match=r"^sampling\.decay:"):
        with_overrides(load_config(base), {"sampling.decay": 1})
