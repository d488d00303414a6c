"""Pre-trade limits: position, order size, exposure, restricted instruments, hours, order rate.

Each rule looks at the position the order would leave if it filled in full, together with the
orders still working on the same side (:meth:`PortfolioView.working
<ibkrfw.PortfolioView.working>`), so several orders sent before any fill cannot pass a limit
together that each passes alone. Orders are valued at their limit price, others at the last
price seen. An order that only reduces risk (brings a position toward flat, lowers exposure) is
never denied by a limit it would bring the account back under.

"Only reduces" has one meaning for every rule here (:func:`~ibkrfw.risk.only_reduces`): the
order is on the other side of the position held and, together with the orders already working
on its own side, does not take the position past flat. Such an order passes every built-in
rule unchanged, whatever its size, its time or the data's age, so a strategy's exit and a
halt's flatten always go out. An order that would go past flat with the working orders is not
a reduction: it is checked as any other.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import deque
from collections.abc import Iterable
from decimal import Decimal
from typing import final
from zoneinfo import ZoneInfo

from typing_extensions import override

from ibkrfw.errors import ConfigError
from ibkrfw.model._decimal import DecimalLike, float_decimal, to_decimal
from ibkrfw.model.instruments import Instrument
from ibkrfw.model.orders import OrderRequest
from ibkrfw.portfolio.portfolio import PortfolioView
from ibkrfw.risk.rule import (
    _DAILY_NS,
    LimitUsage,
    RiskDecision,
    RiskRule,
    _duration,
    _reduces,
    only_reduces,
)

__all__ = [
    "ExposureLimit",
    "MarginCheck",
    "MaxOrderNotional",
    "MaxPosition",
    "OrderRateLimit",
    "RestrictedList",
    "TradingHours",
]

_NS = 1_000_000_000


def _positive(value: float | None, name: str) -> float | None:
    if value is not None and not (isinstance(value, int | float) and value > 0):
        raise ConfigError(f"{name} must be a positive number, got {value!r}")
    return value


def _price(request: OrderRequest, portfolio: PortfolioView) -> float:
    """The price an order is valued at: its limit if it has one, else the last price seen."""
    if request.limit_price is not None:
        return float(request.limit_price)
    return portfolio.price(request.instrument)


def _value(request: OrderRequest, portfolio: PortfolioView, quantity: Decimal) -> float:
    """``quantity`` of the order's instrument in the base currency, at the order's price."""
    inst = request.instrument
    rate = portfolio.rate(inst.currency) if inst.currency != portfolio.base_currency else 1.0
    return float(quantity * inst.multiplier) * _price(request, portfolio) * rate


def _worst(held: Decimal, working: tuple[Decimal, Decimal], request: OrderRequest) -> Decimal:
    """The position if this order and the live orders on its side all filled."""
    buys, sells = working
    return (
        held + request.quantity + buys if request.side.sign > 0 else held - request.quantity - sells
    )


def _no_price(request: OrderRequest) -> RiskDecision:
    return RiskDecision.deny(
        f"no price of {request.instrument.id} yet to value the order (give it a limit price, "
        "or wait for a bar)"
    )


def _room(
    cap: Decimal, held: Decimal, working: tuple[Decimal, Decimal], request: OrderRequest
) -> Decimal:
    """The most of ``request``, in whole lots, that keeps the worst position within ``cap``."""
    sign = request.side.sign
    base = held + working[0] if sign > 0 else held - working[1]
    room = cap - sign * base
    return request.instrument.round_quantity(room) if room > 0 else Decimal(0)


def _over(request: OrderRequest, room: Decimal, shrink: bool, why: str) -> RiskDecision:
    """Deny ``request``, or shrink it to ``room`` when asked to and something fits."""
    if shrink and room > 0:
        return RiskDecision.shrink(room, f"{why}: cut from {request.quantity} to {room}")
    return RiskDecision.deny(why)


@final
class MaxPosition(RiskRule):
    """Cap the position in each instrument: by quantity, by value, or as a share of equity.

    Args:
        quantity: The largest absolute quantity held.
        notional: The largest absolute market value, in the base currency.
        percent_of_equity: The largest absolute market value as a share of equity (0.25: 25 %).
        instruments: The instruments it applies to (every instrument if None).
        shrink: Cut an order that would pass the limit down to what fits (in whole lots)
            instead of denying it; the strategy is told by :class:`~ibkrfw.OrderResized`.

    An order that only brings the position toward flat (:func:`~ibkrfw.risk.only_reduces`)
    always passes, even while the position is over the limit.

    Raises:
        ConfigError: if no limit is given, or one is not positive.

    Example:
        >>> rule = MaxPosition(percent_of_equity=0.2, shrink=True)
    """

    def __init__(
        self,
        *,
        quantity: DecimalLike | None = None,
        notional: float | None = None,
        percent_of_equity: float | None = None,
        instruments: Iterable[Instrument] | None = None,
        shrink: bool = False,
    ) -> None:
        if quantity is None and notional is None and percent_of_equity is None:
            raise ConfigError("MaxPosition needs a quantity, notional or percent_of_equity limit")
        self.quantity = None if quantity is None else to_decimal(quantity, "quantity")
        if self.quantity is not None and self.quantity <= 0:
            raise ConfigError(f"quantity must be positive, got {quantity!r}")
        self.notional = _positive(notional, "notional")
        self.percent_of_equity = _positive(percent_of_equity, "percent_of_equity")
        self.instruments = None if instruments is None else frozenset(instruments)
        self.shrink = shrink

    @override
    def check(self, request: OrderRequest, portfolio: PortfolioView, ts_ns: int) -> RiskDecision:
        inst = request.instrument
        if self.instruments is not None and inst not in self.instruments:
            return RiskDecision.approve()
        held = portfolio.quantity(inst)
        working = portfolio.working(inst)
        if _reduces(held, request, working):
            return RiskDecision.approve()
        after = _worst(held, working, request)
        if self.quantity is not None and abs(after) > self.quantity:
            return _over(
                request,
                _room(self.quantity, held, working, request),
                self.shrink,
                f"the position in {inst.id} would be {after}, over the limit of {self.quantity}",
            )
        if self.notional is None and self.percent_of_equity is None:
            return RiskDecision.approve()
        unit = abs(_value(request, portfolio, Decimal(1)))
        if math.isnan(unit):
            return _no_price(request)
        value = float(abs(after)) * unit
        if self.notional is not None and value > self.notional:
            return _over(
                request,
                _room(_units(self.notional, unit), held, working, request),
                self.shrink,
                f"the position in {inst.id} would be worth {value:,.2f}, over the limit of "
                f"{self.notional:,.2f}",
            )
        if self.percent_of_equity is not None:
            equity = portfolio.equity
            if not equity > 0 or value > self.percent_of_equity * equity:
                share = value / equity if equity > 0 else math.inf
                cap = _units(self.percent_of_equity * equity, unit) if equity > 0 else Decimal(0)
                return _over(
                    request,
                    _room(cap, held, working, request),
                    self.shrink,
                    f"the position in {inst.id} would be {share:.1%} of equity, over the limit "
                    f"of {self.percent_of_equity:.1%}",
                )
        return RiskDecision.approve()


def _units(value: float, unit_value: float) -> Decimal:
    """How many units (not rounded to lots) ``value`` buys at ``unit_value`` each."""
    return float_decimal(value / unit_value) if unit_value > 0 else Decimal(0)


@final
class MaxOrderNotional(RiskRule):
    """Deny any single order worth more than a limit, in the base currency.

    An order that only brings its position toward flat (:func:`~ibkrfw.risk.only_reduces`)
    passes whatever its value: it cannot be worth more than the position.

    Args:
        limit: The largest value of one order.
        shrink: Cut a larger order down to the limit (in whole lots) instead of denying it.

    Raises:
        ConfigError: if the limit is not positive.
    """

    def __init__(self, limit: float, *, shrink: bool = False) -> None:
        self.limit = _positive(limit, "limit")
        self.shrink = shrink

    @override
    def check(self, request: OrderRequest, portfolio: PortfolioView, ts_ns: int) -> RiskDecision:
        if only_reduces(request, portfolio):
            return RiskDecision.approve()
        unit = abs(_value(request, portfolio, Decimal(1)))
        if math.isnan(unit):
            return _no_price(request)
        value = float(request.quantity) * unit
        if self.limit is not None and value > self.limit:
            return _over(
                request,
                request.instrument.round_quantity(_units(self.limit, unit)),
                self.shrink,
                f"the order is worth {value:,.2f}, over the limit of {self.limit:,.2f} per order",
            )
        return RiskDecision.approve()


@final
class ExposureLimit(RiskRule):
    """Cap gross exposure, net exposure and leverage after the order.

    Gross exposure is the sum of the positions' absolute market values, each at the largest it
    could reach if the working orders on one side filled; net exposure the signed sum if every
    working order filled; leverage gross exposure over equity. An order that lowers the measure
    it would break is let through, and so is one that only brings its position toward flat
    (:func:`~ibkrfw.risk.only_reduces`: it lowers all three), priced or not.

    Args:
        max_gross: The largest gross exposure, in the base currency.
        max_net: The largest absolute net exposure, in the base currency.
        max_leverage: The largest gross exposure over equity (2.0 for Reg T's 2:1).

    Raises:
        ConfigError: if no limit is given, or one is not positive.
    """

    def __init__(
        self,
        *,
        max_gross: float | None = None,
        max_net: float | None = None,
        max_leverage: float | None = None,
    ) -> None:
        if max_gross is None and max_net is None and max_leverage is None:
            raise ConfigError("ExposureLimit needs max_gross, max_net or max_leverage")
        self.max_gross = _positive(max_gross, "max_gross")
        self.max_net = _positive(max_net, "max_net")
        self.max_leverage = _positive(max_leverage, "max_leverage")

    @override
    def usage(self, portfolio: PortfolioView) -> list[LimitUsage]:
        gross, net = portfolio.gross_exposure, portfolio.market_value
        found = []
        if self.max_gross is not None:
            found.append(LimitUsage("gross exposure", gross, self.max_gross))
        if self.max_net is not None:
            found.append(LimitUsage("net exposure", abs(net), self.max_net))
        equity = portfolio.equity
        if self.max_leverage is not None and equity > 0:
            found.append(LimitUsage("leverage", gross / equity, self.max_leverage))
        return found

    @override
    def check(self, request: OrderRequest, portfolio: PortfolioView, ts_ns: int) -> RiskDecision:
        if only_reduces(request, portfolio):
            return RiskDecision.approve()
        if math.isnan(_price(request, portfolio)):
            return _no_price(request)
        gross_before, gross_after, net_before, net_after = _exposures(request, portfolio)
        growing = gross_after > gross_before
        if self.max_gross is not None and gross_after > self.max_gross and growing:
            return RiskDecision.deny(
                f"gross exposure would be {gross_after:,.2f}, over the limit of "
                f"{self.max_gross:,.2f}"
            )
        net_growing = abs(net_after) > abs(net_before)
        if self.max_net is not None and abs(net_after) > self.max_net and net_growing:
            return RiskDecision.deny(
                f"net exposure would be {net_after:,.2f}, over the limit of {self.max_net:,.2f}"
            )
        if self.max_leverage is not None and growing:
            equity = portfolio.equity
            if not equity > 0 or gross_after > self.max_leverage * equity:
                leverage = gross_after / equity if equity > 0 else math.inf
                return RiskDecision.deny(
                    f"leverage would be {leverage:.2f}, over the limit of {self.max_leverage:.2f}"
                )
        return RiskDecision.approve()


def _exposures(
    request: OrderRequest, portfolio: PortfolioView
) -> tuple[float, float, float, float]:
    """Gross and net exposure before and after ``request``, working orders included.

    Each instrument's gross exposure is the largest its position could reach if the working
    orders on one side filled; the net exposure assumes every working order fills.
    """
    inst = request.instrument
    instruments = set(portfolio.positions) | set(portfolio.working_instruments()) | {inst}
    gross_before = gross_after = net_before = net_after = 0.0
    for other in instruments:
        held = portfolio.quantity(other)
        buys, sells = portfolio.working(other)
        unit = _unit_value(other, portfolio, request)
        if math.isnan(unit):
            continue  # never priced yet: nothing to value (it has no position either)
        worst = max(abs(held + buys), abs(held - sells)) * unit
        expected = (held + buys - sells) * unit
        gross_before += float(worst)
        net_before += float(expected)
        if other == inst:
            if request.side.sign > 0:
                buys += request.quantity
            else:
                sells += request.quantity
            worst = max(abs(held + buys), abs(held - sells)) * unit
            expected = (held + buys - sells) * unit
        gross_after += float(worst)
        net_after += float(expected)
    return gross_before, gross_after, net_before, net_after


def _unit_value(inst: Instrument, portfolio: PortfolioView, request: OrderRequest) -> Decimal:
    """One unit of ``inst`` in the base currency: at the order's price for its instrument."""
    price = _price(request, portfolio) if inst == request.instrument else portfolio.price(inst)
    rate = portfolio.rate(inst.currency) if inst.currency != portfolio.base_currency else 1.0
    value = price * rate
    return Decimal("NaN") if math.isnan(value) else float_decimal(value) * inst.multiplier


@final
class MarginCheck(RiskRule):
    """Deny an order whose initial margin the account's equity would not cover.

    The requirement is a share of the gross exposure after the order (working orders
    included): Reg T's 50 % for US stocks by default. Orders that lower the gross exposure
    always pass, as do those that only bring their position toward flat
    (:func:`~ibkrfw.risk.only_reduces`), priced or not. A maintenance requirement, checked as
    prices move, is the monitor :class:`~ibkrfw.risk.MaintenanceMargin`.

    Args:
        initial: The share of gross exposure equity must cover, in (0, 1].

    Raises:
        ConfigError: if ``initial`` is out of range.
    """

    def __init__(self, initial: float = 0.5) -> None:
        if not 0 < initial <= 1:
            raise ConfigError(f"initial must be in (0, 1], got {initial!r}")
        self.initial = initial

    @override
    def usage(self, portfolio: PortfolioView) -> list[LimitUsage]:
        equity = portfolio.equity
        needed = portfolio.gross_exposure * self.initial
        return [LimitUsage("initial margin", needed, equity)] if equity > 0 else []

    @override
    def check(self, request: OrderRequest, portfolio: PortfolioView, ts_ns: int) -> RiskDecision:
        if only_reduces(request, portfolio):
            return RiskDecision.approve()
        if math.isnan(_price(request, portfolio)):
            return _no_price(request)
        gross_before, gross_after, _, _ = _exposures(request, portfolio)
        if gross_after <= gross_before:
            return RiskDecision.approve()
        needed = gross_after * self.initial
        equity = portfolio.equity
        if needed > equity:
            return RiskDecision.deny(
                f"initial margin of {needed:,.2f} ({self.initial:.0%} of a gross exposure of "
                f"{gross_after:,.2f}) exceeds the equity of {equity:,.2f}"
            )
        return RiskDecision.approve()


@final
class RestrictedList(RiskRule):
    """Deny orders in restricted instruments, except those that reduce a position held.

    An order reduces it when it only brings it toward flat (:func:`~ibkrfw.risk.only_reduces`):
    with the orders working on its side, not past flat.

    Args:
        instruments: The restricted instruments.
        symbols: Restricted symbols (whatever the exchange or currency).
        reason: Why they are restricted, for the denial.
    """

    def __init__(
        self,
        instruments: Iterable[Instrument] = (),
        *,
        symbols: Iterable[str] = (),
        reason: str = "restricted",
    ) -> None:
        self.instruments = frozenset(instruments)
        self.symbols = frozenset(s.upper() for s in symbols)
        self.reason = reason

    @override
    def check(self, request: OrderRequest, portfolio: PortfolioView, ts_ns: int) -> RiskDecision:
        inst = request.instrument
        if inst not in self.instruments and inst.symbol.upper() not in self.symbols:
            return RiskDecision.approve()
        if only_reduces(request, portfolio):
            return RiskDecision.approve()  # getting out is always allowed
        return RiskDecision.deny(f"{inst.id} is on the restricted list ({self.reason})")


@final
class TradingHours(RiskRule):
    """Allow new orders only inside a daily time window, in a given time zone.

    Outside the window, an order that only brings its position toward flat
    (:func:`~ibkrfw.risk.only_reduces`) still passes: a strategy's exit, or a halt's flatten
    late in the day, is not held back until the next morning. (When the market fills it is the
    broker's and the exchange's business, as for any order.)

    The time of an order is the time it is sent: in a backtest, the time stamp of the bar it
    was decided on (its open). So the window can only tell bars apart that are shorter than
    it: on bars of a day or longer every order is sent at the same time of day, and the rule
    lets through all of them or none on each weekday, as the data's time stamps fall; it says
    so when the run starts (a :class:`~ibkrfw.RiskWarning`).

    Args:
        start: The window's start, ``"HH:MM"`` (included).
        end: The window's end, ``"HH:MM"`` (excluded); before ``start`` for a window across
            midnight.
        tz: The time zone of the window (the exchange's, e.g. ``"America/New_York"``).
        weekdays: The days it is open, 0 for Monday (Monday to Friday by default).

    Raises:
        ConfigError: for a time that is not ``HH:MM``, an unknown zone or an empty window.

    Example:
        >>> rule = TradingHours("09:35", "15:55", "America/New_York")
    """

    def __init__(
        self,
        start: str,
        end: str,
        tz: str = "America/New_York",
        *,
        weekdays: Iterable[int] = range(5),
    ) -> None:
        self.start, self.end = _hhmm(start), _hhmm(end)
        if self.start == self.end:
            raise ConfigError("a trading window needs a start different from its end")
        try:
            self.zone = ZoneInfo(tz)
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"unknown time zone {tz!r}: {exc}") from None
        self.weekdays = frozenset(weekdays)
        self._label = f"{start}-{end} {tz}"

    @override
    def on_start(self, portfolio: PortfolioView, bar_ns: int | None) -> str | None:
        if bar_ns is None:
            return None
        length = (self.end - self.start) % (24 * 60) * 60 * _NS
        if bar_ns >= _DAILY_NS:
            return (
                f"on bars of {_duration(bar_ns)} every order is sent at a bar's time stamp, at "
                f"the same time of day: the window {self._label} cannot tell the hours apart, "
                "and lets through all the orders of a weekday or none, as the data's time "
                "stamps fall (only its weekdays still choose)"
            )
        if bar_ns > length:
            return (
                f"the window {self._label} is shorter than a bar ({_duration(bar_ns)}): orders "
                "are sent at the bars' time stamps, and the window may hold none of them"
            )
        return None

    @override
    def check(self, request: OrderRequest, portfolio: PortfolioView, ts_ns: int) -> RiskDecision:
        local = dt.datetime.fromtimestamp(ts_ns / _NS, tz=self.zone)
        minute = local.hour * 60 + local.minute
        if self.start < self.end:
            inside = self.start <= minute < self.end
        else:
            inside = minute >= self.start or minute < self.end
        if inside and local.weekday() in self.weekdays:
            return RiskDecision.approve()
        if only_reduces(request, portfolio):
            return RiskDecision.approve()
        return RiskDecision.deny(
            f"outside the trading window {self._label} (it is {local:%a %H:%M} there)"
        )


