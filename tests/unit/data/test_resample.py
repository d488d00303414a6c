from __future__ import annotations

from itertools import pairwise

import numpy as np
import pandas as pd
import pytest

from ibkrfw import ConfigError, DataError
from ibkrfw.data import (
    USEquityCalendar,
    adjust_bars,
    clean_bars,
    generate_bars,
    resample_bars,
    validate_bars,
)
from ibkrfw.testing import bars_frame

CAL = USEquityCalendar()
NY = "America/New_York"


def _minutes(start: str = "2024-11-27", periods: int = 390 * 3) -> pd.DataFrame:
    # weekday sessions of 390 minutes: the 28th (Thanksgiving) is among them, so drop it
    frame = generate_bars(["ACME"], freq="1min", start=start, periods=periods).set_index(
        "timestamp"
    )
    return frame[["open", "high", "low", "close", "volume"]]


def test_ohlcv_rules_on_hand_made_bars() -> None:
    rows = [(10, 12, 9, 11, 100), (11, 15, 10, 14, 200), (14, 14, 8, 9, 50), (9, 10, 9, 10, 5)]
    frame = bars_frame(rows, start="2024-03-04 14:30", freq="1min")
    out = resample_bars(frame, "2min", calendar=CAL)
    assert out.values.tolist() == [[10, 15, 9, 14, 300], [14, 14, 8, 10, 55]]
    assert out.index[0] == pd.Timestamp("2024-03-04 09:30", tz=NY)


def test_hourly_bars_start_at_the_session_open_and_never_span_sessions() -> None:
    frame = _minutes("2024-11-26", 390 * 2)  # the 26th and 27th
    hours = resample_bars(frame, "1h", calendar=CAL)
    local = hours.index.tz_convert(NY)
    assert local.strftime("%d %H:%M").tolist()[:8] == [
        "26 09:30", "26 10:30", "26 11:30", "26 12:30", "26 13:30", "26 14:30", "26 15:30",
        "27 09:30",
    ]  # fmt: skip
    last = hours.iloc[6]  # 15:30-16:00: half an hour
    assert last["volume"] == frame["volume"].iloc[360:390].sum()
    assert last["close"] == frame["close"].iloc[389]


def test_daily_and_weekly_bars_follow_sessions() -> None:
    # Generated on weekdays: Thanksgiving (the 28th) and the 29th after its 13:00 close are not
    # in NYSE sessions. The documented way: find them with validate_bars, then drop them.
    frame = _minutes("2024-11-25", 390 * 5)
    with pytest.raises(DataError, match=r"570 bar\(s\) lie outside the exchange_calendars"):
        resample_bars(frame, "1d", calendar=CAL)
    report = validate_bars(frame, bar_size="1min", calendar=CAL)
    assert set(report["kind"]) == {"outside_session"}
    frame = clean_bars(frame, report, {"outside_session": "drop"}).frame
    days = resample_bars(frame, "1 day", calendar=CAL)
    assert days.index.tz_convert(NY).strftime("%d %H:%M").tolist() == [
        "25 00:00", "26 00:00", "27 00:00", "29 00:00",
    ]  # fmt: skip
    assert days["volume"].sum() == frame["volume"].sum()
    weeks = resample_bars(frame, "1w", calendar=CAL)
    assert len(weeks) == 1
    assert weeks.iloc[0]["open"] == frame["open"].iloc[0]
    assert weeks.iloc[0]["close"] == frame["close"].iloc[-1]
    assert weeks.iloc[0]["high"] == frame["high"].max()


def test_without_a_calendar_intervals_are_aligned_on_utc() -> None:
    frame = bars_frame([(1, 1, 1, 1)] * 6, start="2024-03-04 14:30", freq="20min")
    hours = resample_bars(frame, "1h")
    assert [t.strftime("%H:%M") for t in hours.index] == ["14:00", "15:00", "16:00"]
    weeks = resample_bars(bars_frame([(1, 1, 1, 1)] * 10), "1w")  # from Tuesday 2 January
    assert [t.strftime("%a %d") for t in weeks.index] == ["Mon 01", "Mon 08"]


def test_unknown_volume_stays_unknown_and_bad_sizes_are_refused() -> None:
    frame = bars_frame([(1, 1, 1, 1)] * 4, start="2024-03-04 14:30", freq="1min")
    frame = frame.drop(columns="volume")
    assert resample_bars(frame, "2min")["volume"].isna().all()
    with pytest.raises(ConfigError, match="a minute or more"):
        resample_bars(frame, "30s")


def test_blocks_of_sessions_and_weeks_do_not_depend_on_where_the_data_starts() -> None:
    frame = generate_bars(["ACME"], freq="1D", start="2024-03-04", periods=20).set_index(
        "timestamp"
    )
    cal = USEquityCalendar(use_exchange_calendars=False)
    two = resample_bars(frame, "2d", calendar=cal)
    later = resample_bars(frame.iloc[1:], "2d", calendar=cal)
    assert two.index[1:].equals(later.index[1:])  # the same blocks, whatever the first bar
    assert len(two) in (10, 11)
    assert two["volume"].sum() == frame["volume"].sum()
    fortnights = resample_bars(frame, "2w", calendar=cal)
    mondays = fortnights.index.tz_convert(NY)
    assert all(d.weekday() == 0 for d in mondays)
    dates = [d.date() for d in mondays]
    assert all((b - a).days == 14 for a, b in pairwise(dates))
    assert fortnights["high"].max() == frame["high"].max()


def test_splits_and_dividends_back_adjust_the_bars_before_the_ex_date() -> None:
    frame = bars_frame([(100, 100, 100, 100, 10), (50, 50, 50, 50, 20), (49, 49, 49, 49, 20)])
    actions = pd.DataFrame(
        {"ex_date": ["2024-01-03", "2024-01-04"], "split": [2.0, np.nan], "dividend": [np.nan, 1.0]}
    )
    out = adjust_bars(frame, actions, tz="UTC")
    factor_div = 1 - 1.0 / 50
    assert out["close"].tolist() == pytest.approx([50 * factor_div, 50 * factor_div, 49])
    assert out["volume"].tolist() == [20, 20, 20]
    assert out["adjustment"].tolist() == pytest.approx([0.5 * factor_div, factor_div, 1.0])
    returns = out["close"].pct_change().dropna()
    assert returns.iloc[0] == pytest.approx(0.0)  # the split no longer looks like a crash
    assert returns.iloc[1] == pytest.approx(49 / (50 * factor_div) - 1)  # total return


def test_bad_corporate_actions_are_refused() -> None:
    frame = bars_frame([(100, 100, 100, 100), (100, 100, 100, 100)])
    with pytest.raises(DataError, match="ratio must be positive"):
        adjust_bars(frame, pd.DataFrame({"ex_date": ["2024-01-03"], "split": [0.0]}), tz="UTC")
    with pytest.raises(DataError, match="below the close before it"):
        adjust_bars(frame, pd.DataFrame({"ex_date": ["2024-01-03"], "dividend": [150.0]}), tz="UTC")
    with pytest.raises(DataError, match="'ex_date' column"):
        adjust_bars(frame, pd.DataFrame({"date": ["2024-01-03"]}), tz="UTC")
