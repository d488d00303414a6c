"""Bar sizes: one spelling for the store, accepting pandas' and IB's."""

from __future__ import annotations

import re

from ibkrfw.errors import ConfigError
from ibkrfw.model._time import NS_PER_SECOND

__all__ = ["bar_size_ns", "normalize_bar_size"]

_UNITS = {
    "s": "s",
    "sec": "s",
    "secs": "s",
    "second": "s",
    "seconds": "s",
    "min": "min",
    "mins": "min",
    "minute": "min",
    "minutes": "min",
    "t": "min",
    "h": "h",
    "hour": "h",
    "hours": "h",
    "d": "d",
    "day": "d",
    "days": "d",
    "w": "w",
    "week": "w",
    "weeks": "w",
}
_SECONDS = {"s": 1, "min": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}
_PATTERN = re.compile(r"^\s*(\d*)\s*([a-zA-Z]+)\s*$")


def normalize_bar_size(bar_size: str) -> str:
    """Return the store's spelling of ``bar_size``: ``"<n>s"``, ``min``, ``h``, ``d`` or ``w``.

    pandas' spellings (``"5min"``, ``"1h"``, ``"1D"``) and IB's (``"5 mins"``, ``"1 hour"``,
    ``"1 day"``) are accepted.

    Raises:
        ConfigError: if the spelling is not understood or the count is not positive.

    Example:
        >>> normalize_bar_size("5 mins"), normalize_bar_size("1D"), normalize_bar_size("min")
        ('5min', '1d', '1min')
    """
    match = _PATTERN.match(bar_size) if isinstance(bar_size, str) else None
    unit = _UNITS.get(match.group(2).lower()) if match else None
    if match is None or unit is None:
        raise ConfigError(
            f"bar size {bar_size!r} is not understood; use e.g. '1min', '5min', '1h', '1d', '1w' "
            "(or IB's '5 mins', '1 hour', '1 day')"
        )
    count = int(match.group(1) or 1)
    if count <= 0:
        raise ConfigError(f"bar size {bar_size!r} must be a positive number of units")
    return f"{count}{unit}"


def bar_size_ns(bar_size: str) -> int:
    """Return the length of ``bar_size`` in nanoseconds (a day is 24 hours here).

    Example:
        >>> bar_size_ns("5 mins") // 10**9
        300
    """
    canonical = normalize_bar_size(bar_size)
    match = _PATTERN.match(canonical)
    assert match is not None  # normalize_bar_size's own spelling
    return int(match.group(1)) * _SECONDS[match.group(2)] * NS_PER_SECOND
