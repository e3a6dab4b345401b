"""The job config's JSON Schema, generated from the settings classes.

Editors that read JSON Schema (VS Code's YAML extension, JetBrains IDEs) complete and
check job files with it: ``# yaml-language-server: $schema=../schemas/job-config.schema.json``
at the top of a job YAML. Field types, closed option sets (``Literal`` types), defaults
and the ``#:`` comments above each field come from :mod:`stratiflow.config.settings`,
so the schema cannot drift from the loader; ``python -m stratiflow.config.schema``
rewrites ``schemas/job-config.schema.json``.

>>> schema = job_config_schema()
>>> schema["properties"]["sampling"]["properties"]["strategy"]["enum"][:3]
['none', 'uniform', 'balanced']
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import sys
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from stratiflow.config.fields import DURATION_PATTERN
from stratiflow.config.model import ModelStep
from stratiflow.config.selection import Candidate
from stratiflow.config.settings import DURATION_FIELDS, Config
from stratiflow.config.validation import FeatureRule

__all__ = ["SCHEMA_PATH", "job_config_schema"]

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "job-config.schema.json"
_DURATION = {
    "anyOf": [
        {"type": "integer", "minimum": 0},
        {"type": "string", "pattern": DURATION_PATTERN},
    ]
}
_SCALAR = {"type": ["string", "number", "boolean"]}


def job_config_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a job YAML."""
    schema = _object(Config, section="")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://stratiflow.dev/schemas/job-config.schema.json",
        "title": "stratiflow job configuration",
        "description": (
            "A job YAML for stratiflow (stratiflow submit / backtest / train --config). Every "
            "section is optional; what is left out takes its default. Durations are "
            "milliseconds or strings such as 500ms, 10s, 5m, 1h. Generated from "
            "stratiflow.config.settings; the loader's checks (ranges, combinations) go further."
        ),
        **schema,
    }


def _object(cls: type, section: str) -> dict[str, Any]:
    hints = get_type_hints(cls)
    docs = _field_comments(cls)
    defaults = cls() if cls is not Candidate else None
    properties: dict[str, Any] = {}
    prop: dict[str, Any]
    for f in dataclasses.fields(cls):
        path = f"{section}.{f.name}" if section else f.name
        if hints[f.name] == tuple[ModelStep, ...]:
            prop = _model_schema()
        elif hints[f.name] == tuple[Candidate, ...]:
            prop = {"type": "array", "items": _object(Candidate, "candidates"), "default": []}
        elif hints[f.name] == ModelStep | None:  # drift.detector: one step, or null
            prop = {"anyOf": [_STEP, {"type": "null"}], "default": None}
        elif f.name in DURATION_FIELDS.get(section, ()):
            prop = dict(_DURATION)
        elif dataclasses.is_dataclass(hints[f.name]):
            prop = _object(hints[f.name], section=f.name)
        else:
            prop = _type(hints[f.name], path)
        if f.name in docs:
            prop["description"] = docs[f.name]
        default = getattr(defaults, f.name, None)
        if defaults is not None and not dataclasses.is_dataclass(default) and "default" not in prop:
            prop["default"] = _plain(default)
        properties[f.name] = prop
    out: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if cls.__doc__ and cls is not Config and not cls.__doc__.startswith(cls.__name__ + "("):
        # The summary paragraph; the numpydoc sections below it are for the API reference.
        summary = inspect.cleandoc(cls.__doc__).split("\n\n", 1)[0]
        out["description"] = " ".join(summary.split())
    return out


def _type(hint: Any, path: str) -> dict[str, Any]:
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return {}
    if origin is Literal:
        return {"enum": list(args)}
    if origin in (Union, types.UnionType):
        return {"anyOf": [_type(a, path) for a in args]}
    if hint is type(None):
        return {"type": "null"}
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):  # e.g. curation.hard_examples
        return _object(hint, section=path)
    if hint is bool:
        return {"type": "boolean"}
    if hint is int:
        return {"type": "integer"}
    if hint is float:
        return {"type": "number"}
    if hint is str:
        return {"type": "string"}
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": _type(args[0], path)}
        return {
            "type": "array",
            "prefixItems": [_type(a, path) for a in args],
            "minItems": len(args),
            "maxItems": len(args),
        }
    if origin is Mapping or hint is Mapping:
        value = args[1] if args else Any
        if value is FeatureRule:
            return {"type": "object", "additionalProperties": _object(FeatureRule, "feature")}
        if value is str:  # Java/Flink properties: YAML numbers and booleans are passed as text
            return {"type": "object", "additionalProperties": _SCALAR}
        return {"type": "object", "additionalProperties": _type(value, path)}
    raise TypeError(f"{path}: no JSON Schema for {hint!r}")


#: One River object by module path: ``module.Class`` or ``{module.Class: {params}}``.
_STEP = {
    "oneOf": [
        {"type": "string", "pattern": r"^[a-z_][a-z0-9_.]*\.[A-Za-z_][A-Za-z0-9_]*$"},
        {
            "type": "object",
            "minProperties": 1,
            "maxProperties": 1,
            "additionalProperties": {"type": ["object", "null"]},
        },
    ]
}


def _model_schema() -> dict[str, Any]:
    return {
        "type": "array",
        "minItems": 1,
        "items": _STEP,
        "description": (
            "River estimators by module path under river., applied as a pipeline, each "
            "{module.Class: {parameter: value}}; a parameter may itself be "
            "{module.Class: {...}}. The last step must be a classifier."
        ),
        "default": [{s.path: dict(s.params)} for s in Config().model],
    }


def _field_comments(cls: type) -> dict[str, str]:
    """The ``#:`` comment lines right above each field of a settings class."""
    out: dict[str, str] = {}
    pending: list[str] = []
    for line in inspect.getsource(cls).splitlines():
        stripped = line.strip()
        if stripped.startswith("#:"):
            pending.append(stripped[2:].strip())
            continue
        match = re.match(r"(\w+)\s*:", stripped)
        if match and pending:
            out[match.group(1)] = " ".join(pending).replace("``", "`")
        pending = []
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def main() -> int:
    SCHEMA_PATH.write_text(json.dumps(job_config_schema(), indent=2) + "\n")
    print(f"wrote {SCHEMA_PATH}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
