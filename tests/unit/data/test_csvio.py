from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from ibkrfw import ConfigError, DataError
from ibkrfw.data import CsvLayout, generate_bars, read_bars_csv, write_bars_csv


def test_our_layout_round_trips_exactly(tmp_path: Path) -> None:
    frame = generate_bars(["ACME"], freq="1min", periods=500).set_index("timestamp")
    frame = frame[["open", "high", "low", "close", "volume"]]
    path = tmp_path / "bars.csv"
    assert write_bars_csv(frame, path) == 500
    assert path.read_text().splitlines()[1].startswith("2020-01-02T14:30:00+00:00,")
    back = read_bars_csv(path)
    pd.testing.assert_frame_equal(back, frame.tz_convert("UTC"), check_freq=False)


def test_vendor_layouts(tmp_path: Path) -> None:
    yahoo = tmp_path / "yahoo.csv"
    yahoo.write_text(
        "Date,Open,High,Low,Close,Adj Close,Volume\n"
        "2024-01-02,187.15,188.44,183.89,185.64,185.4,82488700\n"
    )
    with pytest.raises(DataError, match="give the time zone they are in"):
        read_bars_csv(yahoo, layout="yahoo")
    bars = read_bars_csv(yahoo, layout="yahoo", tz="America/New_York")
    assert bars.index[0] == pd.Timestamp("2024-01-02", tz="America/New_York")
    assert bars.iloc[0].tolist() == [187.15, 188.44, 183.89, 185.64, 82488700.0]

    polygon = tmp_path / "polygon.csv"
    polygon.write_text("t,o,h,l,c,v,vw\n1704205800000,187.15,188.44,183.89,185.64,1000,186\n")
    assert read_bars_csv(polygon, layout="polygon").index[0] == pd.Timestamp(
        "2024-01-02 14:30", tz="UTC"
    )
    tv = tmp_path / "tv.csv"
    tv.write_text("time,open,high,low,close\n1704205800,1,2,0.5,1.5\n")
    tv_bars = read_bars_csv(tv, layout="tradingview")
    assert tv_bars["volume"].isna().all()  # the file has none

    custom = CsvLayout({"timestamp": "when", "open": "O", "high": "H", "low": "L", "close": "C"})
    own = tmp_path / "own.csv"
    own.write_text(
        "when,O,H,L,C\n2024-03-08T09:30:00-05:00,1,2,0.5,1\n2024-03-11T09:30:00-04:00,1,2,0.5,1\n"
    )
    assert read_bars_csv(own, layout=custom).index.strftime("%H:%M").tolist() == ["14:30", "13:30"]


def test_layout_problems_are_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("timestamp,open,high,low\n2024-01-02T00:00:00+00:00,1,2,0.5\n")
    with pytest.raises(DataError, match=r"missing column\(s\) \['close'\]"):
        read_bars_csv(path)
    with pytest.raises(ConfigError, match="unknown CSV layout 'excel'"):
        read_bars_csv(path, layout="excel")
    path.write_text("timestamp,open,high,low,close\nyesterday,1,2,0.5,1\n")
    with pytest.raises(DataError, match="unreadable time"):
        read_bars_csv(path)
