"""Trading sessions: when an instrument trades, for gap checks and resampling."""

from __future__ import annotations

import datetime as dt
import warnings
from abc import ABC, abstractmethod
from functools import lru_cache
from typing import TYPE_CHECKING, Any, NamedTuple, final
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt
from typing_extensions import override

from ibkrfw.errors import ConfigError
from ibkrfw.model.instruments import AssetClass, Instrument

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "SessionCalendar",
    "Sessions",
    "USEquityCalendar",
    "WeekdayCalendar",
    "calendar_for",
]

IntArray = npt.NDArray[np.int64]
_NS = 10**9


class Sessions(NamedTuple):
    """Trading sessions as columns, in time order: their local dates and UTC bounds."""

    day: npt.NDArray[np.datetime64]
    """The local trading date of each session (``datetime64[D]``)."""
    open_ns: IntArray
    """When each session opens, UTC epoch nanoseconds."""
    close_ns: IntArray
    """When each session closes (excluded), UTC epoch nanoseconds."""

    def locate(self, ts_ns: IntArray) -> IntArray:
        """Return the index of the session holding each time, or -1 for a time outside all."""
        i = np.searchsorted(self.open_ns, ts_ns, side="right") - 1
        inside = (i >= 0) & (ts_ns < self.close_ns[np.maximum(i, 0)])
        return np.where(inside, i, -1)


def _as_date(value: object) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        raise ConfigError(f"not a date: {value!r}") from None


class SessionCalendar(ABC):
    """When an instrument trades: one session per trading day, each a UTC interval."""

    timezone: str
    """The calendar's local time zone."""

    source: str
    """Where holidays come from (``"exchange_calendars"`` or ``"weekdays"``)."""

    @abstractmethod
    def sessions(self, start: object, end: object) -> Sessions:
        """Return the sessions whose local dates are from ``start`` to ``end``, both included."""

    def sessions_between(self, first_ns: int, last_ns: int) -> Sessions:
        """Return the sessions that may hold a time in ``[first_ns, last_ns]``."""
        zone = ZoneInfo(self.timezone)
        first = dt.datetime.fromtimestamp(first_ns / _NS, tz=zone).date() - dt.timedelta(days=1)
        last = dt.datetime.fromtimestamp(last_ns / _NS, tz=zone).date() + dt.timedelta(days=1)
        return self.sessions(first, last)

    def frame(self, start: object, end: object) -> pd.DataFrame:
        """Return the sessions from ``start`` to ``end`` as a DataFrame (``open``, ``close``)."""
        import pandas as pd

        s = self.sessions(start, end)
        return pd.DataFrame(
            {
                "open": pd.to_datetime(s.open_ns, utc=True),
                "close": pd.to_datetime(s.close_ns, utc=True),
            },
            index=pd.DatetimeIndex(s.day, name="session"),
        )


def _local_ns(days: list[dt.date], at: dt.time, zone: ZoneInfo, offset_days: int = 0) -> IntArray:
    shift = dt.timedelta(days=offset_days)
    return np.array(
        [int(dt.datetime.combine(d + shift, at, tzinfo=zone).timestamp()) * _NS for d in days],
        dtype=np.int64,
    )


@final
class WeekdayCalendar(SessionCalendar):
    """A session every Monday to Friday between two local times, with no holidays.

    Args:
        timezone: The local time zone.
        open: Local opening time (``"09:30"``).
        close: Local closing time; ``"00:00"`` is the end of the day. At or before a
            non-midnight ``open``, the session starts the day before (``open="17:00",
            close="17:00"`` is the forex day, Sunday evening to Friday 17:00). The defaults
            make whole local days.

    Example:
        >>> cal = WeekdayCalendar("America/New_York", "09:30", "16:00")
        >>> len(cal.sessions("2024-07-01", "2024-07-07").day)  # the 4th is a weekday here
        5
    """

    source = "weekdays"

    def __init__(self, timezone: str, open: str = "00:00", close: str = "00:00") -> None:
        try:
            self._zone = ZoneInfo(timezone)
            self._open = dt.time.fromisoformat(open)
            self._close = dt.time.fromisoformat(close)
        except (ValueError, KeyError) as exc:
            raise ConfigError(f"bad calendar settings: {exc}") from None
        self.timezone = timezone
        midnight = dt.time(0)
        self._close_day = 1 if self._close == midnight else 0
        self._open_day = -1 if self._open != midnight and self._close <= self._open else 0
        if self._open_day and self._close_day:
            raise ConfigError("a session cannot start the day before and end at midnight")

    @override
    def sessions(self, start: object, end: object) -> Sessions:
        first, last = _as_date(start), _as_date(end)
        days = [
            first + dt.timedelta(days=i)
            for i in range((last - first).days + 1)
            if (first + dt.timedelta(days=i)).weekday() < 5
        ]
        opens = _local_ns(days, self._open, self._zone, self._open_day)
        closes = _local_ns(days, self._close, self._zone, self._close_day)
        return Sessions(np.array(days, dtype="datetime64[D]"), opens, closes)


