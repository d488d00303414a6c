"""Model orders, translated for IB, reach the fake TWS as the same orders."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pandas as pd
import pytest

from ibkrfw import OrderRequest, OrderType, Stock
from ibkrfw.ibkr import to_ib_contract, to_ib_order
from ibkrfw.model.orders import TimeInForce
from ibkrfw.testing import bars_frame
from ibkrfw.testing.faketws import FakeTWS

ACME = Stock("ACME")
D = Decimal
GTD = int(pd.Timestamp("2026-12-01 21:00", tz="UTC").value)


@pytest.fixture
def tws() -> Iterator[FakeTWS]:
    with FakeTWS(data={ACME: bars_frame([(100, 101, 99, 100)])}) as server:
        yield server


REQUESTS = [
    OrderRequest.market(ACME, "BUY", 100),
    OrderRequest.limit(ACME, "SELL", 50, "99.50", tif=TimeInForce.GTC, tag="s1"),
    OrderRequest.stop(ACME, "SELL", 50, "95"),
    OrderRequest(ACME, "BUY", 10, OrderType.STOP_LIMIT, stop_price=D("103"), limit_price=D("104")),
    OrderRequest(ACME, "SELL", 10, OrderType.TRAILING_STOP, stop_price=D("97"), trail_amount=D(2)),
    OrderRequest(
        ACME, "SELL", 10, OrderType.TRAILING_STOP, stop_price=D("97"), trail_percent=D("1.5")
    ),
    OrderRequest(ACME, "BUY", 10, OrderType.LIMIT_ON_CLOSE, limit_price=D("99")),
    OrderRequest.market(ACME, "BUY", 10, tif=TimeInForce.OPG),
    OrderRequest.limit(ACME, "BUY", 10, "90", tif=TimeInForce.GTD, good_till_ns=GTD, oca_group="g"),
]


@pytest.mark.parametrize("request_", REQUESTS, ids=lambda r: f"{r.order_type}-{r.tif}")
def test_what_the_fake_receives_is_the_model_order(
    tws: FakeTWS, ready: Any, request_: OrderRequest
) -> None:
    client = ready()
    client.placeOrder(1, to_ib_contract(ACME), to_ib_order(request_, order_id=1))
    client.expect("orderStatus", a0=1, a1="Submitted")
    (order,) = list(tws.market.orders)
    assert order.request == request_
