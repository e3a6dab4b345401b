"""Module names from before the subpackages, for state pickled under them.

Flink savepoints and checkpoints hold the model operator's state pickled: each
object names the module its class came from (``stratiflow.learner.ModelState``).
Those modules now live in subpackages; this finder answers the old names with the
new modules, so a savepoint taken before the move still restores. Old names that
became packages (``config``, ``labels``, ``sampling``, ``evaluation``) answer
through the package, which re-exports their classes (and ``sampling``'s private
``_Pending`` through its ``__getattr__``).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from types import ModuleType

#: Former module -> where it lives now (modules whose classes are kept in state).
MOVED = {
    "stratiflow.alignment": "stratiflow.sampling.alignment",
    "stratiflow.cleaning": "stratiflow.validation.cleaning",
    "stratiflow.learner": "stratiflow.learning.learner",
    "stratiflow.metrics": "stratiflow.evaluation.metrics",
    "stratiflow.sketches": "stratiflow.evaluation.sketches",
    "stratiflow.updates": "stratiflow.learning.updates",
    "stratiflow.validate": "stratiflow.validation.parse",
}


class MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports a former module name as the module that replaced it."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the module was imported under its own name."""


def install() -> None:
    """Put the finder on ``sys.meta_path`` once."""
    if not any(isinstance(finder, MovedModules) for finder in sys.meta_path):
        sys.meta_path.append(MovedModules())
