"""Bars of one size merged into larger ones as they arrive, on the instrument's sessions.

One piece of code for every place that builds larger bars from a stream of smaller ones: live,
:class:`~ibkrfw.ibkr.IBKRDataFeed` builds its bars from IB's 5-second bars with it, and the
engine builds a strategy's larger bar sizes (:meth:`Strategy.bar_sizes
<ibkrfw.Strategy.bar_sizes>`) from the feed's bars with it, in backtests and live alike. The
periods are those :func:`~ibkrfw.data.resample_bars` cuts offline.
"""

from __future__ import annotations

import datetime as dt
from typing import final

from ibkrfw.data.sessions import Session, SessionCalendar, SessionLookup
from ibkrfw.errors import ConfigError
from ibkrfw.model.data import Bar
from ibkrfw.model.instruments import Instrument

__all__ = ["BarAggregator"]

_REALTIME_NS = 5_000_000_000  # IB's real-time bars last five seconds
HOUR_NS = 3_600 * 1_000_000_000
"""An hour in nanoseconds: live bars of at least this long follow the sessions."""
_DAY_NS = 86_400 * 1_000_000_000
_WEEK_NS = 7 * _DAY_NS
_ANCHOR_MONDAY = dt.date(1970, 1, 5)  # blocks of days and weeks count from it (resample_bars)


class _SessionPeriods:
    """The bar a time belongs to when bars follow sessions, as :func:`resample_bars` cuts them.

    Minutes and hours start at each session's open and never span two sessions; N days are N
    sessions, stamped at midnight of the first one's date; N weeks are the sessions of N
    weeks, Monday to Sunday, likewise stamped. Blocks of days and weeks count from Monday
    1970-01-05. A daily bar's stamp (local midnight of its date) belongs to that date's
    session when days or weeks are built from daily bars.
    """

    __slots__ = ("_calendar", "_count", "_lookup", "_period", "_session", "_size", "_unit")

    def __init__(self, calendar: SessionCalendar, size_ns: int) -> None:
        self._lookup = SessionLookup(calendar)
        self._calendar = calendar
        self._size = size_ns
        if size_ns % _WEEK_NS == 0:
            self._unit, self._count = "w", size_ns // _WEEK_NS
        elif size_ns % _DAY_NS == 0:
            self._unit, self._count = "d", size_ns // _DAY_NS
        else:
            self._unit, self._count = "h", 0
        self._session = Session(dt.date.min, 0, 0)  # the latest session found
        self._period = (0, 0, 0)  # its period, for days and weeks: label, first bar, end

    def find(self, ts_ns: int) -> tuple[int, int, int] | None:
        """The period of a bar at ``ts_ns``: its stamp, its first bar's time, its end.

        None for a time outside every session.
        """
        session = self._session
        if not session.open_ns <= ts_ns < session.close_ns:
            found = self._lookup.at(ts_ns)
            if found is None and self._unit != "h":  # a daily bar, stamped with its date
                day = self._lookup.midnight_day(ts_ns)
                found = None if day is None else self._lookup.dated(day)
                if found is not None and found.day != self._session.day:
                    self._session = found
                    self._period = self._block(found)
                return None if found is None else self._period
            if found is None:
                return None
            self._session = session = found
            if self._unit != "h":
                self._period = self._block(found)
        if self._unit == "h":
            start = session.open_ns + (ts_ns - session.open_ns) // self._size * self._size
            return start, start, min(start + self._size, session.close_ns)
        return self._period

    def _block(self, session: Session) -> tuple[int, int, int]:
        """The days or weeks ``session`` is in: the stamp, when it opens, when it closes."""
        if self._unit == "d" and self._count == 1:
            label = self._lookup.local_midnight_ns(session.day)
            return label, session.open_ns, session.close_ns
        if self._unit == "w":
            weeks = (session.day - _ANCHOR_MONDAY).days // 7 // self._count
            first = _ANCHOR_MONDAY + dt.timedelta(weeks=weeks * self._count)
            last = first + dt.timedelta(weeks=self._count) - dt.timedelta(days=1)
            block = self._calendar.sessions(first, last)
        else:  # N sessions, numbered from the anchor
            numbered = self._calendar.sessions(_ANCHOR_MONDAY, session.day).day
            number = len(numbered) - 1
            start = number - number % self._count
            first = numbered[start].astype(object)
            block = self._calendar.sessions(first, session.day + dt.timedelta(days=8 * self._count))
            block = block._replace(
                day=block.day[: self._count],
                open_ns=block.open_ns[: self._count],
                close_ns=block.close_ns[: self._count],
            )
        label = self._lookup.local_midnight_ns(block.day[0].astype(object))
        return label, int(block.open_ns[0]), int(block.close_ns[-1])


