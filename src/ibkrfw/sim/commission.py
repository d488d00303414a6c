"""Commission models for the simulated broker, IBKR Pro's schedules among them.

A model prices one fill. It also sees what the same order had filled and been charged before
(:class:`OrderSoFar`), because brokers apply minimums and caps per *order*. A market order
filled in three parts pays IB's $1 minimum once, not three times.
"""

from __future__ import annotations

import bisect
import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from decimal import ROUND_HALF_EVEN, Decimal
from typing import final
from zoneinfo import ZoneInfo

import attrs
from typing_extensions import override

from ibkrfw.errors import ConfigError
from ibkrfw.model._decimal import DecimalLike, to_decimal
from ibkrfw.model.instruments import AssetClass, Instrument
from ibkrfw.model.orders import Side

# Enum members bound once: on Python 3.11 each `Side.BUY` in a function is a slow lookup
# (EnumType.__getattr__ routes every class attribute through Python), on the order path.
_OPTION = AssetClass.OPTION
_BUY = Side.BUY

__all__ = [
    "IBKR_US_STOCK_FEES",
    "CommissionModel",
    "IBKRFixedCommission",
    "IBKROptionCommission",
    "IBKRTieredCommission",
    "OrderSoFar",
    "PerShareCommission",
    "PercentCommission",
    "USStockFees",
    "ZeroCommission",
]

_CENT = Decimal("0.01")
_FINE = Decimal("1e-8")  # third-party fees are fractions of a cent; keep them
_ZERO = Decimal(0)


def _non_negative(value: DecimalLike, name: str) -> Decimal:
    try:
        result = to_decimal(value, name)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if result < 0:
        raise ConfigError(f"{name} must not be negative, got {value!r}")
    return result


@final
@attrs.frozen
class OrderSoFar:
    """What one order had filled and been charged before the fill being priced.

    Args:
        quantity: Units filled so far.
        value: Traded value so far, ``sum(quantity * price * multiplier)``.
        commission: Commission and fees charged so far.
    """

    quantity: Decimal = _ZERO
    value: Decimal = _ZERO
    commission: Decimal = _ZERO


NOTHING_YET = OrderSoFar()


class CommissionModel(ABC):
    """Compute the commission of one fill, in the instrument's currency."""

    @abstractmethod
    def commission(
        self,
        instrument: Instrument,
        side: Side,
        quantity: Decimal,
        price: Decimal,
        ts_ns: int = 0,
        before: OrderSoFar = NOTHING_YET,
    ) -> Decimal:
        """Return the commission for filling ``quantity`` at ``price`` at ``ts_ns``.

        ``before`` says what the same order had filled and been charged already.
        """


def _capped(base: Decimal, minimum: Decimal, cap: Decimal | None, value: Decimal) -> Decimal:
    """An order's commission: at least ``minimum``, at most ``cap`` times its value."""
    fee = max(base, minimum) if base or minimum else _ZERO
    if cap is not None:
        fee = min(fee, value * cap)
    return fee


def _added(
    order_fee: Callable[[Decimal, Decimal], Decimal],
    quantity: Decimal,
    value: Decimal,
    before: OrderSoFar,
) -> Decimal:
    """What one fill adds to a fee charged per order: the order's fee after it, less before.

    ``order_fee(quantity, value)`` prices a whole order; minimums and caps live there.
    """
    after = order_fee(before.quantity + quantity, before.value + value)
    return max(after - order_fee(before.quantity, before.value), _ZERO)


@final
class ZeroCommission(CommissionModel):
    """Charge nothing (the default, so results are easy to check by hand)."""

    @override
    def commission(
        self,
        instrument: Instrument,
        side: Side,
        quantity: Decimal,
        price: Decimal,
        ts_ns: int = 0,
        before: OrderSoFar = NOTHING_YET,
    ) -> Decimal:
        return _ZERO


