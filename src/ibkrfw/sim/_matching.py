"""The simulator's working orders and the price rules they are matched by."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from decimal import Decimal
from zoneinfo import ZoneInfo

from ibkrfw.data.sessions import SessionCalendar, SessionLookup
from ibkrfw.model.data import Bar
from ibkrfw.model.instruments import Instrument
from ibkrfw.model.orders import Order, OrderType, Side, TimeInForce
from ibkrfw.sim.commission import NOTHING_YET

# Enum members bound once: on Python 3.11 each `Side.BUY` in a function is a slow lookup
# (EnumType.__getattr__ routes every class attribute through Python), on the order path.
_BUY = Side.BUY
_GTD = TimeInForce.GTD
_OPG = TimeInForce.OPG

log = logging.getLogger("ibkrfw.sim")

_ON_CLOSE = frozenset((OrderType.MARKET_ON_CLOSE, OrderType.LIMIT_ON_CLOSE))


class Working:
    """An order resting in the simulator, with its prices as floats for matching."""

    __slots__ = (
        "auction",
        "auction_ns",
        "auction_stamp_ns",
        "best",
        "buy",
        "close_bar",
        "eligible_ns",
        "expire_ns",
        "limit",
        "order",
        "so_far",
        "stop",
        "tif",
        "trail",
        "trail_fraction",
        "triggered",
    )

    def __init__(self, order: Order) -> None:
        req = order.request
        self.order = order
        self.eligible_ns = order.created_ns + 1  # never on the bar the order was decided on
        self.buy = req.side is _BUY
        self.limit = float(req.limit_price) if req.limit_price is not None else 0.0
        self.stop = float(req.stop_price) if req.stop_price is not None else 0.0
        self.tif = req.tif
        self.expire_ns: int | None = req.good_till_ns if req.tif is _GTD else None
        self.triggered = False  # a touched STOP_LIMIT works as a limit; STOP as a market order
        self.so_far = NOTHING_YET  # what the order filled and paid so far
        # On-open and on-close orders: when their auction is, and (on close) the latest bar
        # of the day they wait to close on. On open, a daily bar stamped at or after
        # auction_stamp_ns (at a local midnight) also opens a later day.
        self.auction = req.tif is _OPG or req.order_type in _ON_CLOSE
        self.auction_ns: int | None = None
        self.auction_stamp_ns = 0
        self.close_bar: Bar | None = None
        # TRAILING_STOP: the best price seen, and the distance kept from it
        self.trail = float(req.trail_amount) if req.trail_amount is not None else 0.0
        pct = req.trail_percent
        self.trail_fraction = float(pct) / 100 if pct is not None else 0.0
        if self.trail_fraction:
            factor = 1 + self.trail_fraction if self.buy else 1 - self.trail_fraction
            self.best = self.stop / factor
        else:
            self.best = self.stop - self.trail if self.buy else self.stop + self.trail

    def follow(self, bar: Bar) -> None:
        """Move a trailing stop after ``bar``, never away from the market."""
        if self.buy:
            self.best = min(self.best, bar.low)
            gap = self.best * self.trail_fraction if self.trail_fraction else self.trail
            self.stop = min(self.stop, self.best + gap)
        else:
            self.best = max(self.best, bar.high)
            gap = self.best * self.trail_fraction if self.trail_fraction else self.trail
            self.stop = max(self.stop, self.best - gap)


def limit_fill(buy: bool, limit: float, exact: Decimal | None, bar: Bar) -> float | Decimal | None:
    """A limit fills when touched, at the limit, or at a better open."""
    if buy:
        if bar.open <= limit:
            return bar.open
        return exact if bar.low <= limit else None
    if bar.open >= limit:
        return bar.open
    return exact if bar.high >= limit else None


def stop_fill(buy: bool, stop: float, exact: Decimal | None, bar: Bar) -> float | Decimal | None:
    """A stop fills when touched, at the stop, or at a worse open."""
    if buy:
        if bar.open >= stop:
            return bar.open
        return exact if bar.high >= stop else None
    if bar.open <= stop:
        return bar.open
    return exact if bar.low <= stop else None


class LocalDays:
    """End of the local calendar day of a time, cached per time zone (one day at a time)."""

    __slots__ = ("_cache",)

    def __init__(self) -> None:
        self._cache: dict[str, tuple[int, int]] = {}  # zone -> (day start ns, day end ns)

    def end_ns(self, ts_ns: int, timezone: str) -> int:
        start, end = self._cache.get(timezone, (0, 0))
        if start <= ts_ns < end:
            return end
        zone = ZoneInfo(timezone)
        day = dt.datetime.fromtimestamp(ts_ns / 1e9, tz=zone).date()
        first = dt.datetime.combine(day, dt.time(), tzinfo=zone)
        after = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=zone)
        start, end = int(first.timestamp()) * 10**9, int(after.timestamp()) * 10**9
        self._cache[timezone] = (start, end)
        return end


class TradingDays:
    """The trading day of a time, per instrument, from its session calendar.

    For DAY orders and the auctions. A time belongs to the session that holds it; a time
    between sessions (after the close, before the open, a weekend, a holiday) to the next
    session, as IB holds an order sent after the close for the next one. A time at a local
    midnight outside every session is a daily bar's stamp: it belongs to the session of its
    date, or, if the calendar has none that day while the data does, to that whole local day.
    The latest session found is kept per instrument, so most times cost one comparison.

    Args:
        calendar_of: The session calendar of an instrument (asked once per instrument).
    """

    __slots__ = ("_calendar_of", "_latest", "_lookups", "_warned")

    def __init__(self, calendar_of: Callable[[Instrument], SessionCalendar]) -> None:
        self._calendar_of = calendar_of
        self._lookups: dict[Instrument, SessionLookup] = {}
        self._latest: dict[Instrument, tuple[int, int]] = {}  # the latest session: open, close
        self._warned: set[Instrument] = set()

    def _lookup(self, instrument: Instrument) -> SessionLookup:
        lookup = self._lookups.get(instrument)
        if lookup is None:
            lookup = self._lookups[instrument] = SessionLookup(self._calendar_of(instrument))
        return lookup

    def close_ns(self, instrument: Instrument, ts_ns: int) -> int:
        """When the trading day of a bar at ``ts_ns`` ends: its session's close."""
        open_ns, close_ns = self._latest.get(instrument, (0, 0))
        if open_ns <= ts_ns < close_ns:
            return close_ns
        lookup = self._lookup(instrument)
        session = lookup.at(ts_ns)
        if session is not None:
            self._latest[instrument] = (session.open_ns, session.close_ns)
            return session.close_ns
        day = lookup.midnight_day(ts_ns)
        if day is not None:  # a daily bar: its date's session, or the day the data traded
            session = lookup.dated(day)
            return session.close_ns if session else lookup.local_midnight_ns(day + _ONE_DAY)
        session = lookup.until(ts_ns)
        if session is None:
            return self._no_session(instrument, lookup, ts_ns)
        return session.close_ns

    def opening(self, instrument: Instrument, decided_ns: int) -> tuple[int, int]:
        """The opening auction of an on-open order decided at ``decided_ns``.

        It is the first session to open after the decision; after a daily bar (stamped at
        midnight of its date) the decision comes after that day's close. Returns when that
        session opens, and the earliest midnight from which a daily bar's stamp counts as the
        open of a later day: the first bar at or after either is the auction's.
        """
        lookup = self._lookup(instrument)
        day = lookup.midnight_day(decided_ns)
        after = decided_ns
        if day is not None and lookup.at(decided_ns) is None:  # decided on a daily bar
            after = self.close_ns(instrument, decided_ns) - 1
        else:
            day = self._local_day(lookup, decided_ns)
        stamp = lookup.local_midnight_ns(day + _ONE_DAY)
        session = lookup.opening_after(after)
        if session is None:
            return self._no_session(instrument, lookup, decided_ns), stamp
        return session.open_ns, stamp

    def is_daily_stamp(self, instrument: Instrument, ts_ns: int) -> bool:
        """Whether ``ts_ns`` is a local midnight outside every session (a daily bar's stamp)."""
        lookup = self._lookup(instrument)
        return lookup.midnight_day(ts_ns) is not None and lookup.at(ts_ns) is None

    @staticmethod
    def _local_day(lookup: SessionLookup, ts_ns: int) -> dt.date:
        zone = ZoneInfo(lookup.calendar.timezone)
        return dt.datetime.fromtimestamp(ts_ns // 10**9, tz=zone).date()

    def _no_session(self, instrument: Instrument, lookup: SessionLookup, ts_ns: int) -> int:
        """No session within a year: the end of the local day, said once per instrument."""
        if instrument not in self._warned:
            self._warned.add(instrument)
            log.warning(
                "%s: the %s calendar has no session in the year after %s; DAY orders and "
                "auctions use local calendar days",
                instrument.id,
                lookup.calendar.source,
                dt.datetime.fromtimestamp(ts_ns / 1e9, tz=dt.UTC),
            )
        return lookup.local_midnight_ns(self._local_day(lookup, ts_ns) + _ONE_DAY)


_ONE_DAY = dt.timedelta(days=1)
