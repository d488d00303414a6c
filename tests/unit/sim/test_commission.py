from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pandas as pd
import pytest

from ibkrfw import ConfigError, Future, Side, Stock
from ibkrfw.sim import (
    IBKR_US_STOCK_FEES,
    IBKRFixedCommission,
    IBKRTieredCommission,
    OrderSoFar,
    PercentCommission,
    PerShareCommission,
    USStockFees,
    ZeroCommission,
)

X = Stock("X")
D = Decimal
BUY, SELL = Side.BUY, Side.SELL


def ts(day: str) -> int:
    return int(pd.Timestamp(day, tz="America/New_York").value)


@pytest.mark.parametrize(
    ("quantity", "price", "expected"),
    [(100, "25", "1.00"), (1000, "25", "5.00"), (1000, "0.25", "2.50")],
)
def test_ibkr_fixed_reproduces_ibs_published_examples(
    quantity: int, price: str, expected: str
) -> None:
    assert IBKRFixedCommission().commission(X, BUY, D(quantity), D(price)) == D(expected)


def test_ibkr_fixed_passes_transaction_fees_through_on_sales() -> None:
    # 5.00 commission + SEC 0.0000278 * 25,000 + FINRA TAF 0.000166 * 1,000
    fee = IBKRFixedCommission().commission(X, SELL, D(1000), D(25))
    assert fee == D("5.00") + D("0.695") + D("0.166")


def test_ibkr_fixed_cap_can_go_below_the_minimum() -> None:
    assert IBKRFixedCommission().commission(X, BUY, D(100), D("0.50")) == D("0.50")  # 1 % of $50


def test_minimum_is_per_order_across_partial_fills() -> None:
    ib = IBKRFixedCommission()
    first = ib.commission(X, BUY, D(100), D(25))
    second = ib.commission(X, BUY, D(100), D(25), before=OrderSoFar(D(100), D(2500), first))
    third = ib.commission(X, BUY, D(300), D(25), before=OrderSoFar(D(200), D(5000), first))
    assert (first, second, third) == (D(1), D(0), D("1.5"))  # 500 shares: $2.50 in all
    per_share = PerShareCommission("0.01", minimum=2)
    a = per_share.commission(X, BUY, D(50), D(10))
    b = per_share.commission(X, BUY, D(150), D(10), before=OrderSoFar(D(50), D(500), a))
    assert (a, b) == (D("2.00"), D("0.00"))
    pct = PercentCommission("0.001", minimum=5)
    a = pct.commission(X, BUY, D(100), D(10))
    b = pct.commission(X, BUY, D(1000), D(10), before=OrderSoFar(D(100), D(1000), a))
    assert (a, b) == (D("5.00"), D("6.00"))  # 11 total on an 11,000 order


def test_ibkr_tiered_by_hand() -> None:
    # 100 @ 25 buy: commission max(0.0035 * 100, 0.35) = 0.35; clearing 0.0002 * 100 = 0.02;
    # CAT 0.000048 * 100 = 0.0048; pass-through (0.000175 + 0.000565) * 0.35 = 0.000259
    tiered = IBKRTieredCommission()
    assert tiered.commission(X, BUY, D(100), D(25), ts("2024-03-01 10:00")) == D("0.375059")
    # the sale adds SEC 0.0000278 * 2,500 = 0.0695 and TAF 0.000166 * 100 = 0.0166
    sell = tiered.commission(X, SELL, D(100), D(25), ts("2024-03-01 11:00"))
    assert sell == D("0.375059") + D("0.0695") + D("0.0166")


def test_ibkr_tiered_rate_falls_with_monthly_volume_and_resets_each_month() -> None:
    tiered = IBKRTieredCommission(fees=[_no_fees()])
    big = tiered.commission(X, BUY, D(300_000), D(100), ts("2024-03-04 10:00"))
    assert big == D("1050.00")  # 0.0035 / share up to 300,000 this month
    assert tiered.month_volume() == D(300_000)
    assert tiered.commission(X, BUY, D(1000), D(100), ts("2024-03-05 10:00")) == D("2.00")
    # a new month (New York time) starts from the first tier again
    assert tiered.commission(X, BUY, D(1000), D(100), ts("2024-04-01 09:31")) == D("3.50")
    assert tiered.month_volume() == D(1000)


def _no_fees(effective: dt.date = dt.date.min, sec: str = "0") -> USStockFees:
    return USStockFees(effective, sec, 0, 0, 0, 0, 0, 0)


def test_fee_table_is_dated_and_replaceable() -> None:
    table = [_no_fees(dt.date.min, "0.00002"), _no_fees(dt.date(2024, 5, 22), "0.00003")]
    ib = IBKRFixedCommission(fees=table)
    before = ib.commission(X, SELL, D(100), D(100), ts("2024-05-21 15:00"))
    after = ib.commission(X, SELL, D(100), D(100), ts("2024-05-22 10:00"))
    assert (before, after) == (D("1.20"), D("1.30"))  # $1 minimum + SEC on $10,000


def test_default_table_carries_the_reference_rates() -> None:
    (fees,) = IBKR_US_STOCK_FEES
    assert (fees.sec_fee_rate, fees.finra_taf_per_share, fees.clearing_per_share) == (
        D("0.0000278"),
        D("0.000166"),
        D("0.00020"),
    )


def test_multiplier_enters_the_value() -> None:
    es = Future("ES", expiry="202612", exchange="CME", multiplier=50, tick_size="0.25")
    assert PercentCommission("0.0001").commission(es, BUY, D(2), D(4000)) == D("40.00")


@pytest.mark.parametrize(
    "build",
    [
        lambda: PerShareCommission(-1),
        lambda: IBKRFixedCommission(minimum="x"),
        lambda: IBKRTieredCommission(tiers=[(100, "0.01")]),
        lambda: IBKRTieredCommission(tiers=[(200, "0.01"), (100, "0.02"), (None, "0.03")]),
        lambda: IBKRFixedCommission(fees=[]),
        lambda: IBKRFixedCommission(
            fees=[_no_fees(dt.date(2024, 1, 1)), _no_fees(dt.date(2023, 1, 1))]
        ),
    ],
)
def test_bad_configuration_is_a_config_error(build: object) -> None:
    with pytest.raises(ConfigError):
        build()  # type: ignore[operator]


def test_no_schedule_in_force_is_a_config_error() -> None:
    ib = IBKRFixedCommission(fees=[_no_fees(dt.date(2024, 1, 1))])
    with pytest.raises(ConfigError, match="no fee schedule"):
        ib.commission(X, SELL, D(1), D(1), ts("2023-06-01 10:00"))


def test_zero_is_zero() -> None:
    assert ZeroCommission().commission(X, BUY, D(100), D(25)) == 0
