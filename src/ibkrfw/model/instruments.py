"""Tradable instruments: stocks, futures and forex pairs."""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from typing import ClassVar, final

import attrs

from ibkrfw.errors import ConfigError, OrderError
from ibkrfw.model._decimal import DecimalLike, to_decimal

__all__ = ["AssetClass", "Forex", "Future", "Instrument", "Stock"]


class AssetClass(enum.StrEnum):
    """The kind of an instrument, named as IB's ``secType`` values."""

    STOCK = "STK"
    FUTURE = "FUT"
    FOREX = "CASH"


def _positive_decimal(value: DecimalLike) -> Decimal:
    try:
        result = to_decimal(value)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if result <= 0:
        raise ConfigError(f"tick, lot and multiplier sizes must be positive, got {value!r}")
    return result


def _non_empty(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{attribute.name} must be a non-empty string, got {value!r}")


@attrs.frozen(cache_hash=True)
class Instrument:
    """A tradable instrument and the grid its prices and quantities live on.

    Use one of the concrete kinds (:class:`Stock`, :class:`Future`, :class:`Forex`). Instruments
    are immutable and hashable, so they serve as dictionary keys everywhere.

    Args:
        symbol: The ticker, as IB knows it (``"AAPL"``, ``"ES"``, ``"EUR"``).
        exchange: The routing exchange (``"SMART"`` for stocks).
        currency: The currency prices are quoted in.
        tick_size: The minimum price increment.
        lot_size: The minimum quantity increment.
        multiplier: Contract multiplier: value of one unit of price per unit of quantity.
        timezone: IANA time zone of the instrument's trading day: its sessions are whole
            local weekdays there unless :func:`~ibkrfw.data.calendar_for` knows better (US
            stocks, forex).

    Raises:
        ConfigError: if a size is not positive or the symbol is empty.
    """

    asset_class: ClassVar[AssetClass]

    symbol: str = attrs.field(validator=_non_empty)
    exchange: str = attrs.field(default="SMART", kw_only=True, validator=_non_empty)
    currency: str = attrs.field(default="USD", kw_only=True, validator=_non_empty)
    tick_size: Decimal = attrs.field(
        default=Decimal("0.01"), kw_only=True, converter=_positive_decimal
    )
    lot_size: Decimal = attrs.field(default=Decimal(1), kw_only=True, converter=_positive_decimal)
    multiplier: Decimal = attrs.field(default=Decimal(1), kw_only=True, converter=_positive_decimal)
    timezone: str = attrs.field(default="America/New_York", kw_only=True, validator=_non_empty)
    # Derived once, for the order path: float sizes, and whether the tick is a power of ten
    # (then rounding to it is a single Decimal.quantize).
    _unit_f: float = attrs.field(init=False, eq=False, hash=False, repr=False)
    _tick_is_decade: bool = attrs.field(init=False, eq=False, hash=False, repr=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_unit_f", float(self.multiplier) * float(self.lot_size))
        tick = self.tick_size.as_tuple()  # as written: 0.01 and 1 qualify, 0.10 and 10 do not
        decade = tick.digits == (1,) and isinstance(tick.exponent, int) and tick.exponent <= 0
        object.__setattr__(self, "_tick_is_decade", decade)

    @property
    def id(self) -> str:
        """A readable identifier, unique per instrument, such as ``"AAPL.SMART"``."""
        return f"{self.symbol}.{self.exchange}"

    def round_price(self, price: float | Decimal, rounding: str = ROUND_HALF_EVEN) -> Decimal:
        """Round ``price`` to a tick: the nearest (half to even) unless ``rounding`` says.

        Args:
            price: The price to round.
            rounding: A ``decimal`` rounding mode, e.g. ``ROUND_CEILING`` to round up.

        Raises:
            OrderError: if ``price`` is NaN or infinite.
        """
        value = Decimal(repr(price)) if type(price) is float else to_decimal(price, "price")
        if not value.is_finite():
            raise OrderError(f"price must be finite, got {price!r}")
        if self._tick_is_decade:
            return value.quantize(self.tick_size, rounding)
        ticks = (value / self.tick_size).to_integral_value(rounding)
        return (ticks * self.tick_size).quantize(self.tick_size)

    def is_on_tick(self, price: Decimal) -> bool:
        """Tell whether ``price`` is an exact multiple of the tick size."""
        return (price % self.tick_size) == 0

    def round_quantity(self, quantity: float | Decimal) -> Decimal:
        """Round ``quantity`` toward zero to a whole number of lots.

        Raises:
            OrderError: if ``quantity`` is NaN or infinite.
        """
        value = (
            Decimal(repr(quantity)) if type(quantity) is float else to_decimal(quantity, "quantity")
        )
        if not value.is_finite():
            raise OrderError(f"quantity must be finite, got {quantity!r}")
        lots = (value / self.lot_size).to_integral_value(ROUND_DOWN)
        return lots * self.lot_size

    def to_dict(self) -> dict[str, str]:
        """Return the instrument as strings, for storage; :meth:`from_dict` reverses it.

        Example:
            >>> Instrument.from_dict(Stock("AAPL").to_dict()) == Stock("AAPL")
            True
        """
        spec = {"asset_class": self.asset_class.value}
        for field in attrs.fields(type(self)):
            if field.init:
                spec[field.name] = str(getattr(self, field.name))
        return spec

    @staticmethod
    def from_dict(spec: Mapping[str, str]) -> Instrument:
        """Build an instrument from :meth:`to_dict`'s output.

        Raises:
            ConfigError: if the asset class is unknown or a field is missing or invalid.
        """
        kinds: dict[str, type[Instrument]] = {
            k.asset_class.value: k for k in (Stock, Future, Forex)
        }
        values = dict(spec)
        kind = kinds.get(values.pop("asset_class", ""))
        if kind is None:
            raise ConfigError(f"unknown asset class in {dict(spec)!r}; known: {sorted(kinds)}")
        known = {f.name for f in attrs.fields(kind) if f.init}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown instrument field(s) {unknown} for {kind.__name__}")
        symbol = values.pop("symbol", "")
        try:
            return kind(symbol, **values)
        except TypeError as exc:
            raise ConfigError(
                f"cannot build a {kind.__name__} from {dict(spec)!r}: {exc}"
            ) from None

    def quantity_for_value(self, value: float, price: float) -> Decimal:
        """Return the whole-lot quantity (toward zero) worth ``value`` at ``price``.

        A value within float rounding (a relative 1e-9) of a whole number of lots buys that
        number: ``2200 / 1.1`` is 1999.9999999999998 in floating point, yet buys 20 lots of 100.
        Returns zero when ``price`` is not a positive finite number.
        """
        unit = price * self._unit_f
        if not (math.isfinite(unit) and unit > 0 and math.isfinite(value)):
            return Decimal(0)
        lots = value / unit
        whole = round(lots)
        if abs(lots - whole) > 1e-9 * max(1.0, abs(lots)):
            whole = int(lots)  # truncates toward zero
        return Decimal(whole) * self.lot_size


@final
@attrs.frozen(cache_hash=True)
class Stock(Instrument):
    """A stock or ETF.

    Args:
        primary_exchange: The listing exchange, for disambiguation on SMART (``"NASDAQ"``).

    Example:
        >>> Stock("AAPL").id
        'AAPL.SMART'
    """

    asset_class: ClassVar[AssetClass] = AssetClass.STOCK
    primary_exchange: str = attrs.field(default="", kw_only=True)


@final
@attrs.frozen(cache_hash=True)
class Future(Instrument):
    """A futures contract.

    Args:
        expiry: Contract month ``YYYYMM`` or last trading day ``YYYYMMDD``.

    Example:
        >>> es = Future("ES", expiry="202612", exchange="CME", multiplier=50, tick_size="0.25")
        >>> es.id
        'ES.202612.CME'
    """

    asset_class: ClassVar[AssetClass] = AssetClass.FUTURE
    expiry: str = attrs.field(kw_only=True, validator=_non_empty)

    @property
    def id(self) -> str:
        """A readable identifier, unique per contract, such as ``"ES.202612.CME"``."""
        return f"{self.symbol}.{self.expiry}.{self.exchange}"


@final
@attrs.frozen(cache_hash=True)
class Forex(Instrument):
    """A currency pair, IB style: ``symbol`` is the base currency, ``currency`` the quote.

    Defaults follow IB's IDEALPRO venue: tick 0.00005, lot 1 unit of the base currency, and the
    trading day rolling at 17:00 New York time.

    Example:
        >>> Forex("EUR", currency="USD").id
        'EUR.USD'
    """

    asset_class: ClassVar[AssetClass] = AssetClass.FOREX
    exchange: str = attrs.field(default="IDEALPRO", kw_only=True, validator=_non_empty)
    tick_size: Decimal = attrs.field(
        default=Decimal("0.00005"), kw_only=True, converter=_positive_decimal
    )

    @property
    def id(self) -> str:
        """The pair as ``BASE.QUOTE``, such as ``"EUR.USD"``."""
        return f"{self.symbol}.{self.currency}"
