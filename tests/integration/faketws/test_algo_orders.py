"""IB algo orders over a real socket: sent, recorded, echoed, estimated and read back."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from ibapi.execution import ExecutionFilter

from ibkrfw import Adaptive, ArrivalPrice, Order, OrderRequest, Stock, Twap, Vwap
from ibkrfw.ibkr import from_ib_order, to_ib_contract, to_ib_order
from ibkrfw.testing import LiveSession, ScriptedStrategy, bars_frame
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


def test_a_vwap_order_fills_in_the_fake_in_slices_of_the_bars_volume(
    tws: FakeTWS, ready: Any
) -> None:
    client = ready()
    tws.step()
    request = OrderRequest.market(ACME, "BUY", 250, algo=Vwap(0.1), tif="GTC")  # daily bars
    client.placeOrder(4, to_ib_contract(ACME), to_ib_order(request, order_id=4))
    client.expect("orderStatus", a0=4, a1="Submitted")
    tws.step(2)
    client.reqExecutions(9, ExecutionFilter())
    client.expect("execDetailsEnd", a0=9)
    shares = [a[2].shares for n, a in client.seen if n == "execDetails" and a[0] == 9]
    assert [Decimal(str(s)) for s in shares] == [Decimal(100), Decimal(100)]
    (order,) = list(tws.market.orders)
    assert order.filled_quantity == Decimal(200)  # the third bar would take the last 50


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


def test_an_algo_order_working_at_ib_keeps_its_algo_after_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "state"
    algo = Vwap(0.2, end_time="15:30:00 US/Eastern", allow_past_end_time=True)
    with FakeTWS.from_sample(["ACME"]) as tws:
        first = ScriptedStrategy(
            {
                0: lambda ctx, bar: ctx.buy(
                    bar.instrument, 5, limit_price="0.01", tif="GTC", algo=algo
                )
            }
        )
        with LiveSession(first, tws, state_dir=state) as session:
            session.step(2)
            session.stop()  # the process dies here: its GTC order stays working at IB
        seen: list[Order] = []
        again = ScriptedStrategy({0: lambda ctx, bar: seen.extend(ctx.open_orders())})
        with LiveSession(again, tws, state_dir=state) as session:
            session.step(2)
            session.stop()
    (order,) = seen
    assert order.request.algo == algo
    assert order.request.limit_price == Decimal("0.01")
