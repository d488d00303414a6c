"""IB algo orders over a real socket: sent, recorded, echoed, estimated and read back."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from ibkrfw import Adaptive, ArrivalPrice, OrderRequest, Stock, Twap, Vwap
from ibkrfw.ibkr import from_ib_order, to_ib_contract, to_ib_order
from ibkrfw.testing import bars_frame
from ibkrfw.testing.faketws import FakeTWS

ACME = Stock("ACME")
ROWS = [(100, 101, 99, 100), (100.5, 102, 99.5, 101), (101, 103, 98, 102)]

ALGO_REQUESTS = [
    OrderRequest.limit(ACME, "BUY", 100, "99", algo=Adaptive("Patient"), tif="GTC"),
    OrderRequest.market(ACME, "BUY", 100, algo=Adaptive()),
    OrderRequest.market(
        ACME,
        "SELL",
        300,
        algo=Vwap("0.25", "09:45:00 US/Eastern", "15:30:00 US/Eastern", allow_past_end_time=True),
    ),
    OrderRequest.limit(
        ACME, "BUY", 40, "99", algo=Twap("Matching Midpoint", end_time="16:00:00 US/Eastern")
    ),
    OrderRequest.market(ACME, "BUY", 10, algo=ArrivalPrice(0.3, "Get Done", force_completion=True)),
]


@pytest.fixture
def tws() -> Iterator[FakeTWS]:
    with FakeTWS(data={ACME: bars_frame(ROWS)}) as server:
        yield server


@pytest.mark.parametrize("request_", ALGO_REQUESTS, ids=lambda r: type(r.algo).__name__)
def test_an_algo_order_reaches_the_fake_and_comes_back_in_open_order(
    tws: FakeTWS, ready: Any, request_: OrderRequest
) -> None:
    client = ready()
    client.placeOrder(1, to_ib_contract(ACME), to_ib_order(request_, order_id=1))
    _, _, echoed, _ = client.expect("openOrder", a0=1)
    client.expect("orderStatus", a0=1, a1="Submitted")
    (order,) = list(tws.market.orders)
    assert order.request == request_  # the fake recorded the algo and its parameters
    assert request_.algo is not None
    assert echoed.algoStrategy == request_.algo.strategy
    assert [(p.tag, p.value) for p in echoed.algoParams] == list(request_.algo.params())
    assert from_ib_order(ACME, echoed) == request_  # what reconciliation reads back


def test_an_algo_order_is_read_back_by_req_all_open_orders(tws: FakeTWS, ready: Any) -> None:
    client = ready()
    request = OrderRequest.limit(ACME, "BUY", 100, "90", algo=Vwap(0.1), tif="GTC")
    client.placeOrder(7, to_ib_contract(ACME), to_ib_order(request, order_id=7))
    client.expect("orderStatus", a0=7, a1="Submitted")
    other = ready(2)
    other.reqAllOpenOrders()
    _, _, echoed, _ = other.expect("openOrder", a0=7)
    other.expect("openOrderEnd")
    assert from_ib_order(ACME, echoed).algo == Vwap(0.1)


def test_a_what_if_algo_order_is_estimated_and_never_worked(tws: FakeTWS, ready: Any) -> None:
    client = ready()
    tws.step()  # the last price: 100
    request = OrderRequest.limit(ACME, "BUY", 1000, "100", algo=Vwap(0.2, no_take_liq=True))
    order = to_ib_order(request, order_id=5)
    order.whatIf = True  # after the algo's parameters: its place shifts by them
    client.placeOrder(5, to_ib_contract(ACME), order)
    _, _, echoed, status = client.expect("openOrder", a0=5)
    assert (echoed.whatIf, status) == (True, "PreSubmitted")
    assert echoed.algoStrategy == "Vwap"
    state = client.expect("orderState", a0=5)[1]
    assert state.initMarginChange == "50000.00"
    tws.step(2)  # bars at and below 100: a real order would have filled
    assert not tws.messages("out", msg_id=11)
    assert not list(tws.market.orders)


def test_an_algo_order_fills_in_the_fake_as_its_plain_order(tws: FakeTWS, ready: Any) -> None:
    client = ready()
    tws.step()
    request = OrderRequest.market(ACME, "BUY", 10, algo=Adaptive("Urgent"))
    client.placeOrder(3, to_ib_contract(ACME), to_ib_order(request, order_id=3))
    client.expect("orderStatus", a0=3, a1="Submitted")
    tws.step()
    client.expect("orderStatus", a0=3, a1="Filled")
    (order,) = list(tws.market.orders)
    assert order.filled_quantity == Decimal(10)
