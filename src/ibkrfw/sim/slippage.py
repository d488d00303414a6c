"""Slippage models: what a fill costs beyond the price the simulator picked."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import final

from typing_extensions import override

from ibkrfw.errors import ConfigError
from ibkrfw.model.data import Bar, Quote
from ibkrfw.model.orders import Side

__all__ = [
    "FixedBpsSlippage",
    "HalfSpreadSlippage",
    "SlippageModel",
    "SquareRootImpactSlippage",
]

_PARKINSON = 1.0 / (2.0 * math.sqrt(math.log(2.0)))


def _non_negative(value: float, name: str) -> float:
    if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
        raise ConfigError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def _worse(side: Side, price: float, fraction: float) -> float:
    return price * (1.0 + fraction) if side is Side.BUY else price * (1.0 - fraction)


class SlippageModel(ABC):
    """Move a fill's price against the trader.

    The simulator calls :meth:`adjust` with the price its fill rules chose, then rounds the
    result to the tick against the trader and keeps it within the bar's low-high range and a
    limit order's limit (a limit is a guarantee; slippage can only eat the price improvement).
    """

    @abstractmethod
    def adjust(
        self, side: Side, price: float, quantity: float, bar: Bar, quote: Quote | None
    ) -> float:
        """Return the price paid (BUY) or received (SELL) for ``quantity`` at ``price``.

        Args:
            side: BUY or SELL.
            price: The price the fill rules chose.
            quantity: Units filled.
            bar: The bar the fill happens on.
            quote: The latest quote the broker saw for the instrument, if any.
        """


@final
class FixedBpsSlippage(SlippageModel):
    """Pay a fixed number of basis points on every fill.

    Example:
        >>> from ibkrfw import Bar, Stock
        >>> bar = Bar(Stock("X"), 0, 100.0, 101.0, 99.0, 100.5, 1e6)
        >>> round(FixedBpsSlippage(5).adjust(Side.BUY, 100.0, 10, bar, None), 6)
        100.05
    """

    def __init__(self, bps: float) -> None:
        self.bps = _non_negative(bps, "bps")

    @override
    def adjust(
        self, side: Side, price: float, quantity: float, bar: Bar, quote: Quote | None
    ) -> float:
        return _worse(side, price, self.bps / 10_000)


@final
class HalfSpreadSlippage(SlippageModel):
    """Pay half the bid-ask spread: the one of the latest quote, or ``spread_bps`` without one.

    Args:
        spread_bps: The full spread to assume when no quote has been seen, in basis points.
    """

    def __init__(self, spread_bps: float) -> None:
        self.spread_bps = _non_negative(spread_bps, "spread_bps")

    @override
    def adjust(
        self, side: Side, price: float, quantity: float, bar: Bar, quote: Quote | None
    ) -> float:
        if quote is not None and quote.ask >= quote.bid > 0:
            half = (quote.ask - quote.bid) / 2.0
            return price + half if side is Side.BUY else price - half
        return _worse(side, price, self.spread_bps / 20_000)


@final
class SquareRootImpactSlippage(SlippageModel):
    """Pay market impact growing with the square root of participation.

    The cost, as a fraction of price, is ``coefficient * sigma * sqrt(quantity / volume)``.
    Here ``volume`` is the bar's volume and ``sigma`` the bar's volatility: ``volatility`` if
    given, else Parkinson's estimate from the bar's own range, ``ln(high / low) / (2
    sqrt(ln 2))``. A bar of unknown or zero volume costs nothing here, as participation cannot
    be measured.

    Args:
        coefficient: Scale of the impact (about 1 in the literature).
        volatility: Per-bar volatility as a fraction; estimated from each bar if ``None``.

    Example:
        >>> from ibkrfw import Bar, Stock
        >>> bar = Bar(Stock("X"), 0, 100.0, 101.0, 99.0, 100.5, 10_000.0)
        >>> model = SquareRootImpactSlippage(1.0, volatility=0.01)
        >>> round(model.adjust(Side.SELL, 100.0, 100, bar, None), 6)  # 1 % * sqrt(1 %)
        99.9
    """

    def __init__(self, coefficient: float = 1.0, volatility: float | None = None) -> None:
        self.coefficient = _non_negative(coefficient, "coefficient")
        self.volatility = None if volatility is None else _non_negative(volatility, "volatility")

    @override
    def adjust(
        self, side: Side, price: float, quantity: float, bar: Bar, quote: Quote | None
    ) -> float:
        if not bar.volume > 0:  # NaN or zero: participation unknown
            return price
        sigma = self.volatility
        if sigma is None:
            sigma = math.log(bar.high / bar.low) * _PARKINSON if bar.low > 0 else 0.0
        return _worse(side, price, self.coefficient * sigma * math.sqrt(quantity / bar.volume))
