from __future__ import annotations

from decimal import Decimal

import pandas as pd
import pytest

from ibkrfw import ConfigError, Forex, Future, Option, OrderError, OrderRequest, OrderType, Stock
from ibkrfw.ibkr import from_ib_contract, from_ib_order, to_ib_contract, to_ib_order
from ibkrfw.model.orders import TimeInForce

AAPL = Stock("AAPL", primary_exchange="NASDAQ")
ES = Future("ES", expiry="202612", exchange="CME", multiplier=50, tick_size="0.25")
EUR = Forex("EUR", currency="USD")
D = Decimal
GTD = int(pd.Timestamp("2026-12-01 21:00", tz="UTC").value)

REQUESTS = [
    OrderRequest.market(AAPL, "BUY", 100),
    OrderRequest.limit(AAPL, "SELL", 50, "189.50", tif=TimeInForce.GTC),
    OrderRequest.stop(AAPL, "SELL", 50, "180"),
    OrderRequest(AAPL, "BUY", 10, OrderType.STOP_LIMIT, stop_price=D("190"), limit_price=D("191")),
    OrderRequest(AAPL, "SELL", 10, OrderType.TRAILING_STOP, stop_price=D("185"), trail_amount=D(2)),
    OrderRequest(
        AAPL, "SELL", 10, OrderType.TRAILING_STOP, stop_price=D("185"), trail_percent=D("1.5")
    ),
    OrderRequest(AAPL, "BUY", 10, OrderType.MARKET_ON_CLOSE),
    OrderRequest(AAPL, "BUY", 10, OrderType.LIMIT_ON_CLOSE, limit_price=D("150")),
    OrderRequest.market(AAPL, "BUY", 10, tif=TimeInForce.OPG),
    OrderRequest.limit(AAPL, "BUY", 10, "150", tif=TimeInForce.GTD, good_till_ns=GTD),
    OrderRequest.limit(ES, "BUY", 1, "5000.25", oca_group="exits", tag="strategy-1"),
]


@pytest.mark.parametrize("request_", REQUESTS, ids=lambda r: f"{r.order_type}-{r.tif}")
def test_model_orders_round_trip_through_ib_orders(request_: OrderRequest) -> None:
    ib = to_ib_order(request_, order_id=7)
    assert ib.orderId == 7
    if hasattr(ib, "eTradeOnly"):
        assert ib.eTradeOnly is False and ib.firmQuoteOnly is False
    assert from_ib_order(request_.instrument, ib) == request_


def test_the_fields_ib_reads() -> None:
    trail = to_ib_order(REQUESTS[4], order_id=1)
    assert (trail.orderType, trail.auxPrice, trail.trailStopPrice) == ("TRAIL", 2.0, 185.0)
    percent = to_ib_order(REQUESTS[5], order_id=1)
    assert percent.trailingPercent == 1.5
    gtd = to_ib_order(REQUESTS[9], order_id=1)
    assert (gtd.tif, gtd.goodTillDate) == ("GTD", "20261201-21:00:00")
    oca = to_ib_order(
        REQUESTS[10], order_id=1, order_ref="ref-9", account="DU1", parent_id=3, transmit=False
    )
    assert (oca.ocaGroup, oca.ocaType, oca.orderRef, oca.account) == ("exits", 3, "ref-9", "DU1")
    assert (oca.parentId, oca.transmit) == (3, False)
    assert to_ib_order(REQUESTS[0], order_id=1).orderRef == ""


def test_contracts_both_ways() -> None:
    stock = to_ib_contract(AAPL)
    assert (stock.symbol, stock.secType, stock.exchange, stock.primaryExchange) == (
        "AAPL", "STK", "SMART", "NASDAQ",
    )  # fmt: skip
    future = to_ib_contract(ES)
    assert (future.secType, future.lastTradeDateOrContractMonth, future.multiplier) == (
        "FUT", "202612", "50",
    )  # fmt: skip
    assert (to_ib_contract(EUR).secType, to_ib_contract(EUR).currency) == ("CASH", "USD")
    assert from_ib_contract(stock) == AAPL
    assert from_ib_contract(future, tick_size=0.25) == ES
    assert from_ib_contract(to_ib_contract(EUR), tick_size=5e-05) == EUR
    bond = to_ib_contract(AAPL)
    bond.secType = "BOND"
    with pytest.raises(ConfigError, match="'BOND' is not supported"):
        from_ib_contract(bond)


def test_option_contracts_both_ways() -> None:
    call = Option("AAPL", expiry="20261218", strike="202.5", right="C")
    contract = to_ib_contract(call)
    assert (
        contract.secType, contract.lastTradeDateOrContractMonth, contract.strike,
        contract.right, contract.multiplier, contract.tradingClass,
    ) == ("OPT", "20261218", 202.5, "C", "100", "")  # fmt: skip
    assert from_ib_contract(contract) == call
    weekly = Option(
        "SPX", expiry="20261218", strike=5000, right="P", trading_class="SPXW",
        settlement="cash", exchange="CBOE",
    )  # fmt: skip
    assert from_ib_contract(to_ib_contract(weekly)) == weekly  # an index option: cash
    contract.right = "X"
    with pytest.raises(ConfigError, match="'X' is not a right"):
        from_ib_contract(contract)


def test_ib_orders_without_a_model_counterpart_are_refused() -> None:
    ib = to_ib_order(REQUESTS[0], order_id=1)
    ib.orderType = "REL"
    with pytest.raises(OrderError, match="'REL' has no model counterpart"):
        from_ib_order(AAPL, ib)
    ib.orderType, ib.tif = "MKT", "FOK"
    with pytest.raises(OrderError, match="'FOK'"):
        from_ib_order(AAPL, ib)


def test_an_algo_is_sent_as_algo_strategy_and_params_and_read_back() -> None:
    from ibkrfw import Adaptive, Vwap

    plain = to_ib_order(OrderRequest.market(Stock("AAPL"), "BUY", 10), order_id=1)
    assert plain.algoStrategy == "" and not plain.algoParams  # no algo: nothing sent
    request = OrderRequest.market(Stock("AAPL"), "BUY", 10, algo=Vwap("0.15", no_take_liq=True))
    order = to_ib_order(request, order_id=2)
    assert order.algoStrategy == "Vwap"
    assert [(p.tag, p.value) for p in order.algoParams] == [
        ("maxPctVol", "0.15"),
        ("startTime", ""),
        ("endTime", ""),
        ("allowPastEndTime", "0"),
        ("noTakeLiq", "1"),
    ]
    assert from_ib_order(Stock("AAPL"), order) == request
    adaptive = OrderRequest.limit(Stock("AAPL"), "SELL", 5, 190, algo=Adaptive("Urgent"))
    assert from_ib_order(Stock("AAPL"), to_ib_order(adaptive, order_id=3)) == adaptive


def test_an_ib_algo_the_model_does_not_have_is_refused() -> None:
    order = to_ib_order(OrderRequest.market(Stock("AAPL"), "BUY", 10), order_id=1)
    order.algoStrategy = "DarkIce"
    with pytest.raises(OrderError, match="IB algo 'DarkIce' has no model counterpart"):
        from_ib_order(Stock("AAPL"), order)
