"""Account updates, account summaries and P&L from the fake TWS at TWS's cadence (ibapi)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest

from ibkrfw import Stock
from ibkrfw.core.clock import SimClock
from ibkrfw.sim import IBKRFixedCommission
from ibkrfw.testing import bars_frame
from ibkrfw.testing.faketws import FakeTWS

ACME = Stock("ACME")
ROWS = [(100, 101, 99, 100), (100.5, 102, 99.5, 101), (101, 103, 98, 102), (96, 97, 95, 96.5)]
ACCOUNT = "DU1234567"
START = pd.Timestamp("2024-01-02 15:00", tz="UTC")  # 10:00 in New York
PORTFOLIO, ACCOUNT_VALUE, ACCOUNT_TIME, SUMMARY, PNL, PNL_SINGLE = 7, 6, 8, 63, 94, 95


@pytest.fixture
def clock() -> SimClock:
    return SimClock(START.value)


@pytest.fixture
def tws(clock: SimClock) -> Iterator[FakeTWS]:
    data = {ACME: bars_frame(ROWS)}
    with FakeTWS(data=data, commission=IBKRFixedCommission(), clock=clock) as server:
        yield server


def later(clock: SimClock, seconds: float) -> None:
    clock.advance_to(clock.now_ns() + int(seconds * 1e9))


def sent(tws: FakeTWS, msg_id: int) -> list[tuple[str, ...]]:
    """What the fake sent client 1 of one message id, in order."""
    return [r.fields for r in tws.messages("out", client_id=1, msg_id=msg_id)]


def values_of(fields: list[tuple[str, ...]]) -> dict[str, str]:
    return {f[2]: f[3] for f in fields}


def buy(client: Any, ib: Any, order_id: int, quantity: int, action: str = "BUY") -> None:
    client.placeOrder(order_id, ib.contract(), ib.order(action, quantity))
    client.expect("orderStatus", a0=order_id, a1="Submitted")


def test_account_updates_come_on_a_position_change_and_every_three_minutes(
    tws: FakeTWS, clock: SimClock, ib: Any, ready: Any
) -> None:
    client = ready()
    tws.step()  # ACME at 100
    client.reqAccountUpdates(True, ACCOUNT)
    client.expect("accountDownloadEnd")
    assert values_of(sent(tws, ACCOUNT_VALUE))["NetLiquidation"] == "1000000.00"
    first_values = len(sent(tws, ACCOUNT_VALUE))
    assert len(sent(tws, ACCOUNT_TIME)) == 1
    buy(client, ib, 1, 10)
    later(clock, 5)
    tws.step()  # fills at the open, 100.5; the bar closes at 101
    # at once, at the price the market had then (the previous close)
    assert client.expect("updatePortfolio")[:3] == ("ACME", 10.0, 100.0)
    changed = values_of(sent(tws, ACCOUNT_VALUE)[first_values:])
    assert changed["TotalCashValue"] == f"{1_000_000 - 1005 - 1:.2f}"  # and what it changed
    assert "AccountType" not in changed  # unchanged values are not sent again
    # The close of 101 moved the price, not the position: nothing until the three minutes.
    before = {msg_id: len(sent(tws, msg_id)) for msg_id in (PORTFOLIO, ACCOUNT_VALUE, 8)}
    later(clock, 60)
    tws.accounts.on_time()
    assert {msg_id: len(sent(tws, msg_id)) for msg_id in before} == before
    later(clock, 120)  # three minutes since the subscription
    tws.accounts.on_time()
    assert client.expect("updatePortfolio")[:3] == ("ACME", 10.0, 101.0)
    assert client.expect("updateAccountTime") == ("15:03",)
    assert values_of(sent(tws, ACCOUNT_VALUE))["NetLiquidation"] == f"{1_000_000 - 1 + 5:.2f}"
    # unsubscribed: a position change sends nothing
    client.reqAccountUpdates(False, ACCOUNT)
    client.reqCurrentTime()
    client.expect("currentTime")
    count = len(sent(tws, PORTFOLIO))
    buy(client, ib, 2, 10, "SELL")
    later(clock, 5)
    tws.step()
    client.expect("orderStatus", a0=2, a1="Filled")
    assert len(sent(tws, PORTFOLIO)) == count


def test_a_closed_position_is_sent_as_quantity_zero(
    tws: FakeTWS, clock: SimClock, ib: Any, ready: Any
) -> None:
    client = ready()
    tws.step()
    buy(client, ib, 1, 10)
    tws.step()
    client.expect("orderStatus", a0=1, a1="Filled")
    client.reqAccountUpdates(True, ACCOUNT)
    assert client.expect("updatePortfolio")[:2] == ("ACME", 10.0)
    client.expect("accountDownloadEnd")
    buy(client, ib, 2, 10, "SELL")
    tws.step()
    assert client.expect("updatePortfolio")[:2] == ("ACME", 0.0)


def test_account_summaries_stay_subscribed_two_at_most_and_send_changes(
    tws: FakeTWS, clock: SimClock, ib: Any, ready: Any
) -> None:
    client = ready()
    tws.step()
    client.reqAccountSummary(1, "All", "NetLiquidation,AccountType")
    client.expect("accountSummaryEnd", a0=1)
    client.reqAccountSummary(2, "All", "TotalCashValue")
    client.expect("accountSummaryEnd", a0=2)
    client.reqAccountSummary(3, "All", "NetLiquidation")
    assert (
        "Maximum number of account summary requests exceeded"
        in (client.expect("error", a0=3, a1=322)[2])
    )
    assert tws.accounts.active_summaries(1) == [1, 2]
    buy(client, ib, 1, 10)
    later(clock, 5)
    tws.step()
    client.expect("orderStatus", a0=1, a1="Filled")
    count = len(sent(tws, SUMMARY))
    later(clock, 60)
    tws.accounts.on_time()
    assert len(sent(tws, SUMMARY)) == count  # a fill does not hurry a summary
    later(clock, 120)
    tws.accounts.on_time()
    updates = sent(tws, SUMMARY)[count:]
    # only the changed tags, each to its own subscription, and no second summary end
    assert sorted((f[2], f[4], f[5]) for f in updates) == [
        ("1", "NetLiquidation", f"{1_000_000 - 1 + 5:.2f}"),
        ("2", "TotalCashValue", f"{1_000_000 - 1005 - 1:.2f}"),
    ]
    assert len(sent(tws, 64)) == 2
    client.cancelAccountSummary(1)
    client.reqAccountSummary(3, "All", "NetLiquidation")
    client.expect("accountSummaryEnd", a0=3)
    assert tws.accounts.active_summaries(1) == [2, 3]


def test_account_updates_multi_is_a_subscription_until_cancelled(
    tws: FakeTWS, clock: SimClock, ib: Any, ready: Any
) -> None:
    client = ready()
    tws.step()
    client.reqAccountUpdatesMulti(8, ACCOUNT, "", False)
    client.expect("accountUpdateMultiEnd", a0=8)
    count = len(sent(tws, 73))
    buy(client, ib, 1, 10)
    tws.step()
    client.expect("orderStatus", a0=1, a1="Filled")
    changed = {f[5]: f[6] for f in sent(tws, 73)[count:]}
    assert changed["TotalCashValue"] == f"{1_000_000 - 1005 - 1:.2f}"
    assert len(sent(tws, 74)) == 1  # the end marker only once
    client.cancelAccountUpdatesMulti(8)
    client.reqCurrentTime()
    client.expect("currentTime")
    count = len(sent(tws, 73))
    buy(client, ib, 2, 10, "SELL")
    tws.step()
    client.expect("orderStatus", a0=2, a1="Filled")
    assert len(sent(tws, 73)) == count


def test_positions_multi_sends_each_change_until_cancelled(
    tws: FakeTWS, ib: Any, ready: Any
) -> None:
    client = ready()
    tws.step()
    buy(client, ib, 1, 10)
    tws.step()
    client.expect("orderStatus", a0=1, a1="Filled")
    client.reqPositionsMulti(5, ACCOUNT, "")
    assert client.expect("positionMulti", a0=5)[1:4] == (ACCOUNT, "ACME", 10.0)
    client.expect("positionMultiEnd", a0=5)
    buy(client, ib, 2, 4, "SELL")
    tws.step()
    assert client.expect("positionMulti", a0=5)[1:4] == (ACCOUNT, "ACME", 6.0)
    client.cancelPositionsMulti(5)
    client.reqPositionsMulti(6, "U999", "")
    client.expect("error", a0=6, a1=321)
    count = len(sent(tws, 71))
    buy(client, ib, 3, 6, "SELL")
    tws.step()
    client.expect("orderStatus", a0=3, a1="Filled")
    assert len(sent(tws, 71)) == count


def test_pnl_follows_fills_and_prices_once_a_second_at_most(
    tws: FakeTWS, clock: SimClock, ib: Any, ready: Any
) -> None:
    client = ready()
    con_id = tws.market.con_ids[ACME]
    tws.step()  # ACME at 100
    client.reqPnL(1, ACCOUNT, "")
    assert client.expect("pnl", a0=1) == (1, 0.0, 0.0, 0.0)
    client.reqPnLSingle(2, ACCOUNT, "", con_id)
    assert client.expect("pnlSingle", a0=2) == (2, 0.0, 0.0, 0.0, 0.0, 0.0)
    buy(client, ib, 1, 10)
    later(clock, 2)
    tws.step()  # fills at 100.5 with 1.00 commission; the bar closes at 101
    assert client.expect("pnl", a0=1) == (1, 4.0, 5.0, -1.0)  # daily, unrealised, realised
    assert client.expect("pnlSingle", a0=2) == (2, 10.0, 4.0, 5.0, -1.0, 1010.0)
    later(clock, 0.5)
    tws.step()  # closes at 102 within the same second: it waits
    assert (len(sent(tws, PNL)), len(sent(tws, PNL_SINGLE))) == (2, 2)
    later(clock, 0.5)
    tws.accounts.on_time()
    assert client.expect("pnl", a0=1) == (1, 14.0, 15.0, -1.0)
    assert client.expect("pnlSingle", a0=2) == (2, 10.0, 14.0, 15.0, -1.0, 1020.0)
    later(clock, 5)
    tws.accounts.on_time()  # nothing changed: nothing sent
    assert (len(sent(tws, PNL)), len(sent(tws, PNL_SINGLE))) == (3, 3)
    # The next day counts from the previous day's last value (1,000,014.00).
    buy(client, ib, 2, 10, "SELL")
    clock.advance_to(pd.Timestamp("2024-01-03 15:00", tz="UTC").value)
    tws.step()  # sells at 96 with 1.00 commission: realised 10 x (96 - 100.5) - 2 in all
    fees = float(tws.market.portfolio.position(ACME).commission) - 1.0  # today's: 1.00 + SEC
    realized = round(-45.0 - fees, 2)
    assert client.expect("pnl", a0=1) == (1, round(realized - 15.0, 2), 0.0, realized)
    assert client.expect("pnlSingle", a0=2) == (2, 0.0, round(realized - 15, 2), 0.0, realized, 0.0)
    client.cancelPnL(1)
    client.cancelPnLSingle(2)
    client.reqCurrentTime()
    client.expect("currentTime")
    count = len(sent(tws, PNL)) + len(sent(tws, PNL_SINGLE))
    clock.advance_to(pd.Timestamp("2024-01-04 15:00", tz="UTC").value)
    tws.accounts.on_time()  # a new day would change the daily P&L: nobody listens
    assert len(sent(tws, PNL)) + len(sent(tws, PNL_SINGLE)) == count


def test_pnl_of_another_account_or_an_unknown_contract_is_an_error(
    tws: FakeTWS, ready: Any
) -> None:
    client = ready()
    client.reqPnL(1, "U999", "")
    assert "'U999' is not managed here" in client.expect("error", a0=1, a1=321)[2]
    client.reqPnLSingle(2, ACCOUNT, "", 424242)
    client.expect("error", a0=2, a1=200)


def test_pnl_daily_is_realized_plus_the_change_of_unrealized_over_a_replay(
    ib: Any, connect: Any
) -> None:
    """Every P&L message, over many days with trades, agrees with the account to the cent."""
    opens_closes = [(100 + i % 7, 100 + (i * 3) % 5) for i in range(30)]
    rows = [(o, max(o, c) + 1, min(o, c) - 1, c) for o, c in opens_closes]
    with FakeTWS(
        data={ACME: bars_frame(rows)}, commission=IBKRFixedCommission(), clock="replay"
    ) as server:
        client = connect(1, server)
        client.expect("nextValidId")
        server.step()
        client.reqPnL(1, ACCOUNT, "")
        client.expect("pnl", a0=1)
        closes: dict[str, float] = {}
        for day in range(1, 29):
            if day % 3 == 0:
                side = "BUY" if day % 2 == 0 else "SELL"
                buy(client, ib, day, 10 * (day % 4 + 1), side)
            server.step()
            portfolio = server.market.portfolio
            closes[str(day)] = portfolio.equity
            last = sent(server, PNL)[-1]
            daily, unrealized = float(last[2]), float(last[3])
            assert unrealized == pytest.approx(
                sum(p.unrealized_pnl for p in portfolio.positions.values()), abs=0.005
            )
            previous = closes.get(str(day - 1), 1_000_000.0)
            assert daily == pytest.approx(portfolio.equity - previous, abs=0.01)


def test_the_broker_ends_the_subscriptions_its_readings_open() -> None:
    """IBKRBroker reads the account at each reconciliation: TWS allows two summaries at once.

    It used to cancel its summary with request id 0, which TWS ignores: a third reading was
    refused with error 322. Each reading now cancels its own, and its positions subscription.
    """
    from ibkrfw.testing import LiveSession, ScriptedStrategy

    with FakeTWS.from_sample(["ACME"]) as tws, LiveSession(ScriptedStrategy({}), tws) as session:
        session.step(1)
        for _ in range(4):
            session.broker.reconcile()
        client_id = session.client.config.client_id
        assert tws.wait_for(lambda: tws.accounts.active_summaries(client_id) == [])
        summaries = tws.messages("in", client_id=client_id, msg_id=62)
        cancels = tws.messages("in", client_id=client_id, msg_id=63)
        assert len(summaries) == len(cancels) >= 5  # the start-up reading and four more
        assert [c.fields[2] for c in cancels] == [s.fields[2] for s in summaries]
        positions = tws.messages("in", client_id=client_id, msg_id=61)
        assert len(tws.messages("in", client_id=client_id, msg_id=64)) == len(positions)
        errors = tws.messages("out", client_id=client_id, msg_id=4)
        assert not [e for e in errors if e.fields[3] == "322"]
        session.stop()


def test_completed_orders_carry_when_they_ended_on_the_fakes_clock(
    tws: FakeTWS, clock: SimClock, ib: Any, ready: Any
) -> None:
    client = ready()
    tws.step()
    buy(client, ib, 1, 10)
    later(clock, 65)
    tws.step()  # the bar of 2024-01-03 00:00 UTC; the fill at 15:01:05 on the fake's clock
    client.expect("orderStatus", a0=1, a1="Filled")
    client.reqCompletedOrders(False)
    client.expect("completedOrdersEnd")
    [completed] = sent(tws, 101)
    assert completed[-2:] == ("20240102 15:01:05 UTC", "Filled")


def test_pnl_amounts_are_plain_numbers_never_minus_zero(ib: Any, connect: Any) -> None:
    """A P&L of nothing is 0.0 on the wire: never -0.0 (a float's rounding) nor an integer 0."""
    closes = (100.37, 100.41, 100.29, 100.53, 100.61, 100.17, 100.23, 100.47)
    rows = [(100.0, 101.0, 99.0, 100.0)] + [(100.13, 101.0, 99.0, c) for c in closes]
    with FakeTWS(
        data={ACME: bars_frame(rows)}, commission=IBKRFixedCommission(), clock="replay"
    ) as server:
        client = connect(1, server)
        client.expect("nextValidId")
        server.step()
        client.reqPnL(1, ACCOUNT, "")
        client.reqPnLSingle(2, ACCOUNT, "", server.market.con_ids[ACME])
        client.expect("pnlSingle", a0=2)
        buy(client, ib, 1, 137, "SELL")
        server.step(len(closes))  # sold at 100.13 (commission and fees), then day by day
        client.expect("orderStatus", a0=1, a1="Filled")
        amounts = [f[2:5] for f in sent(server, PNL)] + [f[3:7] for f in sent(server, PNL_SINGLE)]
        assert len(amounts) >= 12
        every = [a for fields in amounts for a in fields]
        assert not [a for a in every if a.startswith("-") and float(a) == 0]
        assert not [a for a in every if "." not in a]  # floats, as TWS sends them


def test_an_order_in_another_currency_is_refused_not_a_broken_replay(ib: Any, connect: Any) -> None:
    """The fake's account converts no currencies: error 201 at once, not a crash at the fill.

    It used to accept the order and then fail in ``step()`` at the fill (no exchange rate),
    which stopped a background replay for good.
    """
    sap = Stock("SAP", exchange="IBIS", currency="EUR")
    data = {ACME: bars_frame(ROWS), sap: bars_frame(ROWS)}
    with FakeTWS(data=data, clock="replay") as server:
        client = connect(1, server)
        client.expect("nextValidId")
        server.step()
        contract = ib.contract("SAP")
        contract.conId, contract.exchange, contract.currency = (
            server.market.con_ids[sap], "IBIS", "EUR",
        )  # fmt: skip
        client.placeOrder(1, contract, ib.order("BUY", 10))
        text = client.expect("error", a0=1, a1=201)[2]
        assert "SAP" in text and "EUR" in text and "USD" in text
        assert server.step() == 1  # the replay goes on; nothing was bought
        assert server.market.portfolio.quantity(sap) == 0
        buy(client, ib, 2, 10)  # an order in the account's currency still works
        server.step()
        client.expect("orderStatus", a0=2, a1="Filled")


def test_a_client_that_stops_reading_is_disconnected_not_a_stall_for_everyone(
    ib: Any, ready: Any
) -> None:
    """The fake sends under its market's lock: a client that reads nothing used to stall it.

    Once that client's socket buffers were full, the replay stopped and another client's order
    got no answer (``stop()`` took its full timeouts). Now a send that waits longer than
    ``send_timeout_s`` disconnects the client that does not read.
    """
    import socket
    import time

    from ibkrfw.errors import ConfigError
    from ibkrfw.testing.faketws.wire import HANDSHAKE_PREFIX, encode_fields, frame

    rows = [(100 + i % 9, 110, 95, 100.5 + i % 7) for i in range(200_000)]
    with FakeTWS(data={ACME: bars_frame(rows, freq="1s")}, clock="replay") as server:
        with pytest.raises(ConfigError, match="positive number of seconds, got 0"):
            server.send_timeout_s = 0
        server.send_timeout_s = 0.5
        server.step()
        stuck = socket.create_connection(("127.0.0.1", server.port))
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.sendall(HANDSHAKE_PREFIX + frame(b"v100..157"))
        stuck.sendall(frame(encode_fields([71, 2, 9, ""])))  # startApi, client 9
        assert server.wait_for(lambda: 9 in server.client_ids)
        # The fake's side of the connection buffers a few kilobytes only: its sends to client 9
        # block after a few hundred ticks however fast this machine replays them (with the
        # kernel's default, megabytes, a loaded machine took longer than the wait below).
        (session,) = [s for s in server._sessions if s.client_id == 9]
        session.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        con_id = server.market.con_ids[ACME]
        contract = [con_id, "ACME", "STK", "", 0.0, "", "", "SMART", "", "USD", "", "", 0]
        stuck.sendall(frame(encode_fields([1, 11, 1, *contract, "", 0, 0, ""])))  # reqMktData
        server.play(0.00001)  # ticks for client 9, which reads none of them
        try:
            assert server.wait_for(lambda: 9 not in server.client_ids, timeout=30)
            moved = server.market.position
            time.sleep(0.3)
            assert server.market.position > moved  # the replay goes on
            client = ready(1)
            buy(client, ib, 1, 10)
        finally:
            server.pause()
            stuck.close()
