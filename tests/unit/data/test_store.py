"""One test suite for every BarStore implementation."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ibkrfw import ConfigError, DataError, Engine, Forex, Stock
from ibkrfw.data import BarStore, ParquetBarStore, SQLiteBarStore, generate_bars
from ibkrfw.sim import DataFrameFeed, SimBroker
from ibkrfw.strategies import MovingAverageCrossover

ACME, BOLT = Stock("ACME"), Stock("BOLT", currency="USD", tick_size="0.05")
EURUSD = Forex("EUR", currency="USD")

Opener = Callable[[], BarStore]


@pytest.fixture(params=["sqlite", "parquet"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens the store under test; each call is a new handle on the same files."""
    handles: list[BarStore] = []

    def open_store() -> BarStore:
        if request.param == "sqlite":
            store: BarStore = SQLiteBarStore(tmp_path / "bars.sqlite")
        else:
            store = ParquetBarStore(tmp_path / "parquet")
        handles.append(store)
        return store

    yield open_store
    for handle in handles:
        handle.close()


def _bars(symbol: str = "ACME", freq: str = "1D", **kwargs: object) -> pd.DataFrame:
    frame = generate_bars([symbol], freq=freq, **kwargs).set_index("timestamp")  # type: ignore[arg-type]
    return frame[["open", "high", "low", "close", "volume"]]


def test_what_is_written_reads_back_exactly(opener: Opener) -> None:
    frame = _bars(periods=300)
    store = opener()
    assert store.write(ACME, "1d", frame) == 300
    back = store.read(ACME, "1 day")
    assert str(back.index.tz) == "UTC"
    assert back.index.name == "timestamp"
    pd.testing.assert_frame_equal(back, frame.tz_convert("UTC"), check_freq=False)


def test_the_store_survives_reopening_and_knows_its_instruments(opener: Opener) -> None:
    opener().write(BOLT, "1d", _bars("BOLT", periods=10))
    store = opener()
    assert store.instrument("BOLT.SMART") == BOLT
    assert len(store.read("BOLT.SMART", "1d")) == 10
    with pytest.raises(DataError, match=r"no instrument 'NOPE.SMART'; it has \['BOLT.SMART'\]"):
        store.instrument("NOPE.SMART")


def test_writing_again_replaces_bars_at_the_same_times_and_keeps_the_rest(opener: Opener) -> None:
    store = opener()
    frame = _bars(periods=20)
    store.write(ACME, "1d", frame.iloc[:15])
    changed = frame.iloc[10:].copy()
    changed[["open", "high", "low", "close"]] *= 2
    store.write(ACME, "1d", changed)
    back = store.read(ACME, "1d")
    assert len(back) == 20
    np.testing.assert_array_equal(back["close"].to_numpy()[:10], frame["close"].to_numpy()[:10])
    np.testing.assert_array_equal(back["close"].to_numpy()[10:], changed["close"].to_numpy())


def test_ranges_are_half_open_and_naive_bounds_are_in_the_instruments_zone(
    opener: Opener,
) -> None:
    store = opener()
    frame = _bars(freq="1min", periods=390 * 3, start="2024-03-04")
    store.write(ACME, "1min", frame)
    day = store.read(ACME, "1min", "2024-03-05", "2024-03-06")  # New York days
    assert len(day) == 390
    assert day.index[0] == pd.Timestamp("2024-03-05 09:30", tz="America/New_York")
    hour = store.read(ACME, "1min", pd.Timestamp("2024-03-05 15:00", tz="UTC"), "2024-03-05 11:00")
    assert len(hour) == 60  # 10:00 to 11:00 New York (UTC-5)
    assert store.read(ACME, "1min", end="2024-03-04 09:31").index.tolist() == [frame.index[0]]
    as_ns = store.arrays(ACME, "1min", int(frame.index[5].value), int(frame.index[7].value))
    assert as_ns.ts_ns.tolist() == [frame.index[5].value, frame.index[6].value]


def test_unknown_volume_stays_unknown(opener: Opener) -> None:
    frame = _bars(periods=3).drop(columns="volume")
    store = opener()
    store.write(ACME, "1d", frame)
    assert store.read(ACME, "1d")["volume"].isna().all()


def test_a_malformed_frame_is_refused_whole(opener: Opener) -> None:
    store = opener()
    frame = _bars(periods=5)
    frame.iloc[3, frame.columns.get_loc("high")] = np.nan
    with pytest.raises(DataError, match=r"row 3 .* column high: missing or infinite price"):
        store.write(ACME, "1d", frame)
    assert store.read(ACME, "1d").empty
    assert store.series() == []
    naive = _bars(periods=5).tz_localize(None)
    with pytest.raises(DataError, match="timestamps have no time zone"):
        store.write(ACME, "1d", naive)
    assert store.write(ACME, "1d", naive, tz="UTC") == 5