@final
class PerShareCommission(CommissionModel):
    """Charge a rate per unit, with a minimum and a cap (a fraction of value) per order.

    Rounded to the cent (half to even).

    Args:
        rate: Charge per unit (share, contract).
        minimum: Least charge per order.
        max_fraction: Cap per order as a fraction of its value (``0.01`` = 1 %); none if
            ``None``.

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

    def _order_fee(self, quantity: Decimal, value: Decimal) -> Decimal:
        if not quantity:
            return _ZERO
        fee = _capped(quantity * self.rate, self.minimum, self.max_fraction, value)
        return fee.quantize(_CENT, ROUND_HALF_EVEN)

    @override
    def commission(
        self,
        instrument: Instrument,
        side: Side,
        quantity: Decimal,
        price: Decimal,
        ts_ns: int = 0,
        before: OrderSoFar = NOTHING_YET,
    ) -> Decimal:
        return _added(self._order_fee, quantity, quantity * price * instrument.multiplier, before)


@final
class PercentCommission(CommissionModel):
    """Charge a fraction of the traded value (``0.001`` = 10 basis points), to the cent.

    Args:
        fraction: Charge as a fraction of value.
        minimum: Least charge per order.
    """

    def __init__(self, fraction: DecimalLike, minimum: DecimalLike = 0) -> None:
        self.fraction = _non_negative(fraction, "fraction")
        self.minimum = _non_negative(minimum, "minimum")

    def _order_fee(self, quantity: Decimal, value: Decimal) -> Decimal:
        if not value:
            return _ZERO
        return max(value * self.fraction, self.minimum).quantize(_CENT, ROUND_HALF_EVEN)

    @override
    def commission(
        self,
        instrument: Instrument,
        side: Side,
        quantity: Decimal,
        price: Decimal,
        ts_ns: int = 0,
        before: OrderSoFar = NOTHING_YET,
    ) -> Decimal:
        return _added(self._order_fee, quantity, quantity * price * instrument.multiplier, before)


# --- IBKR Pro, US stocks --------------------------------------------------------------------
@final
@attrs.frozen
class USStockFees:
    """Third-party fees on US stock trades, in force from ``effective`` on.

    These rates change over time (SEC and FINRA revise theirs), so they live in a dated table
    that a user can extend or replace (:data:`~ibkrfw.sim.IBKR_US_STOCK_FEES`).

    Args:
        effective: First day these rates apply.
        sec_fee_rate: SEC transaction fee, a fraction of the value sold.
        finra_taf_per_share: FINRA Trading Activity Fee per share sold.
        finra_cat_per_share: FINRA CAT fee per share traded.
        clearing_per_share: NSCC/DTC clearing fee per share.
        exchange_per_share: Exchange fee per share; it depends on the venue and on adding or
            removing liquidity, so it is zero unless you set it.
        nyse_pass_through: NYSE pass-through, a fraction of IB's commission.
        finra_pass_through: FINRA pass-through, a fraction of IB's commission.
    """

    effective: dt.date
    sec_fee_rate: Decimal = attrs.field(converter=to_decimal)
    finra_taf_per_share: Decimal = attrs.field(converter=to_decimal)
    finra_cat_per_share: Decimal = attrs.field(converter=to_decimal)
    clearing_per_share: Decimal = attrs.field(converter=to_decimal)
    exchange_per_share: Decimal = attrs.field(converter=to_decimal)
    nyse_pass_through: Decimal = attrs.field(converter=to_decimal)
    finra_pass_through: Decimal = attrs.field(converter=to_decimal)

    def transaction_fees(self, side: Side, quantity: Decimal, value: Decimal) -> Decimal:
        """SEC fee and FINRA TAF: charged on sales only."""
        if side is _BUY:
            return _ZERO
        return value * self.sec_fee_rate + quantity * self.finra_taf_per_share


IBKR_US_STOCK_FEES: tuple[USStockFees, ...] = (
    USStockFees(
        effective=dt.date.min,  # the source gives no date: in force for every date
        sec_fee_rate="0.0000278",
        finra_taf_per_share="0.000166",
        finra_cat_per_share="0.000048",
        clearing_per_share="0.00020",
        exchange_per_share="0",
        nyse_pass_through="0.000175",
        finra_pass_through="0.000565",
    ),
)
"""The fee rates of IB's US stock pricing page as stored in ``ibkr-facts.md`` section 4.5.

