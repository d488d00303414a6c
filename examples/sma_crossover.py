"""A moving-average crossover, written from scratch, backtested on the shipped sample data.

Run it with ``python examples/sma_crossover.py``. The test suite runs it too and pins its
statistics, so it never rots.
"""

from __future__ import annotations

import attrs

from ibkrfw import Bar, Context, Engine, Strategy
from ibkrfw.data import sample_feed
from ibkrfw.indicators import SMA
from ibkrfw.sim import PerShareCommission, SimBroker


@attrs.define
class SmaCross(Strategy):
    """Hold the instrument while its fast average is above its slow one."""

    fast: int = attrs.field(default=10, validator=attrs.validators.gt(0))
    slow: int = attrs.field(default=30, validator=attrs.validators.gt(0))
    _fast_ma: SMA = attrs.field(init=False, repr=False)
    _slow_ma: SMA = attrs.field(init=False, repr=False)

    def on_start(self, ctx: Context) -> None:
        self._fast_ma = SMA(self.fast)
        self._slow_ma = SMA(self.slow)

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        fast = self._fast_ma.update(bar.close)
        slow = self._slow_ma.update(bar.close)
        if not self._slow_ma.ready:
            return
        holding = not ctx.position(bar.instrument).is_flat
        if fast > slow and not holding:
            ctx.order_target_percent(bar.instrument, 0.95)
        elif fast < slow and holding:
            ctx.order_target_percent(bar.instrument, 0.0)


def main() -> None:
    broker = SimBroker(cash=100_000, commission=PerShareCommission("0.005", minimum=1))
    result = Engine(SmaCross(fast=20, slow=50), sample_feed(["ACME"]), broker).run()
    print(result.stats.to_string())
    print()
    print(result.trades.tail().to_string())


if __name__ == "__main__":
    main()
