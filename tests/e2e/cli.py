"""Run the installed ``stratiflow`` CLI the way a user does, and write job configs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

STRATIFLOW = str(Path(sys.executable).parent / "stratiflow")


def run_cli(
    *args: str, timeout: float = 300, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [STRATIFLOW, *args], capture_output=True, text=True, timeout=timeout, env=env
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"stratiflow {' '.join(args)} exited {result.returncode}\n"
            f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-5000:]}"
        )
    return result


def write_config(path: Path, bootstrap: str, prefix: str, **sections: Any) -> Path:
    """A job YAML whose topics are unique to one test."""
    config: dict[str, Any] = {
        "kafka": {"bootstrap_servers": bootstrap, "group_id": prefix},
        "topics": {
            "events": f"{prefix}-events",
            "predictions": f"{prefix}-predictions",
            "metrics": f"{prefix}-metrics",
            "dead_letters": f"{prefix}-dead-letters",
            "sampling_stats": f"{prefix}-sampling-stats",
        },
        "model": [
            {"preprocessing.StandardScaler": {}},
            {"linear_model.LogisticRegression": {"l2": 0.0}},
        ],
        "sampling": {"strategy": "none"},
        "metrics": {"report_every": 500},
    }
    for name, value in sections.items():
        config.setdefault(name, {}).update(value)
    path.write_text(yaml.safe_dump(config))
    return path
