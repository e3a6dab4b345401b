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
    assert "3 kept, 0 broken" in done.stdout


def test_a_back_import_breaks_the_layering_check(tmp_path: Path) -> None:
    """The records (the bottom layer) importing the runner (above it) fails ``make lint``."""
    for name in ("stratiflow", "jobs", "operators"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("*.pyc"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    records = tmp_path / "stratiflow" / "records.py"
    records.write_text(records.read_text() + "\nfrom stratiflow.runner import replay  # noqa\n")
    done = lint_imports(tmp_path)
    assert done.returncode != 0
    assert "stratiflow.records -> stratiflow.runner" in done.stdout, done.stdout


def test_no_module_imports_itself_through_others() -> None:
    graph = grimp.build_graph("stratiflow", "jobs", "operators", cache_dir=None)
    cycles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            path = graph.find_shortest_chain(importer=imported, imported=module)
            if path is not None:
                cycles.append(" -> ".join((module, *path)))
    assert cycles == []
