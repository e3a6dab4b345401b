"""The layout tells the architecture, and a check keeps it so.

``make lint`` runs the import-linter contracts in ``pyproject.toml``; these tests show
that the check fails on a back-import and that no module imports itself in a circle.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(root / "pyproject.toml")],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_layering_contracts_hold() -> None:
    done = lint_imports(REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 kept, 0 broken" in done.stdout


def test_a_back_import_breaks_the_layering_check(tmp_path: Path) -> None:
    """The records (the bottom layer) importing the runner (above it) fails ``make lint``."""
    # Follows the stratiflow/jobs and stratiflow/operators links: a copy of every module.
    shutil.copytree(
        REPO / "stratiflow", tmp_path / "stratiflow", ignore=shutil.ignore_patterns("*.pyc")
    )
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    records = tmp_path / "stratiflow" / "records.py"
    records.write_text(records.read_text() + "\nfrom stratiflow.runner import replay  # noqa\n")
    done = lint_imports(tmp_path)
    assert done.returncode != 0
    assert "stratiflow.records -> stratiflow.runner" in done.stdout, done.stdout


def test_no_module_imports_itself_through_others() -> None:
    graph = grimp.build_graph("stratiflow", cache_dir=None)
    cycles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            path = graph.find_shortest_chain(importer=imported, imported=module)
            if path is not None:
                cycles.append(" -> ".join((module, *path)))
    assert cycles == []


def test_the_distribution_installs_one_top_level_package() -> None:
    """``jobs/`` and ``operators/`` reach the wheel as ``stratiflow.jobs`` and
    ``stratiflow.operators`` (links in ``stratiflow/``), never as generic top-level names."""
    import tomllib

    from setuptools import find_packages

    for name in ("jobs", "operators"):
        link = REPO / "stratiflow" / name
        assert link.is_symlink() and link.resolve() == (REPO / name).resolve()
    find = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    packages = find_packages(str(REPO), include=find["find"]["include"])
    assert {"stratiflow.jobs", "stratiflow.operators"} <= set(packages)
    assert {p.split(".")[0] for p in packages} == {"stratiflow"}


def test_no_module_imports_the_bare_jobs_or_operators_names() -> None:
    import ast

    offenders = []
    for path in sorted(REPO.glob("**/*.py")):
        if {".venv", ".stratiflow", "site"} & set(path.relative_to(REPO).parts):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [
                f"{path.relative_to(REPO)}: {n}"
                for n in names
                if n.split(".")[0] in ("jobs", "operators")
            ]
    assert offenders == []


def test_public_functions_have_numpydoc_sections() -> None:
    """Every public function of the core's subpackages (and the CLI's ``main``) that takes
    parameters documents them, and what it returns, in numpydoc sections (a generator's
    ``Yields`` stands for ``Returns``)."""
    import importlib
    import inspect
    import re

    packages = (
        "config",
        "validation",
        "labels",
        "evaluation",
        "sampling",
        "lifecycle",
        "curation",
        "learning",
        "runner",
    )
    missing = []
    for package in (*packages, "cli"):
        module = importlib.import_module(f"stratiflow.{package}")
        for name in module.__all__:
            function = inspect.unwrap(getattr(module, name))  # policy_for is lru_cache'd
            if not inspect.isfunction(function):
                continue
            signature = inspect.signature(function)
            if not signature.parameters:
                continue
            doc = inspect.getdoc(function) or ""
            sections = set(re.findall(r"^(\w[\w ]*)\n-{3,}$", doc, re.MULTILINE))
            wanted = {"Parameters"}
            if signature.return_annotation not in ("None", None):
                wanted.add("Yields" if inspect.isgeneratorfunction(function) else "Returns")
            missing += [f"stratiflow.{package}.{name}: {s}" for s in sorted(wanted - sections)]
    assert missing == []
