"""The fake TWS with a client that does not use ibapi: ib_async, which speaks the protocol itself.

Every wait is bounded; nothing leaves 127.0.0.1. Where ib_async and the fake disagreed, the fake
was corrected to TWS's behaviour (reqPositions is a subscription: TWS sends every change).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import ib_async  # the project's `test` extra installs it
import pytest

from ibkrfw import Stock
from ibkrfw.sim import PerShareCommission
from ibkrfw.testing import bars_frame
from ibkrfw.testing.faketws import FakeTWS

pytestmark = pytest.mark.timeout(60)

Filter = ib_async.ExecutionFilter
WAIT = 10.0  # seconds: the longest any step waits
ACME = Stock("ACME")
# open, high, low, close (volume 1,000 each), one bar a day
ROWS = [(100, 101, 99, 100), (100.5, 102, 99.5, 101), (101, 103, 98, 102), (96, 97, 95, 96.5)]


@pytest.fixture
def tws() -> Iterator[FakeTWS]:
    with FakeTWS(
        data={ACME: bars_frame(ROWS)}, commission=PerShareCommission(Decimal("0.01"))
    ) as server:
        yield server


@pytest.fixture
def ib(tws: FakeTWS) -> Iterator[Any]:
    # ib_async asks asyncio for the current loop; since Python 3.12 there is none by default
    # outside a running loop (a DeprecationWarning, an error here): give it its own, closed after
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    client = ib_async.IB()
    client.RequestTimeout = WAIT  # a request the fake never answered would fail, not hang
    try:
        client.connect("127.0.0.1", tws.port, clientId=7, timeout=WAIT)
        yield client
    finally:
        client.disconnect()
        loop.run_until_complete(asyncio.sleep(0.05))  # the transport closes on the loop
        asyncio.set_event_loop(None)
        loop.close()


def until(ib: Any, condition: Callable[[], object], what: str) -> None:
    """Run ib_async's loop until ``condition`` holds; fail after WAIT seconds."""
    import time

    deadline = time.monotonic() + WAIT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"ib_async: no {what} within {WAIT} s")
        ib.sleep(0.02)


def acme() -> Any:
    return ib_async.Stock("ACME", "SMART", "USD")


def test_connects_with_the_handshake_ids_and_accounts(tws: FakeTWS, ib: Any) -> None:
    assert ib.isConnected()
    assert ib.client.serverVersion() == 157
    assert ib.managedAccounts() == ["DU1234567"]
    assert ib.client.getReqId() >= 1  # nextValidId arrived
    assert tws.client_ids == [7]
    # its start-up requests: positions, open orders, account updates, executions, completed
    assert {r.msg_id for r in tws.messages("in", client_id=7)} >= {61, 5, 6, 7, 99}
    ib.client.reqManagedAccts()  # answered again, as TWS does
    until(ib, lambda: len(tws.messages("out", client_id=7, msg_id=15)) == 2, "accounts")
    assert ib.reqCurrentTime().year >= 2024


def test_contract_details_and_an_unknown_contract(tws: FakeTWS, ib: Any) -> None:
    [contract] = ib.qualifyContracts(acme())
    assert (contract.conId, contract.symbol, contract.currency) == (100001, "ACME", "USD")
    [details] = ib.reqContractDetails(acme())
    assert details.minTick == 0.01
    assert details.timeZoneId == "America/New_York"
    errors: list[tuple[int, int]] = []
    ib.errorEvent += lambda req_id, code, text, contract: errors.append((req_id, code))
    assert ib.reqContractDetails(ib_async.Stock("NOPE", "SMART", "USD")) == []
    assert [code for _, code in errors] == [200]  # No security definition


def test_historical_bars_are_the_replayed_ones(tws: FakeTWS, ib: Any) -> None:
    tws.step(3)
    bars = ib.reqHistoricalData(acme(), "", "10 D", "1 day", "TRADES", True, timeout=WAIT)
    assert [(b.open, b.close) for b in bars] == [(100, 100), (100.5, 101), (101, 102)]
    assert str(bars[0].date) == "2024-01-01"