@lru_cache(maxsize=1)
def _xnys() -> Any:
    import exchange_calendars

    # exchange_calendars (4.13) uses pandas APIs that pandas 3.1 deprecates: its warnings are
    # not ours to act on, and would otherwise reach the user on every first use.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        calendar = exchange_calendars.get_calendar("XNYS", start="1990-01-02")
        calendar.schedule  # noqa: B018 - computed once here, under the filter
    return calendar


def _have_exchange_calendars() -> bool:
    try:
        import exchange_calendars  # noqa: F401
    except ImportError:
        return False
    return True


@final
class USEquityCalendar(SessionCalendar):
    """US stock market sessions (New York Stock Exchange days).

    Regular hours are 09:30 to 16:00 New York time, with the exchange's early closes (13:00);
    extended hours are 04:00 to 20:00 (to 17:00 on early-close days). Holidays and early closes
    come from ``exchange_calendars`` (``pip install "ibkrfw[calendars]"``), for 1990 to a year
    ahead (weekdays outside that range). Without it the calendar falls back to every weekday,
    regular hours, no holidays and no early closes;
    :attr:`~ibkrfw.data.SessionCalendar.source` says which is in use.

    Args:
        extended: Extended hours (pre- and post-market) instead of regular ones.
        use_exchange_calendars: Set False to use the weekday fallback even when the package is
            installed (for reproducibility across machines).

    Example:
        >>> cal = USEquityCalendar(use_exchange_calendars=False)
        >>> cal.frame("2024-07-03", "2024-07-03")["close"].iloc[0]
        Timestamp('2024-07-03 20:00:00+0000', tz='UTC')
    """

    timezone = "America/New_York"

    def __init__(self, *, extended: bool = False, use_exchange_calendars: bool = True) -> None:
        self.extended = extended
        self.source = (
            "exchange_calendars"
            if use_exchange_calendars and _have_exchange_calendars()
            else "weekdays"
        )
        self._fallback = WeekdayCalendar(
            self.timezone, "04:00" if extended else "09:30", "20:00" if extended else "16:00"
        )

    @override
    def sessions(self, start: object, end: object) -> Sessions:
        first, last = _as_date(start), _as_date(end)
        if self.source == "weekdays":
            return self._fallback.sessions(first, last)
        cal = _xnys()
        lo = max(first, cal.first_session.date())
        hi = min(last, cal.last_session.date())
        if lo > hi:
            return self._fallback.sessions(first, last)
        parts = [self._calendar_sessions(cal, lo, hi)]
        if first < lo:  # outside the calendar's range: weekdays
            parts.insert(0, self._fallback.sessions(first, lo - dt.timedelta(days=1)))
        if last > hi:
            parts.append(self._fallback.sessions(hi + dt.timedelta(days=1), last))
        if len(parts) == 1:
            return parts[0]
        return Sessions(*(np.concatenate(cols) for cols in zip(*parts, strict=True)))

    def _calendar_sessions(self, cal: Any, lo: dt.date, hi: dt.date) -> Sessions:
        schedule = cal.schedule.loc[str(lo) : str(hi)]
        days = schedule.index.to_numpy().astype("datetime64[D]")
        import pandas as pd

        opens = pd.DatetimeIndex(schedule["open"]).as_unit("ns").asi8
        closes = pd.DatetimeIndex(schedule["close"]).as_unit("ns").asi8
        if self.extended:
            zone = ZoneInfo(self.timezone)
            dates = [d.date() for d in schedule.index]
            opens = _local_ns(dates, dt.time(4), zone)
            regular_close = closes
            closes = _local_ns(dates, dt.time(20), zone)
            early = _local_ns(dates, dt.time(16), zone) > regular_close
            closes = np.where(early, _local_ns(dates, dt.time(17), zone), closes)
        return Sessions(days, np.asarray(opens, np.int64), np.asarray(closes, np.int64))


def calendar_for(instrument: Instrument, *, extended: bool = False) -> SessionCalendar:
    """Return the session calendar of ``instrument``.

    US stocks (USD, any US exchange) get :class:`USEquityCalendar`; forex pairs the forex day
    (17:00 to 17:00 New York, Sunday evening to Friday); anything else a weekday calendar of
    whole local days in the instrument's time zone.
    """
    if instrument.asset_class is AssetClass.STOCK and instrument.currency == "USD":
        return USEquityCalendar(extended=extended)
    if instrument.asset_class is AssetClass.FOREX:
        return WeekdayCalendar("America/New_York", "17:00", "17:00")
    return WeekdayCalendar(instrument.timezone)
