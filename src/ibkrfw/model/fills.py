"""Fills and positions: the ledger values."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import TYPE_CHECKING, final

import attrs

from ibkrfw.model._time import to_timestamp
from ibkrfw.model.instruments import Instrument
from ibkrfw.model.orders import Side

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Fill", "Position"]


@final
@attrs.frozen
class Fill:
    """One execution of (part of) an order.

    Args:
        order_id: The engine's id of the order that filled.
        instrument: What was traded.
        side: BUY or SELL.
        quantity: Units filled, positive.
        price: Price per unit, on the instrument's tick grid.
        commission: Commission and fees charged for this fill, in the instrument's currency.
        ts_ns: Execution time, UTC epoch nanoseconds.
        fill_id: Unique id of the execution (IB's ``execId`` in live trading).
        slippage: What the simulator's slippage model cost on this fill, in the instrument's
            currency (the price moved against the trader, times quantity and multiplier); 0
            when no model applied, and in live trading, where it is not known.
    """

    order_id: int
    instrument: Instrument
    side: Side
    quantity: Decimal
    price: Decimal
    commission: Decimal
    ts_ns: int
    fill_id: str
    slippage: Decimal = Decimal(0)

    @property
    def signed_quantity(self) -> Decimal:
        """The quantity, negative for a sale."""
        return self.quantity if self.side is Side.BUY else -self.quantity

    @property
    def value(self) -> Decimal:
        """The traded value, ``quantity * price * multiplier`` (unsigned)."""
        return self.quantity * self.price * self.instrument.multiplier

    @property
    def timestamp(self) -> pd.Timestamp:
        """Execution time as a UTC :class:`pandas.Timestamp`."""
        return to_timestamp(self.ts_ns)


@final
@attrs.frozen
class Position:
    """A snapshot of the holding in one instrument.

    Args:
        instrument: The instrument held.
        quantity: Signed units held (negative when short).
        avg_price: Average entry price of the open quantity (zero when flat).
        realized_pnl: Profit realised so far in this instrument, before commissions.
        commission: Commissions paid so far in this instrument.
        market_price: The last price seen (NaN before any).
    """

    instrument: Instrument
    quantity: Decimal = Decimal(0)
    avg_price: Decimal = Decimal(0)
    realized_pnl: Decimal = Decimal(0)
    commission: Decimal = Decimal(0)
    market_price: float = math.nan

    @property
    def is_flat(self) -> bool:
        """Whether nothing is held."""
        return self.quantity == 0

    @property
    def market_value(self) -> float:
        """Signed value of the holding at ``market_price`` (zero when flat)."""
        if self.quantity == 0:
            return 0.0
        return float(self.quantity) * float(self.instrument.multiplier) * self.market_price

    @property
    def unrealized_pnl(self) -> float:
        """Profit of the open quantity at ``market_price`` versus ``avg_price``."""
        if self.quantity == 0:
            return 0.0
        diff = self.market_price - float(self.avg_price)
        return float(self.quantity) * float(self.instrument.multiplier) * diff
