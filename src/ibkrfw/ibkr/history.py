"""Splitting a historical download into requests IB accepts: bar size and duration rules.

IB answers one ``reqHistoricalData`` with at most "a few thousand bars", and allows only some
pairs of duration and bar size. Its step-size table
(interactivebrokers.github.io/tws-api/historical_limitations.html, retrieved 2026) gives, per
duration, the bar sizes allowed; :data:`MAX_SPAN` is that table read the other way round:
the longest duration per bar size.
"""

from __future__ import annotations

from typing import NamedTuple

from ibkrfw.data.barsize import bar_size_ns, normalize_bar_size
from ibkrfw.errors import ConfigError
from ibkrfw.model._time import format_ib_time

__all__ = ["MAX_SPAN", "HistoryChunk", "history_chunks", "ib_bar_size"]

_DAY = 86_400
# IB's barSizeSetting -> (the longest duration, in seconds, and how IB spells it)
MAX_SPAN: dict[str, tuple[int, str]] = {
    "1 secs": (1_800, "1800 S"),
    "5 secs": (3_600, "3600 S"),
    "10 secs": (14_400, "14400 S"),
    "15 secs": (14_400, "14400 S"),
    "30 secs": (28_800, "28800 S"),
    "1 min": (_DAY, "1 D"),
    "2 mins": (2 * _DAY, "2 D"),
    "3 mins": (7 * _DAY, "1 W"),
    "5 mins": (7 * _DAY, "1 W"),
    "10 mins": (7 * _DAY, "1 W"),
    "15 mins": (7 * _DAY, "1 W"),
    "20 mins": (7 * _DAY, "1 W"),
    "30 mins": (30 * _DAY, "1 M"),
    "1 hour": (30 * _DAY, "1 M"),
    "2 hours": (30 * _DAY, "1 M"),
    "3 hours": (30 * _DAY, "1 M"),
    "4 hours": (30 * _DAY, "1 M"),
    "8 hours": (30 * _DAY, "1 M"),
    "1 day": (365 * _DAY, "1 Y"),
    "1 week": (365 * _DAY, "1 Y"),
    "1 month": (365 * _DAY, "1 Y"),
}
"""The longest duration IB allows per bar size (its step-size table, read per bar size)."""


class HistoryChunk(NamedTuple):
    """One historical-data request: its ``endDateTime`` and ``durationStr``."""

    end: str
    """IB's UTC form, ``yyyymmdd-hh:mm:ss``."""
    duration: str
    """``"<n> S"``, ``"<n> D"``, ``"1 W"``, ``"1 M"`` or ``"1 Y"``."""
    start_ns: int
    """The first time the chunk covers (UTC nanoseconds)."""
    end_ns: int
    """The time it ends at, excluded."""


def ib_bar_size(bar_size: str) -> str:
    """Return IB's ``barSizeSetting`` for a bar size (``"5min"`` -> ``"5 mins"``).

    Raises:
        ConfigError: if IB has no such bar size.

    Example:
        >>> ib_bar_size("1min"), ib_bar_size("5 mins"), ib_bar_size("1h"), ib_bar_size("1d")
        ('1 min', '5 mins', '1 hour', '1 day')
    """
    size = normalize_bar_size(bar_size)
    count = int(size.rstrip("abcdefghijklmnopqrstuvwxyz"))
    unit = size[len(str(count)) :]
    words = {"s": "secs", "min": "min", "h": "hour", "d": "day", "w": "week"}
    word = words[unit]
    if unit in ("min", "h") and count > 1:
        word += "s"
    name = f"{count} {word}"
    if name not in MAX_SPAN:
        raise ConfigError(f"IB has no {bar_size!r} bars; it has {', '.join(MAX_SPAN)}")
    return name


def _duration(span_s: int, max_s: int, max_text: str) -> str:
    """IB's spelling of a chunk of ``span_s`` seconds (at most the bar size's maximum)."""
    if span_s >= max_s:
        return max_text
    if max_s <= 28_800:  # second durations
        return f"{span_s} S"
    return f"{-(-span_s // _DAY)} D"  # whole days, rounded up


def history_chunks(start_ns: int, end_ns: int, bar_size: str) -> list[HistoryChunk]:
    """Split ``[start_ns, end_ns)`` into requests IB accepts for ``bar_size``, newest first.

    Each chunk asks for at most the longest duration IB allows for the bar size; the oldest
    one for what is left (in seconds, or whole days for day-sized durations, so it may reach a
    little before ``start_ns``: the store's upsert absorbs the overlap).

    Raises:
        ConfigError: if IB has no such bar size, or the range is empty.

    Example:
        >>> import pandas as pd
        >>> end = pd.Timestamp("2024-03-09", tz="UTC").value
        >>> start = pd.Timestamp("2024-03-06 12:00", tz="UTC").value
        >>> [(c.end, c.duration) for c in history_chunks(start, end, "1min")]
        [('20240309-00:00:00', '1 D'), ('20240308-00:00:00', '1 D'), ('20240307-00:00:00', '1 D')]
    """
    if end_ns <= start_ns:
        raise ConfigError("a download needs a start before its end")
    name = ib_bar_size(bar_size)
    max_s, max_text = MAX_SPAN[name]
    step_ns = max_s * 1_000_000_000
    bar_ns = bar_size_ns(normalize_bar_size(bar_size))
    chunks = []
    end = end_ns
    while end > start_ns:
        begin = max(start_ns, end - step_ns)
        span_s = max(-(-(end - begin) // 1_000_000_000), bar_ns // 1_000_000_000)
        chunks.append(
            # IB's times are whole seconds: round the end up, never cutting the last bar off
            HistoryChunk(
                format_ib_time(-(-end // 1_000_000_000) * 1_000_000_000),
                _duration(span_s, max_s, max_text),
                begin,
                end,
            )
        )
        end = begin
    return chunks
