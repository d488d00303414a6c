from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ibkrfw import ConfigError, DataError
from ibkrfw.data import USEquityCalendar, generate_bars, read_bars_csv
from ibkrfw.data.validation import PROBLEM_KINDS, clean_bars, validate_bars
from ibkrfw.testing import bars_frame

CAL = USEquityCalendar()


def _minutes(n: int = 390, start: str = "2024-03-04") -> pd.DataFrame:
    frame = generate_bars(["ACME"], freq="1min", start=start, periods=n).set_index("timestamp")
    return frame[["open", "high", "low", "close", "volume"]]


def _kinds(report: pd.DataFrame) -> list[tuple[int, str, str]]:
    return list(zip(report["row"], report["kind"], report["column"], strict=True))


def test_clean_data_has_an_empty_report() -> None:
    report = validate_bars(_minutes(), bar_size="1min", calendar=CAL)
    assert report.empty
    assert list(report.columns) == ["row", "line", "timestamp", "column", "kind", "value", "detail"]


def test_every_price_problem_is_reported_with_row_column_and_kind() -> None:
    rows = [
        (100, 101, 99, 100),
        (np.nan, 101, 99, 100),  # 1
        (100, 101, 99, -1),  # 2: negative, and outside the range
        (100, 98, 99, 100),  # 3: high < low, open and close above high
        (102, 101, 99, 100),  # 4: open above high
        (100, 101, 99, 100),
    ]
    report = validate_bars(bars_frame(rows))
    assert _kinds(report) == [
        (1, "missing_price", "open"),
        (2, "close_outside_range", "close"),
        (2, "non_positive_price", "close"),
        (3, "close_outside_range", "close"),
        (3, "high_below_low", "high"),
        (3, "open_outside_range", "open"),
        (4, "open_outside_range", "open"),
    ]
    assert report.loc[report["row"] == 2, "value"].tolist() == [-1.0, -1.0]


def test_time_problems_naive_unsorted_and_duplicate() -> None:
    frame = bars_frame([(100, 101, 99, 100)] * 4)
    frame.index = pd.DatetimeIndex(
        ["2024-01-03", "2024-01-04", "2024-01-02", "2024-01-04"], name="timestamp"
    )
    report = validate_bars(frame)
    assert _kinds(report) == [
        (0, "naive_timestamp", "timestamp"),
        (2, "unsorted_timestamp", "timestamp"),
        (3, "duplicate_timestamp", "timestamp"),
    ]
    assert "give tz=" in report["detail"].iloc[0]
    assert "naive_timestamp" not in set(validate_bars(frame, tz="UTC")["kind"])


def test_volume_problems_and_zero_volume_runs() -> None:
    rows = [(100, 101, 99, 100, v) for v in (10, -1, np.nan, 0, 0, 0, 5, 0, 0)]
    report = validate_bars(bars_frame(rows), zero_volume_run=3)
    assert _kinds(report) == [
        (1, "bad_volume", "volume"),
        (2, "bad_volume", "volume"),
        (3, "zero_volume_run", "volume"),
        (4, "zero_volume_run", "volume"),
        (5, "zero_volume_run", "volume"),
    ]


def test_a_spike_is_one_outlier_and_a_lasting_jump_is_one_too() -> None:
    rng = np.random.default_rng(3)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, 200)))
    closes[50] *= 1.5  # a one-bar spike
    closes[120:] *= 0.5  # a jump that stays (an unadjusted split)
    rows = [(c, c * 1.001, c * 0.999, c) for c in closes]
    report = validate_bars(bars_frame(rows))
    assert _kinds(report) == [(50, "outlier", "close"), (120, "outlier", "close")]
    assert report["value"].iloc[0] > 10 and report["value"].iloc[1] < -10


def test_gaps_within_sessions_and_bars_outside_them() -> None:
    frame = _minutes(390 * 2)
    gappy = frame.drop(frame.index[100:103]).drop(frame.index[-5:])
    late = gappy.iloc[-1:].copy()  # the same prices, at 17:30: after the close
    late.index = pd.DatetimeIndex(
        [pd.Timestamp("2024-03-05 17:30", tz="America/New_York")], name="timestamp"
    ).tz_convert(frame.index.tz)
    report = validate_bars(pd.concat([gappy, late]), bar_size="1min", calendar=CAL)
    gap, outside = report.iloc[0], report.iloc[1]
    assert (gap["row"], gap["kind"], gap["value"]) == (100, "gap", 3.0)
    assert gap["timestamp"] == frame.index[100]
    assert "3 missing bar(s) from 2024-03-04 16:10:00+00:00" in gap["detail"]
    assert (outside["row"], outside["kind"]) == (len(gappy), "outside_session")
    assert len(report) == 2  # the 5 bars missing at the end are after the last bar: not a gap


def test_missing_sessions_of_daily_bars() -> None:
    # The generator makes a bar every weekday, Thanksgiving (the 28th) included.
    frame = generate_bars(["ACME"], freq="1D", start="2024-11-25", periods=10)
    gappy = frame.set_index("timestamp").drop(frame["timestamp"].iloc[4:6])  # Fri 29, Mon 2
    report = validate_bars(gappy, bar_size="1d", calendar=CAL)
    assert _kinds(report) == [(3, "outside_session", "timestamp"), (4, "gap", "timestamp")]
    assert report["value"].iloc[1] == 2.0
    assert "2 missing session(s) from 2024-11-29 to 2024-12-02" in report["detail"].iloc[1]
    assert report["timestamp"].iloc[1] == pd.Timestamp("2024-11-29", tz="America/New_York")


