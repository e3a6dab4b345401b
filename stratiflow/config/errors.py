"""The error every configuration check raises."""

from __future__ import annotations

__all__ = ["ConfigError"]


class ConfigError(ValueError):
    """A configuration value is wrong; the message starts with the field's path.

    Parameters
    ----------
    path
        The field's dotted path, e.g. ``metrics.report_every`` (empty: the config as
        a whole, such as a missing file); also kept as the ``path`` attribute.
    message
        What is wrong with the value.

    Examples
    --------
    >>> error = ConfigError("labels.ttl", "must be a positive duration")
    >>> str(error), error.path
    ('labels.ttl: must be a positive duration', 'labels.ttl')
    """

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message
