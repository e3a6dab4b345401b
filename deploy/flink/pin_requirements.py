"""Print deploy/flink/requirements.txt: the exact runtime dependency closure of stratiflow.

    .venv/bin/python deploy/flink/pin_requirements.py > deploy/flink/requirements.txt

It reads the installed distributions of the environment it runs in (the
project's .venv, where the test suite passes), follows stratiflow's
requirements and theirs, and pins each one to the installed version. Extras
and markers are honoured as pip would on the Flink image (Linux, CPython 3.11).
"""

from __future__ import annotations

import importlib.metadata as metadata
import re

from packaging.markers import default_environment
from packaging.requirements import Requirement

HEADER = """\
# Exact versions of stratiflow's runtime dependencies for the Flink image (deploy/flink/Dockerfile).
# They are the versions the test suite runs with: the dependency closure of `stratiflow` in the
# project's .venv (apache-flink 2.3.0 pins apache-beam<=2.61, hence numpy<2.2 and river 0.23).
# tests/unit/deploy/test_deploy.py checks that every dependency in pyproject.toml is pinned here
# within its declared range. Regenerate with: .venv/bin/python deploy/flink/pin_requirements.py
"""


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(root: str = "stratiflow") -> dict[str, str]:
    """``{name: installed version}`` of everything ``root`` needs at run time (not ``root``)."""
    environment = {key: str(value) for key, value in default_environment().items()}
    found: dict[str, str] = {}

    def visit(name: str, extras: tuple[str, ...]) -> None:
        key = canonical(name)
        if key in found:
            return
        dist = metadata.distribution(name)
        found[key] = dist.version
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker and not any(
                req.marker.evaluate({**environment, "extra": extra}) for extra in extras
            ):
                continue
            visit(req.name, tuple(sorted(req.extras)) or ("",))

    visit(root, ("",))
    del found[canonical(root)]
    return found


def main() -> None:
    print(HEADER, end="")
    for name, version in sorted(closure().items()):
        print(f"{name}=={version}")


if __name__ == "__main__":
    main()
