"""The Python workers' interpreter (stratiflow-python-worker): Beam tuned, same Python."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from stratiflow.local.procs import python_worker_executable

SCRIPT = Path(sys.executable).parent / "stratiflow-python-worker"


def test_python_executable_names_the_worker_script_installed_next_to_python():
    assert python_worker_executable(sys.executable) == str(SCRIPT)
    assert python_worker_executable("/nowhere/bin/python") == "/nowhere/bin/python"


def test_a_module_run_through_it_sees_beams_sampler_waking_every_5_ms(tmp_path):
    probe = (
        "from apache_beam.runners.worker.statesampler import StateSampler;"
        "from apache_beam.utils.counters import CounterFactory;"
        "import sys; print(StateSampler('x', CounterFactory()).sampling_period_ms, sys.argv[1:])"
    )
    module = "stratiflow_probe_module"
    done = subprocess.run(
        [str(SCRIPT), "-m", module, "--id=1"],
        env={"PYTHONPATH": str(_module_dir(tmp_path, module, probe))},
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.split("\n")[0] == "5 ['--id=1']"
    # Beam's own default, for comparison: the script is what changes it.
    plain = subprocess.run(
        [sys.executable, "-m", module], env={"PYTHONPATH": str(tmp_path)},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert plain.stdout.split("\n")[0] == "200 []"


def test_anything_else_runs_the_plain_interpreter():
    done = subprocess.run(
        [str(SCRIPT), "-c", "import sys; print(sys.executable, sys.argv[1:])", "a"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout.strip() == f"{sys.executable} ['a']"


def _module_dir(folder: Path, name: str, code: str) -> Path:
    (folder / f"{name}.py").write_text(code + "\n")
    return folder
