"""State pickled before the subpackages still loads (savepoints survive the move)."""

from __future__ import annotations

import importlib
import pickle

import pytest

from stratiflow._moved import MOVED
from stratiflow.config import load_config
from stratiflow.evaluation import Evaluation
from stratiflow.learning import ModelState


@pytest.mark.parametrize("old", sorted(MOVED))
def test_a_former_module_name_is_the_module_that_replaced_it(old: str) -> None:
    assert importlib.import_module(old) is importlib.import_module(MOVED[old])


def test_a_model_state_pickled_under_the_former_names_loads() -> None:
    """A pickle of a key's whole state with every class named as before the move."""
    state = ModelState.new(load_config({}), "default")
    # protocol 2 names each class as text (GLOBAL "module\nname"), without frame lengths
    data = pickle.dumps(state, protocol=2)
    # ModelState was in stratiflow.learner, later stratiflow.learning.learner (which still
    # re-exports it from stratiflow.learning.state).
    data = data.replace(_name("stratiflow.learning.state"), _name("stratiflow.learning.learner"))
    for old, new in MOVED.items():
        data = data.replace(_name(new), _name(old))
    # same-name packages: the former modules' classes are reached through the package
    config_modules = ("settings", "job", "sampling", "metrics", "labels", "update", "validation")
    for package, module in (
        ("evaluation", "prequential"),
        *(("config", m) for m in (*config_modules, "model")),
    ):
        data = data.replace(_name(f"stratiflow.{package}.{module}"), _name(f"stratiflow.{package}"))
    assert b"stratiflow.learner" in data and b"stratiflow.learning" not in data
    assert b"stratiflow.config\n" in data and b"stratiflow.config." not in data
    loaded = pickle.loads(data)
    assert isinstance(loaded, ModelState) and isinstance(loaded.evaluation, Evaluation)
    assert pickle.dumps(loaded, protocol=2) == pickle.dumps(state, protocol=2)


def _name(module: str) -> bytes:
    """A class's module as pickle protocol 2 writes it (after the GLOBAL opcode)."""
    return b"c" + module.encode() + b"\n"
