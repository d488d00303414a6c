"""Write and read 10 million one-minute bars in the SQLite and Parquet bar stores.

The data: 10 instruments x 10 years x 252 sessions x 390 minutes (9,828,000 bars), written
one instrument-year (98,280 bars) per call, as a downloader would. Then every instrument is
read back whole, and one instrument-year is read into a DataFrame (best and median of 5).

Run: python bench/store_throughput.py [--instruments 10] [--years 10] [--only sqlite|parquet]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np
import pandas as pd

from ibkrfw import Stock
from ibkrfw.data import BarStore, ParquetBarStore, SQLiteBarStore

MINUTES, SESSIONS = 390, 252
NS_MIN = 60 * 10**9


def year_of_bars(year: int, seed: int) -> pd.DataFrame:
    days = pd.bdate_range(f"{year}-01-02", periods=SESSIONS, tz="UTC") + pd.Timedelta("14h30m")
    ts = (days.as_unit("ns").asi8[:, None] + np.arange(MINUTES) * NS_MIN).ravel()
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.0005, len(ts))))
    spread = close * rng.uniform(0, 0.001, len(ts))
    opens = np.roll(close, 1)
    opens[0] = close[0]
    index = pd.DatetimeIndex(ts.astype("datetime64[ns]"), name="timestamp").tz_localize("UTC")
    return pd.DataFrame(
        {
            "open": opens,
            "high": np.maximum(opens, close) + spread,
            "low": np.minimum(opens, close) - spread,
            "close": close,
            "volume": rng.integers(100, 10_000, len(ts)).astype(float),
        },
        index=index,
    )


def size_of(path: str) -> int:
    if os.path.isfile(path):
        return sum(os.path.getsize(p) for p in (path, f"{path}-wal") if os.path.exists(p))
    return sum(
        os.path.getsize(os.path.join(folder, f))
        for folder, _, files in os.walk(path)
        for f in files
    )


def run(kind: str, instruments: int, years: int, root: str) -> None:
    path = os.path.join(root, "bars.sqlite" if kind == "sqlite" else "parquet")
    store: BarStore = SQLiteBarStore(path) if kind == "sqlite" else ParquetBarStore(path)
    symbols = [Stock(f"S{i:02d}") for i in range(instruments)]
    frames = {year: year_of_bars(2010 + year, year) for year in range(years)}  # not timed
    written, elapsed = 0, 0.0
    for inst in symbols:
        for frame in frames.values():
            start = time.perf_counter()
            written += store.write(inst, "1min", frame)
            elapsed += time.perf_counter() - start
    store.close()
    size = size_of(path)
    store = SQLiteBarStore(path) if kind == "sqlite" else ParquetBarStore(path)
    start = time.perf_counter()
    read = sum(len(store.arrays(inst, "1min").ts_ns) for inst in symbols)
    read_elapsed = time.perf_counter() - start
    year_times = []
    for _ in range(5):
        start = time.perf_counter()
        one = store.read(symbols[0], "1min", "2010-01-01", "2011-01-01")
        year_times.append(time.perf_counter() - start)
    store.close()
    assert read == written
    assert len(one) == SESSIONS * MINUTES
    print(f"\n[{kind}]")
    print(f"write:           {written:,} bars in {elapsed:.1f} s = {written / elapsed:,.0f} bars/s")
    print(f"size on disk:    {size / 1e6:,.0f} MB ({size / written:.1f} bytes/bar)")
    rate = read / read_elapsed
    print(f"read all:        {read:,} bars in {read_elapsed:.1f} s = {rate:,.0f} bars/s")
    print(
        f"one instr-year:  {len(one):,} bars into a DataFrame: best {min(year_times):.3f} s, "
        f"median {statistics.median(year_times):.3f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--instruments", type=int, default=10)
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--only", choices=["sqlite", "parquet"])
    args = parser.parse_args()
    print(f"{args.instruments * args.years * SESSIONS * MINUTES:,} one-minute bars")
    with tempfile.TemporaryDirectory() as root:
        for kind in ("sqlite", "parquet"):
            if args.only in (None, kind):
                run(kind, args.instruments, args.years, root)


if __name__ == "__main__":
    main()
