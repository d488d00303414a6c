"""Resampling bars to larger sizes, session-aware, and adjusting them for splits and dividends."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pandas as pd

from ibkrfw.data.barsize import bar_size_ns, normalize_bar_size
from ibkrfw.data.sessions import SessionCalendar
from ibkrfw.errors import ConfigError, DataError
from ibkrfw.model._time import NS_PER_DAY
from ibkrfw.sim.feeds import frame_to_arrays

__all__ = ["adjust_bars", "resample_bars"]

_COLUMNS = ["open", "high", "low", "close", "volume"]


def _local_midnights(days: npt.NDArray[np.datetime64], timezone: str) -> npt.NDArray[np.int64]:
    index = pd.DatetimeIndex(days.astype("datetime64[ns]")).tz_localize(timezone)
    return np.asarray(index.as_unit("ns").asi8, dtype=np.int64)


def resample_bars(
    frame: pd.DataFrame,
    bar_size: str,
    *,
    calendar: SessionCalendar | None = None,
    tz: str | None = None,
) -> pd.DataFrame:
    """Aggregate bars into larger ones, by trading session when a calendar is given.

    Each new bar has the first open, the highest high, the lowest low, the last close and the
    summed volume (NaN only if every volume of the bar is unknown). Empty intervals give no bar.

    With a ``calendar`` the bars follow its sessions: minute and hour bars start at each
    session's open (hourly US stock bars are 09:30, 10:30, ... 15:30, the last one half an
    hour long) and never span two sessions; a daily bar is one session (``"Nd"``: N sessions),
    stamped at midnight of its local date; a weekly bar holds the sessions of one week, Monday
    to Sunday (``"Nw"``: N weeks), stamped at midnight of its first session's date. Blocks of
    several sessions or weeks are counted from Monday 1970-01-05, so they do not depend on
    where the data starts. A bar outside every session is an error: find them with
    :func:`~ibkrfw.data.validate_bars` and drop them first. Without a calendar, intervals are
    aligned on UTC midnight, days are UTC days and weeks start on Monday.

    Args:
        frame: Valid bars (the layout and rules of :class:`~ibkrfw.sim.DataFrameFeed`).
        bar_size: The new size, a number of minutes, hours, days (sessions) or weeks.
        calendar: The instrument's sessions (:func:`~ibkrfw.data.calendar_for`).
        tz: The time zone of naive timestamps.

    Returns:
        The new bars, indexed by UTC ``timestamp`` (the start of each bar).

    Raises:
        DataError: if ``frame`` is malformed, or a bar lies outside the calendar's sessions.
        ConfigError: for a size under a minute.

    Example:
        >>> from ibkrfw.data import USEquityCalendar, generate_bars
        >>> minutes = generate_bars(["ACME"], freq="1min", periods=390).set_index("timestamp")
        >>> hours = resample_bars(minutes, "1h", calendar=USEquityCalendar())
        >>> [t.tz_convert("America/New_York").strftime("%H:%M") for t in hours.index[:2]]
        ['09:30', '10:30']
        >>> len(hours), int(hours["volume"].sum()) == int(minutes["volume"].sum())
        (7, True)
    """
    size = normalize_bar_size(bar_size)
    step = bar_size_ns(size)
    unit = size.lstrip("0123456789")
    if unit == "s":
        raise ConfigError(f"resampling makes bars of a minute or more, not {size}")
    count = int(size[: -len(unit)])
    bars = frame_to_arrays(frame, tz=tz, source="bars to resample")
    ts = bars.ts_ns
    if calendar is None:
        if unit == "w":  # weeks from Monday 1970-01-05, the first Monday of the epoch
            monday = 4 * NS_PER_DAY
            labels = (ts - monday) // step * step + monday
        else:
            labels = ts // step * step
    else:
        sessions = calendar.sessions_between(int(ts[0]), int(ts[-1]))
        where = sessions.locate(ts)
        if unit in ("d", "w") and (where < 0).any():  # daily bars: stamped with their date
            where = np.where(where < 0, _session_of_date(ts, sessions.day, calendar), where)
        outside = np.flatnonzero(where < 0)
        if len(outside):
            first = pd.Timestamp(int(ts[outside[0]]), unit="ns", tz="UTC")
            raise DataError(
                f"{len(outside)} bar(s) lie outside the {calendar.source} sessions (the first at "
                f"{first}); validate_bars reports them as outside_session: drop them first"
            )
        if unit in ("min", "h"):
            opens = sessions.open_ns[where]
            labels = opens + (ts - opens) // step * step
        else:
            days = sessions.day[where]
            if unit == "w" or count > 1:
                days = _first_of_block(days, unit, count, calendar)
            labels = _local_midnights(days, calendar.timezone)
    data = pd.DataFrame(
        {
            "open": bars.open,
            "high": bars.high,
            "low": bars.low,
            "close": bars.close,
            "volume": bars.volume,
        }
    )
    grouped = data.groupby(labels, sort=True)
    out = pd.DataFrame(
        {
            "open": grouped["open"].first(),
            "high": grouped["high"].max(),
            "low": grouped["low"].min(),
            "close": grouped["close"].last(),
            "volume": grouped["volume"].sum(min_count=1),
        }
    )
    index = pd.DatetimeIndex(out.index.to_numpy().astype("datetime64[ns]"), name="timestamp")
    out.index = index.tz_localize("UTC")
    return out[_COLUMNS]


def _session_of_date(
    ts: npt.NDArray[np.int64], days: npt.NDArray[np.datetime64], calendar: SessionCalendar
) -> npt.NDArray[np.intp]:
    """For a time at local midnight (a daily bar's stamp), the session of that date; else -1."""
    local = pd.to_datetime(ts, utc=True).tz_convert(calendar.timezone).tz_localize(None)
    dates = local.normalize()
    midnight = np.asarray(local == dates)
    days_of = dates.to_numpy().astype("datetime64[D]")
    i = np.searchsorted(days, days_of)
    found = midnight & (i < len(days)) & (days[np.minimum(i, len(days) - 1)] == days_of)
    return np.where(found, i, -1)


_ANCHOR_DAY = np.datetime64("1970-01-05", "D")  # a Monday: blocks are counted from it


def _first_of_block(
    days: npt.NDArray[np.datetime64], unit: str, count: int, calendar: SessionCalendar
) -> npt.NDArray[np.datetime64]:
    """Each session's block of ``count`` sessions (or weeks), labelled by its first day here.

    Blocks are counted from a fixed Monday, so the same session always lands in the same block
    whatever the data's first day: sessions are numbered in the calendar from that Monday, and
    weeks by their Monday.
    """
    if unit == "w":
        offset = (days - _ANCHOR_DAY).astype(np.int64)
        block = offset // 7 // count
    else:
        numbered = calendar.sessions(_ANCHOR_DAY.astype(object), days[-1].astype(object)).day
        block = np.searchsorted(numbered, days) // count
    return pd.Series(days).groupby(block).transform("min").to_numpy().astype("datetime64[D]")


def adjust_bars(frame: pd.DataFrame, actions: pd.DataFrame, *, tz: str) -> pd.DataFrame:
    """Back-adjust bars for splits and cash dividends, so that returns are continuous.

    Every bar before an action's ex-date is scaled: by ``1 / split`` for a split (volume by
    ``split``), and by ``1 - dividend / close`` for a dividend, where ``close`` is the last
    close before the ex-date. Bars from the ex-date on are unchanged.

    Args:
        frame: Valid bars (the layout and rules of :class:`~ibkrfw.sim.DataFrameFeed`).
        actions: One row per action: ``ex_date`` (a date or time; naive ones are in ``tz``),
            ``split`` (new shares per old share, e.g. 4.0 for a 4-for-1 split) and/or
            ``dividend`` (cash per share, in the price's currency); NaN where not applicable.
        tz: The time zone of the bars' exchange, for naive ex-dates (a date starts at local
            midnight).

    Returns:
        The adjusted bars, indexed by UTC ``timestamp``, with an ``adjustment`` column: the
        factor each bar's prices were multiplied by.

    Raises:
        DataError: for a split ratio that is not positive, a negative dividend, or a dividend
            at least as large as the close before it.

    Example:
        >>> from ibkrfw.testing import bars_frame
        >>> bars = bars_frame([(100, 100, 100, 100), (50, 50, 50, 50)])
        >>> split = pd.DataFrame({"ex_date": ["2024-01-03"], "split": [2.0]})
        >>> adjust_bars(bars, split, tz="UTC")["close"].tolist()
        [50.0, 50.0]
    """
    bars = frame_to_arrays(frame, tz=tz, source="bars to adjust")
    ts = bars.ts_ns
    if "ex_date" not in actions.columns:
        raise DataError(f"actions need an 'ex_date' column; got {list(actions.columns)}")
    dates = pd.DatetimeIndex(pd.to_datetime(actions["ex_date"]))
    if dates.tz is None:
        dates = dates.tz_localize(tz)
    ex_ns = dates.as_unit("ns").asi8
    splits = actions.get("split", pd.Series(np.nan, index=actions.index)).to_numpy(float)
    dividends = actions.get("dividend", pd.Series(np.nan, index=actions.index)).to_numpy(float)
    price_factor = np.ones(len(ts))
    volume_factor = np.ones(len(ts))
    for when, split, dividend, label in zip(ex_ns, splits, dividends, dates, strict=True):
        before = ts < when
        if not before.any():
            continue
        if not np.isnan(split):
            if not (np.isfinite(split) and split > 0):
                raise DataError(f"split on {label}: the ratio must be positive, got {split}")
            price_factor[before] /= split
            volume_factor[before] *= split
        if not np.isnan(dividend):
            previous = bars.close[np.flatnonzero(before)[-1]]
            if not (np.isfinite(dividend) and 0 <= dividend < previous):
                raise DataError(
                    f"dividend on {label}: {dividend} must be at least 0 and below the close "
                    f"before it, {previous}"
                )
            price_factor[before] *= 1 - dividend / previous
    index = pd.DatetimeIndex(ts.astype("datetime64[ns]"), name="timestamp").tz_localize("UTC")
    return pd.DataFrame(
        {
            "open": bars.open * price_factor,
            "high": bars.high * price_factor,
            "low": bars.low * price_factor,
            "close": bars.close * price_factor,
            "volume": bars.volume * volume_factor,
            "adjustment": price_factor,
        },
        index=index,
    )
