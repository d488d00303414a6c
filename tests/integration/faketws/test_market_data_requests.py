# ruff: noqa: N802, N803  (the client overrides ibapi's camelCase callbacks)
"""Head time stamps, historical ticks, symbols, tick-by-tick, depth and option parameters.

The official ibapi client over a real socket: each request gets TWS's answer, decoded by
ibapi's own decoder, consistent with the fake's replayed bars and quotes; a request the fake
does not serve gets TWS's error 321, never silence.
"""

from __future__ import annotations

import datetime as dt
import struct
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd
import pytest
from ibapi.contract import Contract
from ibapi.execution import ExecutionFilter
from ibapi.message import OUT
from ibapi.scanner import ScannerSubscription

from ibkrfw import Stock
from ibkrfw.testing import bars_frame
from ibkrfw.testing.faketws import FakeTWS

from .conftest import WAIT, Client

ACME, ACMX, BOLT = Stock("ACME"), Stock("ACMX"), Stock("BOLT")
BARS = bars_frame(
    [(100, 101, 99, 100.5, 400), (100.5, 102, 100, 101.5, 800), (101.5, 102, 100.5, 101, 400)],
    start="2024-01-02 14:30",
    freq="1min",
)
QUOTES = pd.DataFrame(
    {
        "bid": [49.98, 50.10],
        "ask": [50.02, 50.14],
        "bid_size": [300.0, 500.0],
        "ask_size": [200.0, 200.0],
    },
    index=pd.date_range("2024-01-02 14:30", periods=2, freq="1min", tz="UTC", name="timestamp"),
)
FIRST_S = int(pd.Timestamp("2024-01-02 14:30", tz="UTC").timestamp())


class DataClient(Client):
    """The ibapi client of conftest, with the callbacks of these requests."""

    def headTimestamp(self, reqId: int, headTimestamp: str) -> None:
        self._put("headTimestamp", reqId, headTimestamp)

    def historicalTicks(self, reqId: int, ticks: Any, done: bool) -> None:
        self._put("historicalTicks", reqId, [(t.time, t.price, float(t.size)) for t in ticks], done)

    def historicalTicksBidAsk(self, reqId: int, ticks: Any, done: bool) -> None:
        rows = [(t.time, t.priceBid, t.priceAsk, float(t.sizeBid), float(t.sizeAsk)) for t in ticks]
        self._put("historicalTicksBidAsk", reqId, rows, done)

    def historicalTicksLast(self, reqId: int, ticks: Any, done: bool) -> None:
        rows = [(t.time, t.price, float(t.size)) for t in ticks]
        self._put("historicalTicksLast", reqId, rows, done)

    def symbolSamples(self, reqId: int, contractDescriptions: Any) -> None:
        rows = [
            (
                d.contract.symbol,
                d.contract.secType,
                d.contract.conId,
                d.contract.currency,
                list(d.derivativeSecTypes),
            )
            for d in contractDescriptions
        ]
        self._put("symbolSamples", reqId, rows)

    def tickByTickAllLast(
        self, reqId: int, tickType: int, time: int, price: float, size: Any, *rest: Any
    ) -> None:
        self._put("tickByTickAllLast", reqId, tickType, time, price, float(size))

    def tickByTickBidAsk(
        self,
        reqId: int,
        time: int,
        bidPrice: float,
        askPrice: float,
        bidSize: Any,
        askSize: Any,
        attrib: Any,
    ) -> None:
        self._put(
            "tickByTickBidAsk", reqId, time, bidPrice, askPrice, float(bidSize), float(askSize)
        )

    def tickByTickMidPoint(self, reqId: int, time: int, midPoint: float) -> None:
        self._put("tickByTickMidPoint", reqId, time, midPoint)

    def updateMktDepth(
        self, reqId: int, position: int, operation: int, side: int, price: float, size: Any
    ) -> None:
        self._put("updateMktDepth", reqId, position, operation, side, price, float(size))

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
        self._put(
            "updateMktDepthL2",
            reqId,
            position,
            marketMaker,
            operation,
            side,
            price,
            float(size),
            isSmartDepth,
        )

    def securityDefinitionOptionParameter(
        self,
        reqId: int,
        exchange: str,
        underlyingConId: int,
        tradingClass: str,
        multiplier: str,
        expirations: Any,
        strikes: Any,
    ) -> None:
        self._put(
            "securityDefinitionOptionParameter",
            reqId,
            exchange,
            underlyingConId,
            tradingClass,
            multiplier,
            sorted(expirations),
            sorted(strikes),
        )

    def securityDefinitionOptionParameterEnd(self, reqId: int) -> None:
        self._put("securityDefinitionOptionParameterEnd", reqId)

    def accountDownloadEnd(self, accountName: str) -> None:
        self._put("accountDownloadEnd", accountName)

    def realtimeBar(self, reqId: int, *args: Any) -> None:
        self._put("realtimeBar", reqId)

    def send_raw(self, *fields: object) -> None:
        """Send one message as given, past the client's own checks (the same in 9.81 and 10.x)."""
        text = "".join(f"{f}\0" for f in fields).encode()
        self.conn.sendMsg(struct.pack(f"!I{len(text)}s", len(text), text))