def test_history_kept_up_to_date_dates_its_updates_as_its_bars(tws: FakeTWS, ib: Any) -> None:
    tws.step(2)
    bars = ib.reqHistoricalData(
        acme(), "", "10 D", "1 day", "TRADES", True, keepUpToDate=True, timeout=WAIT
    )
    assert len(bars) == 2
    tws.step()  # the update is dated yyyymmdd like the bars (it was epoch seconds)
    until(ib, lambda: len(bars) == 3, "the history update")
    assert (str(bars[-1].date), bars[-1].open, bars[-1].close) == ("2024-01-03", 101, 102)
    ib.cancelHistoricalData(bars)


def test_market_data_and_real_time_bars_follow_the_replay(tws: FakeTWS, ib: Any) -> None:
    contract = ib.qualifyContracts(acme())[0]
    ticker = ib.reqMktData(contract)
    realtime = ib.reqRealTimeBars(contract, 5, "TRADES", False)
    # both requests reach the fake before the bar is replayed
    until(ib, lambda: tws.messages("in", msg_id=1) and tws.messages("in", msg_id=50), "requests")
    tws.step()
    until(ib, lambda: ticker.last == 100.0 and len(realtime) == 1, "tick and bar")
    assert (realtime[0].open_, realtime[0].close) == (100, 100)
    assert ticker.bid < ticker.last < ticker.ask
    tws.step()
    until(ib, lambda: ticker.last == 101.0 and len(realtime) == 2, "second tick and bar")
    ib.cancelMktData(contract)
    ib.cancelRealTimeBars(realtime)
    assert tws.wait_for(lambda: bool(tws.messages("in", msg_id=51)), timeout=WAIT)


def test_a_snapshot_ends_with_tick_snapshot_end(tws: FakeTWS, ib: Any) -> None:
    contract = ib.qualifyContracts(acme())[0]
    tws.step()
    # reqTickers waits for tickSnapshotEnd, which the fake did not send
    [ticker] = ib.reqTickers(contract)
    assert (ticker.last, ticker.bid, ticker.ask) == (100.0, 99.99, 100.01)
    tws.step()
    ib.sleep(0.1)
    assert ticker.last == 100.0  # a snapshot is not a subscription


def test_a_market_order_fills_with_its_execution_and_commission(tws: FakeTWS, ib: Any) -> None:
    contract = ib.qualifyContracts(acme())[0]
    tws.step()
    trade = ib.placeOrder(contract, ib_async.MarketOrder("BUY", 100))
    until(ib, lambda: trade.orderStatus.status == "Submitted", "Submitted")
    tws.step()  # the next bar opens at 100.5
    until(ib, lambda: trade.isDone(), "fill")
    assert trade.orderStatus.status == "Filled"
    assert (trade.orderStatus.filled, trade.orderStatus.avgFillPrice) == (100, 100.5)
    [fill] = trade.fills
    execution = fill.execution
    assert (execution.side, execution.shares, execution.price) == ("BOT", 100, 100.5)
    assert execution.acctNumber == "DU1234567"
    until(ib, lambda: fill.commissionReport.execId == execution.execId, "commission report")
    assert fill.commissionReport.commission == pytest.approx(1.0)  # 100 shares at 1 cent
    assert fill.commissionReport.currency == "USD"
    # the start-up reqPositions subscription sees the change, as with TWS
    until(ib, lambda: ib.positions(), "position update")
    [position] = ib.positions()
    assert (position.contract.symbol, position.position, position.avgCost) == ("ACME", 100, 100.5)
    assert [f.execution.execId for f in ib.reqExecutions()] == [execution.execId]
    # the filter applies, as in TWS (the fake used to ignore it)
    assert [f.execution.execId for f in ib.reqExecutions(Filter(side="BUY"))] == [execution.execId]
    assert ib.reqExecutions(Filter(symbol="NOPE")) == []
    assert ib.reqExecutions(Filter(side="SELL")) == []
    assert len(ib.reqExecutions(Filter(symbol="acme", secType="STK", exchange="SMART"))) == 1
    later = execution.time + dt.timedelta(seconds=1)
    assert ib.reqExecutions(Filter(time=f"{later:%Y%m%d-%H:%M:%S}")) == []
    [done] = ib.reqCompletedOrders(False)
    assert (done.contract.symbol, done.order.action, done.orderStatus.status) == (
        "ACME",
        "BUY",
        "Filled",
    )


