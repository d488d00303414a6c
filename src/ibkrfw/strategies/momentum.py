"""Momentum: ride what has been rising, on one instrument or across a universe."""

from __future__ import annotations

from collections.abc import Sequence
from typing import final

import attrs
from typing_extensions import override

from ibkrfw.errors import ConfigError
from ibkrfw.indicators.core import Indicator
from ibkrfw.indicators.technical import RateOfChange
from ibkrfw.model.data import Bar
from ibkrfw.model.instruments import Instrument
from ibkrfw.portfolio.rebalance import Frequency, Schedule, plan_rebalance
from ibkrfw.strategies._params import int_at_least, optional_fraction
from ibkrfw.strategy import Context, Strategy

__all__ = ["CrossSectionalMomentum", "TimeSeriesMomentum"]


@final
@attrs.define
class TimeSeriesMomentum(Strategy):
    """Hold an instrument while its return over ``lookback`` bars is above ``threshold``.

    Each instrument is judged on its own past: long while the ``lookback``-bar return is
    above ``threshold``, flat (or short, unless ``long_only``) while it is below
    ``-threshold``, and unchanged in between. Only a change of trend trades: a position is
    sized once, when it is entered.

    Args:
        lookback: The bars the return is measured over.
        threshold: The return needed to act (0.0: its sign).
        long_only: Go flat instead of short on a falling trend.
        weight: The share of equity per instrument, in (0, 1]; ``1 / number of instruments``
            if None.

    Raises:
        ConfigError: if ``lookback`` is not a positive int, ``threshold`` is negative or
            ``weight`` is not in (0, 1].

    Example:
        >>> from ibkrfw import Engine
        >>> from ibkrfw.data import sample_feed
        >>> from ibkrfw.sim import SimBroker
        >>> result = Engine(TimeSeriesMomentum(lookback=60), sample_feed(["ACME"]),
        ...                 SimBroker()).run()
        >>> int(result.stats["Trades"]) > 0
        True
    """

    lookback: int = attrs.field(default=60, validator=int_at_least(1))
    threshold: float = 0.0
    long_only: bool = True
    weight: float | None = attrs.field(default=None, validator=optional_fraction)
    _share: float = attrs.field(default=1.0, init=False, repr=False)
    _state: dict[Instrument, int] = attrs.field(factory=dict, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if not (isinstance(self.threshold, int | float) and self.threshold >= 0):
            raise ConfigError(f"threshold must be a number of at least 0, got {self.threshold!r}")

    @override
    def indicators(self) -> dict[str, Indicator]:
        """The return over ``lookback`` bars."""
        return {"momentum": RateOfChange(self.lookback)}

    @override
    def on_start(self, ctx: Context) -> None:
        self._share = self.weight if self.weight is not None else 1.0 / len(ctx.instruments)
        self._state = {}

    @override
    def on_bar(self, ctx: Context, bar: Bar) -> None:
        inst = bar.instrument
        momentum = ctx.indicator(inst, "momentum")
        if not momentum.ready:
            return
        if momentum.value > self.threshold:
            state = 1
        elif momentum.value < -self.threshold:
            state = 0 if self.long_only else -1
        else:
            return
        if self._state.get(inst, 0) == state:
            return  # only a change of trend trades (no re-sizing at every bar)
        self._state[inst] = state
        ctx.order_target_percent(inst, state * self._share)


@final
@attrs.define
class CrossSectionalMomentum(Strategy):
    """Rotate into the ``top`` instruments of a universe by their return over ``lookback`` bars.

    At the first bar of each period (``every``), once every instrument of the universe has a
    ``lookback``-bar return, the strategy ranks them and holds the ``top`` best in equal
    weights (of ``exposure`` of equity), selling the rest: sells first, buys within the cash
    (see :func:`~ibkrfw.portfolio.plan_rebalance`). Instruments whose return is not above
    ``min_return`` are not held even if they rank. It decides on whole time slices
    (:meth:`~ibkrfw.Strategy.on_slice`), so every instrument is ranked at the same time.

    Args:
        lookback: The bars the return is measured over.
        top: How many instruments to hold.
        every: ``"daily"``, ``"weekly"``, ``"monthly"`` or ``"quarterly"``.
        exposure: The share of equity invested (the rest stays in cash).
        min_return: The least return an instrument must have to be held (None: any).
        tz: The time zone the schedule counts in.

    Example:
        >>> from ibkrfw import Engine
        >>> from ibkrfw.data import SAMPLE_SYMBOLS, sample_feed
        >>> from ibkrfw.sim import SimBroker
        >>> s = CrossSectionalMomentum(lookback=60, top=2)
        >>> result = Engine(s, sample_feed(SAMPLE_SYMBOLS), SimBroker()).run()
        >>> len(s.holdings) > 10 and all(len(h) <= 2 for _, h in s.holdings)
        True
    """

    lookback: int = attrs.field(default=120, validator=int_at_least(1))
    top: int = attrs.field(default=3, validator=int_at_least(1))
    every: Frequency = "monthly"
    exposure: float = 0.98
    min_return: float | None = None
    tz: str = "America/New_York"
    _schedule: Schedule | None = attrs.field(default=None, init=False, repr=False)
    holdings: list[tuple[int, tuple[str, ...]]] = attrs.field(factory=list, init=False, repr=False)
    """The time (UTC ns) and the instruments chosen of each rebalance."""

    def __attrs_post_init__(self) -> None:
        if not 0 < self.exposure <= 1:
            raise ConfigError(f"exposure must be in (0, 1], got {self.exposure!r}")
        self._schedule = Schedule(self.every, self.tz)

    @override
    def indicators(self) -> dict[str, Indicator]:
        """The return over ``lookback`` bars."""
        return {"momentum": RateOfChange(self.lookback)}

    @override
    def on_start(self, ctx: Context) -> None:
        """Check the universe is larger than ``top``."""
        if self.top > len(ctx.instruments):
            raise ConfigError(
                f"top={self.top} but the universe has {len(ctx.instruments)} instruments"
            )
        self._schedule = Schedule(self.every, self.tz)
        self.holdings = []

    @override
    def on_slice(self, ctx: Context, bars: Sequence[Bar]) -> None:
        """Rank the universe and rotate, at the first bar of each period."""
        assert self._schedule is not None
        if not self._schedule.due(ctx.now_ns):
            return
        returns: dict[Instrument, float] = {}
        for inst in ctx.instruments:
            momentum = ctx.indicator(inst, "momentum")
            if not momentum.ready or momentum.value != momentum.value:
                return  # not every instrument can be ranked yet: wait for the next period
            returns[inst] = momentum.value
        ranked = sorted(returns, key=lambda i: (-returns[i], i.id))[: self.top]
        chosen = [i for i in ranked if self.min_return is None or returns[i] > self.min_return]
        weight = self.exposure / self.top
        targets = dict.fromkeys(chosen, weight)
        plan = plan_rebalance(ctx.portfolio, targets, tag="rotation")
        self.holdings.append((ctx.now_ns, tuple(i.id for i in chosen)))
        for request in plan.orders:
            ctx.submit(request)
