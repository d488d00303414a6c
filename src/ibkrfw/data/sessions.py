"""Trading sessions: when an instrument trades, for gap checks and resampling."""

from __future__ import annotations

import datetime as dt
import warnings
from abc import ABC, abstractmethod
from bisect import bisect_right
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
    "Session",
    "SessionCalendar",
    "SessionLookup",
    "Sessions",
    "USEquityCalendar",
    "WeekdayCalendar",
    "calendar_for",
]

IntArray = npt.NDArray[np.int64]
_NS = 10**9
_DAY_NS = 86_400 * _NS


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


class Session(NamedTuple):
    """One trading session: its local date and UTC bounds."""

    day: dt.date
    """The local trading date."""
    open_ns: int
    """When the session opens, UTC epoch nanoseconds."""
    close_ns: int
    """When it closes (excluded), UTC epoch nanoseconds."""


@final
class SessionLookup:
    """Which session of a calendar a time falls in, one time at a time, cheaply.

    Made for code that asks about times in order, bar by bar (the simulator's DAY orders and
    auctions, live bars built from IB's 5-second bars): it keeps a year of sessions from
    the latest time it had to load, so most lookups are a binary search of a short list, and it
    loads the following year when asked about a later time.

    Args:
        calendar: The sessions to look up.

    Example:
        >>> import pandas as pd
        >>> lookup = SessionLookup(USEquityCalendar(use_exchange_calendars=False))
        >>> friday_evening = pd.Timestamp("2024-07-05 18:00", tz="America/New_York").value
        >>> lookup.at(friday_evening) is None  # after the close
        True
        >>> lookup.until(friday_evening).day  # the session such a time leads to
        datetime.date(2024, 7, 8)
        >>> lookup.midnight_day(pd.Timestamp("2024-07-08", tz="America/New_York").value)
        datetime.date(2024, 7, 8)
    """

    __slots__ = ("_closes", "_days", "_from", "_opens", "_to", "_zone", "calendar")

    SPAN_NS = 366 * _DAY_NS
    """The span of sessions loaded at a time, a year.

    About 250 sessions, loaded in a few milliseconds, so a backtest of years loads them a
    handful of times."""
    REACH_NS = 366 * _DAY_NS
    """How far past a time :meth:`until` and :meth:`opening_after` look for a session."""

    def __init__(self, calendar: SessionCalendar) -> None:
        self.calendar = calendar
        self._zone = ZoneInfo(calendar.timezone)
        self._from = self._to = 0  # the loaded sessions answer for times in [from, to)
        self._days: list[dt.date] = []
        self._opens: list[int] = []
        self._closes: list[int] = []

    def _load(self, ts_ns: int) -> None:
        """Load the sessions that may hold a time from ``ts_ns`` to SPAN_NS later."""
        s = self.calendar.sessions_between(ts_ns, ts_ns + self.SPAN_NS)
        self._days = s.day.astype(object).tolist()
        self._opens = s.open_ns.tolist()
        self._closes = s.close_ns.tolist()
        self._from, self._to = ts_ns, ts_ns + self.SPAN_NS

    def _extend(self) -> None:
        """Add the next SPAN_NS of sessions after those loaded."""
        s = self.calendar.sessions_between(self._to, self._to + self.SPAN_NS)
        last = self._days[-1] if self._days else dt.date.min
        for day, open_ns, close_ns in zip(
            s.day.astype(object).tolist(), s.open_ns.tolist(), s.close_ns.tolist(), strict=True
        ):
            if day > last:
                self._days.append(day)
                self._opens.append(open_ns)
                self._closes.append(close_ns)
        self._to += self.SPAN_NS

    def _first(self, ts_ns: int, by_close: bool) -> int | None:
        """The index of the first session whose close (or open) is after ``ts_ns``."""
        if not self._from <= ts_ns < self._to:
            self._load(ts_ns)
        bounds = self._closes if by_close else self._opens
        i = bisect_right(bounds, ts_ns)
        while i == len(bounds):  # none loaded: look further, up to REACH_NS
            if self._to - ts_ns > self.REACH_NS:
                return None
            self._extend()
            i = bisect_right(bounds, ts_ns)
        return i

    def at(self, ts_ns: int) -> Session | None:
        """Return the session that holds ``ts_ns``, or None between sessions."""
        i = self._first(ts_ns, by_close=True)
        if i is None or self._opens[i] > ts_ns:
            return None
        return Session(self._days[i], self._opens[i], self._closes[i])

    def until(self, ts_ns: int) -> Session | None:
        """Return the session that holds ``ts_ns``, or else the next one.

        None if no session opens within :attr:`REACH_NS` after ``ts_ns``.
        """
        i = self._first(ts_ns, by_close=True)
        if i is None:
            return None
        return Session(self._days[i], self._opens[i], self._closes[i])

    def opening_after(self, ts_ns: int) -> Session | None:
        """Return the first session that opens after ``ts_ns`` (None if none within reach)."""
        i = self._first(ts_ns, by_close=False)
        if i is None:
            return None
        return Session(self._days[i], self._opens[i], self._closes[i])

    def midnight_day(self, ts_ns: int) -> dt.date | None:
        """Return the local date of ``ts_ns`` if it is a local midnight, else None.

        Daily bars are stamped at midnight of their session's local date (IB's daily bars,
        :func:`~ibkrfw.data.resample_bars`), so this tells such a stamp from an intraday time.
        """
        local = dt.datetime.fromtimestamp(ts_ns // _NS, tz=self._zone)
        if ts_ns % _NS or local.hour or local.minute or local.second:
            return None
        return local.date()

    def dated(self, day: dt.date) -> Session | None:
        """Return the session of the local date ``day``, or None if it has none."""
        found = self.until(self.local_midnight_ns(day))
        while found is not None and found.day < day:
            found = self.until(found.close_ns)
        return found if found is not None and found.day == day else None

    def local_midnight_ns(self, day: dt.date) -> int:
        """Return the UTC time of local midnight at the start of ``day``."""
        return int(dt.datetime.combine(day, dt.time(), tzinfo=self._zone).timestamp()) * _NS
