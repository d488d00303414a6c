from __future__ import annotations

from decimal import Decimal

import pytest

from ibkrfw import ConfigError, Forex, Future, OrderError, Stock


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
