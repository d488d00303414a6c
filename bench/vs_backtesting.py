"""ibkrfw and backtesting.py side by side, in one process, interleaved, checked to agree.

A 10/30 SMA crossover, long only, 100 shares, market orders filled at the next bar's open, no
commission, on the same generated one-minute bars. Rows:

* ``readme``: the README's way, two ``SMA`` objects updated in ``on_bar`` and
  ``ctx.position()`` read on every bar;
* ``declared``: the same indicators declared in ``Strategy.indicators()``, read with
  ``ctx.indicator()``;
* ``empty``: an empty ``on_bar`` (the engine's own cost per bar: its floor);
* ``every_bar``: buys 1 share on one bar and sells it on the next, an order every bar (prints
  the average cost of an order's whole life: submit, risk, match, fill, book, events, result,
  over the empty row's cost per bar);
* ``backtesting.py``: the same crossover in backtesting.py (installed with the ``bench``
  extra), its indicators precomputed before the run (not timed) as its docs do, with
  ibkrfw's ``SMA`` so that both see the same averages to the last bit.

The rows run in turns in one process (``--rounds`` rounds) and their CPU time is measured with
:func:`time.process_time` (the machine is shared, the wall clock is noisy); the median round is
printed. The crossover rows must agree with backtesting.py on the number of round trips and on
the final equity to 1e-9, or the bench stops with an error.

``--rss`` instead runs each row once in a fresh process and prints its peak RSS (data
generation included, as a user's script would have it).

    python bench/vs_backtesting.py [--bars 1000000] [--rounds 3] [--rss]
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import resource
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Mapping

import attrs
import numpy as np
import pandas as pd

from ibkrfw import Bar, Context, Engine, Stock, Strategy
from ibkrfw.data import generate_bars
from ibkrfw.indicators import SMA, Indicator
from ibkrfw.sim import DataFrameFeed, SimBroker

CASH = 100_000
SIZE = 100
INST = Stock("SYN")


@attrs.define
class Readme(Strategy):
    """The README's way: indicators as fields, ``ctx.position()`` every bar."""

    _f: SMA = attrs.field(init=False)
    _s: SMA = attrs.field(init=False)

    def on_start(self, ctx: Context) -> None:
        self._f, self._s = SMA(10), SMA(30)

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        fast, slow = self._f.update(bar.close), self._s.update(bar.close)
        if not self._s.ready:
            return
        held = ctx.position(bar.instrument).quantity
        if fast > slow:
            if not held:
                ctx.buy(bar.instrument, SIZE)
        elif held:
            ctx.sell(bar.instrument, held)


class Declared(Strategy):
    """The same crossover with its indicators declared, as the docs recommend."""

    def indicators(self) -> Mapping[str, Indicator]:
        return {"fast": SMA(10), "slow": SMA(30)}

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        slow = ctx.indicator(bar.instrument, "slow")
        if not slow.ready:
            return
        held = ctx.position(bar.instrument).quantity
        if ctx.indicator(bar.instrument, "fast").value > slow.value:
            if not held:
                ctx.buy(bar.instrument, SIZE)
        elif held:
            ctx.sell(bar.instrument, held)


class Empty(Strategy):
    """Nothing per bar: what is left is the engine's own cost."""

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        pass


@attrs.define
class EveryBar(Strategy):
    """An order on every bar: buy one share, sell it on the next bar."""

    _long: bool = attrs.field(default=False, init=False)

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        if self._long:
            ctx.sell(bar.instrument, 1)
        else:
            ctx.buy(bar.instrument, 1)
        self._long = not self._long


def make_data(bars: int) -> pd.DataFrame:
    return generate_bars(["SYN"], freq="1min", periods=bars, seed=1).set_index("timestamp")


def run_ibkrfw(strategy: Strategy, frame: pd.DataFrame) -> dict[str, float]:
    feed = DataFrameFeed(frame, INST)  # validation and loading: not timed
    engine = Engine(strategy, feed, SimBroker(CASH))
    start = time.process_time()
    result = engine.run()
    cpu = time.process_time() - start
    return {
        "cpu": cpu,
        "trades": float(result.stats["Trades"]),
        "orders": float(len(result.order_list)),
        "equity": float(result.stats["Final equity"]),
    }


