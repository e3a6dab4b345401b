"""The ``candidates`` and ``selection`` sections: more pipelines per model key beside
``model`` (named ``main``), and how the one whose predictions are published is chosen
(:mod:`stratiflow.lifecycle.selection`).

>>> candidates = parse_candidates({"candidates": [{"name": "tree",
...     "model": [{"tree.HoeffdingTreeClassifier": {"grace_period": 50}}]}]})
>>> candidates[0].name, candidates[0].model[0].path
('tree', 'tree.HoeffdingTreeClassifier')
>>> parse_selection({"selection": {"metric": "macro_f1"}}).metric
'macro_f1'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

from stratiflow.config.errors import ConfigError
from stratiflow.config.fields import choice, read_section
from stratiflow.config.model import ModelStep, build_model, model_steps

__all__ = [
    "SELECTION_METRICS",
    "Candidate",
    "SelectionMetric",
    "SelectionSettings",
    "parse_candidates",
    "parse_selection",
]

SelectionMetric = Literal["accuracy", "balanced_accuracy", "macro_f1", "log_loss"]
SELECTION_METRICS: tuple[str, ...] = get_args(SelectionMetric)
#: The name of the ``model`` section's pipeline among the candidates.
MAIN = "main"


@dataclass(frozen=True)
class Candidate:
    """One more pipeline per model key: its name and its River estimators."""

    name: str
    model: tuple[ModelStep, ...]


@dataclass(frozen=True)
class SelectionSettings:
    """How the serving (champion) pipeline is chosen among ``main`` and the candidates."""

    #: The rolling metric the pipelines are compared on (``log_loss``: lower is better).
    metric: SelectionMetric = "accuracy"
    #: Scored events the comparison runs over (each pipeline's rolling window).
    window: int = 1000
    #: No promotion before the key has this many scored events.
    min_scored: int = 500
    #: A challenger must beat the champion by more than this much.
    margin: float = 0.0


def parse_candidates(raw: dict[str, Any], *, check_model: bool = True) -> tuple[Candidate, ...]:
    """The ``candidates`` list, checked: unique names other than ``main``, models that build.

    Parameters
    ----------
    raw
        The whole job config as loaded from YAML.
    check_model
        Build each candidate's model (the check that its steps exist).

    Returns
    -------
    tuple of Candidate
        In the order given (empty without the section).

    Raises
    ------
    ConfigError
        With the field path, e.g. ``candidates[0].model[0].tree.Nope``.
    """
    value = raw.get("candidates")
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfigError("candidates", "must be a list of {name: ..., model: [...]}")
    out: list[Candidate] = []
    for i, item in enumerate(value):
        where = f"candidates[{i}]"
        if not isinstance(item, dict) or set(item) != {"name", "model"}:
            raise ConfigError(where, "each candidate is {name: NAME, model: [steps]}")
        name = item["name"]
        if not isinstance(name, str) or not name or name == MAIN:
            raise ConfigError(f"{where}.name", f"a non-empty name other than {MAIN!r}")
        if name in {c.name for c in out}:
            raise ConfigError(f"{where}.name", f"{name!r} is used twice")
        try:
            steps = model_steps(item["model"])
            if check_model:
                build_model(steps)
        except ConfigError as exc:
            raise ConfigError(f"{where}.{exc.path}", exc.message) from None
        out.append(Candidate(name, steps))
    return tuple(out)


def parse_selection(raw: dict[str, Any]) -> SelectionSettings:
    """The ``selection`` section, checked.

    Parameters
    ----------
    raw
        The whole job config as loaded from YAML.

    Returns
    -------
    SelectionSettings
        The section's settings.

    Raises
    ------
    ConfigError
        An unknown metric, a window or ``min_scored`` below 1, a negative margin.
    """
    settings = read_section(raw, "selection", SelectionSettings)
    choice(settings.metric, SELECTION_METRICS, "selection.metric")
    for name in ("window", "min_scored"):
        value = getattr(settings, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"selection.{name}", f"must be an integer >= 1, got {value!r}")
    if isinstance(settings.margin, bool) or not isinstance(settings.margin, int | float):
        raise ConfigError("selection.margin", f"must be a number, got {settings.margin!r}")
    if settings.margin < 0:
        raise ConfigError("selection.margin", "must be >= 0")
    return settings