@final
class BarAggregator:
    """Merges consecutive bars of one instrument into bars of a larger size.

    Without a ``calendar``, or for bars under an hour, a bar of size ``S`` covers
    ``[k*S, (k+1)*S)`` in UTC: minutes stay aligned on the clock. With a ``calendar``, bars of
    an hour or more follow its sessions exactly as :func:`~ibkrfw.data.resample_bars` cuts
    them with that calendar, so a strategy sees live the bars its backtest reads: hours start
    at each session's open and end at its close at the latest (hourly US stock bars are 09:30,
    10:30... 15:30); a day is one session, stamped at midnight of its local date (as IB's
    daily bars and the bar store); a size of whole weeks counts weeks, Monday to Sunday. Bars
    outside every session (pre-market and after-hours bars with a regular-hours calendar) are
    left out of them.

    A bar is complete, and returned, as soon as a bar ending at or after its end arrives, so a
    one-minute bar is out with its twelfth five-second bar and a daily bar with the session's
    last, not a bar later; if that bar never comes (a gap), the period is handed out when a
    later bar arrives. A bar in progress when the bars stop is not complete: :meth:`flush`
    returns it, :meth:`add` never does.

    Args:
        instrument: The instrument.
        size_ns: The output size, nanoseconds.
        input_ns: The size of the bars that come in (5 s for IB's real-time bars).
        calendar: The instrument's sessions (:func:`~ibkrfw.data.calendar_for`), for bars of
            an hour or more (of any size with ``match_resample``).
        match_resample: Cut and add up exactly as :func:`~ibkrfw.data.resample_bars` does
            with ``calendar``, as the engine does for a strategy's larger bar sizes: bars
            under an hour start at the session's open too; a period whose first bar is
            missing is kept (a minute without trades), except the very first period, which
            the bars may have joined late; and an unknown (NaN) volume counts as none unless
            every volume of the period is unknown.

    Raises:
        ConfigError: if ``size_ns`` is not a multiple of ``input_ns``.

    Example:
        >>> from ibkrfw import Stock
        >>> agg = BarAggregator(Stock("X"), 10_000_000_000, 5_000_000_000)
        >>> agg.add(Bar(Stock("X"), 0, 1.0, 2.0, 0.5, 1.5, 10))
        []
        >>> [bar[1:] for bar in agg.add(Bar(Stock("X"), 5_000_000_000, 1.5, 3.0, 1.0, 2.5, 5))]
        [(0, 1.0, 3.0, 0.5, 2.5, 15.0)]
    """

    __slots__ = ("_active", "_close", "_end", "_from", "_high", "_label", "_later", "_low",
                 "_open", "_partial", "_periods", "_resample", "_volume", "input_ns",
                 "instrument", "size_ns")  # fmt: skip

    def __init__(
        self,
        instrument: Instrument,
        size_ns: int,
        input_ns: int = _REALTIME_NS,
        *,
        calendar: SessionCalendar | None = None,
        match_resample: bool = False,
    ) -> None:
        if size_ns < input_ns or size_ns % input_ns:
            raise ConfigError(
                f"a bar of {size_ns // 10**9} s cannot be built from bars of {input_ns // 10**9} s"
            )
        self.instrument = instrument
        self.size_ns = size_ns
        self.input_ns = input_ns
        self._periods = (
            _SessionPeriods(calendar, size_ns)
            if calendar is not None and (size_ns >= HOUR_NS or match_resample)
            else None
        )
        self._resample = match_resample
        self._later = False  # a period was started before: later ones are not joined late
        # the bar in progress: whether there is one, its stamp and values
        self._active = False
        self._label = 0
        self._open = self._high = self._low = self._close = self._volume = 0.0
        # [from, end): times that surely belong to the bar in progress (empty for days and
        # weeks, whose span has gaps between sessions); end: when it is over
        self._from = self._end = 0
        self._partial = False

    def add(self, bar: Bar) -> list[Bar]:
        """Take the next bar; return the bars it completes (usually none or one).

        A period whose first bar is missing (the subscription started inside it) is dropped
        rather than handed out with a wrong open (with ``match_resample``, only the first).
        """
        ts = bar.ts_ns
        if self._from <= ts < self._end:  # in the bar in progress: the usual case, made short
            self._merge(bar)
            return self._hand_out() if ts + self.input_ns >= self._end else []
        if self._periods is None:
            size = self.size_ns
            start = first = ts - ts % size
            end = start + size
        else:
            period = self._periods.find(ts)
            if period is None:  # outside every session: in no bar, but it may end one
                if self._active and ts >= self._end:
                    return self._hand_out()
                return []
            start, first, end = period
        out: list[Bar] = []
        if self._active and self._label != start:  # the period ended incomplete
            out = self._hand_out()
        if not self._active:
            self._partial = ts - first >= self.input_ns and not (self._resample and self._later)
            self._later = True
            self._active = True
            self._label = start
            self._end = end
            self._from = start if start == first else end  # minutes, hours: one interval
            self._open, self._high, self._low = bar.open, bar.high, bar.low
            self._close, self._volume = bar.close, float(bar.volume)
        else:
            self._merge(bar)
        if ts + self.input_ns >= end:
            out += self._hand_out()
        return out

    def _merge(self, bar: Bar) -> None:
        """Add ``bar`` to the bar in progress."""
        if bar.high > self._high:
            self._high = bar.high
        if bar.low < self._low:
            self._low = bar.low
        self._close = bar.close
        volume = self._volume + float(bar.volume)
        if volume != volume and self._resample:  # NaN: resample_bars' sum(min_count=1)
            volume = self._volume if bar.volume != bar.volume else float(bar.volume)
        self._volume = volume

    def _current(self) -> Bar:
        return Bar(self.instrument, self._label, self._open, self._high, self._low,
                   self._close, self._volume)  # fmt: skip

    def _hand_out(self) -> list[Bar]:
        """The bar in progress, if whole, as a list; forget it."""
        if not self._active:
            return []
        self._active = False
        self._from = self._end  # nothing is in a bar now
        return [] if self._partial else [self._current()]

    def flush(self) -> Bar | None:
        """Return the bar in progress (incomplete) and forget it."""
        if not self._active:
            return None
        self._active = False
        self._from = self._end
        return self._current()
