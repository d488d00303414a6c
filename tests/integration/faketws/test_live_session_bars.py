"""Live daily bars, built from IB's 5-second bars, are the backtest's daily bars.

The fake TWS streams 5-second bars around two US sessions, pre-market and after hours
included, across the change to daylight time; the live feed's daily bars must equal what
resampling the same bars by session gives (the store's and IB's daily bars: one regular
session, stamped at midnight New York).
"""

from __future__ import annotations

import threading
import time

import pandas as pd

from ibkrfw import Bar, Context, Engine, Stock, Strategy
from ibkrfw.data import calendar_for, resample_bars
from ibkrfw.ibkr import IBClient, IBKRBroker, IBKRConfig, IBKRDataFeed
from ibkrfw.sim import DataFrameFeed
from ibkrfw.testing import FakeTWS

WAIT = 10.0
NY = "America/New_York"
ACME = Stock("ACME")
TIMES = [
    "04:00:00", "09:29:55",  # pre-market
    "09:30:00", "10:00:00", "12:30:00", "15:59:55",  # the session
    "16:00:00", "19:59:55",  # after hours
]  # fmt: skip


def _bars() -> pd.DataFrame:
    rows = []
    for d, day in enumerate(["2024-03-08", "2024-03-11"]):  # a Friday, then daylight time
        for k, t in enumerate(TIMES):
            price = 100.0 + 10 * d + k
            rows.append((pd.Timestamp(f"{day} {t}", tz=NY), price, price + 0.5, price - 0.5,
                         price + 0.25, 100.0 * (k + 1)))  # fmt: skip
    index = pd.DatetimeIndex([r[0] for r in rows], name="timestamp").tz_convert("UTC")
    return pd.DataFrame(
        [r[1:] for r in rows], index=index, columns=["open", "high", "low", "close", "volume"]
    )


def test_live_daily_bars_equal_the_daily_bars_of_a_backtest() -> None:
    frame = _bars()
    calendar = calendar_for(ACME)
    ts = frame.index.as_unit("ns").asi8
    inside = calendar.sessions_between(int(ts[0]), int(ts[-1])).locate(ts) >= 0
    expected = list(DataFrameFeed(resample_bars(frame[inside], "1d", calendar=calendar), ACME))
    seen: list[Bar] = []

    class Record(Strategy):
        def on_bar(self, ctx: Context, bar: Bar) -> None:
            seen.append(bar)

    with FakeTWS(data={ACME: frame}) as tws:
        client = IBClient(IBKRConfig(port=tws.port))
        feed = IBKRDataFeed([ACME], client=client, bar_size="1d")
        engine = Engine(Record(), feed, IBKRBroker(client=client), tune_gc=False)
        runner = threading.Thread(target=engine.run)
        runner.start()
        try:
            assert tws.wait_for(lambda: tws.messages("in", client_id=1, msg_id=50), WAIT)
            tws.step(len(frame))
            deadline = time.monotonic() + WAIT
            while feed.received < len(frame) and time.monotonic() < deadline:
                time.sleep(0.01)
            deadline = time.monotonic() + WAIT
            while len(seen) < len(expected) and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            engine.stop()
            runner.join(WAIT)
    assert feed.received == len(frame)
    assert seen == expected
    assert [b.timestamp for b in seen] == [
        pd.Timestamp("2024-03-08", tz=NY),
        pd.Timestamp("2024-03-11", tz=NY),
    ]
    assert [(b.open, b.close, b.volume) for b in seen] == [
        (102.0, 105.25, 300.0 + 400 + 500 + 600),
        (112.0, 115.25, 300.0 + 400 + 500 + 600),
    ]
