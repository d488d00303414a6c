"""Covered calls: hold the underlying in round lots, write calls on it at a delta, roll them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from typing import final

import attrs
from typing_extensions import override

from ibkrfw.errors import ConfigError
from ibkrfw.model.data import Bar
from ibkrfw.model.events import Event, OptionSettled
from ibkrfw.model.instruments import Instrument, Option
from ibkrfw.strategies._params import int_at_least
from ibkrfw.strategy import Context, Strategy

__all__ = ["CoveredCall"]

_DAY_NS = 86_400 * 1_000_000_000


def _fraction(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise ConfigError(
            f"CoveredCall({attribute.name}={value!r}): give a delta between 0 and 1, e.g. 0.3"
        )


def _days(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(
            f"CoveredCall({attribute.name}={value!r}): give a whole number of days, 0 or more"
        )


@final
@attrs.define
class CoveredCall(Strategy):
    """Hold ``contracts`` x multiplier shares and keep that many calls written against them.

    On each time stamp (:meth:`on_slice`, once every bar of it is in):

    1. it buys the shares it lacks (at the start, and after an assignment took them);
    2. a written call with ``roll_days`` or fewer days left, or whose delta has reached
       ``roll_delta`` (deep in the money: assignment is near), is bought back and a new one is
       written in the same time stamp (the roll);
    3. with the shares held and no call written, it writes the call among ``calls`` that
       expires in ``min_days`` to ``max_days`` days and whose delta is nearest
       ``target_delta`` (the nearer expiry on a tie), at a premium of ``min_premium`` or
       more.

    Deltas are Black-Scholes at the volatility each call's last price implies
    (:func:`~ibkrfw.options.option_delta`), ``volatility`` where a price implies none. A call
    left to expire is settled as the broker settles it: in the money the shares go (assigned)
    and are bought again on the next time stamp; out of the money it expires worthless.

    Args:
        underlying: The stock.
        calls: The calls it may write; every call on the underlying the feed delivers if
            None (an option chain's :meth:`~ibkrfw.ibkr.OptionChain.options`, with bars).
        contracts: How many calls to keep written.
        target_delta: The delta of the call to write (0.30: about 30 % in-the-money odds).
        min_days: The fewest days to expiry of a call to write.
        max_days: The most days to expiry of a call to write.
        roll_days: Roll a written call with this many days left or fewer (0: let it expire).
        roll_delta: Roll a written call whose delta reaches this.
        volatility: The volatility of deltas no price implies (None: such calls are skipped).
        rate: The risk-free rate of the deltas.
        min_premium: The least premium, per unit, of a call to write (0.10: 10.00 a contract
            of 100): a cheaper one would barely pay its commission.

    Raises:
        ConfigError: for a delta outside (0, 1), days out of order, a call on another
            underlying or a put among ``calls``, or no call to write at all.

    Example:
        >>> strategy = CoveredCall(Instrument.from_dict({"asset_class": "STK", "symbol": "X"}))
        >>> strategy.target_delta, strategy.roll_days
        (0.3, 5)
    """

    underlying: Instrument
    calls: Sequence[Option] | None = None
    contracts: int = attrs.field(default=1, validator=int_at_least(1))
    target_delta: float = attrs.field(default=0.3, validator=_fraction)
    min_days: int = attrs.field(default=20, validator=_days)
    max_days: int = attrs.field(default=50, validator=_days)
    roll_days: int = attrs.field(default=5, validator=_days)
    roll_delta: float = attrs.field(default=0.8, validator=_fraction)
    volatility: float | None = None
    rate: float = 0.0
    min_premium: float = 0.10
    written: list[tuple[int, Option]] = attrs.field(factory=list, init=False, repr=False)
    """The calls written, in order, each as (time, call)."""
    rolled: list[tuple[int, Option, str]] = attrs.field(factory=list, init=False, repr=False)
    """The rolls, in order, each as (time, the call bought back, why)."""
    settled: list[OptionSettled] = attrs.field(factory=list, init=False, repr=False)
    """Every written call settled at expiry (assigned or expired)."""
    _universe: tuple[Option, ...] = attrs.field(default=(), init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.min_days > self.max_days:
            raise ConfigError(
                f"CoveredCall: min_days={self.min_days} is past max_days={self.max_days}; "
                "give the window of days to expiry, fewest first"
            )
        if isinstance(self.min_premium, bool) or not (
            isinstance(self.min_premium, int | float) and self.min_premium >= 0
        ):
            raise ConfigError(
                f"CoveredCall(min_premium={self.min_premium!r}): give a price per unit, 0 or "
                "more, e.g. 0.10"
            )
        if self.roll_days >= self.min_days:
            raise ConfigError(
                f"CoveredCall: roll_days={self.roll_days} would roll a call as soon as it is "
                f"written (min_days={self.min_days}); give roll_days under min_days"
            )
        for call in self.calls or ():
            if not isinstance(call, Option) or not call.is_call:
                raise ConfigError(f"CoveredCall(calls=...): {call!r} is not a call")
            if call.symbol != self.underlying.symbol:
                raise ConfigError(
                    f"CoveredCall(calls=...): {call.id} is not on {self.underlying.symbol}"
                )

    @override
    def parameters(self) -> dict[str, object]:
        return {
            "contracts": self.contracts, "target_delta": self.target_delta,
            "min_days": self.min_days, "max_days": self.max_days, "roll_days": self.roll_days,
            "roll_delta": self.roll_delta, "min_premium": self.min_premium,
        }  # fmt: skip

    @override
    def on_start(self, ctx: Context) -> None:
        known = ctx.instruments
        listed = (
            self.calls
            if self.calls is not None
            else [
                i
                for i in known
                if isinstance(i, Option) and i.is_call and i.symbol == self.underlying.symbol
            ]
        )
        self._universe = tuple(listed)
        if not self._universe:
            raise ConfigError(
                f"CoveredCall: no call on {self.underlying.symbol} to write; give calls=, or "
                "a feed with the calls' bars"
            )
        if self.underlying not in known:
            raise ConfigError(
                f"CoveredCall: no feed of this run delivers {self.underlying.id}, the underlying"
            )

    @override
    def on_bar(self, ctx: Context, bar: Bar) -> None:
        """Nothing per bar: the decisions wait for the whole time stamp (:meth:`on_slice`)."""

    @override
    def on_event(self, ctx: Context, event: Event) -> None:
        if isinstance(event, OptionSettled) and event.option.symbol == self.underlying.symbol:
            self.settled.append(event)

    @override
    def on_slice(self, ctx: Context, bars: Sequence[Bar]) -> None:
        spot = ctx.price(self.underlying)
        if not spot > 0 or ctx.open_orders():
            return  # no price yet, or orders of the last decision still working
        multiplier = self._universe[0].multiplier
        want = Decimal(self.contracts) * multiplier
        held = ctx.position(self.underlying).quantity
        if held < want:
            ctx.buy(self.underlying, want - held)
            return
        now = ctx.now_ns
        short = [
            (o, -ctx.position(o).quantity) for o in self._universe if ctx.position(o).quantity < 0
        ]
        rolling = False
        for call, quantity in short:
            days_left = (call.expiry_ns - now) / _DAY_NS
            delta = self._delta(ctx, call, spot)
            why = ""
            if days_left <= self.roll_days:
                why = f"{days_left:.1f} days left"
            elif delta is not None and delta >= self.roll_delta:
                why = f"delta {delta:.2f}"
            if why:
                ctx.buy(call, quantity)
                self.rolled.append((now, call, why))
                rolling = True
        if short and not rolling:
            return  # the call written stays
        best = self._choose(ctx, spot, now)
        if best is not None:
            ctx.sell(best, self.contracts)
            self.written.append((now, best))

    def _delta(self, ctx: Context, call: Option, spot: float) -> float | None:
        from ibkrfw.options import option_delta

        price = ctx.price(call)
        return option_delta(
            call, spot=spot, ts_ns=ctx.now_ns, price=price if price > 0 else None,
            volatility=self.volatility, rate=self.rate,
        )  # fmt: skip

    def _choose(self, ctx: Context, spot: float, now: int) -> Option | None:
        best: tuple[float, int, Option] | None = None
        for call in self._universe:
            days_left = (call.expiry_ns - now) / _DAY_NS
            if not self.min_days <= days_left <= self.max_days:
                continue
            if not ctx.price(call) >= self.min_premium:
                continue
            delta = self._delta(ctx, call, spot)
            if delta is None or math.isnan(delta):
                continue
            key = (abs(delta - self.target_delta), call.expiry_ns, call)
            if best is None or key[:2] < best[:2]:
                best = key
        return None if best is None else best[2]
