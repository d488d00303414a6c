"""Tradable instruments: stocks, futures, forex pairs and options."""

from __future__ import annotations

import datetime as dt
import enum
import math
from collections.abc import Mapping
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from typing import ClassVar, Final, final
from zoneinfo import ZoneInfo

import attrs

from ibkrfw.errors import ConfigError, OrderError
from ibkrfw.model._decimal import DecimalLike, to_decimal

__all__ = [
    "AssetClass",
    "Forex",
    "Future",
    "Instrument",
    "MONTH_CODES",
    "Option",
    "Stock",
    "month_code",
    "month_of_code",
]


class AssetClass(enum.StrEnum):
    """The kind of an instrument, named as IB's ``secType`` values."""

    STOCK = "STK"
    FUTURE = "FUT"
    FOREX = "CASH"
    OPTION = "OPT"


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
            k.asset_class.value: k for k in (Stock, Future, Forex, Option)
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


MONTH_CODES: Final = "FGHJKMNQUVXZ"
"""IB's (and the exchanges') futures month codes, January to December: ``F`` is January,
``Z`` December, as in the local symbol ``ESZ6``."""


def month_code(month: int) -> str:
    """Return the futures month code of ``month`` (1 to 12): ``12`` -> ``"Z"``.

    Raises:
        ConfigError: if ``month`` is not a whole number from 1 to 12.

    Example:
        >>> month_code(3), month_code(12)
        ('H', 'Z')
    """
    if isinstance(month, bool) or not isinstance(month, int) or not 1 <= month <= 12:
        raise ConfigError(f"month_code({month!r}): give a month number from 1 to 12")
    return MONTH_CODES[month - 1]


def month_of_code(code: str) -> int:
    """Return the month number (1 to 12) of a futures month code: ``"H"`` -> ``3``.

    Raises:
        ConfigError: if ``code`` is not one of ``F G H J K M N Q U V X Z``.

    Example:
        >>> month_of_code("Z")
        12
    """
    letter = code.strip().upper() if isinstance(code, str) else ""
    if len(letter) != 1 or letter not in MONTH_CODES:
        raise ConfigError(
            f"month_of_code({code!r}): not a futures month code; give one of "
            f"{' '.join(MONTH_CODES)} (F is January, Z December)"
        )
    return MONTH_CODES.index(letter) + 1


def _date_text(text: str) -> dt.date | None:
    """The date of a ``YYYYMMDD`` text, None if it is not one."""
    if not (isinstance(text, str) and len(text) == 8 and text.isdigit()):
        return None
    try:
        return dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


def _month_text(text: str) -> bool:
    return isinstance(text, str) and len(text) == 6 and text.isdigit() and 1 <= int(text[4:]) <= 12


