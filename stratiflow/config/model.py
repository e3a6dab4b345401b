"""The model section: River estimators named in the job YAML, built and checked.

Building is the check: a step that names no River class, or a parameter the class
does not take, fails at load with the step's path (``model[1].linear_model...``).

>>> from stratiflow.config import ModelStep
>>> model = build_model([ModelStep("linear_model.LogisticRegression", {"l2": 0.0})])
>>> steps_path(model), is_binary(model)
('linear_model.log_reg.LogisticRegression', True)
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from stratiflow.config.errors import ConfigError
from stratiflow.config.fields import close_match, did_you_mean

__all__ = [
    "DEFAULT_MODEL",
    "ModelStep",
    "build_model",
    "instantiate",
    "is_binary",
    "model_step",
    "model_steps",
    "steps_path",
]


@dataclass(frozen=True)
class ModelStep:
    """One River estimator, by its path under ``river.`` and its parameters.

    Attributes
    ----------
    path
        ``module.Class`` under ``river.``, e.g. ``linear_model.LogisticRegression``.
    params
        The class's keyword arguments; a value may itself be a River object, given
        as ``{module.Class: {params}}``.
    """

    path: str
    params: Mapping[str, Any] = field(default_factory=dict)


DEFAULT_MODEL: tuple[ModelStep, ...] = (
    ModelStep("preprocessing.StandardScaler", {}),
    ModelStep("linear_model.LogisticRegression", {}),
)


def model_steps(value: Any) -> tuple[ModelStep, ...]:
    """The ``model`` section as steps (the default pipeline when it is missing)."""
    if value is None:
        return DEFAULT_MODEL
    if isinstance(value, dict):
        raise ConfigError(
            "model",
            "must be a list of steps, not a mapping: e.g. [preprocessing.StandardScaler, "
            "{linear_model.LogisticRegression: {l2: 0.0}}] (on the command line: "
            "--set 'model=[linear_model.LogisticRegression]')",
        )
    if not isinstance(value, list) or not value:
        raise ConfigError("model", "must be a non-empty list of {estimator: {params}}")
    message = "each step is one mapping {module.Estimator: {params}}"
    return tuple(model_step(item, f"model[{i}]", message) for i, item in enumerate(value))


def model_step(item: Any, where: str, message: str) -> ModelStep:
    """One step as YAML gives it (``module.Class`` or ``{module.Class: {params}}``).

    Parameters
    ----------
    item
        The YAML value.
    where
        The config path errors start with.
    message
        What a malformed step is told.

    Returns
    -------
    ModelStep
        Its path and parameters (not built yet).

    Raises
    ------
    ConfigError
        ``where: message`` when it is not one mapping from a path to parameters.
    """
    if isinstance(item, str):
        item = {item: {}}
    if not isinstance(item, dict) or len(item) != 1:
        raise ConfigError(where, message)
    ((path, params),) = item.items()
    if params is None:
        params = {}
    if not isinstance(path, str) or not isinstance(params, dict):
        raise ConfigError(where, message)
    return ModelStep(path, dict(params))


def build_model(steps: Iterable[ModelStep]) -> Any:
    """Instantiate the River estimators named in the config and chain them.

    A step's parameter may itself be an estimator given the same way, e.g.
    ``optimizer: {optim.SGD: {lr: 0.05}}``.

    Parameters
    ----------
    steps
        The ``model`` section's steps, in pipeline order; the last must classify.

    Returns
    -------
    Any
        The estimator of a single step, else a ``river.compose.Pipeline`` of them all.

    Raises
    ------
    ConfigError
        If there is no step, a step names no River estimator or a parameter its class
        does not take, the class refuses its parameters, or the last step is not a
        classifier; the path names the step, e.g. ``model[1].linear_model...``.

    Examples
    --------
    >>> sgd = {"optim.SGD": {"lr": 0.05}}  # a River object as a parameter
    >>> model = build_model([
    ...     ModelStep("preprocessing.StandardScaler"),
    ...     ModelStep("linear_model.LogisticRegression", {"optimizer": sgd}),
    ... ])
    >>> list(model.steps), model["LogisticRegression"].optimizer.lr.learning_rate
    (['StandardScaler', 'LogisticRegression'], 0.05)
    >>> build_model([ModelStep("linear_model.LogisticRegression", {"l3": 0.0})])
    Traceback (most recent call last):
    ...
    stratiflow.config.errors.ConfigError: model[0].linear_model.LogisticRegression.l3: unknown ...
    """
    from river import compose  # River's import takes seconds: only when a model is built
    from river import utils as river_utils

    estimators = [
        instantiate(s.path, s.params, f"model[{i}].{s.path}") for i, s in enumerate(steps)
    ]
    if not estimators:
        raise ConfigError("model", "needs at least one estimator")
    model = estimators[0] if len(estimators) == 1 else compose.Pipeline(*estimators)
    if not river_utils.inspect.isclassifier(model):
        raise ConfigError(
            f"model[{len(estimators) - 1}]",
            f"{steps_path(estimators[-1])} is not a classifier; the last step must classify",
        )
    return model


def steps_path(estimator: Any) -> str:
    return type(estimator).__module__.removeprefix("river.") + "." + type(estimator).__name__


def is_binary(model: Any) -> bool:
    """Whether a River classifier learns two classes only (``_multiclass`` false)."""
    return not getattr(model, "_multiclass", True)


def instantiate(
    path: str, params: Mapping[str, Any], where: str, any_river_object: bool = False
) -> Any:
    """A River object from its path under ``river.`` and its parameters.

    Parameters
    ----------
    path
        ``module.Class`` under ``river.``, e.g. ``linear_model.LogisticRegression``.
    params
        The class's keyword arguments (a value may itself be ``{module.Class: {params}}``).
    where
        The config path errors start with.
    any_river_object
        Accept any River object (optimizers, losses, detectors), not only estimators.

    Returns
    -------
    Any
        The instance.

    Raises
    ------
    ConfigError
        No such module or class (with the closest existing path, when one is close), a
        parameter the class does not take, or a value the class refuses.

    Examples
    --------
    >>> instantiate("linear_model.LogisticRegresion", {}, "model[0]")
    Traceback (most recent call last):
    ...
    stratiflow.config.errors.ConfigError: model[0]: river.linear_model has no estimator \
