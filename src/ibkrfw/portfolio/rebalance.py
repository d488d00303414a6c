"""Rebalancing to target weights: the orders, and when to send them.

:func:`plan_rebalance` turns target weights into orders (drift band, minimum trade, lot
rounding, sells before buys, buys within the cash there will be); :class:`Schedule` says when
a new day, week or month begins; :func:`drift` measures how far the weights have wandered.
The ready strategy :class:`~ibkrfw.strategies.TargetWeights` puts them together.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Literal, final
from zoneinfo import ZoneInfo

import attrs

from ibkrfw.errors import ConfigError
from ibkrfw.model._decimal import float_decimal
from ibkrfw.model.instruments import Instrument
from ibkrfw.model.orders import OrderRequest, Side
from ibkrfw.portfolio.portfolio import PortfolioView

__all__ = ["RebalancePlan", "Schedule", "drift", "plan_rebalance"]

_ZERO = Decimal(0)


def _check_weights(targets: Mapping[Instrument, float]) -> None:
    for inst, weight in targets.items():
        if not (isinstance(weight, int | float) and math.isfinite(weight)):
            raise ConfigError(f"the target weight of {inst.id} must be a finite number")


def _weight(portfolio: PortfolioView, inst: Instrument, quantity: Decimal, equity: float) -> float:
    unit = _unit(portfolio, inst)
    return float(quantity) * unit / equity


def _unit(portfolio: PortfolioView, inst: Instrument) -> float:
    """One unit of ``inst`` in the base currency (NaN before a price)."""
    rate = 1.0 if inst.currency == portfolio.base_currency else portfolio.rate(inst.currency)
    return portfolio.price(inst) * float(inst.multiplier) * rate


def drift(portfolio: PortfolioView, targets: Mapping[Instrument, float]) -> float:
    """The largest distance between an instrument's weight and its target.

    Positions held outside ``targets`` count with a target of zero. NaN when equity is not
    positive or an instrument has no price yet.

    Example:
        >>> from ibkrfw import Stock
        >>> from ibkrfw.portfolio import Portfolio
        >>> drift(Portfolio(cash=1_000), {Stock("X"): 0.25})
        nan
    """
    equity = portfolio.equity
    if not equity > 0:
        return math.nan
    worst = 0.0
    for inst in set(targets) | set(portfolio.positions):
        current = _weight(portfolio, inst, portfolio.quantity(inst), equity)
        if math.isnan(current):
            return math.nan
        worst = max(worst, abs(current - targets.get(inst, 0.0)))
    return worst


@final
@attrs.frozen
class RebalancePlan:
    """The orders that bring a portfolio to its targets, and what was left out and why.

    Attributes:
        orders: The orders, sells (and covers of shorts) first, then buys.
        skipped: Instruments not traded, with the reason (within the band, below the minimum
            trade, no price, not enough cash).
        drift: The drift before the trades (see :func:`drift`).
    """

    orders: tuple[OrderRequest, ...]
    skipped: Mapping[Instrument, str]
    drift: float


def plan_rebalance(
    portfolio: PortfolioView,
    targets: Mapping[Instrument, float],
    *,
    drift_band: float = 0.0,
    min_trade_value: float = 0.0,
    cash_buffer: float = 0.0,
    cash_aware: bool = True,
    pending: Mapping[Instrument, Decimal] | None = None,
    tag: str = "rebalance",
) -> RebalancePlan:
    """Work out the market orders that bring ``portfolio`` to the target weights.

    Each instrument's target quantity is its weight of equity at the last price, rounded
    toward zero to whole lots. An instrument whose weight is within ``drift_band`` of its
    target is left alone, as is a trade worth less than ``min_trade_value``; positions held
    outside ``targets`` are closed. Sells come first. With ``cash_aware`` the buys are cut (in
    proportion, to whole lots) so that they cost no more than the cash there will be after the
    sells, less ``cash_buffer`` of equity kept back for commissions and price moves.

    Args:
        portfolio: The portfolio to rebalance.
        targets: The target weight of each instrument, as a share of equity (negative for
            short positions).
        drift_band: The largest distance from target left alone (0.02: two points).
        min_trade_value: The smallest trade worth sending, in the base currency.
        cash_buffer: The share of equity not spent on buys (0.01: 1 %).
        cash_aware: Keep the buys within the cash (no borrowing).
        pending: Quantities already on their way, per instrument (signed), counted as held.
        tag: The orders' tag.

    Returns:
        The plan.

    Raises:
        ConfigError: for a weight that is not a finite number, or a negative setting.

    Example:
        >>> from decimal import Decimal
        >>> from ibkrfw import Stock
        >>> from ibkrfw.portfolio import Portfolio
        >>> a, b = Stock("A"), Stock("B")
        >>> pf = Portfolio(cash=10_000)
        >>> pf.mark(a, 50.0)
        >>> pf.mark(b, 20.0)
        >>> plan = plan_rebalance(pf, {a: 0.6, b: 0.4})
        >>> [(o.instrument.symbol, o.side.value, o.quantity) for o in plan.orders]
        [('A', 'BUY', Decimal('120')), ('B', 'BUY', Decimal('200'))]
    """
    _check_weights(targets)
    for name, value in (
        ("drift_band", drift_band),
        ("min_trade_value", min_trade_value),
        ("cash_buffer", cash_buffer),
    ):
        if not (isinstance(value, int | float) and value >= 0):
            raise ConfigError(f"{name} must be a number of at least 0, got {value!r}")
    pending = pending or {}
    equity = portfolio.equity
    skipped: dict[Instrument, str] = {}
    before = drift(portfolio, targets)
    if not equity > 0:
        return RebalancePlan((), dict.fromkeys(targets, "equity is not positive"), before)
    sells: list[tuple[OrderRequest, float]] = []
    buys: list[tuple[OrderRequest, float]] = []
    for inst in sorted(set(targets) | set(portfolio.positions), key=lambda i: i.id):
        unit = _unit(portfolio, inst)
        if not (unit > 0 and math.isfinite(unit)):
            skipped[inst] = "no price yet"
            continue
        held = portfolio.quantity(inst) + pending.get(inst, _ZERO)
        target = targets.get(inst, 0.0)
        weight = float(held) * unit / equity
        if inst in targets and abs(weight - target) <= drift_band:
            skipped[inst] = f"within the band ({weight:.2%} for {target:.2%})"
            continue
        goal = inst.round_quantity(float_decimal(target * equity / unit))
        delta = goal - held
        if not delta:
            skipped[inst] = "already at target in whole lots"
            continue
        value = abs(float(delta)) * unit
        if value < min_trade_value:
            skipped[inst] = f"trade of {value:,.2f} below the minimum of {min_trade_value:,.2f}"
            continue
        if delta > 0:
            buys.append((OrderRequest(inst, Side.BUY, delta, tag=tag), value))
        else:  # what it brings in: the sale of a long position, not the opening of a short
            freed = float(min(-delta, max(held, _ZERO))) * unit
            sells.append((OrderRequest(inst, Side.SELL, -delta, tag=tag), freed))
    if cash_aware and buys:
        cash = float(portfolio.cash) + sum(freed for _, freed in sells)
        available = cash - cash_buffer * equity
        cost = sum(v for _, v in buys)
        if cost > available:
            scale = max(available, 0.0) / cost
            kept: list[tuple[OrderRequest, float]] = []
            for request, value in buys:
                smaller = request.instrument.round_quantity(request.quantity * float_decimal(scale))
                if smaller > 0:
                    kept.append((attrs.evolve(request, quantity=smaller), value * scale))
                else:
                    skipped[request.instrument] = "not enough cash"
            buys = kept
    orders = tuple(r for r, _ in sells) + tuple(r for r, _ in buys)
    return RebalancePlan(orders, skipped, before)


Frequency = Literal["daily", "weekly", "monthly", "quarterly"]


@final
class Schedule:
    """Tell when a new day, week, month or quarter begins, in a time zone.

    :meth:`due` is true for the first time stamp of each new period (and the very first one
    seen), so a strategy calling it on every bar acts once per period, on its first bar.

    Args:
        every: ``"daily"``, ``"weekly"`` (weeks start on Monday), ``"monthly"`` or
            ``"quarterly"``.
        tz: The time zone periods are counted in (the exchange's).

    Raises:
        ConfigError: for an unknown frequency or time zone.

    Example:
        >>> import pandas as pd
        >>> s = Schedule("monthly")
        >>> days = ["2024-01-30", "2024-01-31", "2024-02-01", "2024-02-02"]
        >>> [s.due(pd.Timestamp(f"{d} 15:00", tz="UTC").value) for d in days]
        [True, False, True, False]
    """

    def __init__(self, every: Frequency = "monthly", tz: str = "America/New_York") -> None:
        if every not in ("daily", "weekly", "monthly", "quarterly"):
            raise ConfigError(f"every must be daily, weekly, monthly or quarterly, got {every!r}")
        try:
            self.zone = ZoneInfo(tz)
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"unknown time zone {tz!r}: {exc}") from None
        self.every = every
        self._last: tuple[int, int] | None = None
        self._last_ns = -1
        self._due = False

    def period(self, ts_ns: int) -> tuple[int, int]:
        """The period ``ts_ns`` falls in: (year, day, ISO week, month or quarter number)."""
        day = dt.datetime.fromtimestamp(ts_ns / 1e9, tz=self.zone).date()
        if self.every == "daily":
            return day.year, day.toordinal()
        if self.every == "weekly":
            year, week, _ = day.isocalendar()
            return year, week
        if self.every == "monthly":
            return day.year, day.month
        return day.year, (day.month - 1) // 3

    def due(self, ts_ns: int) -> bool:
        """Whether ``ts_ns`` is the first time stamp of a new period.

        Asking again at the same time stamp gives the same answer.
        """
        if ts_ns == self._last_ns:
            return self._due
        period = self.period(ts_ns)
        self._due = period != self._last
        self._last, self._last_ns = period, ts_ns
        return self._due
