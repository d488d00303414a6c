from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from ibkrfw import ConfigError, Forex, Future, Stock
from ibkrfw.data.sessions import USEquityCalendar, WeekdayCalendar, calendar_for

NY = "America/New_York"


def _ny(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=NY).tz_convert("UTC")


def test_us_equity_sessions_skip_holidays_and_keep_early_closes() -> None:
    cal = USEquityCalendar()
    assert cal.source == "exchange_calendars"
    frame = cal.frame("2024-11-27", "2024-12-02")
    assert [str(d.date()) for d in frame.index] == ["2024-11-27", "2024-11-29", "2024-12-02"]
    assert frame.loc["2024-11-27", "open"] == _ny("2024-11-27 09:30")
    assert frame.loc["2024-11-27", "close"] == _ny("2024-11-27 16:00")
    assert frame.loc["2024-11-29", "close"] == _ny("2024-11-29 13:00")  # the day after Thanksgiving
    summer = cal.frame("2024-07-01", "2024-07-01")
    assert summer["open"].iloc[0] == pd.Timestamp("2024-07-01 13:30", tz="UTC")  # daylight time


def test_extended_hours_run_from_four_to_eight_and_to_five_on_early_closes() -> None:
    frame = USEquityCalendar(extended=True).frame("2024-11-27", "2024-11-29")
    assert frame["open"].tolist() == [_ny("2024-11-27 04:00"), _ny("2024-11-29 04:00")]
    assert frame["close"].tolist() == [_ny("2024-11-27 20:00"), _ny("2024-11-29 17:00")]


def test_without_exchange_calendars_every_weekday_is_a_session(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "exchange_calendars", None)  # the import now fails
    cal = USEquityCalendar()
    assert cal.source == "weekdays"
    frame = cal.frame("2024-11-25", "2024-12-01")
    assert len(frame) == 5  # Thanksgiving included, the weekend not
    assert frame.loc["2024-11-29", "close"] == _ny("2024-11-29 16:00")  # no early close
    chosen = USEquityCalendar(use_exchange_calendars=False)
    monkeypatch.undo()
    assert chosen.source == "weekdays"


def test_dates_outside_the_exchange_calendars_range_fall_back_to_weekdays() -> None:
    days = USEquityCalendar().sessions("1989-12-28", "1990-01-03").day
    assert [str(d) for d in days] == [
        "1989-12-28",
        "1989-12-29",
        "1990-01-01",  # a holiday, unknown before 1990-01-02: weekdays only
        "1990-01-02",
        "1990-01-03",
    ]


def test_the_forex_day_runs_from_five_pm_the_day_before() -> None:
    frame = calendar_for(Forex("EUR")).frame("2024-11-29", "2024-12-02")
    assert frame.index.strftime("%a").tolist() == ["Fri", "Mon"]
    assert frame["open"].iloc[1] == _ny("2024-12-01 17:00")  # Sunday evening
    assert frame["close"].iloc[1] == _ny("2024-12-02 17:00")


def test_whole_local_days_and_locating_times() -> None:
    cal = WeekdayCalendar("Europe/Berlin")
    s = cal.sessions("2024-11-29", "2024-12-02")
    ts = np.array(
        [
            pd.Timestamp("2024-11-29 00:00", tz="Europe/Berlin").value,
            pd.Timestamp("2024-11-30 12:00", tz="Europe/Berlin").value,  # Saturday
            pd.Timestamp("2024-12-02 23:59", tz="Europe/Berlin").value,
        ]
    )
    assert s.locate(ts).tolist() == [0, -1, 1]


def test_calendar_for_each_kind_of_instrument() -> None:
    assert isinstance(calendar_for(Stock("AAPL")), USEquityCalendar)
    assert calendar_for(Stock("AAPL"), extended=True).extended  # type: ignore[attr-defined]
    future = calendar_for(Future("FDAX", expiry="202612", timezone="Europe/Berlin"))
    assert isinstance(future, WeekdayCalendar) and future.timezone == "Europe/Berlin"
    assert isinstance(calendar_for(Stock("SAP", currency="EUR")), WeekdayCalendar)


def test_bad_calendar_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        WeekdayCalendar("Mars/Olympus")
    with pytest.raises(ConfigError):
        WeekdayCalendar(NY, "9h30")
    with pytest.raises(ConfigError, match="not a date"):
        USEquityCalendar().sessions("yesterday", "2024-01-01")
