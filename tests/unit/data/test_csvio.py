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
    with pytest.raises(DataError, match=r"yahoo.csv line 2: timestamps have no time zone"):
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
    with pytest.raises(DataError, match=r"missing column\(s\) 'close'; it has \['timestamp'"):
        read_bars_csv(path)
    with pytest.raises(ConfigError, match="unknown CSV layout 'excel'"):
        read_bars_csv(path, layout="excel")
    path.write_text("timestamp,open,high,low,close\nyesterday,1,2,0.5,1\n")
    with pytest.raises(DataError, match=r"bad.csv line 2, column timestamp: 'yesterday' is not a"):
        read_bars_csv(path)


_HEADER = "timestamp,open,high,low,close,volume"


def _file(tmp_path: Path, bad_line: int | None = None, text: str = "", n: int = 600) -> Path:
    """A file of ``n`` good bars, with line ``bad_line`` (header = line 1) replaced."""
    start = pd.Timestamp("2024-03-04 14:30", tz="UTC")
    lines = [_HEADER] + [
        f"{(start + pd.Timedelta(minutes=i)).isoformat()},100,101,99,100.5,1000" for i in range(n)
    ]
    if bad_line is not None:
        lines[bad_line - 1] = text.format(time=lines[bad_line - 1].split(",")[0])
    path = tmp_path / "bars.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _message(path: Path, **kwargs: object) -> str:
    with pytest.raises(DataError) as info:
        read_bars_csv(path, **kwargs)  # type: ignore[arg-type]
    return str(info.value)


def test_a_bad_number_is_named_by_file_line_column_and_value(tmp_path: Path) -> None:
    path = _file(tmp_path, 500, "{time},100,101,99,abc,1000")
    message = _message(path)
    assert message.startswith(f"{path} line 500, column close: 'abc' is not a number;")
    assert "decimal point" in message


def test_a_bad_time_names_its_line_and_the_formats_read(tmp_path: Path) -> None:
    message = _message(_file(tmp_path, 500, "2024-13-45 25:00,100,101,99,100.5,1000"))
    assert "bars.csv line 500, column timestamp: '2024-13-45 25:00' is not a time" in message
    assert "ISO 8601" in message and "2024-01-02T14:30:00-05:00" in message
    assert "format=" not in message and "pandas" not in message.lower()
    assert "line 499, column timestamp: no time" in _message(
        _file(tmp_path, 499, ",100,101,99,100.5,1000")
    )


def test_epoch_layouts_say_which_epoch(tmp_path: Path) -> None:
    path = tmp_path / "polygon.csv"
    path.write_text("t,o,h,l,c,v\n1704205800000,1,2,0.5,1.5,10\nsoon,1,2,0.5,1.5,10\n")
    message = _message(path, layout="polygon")
    assert "polygon.csv line 3, column t: 'soon' is not a number" in message
    assert "UTC epoch milliseconds, e.g. 1704205800000" in message


def test_naive_times_name_the_setting_and_the_first_line(tmp_path: Path) -> None:
    path = tmp_path / "naive.csv"
    path.write_text(f"{_HEADER}\n2024-03-04 09:30,1,2,0.5,1.5,10\n")
    with pytest.raises(DataError) as info:
        read_bars_csv(path)
    assert "naive.csv line 2: timestamps have no time zone" in str(info.value)
    assert "tz='America/New_York'" in str(info.value)
    cli = info.value.explain(lambda name, value: f"--{name} {value}")
    assert "--tz America/New_York" in cli and "tz=" not in cli.replace("--tz", "")
    with pytest.raises(ConfigError, match="unknown time zone 'New York'; give an IANA name"):
        read_bars_csv(path, tz="New York")


def test_a_time_that_dst_skips_is_refused_by_line(tmp_path: Path) -> None:
    path = tmp_path / "dst.csv"
    path.write_text(
        f"{_HEADER}\n2024-03-10 01:30,1,2,0.5,1.5,10\n2024-03-10 02:30,1,2,0.5,1.5,10\n"
    )
    message = _message(path, tz="America/New_York")
    assert "dst.csv line 3: '2024-03-10 02:30' does not exist in America/New_York" in message


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "bars.csv is empty; a CSV file of bars has a header line"),
        (f"{_HEADER}\n".encode(), "bars.csv has a header but no bars"),
        (
            b"timestamp;open;high;low;close\n2024-01-02;1;2;0,5;1\n",
            "bars.csv line 1: the header 'timestamp;open;high;low;close' is separated by "
            "semicolons; ibkrfw reads comma-separated files; save the file with commas",
        ),
        (bytes(range(256)) * 4, "bars.csv holds binary data, not comma-separated text"),
        (
            b"timestamp,open\n\xff\xfe2024,1\n",
            "bars.csv line 2, byte 1: 0xff (offset 15 of the file) is not UTF-8",
        ),
        (
            f"{_HEADER}\n2024-01-02T00:00Z,1,2,0.5,1,5\n2024-01-02T00:01Z,1,2,0.5,1,5,6\n".encode(),
            "bars.csv line 3 has 7 values, the header has 6",
        ),
        (
            b"timestamp,open,high,low,Close\n2024-01-02T00:00Z,1,2,0.5,1\n",
            "missing column(s) 'close' (did you mean 'Close'?); it has ['timestamp', 'open',",
        ),
    ],
)
def test_files_that_are_not_bars_say_what_is_wrong(
    tmp_path: Path, content: bytes, words: str
) -> None:
    path = tmp_path / "bars.csv"
    path.write_bytes(content)
    assert words in _message(path)


def test_a_directory_or_a_missing_file(tmp_path: Path) -> None:
    assert f"{tmp_path} is a directory, not a CSV file" in _message(tmp_path)
    assert "nope.csv: no such file; check the path" in _message(tmp_path / "nope.csv")


def test_a_vendor_file_read_with_the_wrong_layout_names_the_right_one(tmp_path: Path) -> None:
    path = tmp_path / "yahoo.csv"
    path.write_text("Date,Open,High,Low,Close,Adj Close,Volume\n2024-01-02,1,2,0.5,1,1,5\n")
    with pytest.raises(DataError) as info:
        read_bars_csv(path)
    assert "the file looks like the 'yahoo' layout: give layout='yahoo'" in str(info.value)


def test_blank_lines_are_skipped_but_counted(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text(f"{_HEADER}\n2024-01-02T00:00Z,1,2,0.5,1,5\n\n2024-01-02T00:01Z,1,2,0.5,x,5\n")
    assert "bars.csv line 4, column close: 'x' is not a number" in _message(path)