@pytest.fixture
def tws() -> Iterator[FakeTWS]:
    with FakeTWS(data={ACME: BARS, ACMX: BARS}, quotes={BOLT: QUOTES}) as server:
        yield server


@pytest.fixture
def client(tws: FakeTWS) -> Iterator[DataClient]:
    made = DataClient().start(tws.port, 1)
    made.expect("nextValidId")
    yield made
    made.stop()


def stock(symbol: str = "ACME") -> Contract:
    contract = Contract()
    contract.symbol, contract.secType = symbol, "STK"
    contract.exchange, contract.currency = "SMART", "USD"
    return contract


# --- reqHeadTimeStamp -----------------------------------------------------------------------------
def test_head_timestamp_is_the_first_bar_in_both_formats(client: DataClient) -> None:
    client.reqHeadTimeStamp(1, stock(), "TRADES", 1, 1)
    assert client.expect("headTimestamp") == (1, "20240102-14:30:00")
    client.reqHeadTimeStamp(2, stock(), "TRADES", 1, 2)
    assert client.expect("headTimestamp") == (2, str(FIRST_S))


def test_head_timestamp_of_an_unknown_contract_or_what_is_an_error(client: DataClient) -> None:
    client.reqHeadTimeStamp(3, stock("NOPE"), "TRADES", 1, 1)
    assert client.expect("error", a0=3)[:2] == (3, 200)
    client.reqHeadTimeStamp(4, stock(), "FOO", 1, 1)
    req_id, code, text = client.expect("error", a0=4)
    assert (req_id, code) == (4, 321) and "whatToShow" in text


# --- reqHistoricalTicks ---------------------------------------------------------------------------
def test_historical_trades_are_four_a_replayed_bar(tws: FakeTWS, client: DataClient) -> None:
    tws.step(2)
    client.reqHistoricalTicks(1, stock(), "20240102 14:30:00 UTC", "", 100, "TRADES", 1, True, [])
    req_id, ticks, done = client.expect("historicalTicksLast")
    assert req_id == 1 and done
    # an up bar: open, low, high, close; its volume split in four; 15 s apart
    assert ticks[:4] == [
        (FIRST_S, 100, 100),
        (FIRST_S + 15, 99, 100),
        (FIRST_S + 30, 101, 100),
        (FIRST_S + 45, 100.5, 100),
    ]
    assert len(ticks) == 8  # the third bar is not replayed yet: no ticks from the future
    assert sum(size for *_, size in ticks) == 1200  # the two bars' volume


def test_historical_ticks_up_to_an_end_take_the_last_ones(tws: FakeTWS, client: DataClient) -> None:
    tws.step(3)
    client.reqHistoricalTicks(2, stock(), "", "20240102 14:31:59 UTC", 3, "MIDPOINT", 1, True, [])
    _, ticks, _ = client.expect("historicalTicks")
    assert [t for t, *_ in ticks] == [FIRST_S + 75, FIRST_S + 90, FIRST_S + 105]
    assert ticks[-1][1] == 101.5  # the second bar's close: the mid of its one-tick quote


