"""The Python worker's interpreter: PyFlink's, with Beam's state sampler told to wake often.

PyFlink starts each process-mode Python worker as ``<python.executable> -m
pyflink.fn_execution.beam.beam_boot ...``. Inside it, Beam's ``StateSampler`` runs a
thread that sleeps between samples, its sleep growing to 200 ms; at the end of every
bundle (every 100 ms here) the worker joins that thread, so each bundle end waited for
its sleep to run out (11 % of the worker thread's time in a profile). The period is a
default argument, fixed before any of our code is imported, so it is set here, before
the worker starts; then the joins wait at most :data:`SAMPLING_PERIOD_MS`.
docs/performance.md has the measurements.

``stratiflow-python-worker`` (a console script) is what ``python.executable`` names. Any
other use (PyFlink also runs ``python.executable -c ...``) runs the plain interpreter.
"""

from __future__ import annotations

import os
import runpy
import sys

#: Beam's state-sampler period in the worker (Beam's default is 200 ms).
SAMPLING_PERIOD_MS = 5


def tune_beam() -> None:
    """Lower Beam's state-sampler period for every sampler made from now on."""
    from apache_beam.runners.worker import statesampler

    init = statesampler.StateSampler.__init__
    defaults = init.__defaults__
    # (sampling_period_ms,): refuse to guess if a Beam upgrade changed the signature.
    if defaults == (statesampler.DEFAULT_SAMPLING_PERIOD_MS,):
        init.__defaults__ = (SAMPLING_PERIOD_MS,)


def main(argv: list[str] | None = None) -> None:
    """``-m MODULE ARGS...``: run the module as ``python -m`` would, Beam tuned; anything
    else: exec the interpreter with the same arguments."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) < 2 or args[0] != "-m":
        os.execv(sys.executable, [sys.executable, *args])
    tune_beam()
    sys.argv = [args[1], *args[2:]]
    runpy.run_module(args[1], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