The page gives no dates, so this one entry applies to every date. The CAT fee is the low end
of the range the page quotes (0.000048 to 0.000072 per share). To model history, pass a table
with one :class:`USStockFees` per change, sorted by ``effective``.
"""


def _fees_on(table: Sequence[USStockFees], day: dt.date) -> USStockFees:
    i = bisect.bisect_right([f.effective for f in table], day) - 1
    if i < 0:
        raise ConfigError(
            f"no fee schedule is in force on {day}; the first starts {table[0].effective}"
        )
    return table[i]


def _check_table(table: Sequence[USStockFees]) -> tuple[USStockFees, ...]:
    result = tuple(table)
    if not result:
        raise ConfigError("the fee table needs at least one USStockFees entry")
    dates = [f.effective for f in result]
    if dates != sorted(dates) or len(set(dates)) != len(dates):
        raise ConfigError(f"fee table entries must have increasing effective dates, got {dates}")
    return result


class _IBKRStock(CommissionModel):
    """What IB's fixed and tiered schedules share: per-order minimum and cap, dated fees."""

    def __init__(
        self,
        minimum: DecimalLike,
        max_fraction: DecimalLike,
        fees: Sequence[USStockFees],
        timezone: str,
        options: IBKROptionCommission | None = None,
    ) -> None:
        self.options = IBKROptionCommission() if options is None else options
        """How options are charged (IB's per-contract schedule): a stock rate never is."""
        if not isinstance(self.options, IBKROptionCommission):
            raise ConfigError(
                f"options: {self.options!r} is not an IBKROptionCommission; give one, e.g. "
                "IBKROptionCommission(minimum='1.00')"
            )
        self.minimum = _non_negative(minimum, "minimum")
        self.max_fraction = _non_negative(max_fraction, "max_fraction")
        self.fees = _check_table(fees)
        self._zone = ZoneInfo(timezone)

    def _day(self, ts_ns: int) -> dt.date:
        return dt.datetime.fromtimestamp(ts_ns / 1e9, tz=self._zone).date()

    def _ib_part(
        self, rate: Decimal, quantity: Decimal, value: Decimal, before: OrderSoFar
    ) -> Decimal:
        """IB's own commission for this fill: the rate, with the minimum and cap per order."""

        def order_fee(q: Decimal, v: Decimal) -> Decimal:
            return _capped(q * rate, self.minimum, self.max_fraction, v) if q else _ZERO

        return _added(order_fee, quantity, value, before)


@final
class IBKRFixedCommission(_IBKRStock):
    """IBKR Pro **fixed** pricing for US stocks.

    $0.005 per share, at least $1.00 and at most 1 % of the trade value per order. Exchange and
    most regulatory fees are included; the transaction fees on sales (SEC fee, FINRA TAF) are
    passed through. Sources and rates: ``ibkr-facts.md`` section 4.5.

    Args:
        rate: Charge per share.
        minimum: Least commission per order.
        max_fraction: Cap per order as a fraction of its value.
        fees: Dated table of third-party fees (only the transaction fees apply here).
        timezone: Zone in which a fill's date is read to pick the fee schedule.
        options: How options are charged: :class:`IBKROptionCommission` by default.

    Example:
        >>> from ibkrfw import Stock
        >>> ib = IBKRFixedCommission()
        >>> [ib.commission(Stock("X"), Side.BUY, Decimal(q), Decimal(p))
        ...  for q, p in ((100, "25"), (1000, "25"), (1000, "0.25"))]  # IB's own examples
        [Decimal('1.00000000'), Decimal('5.00000000'), Decimal('2.50000000')]
    """

    def __init__(
        self,
        rate: DecimalLike = "0.005",
        minimum: DecimalLike = "1.00",
        max_fraction: DecimalLike = "0.01",
        fees: Sequence[USStockFees] = IBKR_US_STOCK_FEES,
        timezone: str = "America/New_York",
        options: IBKROptionCommission | None = None,
    ) -> None:
        super().__init__(minimum, max_fraction, fees, timezone, options)
        self.rate = _non_negative(rate, "rate")

    @override
    def commission(
        self,
        instrument: Instrument,
        side: Side,
        quantity: Decimal,
        price: Decimal,
        ts_ns: int = 0,
        before: OrderSoFar = NOTHING_YET,
    ) -> Decimal:
        if instrument.asset_class is _OPTION:
            return self.options.commission(instrument, side, quantity, price, ts_ns, before)
        value = quantity * price * instrument.multiplier
        fee = self._ib_part(self.rate, quantity, value, before)
        fee += _fees_on(self.fees, self._day(ts_ns)).transaction_fees(side, quantity, value)
        return fee.quantize(_FINE, ROUND_HALF_EVEN)


