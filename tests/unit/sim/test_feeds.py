from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ibkrfw import DataError, Stock
from ibkrfw.sim import CSVFeed, DataFrameFeed
from ibkrfw.testing import bars_frame

X, Y = Stock("X"), Stock("Y")


def good(n: int = 5, start: str = "2024-01-02") -> pd.DataFrame:
    return bars_frame([(10 + i, 11 + i, 9 + i, 10.5 + i) for i in range(n)], start=start)


def test_dataframe_feed_yields_bars_in_order() -> None:
    feed = DataFrameFeed(good(), X)
    bars = list(feed)
    assert [b.close for b in bars] == [10.5, 11.5, 12.5, 13.5, 14.5]
    assert bars[0].instrument == X
    assert bars[0].ts_ns == pd.Timestamp("2024-01-02", tz="UTC").value
    assert len(feed) == 5


def test_several_instruments_merge_by_time_stable_on_ties() -> None:
    feed = DataFrameFeed({X: good(3), Y: good(3, start="2024-01-03")})
    got = [(b.instrument.symbol, b.ts_ns) for b in feed]
    ts = [b for _, b in got]
    assert ts == sorted(ts)
    assert [s for s, _ in got] == ["X", "X", "Y", "X", "Y", "Y"]


@pytest.mark.parametrize(
    ("row", "column", "value", "words"),
    [
        (2, "close", np.nan, "missing or infinite price"),
        (1, "low", -1.0, "must be positive"),
        (3, "high", 1.0, "high is below low"),
        (0, "open", 50.0, "outside the bar's low-high range"),
        (4, "volume", -5.0, "volume must not be negative"),
        (2, "volume", np.nan, "missing or infinite volume"),
    ],
)
def test_bad_values_name_row_column_and_value(
    row: int, column: str, value: float, words: str
) -> None:
    frame = good()
    frame.iloc[row, frame.columns.get_loc(column)] = value
    with pytest.raises(DataError) as info:
        DataFrameFeed(frame, X)
    message = str(info.value)
    assert f"row {row}" in message
    assert f"bars of X.SMART row {row} (" in message
    assert f"column {column}:" in message
    assert words in message
    assert "never corrects data silently" in message


def test_count_of_other_bad_rows_is_reported() -> None:
    frame = good()
    frame["close"] = np.nan
    with pytest.raises(DataError, match="4 more row"):
        DataFrameFeed(frame, X)


def test_unsorted_and_duplicate_timestamps() -> None:
    frame = good()
    with pytest.raises(DataError, match="earlier than the row before"):
        DataFrameFeed(frame.iloc[[0, 2, 1, 3]], X)
    with pytest.raises(DataError, match="duplicate timestamp"):
        DataFrameFeed(frame.iloc[[0, 1, 1, 2]], X)


def test_naive_timestamps_need_a_time_zone() -> None:
    frame = good().tz_localize(None)
    with pytest.raises(DataError, match="no time zone"):
        DataFrameFeed(frame, X)
    feed = DataFrameFeed(frame, X, tz="America/New_York")
    first = next(iter(feed))
    assert first.ts_ns == pd.Timestamp("2024-01-02 00:00", tz="America/New_York").value


def test_missing_columns_and_non_numeric_values() -> None:
    with pytest.raises(DataError, match=r"missing column\(s\) 'close'; it has \['open'"):
        DataFrameFeed(good().drop(columns="close"), X)
    frame = good().astype({"open": object})
    frame.iloc[1, 0] = "ten"
    with pytest.raises(DataError, match="row 1, column open: 'ten' is not a number"):
        DataFrameFeed(frame, X)


def test_missing_volume_column_gives_nan_volume() -> None:
    bars = list(DataFrameFeed(good().drop(columns="volume"), X))
    assert all(np.isnan(b.volume) for b in bars)


def test_empty_frame_and_wrong_type() -> None:
    with pytest.raises(DataError, match="no rows"):
        DataFrameFeed(good().iloc[:0], X)
    with pytest.raises(DataError, match="needs the instrument"):
        DataFrameFeed(good())


def test_timestamp_column_instead_of_index() -> None:
    frame = good().reset_index()
    assert len(list(DataFrameFeed(frame, X))) == 5
    with pytest.raises(DataError, match="no timestamps found"):
        DataFrameFeed(frame.drop(columns="timestamp"), X)


