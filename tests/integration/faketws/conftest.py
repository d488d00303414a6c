"""An official ibapi client, driven from a test: every wait is bounded."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from ibapi.client import EClient  # the tests need the official client: ibkrfw[ibkr]
from ibapi.contract import Contract
from ibapi.order import Order
from ibapi.wrapper import EWrapper

from ibkrfw.testing.faketws import FakeTWS

WAIT = 10.0  # seconds: the longest any test waits for one message


class Client(EWrapper, EClient):  # type: ignore[misc]
    """Collects every callback it gets as (name, args) in a queue."""

    def __init__(self) -> None:
        EWrapper.__init__(self)
        EClient.__init__(self, wrapper=self)
        self.events: queue.Queue[tuple[str, tuple[Any, ...]]] = queue.Queue()
        self.seen: list[tuple[str, tuple[Any, ...]]] = []
        self.thread: threading.Thread | None = None

    def _put(self, name: str, *args: Any) -> None:
        self.events.put((name, args))

    # the callbacks the tests look at
    def nextValidId(self, orderId: int) -> None:  # ibapi's names
        self._put("nextValidId", orderId)

    def managedAccounts(self, accountsList: str) -> None:
        self._put("managedAccounts", accountsList)

    def currentTime(self, time: int) -> None:
        self._put("currentTime", time)

    def error(self, reqId: int, *args: Any) -> None:  # 9.81 and 10.x differ
        code = next(a for a in args if isinstance(a, int) and a >= 100)
        text = next(a for a in args if isinstance(a, str))
        self._put("error", reqId, code, text)

    def connectionClosed(self) -> None:
        self._put("connectionClosed")

    def contractDetails(self, reqId: int, details: Any) -> None:
        self._put("contractDetails", reqId, details)

    def contractDetailsEnd(self, reqId: int) -> None:
        self._put("contractDetailsEnd", reqId)

    def marketDataType(self, reqId: int, marketDataType: int) -> None:
        self._put("marketDataType", reqId, marketDataType)

    def tickPrice(self, reqId: int, tickType: int, price: float, attrib: Any) -> None:
        self._put("tickPrice", reqId, tickType, price)

    def tickSize(self, reqId: int, tickType: int, size: Any) -> None:
        self._put("tickSize", reqId, tickType, size)

    def openOrder(self, orderId: int, contract: Any, order: Any, orderState: Any) -> None:
        self._put("openOrder", orderId, contract, order, orderState.status)
        self._put("orderState", orderId, orderState)  # what-if estimates

    def openOrderEnd(self) -> None:
        self._put("openOrderEnd")

    def orderStatus(
        self,
        orderId: int,
        status: str,
        filled: Any,
        remaining: Any,
        avgFillPrice: float,
        *rest: Any,
    ) -> None:
        self._put(
            "orderStatus", orderId, status, float(filled), float(remaining), avgFillPrice, *rest
        )

    def execDetails(self, reqId: int, contract: Any, execution: Any) -> None:
        self._put("execDetails", reqId, contract, execution)

    def execDetailsEnd(self, reqId: int) -> None:
        self._put("execDetailsEnd", reqId)

    def commissionReport(self, report: Any) -> None:
        self._put("commissionReport", report.execId, report.commission)

    def commissionAndFeesReport(self, report: Any) -> None:  # 10.x
        self._put("commissionReport", report.execId, report.commissionAndFees)

    def position(self, account: str, contract: Any, pos: Any, avgCost: float) -> None:
        self._put("position", account, contract.symbol, float(pos), avgCost)

    def positionEnd(self) -> None:
        self._put("positionEnd")

    def accountSummary(self, reqId: int, account: str, tag: str, value: str, currency: str) -> None:
        self._put("accountSummary", reqId, account, tag, value, currency)

    def historicalData(self, reqId: int, bar: Any) -> None:
        self._put("historicalData", reqId, bar.date, bar.open, bar.close)

    def historicalDataEnd(self, reqId: int, start: str, end: str) -> None:
        self._put("historicalDataEnd", reqId, start, end)

    def historicalDataUpdate(self, reqId: int, bar: Any) -> None:
        self._put("historicalDataUpdate", reqId, bar.date, bar.open, bar.close)

    def realtimeBar(
        self, reqId: int, time: int, open_: float, high: float, low: float, close: float, *rest: Any
    ) -> None:
        self._put("realtimeBar", reqId, time, open_, close)

    def tickString(self, reqId: int, tickType: int, value: str) -> None:
        self._put("tickString", reqId, tickType, value)

    def tickGeneric(self, reqId: int, tickType: int, value: float) -> None:
        self._put("tickGeneric", reqId, tickType, value)

    def updateAccountValue(self, key: str, val: str, currency: str, accountName: str) -> None:
        self._put("updateAccountValue", key, val, currency, accountName)

    def updatePortfolio(
        self,
        contract: Any,
        position: Any,
        marketPrice: float,
        marketValue: float,
        averageCost: float,
        unrealizedPNL: float,
        realizedPNL: float,
        accountName: str,
    ) -> None:
        self._put(
            "updatePortfolio",
            contract.symbol,
            float(position),
            marketPrice,
            marketValue,
            averageCost,
            unrealizedPNL,
        )

    def updateAccountTime(self, timeStamp: str) -> None:
        self._put("updateAccountTime", timeStamp)

    def accountDownloadEnd(self, accountName: str) -> None:
        self._put("accountDownloadEnd", accountName)

    def accountUpdateMulti(
        self, reqId: int, account: str, modelCode: str, key: str, value: str, currency: str
    ) -> None:
        self._put("accountUpdateMulti", reqId, key, value)

    def accountUpdateMultiEnd(self, reqId: int) -> None:
        self._put("accountUpdateMultiEnd", reqId)

    def completedOrder(self, contract: Any, order: Any, orderState: Any) -> None:
        self._put(
            "completedOrder",
            contract.symbol,
            order.permId,
            order.action,
            orderState.status,
            orderState.completedStatus,
        )

    def completedOrdersEnd(self) -> None:
        self._put("completedOrdersEnd")

    def accountSummaryEnd(self, reqId: int) -> None:
        self._put("accountSummaryEnd", reqId)

    def positionMulti(
        self, reqId: int, account: str, modelCode: str, contract: Any, pos: Any, avgCost: float
    ) -> None:
        self._put("positionMulti", reqId, account, contract.symbol, float(pos), avgCost)

    def positionMultiEnd(self, reqId: int) -> None:
        self._put("positionMultiEnd", reqId)

    def tickOptionComputation(self, reqId: int, tickType: int, *args: Any) -> None:
        # tickAttrib, impliedVol, delta, optPrice, pvDividend, gamma, vega, theta, undPrice
        self._put("tickOptionComputation", reqId, tickType, *args[-8:])

    def pnl(self, reqId: int, dailyPnL: float, unrealizedPnL: float, realizedPnL: float) -> None:
        self._put("pnl", reqId, dailyPnL, unrealizedPnL, realizedPnL)

    def pnlSingle(
        self,
        reqId: int,
        pos: Any,
        dailyPnL: float,
        unrealizedPnL: float,
        realizedPnL: float,
        value: float,
    ) -> None:
        self._put("pnlSingle", reqId, float(pos), dailyPnL, unrealizedPnL, realizedPnL, value)

    def expect(self, name: str, timeout: float = WAIT, **match: Any) -> tuple[Any, ...]:
        """Return the args of the next ``name`` callback (skipping others); fail after timeout."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {name} within {timeout} s; saw {self.seen}")
            try:
                got, args = self.events.get(timeout=left)
            except queue.Empty:
                continue
            self.seen.append((got, args))
            if got == name and all(args[int(k[1:])] == v for k, v in match.items()):
                return args

    def cancel(self, order_id: int) -> None:
        """Cancel an order with whichever signature this client has (10.x adds orderCancel)."""
        import inspect

        if "orderCancel" in inspect.signature(self.cancelOrder).parameters:
            from ibapi.order_cancel import OrderCancel  # 10.x only

            self.cancelOrder(order_id, OrderCancel())
        else:
            self.cancelOrder(order_id)

    def global_cancel(self) -> None:
        """reqGlobalCancel with whichever signature this client has (10.x adds orderCancel)."""
        import inspect

        if "orderCancel" in inspect.signature(self.reqGlobalCancel).parameters:
            from ibapi.order_cancel import OrderCancel  # 10.x only

            self.reqGlobalCancel(OrderCancel())
        else:
            self.reqGlobalCancel()

    def _run(self) -> None:
        try:
            self.run()
        except TypeError:
            # ibapi 10.51's loop reads serverVersion() (None once disconnected) for a message
            # still queued at disconnect; only a crash while connected is a real failure.
            if self.isConnected():
                raise

    def start(self, port: int, client_id: int) -> Client:
        self.connect("127.0.0.1", port, client_id)
        self.thread = threading.Thread(target=self._run, name=f"ibapi-{client_id}", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.isConnected():
            self.disconnect()
        if self.thread is not None:
            self.thread.join(WAIT)
            assert not self.thread.is_alive(), "the ibapi client thread did not end"


@pytest.fixture
def tws() -> Iterator[FakeTWS]:
    with FakeTWS() as server:
        yield server


@pytest.fixture
def connect(tws: FakeTWS) -> Iterator[Callable[..., Client]]:
    """Connect a new ibapi client with a client id to the fake TWS (or to ``server``)."""
    made: list[Client] = []

    def new_client(client_id: int, server: FakeTWS | None = None) -> Client:
        client = Client().start((server or tws).port, client_id)
        made.append(client)
        return client

    yield new_client
    for client in made:
        client.stop()


class IB:
    """Builders of the ibapi objects the tests send."""

    @staticmethod
    def contract(symbol: str = "ACME") -> Contract:
        contract = Contract()
        contract.symbol, contract.secType = symbol, "STK"
        contract.exchange, contract.currency = "SMART", "USD"
        return contract

    @staticmethod
    def order(
        action: str = "BUY",
        quantity: int = 10,
        kind: str = "MKT",
        limit: float | None = None,
        tif: str = "DAY",
    ) -> Order:
        order = Order()
        order.action, order.totalQuantity, order.orderType = action, quantity, kind
        order.tif = tif
        if limit is not None:
            order.lmtPrice = limit
        if hasattr(order, "eTradeOnly"):  # 9.81's defaults are refused by a current TWS
            order.eTradeOnly = order.firmQuoteOnly = False
        return order


@pytest.fixture
def ib() -> type[IB]:
    return IB


@pytest.fixture
def ready(connect: Callable[[int], Client]) -> Callable[..., Client]:
    """Connect a client and wait for its nextValidId."""

    def connect_ready(client_id: int = 1) -> Client:
        client = connect(client_id)
        client.expect("nextValidId")
        return client

    return connect_ready