DEFAULT_TIERS: tuple[tuple[int | None, Decimal], ...] = (
    (300_000, Decimal("0.0035")),
    (3_000_000, Decimal("0.0020")),
    (20_000_000, Decimal("0.0015")),
    (100_000_000, Decimal("0.0010")),
    (None, Decimal("0.0005")),
)


@final
class IBKRTieredCommission(_IBKRStock):
    """IBKR Pro **tiered** pricing for US stocks.

    The per-share rate falls with the shares traded so far in the calendar month (0.0035 up to
    300,000 shares, then 0.0020, 0.0015, 0.0010, 0.0005), at least $0.35 and at most 1 % of
    the trade value per order. Then, for every fill:

    * clearing, exchange and CAT fees are added per share;
    * NYSE and FINRA pass-through fees are added as fractions of the commission;
    * on sales, the SEC fee and FINRA TAF are added.

    The rate in force is the one for the month's volume before the fill, and one model counts
    the volume of every fill it prices, so use one model per account. Sources and rates:
    ``ibkr-facts.md`` section 4.5.

    Args:
        tiers: ``(up to shares this month, rate)`` pairs, the last with ``None``.
        minimum: Least commission per order.
        max_fraction: Cap per order as a fraction of its value.
        fees: Dated table of third-party fees.
        timezone: Zone in which a fill's month and date are read.
        options: How options are charged: :class:`IBKROptionCommission` by default (its
            fixed schedule; the tiered one's volume discounts are not modelled).

    Example:
        >>> from ibkrfw import Stock
        >>> IBKRTieredCommission().commission(Stock("X"), Side.BUY, Decimal(100), Decimal(25))
        Decimal('0.37505900')
    """

    def __init__(
        self,
        tiers: Sequence[tuple[int | None, DecimalLike]] = DEFAULT_TIERS,
        minimum: DecimalLike = "0.35",
        max_fraction: DecimalLike = "0.01",
        fees: Sequence[USStockFees] = IBKR_US_STOCK_FEES,
        timezone: str = "America/New_York",
        options: IBKROptionCommission | None = None,
    ) -> None:
        super().__init__(minimum, max_fraction, fees, timezone, options)
        bounds = [b for b, _ in tiers]
        if not tiers or bounds[-1] is not None or None in bounds[:-1]:
            raise ConfigError("tiers must end with exactly one (None, rate) entry")
        limits = [int(b) for b in bounds[:-1] if b is not None]
        if limits != sorted(limits) or any(b <= 0 for b in limits):
            raise ConfigError(f"tier limits must be positive and increasing, got {limits}")
        self.tiers = tuple((b, _non_negative(r, "rate")) for b, r in tiers)
        self._month: tuple[int, int] | None = None
        self._volume = _ZERO

    def month_volume(self) -> Decimal:
        """Shares priced so far in the current month."""
        return self._volume

    def _rate(self) -> Decimal:
        for bound, rate in self.tiers:
            if bound is None or self._volume < bound:
                return rate
        return self.tiers[-1][1]  # unreachable: the last tier has no bound

    @override
    def commission(
        self,
        instrument: Instrument,
        side: Side,
        quantity: Decimal,
        price: Decimal,
        ts_ns: int = 0,
        before: OrderSoFar = NOTHING_YET,
    ) -> Decimal:
        if instrument.asset_class is _OPTION:
            return self.options.commission(instrument, side, quantity, price, ts_ns, before)
        day = self._day(ts_ns)
        if self._month != (day.year, day.month):
            self._month, self._volume = (day.year, day.month), _ZERO
        value = quantity * price * instrument.multiplier
        ib = self._ib_part(self._rate(), quantity, value, before)
        self._volume += quantity
        fees = _fees_on(self.fees, day)
        per_share = fees.clearing_per_share + fees.exchange_per_share + fees.finra_cat_per_share
        total = ib + quantity * per_share
        total += ib * (fees.nyse_pass_through + fees.finra_pass_through)
        total += fees.transaction_fees(side, quantity, value)
        return total.quantize(_FINE, ROUND_HALF_EVEN)


