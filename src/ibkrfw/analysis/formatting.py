"""Statistics as text: rounded for reading, times in the exchange's time zone."""

from __future__ import annotations

import math
import numbers
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["format_stats"]

MISSING = "n/a"
"""What a value that could not be computed (NaN, NaT) reads as."""

_MONEY = frozenset(
    {
        "Initial equity",
        "Final equity",
        "Average win",
        "Average loss",
        "Largest win",
        "Largest loss",
        "Expectancy",
        "Commissions",
        "Slippage",
        "Cash adjustments",
    }
)
_ONE_DECIMAL = frozenset({"Periods per year"})


def format_stats(stats: pd.Series, *, tz: str = "UTC", daily: bool = False) -> pd.Series:
    """Return ``stats`` (a run's statistics) as text, one string per statistic.

    Money is shown with two decimals and thousands separators, percentages (the ``[%]``
    rows) with two decimals, ratios with two, counts as whole numbers, times in ``tz``
    (dates alone if ``daily``), durations in whole days if ``daily`` (the hour that daylight
    saving adds to or takes from a span of days is not shown) and otherwise as days and a
    clock time (``3 days 04:00``, ``00:05:30``), and NaN or NaT as ``n/a``.
    The values themselves are not changed: this is for reading only.

    Args:
        stats: A Series of statistics, such as :attr:`RunResult.stats <ibkrfw.RunResult.stats>`.
        tz: The time zone to show times in, e.g. ``"America/New_York"``.
        daily: Whether the run's bars are daily.

    Example:
        >>> import pandas as pd
        >>> stats = pd.Series({"Final equity": 69489.4512, "Sharpe ratio": -0.215588,
        ...                    "Win rate [%]": float("nan"), "Trades": 0,
        ...                    "Duration": pd.Timedelta(days=3569, hours=1)})
        >>> format_stats(stats, daily=True).tolist()
        ['69,489.45', '-0.22', 'n/a', '0', '3,569 days']
    """
    import pandas as pd

    texts = {str(key): _format(str(key), value, tz=tz, daily=daily) for key, value in stats.items()}
    if (
        texts.get("Max drawdown recovery") == MISSING
        and isinstance(stats.get("Max drawdown [%]"), float)
        and stats["Max drawdown [%]"] < 0
    ):
        texts["Max drawdown recovery"] = "not recovered"
    return pd.Series(texts, name=stats.name, dtype=object)


def _format(key: str, value: object, *, tz: str, daily: bool) -> str:
    import pandas as pd

    if value is None or value is pd.NaT:
        return MISSING
    if isinstance(value, pd.Timestamp):
        local = value.tz_convert(tz) if value.tzinfo is not None else value
        if daily:
            return local.strftime("%Y-%m-%d")
        return local.strftime("%Y-%m-%d %H:%M:%S" if local.second else "%Y-%m-%d %H:%M")
    if isinstance(value, pd.Timedelta):
        return _duration(value, daily=daily)
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, numbers.Integral):  # NumPy's ints too
        return f"{int(value):,}"
    if isinstance(value, Decimal | numbers.Real):
        value = float(value)
        if math.isnan(value):
            return MISSING
        if key in _MONEY or key.endswith("[%]"):
            return f"{value:,.2f}"
        if key in _ONE_DECIMAL:
            return f"{value:,.1f}"
        if abs(value) >= 0.01 or value == 0:
            return f"{value:,.2f}"
        return f"{value:.2g}"
    return str(value)


def _duration(value: pd.Timedelta, *, daily: bool) -> str:
    """``3 days``, ``1 day`` (whole days if ``daily``), else ``3 days 04:00`` or ``00:05:30``."""
    sign = "-" if value.value < 0 else ""
    if daily:
        days = abs(round(value.value / 86_400e9))
        return f"{sign}{days:,} day" + ("" if days == 1 else "s")
    seconds = abs(round(value.value / 1e9))
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, seconds = divmod(rest, 60)
    text = f"{days:,} day" + ("" if days == 1 else "s") if days or not (rest or hours) else ""
    if hours or minutes or seconds:
        clock = f"{hours:02d}:{minutes:02d}" + (f":{seconds:02d}" if seconds else "")
        text = f"{text} {clock}" if text else clock
    return sign + text