def run_backtesting(frame: pd.DataFrame) -> dict[str, float]:
    from backtesting import Backtest
    from backtesting import Strategy as BtStrategy

    # The averages ibkrfw's SMA computes, to the last bit: pandas' rolling mean differs in the
    # last bits, and where the two averages tie (they do, on prices in cents) a crossover flips.
    closes = frame["close"].tolist()
    fast, slow = SMA(10), SMA(30)
    fast_values = np.array([fast.update(x) for x in closes])
    slow_values = np.array([slow.update(x) for x in closes])
    # backtesting.py first calls next() one bar after its indicators' first value, ibkrfw's
    # on_bar sees the first bar where they are ready: a value one bar early (never read by
    # next()) makes backtesting.py decide on that bar too.
    slow_values[28] = 0.0

    class Cross(BtStrategy):  # type: ignore[misc]
        def init(self) -> None:
            self.fast = self.I(lambda: fast_values)
            self.slow = self.I(lambda: slow_values)

        def next(self) -> None:
            if self.fast[-1] > self.slow[-1]:
                if not self.position:
                    self.buy(size=SIZE)
            elif self.position:
                self.position.close()

    data = frame.rename(columns=str.capitalize)[["Open", "High", "Low", "Close", "Volume"]]
    data.index = data.index.tz_localize(None)
    start = time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stats = Backtest(data, Cross, cash=CASH, commission=0.0).run()
    cpu = time.process_time() - start
    return {
        "cpu": cpu,
        "trades": float(stats["# Trades"]),
        "orders": float("nan"),
        "equity": float(stats["Equity Final [$]"]),
    }


ROWS: dict[str, Callable[[pd.DataFrame], dict[str, float]]] = {
    "readme": lambda f: run_ibkrfw(Readme(), f),
    "declared": lambda f: run_ibkrfw(Declared(), f),
    "empty": lambda f: run_ibkrfw(Empty(), f),
    "every_bar": lambda f: run_ibkrfw(EveryBar(), f),
    "backtesting.py": run_backtesting,
}


def check_agree(results: Mapping[str, dict[str, float]]) -> None:
    ref = results["backtesting.py"]
    for name in ("readme", "declared"):
        got = results[name]
        if got["trades"] != ref["trades"] or not math.isclose(
            got["equity"], ref["equity"], rel_tol=0, abs_tol=1e-9
        ):
            raise SystemExit(
                f"{name} disagrees with backtesting.py: {got['trades']:.0f} round trips and "
                f"final equity {got['equity']!r}, against {ref['trades']:.0f} and "
                f"{ref['equity']!r}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bars", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", default=",".join(ROWS), help="comma-separated rows to run")
    parser.add_argument("--rss", action="store_true", help="peak RSS of each row, fresh process")
    parser.add_argument("--child", choices=list(ROWS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    rows = args.rows.split(",")
    if args.child:
        out = ROWS[args.child](make_data(args.bars))
        out["rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(out))
        return
    print(f"python {sys.version.split()[0]}, {args.bars:,} bars")
    if args.rss:
        for name in rows:
            cmd = [sys.executable, __file__, "--child", name, "--bars", str(args.bars)]
            done = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=1800)
            out = json.loads(done.stdout)
            print(f"{name:15} peak RSS {out['rss_mib']:8,.0f} MiB")
        return
    small = make_data(2_000)
    for name in rows:  # imports, the exchange calendar's first load: once per process
        ROWS[name](small)
    frame = make_data(args.bars)
    cpus: dict[str, list[float]] = {name: [] for name in rows}
    last: dict[str, dict[str, float]] = {}
    for _ in range(args.rounds):
        for name in rows:
            gc.collect()
            last[name] = ROWS[name](frame)
            cpus[name].append(last[name]["cpu"])
    if "backtesting.py" in last and {"readme", "declared"} <= last.keys():
        check_agree(last)
        print("readme and declared agree with backtesting.py (round trips, final equity 1e-9)")
    print(f"{'row':15} {'bars/s (CPU)':>14} {'us/bar':>8} {'round trips':>12} {'final equity':>16}")
    rate = {name: args.bars / statistics.median(cpus[name]) for name in rows}
    for name in rows:
        r = last[name]
        print(
            f"{name:15} {rate[name]:14,.0f} {1e6 / rate[name]:8.3f} {r['trades']:12,.0f} "
            f"{r['equity']:16,.2f}"
        )
    if "backtesting.py" in rate:
        for name in ("readme", "declared"):
            if name in rate:
                print(f"{name} / backtesting.py: {rate[name] / rate['backtesting.py']:.2f}x")
    if {"every_bar", "empty"} <= rate.keys():
        per_order = (1e6 / rate["every_bar"] - 1e6 / rate["empty"]) / (
            last["every_bar"]["orders"] / args.bars
        )
        print(f"an order's whole life: {per_order:.2f} us on average (every_bar over empty)")


if __name__ == "__main__":
    main()
