from __future__ import annotations

import datetime as dt
import sys

import numpy as np
import pandas as pd
import pytest

from ibkrfw import ConfigError, Forex, Future, Stock
from ibkrfw.data.sessions import (
    Session,
    SessionCalendar,
    SessionLookup,
    Sessions,
    USEquityCalendar,
    WeekdayCalendar,
    calendar_for,
)

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


def _ns(text: str, tz: str = NY) -> int:
    return int(pd.Timestamp(text, tz=tz).value)


def test_session_lookup_finds_the_session_of_a_time_the_next_one_and_a_dates() -> None:
    lookup = SessionLookup(USEquityCalendar())
    noon = lookup.at(_ns("2024-11-29 12:00"))
    assert noon == Session(dt.date(2024, 11, 29), _ns("2024-11-29 09:30"), _ns("2024-11-29 13:00"))
    assert lookup.at(_ns("2024-11-29 13:00")) is None  # the close is excluded
    # After the early close, over the weekend: the next session is Monday's.
    assert lookup.until(_ns("2024-11-29 13:00")).day == dt.date(2024, 12, 2)  # type: ignore[union-attr]
    assert lookup.until(_ns("2024-11-27 10:00")).day == dt.date(2024, 11, 27)  # type: ignore[union-attr]
    # Thanksgiving: no session that day; the first to open after a session's open is the next.
    assert lookup.dated(dt.date(2024, 11, 28)) is None
    assert lookup.opening_after(_ns("2024-11-27 09:30")).day == dt.date(2024, 11, 29)  # type: ignore[union-attr]
    assert lookup.opening_after(_ns("2024-11-29 09:29")).day == dt.date(2024, 11, 29)  # type: ignore[union-attr]
    # Times asked out of order reload what they need.
    assert lookup.at(_ns("2023-03-01 10:00")).day == dt.date(2023, 3, 1)  # type: ignore[union-attr]


def test_session_lookup_across_a_long_closure_and_with_no_session_at_all() -> None:
    class Gap(SessionCalendar):
        """Weekday sessions, none in the ten weeks from 2024-01-08."""

        timezone = NY
        source = "test"
        _weekdays = WeekdayCalendar(NY, "09:30", "16:00")

        def sessions(self, start: object, end: object) -> Sessions:
            s = self._weekdays.sessions(start, end)
            keep = (s.day < np.datetime64("2024-01-08")) | (s.day >= np.datetime64("2024-03-18"))
            return Sessions(s.day[keep], s.open_ns[keep], s.close_ns[keep])

    lookup = SessionLookup(Gap())
    assert lookup.until(_ns("2024-01-05 17:00")).day == dt.date(2024, 3, 18)  # type: ignore[union-attr]
    assert lookup.opening_after(_ns("2024-01-05 17:00")).day == dt.date(2024, 3, 18)  # type: ignore[union-attr]

    class Never(SessionCalendar):
        timezone = NY
        source = "test"

        def sessions(self, start: object, end: object) -> Sessions:
            empty = np.empty(0, np.int64)
            return Sessions(np.empty(0, "datetime64[D]"), empty, empty)

    never = SessionLookup(Never())
    assert never.until(_ns("2024-01-05 17:00")) is None
    assert never.opening_after(_ns("2024-01-05 17:00")) is None
    assert never.at(_ns("2024-01-05 12:00")) is None


def test_session_lookup_tells_a_daily_bars_stamp_across_a_change_of_clocks() -> None:
    lookup = SessionLookup(WeekdayCalendar(NY, "09:30", "16:00"))
    assert lookup.midnight_day(_ns("2024-03-11")) == dt.date(2024, 3, 11)  # daylight time
    assert lookup.midnight_day(_ns("2024-03-08")) == dt.date(2024, 3, 8)
    assert lookup.midnight_day(_ns("2024-03-11") + 1) is None
    assert lookup.midnight_day(_ns("2024-03-11 00:00", "UTC")) is None  # 20:00 in New York
    assert lookup.local_midnight_ns(dt.date(2024, 3, 11)) == _ns("2024-03-11")
