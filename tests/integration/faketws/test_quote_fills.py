"""Orders filled from replayed quotes alone: buys at the ask, sells at the bid."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest

from ibkrfw import Stock
from ibkrfw.testing.faketws import FakeTWS

ACME = Stock("ACME")
QUOTES = pd.DataFrame(
    {
        "bid": [99.98, 100.10, 100.40, 99.70, 99.50],
        "ask": [100.02, 100.14, 100.44, 99.74, 99.54],
        "bid_size": [300.0, 300.0, 300.0, 300.0, 300.0],
        "ask_size": [200.0, 200.0, 200.0, 200.0, 200.0],
    },
    index=pd.date_range("2024-01-02 14:30", periods=5, freq="1s", tz="UTC", name="timestamp"),
)


@pytest.fixture
def tws() -> Iterator[FakeTWS]:
    with FakeTWS(quotes={ACME: QUOTES}) as server:  # no bars: orders fill on the quotes
        yield server


def test_market_orders_take_the_next_ask_and_bid(tws: FakeTWS, ib: Any, ready: Any) -> None:
    client = ready()
    tws.step()  # quote 0: 99.98 / 100.02
    client.placeOrder(1, ib.contract(), ib.order("BUY", 100))
    client.expect("orderStatus", a1="Submitted")
    tws.step()  # quote 1: 100.10 / 100.14
    _, _, execution = client.expect("execDetails")
    assert (execution.side, float(execution.shares), execution.price) == ("BOT", 100.0, 100.14)
    client.placeOrder(2, ib.contract(), ib.order("SELL", 100))
    client.expect("orderStatus", a0=2, a1="Submitted")
    tws.step()  # quote 2: 100.40 / 100.44
    _, _, execution = client.expect("execDetails")
    assert (execution.side, execution.price) == ("SLD", 100.40)


def test_a_limit_waits_for_the_ask_to_reach_it(tws: FakeTWS, ib: Any, ready: Any) -> None:
    client = ready()
    tws.step()
    client.placeOrder(1, ib.contract(), ib.order("BUY", 100, "LMT", limit=99.80))
    client.expect("orderStatus", a1="Submitted")
    tws.step(2)  # asks 100.14 and 100.44: above the limit
    assert not tws.messages("out", client_id=1, msg_id=11)
    tws.step()  # ask 99.74: at or below the limit, filled at the ask
    _, _, execution = client.expect("execDetails")
    assert execution.price == 99.74


def test_the_shown_size_caps_a_fill_with_a_volume_limit(ib: Any, connect: Any) -> None:
    with FakeTWS(quotes={ACME: QUOTES}, volume_limit=1.0) as server:
        client = connect(1, server)
        client.expect("nextValidId")
        server.step()
        client.placeOrder(1, ib.contract(), ib.order("BUY", 500))
        client.expect("orderStatus", a1="Submitted")
        server.step(3)  # 200 shown on the ask each time
        sizes = [float(client.expect("execDetails")[2].shares) for _ in range(3)]
        client.stop()
    assert sizes == [200.0, 200.0, 100.0]


def test_sandbox_fills_on_ibs_quotes() -> None:
    """IB's quotes (here the fake's) through the live feed, the simulator filling on them."""
    import threading
    import time

    from ibkrfw import Engine, Strategy
    from ibkrfw.ibkr import IBClient, IBKRConfig, IBKRDataFeed
    from ibkrfw.sim import SimBroker

    class BuyOnce(Strategy):
        sent = False

        def on_quote(self, ctx, quote):  # type: ignore[no-untyped-def]
            if not self.sent:
                self.sent = True
                ctx.buy(quote.instrument, 10)

    with FakeTWS(quotes={ACME: QUOTES}) as server:
        client = IBClient(IBKRConfig(port=server.port))
        feed = IBKRDataFeed([ACME], client=client, bar_size=None, quotes=True)
        broker = SimBroker(fill_on="quotes")
        engine = Engine(BuyOnce(), feed, broker, tune_gc=False)
        runner = threading.Thread(target=engine.run)
        runner.start()
        try:
            assert server.wait_for(lambda: server.messages("in", msg_id=1), 10)
            for _ in range(3):
                server.step()
                time.sleep(0.2)
        finally:
            engine.stop()
            runner.join(10)
    # Bid and ask change one message at a time: the first update after the order is quote 1's
    # bid, the ask still 100.02, and a market buy takes that ask.
    fills = engine.portfolio.fills if engine.portfolio else []
    assert [(f.quantity, float(f.price)) for f in fills] == [(10, 100.02)]
