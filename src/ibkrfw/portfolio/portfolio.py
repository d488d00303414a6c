"""Cash, positions, profit and loss, and round-trip trades."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import final

import attrs
from typing_extensions import override

from ibkrfw.model._decimal import DecimalLike, to_decimal
from ibkrfw.model.fills import Fill, Position
from ibkrfw.model.instruments import Instrument
from ibkrfw.model.orders import Side

__all__ = ["Portfolio", "PortfolioView", "Trade", "round_trips"]

_ZERO = Decimal(0)


@final
@attrs.frozen
class Trade:
    """One round trip: from flat to flat (or to a reversal) in one instrument.

    Args:
        instrument: What was traded.
        side: ``BUY`` for a long trade, ``SELL`` for a short one.
        quantity: The largest absolute position held during the trade.
        entry_ns: Time of the first entry fill.
        exit_ns: Time of the fill that closed it.
        entry_price: Average price of the entry fills.
        exit_price: Average price of the exit fills.
        gross_pnl: Profit before commissions.
        commission: Commissions of every fill of the trade.
    """

    instrument: Instrument
    side: Side
    quantity: Decimal
    entry_ns: int
    exit_ns: int
    entry_price: Decimal
    exit_price: Decimal
    gross_pnl: Decimal
    commission: Decimal

    @property
    def pnl(self) -> Decimal:
        """Profit after commissions."""
        return self.gross_pnl - self.commission

    @property
    def return_pct(self) -> float:
        """Net profit as a percentage of the entry value."""
        entry_value = self.entry_price * self.quantity * self.instrument.multiplier
        return float(self.pnl / entry_value * 100) if entry_value else math.nan


class PortfolioView(ABC):
    """Read-only view of a portfolio, given to strategies and risk rules."""

    @property
    @abstractmethod
    def cash(self) -> Decimal:
        """Cash in the base currency (negative when borrowing)."""

    @property
    @abstractmethod
    def equity(self) -> float:
        """Cash plus the market value of every position at the last prices seen."""

    @abstractmethod
    def position(self, instrument: Instrument) -> Position:
        """Return the position in ``instrument`` (a flat one if none is held)."""

    @abstractmethod
    def quantity(self, instrument: Instrument) -> Decimal:
        """Return the signed quantity held in ``instrument`` (zero if none)."""

    @property
    @abstractmethod
    def positions(self) -> Mapping[Instrument, Position]:
        """Return every non-flat position."""

    @abstractmethod
    def price(self, instrument: Instrument) -> float:
        """Return the last price seen for ``instrument`` (NaN before any)."""

    @property
    def market_value(self) -> float:
        """Signed market value of all positions."""
        return sum((p.market_value for p in self.positions.values()), 0.0)

    @property
    def gross_exposure(self) -> float:
        """Sum of the absolute market values of all positions."""
        return sum((abs(p.market_value) for p in self.positions.values()), 0.0)

    def weight(self, instrument: Instrument) -> float:
        """Return the position's market value as a fraction of equity (NaN if equity is 0)."""
        equity = self.equity
        return self.position(instrument).market_value / equity if equity else math.nan


class _Holding:
    """Mutable ledger of one instrument; only Portfolio touches it."""

    __slots__ = (
        "avg",
        "commission",
        "instrument",
        "multiplier",
        "price",
        "qty",
        "qty_f",
        "realized",
        "unit_multiplier",
    )

    def __init__(self, instrument: Instrument) -> None:
        self.instrument = instrument
        self.multiplier = instrument.multiplier
        self.unit_multiplier = instrument.multiplier == 1
        self.qty = _ZERO
        self.qty_f = 0.0  # float(qty * multiplier), for marking on the per-bar path
        self.avg = _ZERO
        self.realized = _ZERO
        self.commission = _ZERO
        self.price = math.nan

    def snapshot(self) -> Position:
        return Position(
            self.instrument, self.qty, self.avg, self.realized, self.commission, self.price
        )