def test_cleaning_applies_each_chosen_action_and_lists_every_change() -> None:
    rows = [
        (100, 101, 99, 100),
        (np.nan, 101, 99, 100),  # ffill
        (100, 101, 99, 100),
        (100, 98, 99, 100),  # drop
        (101, 102, 100, 101),
    ]
    frame = bars_frame(rows)
    report = validate_bars(frame)
    cleaned, changes = clean_bars(
        frame,
        report,
        {
            "missing_price": "ffill",
            "high_below_low": "drop",
            "open_outside_range": "drop",
            "close_outside_range": "drop",
        },
    )
    assert len(cleaned) == 4
    assert cleaned.iloc[1].tolist() == [100.0, 100.0, 100.0, 100.0, 0.0]
    assert changes[["row", "action"]].values.tolist() == [[1, "ffill"], [3, "drop"]]
    assert changes["kind"].tolist() == [
        "missing_price",
        "close_outside_range,high_below_low,open_outside_range",
    ]
    assert validate_bars(cleaned).empty


def test_problems_without_an_action_raise_and_bad_actions_are_refused() -> None:
    frame = bars_frame([(100, 101, 99, 100), (100, 98, 99, 100)])
    report = validate_bars(frame)
    with pytest.raises(DataError, match=r"row 1 .*close_outside_range: close outside low-high"):
        clean_bars(frame, report, {})
    with pytest.raises(ConfigError, match="duplicate_timestamp problems can be drop, keep, raise"):
        clean_bars(frame, report, {"duplicate_timestamp": "ffill"})
    with pytest.raises(ConfigError, match="unknown problem kind 'typo'"):
        clean_bars(frame, report, {"typo": "drop"})


def test_a_first_row_with_nothing_before_it_is_dropped_when_filled() -> None:
    frame = bars_frame([(np.nan, 101, 99, 100), (100, 101, 99, 100)])
    cleaned, changes = clean_bars(frame, validate_bars(frame), {"missing_price": "ffill"})
    assert len(cleaned) == 1
    assert changes[["row", "action"]].values.tolist() == [[0, "drop"]]


def test_gaps_are_filled_with_flat_bars_at_the_missing_times() -> None:
    frame = _minutes(60)
    gappy = frame.drop(frame.index[10:13])
    report = validate_bars(gappy, bar_size="1min", calendar=CAL)
    cleaned, changes = clean_bars(gappy, report, {"gap": "ffill"}, bar_size="1min")
    assert cleaned.index.equals(frame.index.tz_convert("UTC"))
    previous = float(frame["close"].iloc[9])
    assert (cleaned.iloc[10:13][["open", "high", "low", "close"]] == previous).all().all()
    assert (cleaned.iloc[10:13]["volume"] == 0).all()
    assert changes["row"].tolist() == [-1, -1, -1]
    assert changes["timestamp"].tolist() == list(frame.index[10:13].tz_convert("UTC"))
    kept, none = clean_bars(gappy, report, {"gap": "keep"})
    assert len(kept) == len(gappy) and none.empty


def test_duplicates_and_unsorted_rows_can_be_dropped() -> None:
    frame = bars_frame([(100, 101, 99, 100)] * 4, tz="UTC")
    frame.index = pd.DatetimeIndex(
        ["2024-01-03", "2024-01-04", "2024-01-02", "2024-01-04"], tz="UTC", name="timestamp"
    )
    report = validate_bars(frame)
    cleaned, changes = clean_bars(
        frame, report, {"unsorted_timestamp": "drop", "duplicate_timestamp": "drop"}
    )
    assert cleaned.index.strftime("%d").tolist() == ["03", "04"]
    assert changes["row"].tolist() == [2, 3]


def test_the_kinds_are_documented_in_one_tuple() -> None:
    assert len(set(PROBLEM_KINDS)) == len(PROBLEM_KINDS) == 14


def _csv_with_bad_line(tmp_path: Path) -> Path:
    """600 one-minute bars; line 500 (header = line 1) has high below low."""
    start = pd.Timestamp("2024-03-04 14:30", tz="UTC")
    lines = ["timestamp,open,high,low,close,volume"]
    for i in range(600):
        stamp = (start + pd.Timedelta(minutes=i)).isoformat()
        lines.append(f"{stamp},100,101,99,100.5,1000")
    lines[499] = lines[499].replace(",100,101,99,", ",100,99,101,")
    path = tmp_path / "bars.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_problems_of_a_csv_file_are_reported_by_its_line(tmp_path: Path) -> None:
    frame = read_bars_csv(_csv_with_bad_line(tmp_path))
    report = validate_bars(frame)
    bad = report.loc[report["kind"] == "high_below_low"].iloc[0]
    assert (bad["row"], bad["line"]) == (498, 500)
    with pytest.raises(DataError) as info:
        clean_bars(frame, report, {})
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'bars.csv'} line 500 (")
    assert "column close: close_outside_range: close outside low-high" in message
    assert "e.g. actions={'close_outside_range': 'drop'}, or fix the data" in message


def test_a_frame_changed_since_it_was_read_is_reported_by_row(tmp_path: Path) -> None:
    frame = read_bars_csv(_csv_with_bad_line(tmp_path)).iloc[100:]
    report = validate_bars(frame)
    assert report["line"].isna().all()
    assert report.loc[report["kind"] == "high_below_low", "row"].tolist() == [398]
    assert validate_bars(bars_frame([(100, 101, 99, 100)], tz="UTC"))["line"].isna().all()