def test_historical_bid_ask_are_the_replayed_quotes(tws: FakeTWS, client: DataClient) -> None:
    tws.step(2)
    client.reqHistoricalTicks(
        3, stock("BOLT"), "20240102 14:00:00 UTC", "", 10, "BID_ASK", 1, True, []
    )
    _, ticks, _ = client.expect("historicalTicksBidAsk")
    assert ticks == [(FIRST_S, 49.98, 50.02, 300, 200), (FIRST_S + 60, 50.10, 50.14, 500, 200)]


def test_historical_ticks_with_bad_arguments_are_refused(client: DataClient) -> None:
    client.reqHistoricalTicks(
        4, stock(), "20240102 14:30:00 UTC", "20240102 14:31:00 UTC", 10, "TRADES", 1, True, []
    )
    req_id, code, text = client.expect("error", a0=4)
    assert (req_id, code) == (4, 321) and "exactly one" in text
    client.reqHistoricalTicks(5, stock(), "20240102 14:30:00 UTC", "", 1001, "TRADES", 1, True, [])
    assert client.expect("error", a0=5)[:2] == (5, 321)


# --- reqMatchingSymbols ---------------------------------------------------------------------------
def test_matching_symbols_match_a_prefix_in_any_case(tws: FakeTWS, client: DataClient) -> None:
    client.reqMatchingSymbols(1, "acm")
    req_id, rows = client.expect("symbolSamples")
    con_ids = tws.market.con_ids
    assert req_id == 1
    assert rows == [
        ("ACME", "STK", con_ids[ACME], "USD", ["OPT"]),
        ("ACMX", "STK", con_ids[ACMX], "USD", ["OPT"]),
    ]
    client.reqMatchingSymbols(2, "ZZZ")
    assert client.expect("symbolSamples") == (2, [])


# --- reqTickByTickData ----------------------------------------------------------------------------
def test_tick_by_tick_trades_follow_the_replayed_bars(tws: FakeTWS, client: DataClient) -> None:
    client.reqTickByTickData(1, stock(), "Last", 0, False)
    client.reqTickByTickData(2, stock(), "AllLast", 0, False)
    tws.wait_for(lambda: len(tws.messages("in", msg_id=97)) == 2, WAIT)
    tws.step()
    assert client.expect("tickByTickAllLast", a0=1) == (1, 1, FIRST_S, 100.5, 400)
    assert client.expect("tickByTickAllLast", a0=2) == (2, 2, FIRST_S, 100.5, 400)
    client.cancelTickByTickData(1)
    tws.wait_for(lambda: tws.messages("in", msg_id=98), WAIT)
    tws.step()
    assert client.expect("tickByTickAllLast", a0=2)[3] == 101.5
    assert not [e for e in client.seen if e[0] == "tickByTickAllLast" and e[1][0] == 1][1:]


def test_tick_by_tick_bid_ask_and_midpoint_follow_the_quotes(
    tws: FakeTWS, client: DataClient
) -> None:
    tws.step()
    client.reqTickByTickData(3, stock("BOLT"), "BidAsk", 0, False)
    assert client.expect("tickByTickBidAsk") == (3, FIRST_S, 49.98, 50.02, 300, 200)  # current
    client.reqTickByTickData(4, stock("BOLT"), "MidPoint", 0, False)
    assert client.expect("tickByTickMidPoint") == (4, FIRST_S, 50.0)
    tws.step()
    assert client.expect("tickByTickBidAsk") == (3, FIRST_S + 60, 50.10, 50.14, 500, 200)
    assert client.expect("tickByTickMidPoint") == (4, FIRST_S + 60, 50.12)
    client.reqTickByTickData(5, stock(), "Bogus", 0, False)
    assert client.expect("error", a0=5)[:2] == (5, 321)


