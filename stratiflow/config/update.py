"""The ``update`` section: when the model learns the examples it is given
(:mod:`stratiflow.learning.updates`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal, get_args

from stratiflow.config.errors import ConfigError
from stratiflow.config.fields import choice, parse_duration_ms, read_section

__all__ = [
    "DURATIONS",
    "UPDATE_MODES",
    "USED_BY",
    "UpdateMode",
    "UpdateSettings",
    "parse_update",
]

UpdateMode = Literal["per_sample", "micro_batch", "periodic"]
UPDATE_MODES: tuple[str, ...] = get_args(UpdateMode)
#: The fields given as durations.
DURATIONS = ("interval",)


#: The mode-specific fields and the modes that use them (each policy class in
#: :mod:`stratiflow.learning.updates` declares the same in its ``uses``).
USED_BY: dict[str, tuple[tuple[UpdateMode, ...], str]] = {
    "batch_size": (("micro_batch",), "uses a batch size"),
    "interval": (("micro_batch", "periodic"), "use an interval (per_sample learns at once)"),
}


@dataclass(frozen=True)
class UpdateSettings:
    """When the model learns the examples it is given (see :mod:`stratiflow.learning.updates`)."""

    #: ``per_sample``, ``micro_batch`` (N examples or T of event time) or ``periodic`` (every T).
    mode: UpdateMode = "per_sample"
    #: ``micro_batch``: examples per batch.
    batch_size: int = 32
    #: ``micro_batch``: flush a batch this old (event time; 0: size only);
    #: ``periodic``: learn every this much event time.
    interval: int = 0


def parse_update(raw: dict[str, Any]) -> UpdateSettings:
    """The ``update`` section, checked (the mode and the fields it uses together)."""
    update = read_section(raw, "update", UpdateSettings, durations=DURATIONS)
    update = replace(update, interval=parse_duration_ms(update.interval, "update.interval"))
    choice(update.mode, UPDATE_MODES, "update.mode")
    if update.batch_size < 1:
        raise ConfigError("update.batch_size", "must be at least 1")
    defaults = UpdateSettings()
    for name, (users, what) in USED_BY.items():
        if update.mode not in users and getattr(update, name) != getattr(defaults, name):
            raise ConfigError(
                f"update.{name}", f"only {' and '.join(users)} {what}, not {update.mode}"
            )
    if update.mode == "periodic" and update.interval == 0:
        raise ConfigError("update.interval", "periodic updates need an interval, e.g. 10s")
    return update
