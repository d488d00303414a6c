"""History, real-time bars, replay speed, data sources and scripted faults, through ibapi."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ibkrfw import Stock
from ibkrfw.data import SQLiteBarStore, generate_bars
from ibkrfw.testing import bars_frame
from ibkrfw.testing.faketws import FakeTWS

ACME = Stock("ACME")
ROWS = [(100, 101, 99, 100), (100.5, 102, 99.5, 101), (101, 103, 98, 102), (96, 97, 95, 96.5)]
Connect = Callable[[int], Any]


@pytest.fixture
def tws() -> Iterator[FakeTWS]:
    with FakeTWS(data={ACME: bars_frame(ROWS)}) as server:
        yield server


def test_history_is_the_replayed_past_and_keeps_up_to_date(
    tws: FakeTWS, ib: Any, ready: Any
) -> None:
    client = ready()
    tws.step(2)
    client.reqHistoricalData(4, ib.contract(), "", "5 D", "1 day", "TRADES", 1, 1, True, [])
    dates = [client.expect("historicalData", a0=4)[1] for _ in range(2)]
    assert dates == ["20240101", "20240102"]  # UTC midnights, in New York: the day before
    client.expect("historicalDataEnd", a0=4)
    tws.step()
    _, _, open_, close = client.expect("historicalDataUpdate", a0=4)
    assert (open_, close) == (101.0, 102.0)
    client.cancelHistoricalData(4)
    assert tws.wait_for(lambda: bool(tws.messages("in", msg_id=25)))


def test_a_pacing_violation_answers_a_history_request_with_162(
    tws: FakeTWS, ib: Any, ready: Any
) -> None:
    client = ready()
    tws.step()
    tws.pace_history()
    client.reqHistoricalData(1, ib.contract(), "", "1 D", "1 day", "TRADES", 1, 2, False, [])
    assert "pacing violation" in client.expect("error", a0=1, a1=162)[2]
    client.reqHistoricalData(2, ib.contract(), "", "1 D", "1 day", "TRADES", 1, 2, False, [])
    client.expect("historicalData", a0=2)  # the next one is answered
    client.reqHistoricalData(3, ib.contract(), "", "1 D", "1 min", "TRADES", 1, 2, False, [])
    client.expect("error", a0=3, a1=321)  # not the data's bar size


def test_real_time_bars_follow_the_replay(tws: FakeTWS, ib: Any, ready: Any) -> None:
    client = ready()
    client.reqRealTimeBars(6, ib.contract(), 5, "TRADES", False, [])
    assert tws.wait_for(lambda: bool(tws.messages("in", msg_id=50)))
    tws.step()
    assert client.expect("realtimeBar", a0=6)[2:] == (100.0, 100.0)


def test_rejections_duplicates_and_withheld_acknowledgements(
    tws: FakeTWS, ib: Any, ready: Any
) -> None:
    client = ready()
    tws.reject_next_order(201, "Order rejected - reason:YOUR ORDER IS NOT ACCEPTED")
    client.placeOrder(1, ib.contract(), ib.order())
    assert "NOT ACCEPTED" in client.expect("error", a0=1, a1=201)[2]
    tws.hold_acknowledgements()
    client.placeOrder(2, ib.contract(), ib.order())
    assert tws.wait_for(lambda: len(tws.messages("in", msg_id=3)) == 2)
    tws.duplicate_next_execution()
    tws.step()  # fills, but nothing is sent yet
    assert not tws.messages("out", msg_id=11)
    tws.release_acknowledgements(after=0.2)
    client.expect("orderStatus", a0=2, a1="Submitted")
    first = client.expect("execDetails")[2].execId
    second = client.expect("execDetails")[2].execId
    assert first == second  # the same execution twice: the client must deduplicate
    client.expect("orderStatus", a0=2, a1="Filled")


def test_a_restart_drops_clients_and_may_announce_a_lower_next_id(
    tws: FakeTWS, connect: Connect, ib: Any, ready: Any
) -> None:
    client = ready()
    client.placeOrder(10, ib.contract(), ib.order())
    client.expect("orderStatus", a0=10)
    tws.restart(next_order_id=3)
    client.expect("connectionClosed")
    again = connect(1)
    assert again.expect("nextValidId") == (3,)


def test_play_replays_in_the_background(tws: FakeTWS, ib: Any, ready: Any) -> None:
    client = ready()
    client.reqMktData(1, ib.contract(), "", False, False, [])
    client.expect("marketDataType")
    tws.play(0.01)
    closes = [client.expect("tickPrice", a0=1, a1=4)[2] for _ in range(4)]
    assert closes == [100.0, 101.0, 102.0, 96.5]
    assert tws.wait_for(lambda: tws.market.finished)
    tws.pause()


def test_data_from_the_sample_and_from_a_store(tmp_path: Path) -> None:
    with FakeTWS.from_sample(["ACME", "BOLT"]) as sample:
        assert sorted(i.symbol for i in sample.market.arrays) == ["ACME", "BOLT"]
        assert sample.step(3) == 3
    frame = generate_bars(["ACME"], freq="1D", periods=10).set_index("timestamp")
    with SQLiteBarStore(tmp_path / "bars.sqlite") as store:
        store.write(ACME, "1d", frame)
        stored = FakeTWS.from_store(store, ["ACME.SMART"], "1d", start="2020-01-06")
    assert len(stored.market.times) == 8  # the weekdays from Monday 6 January
    deadline = time.monotonic() + 5
    while stored.step():
        assert time.monotonic() < deadline
    assert stored.market.finished


def test_the_fake_tws_command(tmp_path: Path) -> None:
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "ibkrfw.cli", "fake-tws", "--port", "0", "--sample", "ACME",
         "--interval", "0.0001", "--exit-at-end"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "fake TWS listening on 127.0.0.1:" in out
    assert "as account DU1234567 (a margin account)" in out
    assert "fake TWS stopped" in out


def test_the_fake_tws_command_serves_a_cash_account() -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "ibkrfw.cli", "fake-tws", "--port", "0", "--sample", "ACME",
         "--interval", "0.0001", "--exit-at-end", "--cash-account"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "as account DU1234567 (a cash account)" in proc.stdout


def test_replayed_quotes_stream_and_price_the_spread(ib: Any, connect: Connect) -> None:
    import pandas as pd

    from ibkrfw.errors import DataError
    from ibkrfw.sim import HalfSpreadSlippage

    bars = bars_frame(ROWS)
    quotes = pd.DataFrame(
        {
            "bid": [99.9, 100.4],
            "ask": [100.1, 100.8],
            "bid_size": [300, 200],
            "ask_size": [500, 100],
        },
        index=bars.index[:2],
    )
    with FakeTWS(data={ACME: bars}, quotes={ACME: quotes}, slippage=HalfSpreadSlippage(0)) as tws:
        client = connect(1, tws)
        client.expect("nextValidId")
        client.reqMktData(1, ib.contract(), "", False, False, [])
        client.expect("marketDataType")
        tws.step()
        assert client.expect("tickPrice", a0=1, a1=1)[2] == 99.9  # BID from the quote
        assert client.expect("tickPrice", a0=1, a1=2)[2] == 100.1  # ASK
        assert client.expect("tickPrice", a0=1, a1=4)[2] == 100.0  # LAST from the bar
        client.placeOrder(1, ib.contract(), ib.order("BUY", 10))
        client.expect("orderStatus", a0=1, a1="Submitted")
        tws.step()  # bar 1 opens at 100.50; the spread is then 0.40
        assert client.expect("orderStatus", a0=1, a1="Filled")[4] == 100.7
    crossed = quotes.assign(bid=[100.2, 100.4])
    with pytest.raises(DataError, match="bid at or below the ask"):
        FakeTWS(data={ACME: bars}, quotes={ACME: crossed})
