"""Moving-average crossover."""

from __future__ import annotations

from typing import final

import attrs
from typing_extensions import override

from ibkrfw.errors import ConfigError
from ibkrfw.indicators.core import Indicator
from ibkrfw.indicators.moving import EMA, SMA
from ibkrfw.model.data import Bar
from ibkrfw.model.instruments import Instrument
from ibkrfw.strategies._params import int_at_least, optional_fraction
from ibkrfw.strategy import Context, Strategy

__all__ = ["MovingAverageCrossover"]


@final
@attrs.define
class MovingAverageCrossover(Strategy):
    """Go long when the fast average crosses above the slow one; exit (or go short) below.

    Only crosses trade: when the averages become ready the strategy notes which is above and
    waits for the next cross.

    Every instrument of the run is traded independently with an equal share of equity, unless
    ``weight`` fixes the share. Orders are market orders, so they fill at the next bar's open.

    Args:
        fast: Period of the fast average.
        slow: Period of the slow average (greater than ``fast``).
        exponential: Use exponential instead of simple averages.
        long_only: Exit to flat below the slow average instead of going short.
        weight: Fraction of equity per instrument; ``None`` for ``1 / number of instruments``.

    Raises:
        ConfigError: if the periods are not positive ints with ``fast < slow``, or
            ``weight`` is not in (0, 1].
    """

    fast: int = attrs.field(default=10, validator=int_at_least(1))
    slow: int = attrs.field(default=30, validator=int_at_least(1))
    exponential: bool = False
    long_only: bool = True
    weight: float | None = attrs.field(default=None, validator=optional_fraction)
    _above: dict[Instrument, bool] = attrs.field(factory=dict, init=False, repr=False)
    _share: float = attrs.field(default=1.0, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.fast >= self.slow:
            raise ConfigError(f"fast ({self.fast}) must be smaller than slow ({self.slow})")

    @override
    def indicators(self) -> dict[str, Indicator]:
        """The fast and the slow average."""
        kind = EMA if self.exponential else SMA
        return {"fast": kind(self.fast), "slow": kind(self.slow)}

    @override
    def on_start(self, ctx: Context) -> None:
        self._above = {}
        self._share = self.weight if self.weight is not None else 1.0 / len(ctx.instruments)

    @override
    def on_bar(self, ctx: Context, bar: Bar) -> None:
        inst = bar.instrument
        slow = ctx.indicator(inst, "slow")
        if not slow.ready:
            return
        above = ctx.indicator(inst, "fast").value > slow.value
        previous = self._above.get(inst)
        if above is previous:
            return
        self._above[inst] = above
        if previous is None:
            return  # the first ready bar sets the state; only a cross trades
        if above:
            ctx.order_target_percent(inst, self._share)
        else:
            ctx.order_target_percent(inst, 0.0 if self.long_only else -self._share)