def test_series_are_kept_apart_and_listed(opener: Opener) -> None:
    store = opener()
    daily, minutes = _bars(periods=4), _bars(freq="1min", periods=30)
    store.write(ACME, "1d", daily)
    store.write(ACME, "1min", minutes)
    store.write(BOLT, "1d", _bars("BOLT", periods=2))
    info = store.info()
    assert info[["instrument", "bar_size", "rows", "gaps", "missing"]].values.tolist() == [
        ["ACME.SMART", "1d", 4, 0, 0],
        ["ACME.SMART", "1min", 30, 0, 0],
        ["BOLT.SMART", "1d", 2, 0, 0],
    ]
    assert list(store.info(gaps=False).columns) == [
        "instrument",
        "bar_size",
        "first",
        "last",
        "rows",
    ]
    assert info["first"].iloc[1] == minutes.index[0]
    assert info["last"].iloc[1] == minutes.index[-1]
    assert len(store.read(ACME, "1min")) == 30


def test_bars_spanning_years_read_back_in_one_piece(opener: Opener) -> None:
    store = opener()
    frame = _bars(start="2021-12-01", periods=600)
    store.write(ACME, "1d", frame.iloc[::2])
    store.write(ACME, "1d", frame.iloc[1::2])
    back = store.read(ACME, "1d")
    assert back.index.is_monotonic_increasing
    pd.testing.assert_frame_equal(back, frame.tz_convert("UTC"), check_freq=False)
    middle = store.read(ACME, "1d", "2022-06-01", "2023-02-01")
    assert middle.index[0] >= pd.Timestamp("2022-06-01", tz="America/New_York")
    assert middle.index[-1] < pd.Timestamp("2023-02-01", tz="America/New_York")


def test_delete_a_range_or_everything(opener: Opener) -> None:
    store = opener()
    frame = _bars(start="2022-12-01", periods=60)
    store.write(ACME, "1d", frame)
    later = int((frame.index >= pd.Timestamp("2023-01-01", tz="America/New_York")).sum())
    assert store.delete(ACME, "1d", "2023-01-01") == later
    assert store.read(ACME, "1d").index[-1] < pd.Timestamp("2023-01-01", tz="America/New_York")
    assert store.delete(ACME, "1d") == 60 - later
    assert store.read(ACME, "1d").empty
    assert store.delete(ACME, "1d") == 0


def test_a_feed_from_the_store_runs_the_same_backtest_as_the_frame(opener: Opener) -> None:
    store = opener()
    frame = _bars(periods=400)
    store.write(ACME, "1d", frame)
    from_store = Engine(MovingAverageCrossover(), store.feed("ACME.SMART", "1d"), SimBroker()).run()
    direct = Engine(MovingAverageCrossover(), DataFrameFeed(frame, ACME), SimBroker()).run()
    assert from_store.stats["Final equity"] == direct.stats["Final equity"]
    assert from_store.stats["Trades"] == direct.stats["Trades"] > 0
    two = store.feed([ACME], "1d", "2015-06-01")
    assert two.instruments == (ACME,)
    with pytest.raises(DataError, match=r"no 1d bars of ACME\.SMART in the range"):
        store.feed(ACME, "1d", "2100-01-01")


def test_forex_and_bar_size_spellings(opener: Opener) -> None:
    store = opener()
    frame = _bars("EUR", periods=3) / 100
    store.write(EURUSD, "1 hour", frame)
    assert store.series()[0].bar_size == "1h"
    assert store.instrument("EUR.USD") == EURUSD
    assert len(store.read("EUR.USD", "1h")) == 3
    with pytest.raises(ConfigError, match="bar size 'fortnight' is not understood"):
        store.read(EURUSD, "fortnight")


def test_info_counts_gaps_within_sessions(opener: Opener) -> None:
    store = opener()
    minutes = _bars(freq="1min", periods=390 * 2, start="2024-03-04")
    store.write(ACME, "1min", minutes.drop(minutes.index[100:103]).drop(minutes.index[500:510]))
    daily = _bars(periods=10, start="2024-03-04")
    store.write(ACME, "1d", daily.drop(daily.index[2:4]))
    info = store.info().set_index("bar_size")
    assert info.loc["1min", ["gaps", "missing"]].tolist() == [2, 13]
    assert info.loc["1d", ["gaps", "missing"]].tolist() == [1, 2]


def test_one_store_is_shared_by_threads(opener: Opener) -> None:
    from concurrent.futures import ThreadPoolExecutor

    store = opener()  # opened on this thread, used on others
    symbols = ["T0", "T1", "T2", "T3"]
    frames = {s: _bars(s, periods=400, seed=i) for i, s in enumerate(symbols)}

    def write_in_chunks(symbol: str) -> int:
        frame = frames[symbol]
        for start in range(0, len(frame), 50):
            store.write(Stock(symbol), "1d", frame.iloc[start : start + 50])
            store.series()  # reads between the writes, from every thread
        return len(store.read(Stock(symbol), "1d"))

    with ThreadPoolExecutor(4) as pool:
        counts = list(pool.map(write_in_chunks, symbols))
    assert counts == [400] * 4
    for symbol, frame in frames.items():
        back = store.read(Stock(symbol), "1d")
        np.testing.assert_array_equal(back["close"].to_numpy(), frame["close"].to_numpy())