def test_csv_feed_reads_symbols_and_reports_file_lines(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text(
        "timestamp,symbol,open,high,low,close,volume\n"
        "2024-01-02T14:30:00Z,X,10,11,9,10.5,100\n"
        "2024-01-02T14:30:00Z,Y,20,21,19,20.5,100\n"
        "2024-01-02T14:31:00Z,X,10.5,11,10,10.8,100\n"
        "2024-01-02T14:31:00Z,Y,20.5,20.4,19,20,100\n"
    )
    with pytest.raises(DataError, match=r"bars.csv \(Y\) line 5 .*column open: .*got 20.5\)"):
        CSVFeed(path, [X, Y])
    feed = CSVFeed(path, [X])
    assert [b.close for b in feed] == [10.5, 10.8]


def test_csv_feed_with_offsets_across_dst_and_naive(tmp_path: Path) -> None:
    path = tmp_path / "dst.csv"
    path.write_text(
        "date,open,high,low,close\n"
        "2024-03-08T09:30:00-05:00,1,2,0.5,1.5\n"
        "2024-03-11T09:30:00-04:00,1,2,0.5,1.5\n"
    )
    bars = list(CSVFeed(path, X))
    assert bars[1].ts_ns - bars[0].ts_ns == (3 * 24 - 1) * 3600 * 10**9
    naive = tmp_path / "naive.csv"
    naive.write_text("date,open,high,low,close\n2024-03-08 09:30,1,2,0.5,1.5\n")
    with pytest.raises(DataError, match="tz="):
        CSVFeed(naive, X)
    assert (
        next(iter(CSVFeed(naive, X, tz="America/New_York"))).ts_ns
        == pd.Timestamp("2024-03-08 14:30", tz="UTC").value
    )


def test_csv_feed_problems(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"missing\.csv: no such file; check the path"):
        CSVFeed(tmp_path / "missing.csv", X)
    path = tmp_path / "one.csv"
    path.write_text("timestamp,symbol,open,high,low,close\n2024-01-02T00:00:00Z,X,1,2,0.5,1\n")
    with pytest.raises(DataError, match="no rows for symbol 'Y'"):
        CSVFeed(path, [X, Y])
    path.write_text("timestamp,open,high,low,close\n2024-01-02T00:00:00Z,1,2,0.5,1\n")
    with pytest.raises(DataError, match="'symbol' column"):
        CSVFeed(path, [X, Y])
    path.write_text("timestamp,open,high,low,close\nyesterday,1,2,0.5,1\n")
    with pytest.raises(DataError, match=r"one\.csv line 2, column timestamp: 'yesterday' is not a"):
        CSVFeed(path, X)


def test_a_feed_knows_its_bar_size_from_the_spacing_of_its_bars(tmp_path: Path) -> None:
    day, hour, minute = 86_400 * 10**9, 3_600 * 10**9, 60 * 10**9
    # business days: weekends and a holiday are longer gaps, not the bar size
    days = pd.bdate_range("2024-01-02", periods=60, tz="America/New_York").delete(10)
    frame = pd.DataFrame({"open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0}, index=days)
    assert DataFrameFeed(frame, X).bar_ns == day
    # a session of hourly bars: the nights are longer; a session of two 4-hour bars
    hourly = pd.concat(
        bars_frame([(1, 1, 1, 1)] * 7, start=f"2024-01-0{d} 14:30", freq="1h") for d in (2, 3, 4)
    )
    assert DataFrameFeed(hourly, X).bar_ns == hour
    halves = pd.concat(
        bars_frame([(1, 1, 1, 1)] * 2, start=f"2024-01-{d:02} 14:30", freq="4h")
        for d in range(2, 30)
    )
    assert DataFrameFeed(halves, X).bar_ns == 4 * hour
    # several instruments: the shortest; one bar alone: not known
    minutes = bars_frame([(1, 1, 1, 1)] * 30, start="2024-01-02 14:30", freq="1min")
    assert DataFrameFeed({X: frame, Y: minutes}).bar_ns == minute
    assert DataFrameFeed(good(1), X).bar_ns is None
    path = tmp_path / "bars.csv"
    minutes.to_csv(path, index_label="timestamp")
    assert CSVFeed(path, X).bar_ns == minute
    assert DataFrameFeed({X: frame, Y: minutes}).between(days[5].value).bar_ns == day  # days only


def test_the_ib_feed_knows_its_bar_size() -> None:
    pytest.importorskip("ibapi")
    from ibkrfw.ibkr import IBKRConfig, IBKRDataFeed

    config = IBKRConfig(port=1)
    assert IBKRDataFeed([X], config, bar_size="5 mins").bar_ns == 300 * 10**9
    assert IBKRDataFeed([X], config, bar_size="1 day").bar_ns == 86_400 * 10**9
    assert IBKRDataFeed([X], config, bar_size=None).bar_ns == 5 * 10**9  # IB's own
