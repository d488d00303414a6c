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
