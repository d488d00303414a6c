"""Positions and executions as TWS serves them, through the official ibapi client.

reqPositions is a subscription: every change follows until cancelPositions. reqExecutions
applies its filter, and a filter it cannot read is answered with an error, not ignored.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from ibkrfw import Stock
from ibkrfw.testing import bars_frame
from ibkrfw.testing.faketws import FakeTWS

ACME = Stock("ACME")
ROWS = [(100, 101, 99, 100), (100.5, 102, 99.5, 101), (101, 103, 98, 102), (96, 97, 95, 96.5)]


@pytest.fixture
def tws() -> Iterator[FakeTWS]:
    with FakeTWS(data={ACME: bars_frame(ROWS)}) as server:
        yield server


def test_fills_reach_the_subscription_until_it_is_cancelled(
    tws: FakeTWS, ib: Any, ready: Any
) -> None:
    client = ready()
    client.reqPositions()
    client.expect("positionEnd")  # nothing held yet
    tws.step()
    client.placeOrder(1, ib.contract(), ib.order("BUY", 100))
    client.expect("orderStatus", a0=1, a1="Submitted")  # the order rests before the bar
    tws.step()  # filled at 100.5
    assert client.expect("position") == ("DU1234567", "ACME", 100.0, 100.5)
    client.placeOrder(2, ib.contract(), ib.order("SELL", 100))
    client.expect("orderStatus", a0=2, a1="Submitted")
    tws.step()
    assert client.expect("position")[2] == 0.0  # a closed position is sent as 0
    client.cancelPositions()
    assert tws.wait_for(lambda: bool(tws.messages("in", msg_id=64)), timeout=5)
    client.placeOrder(3, ib.contract(), ib.order("BUY", 10))
    client.expect("orderStatus", a0=3, a1="Submitted")
    tws.step()
    client.expect("orderStatus", a0=3, a1="Filled")
    assert not tws.messages("out", msg_id=61)[2:]  # the two updates, none after the cancel


def test_an_unreadable_execution_filter_is_an_error_naming_it(
    tws: FakeTWS, ib: Any, ready: Any
) -> None:
    from ibapi.execution import ExecutionFilter

    client = ready()
    wanted = ExecutionFilter()
    wanted.time = "yesterday"
    client.reqExecutions(5, wanted)
    _, code, text = client.expect("error", a0=5)
    assert code == 321
    assert "'yesterday' is not a time" in text
    assert "yyyymmdd hh:mm:ss" in text


def test_a_snapshot_sends_the_ticks_then_its_end_and_nothing_more(
    tws: FakeTWS, ib: Any, ready: Any
) -> None:
    client = ready()
    tws.step()
    client.reqMktData(8, ib.contract(), "", True, False, [])
    assert client.expect("tickPrice", a0=8, a1=4)[2] == 100.0  # LAST
    assert tws.wait_for(lambda: bool(tws.messages("out", msg_id=57)), timeout=5)
    assert tws.messages("out", msg_id=57)[-1].fields[-1] == "8"  # tickSnapshotEnd
    tws.step()
    client.reqCurrentTime()
    client.expect("currentTime")
    assert not [e for e in client.seen if e[0] == "tickPrice" and e[1][2] == 101.0]
