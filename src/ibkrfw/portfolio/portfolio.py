"""Cash, positions, profit and loss, and round-trip trades."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping, Sequence
from decimal import Decimal
from typing import final

import attrs
from typing_extensions import override

from ibkrfw.core.clock import Clock
from ibkrfw.core.history import BarHistory, History
from ibkrfw.errors import ConfigError, DataError
from ibkrfw.model._decimal import DecimalLike, float_decimal, to_decimal
from ibkrfw.model.fills import Fill, Position, position_of
from ibkrfw.model.instruments import Instrument
from ibkrfw.model.orders import Side
from ibkrfw.portfolio.fx import FxRates

# Enum members bound once: on Python 3.11 each `Side.BUY` in a function is a slow lookup
# (EnumType.__getattr__ routes every class attribute through Python), on the order path.
_BUY = Side.BUY
_SELL = Side.SELL

__all__ = [
    "DelegatingLedger",
    "Holding",
    "Ledger",
    "Portfolio",
    "PortfolioView",
    "Trade",
    "round_trips",
]

_ZERO = Decimal(0)
_NO_BARS = BarHistory.empty(capacity=0)


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
    """Read-only view of a portfolio, given to strategies and risk rules.

    Prices, positions and realised P&L are in each instrument's own currency; cash, equity,
    market values and exposures are in the account's base currency, converted at the current
    exchange rates.
    """

    @property
    @abstractmethod
    def base_currency(self) -> str:
        """The account's currency."""

    @property
    @abstractmethod
    def cash(self) -> Decimal:
        """Cash in the base currency, every currency's balance converted (negative if owed)."""

    @property
    @abstractmethod
    def cash_balances(self) -> dict[str, Decimal]:
        """The cash balance of each currency, in that currency (the base always included)."""

    @abstractmethod
    def rate(self, currency: str) -> float:
        """Return the current value of one unit of ``currency`` in the base currency.

        Raises:
            DataError: if the rate is unknown (no rate series, or none yet at this time).
        """

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

    def value(self, position: Position) -> float:
        """Return the market value of ``position`` in the base currency."""
        value = position.market_value
        currency = position.instrument.currency
        return value if currency == self.base_currency or not value else value * self.rate(currency)

    @property
    def market_value(self) -> float:
        """Signed market value of all positions, in the base currency."""
        return sum((self.value(p) for p in self.positions.values()), 0.0)

    @property
    def gross_exposure(self) -> float:
        """Sum of the absolute market values of all positions, in the base currency."""
        return sum((abs(self.value(p)) for p in self.positions.values()), 0.0)

    def working(self, instrument: Instrument) -> tuple[Decimal, Decimal]:
        """The most the live orders of ``instrument`` could still buy and sell: ``(buy, sell)``.

        Risk limits add them to the position, so several orders sent before any fills cannot
        together pass a limit each passes alone. ``(0, 0)`` when the view knows no orders.
        """
        del instrument
        return _ZERO, _ZERO

    def working_instruments(self) -> frozenset[Instrument]:
        """The instruments with live orders (none when the view knows no orders)."""
        return frozenset()

    def held_instruments(self) -> Collection[Instrument]:
        """The instruments of the non-flat :attr:`positions`, without building each position.

        What a rule that walks the positions by instrument reads on every order; a view
        whose positions are costly to build may answer it more cheaply.
        """
        return self.positions.keys()

    def pending(self, instrument: Instrument) -> Decimal:
        """The signed quantity the live orders of ``instrument`` are expected to trade.

        As the ``order_target_*`` helpers count them: every working order but the exits
        that wait for a trigger (a Protection's stop-loss and take-profit, a bracket's
        exits), an OCA group once per side. What the position is headed for is
        ``quantity(instrument) + pending(instrument)``. Zero when the view knows no orders.
        """
        del instrument
        return _ZERO

    def working_by_instrument(self) -> Mapping[Instrument, tuple[Decimal, Decimal]]:
        """:meth:`working` of every instrument with live orders, at once (cheaper per call)."""
        return {inst: self.working(inst) for inst in self.working_instruments()}

    def history(self, instrument: Instrument, n: int | None = None) -> History:
        """Return the last ``n`` bars of ``instrument`` seen so far (all if ``n`` is None).

        Risk rules read prices over time through it (a correlation, the age of the data).
        Empty when the view keeps no bars, or none of ``instrument`` yet.
        """
        del instrument
        return _NO_BARS.last(n)

    def weight(self, instrument: Instrument) -> float:
        """Return the position's market value as a fraction of equity (NaN if equity is 0)."""
        equity = self.equity
        return self.value(self.position(instrument)) / equity if equity else math.nan

    def weights(self) -> dict[Instrument, float]:
        """Return every position's market value as a fraction of equity (NaN if equity is 0)."""
        equity = self.equity
        return {
            inst: self.value(p) / equity if equity else math.nan
            for inst, p in self.positions.items()
        }

    def exposure_by(
        self,
        group: Callable[[Instrument], str] | Mapping[Instrument, str],
        *,
        gross: bool = False,
    ) -> dict[str, float]:
        """Return the market value of the positions summed by group, in the base currency.

        Args:
            group: The group of each instrument: a mapping (instruments missing from it go to
                ``"other"``) or a function (by sector, asset class, currency...).
            gross: Sum absolute values (long plus short) instead of signed ones.

        Example:
            >>> from ibkrfw import Fill, Side, Stock
            >>> from decimal import Decimal
            >>> pf = Portfolio(cash=10_000)
            >>> a, b = Stock("A"), Stock("B")
            >>> for i, (inst, side) in enumerate([(a, Side.BUY), (b, Side.SELL)]):
            ...     pf.apply_fill(Fill(i, inst, side, Decimal(10), Decimal(100), Decimal(0),
            ...                        0, f"e{i}"))
            ...     pf.mark(inst, 100.0)
            >>> pf.exposure_by({a: "tech", b: "tech"}), pf.exposure_by(lambda i: "all", gross=True)
            ({'tech': 0.0}, {'all': 2000.0})
        """
        key = group if callable(group) else (lambda inst: group.get(inst, "other"))
        totals: dict[str, float] = {}
        for inst, position in self.positions.items():
            value = self.value(position)
            name = key(inst)
            totals[name] = totals.get(name, 0.0) + (abs(value) if gross else value)
        return totals


