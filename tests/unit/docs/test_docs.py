"""The documentation builds (MkDocs, strict: a broken link or docstring fails), and the
README stays a landing page that starts with the two commands."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def test_the_docs_build_strict(tmp_path: Path) -> None:
    mkdocs = Path(sys.executable).with_name("mkdocs")
    done = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    assert "EventTimeAligner" in api and "load_config" in api  # docstrings made it in


def test_the_readme_is_a_landing_page() -> None:
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 200
    commands = "\n".join(lines[:8])
    assert "make demo" in commands and "make test" in commands
    pages = sorted(p.name for p in (REPO / "docs").glob("*.md"))
    linked = {name for name in pages if f"docs/{name}" in "\n".join(lines)}
    assert set(pages) - linked <= {"index.md"}, "every reference page is linked from the README"
