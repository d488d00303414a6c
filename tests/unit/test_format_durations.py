"""Durations in the statistics read as days and clock times, never as pandas' repr."""

from __future__ import annotations

import pandas as pd
import pytest

from ibkrfw.analysis import format_stats


@pytest.mark.parametrize(
    ("value", "daily", "text"),
    [
        ("0s", True, "0 days"),
        ("0s", False, "0 days"),
        ("1D", True, "1 day"),
        ("1D1h", True, "1 day"),  # a daylight-saving hour is not shown
        ("3569D1h", True, "3,569 days"),
        ("3D4h", False, "3 days 04:00"),
        ("1D", False, "1 day"),
        ("5min30s", False, "00:05:30"),
        ("2h", False, "02:00"),
        ("1D0.4s", False, "1 day"),
    ],
)
def test_durations_are_days_and_clock_times(value: str, daily: bool, text: str) -> None:
    stats = pd.Series({"Duration": pd.Timedelta(value)})
    assert format_stats(stats, daily=daily).tolist() == [text]
