"""Live time slices against the fake TWS: ``on_slice`` acts at the bar the backtest acts on.

A live slice closes as soon as every instrument has given its bar for the time stamp, not
when the next time stamp's first bar arrives (a whole bar interval later); an instrument
whose bar does not come holds it up for ``Engine(slice_wait_s=...)`` at most.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import pandas as pd
import pytest

from ibkrfw import (
    Bar,
    Context,
    DataProblem,
    Engine,
    Instrument,
    PortfolioView,
    RunResult,
    Strategy,
)
from ibkrfw.data import load_sample, sample_instruments
from ibkrfw.ibkr import Backoff, IBClient, IBKRBroker, IBKRConfig, IBKRDataFeed
from ibkrfw.risk import Halt, MaxDrawdownKillSwitch, Protection, RiskMonitor, StopLoss
from ibkrfw.sim import DataFrameFeed, SimBroker
from ibkrfw.strategies import CrossSectionalMomentum
from ibkrfw.testing import FakeTWS, LiveSession, ScriptedStrategy

WAIT = 10.0
SYMBOLS = ["ACME", "BOLT", "CRUX"]
REAL_TIME_BARS = 50  # the message id of reqRealTimeBars


def until(condition: Callable[[], object], timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.002)
    return False


def sample_frames(
    steps: int, symbols: Sequence[str] = SYMBOLS, missing: dict[str, int] | None = None
) -> dict[Instrument, pd.DataFrame]:
    """The first ``steps`` sample bars of each symbol, less the ``missing`` row of some."""
    frame = load_sample()
    frames: dict[Instrument, pd.DataFrame] = {}
    for symbol, inst in sample_instruments(symbols).items():
        rows = frame[frame["symbol"] == symbol].set_index("timestamp").iloc[:steps]
        if missing and symbol in missing:
            rows = rows.drop(rows.index[missing[symbol]])
        frames[inst] = rows
    return frames


class Seen(RiskMonitor):
    """A monitor that only records the time stamps it observed the account at."""

    def __init__(self) -> None:
        self.times: list[int] = []

    def observe(self, portfolio: PortfolioView, ts_ns: int) -> Halt | None:
        self.times.append(ts_ns)
        return None


def momentum() -> CrossSectionalMomentum:
    return CrossSectionalMomentum(lookback=10, top=1, every="weekly")


FILL_COLUMNS = ["instrument", "side", "quantity", "price"]


@pytest.mark.parametrize("volume_limit", [None, 0.002])
def test_a_cross_sectional_strategy_trades_each_slice_at_the_bar_of_the_backtest(
    volume_limit: float | None,
) -> None:
    """Weekly rotation with protective stops (and partial fills): the same decisions, fills
    and monitor times."""
    steps = 120
    frames = sample_frames(steps)
    protect = Protection(StopLoss.percent(0.03))
    expected_strategy, expected_seen = momentum(), Seen()
    backtest = Engine(
        expected_strategy, DataFrameFeed(frames),
        SimBroker(cash=1_000_000, volume_limit=volume_limit),
        risk_monitors=[expected_seen], protection=protect,
    ).run()  # fmt: skip
    strategy, seen = momentum(), Seen()
    with (
        FakeTWS(data=frames, volume_limit=volume_limit) as tws,
        LiveSession(strategy, tws, risk_monitors=[seen], protection=protect) as session,
    ):
        for step in range(1, steps + 1):
            assert session.step() == 1
            # the slice closed with its last bar: its monitors ran before the next bar came
            assert len(seen.times) == step
        live = session.stop()
    assert len(expected_strategy.holdings) > 10
    assert strategy.holdings == expected_strategy.holdings  # decided at the same times
    assert seen.times == expected_seen.times
    stops = backtest.orders[backtest.orders["tag"].str.endswith("stop-loss")]
    assert (stops["status"] == "FILLED").any()  # protective stops were hit, too
    assert list(live.fills[FILL_COLUMNS].itertuples(index=False)) == list(
        backtest.fills[FILL_COLUMNS].itertuples(index=False)
    )
    assert list(live.fills.index) == list(backtest.fills.index)  # at the same bars
    if volume_limit is not None:  # some rotation orders end their day partly filled
        assert len(backtest.fills) > 2 * len(expected_strategy.holdings)
    # TWS reports a DAY order that expired as cancelled
    expected_status = backtest.orders["status"].replace("EXPIRED", "CANCELLED")
    assert list(live.orders["status"]) == list(expected_status)


def test_a_kill_switch_halts_and_flattens_at_the_time_stamp_of_the_backtest() -> None:
    """The monitors run once a live time stamp is complete, so a halt comes when it would."""
    steps = 120
    frames = sample_frames(steps)
    backtest = Engine(
        momentum(), DataFrameFeed(frames), SimBroker(cash=1_000_000),
        risk_monitors=[MaxDrawdownKillSwitch(0.04)],
    ).run()  # fmt: skip
    with (
        FakeTWS(data=frames) as tws,
        LiveSession(momentum(), tws, risk_monitors=[MaxDrawdownKillSwitch(0.04)]) as session,
    ):
        session.step(steps)
        live = session.stop()
    assert len(backtest.halts) == 1
    assert [(h.ts_ns, h.reason) for h in live.halts] == [
        (h.ts_ns, h.reason) for h in backtest.halts
    ]
    assert any(o.request.tag == "flatten" for o in backtest.order_list)
    assert list(live.fills[FILL_COLUMNS].itertuples(index=False)) == list(
        backtest.fills[FILL_COLUMNS].itertuples(index=False)
    )
    assert list(live.fills.index) == list(backtest.fills.index)


def test_sandbox_orders_of_on_slice_fill_on_the_next_bar_as_in_the_backtest() -> None:
    """IB's bars, the simulator's fills: an order sent in on_slice fills on the next bar."""
    steps = 120
    frames = sample_frames(steps)
    backtest = Engine(momentum(), DataFrameFeed(frames), SimBroker(cash=1_000_000)).run()
    seen = Seen()
    with (
        FakeTWS(data=frames) as tws,
        LiveSession(
            momentum(), tws, broker=SimBroker(cash=1_000_000), risk_monitors=[seen]
        ) as session,
    ):
        for step in range(1, steps + 1):
            session.step()
            assert len(seen.times) == step  # the slice is over before the next bar comes
        sandbox = session.stop()
        assert not tws.messages("in", client_id=1, msg_id=3)  # nothing was sent to IB
    assert len(backtest.fills) > 10
    assert list(sandbox.fills[FILL_COLUMNS].itertuples(index=False)) == list(
        backtest.fills[FILL_COLUMNS].itertuples(index=False)
    )
    assert list(sandbox.fills.index) == list(backtest.fills.index)


class Rotate(Strategy):
    """Records each slice (its symbols, and when it came); buys ACME on the ``buy_at``-th."""

    def __init__(self, buy_at: int = -1) -> None:
        self.buy_at = buy_at
        self.slices: list[list[str]] = []
        self.slice_times: list[float] = []  # time.monotonic() of each on_slice
        self.bar_times: list[float] = []  # time.monotonic() of each on_bar
        self.problems: list[DataProblem] = []

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        self.bar_times.append(time.monotonic())

    def on_slice(self, ctx: Context, bars: Sequence[Bar]) -> None:
        self.slice_times.append(time.monotonic())
        if len(self.slices) == self.buy_at:
            ctx.buy(bars[0].instrument, 10)
        self.slices.append([bar.instrument.symbol for bar in bars])

    def on_event(self, ctx: Context, event: object) -> None:
        if isinstance(event, DataProblem):
            self.problems.append(event)


class LiveRun:
    """A live engine on the wall clock against the fake TWS, one IBKRDataFeed per group."""

    def __init__(
        self,
        tws: FakeTWS,
        strategy: Strategy,
        groups: Sequence[Sequence[Instrument]],
        slice_wait_s: float,
    ) -> None:
        client = IBClient(IBKRConfig(port=tws.port))
        feeds = [IBKRDataFeed(list(group), client=client, bar_size=None) for group in groups]
        self.engine = Engine(
            strategy, feeds, IBKRBroker(client=client), slice_wait_s=slice_wait_s, tune_gc=False
        )
        self.result: RunResult | None = None
        self._runner = threading.Thread(target=self._run, name="live-run")
        self._tws = tws
        self._wanted = sum(len(group) for group in groups)

    def _run(self) -> None:
        self.result = self.engine.run()

    def __enter__(self) -> LiveRun:
        self._runner.start()
        tws = self._tws
        subscribed = tws.wait_for(
            lambda: len(tws.messages("in", client_id=1, msg_id=REAL_TIME_BARS)) == self._wanted,
            WAIT,
        )
        if not subscribed:
            self.__exit__()
            raise AssertionError("the live run did not subscribe to its bars")
        return self

    def __exit__(self, *exc: object) -> None:
        self.engine.stop()
        self._runner.join(WAIT)
        assert not self._runner.is_alive(), "the live run did not stop"


def test_a_slice_missing_a_bar_closes_after_the_wait_and_its_order_fills_next_bar() -> None:
    """BOLT has no bar at the third time stamp: on_slice gets ACME's alone after the wait."""
    frames = sample_frames(5, ["ACME", "BOLT"], missing={"BOLT": 2})
    expected = Rotate(buy_at=2)
    backtest = Engine(expected, DataFrameFeed(frames), SimBroker(cash=1_000_000)).run()
    assert expected.slices == [["ACME", "BOLT"]] * 2 + [["ACME"]] + [["ACME", "BOLT"]] * 2
    wait_s = 0.5
    strategy = Rotate(buy_at=2)
    with FakeTWS(data=frames) as tws, LiveRun(tws, strategy, [list(frames)], wait_s) as run:
        for step in range(1, 6):
            tws.step()
            # each slice closes before the next time stamp's bars are sent
            assert until(lambda: len(strategy.slices) == step, 5.0), f"step {step}"  # noqa: B023
            if step == 3:  # the order it sent reaches the fake TWS before the next bar
                assert tws.wait_for(lambda: tws.messages("in", client_id=1, msg_id=3), WAIT)
    assert strategy.slices == expected.slices
    # the partial slice waited for BOLT (on the run's clock: here the wall clock), no longer
    waited = strategy.slice_times[2] - strategy.bar_times[4]
    assert wait_s * 0.95 <= waited < wait_s + 5.0
    assert strategy.slice_times[3] - strategy.bar_times[6] < wait_s  # complete: no wait
    assert [(p.instrument.symbol, p.code) for p in strategy.problems] == [("BOLT", None)]
    assert "no bar of BOLT" in strategy.problems[0].reason
    # the order sent on the partial slice filled at the next bar's open, as in the backtest
    assert run.result is not None
    assert len(backtest.fills) == 1
    assert list(run.result.fills[FILL_COLUMNS].itertuples(index=False)) == list(
        backtest.fills[FILL_COLUMNS].itertuples(index=False)
    )
    assert list(run.result.fills.index) == list(backtest.fills.index)


