"""Orders as TWS treats them: global cancel, what-if, buying power, execution times."""

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
