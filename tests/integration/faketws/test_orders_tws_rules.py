"""Orders as TWS treats them: global cancel, what-if, buying power, execution times."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ibkrfw import Stock
from ibkrfw.errors import ConfigError
from ibkrfw.sim import IBKRFixedCommission
from ibkrfw.testing import bars_frame
from ibkrfw.testing.faketws import FakeTWS

ACME = Stock("ACME")
ROWS = [(100, 101, 99, 100), (100.5, 102, 99.5, 101), (101, 103, 98, 102), (96, 97, 95, 96.5)]


@pytest.fixture
def tws() -> Iterator[FakeTWS]:
    with FakeTWS(data={ACME: bars_frame(ROWS)}, commission=IBKRFixedCommission()) as server:
        yield server


def test_global_cancel_cancels_every_working_order_of_every_client(
    tws: FakeTWS, ib: Any, ready: Any
) -> None:
    first, second = ready(1), ready(2)
    tws.step()
    first.placeOrder(1, ib.contract(), ib.order("BUY", 10, "LMT", 90.0, tif="GTC"))
    first.expect("orderStatus", a0=1, a1="Submitted")
    first.placeOrder(2, ib.contract(), ib.order("SELL", 10, "LMT", 150.0, tif="GTC"))
    first.expect("orderStatus", a0=2, a1="Submitted")
    second.placeOrder(1, ib.contract(), ib.order("BUY", 5, "LMT", 80.0, tif="GTC"))
    second.expect("orderStatus", a0=1, a1="Submitted")
    second.global_cancel()
    for client, order_id in ((first, 1), (first, 2), (second, 1)):
        assert client.expect("error", a0=order_id, a1=202)[2].startswith("Order Canceled")
        client.expect("orderStatus", a0=order_id, a1="Cancelled")
    before = len(first.seen)
    first.reqAllOpenOrders()
    first.expect("openOrderEnd")
    assert "openOrder" not in [name for name, _ in first.seen[before:]]
    tws.step(3)  # nothing is left to fill
    assert not tws.messages("out", msg_id=11)


def test_a_what_if_order_gets_the_estimates_and_is_never_worked(
    tws: FakeTWS, ib: Any, ready: Any
) -> None:
    client = ready()
    tws.step()  # the last price: 100
    order = ib.order("BUY", 1000, "LMT", 100.0)
    order.whatIf = True
    client.placeOrder(5, ib.contract(), order)
    _, _, echoed, status = client.expect("openOrder", a0=5)
    assert (echoed.whatIf, status) == (True, "PreSubmitted")
    state = client.expect("orderState", a0=5)[1]
    # Reg T: 50 % of 100,000 initial, half that maintenance; commission 1000 * 0.005 = 5.00
    assert (state.initMarginBefore, state.initMarginChange, state.initMarginAfter) == (
        "0.00",
        "50000.00",
        "50000.00",
    )
    assert (state.maintMarginAfter, state.equityWithLoanBefore) == ("25000.00", "1000000.00")
    assert state.equityWithLoanAfter == "999995.00"
    fee = getattr(state, "commissionAndFees", None) or state.commission  # 10.x renamed it
    currency = getattr(state, "commissionAndFeesCurrency", None) or state.commissionCurrency
    assert (fee, currency) == (5.0, "USD")
    tws.step(3)  # bars at and below 100: a real order would have filled
    client.reqPositions()
    client.expect("positionEnd")
    names = [name for name, _ in client.seen]
    assert "orderStatus" not in names and "execDetails" not in names and "position" not in names
    assert not tws.messages("out", msg_id=3) and not tws.messages("out", msg_id=11)
    client.reqAllOpenOrders()
    client.expect("openOrderEnd")
    assert [name for name, _ in client.seen].count("openOrder") == 1


def test_an_order_beyond_buying_power_is_rejected_with_201(
    tws: FakeTWS, ib: Any, ready: Any
) -> None:
    client = ready()
    tws.step()  # the last price: 100, on a $1,000,000 Reg T margin account
    client.placeOrder(1, ib.contract(), ib.order("BUY", 100_000_000))
    text = client.expect("error", a0=1, a1=201)[2]
    assert text == (
        "Order rejected - reason:YOUR ORDER IS NOT ACCEPTED. IN ORDER TO OBTAIN THE DESIRED "
        "POSITION YOUR EQUITY WITH LOAN VALUE [1000000.00 USD] MUST EXCEED THE INITIAL MARGIN "
        "[5000000000.00 USD]"
    )
    tws.step()
    client.reqPositions()
    client.expect("positionEnd")
    assert "position" not in [name for name, _ in client.seen]
    client.reqAccountSummary(9, "All", "TotalCashValue")
    assert client.expect("accountSummary", a0=9)[3] == "1000000.00"
    # within buying power (two times the equity at 50 %): fills
    client.placeOrder(2, ib.contract(), ib.order("BUY", 19_000))
    client.expect("orderStatus", a0=2, a1="Submitted")
    tws.step()
    client.expect("orderStatus", a0=2, a1="Filled")
    client.reqPositions()
    assert client.expect("position")[2] == 19_000.0


def test_a_cash_account_buys_only_with_its_cash_and_never_sells_short(
    ib: Any, connect: Any
) -> None:
    frame = bars_frame(ROWS)
    with FakeTWS(data={ACME: frame}, cash=100_000, account_kind="cash") as server:
        client = connect(1, server)
        client.expect("nextValidId")
        server.step()
        client.placeOrder(1, ib.contract(), ib.order("BUY", 1_001, "LMT", 100.0))
        assert "insufficient cash" in client.expect("error", a0=1, a1=201)[2]
        client.placeOrder(2, ib.contract(), ib.order("SELL", 1))
        assert "cannot sell short" in client.expect("error", a0=2, a1=201)[2]
        client.placeOrder(3, ib.contract(), ib.order("BUY", 990, "LMT", 100.0))
        client.expect("orderStatus", a0=3, a1="Submitted")
        client.reqAccountSummary(4, "All", "BuyingPower")
        assert client.expect("accountSummary", a0=4)[3] == "100000.00"


def test_the_account_kind_is_checked() -> None:
    with pytest.raises(ConfigError, match="'marginal' is not an account kind"):
        FakeTWS(account_kind="marginal")  # type: ignore[arg-type]
