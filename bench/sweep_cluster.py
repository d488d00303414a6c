"""Sweeps on a Dask cluster: 500 parameter sets on a LocalCluster of 1 and 2 worker processes.

Writes ``--bars`` one-minute bars to a Parquet store in a temporary directory, then runs the
same grid of ``MovingAverageCrossover`` (25 fast x 20 slow windows) on a
``LocalCluster(n_workers=N, processes=True, threads_per_worker=1)`` on 127.0.0.1, for N = 1
and 2, two ways:

- **by reference**: the feed is a :class:`~ibkrfw.optimize.StoredBars`; each worker process
  reads the bars from the store itself, once;
- **scattered**: the bars are in memory here and the setup (bars included) is scattered to
  every worker once (``Client.scatter(..., broadcast=True)``), as a sweep on a cluster did
  before.

It prints the sets per second, the speed-up of 2 workers over 1, and the bytes sent per task:
the task's own message (the function and its arguments, pickled as Dask pickles them) plus the
setup shipped to each worker, spread over the tasks. The results of every run must equal
the serial ones exactly; the script says so or fails. The machine's other load counts: say
what else ran when quoting the figures.

    python bench/sweep_cluster.py [--bars 20000]
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import tempfile
import time

import pandas as pd

from ibkrfw import Stock
from ibkrfw.data import ParquetBarStore, generate_bars
from ibkrfw.optimize import Backtest, Runner, StoredBars, grid, run_sweep
from ibkrfw.optimize.sweep import run_one
from ibkrfw.strategies import MovingAverageCrossover

FAST = list(range(5, 55, 2))  # 25 values
SLOW = list(range(60, 260, 10))  # 20 values


def task_bytes(runner: Runner, sets: list[dict[str, object]]) -> float:
    """The mean size of a task's message: the function and its arguments, as Dask pickles."""
    from distributed.protocol.pickle import dumps

    sizes = [len(dumps((run_one, i, dict(p), runner.shipped, None))) for i, p in enumerate(sets)]
    return sum(sizes) / len(sizes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=20_000)
    args = parser.parse_args()
    import distributed

    sets = grid({"fast": FAST, "slow": SLOW})
    frame = generate_bars(["SYN"], freq="1min", periods=args.bars, seed=3).set_index("timestamp")
    bars = frame.drop(columns="symbol")
    print(
        f"python {sys.version.split()[0]}, distributed {distributed.__version__}, "
        f"{os.cpu_count()} CPUs, {len(bars):,} bars, {len(sets)} parameter sets"
    )
    with tempfile.TemporaryDirectory() as root:
        store = ParquetBarStore(root)
        store.write(Stock("SYN"), "1min", bars)
        setups = {
            "by reference": Backtest(
                MovingAverageCrossover,
                [StoredBars(f"file://{root}", "SYN", "1min")],
                objective="Total return [%]",
            ),
            "scattered": Backtest(
                MovingAverageCrossover,
                [store.feed("SYN.SMART", "1min")],
                objective="Total return [%]",
            ),
        }
        start = time.perf_counter()
        serial = run_sweep(setups["scattered"], sets[:50], workers=1)
        per_set_s = (time.perf_counter() - start) / 50
        print(f"one set in this process: {per_set_s * 1e3:.1f} ms")
        rates: dict[tuple[str, int], float] = {}
        for n in (1, 2):
            with (
                distributed.LocalCluster(
                    n_workers=n, processes=True, threads_per_worker=1, host="127.0.0.1",
                    dashboard_address="127.0.0.1:0", silence_logs=40,
                ) as cluster,
                distributed.Client(cluster) as client,
            ):  # fmt: skip
                client.run(lambda: __import__("ibkrfw.optimize"))  # imports out of the timing
                for way, setup in setups.items():
                    setup_bytes = len(pickle.dumps(setup))
                    start = time.perf_counter()
                    with Runner(setup, client.get_executor()) as runner:
                        rows = runner.run(sets)
                    took = time.perf_counter() - start
                    rate = len(sets) / took
                    rates[(way, n)] = rate
                    per_task = task_bytes(runner, sets)
                    shipped = setup_bytes * n / len(sets)
                    print(
                        f"{n} worker{'s' if n > 1 else ' '} {way:>12}: {took:6.2f} s, "
                        f"{rate:6.1f} sets/s; bytes per task {per_task + shipped:10,.0f} "
                        f"(task {per_task:,.0f} + setup {setup_bytes:,} B x {n} worker(s) "
                        f"/ {len(sets)} tasks)"
                    )
                    expected = serial.frame.sort_index()
                    found = pd.DataFrame(rows).set_index("_index").loc[expected.index]
                    pd.testing.assert_frame_equal(
                        found[expected.columns], expected, check_exact=True, check_names=False
                    )
    for way in setups:
        print(f"speed-up of 2 workers over 1, {way}: {rates[(way, 2)] / rates[(way, 1)]:.2f}")
    print("every run's rows equal the serial ones exactly")
    return 0


if __name__ == "__main__":
    sys.exit(main())