def _hhmm(text: str) -> int:
    try:
        hours, minutes = (int(p) for p in text.split(":"))
    except ValueError:
        raise ConfigError(f"a time must be HH:MM, got {text!r}") from None
    if not (0 <= hours < 24 and 0 <= minutes < 60):
        raise ConfigError(f"a time must be HH:MM, got {text!r}")
    return hours * 60 + minutes


@final
class OrderRateLimit(RiskRule):
    """Allow at most ``max_orders`` orders within any ``seconds`` (a runaway-loop guard).

    Orders are counted when they pass every rule before this one and this one; put it last so
    that orders other rules deny do not use up the budget. An order that only brings its
    position toward flat (:func:`~ibkrfw.risk.only_reduces`) always passes, and counts: a
    runaway loop cannot send many of them, as together with the ones already working they would
    soon go past flat.

    Args:
        max_orders: The most orders in any window.
        seconds: The window's length.

    Raises:
        ConfigError: if either is not positive.
    """

    def __init__(self, max_orders: int, seconds: float) -> None:
        if not (isinstance(max_orders, int) and max_orders > 0):
            raise ConfigError(f"max_orders must be a positive int, got {max_orders!r}")
        _positive(seconds, "seconds")
        self.max_orders = max_orders
        self.window_ns = int(seconds * _NS)
        self._seconds = seconds
        self._sent: deque[int] = deque()

    @override
    def check(self, request: OrderRequest, portfolio: PortfolioView, ts_ns: int) -> RiskDecision:
        sent = self._sent
        while sent and ts_ns - sent[0] >= self.window_ns:
            sent.popleft()
        if len(sent) >= self.max_orders and not only_reduces(request, portfolio):
            return RiskDecision.deny(
                f"{len(sent)} orders within {self._seconds:g} s already, the most allowed"
            )
        sent.append(ts_ns)
        return RiskDecision.approve()
