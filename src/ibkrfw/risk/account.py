"""What an account lets you trade: an IB margin account's buying power, or a cash account's cash.

:class:`BuyingPower` is the check a broker makes when an order is sent. The simulated broker
hands it to the engine (``Broker.account_rules``), so a backtest is refused what IB would
refuse; with IB itself, IB checks, and the rule may be added to ``risk_rules`` to refuse
before sending.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Literal, final

from typing_extensions import override

from ibkrfw.errors import ConfigError, DataError
from ibkrfw.model.instruments import AssetClass, Instrument, Option
from ibkrfw.model.orders import OrderRequest, Side
from ibkrfw.portfolio.portfolio import PortfolioView
from ibkrfw.risk.rule import LimitUsage, RiskDecision, RiskRule, only_reduces

# Enum members bound once: on Python 3.11 each `Side.BUY` in a function is a slow lookup
# (EnumType.__getattr__ routes every class attribute through Python), on the order path.
_STOCK = AssetClass.STOCK
_BUY = Side.BUY
_SELL = Side.SELL

__all__ = ["IB_INITIAL_MARGIN", "BuyingPower", "MarginRates", "MarginSpec", "margin_rates"]

MarginRates = Mapping[AssetClass, float]
"""Initial margin as a share of a position's market value, by asset class."""

IB_INITIAL_MARGIN: MarginRates = MappingProxyType(
    {
        AssetClass.STOCK: 0.5,  # Regulation T: 50 % of a long or short stock position
        AssetClass.FOREX: 0.025,  # IB's rate for the major currencies (40:1)
        AssetClass.FUTURE: 0.1,  # a stand-in for the exchange's margin (SPAN): give yours
        AssetClass.OPTION: 1.0,  # a long option is paid in full; short ones: see below
    }
)
"""The initial margin of an IB margin account, by asset class (a read-only mapping).

Stocks: Regulation T's 50 %. Forex: 2.5 %, IB's rate for USD, EUR, JPY, CHF, GBP, AUD and CAD
(other currencies need 3.33 % to 10 %). Futures: 10 % of the notional value, a rough stand-in
for the exchange's own margin per contract (an E-mini S&P 500 contract needs about 5 to 7 %);
give your contract's rate when it matters. Options: 100 % of the premium, what a long option
costs. A short option's Regulation T margin depends on its underlying (the premium plus 20 %
of the underlying's value less the amount out of the money, at least 10 %) and is not
modelled: it counts as its premium, far less than IB will ask. Bound short options with a
delta or notional limit.
"""

MarginSpec = float | Mapping[AssetClass, float] | Mapping[str, float]
"""Initial margin as given: one share for every asset class, or shares by class."""

_ZERO = Decimal(0)

CommissionEstimate = Callable[[Instrument, Side, Decimal, Decimal, int], Decimal]
"""What an order would pay: ``(instrument, side, quantity, price, ts_ns) -> commission``."""


def margin_rates(
    initial_margin: MarginSpec,
) -> MarginRates:
    """Turn one share (for every asset class) or shares by class into rates by asset class.

    Classes a mapping leaves out keep :data:`IB_INITIAL_MARGIN`'s rate. Classes may be given
    as :class:`~ibkrfw.AssetClass` or its IB name (``"STK"``, ``"FUT"``, ``"CASH"``).

    Example:
        >>> margin_rates({"FUT": 0.06})[AssetClass.FUTURE], margin_rates(0.25)[AssetClass.STOCK]
        (0.06, 0.25)

    Raises:
        ConfigError: if a share is not in (0, 1] or a class is unknown.
    """
    if isinstance(initial_margin, Mapping):
        rates = dict(IB_INITIAL_MARGIN)
        for key, share in initial_margin.items():
            try:
                kind = AssetClass(key)
            except ValueError:
                known = ", ".join(k.value for k in AssetClass)
                raise ConfigError(
                    f"initial_margin: unknown asset class {key!r}; known: {known}"
                ) from None
            rates[kind] = _share(share, f"initial_margin[{kind.value!r}]")
    else:
        share = _share(initial_margin, "initial_margin")
        rates = dict.fromkeys(AssetClass, share)
    return MappingProxyType(rates)


