# ruff: noqa: N802, N803  (the client overrides ibapi's camelCase callbacks)
"""The depth book built from the fake TWS's reqMktDepth stream equals the fake's own book.

The official ibapi client over a real socket; each updateMktDepth / updateMktDepthL2 becomes a
DepthUpdate, applied as the live feed will apply it.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from ibapi.contract import Contract

from ibkrfw import BookSide, DepthBook, DepthOperation, DepthUpdate, Stock
from ibkrfw.testing import bars_frame
from ibkrfw.testing.faketws import FakeTWS

from .conftest import WAIT, Client

ACME, PENY = Stock("ACME"), Stock("PENY")
BARS = bars_frame(
    [(100, 101, 99, 100.5, 400), (100.5, 102, 100, 101.5, 800), (101.5, 102, 100.5, 101, 400)],
    start="2024-01-02 14:30",
    freq="1min",
)


class DepthClient(Client):
    """The conftest client, turning depth callbacks into DepthUpdates of one instrument."""

    instrument = ACME

    def __init__(self) -> None:
        super().__init__()
        self.updates: queue.Queue[DepthUpdate] = queue.Queue()

    def updateMktDepth(
        self, reqId: int, position: int, operation: int, side: int, price: float, size: Any
    ) -> None:
        self.updates.put(
            DepthUpdate(
                self.instrument,
                time.time_ns(),
                BookSide(side),
                position,
                DepthOperation(operation),
                price,
                float(size),
            )
        )

    def updateMktDepthL2(
        self,
        reqId: int,
        position: int,
        marketMaker: str,
        operation: int,
        side: int,
        price: float,
        size: Any,
        isSmartDepth: bool,
    ) -> None:
        self.updates.put(
            DepthUpdate(
                self.instrument,
                time.time_ns(),
                BookSide(side),
                position,
                DepthOperation(operation),
                price,
                float(size),
                marketMaker,
                isSmartDepth,
            )
        )


def contract(symbol: str) -> Contract:
    made = Contract()
    made.symbol, made.secType, made.exchange, made.currency = symbol, "STK", "SMART", "USD"
    return made


def fakes_book(server: FakeTWS, req_id: int) -> dict[int, list[tuple[float, float]]]:
    """The book the fake has sent on a subscription (side -> [(price, size)], best first)."""
    *_, sent = server._market_data._depth[(1, req_id)]  # the fake's record of what it sent
    return {side: [(p, float(s)) for p, s in rows] for side, rows in sent.items()}


def ours(book: DepthBook) -> dict[int, list[tuple[float, float]]]:
    bids, asks = book.levels()
    return {0: [(lv.price, lv.size) for lv in asks], 1: [(lv.price, lv.size) for lv in bids]}


def built_until_equal(client: DepthClient, book: DepthBook, server: FakeTWS, req_id: int) -> None:
    """Apply what arrives until the book equals the fake's; every row must apply."""
    deadline = time.monotonic() + WAIT
    while True:
        try:
            update = client.updates.get(timeout=0.05)
        except queue.Empty:
            with server.market.lock:
                want = fakes_book(server, req_id)
            if ours(book) == want and client.updates.empty():
                assert book.check() is None and book.state == "ok"
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"book {ours(book)} never became the fake's {want}") from None
            continue
        assert book.apply(update) is None, book.problem


@pytest.fixture
def server() -> Iterator[FakeTWS]:
    with FakeTWS(data={ACME: BARS}) as made:
        yield made


@pytest.mark.parametrize("smart", [False, True])
def test_depth_book_from_req_mkt_depth_equals_the_fakes_book(server: FakeTWS, smart: bool) -> None:
    client = DepthClient().start(server.port, 1)
    try:
        client.expect("nextValidId")
        server.step()
        client.reqMktDepth(1, contract("ACME"), 5, smart, [])
        book = DepthBook(ACME, max_levels=5)
        built_until_equal(client, book, server, 1)
        assert len(book.levels()[0]) == 5 and book.best_bid is not None
        for _ in range(2):  # the quote moves: rows are updated in place
            server.step()
            built_until_equal(client, book, server, 1)
        if smart:
            assert {lv.market_maker for lv in book.levels()[1]} != {""}
    finally:
        client.stop()


def test_depth_book_follows_deletes_when_levels_stop_existing() -> None:
    bars = bars_frame([(0.05, 0.05, 0.05, 0.05), (0.02, 0.02, 0.02, 0.02)], freq="1min")
    with FakeTWS(data={PENY: bars}) as server:
        client = DepthClient()
        client.instrument = PENY
        client.start(server.port, 1)
        try:
            client.expect("nextValidId")
            server.step()
            client.reqMktDepth(1, contract("PENY"), 3, False, [])
            book = DepthBook(PENY, max_levels=3)
            built_until_equal(client, book, server, 1)
            assert len(book.levels()[0]) == 3
            server.step()  # close 0.02: bids at or below zero cannot exist and are deleted
            built_until_equal(client, book, server, 1)
            bids, asks = book.levels()
            assert [lv.price for lv in bids] == [0.01] and len(asks) == 3
            assert pd.notna(book.mid)
        finally:
            client.stop()