@final
class Portfolio(PortfolioView):
    """The account's ledger: cash, positions (average cost), realised P&L and trades.

    Ledger values are :class:`~decimal.Decimal`; marks and equity are float, as they come from
    market data. The engine owns the portfolio and is the only caller of :meth:`apply_fill` and
    :meth:`mark`; strategies see it through :class:`PortfolioView`.

    Args:
        cash: Starting cash, in the base currency.
        base_currency: The account's currency.

    Example:
        >>> from ibkrfw import Fill, Side, Stock
        >>> from decimal import Decimal
        >>> pf = Portfolio(cash=10_000)
        >>> aapl = Stock("AAPL")
        >>> pf.apply_fill(Fill(1, aapl, Side.BUY, Decimal(10), Decimal(100), Decimal(1), 0, "e1"))
        >>> pf.cash, pf.position(aapl).quantity
        (Decimal('8999'), Decimal('10'))
        >>> pf.mark(aapl, 110.0)
        >>> pf.equity
        10099.0
    """

    def __init__(self, cash: DecimalLike = 0, base_currency: str = "USD") -> None:
        self._cash = to_decimal(cash, "cash")
        self._cash_f = float(self._cash)
        self.base_currency = base_currency
        self._holdings: dict[Instrument, _Holding] = {}
        self._open: list[_Holding] = []  # holdings with a non-zero quantity
        self._fills: list[Fill] = []
        self._adjustments = _ZERO
        self._commission = _ZERO

    @property
    @override
    def cash(self) -> Decimal:
        return self._cash

    @property
    def cash_f(self) -> float:
        """Cash as a float, for per-bar arithmetic."""
        return self._cash_f

    @property
    @override
    def equity(self) -> float:
        equity = self._cash_f
        for h in self._open:
            equity += h.qty_f * h.price
        return equity

    @property
    def commission(self) -> Decimal:
        """Commissions paid so far."""
        return self._commission

    @override
    def position(self, instrument: Instrument) -> Position:
        holding = self._holdings.get(instrument)
        if holding is None:
            return Position(instrument)
        return holding.snapshot()

    @override
    def quantity(self, instrument: Instrument) -> Decimal:
        holding = self._holdings.get(instrument)
        return _ZERO if holding is None else holding.qty

    @property
    @override
    def positions(self) -> dict[Instrument, Position]:
        return {h.instrument: h.snapshot() for h in self._open}

    @override
    def price(self, instrument: Instrument) -> float:
        holding = self._holdings.get(instrument)
        return math.nan if holding is None else holding.price

    @property
    def trades(self) -> list[Trade]:
        """Closed round-trip trades, in the order they closed.

        See :func:`~ibkrfw.portfolio.round_trips` for how fills are grouped.
        """
        return round_trips(self._fills)

    @property
    def fills(self) -> list[Fill]:
        """Every fill booked, in order."""
        return list(self._fills)

    def holding(self, instrument: Instrument) -> _Holding:
        """Return the mutable ledger entry of ``instrument``, creating it if needed."""
        holding = self._holdings.get(instrument)
        if holding is None:
            holding = self._holdings[instrument] = _Holding(instrument)
        return holding

    def adjust_cash(self, amount: Decimal) -> None:
        """Move cash by ``amount`` for something other than a fill (a fee, interest...)."""
        self._cash += amount
        self._cash_f = float(self._cash)
        self._adjustments += amount

    @property
    def adjustments(self) -> Decimal:
        """The sum of every cash adjustment so far (negative when they were charges)."""
        return self._adjustments

    def mark(self, instrument: Instrument, price: float) -> None:
        """Record ``price`` as the last price of ``instrument``."""
        self.holding(instrument).price = price

    def apply_fill(self, fill: Fill) -> None:
        """Book ``fill``: move cash, update the position and its average cost, realise P&L."""
        self._fills.append(fill)
        h = self._holdings.get(fill.instrument) or self.holding(fill.instrument)
        size = fill.quantity
        q = size if fill.side is Side.BUY else -size
        price = fill.price
        unit = h.unit_multiplier
        fee = fill.commission
        value = q * price if unit else q * price * h.multiplier
        self._cash -= value + fee if fee else value
        self._cash_f = float(self._cash)
        if fee:
            self._commission += fee
            h.commission += fee
        if h.price != h.price:  # NaN: no mark yet
            h.price = float(price)
        old = h.qty
        new = old + q
        if old == 0:
            h.avg = price
        elif (old > 0) == (q > 0):  # adding: new average cost
            h.avg = (h.avg * abs(old) + price * size) / abs(new)
        else:  # reducing, closing or reversing
            closing = min(size, abs(old))
            pnl = (price - h.avg) * closing if old > 0 else (h.avg - price) * closing
            h.realized += pnl if unit else pnl * h.multiplier
            if new == 0:
                h.avg = _ZERO
            elif size > abs(old):
                h.avg = price  # reversed: the rest opens at this price
        h.qty = new
        h.qty_f = float(new) if unit else float(new * h.multiplier)
        if old == 0:
            self._open.append(h)
        elif new == 0:
            self._open.remove(h)