'LogisticRegresion'; did you mean linear_model.LogisticRegression?
    """
    from river import base as river_base

    base = river_base.Base if any_river_object else river_base.Estimator
    module_name, _, class_name = path.rpartition(".")
    if not module_name or not class_name:
        raise ConfigError(
            where, "expected module.Estimator under river, e.g. linear_model.Perceptron"
        )
    try:
        module = importlib.import_module(f"river.{module_name}")
    except ImportError:
        hint = _suggest_path(module_name, class_name, base, module_exists=False)
        raise ConfigError(where, f"river has no module {module_name!r}{hint}") from None
    cls = getattr(module, class_name, None)
    if not inspect.isclass(cls) or not issubclass(cls, base):
        kind = "estimator" if base is river_base.Estimator else "class"
        hint = _suggest_path(module_name, class_name, base, module_exists=True)
        raise ConfigError(where, f"river.{module_name} has no {kind} {class_name!r}{hint}")
    signature = inspect.signature(cls)
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    kwargs = {}
    for name, value in params.items():
        if name not in signature.parameters and not accepts_any:
            accepted = [p for p in signature.parameters if p not in ("args", "kwargs")]
            raise ConfigError(
                f"{where}.{name}",
                f"unknown parameter (accepted: {', '.join(accepted)})"
                + did_you_mean(str(name), accepted),
            )
        kwargs[name] = _param_value(value, f"{where}.{name}")
    try:
        return cls(**kwargs)
    except Exception as exc:  # River validates in constructors with assorted exception types
        raise ConfigError(where, f"cannot build {path}: {exc}") from None


#: River modules that hold no estimators (or need test-only dependencies).
_NOT_ESTIMATOR_MODULES = frozenset({"api", "checks", "conf", "conftest", "test_estimators"})


@cache
def _river_modules() -> tuple[str, ...]:
    """River's public modules and their public subpackages (``drift.binary``), by path
    under ``river.``, listed from the file system (nothing is imported)."""
    import river

    root = Path(next(iter(river.__path__)))
    names: list[str] = []
    for info in pkgutil.iter_modules([str(root)]):
        if info.name.startswith("_") or info.name in _NOT_ESTIMATOR_MODULES:
            continue
        names.append(info.name)
        if info.ispkg:
            names += [
                f"{info.name}.{sub.name}"
                for sub in pkgutil.iter_modules([str(root / info.name)])
                if sub.ispkg and not sub.name.startswith(("_", "test"))
            ]
    return tuple(names)


def _classes(module_name: str, base: type) -> list[str]:
    """The public ``base`` subclasses ``river.<module_name>`` exposes."""
    try:
        module = importlib.import_module(f"river.{module_name}")
    except Exception:  # a River module that needs an optional dependency
        return []
    return [
        name
        for name, obj in vars(module).items()
        if not name.startswith("_") and inspect.isclass(obj) and issubclass(obj, base)
    ]


def _suggest_path(module_name: str, class_name: str, base: type, *, module_exists: bool) -> str:
    """``"; did you mean module.Class?"`` for a path that names nothing, else ``""``.

    Only runs when a config is wrong: it imports every River module (about a second).
    The same class in another module wins over a close name in this one
    (``linear_model.HoeffdingTreeClassifier`` is ``tree.HoeffdingTreeClassifier``),
    which wins over a close name anywhere.
    """
    everywhere: dict[str, str] = {}
    for module in _river_modules():
        for name in _classes(module, base):
            everywhere.setdefault(name, f"{module}.{name}")
    exact = {name.lower(): path for name, path in everywhere.items()}.get(class_name.lower())
    if exact is not None:
        return f"; did you mean {exact}?"
    own = close_match(class_name, _classes(module_name, base)) if module_exists else None
    if own is not None:
        return f"; did you mean {module_name}.{own}?"
    anywhere = close_match(class_name, everywhere)
    if anywhere is not None:
        return f"; did you mean {everywhere[anywhere]}?"
    if not module_exists:
        return did_you_mean(module_name, _river_modules())
    return ""


def _param_value(value: Any, where: str) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        ((key, inner),) = value.items()
        if (
            isinstance(key, str)
            and "." in key
            and key[:1].islower()
            and (inner is None or isinstance(inner, dict))
        ):
            # Parameters may be any River object: optimizers, losses, initializers...
            return instantiate(key, inner or {}, f"{where}.{key}", any_river_object=True)
    return value
