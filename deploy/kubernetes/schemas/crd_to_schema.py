"""Turn a CustomResourceDefinition's openAPIV3Schema into a strict JSON Schema.

    python deploy/kubernetes/schemas/crd_to_schema.py CRD.yml > OUT.schema.json

The API server rejects fields a structural schema does not declare (kubectl's
default server-side field validation is ``Strict``), but the openAPIV3Schema
says so only implicitly. This script makes it explicit for a plain JSON Schema
validator: every object that lists ``properties`` and neither allows
``additionalProperties`` nor carries ``x-kubernetes-preserve-unknown-fields``
gets ``additionalProperties: false``. It also adds what the API server checks
outside the schema: ``apiVersion``, ``kind`` and ``metadata.name``.
Nothing else is changed, so the output is as faithful as the CRD it came from.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

_NESTED = ("items", "additionalProperties", "not")
_LISTS = ("anyOf", "allOf", "oneOf")


def strict(node: Any) -> Any:
    """A copy of a schema node with unknown fields forbidden where the CRD fixes them."""
    if not isinstance(node, dict):
        return node
    out = dict(node)
    if "properties" in out:
        out["properties"] = {name: strict(sub) for name, sub in out["properties"].items()}
        if "additionalProperties" not in out and not out.get(
            "x-kubernetes-preserve-unknown-fields"
        ):
            out["additionalProperties"] = False
    for key in _NESTED:
        if isinstance(out.get(key), dict):
            out[key] = strict(out[key])
    for key in _LISTS:
        if isinstance(out.get(key), list):
            out[key] = [strict(sub) for sub in out[key]]
    return out


def crd_schema(crd: dict[str, Any], version: str | None = None) -> dict[str, Any]:
    """The JSON Schema of one served version of ``crd`` (default: the storage version)."""
    group = crd["spec"]["group"]
    kind = crd["spec"]["names"]["kind"]
    versions = crd["spec"]["versions"]
    chosen = next(
        v for v in versions if (v["name"] == version if version else v.get("storage", False))
    )
    body = strict(chosen["schema"]["openAPIV3Schema"])
    properties = {
        "apiVersion": {"const": f"{group}/{chosen['name']}"},
        "kind": {"const": kind},
        "metadata": {
            "type": "object",
            "required": ["name"],
            "properties": {"name": {"type": "string", "minLength": 1}},
        },
        **body.get("properties", {}),
    }
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": f"{kind} {group}/{chosen['name']} (from the CRD's openAPIV3Schema)",
        **{k: v for k, v in body.items() if k != "properties"},
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": properties,
        "additionalProperties": False,
    }


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    crd = yaml.safe_load(Path(argv[1]).read_text())
    schema = crd_schema(crd, argv[2] if len(argv) == 3 else None)
    json.dump(schema, sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
