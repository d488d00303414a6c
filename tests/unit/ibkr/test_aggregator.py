"""BarAggregator: IB's 5-second bars into larger ones, never a bar with a wrong open."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ibkrfw import Bar, ConfigError, Forex, Stock
from ibkrfw.data import SessionCalendar, calendar_for, resample_bars
from ibkrfw.ibkr import BarAggregator
from ibkrfw.sim import DataFrameFeed

X = Stock("X")
S = 1_000_000_000


def five(ts_s: int, o: float, h: float, lo: float, c: float, v: float = 1.0) -> Bar:
    return Bar(X, ts_s * S, o, h, lo, c, v)


def test_a_minute_is_out_with_its_twelfth_bar() -> None:
    agg = BarAggregator(X, 60 * S)
    out = []
    for k in range(12):
        out += agg.add(five(k * 5, 10 + k, 11 + k, 9 + k, 10.5 + k, 2))
        if k < 11:
            assert out == []
    assert out == [Bar(X, 0, 10.0, 22.0, 9.0, 21.5, 24.0)]


def test_a_gap_hands_the_period_out_when_the_next_one_starts() -> None:
    agg = BarAggregator(X, 60 * S)
    for k in range(10):  # the last two bars of the minute never come
        assert agg.add(five(k * 5, 10, 11, 9, 10)) == []
    out = agg.add(five(60, 20, 21, 19, 20))
    assert [b.ts_ns for b in out] == [0]
    assert out[0].close == 10


def test_a_period_joined_late_is_dropped() -> None:
    agg = BarAggregator(X, 60 * S)
    out = []
    for k in range(3, 24):  # starts 15 s into the first minute
        out += agg.add(five(k * 5, k, k + 1, k - 1, k))
    assert [b.ts_ns for b in out] == [60 * S]
    assert out[0].open == 12  # the second minute, whole


def test_flush_returns_the_bar_in_progress() -> None:
    agg = BarAggregator(X, 60 * S)
    agg.add(five(0, 1, 2, 0.5, 1.5))
    assert agg.flush() == Bar(X, 0, 1.0, 2.0, 0.5, 1.5, 1.0)
    assert agg.flush() is None


@pytest.mark.parametrize("size_s", [3, 7, 62])
def test_sizes_that_are_not_multiples_of_five_seconds_are_refused(size_s: int) -> None:
    with pytest.raises(ConfigError, match="cannot be built"):
        BarAggregator(X, size_s * S)


# --- bars that follow the exchange's sessions ----------------------------------------------------

NY = "America/New_York"
H, DAY = 3_600 * S, 86_400 * S


def five_seconds(date: str, seed: int, start: str = "04:00", end: str = "19:59:55") -> pd.DataFrame:
    """A day of IB's 5-second bars, pre-market to after hours by default (whole volumes)."""
    index = pd.date_range(f"{date} {start}", f"{date} {end}", freq="5s", tz=NY, name="timestamp")
    rng = np.random.default_rng(seed)
    close = 100 + np.cumsum(rng.normal(0, 0.02, len(index))).round(2)
    open_ = np.r_[close[0], close[:-1]]
    spread = rng.uniform(0, 0.03, (2, len(index))).round(2)
    return pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) + spread[0],
            "low": np.minimum(open_, close) - spread[1],
            "close": close,
            "volume": rng.integers(0, 500, len(index)).astype(float),
        },
        index=index.tz_convert("UTC"),
    )


def live(frame: pd.DataFrame, size_ns: int, calendar: SessionCalendar | None) -> list[Bar]:
    agg = BarAggregator(X, size_ns, calendar=calendar)
    out: list[Bar] = []
    for bar in DataFrameFeed(frame, X):
        out += agg.add(bar)
    return out


def historical(frame: pd.DataFrame, bar_size: str, calendar: SessionCalendar) -> list[Bar]:
    """The backtest's way: bars outside the sessions dropped, then resampled by session."""
    ts = frame.index.as_unit("ns").asi8
    inside = calendar.sessions_between(int(ts[0]), int(ts[-1])).locate(ts) >= 0
    return list(DataFrameFeed(resample_bars(frame[inside], bar_size, calendar=calendar), X))


# Friday 8 March 2024 (New York on standard time) and Monday the 11th (daylight time).
AROUND_DST = ("2024-03-08", "2024-03-11")


