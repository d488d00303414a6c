"""A pre-trade limit on options: delta and notional per underlying, the multiplier counted."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import final

from typing_extensions import override

from ibkrfw.errors import ConfigError
from ibkrfw.model.instruments import AssetClass, Instrument, Option
from ibkrfw.model.orders import OrderRequest
from ibkrfw.portfolio.portfolio import PortfolioView
from ibkrfw.risk.rule import LimitUsage, RiskDecision, RiskRule, only_reduces

__all__ = ["OptionExposureLimit"]

DeltaSource = Callable[[Option, PortfolioView, int], float | None]
"""Gives an option's delta per unit of the underlying (IB's model greeks, say), or None."""


def _limit(value: float | None, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"OptionExposureLimit({name}={value!r}): give a positive number")
    if not math.isfinite(value):
        raise ConfigError(f"OptionExposureLimit({name}={value!r}): give a finite number")
    return float(value)


@final
class OptionExposureLimit(RiskRule):
    """Cap the delta and the options notional of each underlying, contracts times multiplier.

    **Delta** is counted in units of the underlying (shares): a position in the underlying
    counts its quantity, an option position its contracts times the multiplier times the
    option's delta. **Notional** is the options' gross contracts times multiplier times the
    underlying's price, in its currency. Both look at the position the order would leave
    with the working orders on its side filled, as the other limits do; an order that only
    brings a position toward flat always passes, and so does one that brings the measure it
    breaks down.

    An option's delta comes from ``delta`` if given (e.g. IB's model greeks, live), else from
    Black-Scholes on the underlying's last price with the volatility the option's own last
    price implies, or ``volatility`` when that cannot be found (no price yet, a price with no
    time value). An option with no delta at all is denied, saying why.

    Args:
        max_delta: The largest absolute delta per underlying, in units of the underlying
            (500: as much as 500 shares).
        max_notional: The largest options notional per underlying.
        volatility: The volatility to fall back on (annualised, 0.3 for 30 %); without it an
            option whose price implies none is denied.
        rate: The risk-free rate of the Black-Scholes delta.
        underlyings: The instrument of each underlying symbol whose price to use; by default
            the option's :meth:`~ibkrfw.Option.underlying` (the stock on SMART).
        delta: A source of deltas that takes precedence.

    Raises:
        ConfigError: if neither limit is given, or a number is not positive.

    Example:
        >>> rule = OptionExposureLimit(max_delta=500, max_notional=100_000, volatility=0.3)
        >>> rule.max_delta, rule.max_notional
        (500.0, 100000.0)
    """

    def __init__(
        self,
        *,
        max_delta: float | None = None,
        max_notional: float | None = None,
        volatility: float | None = None,
        rate: float = 0.0,
        underlyings: Mapping[str, Instrument] | None = None,
        delta: DeltaSource | None = None,
    ) -> None:
        if max_delta is None and max_notional is None:
            raise ConfigError(
                "OptionExposureLimit needs max_delta (in units of the underlying) or "
                "max_notional, e.g. OptionExposureLimit(max_delta=500)"
            )
        self.max_delta = _limit(max_delta, "max_delta")
        self.max_notional = _limit(max_notional, "max_notional")
        self.volatility = _limit(volatility, "volatility")
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not math.isfinite(rate):
            raise ConfigError(f"OptionExposureLimit(rate={rate!r}): give a number, e.g. 0.04")
        self.rate = float(rate)
        self.underlyings = dict(underlyings or {})
        self.delta = delta

    # --- what a position is worth in the underlying ---------------------------------------
    def _underlying(self, option: Option) -> Instrument:
        return self.underlyings.get(option.symbol) or option.underlying()

    def _covers(self, inst: Instrument, symbol: str) -> bool:
        """Whether a position in ``inst`` counts towards ``symbol``'s exposure."""
        if isinstance(inst, Option):
            return inst.symbol == symbol
        under = self.underlyings.get(symbol)
        if under is not None:
            return inst == under
        return inst.asset_class is AssetClass.STOCK and inst.symbol == symbol

    def _unpriced(self, under: Instrument, option: Option) -> str:
        """Why an option cannot be measured: its underlying has no price yet."""
        fix = (
            ""
            if option.symbol in self.underlyings
            else f"; if the run trades {option.symbol} listed otherwise (a primary exchange, "
            f"another exchange), give OptionExposureLimit(underlyings={{"
            f"{option.symbol!r}: ...}}) with that instrument"
        )
        return f"no price of {under.id}, the underlying of {option.id}{fix}"

    def option_delta(
        self, option: Option, portfolio: PortfolioView, ts_ns: int
    ) -> tuple[float | None, str]:
        """One unit's delta of ``option`` now, or None with the reason there is none."""
        if self.delta is not None:
            given = self.delta(option, portfolio, ts_ns)
            if given is not None and math.isfinite(given):
                return float(given), ""
        from ibkrfw.options import option_delta

        under = self._underlying(option)
        spot = portfolio.price(under)
        if not spot > 0:
            return None, self._unpriced(under, option)
        price = portfolio.price(option)
        found = option_delta(
            option, spot=spot, ts_ns=ts_ns, price=price, volatility=self.volatility,
            rate=self.rate,
        )  # fmt: skip
        if found is None:
            return None, (
                f"no volatility for {option.id}: its price "
                f"{'is unknown' if not price > 0 else f'{price:g} implies none'}; give "
                "OptionExposureLimit(volatility=...) to fall back on"
            )
        return found, ""

    def _exposure(
        self, symbol: str, portfolio: PortfolioView, ts_ns: int, request: OrderRequest | None
    ) -> tuple[float, float, str]:
        """Worst delta and notional of ``symbol`` with the working orders (and ``request``)."""
        instruments = set(portfolio.positions) | set(portfolio.working_instruments())
        if request is not None:
            instruments.add(request.instrument)
        delta_up = delta_down = notional = 0.0
        for inst in instruments:
            if not self._covers(inst, symbol):
                continue
            held = portfolio.quantity(inst)
            buys, sells = portfolio.working(inst)
            if request is not None and inst == request.instrument:
                if request.side.sign > 0:
                    buys += request.quantity
                else:
                    sells += request.quantity
            if isinstance(inst, Option):
                per = 0.0
                if self.max_delta is not None:  # a notional limit alone needs no delta
                    unit, why = self.option_delta(inst, portfolio, ts_ns)
                    if unit is None:
                        return math.nan, math.nan, why
                    per = float(inst.multiplier) * unit
                under = self._underlying(inst)
                spot = portfolio.price(under)
                if self.max_notional is not None and not spot > 0:  # NaN would pass any limit
                    return math.nan, math.nan, self._unpriced(under, inst)
                notional += (
                    float(max(abs(held + buys), abs(held - sells))) * float(inst.multiplier) * spot
                )
            else:
                per = float(inst.multiplier)
            # the delta if every working buy filled, and if every working sell filled
            up, down = float(held + buys) * per, float(held - sells) * per
            delta_up += max(up, down)
            delta_down += min(up, down)
        return max(abs(delta_up), abs(delta_down)), notional, ""

    # --- the rule --------------------------------------------------------------------------
    @override
    def check(self, request: OrderRequest, portfolio: PortfolioView, ts_ns: int) -> RiskDecision:
        inst = request.instrument
        if not isinstance(inst, Option) and not any(
            isinstance(i, Option) and self._covers(inst, i.symbol)
            for i in (*portfolio.positions, *portfolio.working_instruments())
        ):
            return RiskDecision.approve()  # not an option, nor an option's underlying
        if only_reduces(request, portfolio):
            return RiskDecision.approve()
        symbol = inst.symbol
        delta_before, notional_before, _ = self._exposure(symbol, portfolio, ts_ns, None)
        delta_after, notional_after, why = self._exposure(symbol, portfolio, ts_ns, request)
        if why:
            return RiskDecision.deny(f"{symbol}'s option exposure cannot be measured: {why}")
        if (
            self.max_delta is not None
            and delta_after > self.max_delta
            and not delta_after <= delta_before
        ):
            return RiskDecision.deny(
                f"{symbol}'s delta would be {delta_after:,.1f} units of the underlying, over "
                f"the limit of {self.max_delta:,.1f}"
            )
        if (
            self.max_notional is not None
            and notional_after > self.max_notional
            and not notional_after <= notional_before
        ):
            return RiskDecision.deny(
                f"{symbol}'s options notional would be {notional_after:,.2f}, over the limit "
                f"of {self.max_notional:,.2f}"
            )
        return RiskDecision.approve()

    @override
    def usage(self, portfolio: PortfolioView) -> list[LimitUsage]:
        """The options notional of each underlying held (delta needs the time: not shown)."""
        if self.max_notional is None:
            return []
        symbols = sorted({i.symbol for i in portfolio.positions if isinstance(i, Option)})
        found = []
        for symbol in symbols:
            notional = 0.0
            for inst, position in portfolio.positions.items():
                if isinstance(inst, Option) and inst.symbol == symbol:
                    spot = portfolio.price(self._underlying(inst))
                    notional += abs(float(position.quantity)) * float(inst.multiplier) * spot
            if math.isfinite(notional):
                found.append(LimitUsage(f"{symbol} options notional", notional, self.max_notional))
        return found
