"""The published job-config JSON Schema: up to date, valid, and in step with the loader."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

import pytest
import yaml
from jsonschema import Draft202012Validator

from stratiflow.config import DURATION_FIELDS, Config, ConfigError, load_config
from stratiflow.config.schema import SCHEMA_PATH, job_config_schema

REPO = Path(__file__).resolve().parents[3]
JOB_FILES = [REPO / "examples" / "job.yaml", REPO / "deploy" / "compose" / "job.yaml"]
SECTIONS = {
    f.name: f.type
    for f in dataclasses.fields(Config)
    if dataclasses.is_dataclass(get_type_hints(Config)[f.name])
}
#: What a section needs for a duration field to be allowed at all.
CONTEXT = {"update": {"mode": "micro_batch"}}
VALIDATOR = Draft202012Validator(json.loads(SCHEMA_PATH.read_text()))


def section_fields(section: str) -> dict[str, Any]:
    return get_type_hints(get_type_hints(Config)[section])


def test_the_published_schema_is_the_generated_one() -> None:
    """``python -m stratiflow.config.schema`` rewrites it after a settings change."""
    assert json.loads(SCHEMA_PATH.read_text()) == job_config_schema()
    Draft202012Validator.check_schema(job_config_schema())


@pytest.mark.parametrize("path", JOB_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_the_shipped_job_files_match_it(path: Path) -> None:
    errors = [e.message for e in VALIDATOR.iter_errors(yaml.safe_load(path.read_text()))]
    assert errors == []


def test_the_defaults_written_out_match_it() -> None:
    assert VALIDATOR.is_valid(Config().to_dict())


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_durations_are_exactly_the_fields_the_loader_reads_as_durations(section: str) -> None:
    for name, hint in section_fields(section).items():
        if hint is not int:
            continue
        raw = {section: {**CONTEXT.get(section, {}), name: "30s"}}
        schema_says = VALIDATOR.is_valid(raw)
        if name in DURATION_FIELDS.get(section, ()):
            assert schema_says, f"{section}.{name}"
            assert getattr(getattr(load_config(raw, check_model=False), section), name) == 30_000
        else:
            assert not schema_says, f"{section}.{name}"
            with pytest.raises(ConfigError, match=f"{section}.{name}"):
                load_config(raw, check_model=False)


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_a_value_outside_a_closed_set_fails_both(section: str) -> None:
    for name, hint in section_fields(section).items():
        if get_origin(hint) is not Literal:
            continue
        assert "none" in get_args(hint) or get_args(hint)  # a closed set
        raw = {section: {name: "no-such-option"}}
        assert not VALIDATOR.is_valid(raw), f"{section}.{name}"
        with pytest.raises(ConfigError, match=f"{section}.{name}"):
            load_config(raw, check_model=False)


def test_unknown_fields_fail_both() -> None:
    raw = {"sampling": {"strategy": "balanced", "budgt": 10}}
    assert not VALIDATOR.is_valid(raw)
    with pytest.raises(ConfigError, match=r"sampling\.budgt"):
        load_config(raw, check_model=False)
