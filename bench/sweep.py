"""Sweep throughput: 64 parameter sets of the SMA crossover over 250,000 bars.

Runs the same 8 x 8 grid (fast 5..40, slow 50..400) of ``MovingAverageCrossover`` on 250,000
one-minute bars serially (in this process) and on a process pool of 2 workers (the data sent
to each worker once, through the pool's initializer), and prints both times and the speed-up.
The results of the two must be identical; the script says so or fails.

    python bench/sweep.py [--bars 250000] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import pandas as pd

from ibkrfw import Stock
from ibkrfw.data import generate_bars
from ibkrfw.optimize import Backtest, grid, run_sweep
from ibkrfw.sim import DataFrameFeed
from ibkrfw.strategies import MovingAverageCrossover


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=250_000)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    frame = generate_bars(["SYN"], freq="1min", periods=args.bars, seed=3).set_index("timestamp")
    feed = DataFrameFeed(frame.drop(columns="symbol"), Stock("SYN"))
    setup = Backtest(MovingAverageCrossover, [feed], objective="Total return [%]")
    sets = grid({"fast": [5, 10, 15, 20, 25, 30, 35, 40],
                 "slow": [50, 100, 150, 200, 250, 300, 350, 400]})  # fmt: skip
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {len(frame):,} bars, "
          f"{len(sets)} parameter sets")  # fmt: skip

    start = time.perf_counter()
    serial = run_sweep(setup, sets, workers=1)
    serial_s = time.perf_counter() - start
    rate = len(sets) * len(frame) / serial_s
    print(f"serial:            {serial_s:7.2f} s  ({rate:,.0f} bars/s)")

    start = time.perf_counter()
    pooled = run_sweep(setup, sets, workers=args.workers)
    pooled_s = time.perf_counter() - start
    print(f"{args.workers} workers (pool): {pooled_s:7.2f} s  (worker start-up included)")
    print(f"speed-up:          {serial_s / pooled_s:7.2f}")

    columns = ["fast", "slow", "objective", "Trades"]
    pd.testing.assert_frame_equal(
        serial.frame[columns].sort_index(), pooled.frame[columns].sort_index()
    )
    print("the pool's results equal the serial ones; best:", serial.best_params)
    return 0


if __name__ == "__main__":
    sys.exit(main())