def test_tick_by_tick_with_a_number_of_ticks_sends_the_last_ones_first(
    tws: FakeTWS, client: DataClient
) -> None:
    tws.step(2)
    client.reqTickByTickData(6, stock("BOLT"), "BidAsk", 2, False)
    req_id, ticks, done = client.expect("historicalTicksBidAsk")
    assert (req_id, done) == (6, True)
    assert ticks == [(FIRST_S, 49.98, 50.02, 300, 200), (FIRST_S + 60, 50.10, 50.14, 500, 200)]
    client.reqTickByTickData(7, stock(), "Last", 3, False)
    _, ticks, _ = client.expect("historicalTicksLast", a0=7)
    assert [price for _, price, _ in ticks] == [100.0, 102.0, 101.5]  # bar 2: low, high, close
    client.reqTickByTickData(8, stock(), "Last", 1001, False)
    assert client.expect("error", a0=8)[:2] == (8, 321)


# --- reqMktDepth ----------------------------------------------------------------------------------
def test_depth_inserts_then_updates_levels_around_the_quote(
    tws: FakeTWS, client: DataClient
) -> None:
    tws.step()
    client.reqMktDepth(1, stock("BOLT"), 3, False, [])
    got = [client.expect("updateMktDepth") for _ in range(6)]
    asks = [(pos, op, price, size) for _, pos, op, side, price, size in got if side == 0]
    bids = [(pos, op, price, size) for _, pos, op, side, price, size in got if side == 1]
    assert asks == [(0, 0, 50.02, 200), (1, 0, 50.03, 400), (2, 0, 50.04, 600)]
    assert bids == [(0, 0, 49.98, 300), (1, 0, 49.97, 600), (2, 0, 49.96, 900)]
    tws.step()  # the quote moves: every level is updated in place
    got = [client.expect("updateMktDepth") for _ in range(6)]
    assert {op for _, _, op, *_ in got} == {1}
    assert (0, 1, 1, 50.10, 500) in [g[1:] for g in got]


def test_smart_depth_comes_as_level_two_with_the_flag(tws: FakeTWS, client: DataClient) -> None:
    tws.step()
    client.reqMktDepth(2, stock(), 2, True, [])
    got = [client.expect("updateMktDepthL2") for _ in range(4)]
    assert all(g[7] is True and g[3] == 0 for g in got)  # smart, insert
    assert sorted((g[4], g[1], g[5]) for g in got) == [
        (0, 0, 100.51),
        (0, 1, 100.52),
        (1, 0, 100.49),
        (1, 1, 100.48),
    ]
    client.cancelMktDepth(2, True)
    tws.wait_for(lambda: tws.messages("in", msg_id=11), WAIT)
    tws.step()
    assert not tws.messages("out", msg_id=13)[4:]  # nothing after the cancel


def test_depth_deletes_levels_that_cannot_exist() -> None:
    cheap = Stock("PENY")
    bars = bars_frame([(0.02, 0.02, 0.02, 0.02), (0.05, 0.05, 0.05, 0.05)], freq="1min")
    with FakeTWS(data={cheap: bars}) as server:
        client = DataClient().start(server.port, 1)
        try:
            client.expect("nextValidId")
            server.step()  # close 0.02: bids at 0.01 only (0.00 is no price)
            client.reqMktDepth(1, stock("PENY"), 3, False, [])
            first = [client.expect("updateMktDepth") for _ in range(4)]
            assert [g[1:4] for g in first if g[3] == 1] == [(0, 0, 1)]
            server.step()  # close 0.05: two more bid levels are inserted
            second = [client.expect("updateMktDepth") for _ in range(6)]
            assert [(g[1], g[2]) for g in second if g[3] == 1] == [(0, 1), (1, 0), (2, 0)]
        finally:
            client.stop()