def _share(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise ConfigError(f"{name} must be a share in (0, 1], got {value!r}")
    return float(value)


@final
class BuyingPower(RiskRule):
    """Deny an order the account could not pay for, as the broker would when it is sent.

    * A **margin account** (the default) denies an order that adds to the initial margin
      the positions need when the equity would not cover it. The margin is a share of each
      position's market value by asset class (:data:`IB_INITIAL_MARGIN` by default: IB's
      Regulation T account), counting the working orders as if the side that adds most
      filled. An order that lowers the margin needed always passes.
    * A **cash account** denies a short sale (a sell beyond what is held, less what working
      orders already sell) and a buy whose cost, commission included, and that of the buys
      still working exceed the cash. It writes calls as IB's cash accounts do: covered, by
      the shares of the underlying held and not being sold (a contract needs its multiplier
      of them), and it keeps those shares while the calls are open. Other short options
      (puts, cash-settled calls) are short sales.

    Orders are valued at their limit price, others at the last price seen; with no price yet
    the order passes (the broker cannot value it either). The check is made when the order
    is sent, as IB makes it: a market order that then fills at a worse price is not taken
    back.

    Args:
        account: ``"margin"`` or ``"cash"``.
        initial_margin: A margin account's rates: one share for every asset class, or shares
            by class (the others from :data:`IB_INITIAL_MARGIN`).
        commission: Estimates an order's commission (a cash account counts it); none if None.

    Raises:
        ConfigError: if ``account`` is unknown, or a rate is not in (0, 1].

    Example:
        >>> rule = BuyingPower("margin", initial_margin={"FUT": 0.06})
        >>> rule.rates[AssetClass.STOCK], rule.rates[AssetClass.FUTURE]
        (0.5, 0.06)
    """

    def __init__(
        self,
        account: Literal["margin", "cash"] = "margin",
        *,
        initial_margin: float
        | Mapping[AssetClass, float]
        | Mapping[str, float] = IB_INITIAL_MARGIN,
        commission: CommissionEstimate | None = None,
    ) -> None:
        if account not in ("margin", "cash"):
            raise ConfigError(f"account must be 'margin' or 'cash', got {account!r}")
        self.account = account
        self.rates: MarginRates = margin_rates(initial_margin)
        """The margin account's initial margin, by asset class."""
        self.commission = commission

    @override
    def usage(self, portfolio: PortfolioView) -> list[LimitUsage]:
        equity = portfolio.equity
        if self.account == "cash" or not equity > 0:
            return []
        needed = sum(
            (abs(portfolio.value(p)) * self.rates[i.asset_class])
            for i, p in portfolio.positions.items()
        )
        return [LimitUsage("initial margin", needed, equity)]

    @override
    def check(self, request: OrderRequest, portfolio: PortfolioView, ts_ns: int) -> RiskDecision:
        if self.account == "cash" and request.side is _SELL:
            return self._short(request, portfolio)
        held = portfolio.quantity(request.instrument)
        if held and request.side.sign * held < 0 and only_reduces(request, portfolio):
            return RiskDecision.approve()  # closing lowers what any account asks
        unit = _unit(request.instrument, portfolio, request)
        if math.isnan(unit):
            return RiskDecision.approve()  # no price to value it: the broker cannot either
        if self.account == "cash":
            return self._cash(request, portfolio, unit, ts_ns)
        before, after = self._margin(request, portfolio)
        if after <= before:
            return RiskDecision.approve()
        equity = portfolio.equity
        if after <= equity:
            return RiskDecision.approve()
        currency = portfolio.base_currency
        return RiskDecision.deny(
            f"insufficient buying power: with this order the positions and working orders would "
            f"need {after:,.2f} {currency} of initial margin ({self._rates_text(request)}), and "
            f"the equity is {equity:,.2f} {currency}"
        )

    def initial_margin(
        self, request: OrderRequest, portfolio: PortfolioView
    ) -> tuple[float, float]:
        """Return the initial margin needed before and after ``request``, in the base currency.

        The margin account's figures :meth:`check` compares with the equity: the positions and
        the working orders (each instrument's side that adds most), then with ``request``
        added; instruments with no price yet count nothing.
        """
        return self._margin(request, portfolio)

    def _rates_text(self, request: OrderRequest) -> str:
        kind = request.instrument.asset_class
        return f"{self.rates[kind]:.1%} of a {kind.name.lower()} position's value"

    def _margin(self, request: OrderRequest, portfolio: PortfolioView) -> tuple[float, float]:
        """The initial margin needed before and after ``request``, working orders included."""
        inst = request.instrument
        working = portfolio.working_by_instrument()
        held_now = portfolio.held_instruments()
        instruments: Collection[Instrument] = (
            {*held_now, *working, inst} if held_now or working else (inst,)
        )
        before = after = 0.0
        nothing = (_ZERO, _ZERO)
        rates = self.rates
        for other in instruments:
            unit = _unit(other, portfolio, request)
            if math.isnan(unit):
                continue  # never priced: nothing held to value
            rate = rates[other.asset_class]
            held = portfolio.quantity(other)
            buys, sells = working.get(other, nothing)
            worst = max(abs(held + buys), abs(held - sells))
            before += float(worst) * unit * rate
            if other is inst or other == inst:
                if request.side is _BUY:
                    buys += request.quantity
                else:
                    sells += request.quantity
                worst = max(abs(held + buys), abs(held - sells))
            after += float(worst) * unit * rate
        return before, after

    @staticmethod
    def _short(request: OrderRequest, portfolio: PortfolioView) -> RiskDecision:
        inst = request.instrument
        if _covered_call(inst):
            return _write_covered(request, portfolio)
        held = portfolio.quantity(inst)
        sells = portfolio.working(inst)[1]
        left = held - sells - request.quantity
        if left >= 0:
            if inst.asset_class is _STOCK:
                need = _call_cover(portfolio, inst.symbol, inst.currency)
                if left < need:
                    return RiskDecision.deny(
                        f"a cash account keeps the shares that cover its written calls: "
                        f"selling {request.quantity} of {inst.id} would leave {left}, and the "
                        f"calls need {need}"
                    )
            return RiskDecision.approve()
        already = f" ({sells} already being sold)" if sells else ""
        return RiskDecision.deny(
            f"a cash account cannot sell short: selling {request.quantity} of {inst.id} while "
            f"holding {held}{already}"
        )

    def _cash(
        self, request: OrderRequest, portfolio: PortfolioView, unit: float, ts_ns: int
    ) -> RiskDecision:
        inst = request.instrument
        cost = float(request.quantity) * unit
        if self.commission is not None:
            price = request.limit_price
            if price is None:
                price = inst.round_price(portfolio.price(inst))
            fee = self.commission(inst, request.side, request.quantity, price, ts_ns)
            cost += float(fee) * _rate(inst, portfolio)
        reserved = 0.0
        for other, (other_buys, _) in portfolio.working_by_instrument().items():
            if other_buys:
                other_unit = _unit(other, portfolio, request)
                if not math.isnan(other_unit):
                    reserved += float(other_buys) * other_unit
        cash = float(portfolio.cash)
        if cost + reserved <= cash:
            return RiskDecision.approve()
        currency = portfolio.base_currency
        pending = f" and the buys still working {reserved:,.2f}" if reserved else ""
        return RiskDecision.deny(
            f"insufficient cash: the order needs {cost:,.2f} {currency}{pending}, the account "
            f"has {cash:,.2f} {currency}"
        )


def _covered_call(inst: Instrument) -> bool:
    """Whether shares can cover ``inst`` written: a call that delivers them."""
    return type(inst) is Option and inst.is_call and inst.settlement == "physical"


def _call_cover(
    portfolio: PortfolioView, symbol: str, currency: str, request: OrderRequest | None = None
) -> Decimal:
    """The shares of ``symbol`` the calls written on it need, once the working sells fill."""
    working = portfolio.working_by_instrument()
    calls = set(portfolio.positions) | set(working)
    if request is not None:
        calls.add(request.instrument)
    need = _ZERO
    for call in calls:
        if _covered_call(call) and call.symbol == symbol and call.currency == currency:
            sells = working.get(call, (_ZERO, _ZERO))[1]
            if request is not None and call == request.instrument:
                sells += request.quantity
            need += max(_ZERO, sells - portfolio.quantity(call)) * call.multiplier
    return need


def _shares(portfolio: PortfolioView, symbol: str, currency: str) -> tuple[Decimal, Decimal]:
    """The shares of ``symbol`` held (on any exchange), and those being sold."""
    held = selling = _ZERO
    for inst in set(portfolio.positions) | set(portfolio.working_by_instrument()):
        stock = inst.asset_class is _STOCK
        if stock and inst.symbol == symbol and inst.currency == currency:
            held += portfolio.quantity(inst)
            selling += portfolio.working(inst)[1]
    return held, selling


def _write_covered(request: OrderRequest, portfolio: PortfolioView) -> RiskDecision:
    """A cash account sells a call only as far as the shares held cover it."""
    call = request.instrument
    need = _call_cover(portfolio, call.symbol, call.currency, request)
    held, selling = _shares(portfolio, call.symbol, call.currency)
    if need <= held - selling:
        return RiskDecision.approve()
    sold = f" ({selling} of them being sold)" if selling else ""
    closing = any(
        buys and _covered_call(other) and other.symbol == call.symbol
        for other, (buys, _) in portfolio.working_by_instrument().items()
    )
    wait = "; a call being bought back covers nothing until it is filled" if closing else ""
    return RiskDecision.deny(
        f"a cash account writes only covered calls: {request.quantity} {call.id} written would "
        f"need {need} shares of {call.symbol}, and {held} are held{sold}{wait}"
    )


def _rate(inst: Instrument, portfolio: PortfolioView) -> float:
    if inst.currency == portfolio.base_currency:
        return 1.0
    try:
        return portfolio.rate(inst.currency)
    except DataError:
        return math.nan


def _unit(inst: Instrument, portfolio: PortfolioView, request: OrderRequest) -> float:
    """One unit of ``inst`` in the base currency, at the order's limit for its instrument."""
    if request.limit_price is not None and (
        inst is request.instrument or inst == request.instrument
    ):
        price = float(request.limit_price)
    else:
        price = portfolio.price(inst)
    return price * float(inst.multiplier) * _rate(inst, portfolio)
