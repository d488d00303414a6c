"""Engine throughput: a 10/30 SMA crossover on 1,000,000 one-minute bars.

Long only, all in, market orders filled at the next bar's open. The strategy is written with the
public API as a user would write it (incremental SMA indicators). Two rows:

* default: zero commission, no slippage, no volume limit;
* realistic: 2 bps slippage, IBKR Pro tiered commissions, at most 10 % of each bar's volume.

Prints bars per second (median of the runs, data loading excluded), round trips, final equity
and peak RSS. Each run is a fresh process, so one run's heap does not slow the next.

    python bench/engine_throughput.py [--bars 1000000] [--runs 3] [--progress]

``--progress`` runs with ``Engine.run(progress=True)``, to check that the progress bar costs
nothing per bar (its lines go to stderr, which the benchmark discards).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import attrs

from ibkrfw import Bar, Context, Engine, Stock, Strategy
from ibkrfw.data import generate_bars
from ibkrfw.indicators import SMA
from ibkrfw.sim import DataFrameFeed, FixedBpsSlippage, IBKRTieredCommission, SimBroker


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


def broker(realistic: bool) -> SimBroker:
    if not realistic:
        return SimBroker(100_000)
    return SimBroker(
        100_000,
        commission=IBKRTieredCommission(),
        slippage=FixedBpsSlippage(2),
        volume_limit=0.1,
    )


def one_run(bars: int, realistic: bool, progress: bool = False) -> dict[str, float]:
    inst = Stock("SYN")
    frame = generate_bars(["SYN"], freq="1min", periods=bars, seed=1).set_index("timestamp")
    feed = DataFrameFeed(frame, inst)  # generation, validation and loading: not timed
    del frame
    engine = Engine(SmaCross(), feed, broker(realistic))
    start = time.perf_counter()
    result = engine.run(progress=progress)
    elapsed = time.perf_counter() - start
    return {
        "rate": bars / elapsed,
        "trades": float(result.stats["Trades"]),
        "orders": float(len(result.order_list)),
        "fills": float(len(result.fill_list)),
        "equity": float(result.stats["Final equity"]),
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--progress", action="store_true", help="run with a progress bar")
    parser.add_argument("--child", choices=["default", "realistic"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one_run(args.bars, args.child == "realistic", args.progress)))
        return
    shown = ", progress bar on" if args.progress else ""
    print(f"python {sys.version.split()[0]}, {args.bars:,} bars, median of {args.runs} runs{shown}")
    for row in ("default", "realistic"):
        runs = []
        for _ in range(args.runs):
            out = subprocess.run(
                [sys.executable, __file__, "--child", row, "--bars", str(args.bars)]
                + (["--progress"] if args.progress else []),
                capture_output=True,
                text=True,
                check=True,
                timeout=900,
            )
            runs.append(json.loads(out.stdout))
        last = runs[-1]
        rates = ", ".join(f"{r['rate']:,.0f}" for r in runs)
        print(f"\n[{row}]")
        print(f"runs:            {rates} bars/s")
        print(f"median:          {statistics.median(r['rate'] for r in runs):,.0f} bars/s")
        print(f"round trips:     {last['trades']:,.0f}")
        print(f"orders:          {last['orders']:,.0f}")
        print(f"fills:           {last['fills']:,.0f}")
        print(f"final equity:    {last['equity']:,.2f}")
        print(f"peak RSS:        {max(r['rss_mb'] for r in runs):,.0f} MB (largest of the runs)")


if __name__ == "__main__":
    main()