@final
class Holding:
    """The mutable ledger entry of one instrument, which the engine marks on every bar.

    The engine asks its ledger for each traded instrument's entry once, before the run
    (:meth:`Ledger.holding`), then writes each bar's close into :attr:`price` and reads
    :attr:`qty_f` after a fill: plain attribute access, so marking costs nothing more per bar
    whatever the ledger. A ledger of your own gets its entries from the
    :class:`~ibkrfw.Portfolio` it wraps (see :class:`Ledger`); you never build one.

    Attributes:
        instrument: The instrument.
        qty: The signed quantity held.
        qty_f: ``float(qty * multiplier)``, for marking on the per-bar path.
        avg: The average cost of the position (zero when flat).
        realized: Profit realised so far, before commission, in the instrument's currency.
        commission: Commissions paid so far, in the instrument's currency.
        price: The last price seen (NaN before any).
    """

    __slots__ = (
        "avg",
        "commission",
        "currency",
        "instrument",
        "multiplier",
        "price",
        "qty",
        "qty_f",
        "realized",
        "unit_multiplier",
    )

    def __init__(self, instrument: Instrument, base_currency: str) -> None:
        self.instrument = instrument
        # None for the base currency: no conversion, the fast path.
        self.currency = None if instrument.currency == base_currency else instrument.currency
        self.multiplier = instrument.multiplier
        self.unit_multiplier = instrument.multiplier == 1
        self.qty = _ZERO
        self.qty_f = 0.0  # float(qty * multiplier), for marking on the per-bar path
        self.avg = _ZERO
        self.realized = _ZERO
        self.commission = _ZERO
        self.price = math.nan

    def snapshot(self) -> Position:
        """Return the entry as an immutable :class:`~ibkrfw.Position`."""
        return position_of(
            self.instrument, self.qty, self.avg, self.realized, self.commission, self.price
        )