@final
class IBKROptionCommission(CommissionModel):
    """IBKR Pro pricing for US equity and index options: per contract, by premium.

    $0.65 a contract when the premium is $0.10 or more, $0.50 from $0.05 up to $0.10 and
    $0.25 below $0.05; at least $1.00 per order (IB's fixed schedule, which its tiered one
    starts from). IB passes regulatory and clearing fees through (the options regulatory fee,
    OCC clearing, FINRA TAF on sales: a few cents a contract): give them as ``regulatory``
    per contract, none by default. :class:`IBKRFixedCommission` and
    :class:`IBKRTieredCommission` charge options with this schedule.

    Args:
        rates: ``(premium from, rate per contract)`` pairs; each premium pays the rate of the
            highest bound at or below it.
        minimum: Least commission per order.
        regulatory: Fees passed through, per contract.

    Raises:
        ConfigError: if a rate or bound is negative, or the rates do not start at premium 0.

    Example:
        >>> from ibkrfw import Option
        >>> call = Option("AAPL", expiry="20261218", strike=200, right="C")
        >>> ib = IBKROptionCommission()
        >>> [ib.commission(call, Side.BUY, Decimal(q), Decimal(p))
        ...  for q, p in ((1, "2.50"), (10, "2.50"), (10, "0.07"), (10, "0.03"))]
        [Decimal('1.00'), Decimal('6.50'), Decimal('5.00'), Decimal('2.50')]
    """

    def __init__(
        self,
        rates: Sequence[tuple[DecimalLike, DecimalLike]] = (
            ("0", "0.25"),
            ("0.05", "0.50"),
            ("0.10", "0.65"),
        ),
        minimum: DecimalLike = "1.00",
        regulatory: DecimalLike = "0",
    ) -> None:
        table = sorted(
            (_non_negative(bound, "rates' premium"), _non_negative(rate, "rates' rate"))
            for bound, rate in rates
        )
        if not table or table[0][0] != 0:
            raise ConfigError(
                f"rates: {list(rates)!r} must start at premium 0, e.g. "
                "(('0', '0.25'), ('0.05', '0.50'), ('0.10', '0.65'))"
            )
        self.rates = tuple(table)
        self._bounds = [bound for bound, _ in table]
        self.minimum = _non_negative(minimum, "minimum")
        self.regulatory = _non_negative(regulatory, "regulatory")

    def rate(self, premium: Decimal) -> Decimal:
        """The commission per contract at ``premium``."""
        return self.rates[max(bisect.bisect_right(self._bounds, premium) - 1, 0)][1]

    @override
    def commission(
        self,
        instrument: Instrument,
        side: Side,
        quantity: Decimal,
        price: Decimal,
        ts_ns: int = 0,
        before: OrderSoFar = NOTHING_YET,
    ) -> Decimal:
        rate = self.rate(abs(price))

        def order_fee(q: Decimal, v: Decimal) -> Decimal:
            return max(q * rate, self.minimum) if q else _ZERO

        fee = _added(order_fee, quantity, quantity * price * instrument.multiplier, before)
        return fee + quantity * self.regulatory
