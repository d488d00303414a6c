"""Decide on daily bars, time the entry on minutes: several bar sizes of one instrument.

The engine gets one-minute bars and builds the hourly and daily bars the strategy declares
(``Strategy.bar_sizes``), each handed to ``on_bar`` once complete. The daily trend (the close
above its 3-day average) says whether to be long; the hourly bar says when: the strategy
buys on the first hour that closes above the hour before, and sells when the day turns. Run
it with ``python examples/multi_timeframe.py``; the test suite runs it and pins its result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import attrs

from ibkrfw import Bar, Context, Engine, Instrument, Stock, Strategy
from ibkrfw.data import generate_bars
from ibkrfw.indicators import SMA, Indicator
from ibkrfw.sim import DataFrameFeed, SimBroker

ACME = Stock("ACME")


@attrs.define
class DailyTrendHourlyEntry(Strategy):
    """Long while the daily close is above its average, entering on a rising hour."""

    days: int = attrs.field(default=3, validator=attrs.validators.gt(0))
    calls: dict[str, int] = attrs.field(factory=dict, init=False)

    def bar_sizes(self) -> Mapping[Instrument, Sequence[str]]:
        return {ACME: ["1h", "1d"]}

    def indicators(self) -> Mapping[str, Indicator]:
        return {"trend": SMA(self.days)}  # one per bar size; read on the days

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        size = ctx.bar_size or "?"
        self.calls[size] = self.calls.get(size, 0) + 1
        trend = ctx.indicator(ACME, "trend", bar_size="1d")
        up = trend.ready and ctx.history(ACME, 1, bar_size="1d").close[-1] > trend.value
        flat = ctx.position(ACME).is_flat
        if size == "1d" and not up and not flat:
            ctx.order_target_percent(ACME, 0.0)
        elif size == "1h" and up and flat:
            hours = ctx.history(ACME, 2, bar_size="1h")
            if len(hours) == 2 and hours.close[-1] > hours.close[-2]:
                ctx.order_target_percent(ACME, 0.95)


def main() -> None:
    minutes = generate_bars(["ACME"], freq="1min", periods=390 * 12, seed=7)
    feed = DataFrameFeed(minutes.set_index("timestamp").drop(columns="symbol"), ACME)
    strategy = DailyTrendHourlyEntry()
    result = Engine(strategy, feed, SimBroker(cash=100_000)).run()
    calls = strategy.calls
    print(f"on_bar: {calls['1min']} minutes, {calls['1h']} hours, {calls['1d']} days")
    print(f"{len(result.fills)} fills; final equity {result.stats['Final equity']:,.2f}")


if __name__ == "__main__":
    main()
