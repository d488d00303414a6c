"""Nanosecond UTC timestamps and their conversion to pandas at the edges."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

NS_PER_SECOND = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_SECOND


def to_timestamp(ts_ns: int) -> pd.Timestamp:
    """Return ``ts_ns`` (UTC epoch nanoseconds) as a UTC :class:`pandas.Timestamp`."""
    import pandas as pd  # pandas stays at the edges: imported only when asked for

    return pd.Timestamp(ts_ns, unit="ns", tz="UTC")


def format_ib_time(ts_ns: int) -> str:
    """Return ``ts_ns`` in IB's UTC form, ``yyyymmdd-hh:mm:ss`` (``endDateTime``, GTD dates)."""
    import datetime as dt

    return dt.datetime.fromtimestamp(ts_ns / 1e9, tz=dt.UTC).strftime("%Y%m%d-%H:%M:%S")


def parse_ib_time(text: str, default_zone: str = "UTC") -> int:
    """Read IB's ``yyyymmdd-hh:mm:ss`` (UTC) or ``yyyymmdd hh:mm:ss [zone]`` as UTC nanoseconds.

    A time without a zone is read in ``default_zone``.

    Raises:
        ValueError: if the text is not a time.
    """
    import pandas as pd

    text = text.strip()
    if len(text) > 8 and text[8] == "-":
        return int(pd.Timestamp(text.replace("-", " ", 1), tz="UTC").value)
    parts = text.split()
    stamp = pd.Timestamp(" ".join(parts[:2]))
    return int(stamp.tz_localize(parts[2] if len(parts) > 2 else default_zone).value)
