"""Engine throughput: a 10/30 SMA crossover on 1,000,000 one-minute bars.

Long only, all in, market orders filled at the next bar's open, zero commission. The strategy is
written with the public API as a user would write it (incremental SMA indicators). Prints bars
per second (median of the runs; data loading excluded), round trips, final equity and peak RSS.

    python bench/engine_throughput.py [--bars 1000000] [--runs 3]
"""

from __future__ import annotations

import argparse
import gc
import resource
import statistics
import time

import attrs

from ibkrfw import Bar, Context, Engine, Stock, Strategy
from ibkrfw.data import generate_bars
from ibkrfw.indicators import SMA
from ibkrfw.sim import DataFrameFeed, SimBroker


@attrs.define
class SmaCross(Strategy):
    fast: int = 10
    slow: int = 30
    _fast: SMA = attrs.field(init=False)
    _slow: SMA = attrs.field(init=False)
    _above: bool | None = attrs.field(default=None, init=False)

    def on_start(self, ctx: Context) -> None:
        self._fast = SMA(self.fast)
        self._slow = SMA(self.slow)

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        fast = self._fast.update(bar.close)
        slow = self._slow.update(bar.close)
        if slow != slow:  # NaN while warming up
            return
        above = fast > slow
        if above is self._above:
            return
        previous, self._above = self._above, above
        if previous is not None:
            ctx.order_target_percent(bar.instrument, 1.0 if above else 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-gc", action="store_true", help="disable the cyclic GC (diagnosis)")
    args = parser.parse_args()

    if args.no_gc:
        gc.disable()
    inst = Stock("SYN")
    frame = generate_bars(["SYN"], freq="1min", periods=args.bars, seed=1).set_index("timestamp")
    rates = []
    result = None
    for _ in range(args.runs):
        result = None
        gc.collect()  # start each run from the same heap
        feed = DataFrameFeed(frame, inst)  # validation and loading: not timed
        engine = Engine(SmaCross(), feed, SimBroker(100_000))
        start = time.perf_counter()
        result = engine.run()
        elapsed = time.perf_counter() - start
        rates.append(args.bars / elapsed)
        del engine, feed
    assert result is not None
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"bars:            {args.bars:,}")
    print(f"runs:            {', '.join(f'{r:,.0f}' for r in rates)} bars/s")
    print(f"median:          {statistics.median(rates):,.0f} bars/s")
    print(f"round trips:     {int(result.stats['Trades']):,}")
    print(f"orders:          {len(result.order_list):,}")
    print(f"final equity:    {result.stats['Final equity']:,.2f}")
    print(f"peak RSS:        {peak_mb:,.0f} MB")


if __name__ == "__main__":
    main()