def _future_expiry(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not (_month_text(value) or _date_text(value) is not None):
        raise ConfigError(
            f"Future expiry: {value!r} is neither a contract month YYYYMM nor a last trading "
            "day YYYYMMDD (IB's lastTradeDateOrContractMonth); give e.g. '202612' or '20261218'"
        )


def _future_contract_month(instance: Future, attribute: attrs.Attribute[str], value: str) -> None:
    if not _month_text(value):
        raise ConfigError(
            f"Future contract_month: {value!r} is not a month; give it as YYYYMM (IB's "
            "ContractDetails.contractMonth), e.g. '202701', or leave it out (the expiry's month)"
        )
    if len(instance.expiry) == 6 and value != instance.expiry:
        raise ConfigError(
            f"Future contract_month: {value!r} differs from the expiry {instance.expiry!r}, "
            "which is already the contract month; leave contract_month out (after "
            "attrs.evolve to another expiry, give the new month too)"
        )


def _future_last_trade_date(instance: Future, attribute: attrs.Attribute[str], value: str) -> None:
    if value == "":
        return
    day = _date_text(value)
    if day is None:
        raise ConfigError(
            f"Future last_trade_date: {value!r} is not a date; give the last trading day as "
            "YYYYMMDD, e.g. '20261218', or leave it out when it is not known"
        )
    if len(instance.expiry) == 8 and value != instance.expiry:
        raise ConfigError(
            f"Future last_trade_date: {value!r} differs from the expiry {instance.expiry!r}, "
            "which is already a last trading day; leave last_trade_date out, or give the "
            "contract month YYYYMM as the expiry"
        )
    month = int(instance.contract_month[:4]) * 12 + int(instance.contract_month[4:]) - 1
    if abs(day.year * 12 + day.month - 1 - month) > 12:
        raise ConfigError(
            f"Future last_trade_date: {value!r} is more than a year away from the contract "
            f"month {instance.contract_month!r}; check both (IB's lastTradeDateOrContractMonth "
            "and contractMonth)"
        )


def _default_contract_month(instance: Future) -> str:
    return str(instance.expiry)[:6]


def _default_last_trade_date(instance: Future) -> str:
    expiry = str(instance.expiry)
    return expiry if len(expiry) == 8 else ""


@final
@attrs.frozen(cache_hash=True)
class Future(Instrument):
    """A futures contract.

    The contract is identified, as before, by its symbol, ``expiry``, exchange and the other
    instrument fields; ``contract_month`` and ``last_trade_date`` describe it further and take
    no part in equality or hashing, so a contract from IB and one written by hand with the same
    expiry are the same key.

    Args:
        expiry: Contract month ``YYYYMM`` or last trading day ``YYYYMMDD`` (IB's
            ``lastTradeDateOrContractMonth``: contracts from IB carry the day).
        contract_month: The delivery month, ``YYYYMM`` (IB's ``contractMonth``); by default
            the expiry's month. It differs from the last trading day's month for contracts that
            stop trading before their month, as crude oil (``CL``) does: the January contract
            expires in December.
        last_trade_date: The last trading day, ``YYYYMMDD``, when known: by default the expiry
            when that is a day, else empty (unknown).

    Raises:
        ConfigError: if the expiry, contract month or last trading day is not a date of its
            form, the contract month differs from a month expiry, the last trading day from a
            day expiry, or the last trading day lies more than a year from the contract month.

    Example:
        >>> es = Future("ES", expiry="202612", exchange="CME", multiplier=50, tick_size="0.25")
        >>> es.id, es.contract_month, es.month_code, es.last_trade_date
        ('ES.202612.CME', '202612', 'Z', '')
        >>> cl = Future("CL", expiry="20261120", contract_month="202701", exchange="NYMEX")
        >>> cl.month_code, cl.local_symbol, cl.last_trade_date
        ('F', 'CLF7', '20261120')
    """

    asset_class: ClassVar[AssetClass] = AssetClass.FUTURE
    expiry: str = attrs.field(kw_only=True, validator=_future_expiry)
    contract_month: str = attrs.field(
        default=attrs.Factory(_default_contract_month, takes_self=True),
        kw_only=True,
        eq=False,
        validator=_future_contract_month,
    )
    last_trade_date: str = attrs.field(
        default=attrs.Factory(_default_last_trade_date, takes_self=True),
        kw_only=True,
        eq=False,
        validator=_future_last_trade_date,
    )

    @property
    def id(self) -> str:
        """A readable identifier, unique per contract, such as ``"ES.202612.CME"``."""
        return f"{self.symbol}.{self.expiry}.{self.exchange}"

    @property
    def month_code(self) -> str:
        """The contract month's code letter, ``"Z"`` for December.

        See :data:`~ibkrfw.model.MONTH_CODES`.
        """
        return MONTH_CODES[int(self.contract_month[4:]) - 1]

    @property
    def local_symbol(self) -> str:
        """IB's local symbol, the symbol, month code and last digit of the year (``ESZ6``)."""
        return f"{self.symbol}{self.month_code}{self.contract_month[3]}"

    def last_trade_day(self) -> dt.date:
        """Return the last trading day.

        Raises:
            ConfigError: if it is not known (an expiry ``YYYYMM`` and no ``last_trade_date``).
        """
        day = _date_text(self.last_trade_date)
        if day is None:
            raise ConfigError(
                f"{self.id}: its last trading day is not known (expiry {self.expiry!r} is a "
                "month); give last_trade_date='YYYYMMDD', or take the contract from IB "
                "(ContractLookup.future_months), whose expiry is the day"
            )
        return day

    def days_to_expiry(self, ts_ns: int) -> int:
        """Return the calendar days from ``ts_ns``'s date to the last trading day.

        The date of ``ts_ns`` is taken in the contract's time zone: 0 on the last trading day,
        negative after it.

        Args:
            ts_ns: A time, UTC epoch nanoseconds.

        Raises:
            ConfigError: if the last trading day is not known, or ``ts_ns`` is not an integer.

        Example:
            >>> import pandas as pd
            >>> es = Future("ES", expiry="20261218", exchange="CME", timezone="America/Chicago")
            >>> es.days_to_expiry(pd.Timestamp("2026-12-08 15:00", tz="UTC").value)
            10
        """
        if isinstance(ts_ns, bool) or not isinstance(ts_ns, int):
            raise ConfigError(
                f"{self.id}.days_to_expiry({ts_ns!r}): give a time as UTC epoch nanoseconds "
                "(an int, e.g. a Bar's ts_ns)"
            )
        today = dt.datetime.fromtimestamp(ts_ns / 1e9, tz=ZoneInfo(self.timezone)).date()
        return (self.last_trade_day() - today).days


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


_RIGHTS = {"C": "C", "CALL": "C", "P": "P", "PUT": "P"}


def _right(value: object) -> str:
    right = _RIGHTS.get(value.strip().upper()) if isinstance(value, str) else None
    if right is None:
        raise ConfigError(
            f"Option right: {value!r} is not a right; give 'C' (a call) or 'P' (a put), "
            "as IB writes them ('CALL' and 'PUT' are read too)"
        )
    return right


def _strike(value: DecimalLike) -> Decimal:
    try:
        strike = to_decimal(value, "strike")
    except ValueError as exc:
        raise ConfigError(f"Option strike: {exc}") from None
    if not strike.is_finite() or strike <= 0:
        raise ConfigError(f"Option strike: must be a positive price, got {value!r}")
    return strike


def _expiry_date(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    try:
        ok = isinstance(value, str) and len(value) == 8 and value.isdigit()
        ok = ok and dt.date(int(value[:4]), int(value[4:6]), int(value[6:])) is not None
    except ValueError:
        ok = False
    if not ok:
        raise ConfigError(
            f"Option expiry: {value!r} is not a date; give the last trading day as YYYYMMDD "
            "(IB's lastTradeDateOrContractMonth), e.g. '20261218'"
        )


_CASH_SETTLED = frozenset(
    {"SPX", "SPXW", "XSP", "NDX", "NDXP", "RUT", "RUTW", "VIX", "VIXW", "DJX"}
)
"""Underlyings and trading classes of the cash-settled US index options."""


def _settlement(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in ("physical", "cash", ""):
        raise ConfigError(
            f"Option settlement: {value!r} is not a settlement; give 'physical' (exercise "
            "delivers the underlying: stock options) or 'cash' (index options)"
        )


@final
@attrs.frozen(cache_hash=True)
class Option(Instrument):
    """An option on a stock or an index (IB's ``OPT``): ``symbol`` is the underlying's.

    Prices are per unit of the underlying, as quoted; one contract is ``multiplier`` units
    (100 for US equity options), so a fill's value, a position's P&L and the commission
    count the multiplier.

    Args:
        expiry: The last trading day, ``YYYYMMDD``.
        strike: The strike price.
        right: ``"C"`` for a call, ``"P"`` for a put (``"CALL"`` and ``"PUT"`` are read too).
        trading_class: IB's trading class (``"SPXW"`` for SPX weeklies); empty lets IB pick.
            The standard class, the symbol itself (``"AAPL"``, as IB lists it), is kept
            empty, so an option from IB and one written by hand are the same key.
        settlement: ``"physical"`` (exercise delivers the underlying, as stock options do)
            or ``"cash"`` (index options: exercise pays the intrinsic value). By default
            ``"cash"`` for the cash-settled US indexes (SPX, NDX, RUT, VIX and their classes:
            :data:`~ibkrfw.ibkr.translate.CASH_SETTLED`), as IB's contracts read back, else
            ``"physical"``.

    Raises:
        ConfigError: if the expiry is not a date, the strike not positive, the right not a
            call or a put, or the settlement unknown (or ``"physical"`` for a cash-settled
            index).

    Example:
        >>> call = Option("AAPL", expiry="20261218", strike=200, right="C")
        >>> call.id, call.multiplier, call.is_call
        ('AAPL.20261218.C200.SMART', Decimal('100'), True)
        >>> call.intrinsic_value(215.5)
        15.5
    """

    asset_class: ClassVar[AssetClass] = AssetClass.OPTION
    multiplier: Decimal = attrs.field(
        default=Decimal(100), kw_only=True, converter=_positive_decimal
    )
    expiry: str = attrs.field(kw_only=True, validator=_expiry_date)
    strike: Decimal = attrs.field(kw_only=True, converter=_strike)
    right: str = attrs.field(kw_only=True, converter=_right)
    trading_class: str = attrs.field(default="", kw_only=True)
    settlement: str = attrs.field(default="", kw_only=True, validator=_settlement)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        if self.trading_class == self.symbol:  # the standard class: one spelling, one key
            object.__setattr__(self, "trading_class", "")
        index = next((n for n in (self.symbol, self.trading_class) if n in _CASH_SETTLED), None)
        if not self.settlement:  # as IB reads the contract back: the same key
            object.__setattr__(self, "settlement", "physical" if index is None else "cash")
        elif index is not None and self.settlement == "physical":
            raise ConfigError(
                f"Option settlement: {index} options are cash-settled, not 'physical'; leave "
                "settlement out (or give 'cash')"
            )

    @property
    def id(self) -> str:
        """A readable identifier, unique per contract, such as ``"AAPL.20261218.C200.SMART"``.

        A trading class other than the standard one comes before the exchange
        (``"SPX.20261218.C5000.SPXW.CBOE"``): SPX and SPXW list the same expiries and
        strikes, and are different contracts.
        """
        strike = f"{self.strike.normalize():f}"
        traded = f".{self.trading_class}" if self.trading_class else ""
        return f"{self.symbol}.{self.expiry}.{self.right}{strike}{traded}.{self.exchange}"

    @property
    def is_call(self) -> bool:
        """True for a call, False for a put."""
        return self.right == "C"

    @property
    def expiry_date(self) -> dt.date:
        """The last trading day as a date."""
        return dt.date(int(self.expiry[:4]), int(self.expiry[4:6]), int(self.expiry[6:]))

    @property
    def expiry_ns(self) -> int:
        """The moment it expires, in UTC epoch nanoseconds.

        16:00 on its expiry day in its time zone, after the close: a backtest settles it at
        the first bar from then on.
        """
        day = self.expiry_date
        close = dt.datetime(day.year, day.month, day.day, 16, tzinfo=ZoneInfo(self.timezone))
        return int(close.timestamp()) * 1_000_000_000

    def intrinsic_value(self, underlying_price: float) -> float:
        """What exercising one unit is worth at ``underlying_price`` (zero out of the money)."""
        strike = float(self.strike)
        gain = underlying_price - strike if self.is_call else strike - underlying_price
        return max(gain, 0.0)

    def underlying(self) -> Stock:
        """The underlying as a stock on SMART in the option's currency (physical delivery)."""
        return Stock(self.symbol, currency=self.currency)