# --- reqSecDefOptParams ---------------------------------------------------------------------------
def test_option_parameters_are_a_synthetic_chain(tws: FakeTWS, client: DataClient) -> None:
    tws.step()  # last price 100.5 on 2024-01-02
    con_id = tws.market.con_ids[ACME]
    client.reqSecDefOptParams(1, "ACME", "", "STK", con_id)
    _, exchange, under, klass, multiplier, expiries, strikes = client.expect(
        "securityDefinitionOptionParameter"
    )
    assert (exchange, under, klass, multiplier) == ("SMART", con_id, "ACME", "100")
    assert expiries == ["20240119", "20240216", "20240315", "20240419"]  # third Fridays
    assert all(dt.datetime.strptime(e, "%Y%m%d").weekday() == 4 for e in expiries)
    assert strikes == [75.0 + 2.5 * k for k in range(21)]  # 2.5 apart around 100
    assert client.expect("securityDefinitionOptionParameterEnd") == (1,)
    client.reqSecDefOptParams(2, "NOPE", "", "STK", 0)
    assert client.expect("error", a0=2)[:2] == (2, 200)


# --- every message the client can send gets an answer or an error ---------------------------------
# TWS itself answers nothing to these: cancellations, the log level, binding open orders, the
# market data type, and a global cancel with nothing to cancel.
SILENT = {
    2,
    4,
    11,
    13,
    14,
    15,
    23,
    25,
    51,
    53,
    56,
    57,
    58,
    59,
    63,
    64,
    70,
    75,
    77,
    89,
    90,
    93,
    95,
    98,
}


