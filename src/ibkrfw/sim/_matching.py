"""The simulator's working orders and the price rules they are matched by."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

from ibkrfw.model.data import Bar
from ibkrfw.model.orders import Order, OrderType, Side, TimeInForce
from ibkrfw.sim.commission import NOTHING_YET

_ON_CLOSE = frozenset((OrderType.MARKET_ON_CLOSE, OrderType.LIMIT_ON_CLOSE))


class Working:
    """An order resting in the simulator, with its prices as floats for matching."""

    __slots__ = (
        "auction",
        "auction_ns",
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
        self.buy = req.side is Side.BUY
        self.limit = float(req.limit_price) if req.limit_price is not None else 0.0
        self.stop = float(req.stop_price) if req.stop_price is not None else 0.0
        self.tif = req.tif
        self.expire_ns: int | None = req.good_till_ns if req.tif is TimeInForce.GTD else None
        self.triggered = False  # a touched STOP_LIMIT works as a limit; STOP as a market order
        self.so_far = NOTHING_YET  # what the order filled and paid so far
        # On-open and on-close orders: when their auction is, and (on close) the latest bar
        # of the day they wait to close on.
        self.auction = req.tif is TimeInForce.OPG or req.order_type in _ON_CLOSE
        self.auction_ns: int | None = None
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
