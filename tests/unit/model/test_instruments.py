from __future__ import annotations

from decimal import Decimal

import attrs
import pandas as pd
import pytest

from ibkrfw import ConfigError, Forex, Future, Instrument, OrderError, Stock
from ibkrfw.model import MONTH_CODES, month_code, month_of_code


def test_stock_defaults_are_us_smart_cents() -> None:
    s = Stock("AAPL")
    assert (s.exchange, s.currency, s.tick_size, s.lot_size, s.multiplier) == (
        "SMART",
        "USD",
        Decimal("0.01"),
        Decimal(1),
        Decimal(1),
    )
    assert s.id == "AAPL.SMART"


def test_instruments_are_hashable_values() -> None:
    assert Stock("AAPL") == Stock("AAPL")
    assert {Stock("AAPL"): 1}[Stock("AAPL")] == 1
    assert Stock("AAPL") != Stock("MSFT")


def test_kinds_with_same_symbol_differ() -> None:
    assert Stock("EUR") != Forex("EUR")


def test_future_id_and_multiplier() -> None:
    es = Future("ES", expiry="202612", exchange="CME", multiplier=50, tick_size="0.25")
    assert es.id == "ES.202612.CME"
    assert es.multiplier == Decimal(50)


def test_forex_defaults_follow_idealpro() -> None:
    eur = Forex("EUR")
    assert eur.id == "EUR.USD"
    assert eur.tick_size == Decimal("0.00005")


@pytest.mark.parametrize(
    ("tick", "price", "expected"),
    [
        ("0.01", 10.6, "10.60"),
        ("0.01", 100.125, "100.12"),
        ("0.25", 4000.13, "4000.25"),
        ("0.25", 4000.12, "4000.00"),
        ("0.00005", 1.123456, "1.12345"),
    ],
)
def test_round_price_snaps_to_the_tick_grid(tick: str, price: float, expected: str) -> None:
    result = Stock("X", tick_size=tick).round_price(price)
    assert result == Decimal(expected)
    assert str(result) == expected


def test_round_quantity_rounds_toward_zero_to_lots() -> None:
    s = Stock("X", lot_size=100)
    assert s.round_quantity(250) == Decimal(200)
    assert s.round_quantity(-250) == Decimal(-200)


def test_quantity_for_value_truncates_and_handles_bad_prices() -> None:
    s = Stock("X")
    assert s.quantity_for_value(1000.0, 33.0) == Decimal(30)
    assert s.quantity_for_value(-1000.0, 33.0) == Decimal(-30)
    assert s.quantity_for_value(1000.0, float("nan")) == 0
    assert s.quantity_for_value(1000.0, 0.0) == 0


def test_quantity_for_value_forgives_float_rounding_but_nothing_more() -> None:
    s = Stock("X")
    assert 2200 / 1.1 < 2000  # 1999.9999999999998
    assert s.quantity_for_value(2200 / 1.1, 100.0) == Decimal(20)
    assert s.quantity_for_value(-2200 / 1.1, 100.0) == Decimal(-20)
    assert s.quantity_for_value(1999.999, 100.0) == Decimal(19)
    assert Stock("Y", lot_size=100).quantity_for_value(0.3 / 0.1 * 100, 1.0) == Decimal(300)


@pytest.mark.parametrize("bad", [0, -1, "abc", float("nan")])
def test_non_positive_or_non_numeric_sizes_are_config_errors(bad: object) -> None:
    with pytest.raises(ConfigError):
        Stock("X", tick_size=bad)  # type: ignore[arg-type]


def test_empty_symbol_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="symbol"):
        Stock("  ")


def test_round_price_rejects_nan() -> None:
    with pytest.raises(OrderError, match="finite"):
        Stock("X").round_price(float("nan"))


# --- futures: expiries and contract months -------------------------------------------------------
def test_future_expiry_month_gives_the_contract_month_and_no_last_trading_day() -> None:
    es = Future("ES", expiry="202612", exchange="CME")
    assert (es.contract_month, es.month_code, es.local_symbol) == ("202612", "Z", "ESZ6")
    assert es.last_trade_date == ""
    with pytest.raises(ConfigError, match=r"ES.202612.CME: its last trading day is not known"):
        es.days_to_expiry(0)