def _calls(tws: FakeTWS) -> dict[int, tuple[Callable[[DataClient, int], None], str]]:
    """What to send for each message id, and the callback that answers it."""
    c, con_id, acct = stock(), tws.market.con_ids[ACME], tws.account

    def order(client: DataClient, rid: int) -> None:
        from .conftest import IB

        client.placeOrder(rid, c, IB.order("BUY", 1, "LMT", limit=1.0))

    return {
        1: (lambda k, r: k.reqMktData(r, c, "", False, False, []), "marketDataType"),
        3: (order, "openOrder"),
        5: (lambda k, r: k.reqOpenOrders(), "openOrderEnd"),
        6: (lambda k, r: k.reqAccountUpdates(True, acct), "accountDownloadEnd"),
        7: (lambda k, r: k.reqExecutions(r, ExecutionFilter()), "execDetailsEnd"),
        8: (lambda k, r: k.reqIds(-1), "nextValidId"),
        9: (lambda k, r: k.reqContractDetails(r, c), "contractDetailsEnd"),
        10: (lambda k, r: k.reqMktDepth(r, c, 2, False, []), "updateMktDepth"),
        12: (lambda k, r: k.reqNewsBulletins(True), "error"),
        16: (lambda k, r: k.reqAllOpenOrders(), "openOrderEnd"),
        17: (lambda k, r: k.reqManagedAccts(), "managedAccounts"),
        18: (lambda k, r: k.requestFA(1), "error"),
        19: (lambda k, r: k.send_raw(19, 1, 1, "<xml/>"), "error"),
        20: (
            lambda k, r: k.reqHistoricalData(r, c, "", "1 D", "1 min", "TRADES", 1, 1, False, []),
            "historicalDataEnd",
        ),
        21: (lambda k, r: k.send_raw(21, 2, r, con_id, "ACME", "OPT"), "error"),
        22: (lambda k, r: k.reqScannerSubscription(r, ScannerSubscription(), [], []), "error"),
        24: (lambda k, r: k.reqScannerParameters(), "error"),
        49: (lambda k, r: k.reqCurrentTime(), "currentTime"),
        50: (lambda k, r: k.reqRealTimeBars(r, c, 5, "TRADES", False, []), "realtimeBar"),
        52: (lambda k, r: k.reqFundamentalData(r, c, "ReportSnapshot", []), "error"),
        54: (lambda k, r: k.calculateImpliedVolatility(r, c, 1.0, 100.0, []), "error"),
        55: (lambda k, r: k.calculateOptionPrice(r, c, 0.2, 100.0, []), "error"),
        61: (lambda k, r: k.reqPositions(), "positionEnd"),
        62: (lambda k, r: k.reqAccountSummary(r, "All", "NetLiquidation"), "accountSummaryEnd"),
        65: (lambda k, r: k.send_raw(65, 1, "ibkrfw", "1.0"), "error"),
        66: (lambda k, r: k.send_raw(66, 1, "x"), "error"),
        67: (lambda k, r: k.queryDisplayGroups(r), "error"),
        68: (lambda k, r: k.subscribeToGroupEvents(r, 1), "error"),
        69: (lambda k, r: k.updateDisplayGroup(r, "8314@SMART"), "error"),
        72: (lambda k, r: k.send_raw(72, 1, "ibkrfw", "1.0", ""), "error"),
        73: (lambda k, r: k.send_raw(73, 1, "x", ""), "error"),
        74: (lambda k, r: k.reqPositionsMulti(r, acct, ""), "positionMultiEnd"),
        76: (lambda k, r: k.reqAccountUpdatesMulti(r, acct, "", False), "accountUpdateMultiEnd"),
        78: (
            lambda k, r: k.reqSecDefOptParams(r, "ACME", "", "STK", con_id),
            "securityDefinitionOptionParameterEnd",
        ),
        79: (lambda k, r: k.reqSoftDollarTiers(r), "error"),
        80: (lambda k, r: k.reqFamilyCodes(), "error"),
        81: (lambda k, r: k.reqMatchingSymbols(r, "AC"), "symbolSamples"),
        82: (lambda k, r: k.reqMktDepthExchanges(), "error"),
        83: (lambda k, r: k.reqSmartComponents(r, "a6"), "error"),
        84: (lambda k, r: k.reqNewsArticle(r, "BZ", "BZ$1", []), "error"),
        85: (lambda k, r: k.reqNewsProviders(), "error"),
        86: (lambda k, r: k.reqHistoricalNews(r, con_id, "BZ", "", "", 10, []), "error"),
        87: (lambda k, r: k.reqHeadTimeStamp(r, c, "TRADES", 1, 1), "headTimestamp"),
        88: (lambda k, r: k.reqHistogramData(r, c, False, "1 day"), "error"),
        91: (lambda k, r: k.reqMarketRule(26), "error"),
        92: (lambda k, r: k.reqPnL(r, acct, ""), "pnl"),
        94: (lambda k, r: k.reqPnLSingle(r, acct, "", con_id), "pnlSingle"),
        96: (
            lambda k, r: k.reqHistoricalTicks(
                r, c, "", "20240102 15:00:00 UTC", 10, "TRADES", 1, True, []
            ),
            "historicalTicksLast",
        ),
        97: (lambda k, r: k.reqTickByTickData(r, c, "Last", 0, False), "tickByTickAllLast"),
        99: (lambda k, r: k.reqCompletedOrders(False), "completedOrdersEnd"),
    }


def test_every_message_id_gets_an_answer_or_an_error(tws: FakeTWS, client: DataClient) -> None:
    tws.step()
    calls = _calls(tws)
    ids = sorted(v for k, v in vars(OUT).items() if k.isupper() and isinstance(v, int))
    unanswered = []
    for number, msg_id in enumerate(ids, start=1000):
        if msg_id in SILENT or msg_id == OUT.START_API:  # START_API: sent by connect()
            continue
        send, answer = calls.get(msg_id, (lambda k, r, i=msg_id: k.send_raw(i, 1, r), "error"))
        send(client, number)
        if msg_id in (OUT.REQ_REAL_TIME_BARS, OUT.REQ_TICK_BY_TICK_DATA):
            tws.wait_for(lambda i=msg_id: tws.messages("in", msg_id=i), WAIT)
            tws.step()  # these stream: the next replayed bar brings the answer
        try:
            match = {"a1": 321} if answer == "error" else {}
            args = client.expect(answer, timeout=WAIT, **match)
        except AssertionError:
            unanswered.append(msg_id)
            continue
        if answer == "error":
            assert args[1] == 321 and args[0] in (number, -1), (msg_id, args)
    assert not unanswered, f"no answer within {WAIT} s to message ids {unanswered}"