def test_a_limit_order_rests_and_is_cancelled(tws: FakeTWS, ib: Any) -> None:
    contract = ib.qualifyContracts(acme())[0]
    tws.step()
    trade = ib.placeOrder(contract, ib_async.LimitOrder("BUY", 10, 50.0))
    until(ib, lambda: trade.orderStatus.status == "Submitted", "Submitted")
    tws.step()  # the price stays far above the limit
    ib.sleep(0.1)
    assert trade.orderStatus.status == "Submitted"
    assert [t.order.orderId for t in ib.reqOpenOrders()] == [trade.order.orderId]
    ib.cancelOrder(trade.order)
    until(ib, lambda: trade.orderStatus.status == "Cancelled", "Cancelled")
    assert trade.fills == []
    assert ib.positions() == []


def test_positions_portfolio_and_account_values_follow_fills(tws: FakeTWS, ib: Any) -> None:
    contract = ib.qualifyContracts(acme())[0]
    tws.step()
    buy = ib.placeOrder(contract, ib_async.MarketOrder("BUY", 10))
    until(ib, lambda: buy.orderStatus.status == "Submitted", "Submitted")  # before the bar
    tws.step()
    until(ib, lambda: buy.isDone() and ib.positions(), "the buy's position")
    assert [p.position for p in ib.reqPositions()] == [10]
    summary = {v.tag: v for v in ib.accountSummary()}
    assert summary["NetLiquidation"].currency == "USD"
    assert float(summary["GrossPositionValue"].value) == pytest.approx(1010.0)  # 10 at 101
    until(ib, lambda: ib.portfolio(), "portfolio update")
    [item] = ib.portfolio()
    # sent at the fill, at its price: the bar's close of 101 waits for TWS's 3-minute update
    assert (item.contract.symbol, item.position, item.marketPrice) == ("ACME", 10, 100.0)
    values = {(v.tag, v.currency): v.value for v in ib.accountValues()}
    assert ("NetLiquidation", "USD") in values
    sell = ib.placeOrder(contract, ib_async.MarketOrder("SELL", 10))
    until(ib, lambda: sell.orderStatus.status == "Submitted", "Submitted")
    tws.step()
    until(ib, lambda: sell.isDone(), "the sell's fill")
    until(ib, lambda: not ib.positions(), "the closed position")  # sent as quantity 0
    assert tws.messages("out", client_id=7, msg_id=61)[-1].fields[-2] == "0"


def test_pnl_subscriptions_follow_the_account(tws: FakeTWS, ib: Any) -> None:
    contract = ib.qualifyContracts(acme())[0]
    account = ib.managedAccounts()[0]
    tws.step()
    pnl = ib.reqPnL(account)
    single = ib.reqPnLSingle(account, "", contract.conId)
    until(ib, lambda: pnl.unrealizedPnL == 0.0 and single.position == 0, "the first P&L")
    buy = ib.placeOrder(contract, ib_async.MarketOrder("BUY", 10))
    until(ib, lambda: buy.orderStatus.status == "Submitted", "Submitted")
    tws.step()  # fills at 100.5, 0.10 commission; closes at 101
    until(ib, lambda: pnl.unrealizedPnL == 5.0, "the P&L of the fill (within a second)")
    assert pnl.realizedPnL == -0.1  # the commission
    until(ib, lambda: single.value == 1010.0, "the position's P&L")
    assert (single.position, single.unrealizedPnL, single.realizedPnL) == (10, 5.0, -0.1)
    ib.cancelPnL(account)
    ib.cancelPnLSingle(account, "", contract.conId)
    ib.sleep(0.1)
    assert not ib.pnl() and not ib.pnlSingle()