def test_future_day_expiry_is_the_last_trading_day() -> None:
    es = Future("ES", expiry="20261218", exchange="CME", timezone="America/Chicago")
    assert (es.last_trade_date, es.contract_month, es.month_code) == ("20261218", "202612", "Z")
    # 2026-12-18 03:00 UTC is still the 17th in Chicago
    assert es.days_to_expiry(int(pd.Timestamp("2026-12-18 03:00", tz="UTC").value)) == 1
    assert es.days_to_expiry(int(pd.Timestamp("2026-12-18 15:00", tz="UTC").value)) == 0
    assert es.days_to_expiry(int(pd.Timestamp("2026-12-21 15:00", tz="UTC").value)) == -3


def test_future_contract_month_can_follow_the_last_trading_day() -> None:
    cl = Future("CL", expiry="202701", last_trade_date="20261120", exchange="NYMEX")
    assert (cl.month_code, cl.local_symbol, cl.last_trade_day().isoformat()) == (
        "F", "CLF7", "2026-11-20",
    )  # fmt: skip


def test_future_descriptions_take_no_part_in_equality_or_the_stored_id() -> None:
    plain = Future("CL", expiry="20261120", exchange="NYMEX")
    described = Future("CL", expiry="20261120", contract_month="202701", exchange="NYMEX")
    assert plain == described and hash(plain) == hash(described)
    assert described.id == "CL.20261120.NYMEX"
    again = Instrument.from_dict(described.to_dict())
    assert isinstance(again, Future) and again.contract_month == "202701"
    new_fields = ("contract_month", "last_trade_date")
    old = {k: v for k, v in plain.to_dict().items() if k not in new_fields}
    assert Instrument.from_dict(old) == plain  # dicts stored before these fields still load


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"expiry": "2026-12"}, r"Future expiry: '2026-12' is neither a contract month YYYYMM"),
        ({"expiry": "202613"}, r"Future expiry: '202613' is neither"),
        ({"expiry": "20260231"}, r"Future expiry: '20260231' is neither"),
        ({"expiry": "202612", "contract_month": "2026"}, r"contract_month: '2026' is not a month"),
        ({"expiry": "202612", "last_trade_date": "2026-12-18"}, r"last_trade_date: '2026-12-18'"),
        ({"expiry": "20261218", "last_trade_date": "20261217"}, r"differs from the expiry"),
        ({"expiry": "202703", "contract_month": "202612"}, r"'202612' differs from the expiry"),
        ({"expiry": "202612", "last_trade_date": "20281218"}, r"more than a year away"),
    ],
)
def test_future_bad_dates_are_config_errors_naming_the_value(
    kwargs: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        Future("ES", exchange="CME", **kwargs)


def test_future_evolved_to_another_expiry_cannot_keep_a_stale_month_or_day() -> None:
    for expiry, other in (("202612", "202703"), ("20261218", "20270319")):
        es = Future("ES", expiry=expiry, exchange="CME")
        with pytest.raises(ConfigError, match=r"differs from the expiry"):
            attrs.evolve(es, expiry=other)


def test_month_codes_round_trip_and_refuse_what_is_no_month() -> None:
    assert [month_code(m) for m in range(1, 13)] == list(MONTH_CODES)
    assert all(month_of_code(month_code(m)) == m for m in range(1, 13))
    assert month_of_code(" h ") == 3
    with pytest.raises(ConfigError, match=r"month_code\(13\): give a month number from 1 to 12"):
        month_code(13)
    with pytest.raises(ConfigError, match=r"month_of_code\('A'\): not a futures month code"):
        month_of_code("A")


def test_days_to_expiry_refuses_a_time_that_is_not_nanoseconds() -> None:
    es = Future("ES", expiry="20261218", exchange="CME")
    with pytest.raises(ConfigError, match=r"days_to_expiry\(1.5\): give a time as UTC epoch"):
        es.days_to_expiry(1.5)  # type: ignore[arg-type]
