"""Market data values: bars and quotes.

These are the values on the per-bar hot path, so they are :class:`typing.NamedTuple` rather
than attrs classes: just as immutable, and built in 300 ns instead of 740 ns on our reference
machine. Prices and sizes are ``float`` (market data is float64 throughout; ledger values become
:class:`~decimal.Decimal` at the fill).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from ibkrfw.model._time import to_timestamp
from ibkrfw.model.instruments import Instrument

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "Bar",
    "OptionGreeks",
    "Quote",
    "Tick",
]


class Bar(NamedTuple):
    """One OHLCV bar of one instrument.

    ``ts_ns`` is the bar's *open* time in UTC epoch nanoseconds; the bar is complete, so a
    strategy seeing it can trade from the next bar on.

    Feeds validate bars (finite positive prices, ``low <= open, close <= high``); a Bar built by
    hand is trusted as given.

    Example:
        >>> from ibkrfw import Stock
        >>> bar = Bar(Stock("AAPL"), 1_700_000_000_000_000_000, 10.0, 11.0, 9.5, 10.5, 1e4)
        >>> bar.close, str(bar.timestamp)
        (10.5, '2023-11-14 22:13:20+00:00')
    """

    instrument: Instrument
    ts_ns: int
    open: float
    high: float
    low: float
    close: float
    volume: float

    @property
    def timestamp(self) -> pd.Timestamp:
        """The bar's open time as a UTC :class:`pandas.Timestamp`."""
        return to_timestamp(self.ts_ns)


class Quote(NamedTuple):
    """Top of book for one instrument at one instant (UTC epoch nanoseconds)."""

    instrument: Instrument
    ts_ns: int
    bid: float
    ask: float
    bid_size: float
    ask_size: float

    @property
    def mid(self) -> float:
        """The mid price, ``(bid + ask) / 2``."""
        return (self.bid + self.ask) / 2.0

    @property
    def timestamp(self) -> pd.Timestamp:
        """The quote's time as a UTC :class:`pandas.Timestamp`."""
        return to_timestamp(self.ts_ns)


class Tick(NamedTuple):
    """One trade printed on the tape: its price and size (UTC epoch nanoseconds)."""

    instrument: Instrument
    ts_ns: int
    price: float
    size: float

    @property
    def timestamp(self) -> pd.Timestamp:
        """The trade's time as a UTC :class:`pandas.Timestamp`."""
        return to_timestamp(self.ts_ns)


class OptionGreeks(NamedTuple):
    """IB's option model for one price of an option (``tickOptionComputation``).

    TWS computes, for the bid, the ask, the last trade and its own model price, the
    volatility each implies and the greeks; a value it has not computed is None.

    Args:
        instrument: The option.
        ts_ns: When it arrived (UTC epoch nanoseconds).
        source: Which price: ``"bid"``, ``"ask"``, ``"last"`` or ``"model"``.
        implied_vol: The volatility the price implies (annualised fraction).
        delta: Change of the price per 1 of the underlying.
        gamma: Change of delta per 1 of the underlying.
        vega: Change of the price per volatility point (0.01), IB's unit.
        theta: Change of the price per calendar day, IB's unit.
        option_price: The price computed on (the model's own for ``"model"``).
        underlying_price: The underlying's price it was computed on.
        pv_dividend: The present value of the dividends expected before expiry.
    """

    instrument: Instrument
    ts_ns: int
    source: str
    implied_vol: float | None
    delta: float | None
    gamma: float | None
    vega: float | None
    theta: float | None
    option_price: float | None
    underlying_price: float | None
    pv_dividend: float | None

    @property
    def timestamp(self) -> pd.Timestamp:
        """When it arrived, as a UTC :class:`pandas.Timestamp`."""
        return to_timestamp(self.ts_ns)