def round_trips(fills: Sequence[Fill]) -> list[Trade]:
    """Group ``fills`` into round-trip trades, from flat to flat, per instrument.

    A fill that reverses a position closes one trade and opens the next; its commission is
    shared between them in proportion to quantity. Trades still open at the end are left out.
    """
    trades: list[Trade] = []
    state: dict[Instrument, _TradeState] = {}
    for fill in fills:
        st = state.get(fill.instrument)
        if st is None:
            st = state[fill.instrument] = _TradeState()
        q = fill.signed_quantity
        size = fill.quantity
        old = st.qty
        if old == 0 or (old > 0) == (q > 0):
            if old == 0:
                st.open(fill.ts_ns)
            st.entry_qty += size
            st.entry_value += size * fill.price
            st.commission += fill.commission
            st.qty = old + q
            st.max_qty = max(st.max_qty, abs(st.qty))
            continue
        closing = min(size, abs(old))
        share = closing / size
        st.exit_qty += closing
        st.exit_value += closing * fill.price
        st.commission += fill.commission * share
        st.qty = old + q
        if st.qty == 0 or size > abs(old):
            trades.append(st.close(fill.instrument, old, fill.ts_ns))
            rest = size - closing
            if rest:
                st.open(fill.ts_ns)
                st.entry_qty = st.max_qty = rest
                st.entry_value = rest * fill.price
                st.commission = fill.commission * (1 - share)
    return trades


class _TradeState:
    __slots__ = (
        "commission",
        "entry_ns",
        "entry_qty",
        "entry_value",
        "exit_qty",
        "exit_value",
        "max_qty",
        "qty",
    )

    def __init__(self) -> None:
        self.qty = _ZERO
        self.open(0)

    def open(self, ts_ns: int) -> None:
        self.entry_ns = ts_ns
        self.entry_qty = self.entry_value = self.exit_qty = self.exit_value = _ZERO
        self.max_qty = self.commission = _ZERO

    def close(self, instrument: Instrument, old: Decimal, exit_ns: int) -> Trade:
        entry_price = self.entry_value / self.entry_qty
        exit_price = self.exit_value / self.exit_qty
        direction = 1 if old > 0 else -1
        gross = (exit_price - entry_price) * self.exit_qty * direction * instrument.multiplier
        return Trade(
            instrument=instrument,
            side=Side.BUY if old > 0 else Side.SELL,
            quantity=max(self.max_qty, abs(old)),
            entry_ns=self.entry_ns,
            exit_ns=exit_ns,
            entry_price=entry_price,
            exit_price=exit_price,
            gross_pnl=gross,
            commission=self.commission,
        )