def test_slices_of_several_live_feeds_close_once_every_feed_has_given_its_bar() -> None:
    """Two feeds (ACME; BOLT and CRUX): each slice holds all three and closes without waiting."""
    frames = sample_frames(4)
    acme, bolt, crux = frames
    strategy = Rotate()
    # a wait far longer than the test: a slice that waited would not close in time
    with FakeTWS(data=frames) as tws, LiveRun(tws, strategy, [[acme], [bolt, crux]], 60.0):
        for step in range(1, 5):
            tws.step()
            assert until(lambda: len(strategy.slices) == step, 5.0), f"step {step}"  # noqa: B023
    assert strategy.slices == [["ACME", "BOLT", "CRUX"]] * 4
    assert not strategy.problems


def test_slices_close_on_their_last_bar_after_a_reconnection() -> None:
    """The socket drops; the feed subscribes again; slices still close with their last bar."""
    frames = sample_frames(10)
    script, seen = ScriptedStrategy(), Seen()
    with FakeTWS(data=frames) as tws:
        session = LiveSession(script, tws, risk_monitors=[seen])
        session.client.backoff = Backoff(base=0.05, cap=0.2, seed=1)
        with session:
            session.step(2)
            assert len(script.slices) == len(seen.times) == 2
            tws.drop_connections()
            assert until(lambda: session.client.is_connected and len(tws.client_ids) == 1)
            assert until(lambda: len(tws.messages("in", client_id=1, msg_id=50)) >= 6)
            for step in range(3, 6):
                session.step()
                assert len(script.slices) == len(seen.times) == step
            session.stop()
    assert [[b.instrument.symbol for b in s] for s in script.slices] == [SYMBOLS] * 5
    times = list(frames[next(iter(frames))].index[:5].as_unit("ns").asi8)
    assert seen.times == times
