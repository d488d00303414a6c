"""Contracts, market data, orders and the account through the official ibapi client."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ibkrfw import Stock
from ibkrfw.testing import bars_frame
from ibkrfw.testing.faketws import FakeTWS

ACME = Stock("ACME")
# open, high, low, close (volume 1,000 each)
ROWS = [(100, 101, 99, 100), (100.5, 102, 99.5, 101), (101, 103, 98, 102), (96, 97, 95, 96.5)]
Connect = Callable[[int], Any]


@pytest.fixture
def tws(request: pytest.FixtureRequest) -> Iterator[FakeTWS]:
    marker = request.node.get_closest_marker("volume_limit")
    limit = marker.args[0] if marker else None
    with FakeTWS(data={ACME: bars_frame(ROWS)}, volume_limit=limit) as server:
        yield server


def test_contract_details_and_an_unknown_contract(tws: FakeTWS, ib: Any, ready: Any) -> None:
    client = ready()
    client.reqContractDetails(11, ib.contract())
    req_id, details = client.expect("contractDetails")
    assert req_id == 11
    assert (details.contract.conId, details.contract.symbol, details.minTick) == (
        100001,
        "ACME",
        0.01,
    )
    assert details.timeZoneId == "America/New_York"
    client.expect("contractDetailsEnd", a0=11)
    client.reqContractDetails(12, ib.contract("NOPE"))
    assert "No security definition" in client.expect("error", a0=12, a1=200)[2]


def test_market_data_follows_the_replayed_bars(tws: FakeTWS, ib: Any, ready: Any) -> None:
    client = ready()
    client.reqMktData(5, ib.contract(), "", False, False, [])
    client.expect("marketDataType", a0=5)
    assert tws.step() == 1
    assert client.expect("tickPrice", a0=5, a1=4)[2] == 100.0  # LAST = the bar's close
    tws.step()
    assert client.expect("tickPrice", a0=5, a1=4)[2] == 101.0
    client.cancelMktData(5)
    assert tws.wait_for(lambda: bool(tws.messages("in", msg_id=2)))


def test_a_market_order_fills_at_the_next_bars_open(tws: FakeTWS, ib: Any, ready: Any) -> None:
    client = ready()
    tws.step()  # bar 0
    client.placeOrder(1, ib.contract(), ib.order("BUY", 100))
    order_id, contract, order, state = client.expect("openOrder")
    assert (order_id, contract.symbol, order.action, float(order.totalQuantity)) == (
        1,
        "ACME",
        "BUY",
        100.0,
    )
    assert state == "Submitted"
    assert client.expect("orderStatus", a1="Submitted")[:4] == (1, "Submitted", 0.0, 100.0)
    tws.step()  # bar 1 opens at 100.5
    _, contract, execution = client.expect("execDetails")
    assert (execution.side, float(execution.shares), execution.price) == ("BOT", 100.0, 100.5)
    assert execution.acctNumber == "DU1234567"
    assert client.expect("commissionReport")[0] == execution.execId
    assert client.expect("orderStatus", a1="Filled")[:5] == (1, "Filled", 100.0, 0.0, 100.5)
    client.reqPositions()
    assert client.expect("position") == ("DU1234567", "ACME", 100.0, 100.5)
    client.expect("positionEnd")
    client.reqAccountSummary(9, "All", "NetLiquidation,TotalCashValue")
    summary = {client.expect("accountSummary")[2]: None for _ in range(2)}
    assert set(summary) == {"NetLiquidation", "TotalCashValue"}
    client.expect("accountSummaryEnd", a0=9)
    client.reqExecutions(3, _execution_filter())
    assert client.expect("execDetails", a0=3)[2].execId == execution.execId
    client.expect("execDetailsEnd", a0=3)
    sent = tws.messages("in", client_id=1, msg_id=3)[0].fields  # what the client sent
    assert (sent[16], float(sent[17]), sent[18]) == ("BUY", 100.0, "MKT")


def _execution_filter() -> Any:
    from ibapi.execution import ExecutionFilter

    return ExecutionFilter()


def test_the_9_81_client_defaults_are_refused_as_a_current_tws_does(
    tws: FakeTWS, ib: Any, ready: Any
) -> None:
    client = ready()
    order = ib.order("BUY", 1)
    if not hasattr(order, "eTradeOnly"):
        pytest.skip("a 10.x client has no eTradeOnly attribute")
    order.eTradeOnly = True
    client.placeOrder(1, ib.contract(), order)
    assert "EtradeOnly" in client.expect("error", a0=1, a1=10268)[2]
    order.eTradeOnly, order.firmQuoteOnly = False, True
    client.placeOrder(2, ib.contract(), order)
    assert "firmQuoteOnly" in client.expect("error", a0=2, a1=10269)[2]


@pytest.mark.volume_limit(0.1)
def test_a_volume_cap_fills_in_parts(tws: FakeTWS, ib: Any, ready: Any) -> None:
    client = ready()
    client.placeOrder(4, ib.contract(), ib.order("BUY", 250, tif="GTC"))
    client.expect("orderStatus", a0=4, a1="Submitted")
    tws.step()  # 100 of 1,000
    assert client.expect("orderStatus", a0=4, a2=100.0)[:4] == (4, "Submitted", 100.0, 150.0)
    tws.step()
    client.expect("orderStatus", a0=4, a2=200.0)
    tws.step()
    assert client.expect("orderStatus", a0=4, a1="Filled")[:4] == (4, "Filled", 250.0, 0.0)
    fills = tws.messages("out", client_id=1, msg_id=11)
    assert [float(m.fields[19]) for m in fills] == [100.0, 100.0, 50.0]


def test_open_orders_and_cancel(tws: FakeTWS, ib: Any, ready: Any) -> None:
    client = ready()
    client.placeOrder(7, ib.contract(), ib.order("BUY", 10, "LMT", 90.0, tif="GTC"))
    client.expect("orderStatus", a0=7, a1="Submitted")
    client.placeOrder(8, ib.contract(), ib.order("BUY", 10, "LMT", 90.0))  # DAY
    client.expect("orderStatus", a0=8, a1="Submitted")  # the fake has it: now replay
    tws.step(2)  # never as low as 90: the DAY order expires at the end of its day
    assert client.expect("error", a0=8, a1=202)[2] == "Order Canceled - reason:expired"
    client.expect("orderStatus", a0=8, a1="Cancelled")
    client.reqOpenOrders()
    assert client.expect("openOrder")[0] == 7
    client.expect("openOrderEnd")
    client.cancel(7)
    assert client.expect("error", a0=7, a1=202)[2].startswith("Order Canceled")
    client.expect("orderStatus", a0=7, a1="Cancelled")
    client.cancel(99)
    client.expect("error", a0=99, a1=135)


def test_account_updates_completed_orders_and_string_ticks(
    tws: FakeTWS, ib: Any, ready: Any
) -> None:
    client = ready()
    client.reqMktData(3, ib.contract(), "", False, False, [])
    assert client.expect("tickGeneric", a0=3) == (3, 49, 0.0)  # HALTED: no
    client.placeOrder(1, ib.contract(), ib.order("BUY", 10, tif="GTC"))
    client.expect("orderStatus", a0=1, a1="Submitted")
    tws.step()  # fills at 100
    client.expect("orderStatus", a0=1, a1="Filled")
    assert client.expect("tickString", a0=3)[1:] == (45, "1704153600")  # LAST_TIMESTAMP
    client.reqAccountUpdates(True, "DU1234567")
    values = {}
    while True:
        name, args = client.events.get(timeout=10)
        if name == "updateAccountValue":
            values[args[0]] = args[1]
        elif name == "updatePortfolio":
            assert args[:3] == ("ACME", 10.0, 100.0)
        elif name == "accountDownloadEnd":
            break
    assert float(values["NetLiquidation"]) == 1_000_000.0
    assert float(values["TotalCashValue"]) == 1_000_000.0 - 1_000.0
    client.reqAccountUpdatesMulti(8, "DU1234567", "", False)
    client.expect("accountUpdateMulti", a0=8)
    client.expect("accountUpdateMultiEnd", a0=8)
    client.reqCompletedOrders(False)
    assert client.expect("completedOrder") == ("ACME", 1, "BUY", "Filled", "Filled")
    client.expect("completedOrdersEnd")


def test_modify_a_resting_order_by_placing_it_again(tws: FakeTWS, ib: Any, ready: Any) -> None:
    client = ready()
    client.placeOrder(5, ib.contract(), ib.order("BUY", 10, "LMT", 90.0, tif="GTC"))
    client.expect("orderStatus", a0=5, a1="Submitted")
    client.placeOrder(5, ib.contract(), ib.order("BUY", 20, "LMT", 100.75, tif="GTC"))  # same id
    _, _, order, _ = client.expect("openOrder", a0=5)
    assert (float(order.totalQuantity), order.lmtPrice) == (20.0, 100.75)
    tws.step()  # bar 0 opens at 100, under the new limit (and above the old one)
    assert client.expect("orderStatus", a0=5, a1="Filled")[:5] == (5, "Filled", 20.0, 0.0, 100.0)
    client.placeOrder(5, ib.contract(), ib.order("BUY", 20, "LMT", 101.0, tif="GTC"))
    assert client.expect("error", a0=5, a1=103)[2] == "Duplicate order id"


def test_trailing_stops_and_good_till_date(tws: FakeTWS, ib: Any, ready: Any) -> None:
    client = ready()
    tws.step()  # bar 0 closes at 100
    trail = ib.order("SELL", 10, "TRAIL", tif="GTC")
    trail.auxPrice = 2.0  # no trailStopPrice: it starts 2 under the last price, at 98
    client.placeOrder(1, ib.contract(), trail)
    _, _, sent, _ = client.expect("openOrder", a0=1)
    assert (sent.orderType, sent.auxPrice, sent.trailStopPrice) == ("TRAIL", 2.0, 98.0)
    gtd = ib.order("BUY", 10, "LMT", 90.0, tif="GTD")
    gtd.goodTillDate = "20240103 12:00:00 UTC"
    client.placeOrder(2, ib.contract(), gtd)
    client.expect("orderStatus", a0=2, a1="Submitted")
    tws.step()  # bar 1's high of 102 lifts the stop to 100
    tws.step()  # bar 2 falls to 98: the stop fills at 100; the GTD order has expired
    assert client.expect("orderStatus", a0=1, a1="Filled")[4] == 100.0
    client.expect("orderStatus", a0=2, a1="Cancelled")


def test_a_modification_follows_the_engines_rules(tws: FakeTWS, ib: Any, ready: Any) -> None:
    client = ready()
    client.placeOrder(6, ib.contract(), ib.order("BUY", 10, "LMT", 90.0, tif="GTC"))
    client.expect("orderStatus", a0=6, a1="Submitted")
    client.placeOrder(6, ib.contract(), ib.order("SELL", 10, "LMT", 90.0, tif="GTC"))
    assert "the side of an order cannot change" in client.expect("error", a0=6, a1=201)[2]
