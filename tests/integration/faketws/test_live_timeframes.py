"""Several bar sizes live: IB's 5-second bars feed the consolidation a backtest uses.

The fake TWS streams 5-second bars of a US session's first hour and a bit; the strategy reads
IB's bars as they come (``bar_size=None``) and asks for minutes and hours. Over the real socket
with the official client, the minutes and the hour it gets must equal what resampling the same
5-second bars offline gives, each handed out right after the 5-second bar that ends it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ibkrfw import Bar, Context, Engine, Instrument, Stock, Strategy
from ibkrfw.data import calendar_for, resample_bars
from ibkrfw.ibkr import IBClient, IBKRBroker, IBKRConfig, IBKRDataFeed
from ibkrfw.testing import FakeTWS

WAIT = 10.0
NY = "America/New_York"
ACME = Stock("ACME")
COLUMNS = ["open", "high", "low", "close", "volume"]


def _five_seconds() -> pd.DataFrame:
    """5-second bars from 09:30:00 to 10:34:55 New York (an hour and five minutes)."""
    index = pd.date_range("2024-03-11 09:30", periods=13 * 60, freq="5s", tz=NY)
    step = np.arange(len(index))
    price = 100 + (step % 37) * 0.01 + step * 0.001
    return pd.DataFrame(
        {"open": price.round(3), "high": (price + 0.02).round(3), "low": (price - 0.02).round(3),
         "close": (price + 0.01).round(3), "volume": 10.0 + step % 7},
        index=index.tz_convert("UTC").rename("timestamp"),
    )  # fmt: skip


class Record(Strategy):
    def __init__(self) -> None:
        self.calls: list[tuple[int, str | None, Bar]] = []

    def bar_sizes(self) -> Mapping[Instrument, Sequence[str]]:
        return {ACME: ["1min", "1h"]}

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        self.calls.append((ctx.now_ns, ctx.bar_size, bar))


def _frame(bars: list[Bar]) -> pd.DataFrame:
    index = pd.DatetimeIndex([b.ts_ns for b in bars], name="timestamp").tz_localize("UTC")
    rows = [(b.open, b.high, b.low, b.close, b.volume) for b in bars]
    return pd.DataFrame(rows, index=index, columns=COLUMNS)


def test_live_timeframes_five_second_bars_make_the_backtests_minutes_and_hours() -> None:
    frame = _five_seconds()
    strategy = Record()
    with FakeTWS(data={ACME: frame}) as tws:
        client = IBClient(IBKRConfig(port=tws.port))
        feed = IBKRDataFeed([ACME], client=client, bar_size=None)
        engine = Engine(strategy, feed, IBKRBroker(client=client), tune_gc=False)
        runner = threading.Thread(target=engine.run)
        runner.start()
        try:
            assert tws.wait_for(lambda: tws.messages("in", client_id=1, msg_id=50), WAIT)
            tws.step(len(frame))
            deadline = time.monotonic() + WAIT
            while len(strategy.calls) < len(frame) + 65 + 1 and time.monotonic() < deadline:
                time.sleep(0.01)
        finally:
            engine.stop()
            runner.join(WAIT)
    assert feed.received == len(frame)
    calls = strategy.calls
    assert [s for _, s, _ in calls].count("5s") == len(frame)
    calendar = calendar_for(ACME)
    for size, count in (("1min", 65), ("1h", 1)):
        got = _frame([bar for _, s, bar in calls if s == size])
        expected = resample_bars(frame, size, calendar=calendar)
        expected = expected[: len(got)]
        assert len(got) == count
        pd.testing.assert_frame_equal(got, expected, check_freq=False)
    # each larger bar comes right after the 5-second bar that ends it, at its time stamp
    for i, (_, size, bar) in enumerate(calls):
        if size == "5s":
            continue
        j = i - 1
        while calls[j][1] != "5s":
            j -= 1
        end = calls[j][2].ts_ns + 5 * 10**9  # live, the clock is the wall's: the bars say
        assert end == bar.ts_ns + (60 if size == "1min" else 3600) * 10**9
