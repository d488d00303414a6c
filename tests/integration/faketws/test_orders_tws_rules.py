"""Orders as TWS treats them: global cancel, what-if, buying power, execution times."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ibkrfw import Stock
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