@pytest.mark.parametrize(("size_ns", "bar_size"), [(DAY, "1d"), (H, "1h"), (4 * H, "4h")])
def test_live_bars_of_the_regular_session_equal_the_resampled_ones_across_a_dst_change(
    size_ns: int, bar_size: str
) -> None:
    frame = pd.concat([five_seconds(d, seed) for seed, d in enumerate(AROUND_DST)])
    calendar = calendar_for(X)  # 09:30 to 16:00 New York
    got = live(frame, size_ns, calendar)
    assert got == historical(frame, bar_size, calendar)
    if bar_size == "1d":
        assert [b.timestamp.tz_convert(NY).isoformat() for b in got] == [
            "2024-03-08T00:00:00-05:00",  # the session's date at midnight New York, as IB's
            "2024-03-11T00:00:00-04:00",
        ]
        regular = frame.between_time("14:30", "20:59:55")  # UTC: 09:30-15:59:55 New York
        assert got[0].open == regular["open"].iloc[0]
        assert got[0].volume == regular.loc["2024-03-08", "volume"].sum()


def test_live_daily_bars_with_extended_hours_equal_the_resampled_ones() -> None:
    frame = pd.concat([five_seconds(d, seed) for seed, d in enumerate(AROUND_DST)])
    calendar = calendar_for(X, extended=True)  # 04:00 to 20:00
    got = live(frame, DAY, calendar)
    assert got == historical(frame, "1d", calendar)
    assert got[1].volume == frame.loc["2024-03-11", "volume"].sum()


def test_a_daily_bar_is_out_with_the_sessions_last_bar_or_the_first_after_a_gap() -> None:
    frame = five_seconds("2024-03-08", 1)
    agg = BarAggregator(X, DAY, calendar=calendar_for(X))
    out_at = [bar.ts_ns for bar in DataFrameFeed(frame, X) if agg.add(bar)]
    assert out_at == [int(pd.Timestamp("2024-03-08 15:59:55", tz=NY).value)]
    gap = frame.drop(frame.between_time("20:55", "20:59:55").index)  # its last 5 minutes
    agg = BarAggregator(X, DAY, calendar=calendar_for(X))
    out_at = [bar.ts_ns for bar in DataFrameFeed(gap, X) if agg.add(bar)]
    assert out_at == [int(pd.Timestamp("2024-03-08 16:00", tz=NY).value)]  # after hours


def test_a_session_joined_late_gives_no_daily_bar() -> None:
    frame = five_seconds("2024-03-08", 2, start="10:00")
    assert live(frame, DAY, calendar_for(X)) == []


def test_a_forex_day_runs_from_five_pm_new_york_across_midnight() -> None:
    eur = Forex("EUR", currency="USD")
    frame = pd.concat(
        [
            five_seconds("2024-03-06", 3, "16:00", "23:59:55"),
            five_seconds("2024-03-07", 4, "00:00", "17:30"),
        ]
    )
    calendar = calendar_for(eur)
    agg = BarAggregator(eur, DAY, calendar=calendar)
    got = [b for bar in DataFrameFeed(frame, eur) for b in agg.add(bar)]
    ts = frame.index.as_unit("ns").asi8
    inside = calendar.sessions_between(int(ts[0]), int(ts[-1])).locate(ts) >= 0
    want = list(DataFrameFeed(resample_bars(frame[inside], "1d", calendar=calendar), eur))
    # Resampling also makes bars of the two sessions the data enter and leave in the middle,
    # which the live bars leave out (their first bar is missing, or they are not over).
    assert got == want[1:2]
    assert got[0].timestamp == pd.Timestamp("2024-03-07", tz=NY)  # 17:00 on the 6th to the 7th


def _sparse(days: list[str]) -> pd.DataFrame:
    """A few 5-second bars per US session: at its open, inside, and its last."""
    rows = []
    for k, day in enumerate(days):
        for t in ("09:30:00", "12:00:00", "15:59:55"):
            rows.append(
                (pd.Timestamp(f"{day} {t}", tz=NY), 100.0 + k, 101.0 + k, 99.0 + k, 100.5 + k, 10.0)
            )
    index = pd.DatetimeIndex([r[0] for r in rows], name="timestamp").tz_convert("UTC")
    return pd.DataFrame(
        [r[1:] for r in rows], index=index, columns=["open", "high", "low", "close", "volume"]
    )


def test_blocks_of_sessions_and_weeks_follow_resample_bars() -> None:
    calendar = calendar_for(X)
    # 2024-03-11 to 15: five sessions; blocks of two sessions count from Monday 1970-01-05.
    week = _sparse(["2024-03-11", "2024-03-12", "2024-03-13", "2024-03-14", "2024-03-15"])
    agg = BarAggregator(X, 7 * DAY, calendar=calendar)
    got = [b for bar in DataFrameFeed(week, X) for b in agg.add(bar)]
    assert got == list(DataFrameFeed(resample_bars(week, "1w", calendar=calendar), X))
    assert got[0].timestamp == pd.Timestamp("2024-03-11", tz=NY)
    two = live(week, 2 * DAY, calendar)
    resampled = list(DataFrameFeed(resample_bars(week, "2d", calendar=calendar), X))
    assert two == [b for b in resampled if b.ts_ns >= two[0].ts_ns][: len(two)]
    assert len(two) == 2  # the block holding the 11th began on the 8th: joined late, left out
