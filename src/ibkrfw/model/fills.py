"""Fills and positions: the ledger values."""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, NamedTuple, final

import attrs

from ibkrfw.model._time import to_timestamp
from ibkrfw.model.instruments import Instrument
from ibkrfw.model.orders import Side

# Enum members bound once: on Python 3.11 each `Side.BUY` in a function is a slow lookup
# (EnumType.__getattr__ routes every class attribute through Python), on the order path.
_BUY = Side.BUY

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
        return self.quantity if self.side is _BUY else -self.quantity

    @property
    def value(self) -> Decimal:
        """The traded value, ``quantity * price * multiplier`` (unsigned)."""
        return self.quantity * self.price * self.instrument.multiplier

    @property
    def timestamp(self) -> pd.Timestamp:
        """Execution time as a UTC :class:`pandas.Timestamp`."""
        return to_timestamp(self.ts_ns)


@final
class Position(NamedTuple):
    """A snapshot of the holding in one instrument.

    A named tuple, as :class:`~ibkrfw.Bar` is: a strategy may ask for its position on every
    bar, and a tuple is built three times faster than a frozen class. Change a field with
    ``position._replace(quantity=...)``.

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


def _slot_setters(
    cls: type, names: tuple[str, ...]
) -> tuple[Callable[[object, object], None], ...]:
    """The ``__set__`` of each of ``cls``'s slots, which a frozen class's ``__setattr__`` skips."""
    return tuple(getattr(cls, name).__set__ for name in names)


def position_of(
    instrument: Instrument,
    quantity: Decimal,
    avg_price: Decimal,
    realized_pnl: Decimal,
    commission: Decimal,
    market_price: float,
) -> Position:
    """``Position(instrument, quantity, ...)``, built faster: for a ledger's per-bar snapshot.

    The tuple is made directly, without the named tuple's keyword handling. The values must be
    of the fields' types.
    """
    return _new_tuple(Position, (instrument, quantity, avg_price, realized_pnl, commission,
                                 market_price))  # fmt: skip


_new_tuple = tuple.__new__


_FILL_SLOTS = _slot_setters(Fill, tuple(f.name for f in attrs.fields(Fill)))


def fill_of(
    order_id: int,
    instrument: Instrument,
    side: Side,
    quantity: Decimal,
    price: Decimal,
    commission: Decimal,
    ts_ns: int,
    fill_id: str,
    slippage: Decimal,
) -> Fill:
    """``Fill(order_id, instrument, ...)``, built faster: for the simulator's every fill.

    As :func:`position_of`: each slot is written directly (Fill has no converters or
    validators to skip); the values must be of the fields' types.
    """
    fill = object.__new__(Fill)
    s_order, s_inst, s_side, s_qty, s_price, s_fee, s_ts, s_id, s_slip = _FILL_SLOTS
    s_order(fill, order_id)
    s_inst(fill, instrument)
    s_side(fill, side)
    s_qty(fill, quantity)
    s_price(fill, price)
    s_fee(fill, commission)
    s_ts(fill, ts_ns)
    s_id(fill, fill_id)
    s_slip(fill, slippage)
    return fill
