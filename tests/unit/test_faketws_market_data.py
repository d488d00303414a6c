"""The synthetic option chain of the fake TWS: expiries and strikes."""

from __future__ import annotations

import datetime as dt

from ibkrfw.testing.faketws.market_data import strike_ladder, third_fridays


def test_third_fridays_start_after_the_day_and_cross_the_year() -> None:
    # 2024-12-20 is December's third Friday: on that day the next expiry is January's
    assert third_fridays(dt.date(2024, 12, 20), 3) == ["20250117", "20250221", "20250321"]
    assert third_fridays(dt.date(2024, 12, 19), 1) == ["20241220"]


def test_third_fridays_when_the_month_starts_on_a_friday() -> None:
    assert third_fridays(dt.date(2024, 2, 29), 1) == ["20240315"]  # March 1st is a Friday


def test_strike_ladder_steps_grow_with_the_price_and_stay_positive() -> None:
    assert strike_ladder(20.2, 2) == [18.0, 19.0, 20.0, 21.0, 22.0]
    assert strike_ladder(101.0, 1) == [97.5, 100.0, 102.5]
    assert strike_ladder(333.0, 1) == [330.0, 335.0, 340.0]
    assert strike_ladder(1.2, 3) == [1.0, 2.0, 3.0, 4.0]  # no strike at or below zero
