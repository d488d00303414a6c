"""The Option instrument: validation, identity, storage, and its commission."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from ibkrfw import ConfigError, Instrument, Option, Side, Stock
from ibkrfw.sim import IBKRFixedCommission, IBKROptionCommission, IBKRTieredCommission

CALL = Option("AAPL", expiry="20261218", strike=200, right="C")
PUT = Option("AAPL", expiry="20261218", strike="202.5", right="put")


def test_an_option_knows_its_contract() -> None:
    assert (CALL.id, PUT.id) == ("AAPL.20261218.C200.SMART", "AAPL.20261218.P202.5.SMART")
    assert (CALL.multiplier, CALL.asset_class.value, PUT.right) == (Decimal(100), "OPT", "P")
    assert CALL.expiry_date == dt.date(2026, 12, 18)
    assert (CALL.is_call, PUT.is_call) == (True, False)
    assert (CALL.intrinsic_value(215.5), CALL.intrinsic_value(150.0)) == (15.5, 0.0)
    assert PUT.intrinsic_value(200.0) == 2.5
    assert CALL.underlying() == Stock("AAPL")
    assert Option("AAPL", expiry="20261218", strike=200, right="P") != CALL
    assert len({CALL, Option("AAPL", expiry="20261218", strike="200.00", right="CALL")}) == 1
    # IB lists the standard trading class as the symbol: the same contract, the same key
    assert Option("AAPL", expiry="20261218", strike=200, right="C", trading_class="AAPL") == CALL


def test_an_option_is_stored_and_read_back() -> None:
    spx = Option(
        "SPX", expiry="20270115", strike=5000, right="P", multiplier=100, exchange="CBOE",
        trading_class="SPXW", settlement="cash",
    )  # fmt: skip
    for option in (CALL, PUT, spx):
        assert Instrument.from_dict(option.to_dict()) == option


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"expiry": "202612"}, "'202612' is not a date; give the last trading day as YYYYMMDD"),
        ({"expiry": "20261332"}, "'20261332' is not a date"),
        ({"strike": 0}, "Option strike: must be a positive price, got 0"),
        ({"strike": "abc"}, "Option strike: strike must be a number"),
        ({"right": "X"}, "'X' is not a right; give 'C' \\(a call\\) or 'P' \\(a put\\)"),
        ({"right": None}, "None is not a right"),
        ({"settlement": "stock"}, "'stock' is not a settlement"),
        ({"multiplier": 0}, "must be positive"),
    ],
)
def test_a_wrong_option_is_refused_with_the_fix(fields: dict[str, object], message: str) -> None:
    spec: dict[str, object] = {"expiry": "20261218", "strike": 200, "right": "C", **fields}
    with pytest.raises(ConfigError, match=message):
        Option("AAPL", **spec)  # type: ignore[arg-type]


def test_ib_option_commission_by_premium_with_the_minimum_once_per_order() -> None:
    ib = IBKROptionCommission()
    buy = Side.BUY
    assert ib.commission(CALL, buy, Decimal(1), Decimal("2.50")) == Decimal("1.00")  # minimum
    assert ib.commission(CALL, buy, Decimal(10), Decimal("2.50")) == Decimal("6.50")
    assert ib.commission(CALL, buy, Decimal(10), Decimal("0.10")) == Decimal("6.50")
    assert ib.commission(CALL, buy, Decimal(10), Decimal("0.05")) == Decimal("5.00")
    assert ib.commission(CALL, buy, Decimal(10), Decimal("0.04")) == Decimal("2.50")
    # a partially filled order pays the minimum once: 1 + 1 contracts at 0.65 = 1.30 in all
    from ibkrfw.sim.commission import OrderSoFar

    first = ib.commission(CALL, buy, Decimal(1), Decimal(3))
    second = ib.commission(
        CALL, buy, Decimal(1), Decimal(3), before=OrderSoFar(Decimal(1), Decimal(300), first)
    )
    assert (first, second, first + second) == (Decimal("1.00"), Decimal("0.30"), Decimal("1.30"))
    fees = IBKROptionCommission(regulatory="0.05")
    assert fees.commission(CALL, Side.SELL, Decimal(10), Decimal(3)) == Decimal("7.00")


def test_stock_schedules_charge_options_by_contract_not_by_share() -> None:
    for model in (IBKRFixedCommission(), IBKRTieredCommission()):
        assert model.commission(CALL, Side.BUY, Decimal(10), Decimal("2.50")) == Decimal("6.50")
    cheap = IBKRFixedCommission(options=IBKROptionCommission(minimum=0, rates=[(0, "0.15")]))
    assert cheap.commission(CALL, Side.BUY, Decimal(2), Decimal(1)) == Decimal("0.30")
    with pytest.raises(ConfigError, match="is not an IBKROptionCommission"):
        IBKRFixedCommission(options=IBKRFixedCommission())  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="must start at premium 0"):
        IBKROptionCommission(rates=[("0.05", "0.5")])
