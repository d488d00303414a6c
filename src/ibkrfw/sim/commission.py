"""Commission models for the simulated broker."""

from __future__ import annotations

from abc import ABC, abstractmethod
from decimal import ROUND_HALF_EVEN, Decimal
from typing import final

from typing_extensions import override

from ibkrfw.errors import ConfigError
from ibkrfw.model._decimal import DecimalLike, to_decimal
from ibkrfw.model.instruments import Instrument
from ibkrfw.model.orders import Side

__all__ = ["CommissionModel", "PercentCommission", "PerShareCommission", "ZeroCommission"]

_CENT = Decimal("0.01")
_ZERO = Decimal(0)


def _non_negative(value: DecimalLike, name: str) -> Decimal:
    try:
        result = to_decimal(value, name)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if result < 0:
        raise ConfigError(f"{name} must not be negative, got {value!r}")
    return result


class CommissionModel(ABC):
    """Compute the commission of one fill, in the instrument's currency."""

    @abstractmethod
    def commission(
        self, instrument: Instrument, side: Side, quantity: Decimal, price: Decimal
    ) -> Decimal:
        """Return the commission for filling ``quantity`` at ``price``."""


@final
class ZeroCommission(CommissionModel):
    """Charge nothing (the default, so results are easy to check by hand)."""

    @override
    def commission(
        self, instrument: Instrument, side: Side, quantity: Decimal, price: Decimal
    ) -> Decimal:
        return _ZERO


@final
class PerShareCommission(CommissionModel):
    """Charge a rate per unit, with an optional minimum and a cap as a fraction of value.

    Rounded to the cent (half to even).

    Args:
        rate: Charge per unit (share, contract).
        minimum: Least charge per fill.
        max_fraction: Cap as a fraction of the fill's value (``0.01`` = 1 %); none if ``None``.

    Example:
        >>> from ibkrfw import Stock
        >>> model = PerShareCommission("0.005", minimum=1, max_fraction="0.01")
        >>> model.commission(Stock("X"), Side.BUY, Decimal(1000), Decimal(25))
        Decimal('5.00')
    """

    def __init__(
        self,
        rate: DecimalLike,
        minimum: DecimalLike = 0,
        max_fraction: DecimalLike | None = None,
    ) -> None:
        self.rate = _non_negative(rate, "rate")
        self.minimum = _non_negative(minimum, "minimum")
        self.max_fraction = None if max_fraction is None else _non_negative(max_fraction, "cap")

    @override
    def commission(
        self, instrument: Instrument, side: Side, quantity: Decimal, price: Decimal
    ) -> Decimal:
        fee = max(quantity * self.rate, self.minimum)
        if self.max_fraction is not None:
            fee = min(fee, quantity * price * instrument.multiplier * self.max_fraction)
        return fee.quantize(_CENT, ROUND_HALF_EVEN)


@final
class PercentCommission(CommissionModel):
    """Charge a fraction of the traded value (``0.001`` = 10 basis points), to the cent."""

    def __init__(self, fraction: DecimalLike, minimum: DecimalLike = 0) -> None:
        self.fraction = _non_negative(fraction, "fraction")
        self.minimum = _non_negative(minimum, "minimum")

    @override
    def commission(
        self, instrument: Instrument, side: Side, quantity: Decimal, price: Decimal
    ) -> Decimal:
        fee = max(quantity * price * instrument.multiplier * self.fraction, self.minimum)
        return fee.quantize(_CENT, ROUND_HALF_EVEN)