class Ledger(PortfolioView):
    """The accounting contract: what the engine, results and monitors call on the account's books.

    :class:`~ibkrfw.Portfolio` (average cost) is the ledger a run uses unless you give
    ``Engine(..., portfolio=...)`` another; :class:`~ibkrfw.portfolio.TaxLotPortfolio` (lots
    closed first in, first out or last in, first out) is a second. Strategies and risk rules
    see any ledger through its :class:`~ibkrfw.PortfolioView` side only; the engine is the
    only caller of the methods below, all on its one thread.

    The engine relies on three things a ledger must keep:

    * **cash and positions move as the fills say**: a fill of ``q`` at ``p`` moves
      ``q * p * multiplier + commission`` out of the instrument's currency, whatever the ledger
      makes of cost and profit (averages, lots...); the run's equity curve is built from
      :attr:`cash_f`, :meth:`balance` and each :class:`Holding`'s ``qty_f`` after each fill;
    * **marks go through the holdings**: on every bar the engine writes the close into the
      instrument's :class:`Holding` (got once, from :meth:`holding`), so
      :attr:`~ibkrfw.PortfolioView.equity` and :meth:`~ibkrfw.PortfolioView.price` must read
      them;
    * **it starts fresh**: the cash the broker reports and no fills (the engine checks both).

    The simplest way to write one is to derive from :class:`DelegatingLedger`, which keeps
    cash, marks, holdings and the views of orders and history in a wrapped
    :class:`~ibkrfw.Portfolio`, and add what you want on :meth:`apply_fill` (as
    :class:`~ibkrfw.portfolio.TaxLotPortfolio` does).
    """

    @property
    @abstractmethod
    def fx(self) -> FxRates | None:
        """The exchange rates in use, if any."""

    @abstractmethod
    def follow_rates(self, fx: FxRates | None, clock: Clock) -> None:
        """Read exchange rates from ``fx`` at ``clock``'s time (the broker's and the engine's).

        Raises:
            ConfigError: if the ledger was given other rates or another clock.
        """

    @abstractmethod
    def follow_orders(
        self,
        working: Callable[[], Mapping[Instrument, tuple[Decimal, Decimal]]],
        pending: Callable[[Instrument], Decimal] | None = None,
    ) -> None:
        """Read the live orders from the engine's order book, for the view's order methods.

        Args:
            working: Every instrument's ``(buy, sell)``, for
                :meth:`~ibkrfw.PortfolioView.working`.
            pending: An instrument's signed expected quantity, for
                :meth:`~ibkrfw.PortfolioView.pending`.
        """

    @abstractmethod
    def follow_histories(self, histories: Mapping[Instrument, BarHistory]) -> None:
        """Serve :meth:`~ibkrfw.PortfolioView.history` from ``histories`` (the engine's)."""

    @abstractmethod
    def holding(self, instrument: Instrument) -> Holding:
        """Return the mutable entry of ``instrument`` the engine marks, creating it if needed."""

    @abstractmethod
    def mark(self, instrument: Instrument, price: float) -> None:
        """Record ``price`` as the last price of ``instrument``."""

    @abstractmethod
    def apply_fill(self, fill: Fill) -> None:
        """Book ``fill``: move cash, update the position, realise P&L.

        Raises:
            DataError: if the fill is in a currency whose exchange rate is unknown at its time.
        """

    @abstractmethod
    def adopt(self, fill: Fill) -> None:
        """Book a position held before the run as its opening fill, leaving cash as it is.

        The engine calls it at start-up for each position the broker reports (live, IB's
        positions at their average cost), before any bar: the position was paid for before
        the run, so only the position changes.
        """

    @abstractmethod
    def adjust_cash(self, amount: Decimal, currency: str | None = None) -> None:
        """Move cash by ``amount`` for something other than a fill (a fee, interest...).

        Args:
            amount: The change, in ``currency``.
            currency: The currency moved; the base currency if None.
        """

    @abstractmethod
    def balance(self, currency: str) -> Decimal:
        """Return the cash balance of ``currency``, in that currency (zero if none)."""

    @property
    @abstractmethod
    def cash_f(self) -> float:
        """The base currency's balance as a float, for per-bar arithmetic."""

    @property
    @abstractmethod
    def commission(self) -> Decimal:
        """Commissions paid so far, in the base currency (converted at each fill's time)."""

    @property
    @abstractmethod
    def adjustments(self) -> Decimal:
        """The sum of every cash adjustment so far, in the base currency (negative for charges)."""

    @property
    @abstractmethod
    def fills(self) -> list[Fill]:
        """Every fill booked, in order."""

    @property
    @abstractmethod
    def realized_per_fill(self) -> list[Decimal]:
        """The profit each fill realised, before commission, in its instrument's currency.

        One per fill of :attr:`~ibkrfw.portfolio.Ledger.fills`, in order; zero for a fill that
        opened or added to a position. How much a fill realises is the ledger's method
        (average cost, lots...); over a position from flat to flat every method realises the
        same total.
        """

    @property
    def trades(self) -> list[Trade]:
        """Closed round-trip trades, in the order they closed.

        See :func:`~ibkrfw.portfolio.round_trips` for how fills are grouped.
        """
        return round_trips(self.fills)


