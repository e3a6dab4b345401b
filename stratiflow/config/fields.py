"""Reading one config section: typed fields, durations, closed option sets.

Every check raises :class:`~stratiflow.config.errors.ConfigError` with the field's path.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Iterable, Mapping
from typing import Any

from stratiflow.config.errors import ConfigError

__all__ = [
    "DURATION_PATTERN",
    "choice",
    "close_match",
    "did_you_mean",
    "known_classes",
    "no_unknown",
    "parse_duration_ms",
    "read_section",
    "vars_of",
]

DURATION_PATTERN = r"^\s*(\d+)\s*(ms|s|m|h)?\s*$"


_DURATION_RE = re.compile(DURATION_PATTERN)


def parse_duration_ms(value: Any, path: str) -> int:
    """Milliseconds from ``250``, ``"250ms"``, ``"10s"``, ``"5m"`` or ``"1h"``.

    Parameters
    ----------
    value
        A non-negative integer of milliseconds, or a string: a whole number with an
        optional unit ``ms``, ``s``, ``m`` or ``h`` (no unit: milliseconds).
    path
        The field's path, for the error message.

    Returns
    -------
    int
        The duration in milliseconds.

    Raises
    ------
    ConfigError
        If ``value`` is a boolean, a negative integer, or neither an integer nor such
        a string.

    Examples
    --------
    >>> parse_duration_ms("10s", "x"), parse_duration_ms(250, "x")
    (10000, 250)
    >>> parse_duration_ms("1.5s", "labels.ttl")
    Traceback (most recent call last):
    ...
    stratiflow.config.errors.ConfigError: labels.ttl: expected a duration ... got '1.5s'
    """
    if isinstance(value, bool):
        raise ConfigError(path, f"expected a duration such as 10s, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ConfigError(path, "a duration cannot be negative")
        return value
    if isinstance(value, str):
        match = _DURATION_RE.match(value)
        if match:
            number, unit = int(match.group(1)), match.group(2) or "ms"
            return number * {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}[unit]
    raise ConfigError(path, f"expected a duration such as 500ms, 10s or 5m, got {value!r}")


def vars_of(obj: Any) -> dict[str, Any]:
    """A settings object's fields as a plain mapping.

    Parameters
    ----------
    obj
        A dataclass instance, e.g. one section of a :class:`~stratiflow.config.Config`.

    Returns
    -------
    dict[str, Any]
        Each field's name and value, in declaration order (values are not copied).

    Examples
    --------
    >>> from stratiflow.config import UpdateSettings
    >>> vars_of(UpdateSettings(mode="micro_batch"))
    {'mode': 'micro_batch', 'batch_size': 32, 'interval': 0}
    """
    return {name: getattr(obj, name) for name in obj.__dataclass_fields__}


def read_section(raw: dict[str, Any], name: str, cls: type, durations: tuple[str, ...] = ()) -> Any:
    value = raw.get(name, {})
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ConfigError(name, f"must be a mapping, got {type(value).__name__}")
    fields = dataclasses.fields(cls)
    no_unknown(value, tuple(f.name for f in fields), name)
    defaults = cls()
    for key, given in value.items():
        expected = getattr(defaults, key)
        path = f"{name}.{key}"
        if isinstance(expected, bool) and not isinstance(given, bool):
            raise ConfigError(path, f"must be true or false, got {given!r}")
        if key.endswith("_ms") or key in durations:
            continue  # durations are parsed by the caller
        not_number = isinstance(given, bool) or not isinstance(given, int | float)
        if isinstance(expected, float) and not_number:
            raise ConfigError(path, f"must be a number, got {given!r}")
        is_int = isinstance(expected, int) and not isinstance(expected, bool)
        if is_int and (isinstance(given, bool) or not isinstance(given, int)):
            raise ConfigError(path, f"must be an integer, got {given!r}")
        if isinstance(expected, str) and not isinstance(given, str):
            raise ConfigError(path, f"must be a string, got {given!r}")
    return cls(**value)


def close_match(word: str, known: Iterable[str]) -> str | None:
    """The one of ``known`` that ``word`` most likely misspells (case aside), if any.

    Parameters
    ----------
    word
        What was given.
    known
        The names that exist.

    Returns
    -------
    str or None
        The closest name (:func:`difflib.get_close_matches`, cutoff 0.6), or ``None``
        when none is close.

    Examples
    --------
    >>> close_match("LogisticRegresion", ["LogisticRegression", "Perceptron"])
    'LogisticRegression'
    >>> close_match("modle", ["job", "model", "metrics"]), close_match("xyz", ["model"])
    ('model', None)
    """
    by_lower: dict[str, str] = {}
    for name in known:
        by_lower.setdefault(name.lower(), name)
    found = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[found[0]] if found else None


def did_you_mean(word: str, known: Iterable[str], prefix: str = "") -> str:
    """``"; did you mean PREFIX+MATCH?"`` for the :func:`close_match` of ``word``, else ``""``.

    >>> did_you_mean("report_evry", ["report_every", "window"], "metrics.")
    '; did you mean metrics.report_every?'
    """
    match = close_match(word, known)
    return f"; did you mean {prefix}{match}?" if match is not None else ""


def no_unknown(value: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    """Raise :class:`ConfigError` naming the first key of ``value`` not in ``allowed``
    (with the closest allowed one, when one is close).

    >>> no_unknown({"modle": []}, ("job", "model"), "")
    Traceback (most recent call last):
    ...
    stratiflow.config.errors.ConfigError: modle: unknown field (expected ...); did you mean model?
    """
    for key in value:
        if key not in allowed:
            path = f"{where}.{key}" if where else str(key)
            hint = did_you_mean(str(key), allowed, f"{where}." if where else "")
            raise ConfigError(path, f"unknown field (expected one of: {', '.join(allowed)}){hint}")


def choice(value: str, allowed: tuple[str, ...], path: str) -> None:
    """Raise :class:`ConfigError` when ``value`` is not one of ``allowed`` (with the
    closest one, when one is close).

    >>> choice("acuracy", ("accuracy", "macro_f1"), "selection.metric")
    Traceback (most recent call last):
    ...
    stratiflow.config.errors.ConfigError: selection.metric: 'acuracy' is not one of: \
...; did you mean accuracy?
    """
    if value not in allowed:
        hint = did_you_mean(value, allowed) if isinstance(value, str) else ""
        raise ConfigError(path, f"{value!r} is not one of: {', '.join(allowed)}{hint}")


def known_classes(target: Mapping[str, float], known: tuple[str, ...], why: str) -> None:
    for name in target:
        if name not in known:
            raise ConfigError(
                f"sampling.target.{name}",
                f"unknown class ({why}: {', '.join(known)})",
            )