@final
class Portfolio(Ledger):
    """The account's ledger: cash, positions (average cost), realised P&L and trades.

    The :class:`~ibkrfw.portfolio.Ledger` a run uses unless ``Engine(..., portfolio=...)``
    is given another. Ledger values are :class:`~decimal.Decimal`; marks and equity are
    float, as they come from market data. The engine owns the portfolio and is the only caller
    of :meth:`apply_fill` and :meth:`mark`; strategies see it through :class:`PortfolioView`.

    A fill moves cash in its instrument's currency, as at IB: buying a EUR-priced stock from a
    USD account leaves a negative EUR balance, which then moves with the exchange rate.

    Args:
        cash: Starting cash, in the base currency.
        base_currency: The account's currency.
        fx: Exchange rates into ``base_currency``, needed as soon as an instrument is priced in
            another currency.
        clock: Tells the time at which rates are read; required with ``fx``.

    Given to ``Engine(..., portfolio=...)``, build it with the account's cash and currency and
    neither ``fx`` nor ``clock``: the engine gives it the broker's rates and its own clock.

    Raises:
        ConfigError: if ``fx`` is given without ``clock``, or converts into another currency.

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

    def __init__(
        self,
        cash: DecimalLike = 0,
        base_currency: str = "USD",
        fx: FxRates | None = None,
        clock: Clock | None = None,
    ) -> None:
        if fx is not None:
            if clock is None:
                raise ConfigError("a Portfolio with exchange rates needs a clock to read them")
            if fx.base_currency != base_currency:
                raise ConfigError(
                    f"the exchange rates convert into {fx.base_currency}, "
                    f"the account's currency is {base_currency}"
                )
        self._cash = to_decimal(cash, "cash")  # the base currency's balance
        self._cash_f = float(self._cash)
        self._base = base_currency
        self._fx = fx
        self._clock = clock
        self._balances: dict[str, Decimal] = {}  # other currencies' balances
        self._holdings: dict[Instrument, Holding] = {}
        self._open: list[Holding] = []  # holdings with a non-zero quantity
        self._fills: list[Fill] = []
        self._realized: list[Decimal] = []  # the P&L each fill realised, in its currency
        self._adjustments = _ZERO
        self._commission = _ZERO
        self._orders: Callable[[], Mapping[Instrument, tuple[Decimal, Decimal]]] | None = None
        self._pending: Callable[[Instrument], Decimal] | None = None
        self._histories: Mapping[Instrument, BarHistory] = {}

    @property
    @override
    def base_currency(self) -> str:
        return self._base

    @override
    def follow_orders(
        self,
        working: Callable[[], Mapping[Instrument, tuple[Decimal, Decimal]]],
        pending: Callable[[Instrument], Decimal] | None = None,
    ) -> None:
        """Read the live orders from the engine's order book, for :meth:`working` and more.

        Args:
            working: Every instrument's ``(buy, sell)`` for :meth:`working`.
            pending: An instrument's signed expected quantity for :meth:`pending`.
        """
        self._orders = working
        self._pending = pending

    @override
    def follow_rates(self, fx: FxRates | None, clock: Clock) -> None:
        if self._fills:
            raise ConfigError("exchange rates are followed from the start: this ledger has fills")
        if self._fx is not None and fx is not self._fx:
            raise ConfigError(
                "this Portfolio was given exchange rates other than the broker's: build it "
                "without fx= and clock=, the engine gives it the broker's rates and its clock"
            )
        if self._clock is not None and clock is not self._clock:
            raise ConfigError(
                "this Portfolio reads the time from a clock other than the engine's: build it "
                "without clock=, the engine gives it its own"
            )
        if fx is not None and fx.base_currency != self._base:
            raise ConfigError(
                f"the exchange rates convert into {fx.base_currency}, "
                f"the account's currency is {self._base}"
            )
        self._fx = fx
        self._clock = clock

    @override
    def follow_histories(self, histories: Mapping[Instrument, BarHistory]) -> None:
        """Serve :meth:`history` from ``histories`` (the engine's, growing as bars come)."""
        self._histories = histories

    @override
    def history(self, instrument: Instrument, n: int | None = None) -> History:
        bars = self._histories.get(instrument)
        return (_NO_BARS if bars is None else bars).last(n)

    @override
    def working(self, instrument: Instrument) -> tuple[Decimal, Decimal]:
        if self._orders is None:
            return _ZERO, _ZERO
        return self._orders().get(instrument, (_ZERO, _ZERO))

    @override
    def working_instruments(self) -> frozenset[Instrument]:
        return frozenset() if self._orders is None else frozenset(self._orders())

    @override
    def pending(self, instrument: Instrument) -> Decimal:
        return _ZERO if self._pending is None else self._pending(instrument)

    @override
    def working_by_instrument(self) -> Mapping[Instrument, tuple[Decimal, Decimal]]:
        return {} if self._orders is None else self._orders()

    @property
    @override
    def fx(self) -> FxRates | None:
        """The exchange rates in use, if any."""
        return self._fx

    @override
    def rate(self, currency: str) -> float:
        if currency == self._base:
            return 1.0
        if self._fx is None or self._clock is None:
            raise DataError(
                f"no exchange rate from {currency} to {self._base}: the account has no FxRates"
            )
        return self._fx.rate(currency, self._clock.now_ns())

    def _rate_d(self, currency: str) -> Decimal:
        return float_decimal(self.rate(currency))

    @property
    @override
    def cash(self) -> Decimal:
        cash = self._cash
        for currency, balance in self._balances.items():
            if balance:
                cash += balance * self._rate_d(currency)
        return cash

    @property
    @override
    def cash_balances(self) -> dict[str, Decimal]:
        return {self._base: self._cash, **self._balances}

    @override
    def balance(self, currency: str) -> Decimal:
        """Return the cash balance of ``currency``, in that currency (zero if none)."""
        return self._cash if currency == self._base else self._balances.get(currency, _ZERO)

    @property
    @override
    def cash_f(self) -> float:
        """The base currency's balance as a float, for per-bar arithmetic."""
        return self._cash_f

    @property
    @override
    def equity(self) -> float:
        equity = self._cash_f
        if self._balances:
            return self._converted_equity()
        for h in self._open:
            equity += h.qty_f * h.price
        return equity

    def _converted_equity(self) -> float:
        rates: dict[str, float] = {}
        equity = self._cash_f
        for currency, balance in self._balances.items():
            if balance:
                rates[currency] = rate = self.rate(currency)
                equity += float(balance) * rate
        for h in self._open:
            if h.currency is None:
                equity += h.qty_f * h.price
            else:
                rate = rates.get(h.currency) or self.rate(h.currency)
                equity += h.qty_f * h.price * rate
        return equity

    @property
    @override
    def commission(self) -> Decimal:
        """Commissions paid so far, in the base currency (converted at each fill's time)."""
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
    def held_instruments(self) -> list[Instrument]:
        return [h.instrument for h in self._open]

    @override
    def price(self, instrument: Instrument) -> float:
        holding = self._holdings.get(instrument)
        return math.nan if holding is None else holding.price

    @property
    @override
    def trades(self) -> list[Trade]:
        """Closed round-trip trades, in the order they closed.

        See :func:`~ibkrfw.portfolio.round_trips` for how fills are grouped.
        """
        return round_trips(self._fills)

    @property
    @override
    def fills(self) -> list[Fill]:
        """Every fill booked, in order."""
        return list(self._fills)

    @property
    @override
    def realized_per_fill(self) -> list[Decimal]:
        """The profit each fill of :attr:`fills` realised, before commission, in its currency.

        Zero for a fill that opened or added to a position.
        """
        return list(self._realized)

    @override
    def holding(self, instrument: Instrument) -> Holding:
        holding = self._holdings.get(instrument)
        if holding is None:
            holding = self._holdings[instrument] = Holding(instrument, self._base)
        return holding

    @override
    def adjust_cash(self, amount: Decimal, currency: str | None = None) -> None:
        """Move cash by ``amount`` for something other than a fill (a fee, interest...).

        Args:
            amount: The change, in ``currency``.
            currency: The currency moved; the base currency if None.
        """
        if currency is None or currency == self._base:
            self._cash += amount
            self._cash_f = float(self._cash)
            self._adjustments += amount
        else:
            rate = self._rate_d(currency)  # first: an unknown rate leaves the books untouched
            self._balances[currency] = self._balances.get(currency, _ZERO) + amount
            self._adjustments += amount * rate

    @property
    @override
    def adjustments(self) -> Decimal:
        """The sum of every cash adjustment so far, in the base currency (negative for charges)."""
        return self._adjustments

    @override
    def mark(self, instrument: Instrument, price: float) -> None:
        """Record ``price`` as the last price of ``instrument``."""
        self.holding(instrument).price = price

    @override
    def apply_fill(self, fill: Fill) -> None:
        """Book ``fill``: move cash, update the position and its average cost, realise P&L.

        Raises:
            DataError: if the fill is in a currency whose exchange rate is unknown at its time.
        """
        h = self._holdings.get(fill.instrument) or self.holding(fill.instrument)
        size = fill.quantity
        buy = fill.side is _BUY
        q = size if buy else -size
        price = fill.price
        unit = h.unit_multiplier
        fee = fill.commission
        value = q * price if unit else q * price * h.multiplier
        currency = h.currency
        if currency is None:
            self._cash -= value + fee if fee else value
            self._cash_f = float(self._cash)
            if fee:
                self._commission += fee
        else:
            rate = self._rate_d(currency)  # first: an unknown rate leaves the books untouched
            self._balances[currency] = self._balances.get(currency, _ZERO) - (value + fee)
            if fee:
                self._commission += fee * rate
        self._fills.append(fill)
        realized = _ZERO
        if fee:
            h.commission += fee
        if h.price != h.price:  # NaN: no mark yet
            h.price = float(price)
        old = h.qty
        new = old + q
        # (Decimal against Decimal: against the int 0, each comparison converts it first)
        if not old:
            h.avg = price
        elif (old > _ZERO) is buy:  # adding: new average cost
            h.avg = (h.avg * abs(old) + price * size) / abs(new)
        else:  # reducing, closing or reversing
            closing = min(size, abs(old))
            pnl = (price - h.avg) * closing if old > _ZERO else (h.avg - price) * closing
            realized = pnl if unit else pnl * h.multiplier
            h.realized += realized
            if not new:
                h.avg = _ZERO
            elif size > abs(old):
                h.avg = price  # reversed: the rest opens at this price
        self._realized.append(realized)
        h.qty = new
        h.qty_f = float(new) if unit else float(new * h.multiplier)
        if not old:
            self._open.append(h)
        elif not new:
            self._open.remove(h)

    @override
    def adopt(self, fill: Fill) -> None:
        self.apply_fill(fill)
        value = fill.quantity * fill.price * fill.instrument.multiplier
        cost = (value if fill.side is _BUY else -value) + fill.commission
        if fill.instrument.currency == self._base:
            self._cash += cost
            self._cash_f = float(self._cash)
        else:
            currency = fill.instrument.currency
            self._balances[currency] = self._balances.get(currency, _ZERO) + cost


class DelegatingLedger(Ledger):
    """A :class:`Ledger` that keeps its books in a :class:`~ibkrfw.Portfolio`: the base of your own.

    Every method of the contract is the wrapped :attr:`books`'; override the ones your ledger
    changes, calling ``super()`` for the books. Cash, positions, marks and the holdings the
    engine marks stay the :class:`~ibkrfw.Portfolio`'s, so a run's fills, cash and equity are
    those of the default ledger whatever you add (:class:`~ibkrfw.portfolio.TaxLotPortfolio`
    is built this way).

    Args:
        cash: Starting cash, in the base currency (the account's, when given to the engine).
        base_currency: The account's currency.
        fx: Exchange rates, as for :class:`~ibkrfw.Portfolio`; the engine gives the broker's.
        clock: The clock the rates are read at; required with ``fx``.

    Raises:
        ConfigError: as :class:`~ibkrfw.Portfolio` does.

    Example:
        >>> from decimal import Decimal
        >>> from ibkrfw import Fill, Side, Stock
        >>> class Counting(DelegatingLedger):
        ...     fills_seen = 0
        ...     def apply_fill(self, fill: Fill) -> None:
        ...         super().apply_fill(fill)
        ...         self.fills_seen += 1
        >>> pf = Counting(1_000)
        >>> pf.apply_fill(Fill(1, Stock("X"), Side.BUY, Decimal(1), Decimal(10), Decimal(0),
        ...                    0, "e1"))
        >>> pf.fills_seen, pf.cash
        (1, Decimal('990'))
    """

    def __init__(
        self,
        cash: DecimalLike = 0,
        base_currency: str = "USD",
        fx: FxRates | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.books = Portfolio(cash, base_currency, fx, clock)
        """The wrapped books (average cost)."""

    @property
    @override
    def base_currency(self) -> str:
        return self.books.base_currency

    @property
    @override
    def cash(self) -> Decimal:
        return self.books.cash

    @property
    @override
    def cash_balances(self) -> dict[str, Decimal]:
        return self.books.cash_balances

    @override
    def rate(self, currency: str) -> float:
        return self.books.rate(currency)

    @property
    @override
    def equity(self) -> float:
        return self.books.equity

    @override
    def quantity(self, instrument: Instrument) -> Decimal:
        return self.books.quantity(instrument)

    @override
    def price(self, instrument: Instrument) -> float:
        return self.books.price(instrument)

    @override
    def value(self, position: Position) -> float:
        return self.books.value(position)

    @property
    @override
    def market_value(self) -> float:
        return self.books.market_value

    @property
    @override
    def gross_exposure(self) -> float:
        return self.books.gross_exposure

    @override
    def working(self, instrument: Instrument) -> tuple[Decimal, Decimal]:
        return self.books.working(instrument)

    @override
    def working_instruments(self) -> frozenset[Instrument]:
        return self.books.working_instruments()

    @override
    def pending(self, instrument: Instrument) -> Decimal:
        return self.books.pending(instrument)

    @override
    def working_by_instrument(self) -> Mapping[Instrument, tuple[Decimal, Decimal]]:
        return self.books.working_by_instrument()

    @override
    def history(self, instrument: Instrument, n: int | None = None) -> History:
        return self.books.history(instrument, n)

    @property
    @override
    def fx(self) -> FxRates | None:
        return self.books.fx

    @override
    def follow_rates(self, fx: FxRates | None, clock: Clock) -> None:
        self.books.follow_rates(fx, clock)

    @override
    def follow_orders(
        self,
        working: Callable[[], Mapping[Instrument, tuple[Decimal, Decimal]]],
        pending: Callable[[Instrument], Decimal] | None = None,
    ) -> None:
        self.books.follow_orders(working, pending)

    @override
    def follow_histories(self, histories: Mapping[Instrument, BarHistory]) -> None:
        self.books.follow_histories(histories)

    @override
    def holding(self, instrument: Instrument) -> Holding:
        return self.books.holding(instrument)

    @override
    def mark(self, instrument: Instrument, price: float) -> None:
        self.books.mark(instrument, price)

    @override
    def adjust_cash(self, amount: Decimal, currency: str | None = None) -> None:
        self.books.adjust_cash(amount, currency)

    @override
    def balance(self, currency: str) -> Decimal:
        return self.books.balance(currency)

    @property
    @override
    def cash_f(self) -> float:
        return self.books.cash_f

    @property
    @override
    def commission(self) -> Decimal:
        return self.books.commission

    @property
    @override
    def adjustments(self) -> Decimal:
        return self.books.adjustments

    @property
    @override
    def fills(self) -> list[Fill]:
        return self.books.fills

    @override
    def position(self, instrument: Instrument) -> Position:
        return self.books.position(instrument)

    @property
    @override
    def positions(self) -> dict[Instrument, Position]:
        return self.books.positions

    @property
    @override
    def realized_per_fill(self) -> list[Decimal]:
        return self.books.realized_per_fill

    @property
    @override
    def trades(self) -> list[Trade]:
        return self.books.trades

    @override
    def apply_fill(self, fill: Fill) -> None:
        self.books.apply_fill(fill)

    @override
    def adopt(self, fill: Fill) -> None:
        self.books.adopt(fill)


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
            side=_BUY if old > 0 else _SELL,
            quantity=max(self.max_qty, abs(old)),
            entry_ns=self.entry_ns,
            exit_ns=exit_ns,
            entry_price=entry_price,
            exit_price=exit_price,
            gross_pnl=gross,
            commission=self.commission,
        )


_Holding = Holding  # the name the engine imported it by
