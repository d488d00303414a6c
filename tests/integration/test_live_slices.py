"""Live time slices on the wall clock, bar by bar: complete, waited for, late, out of order.

A live feed the test drives hands the engine one bar at a time, so each case is exact: a
slice closes with its last instrument's bar, or ``slice_wait_s`` after its first bar; a bar
that comes after its slice closed reaches ``on_bar`` only; a bar older than the time stamp in
progress, or a second bar of an instrument, is dropped and reported.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence

import pytest

from ibkrfw import (
    Bar,
    BarReceived,
    Clock,
    ConfigError,
    Context,
    DataFeed,
    DataProblem,
    Engine,
    Instrument,
    PortfolioView,
    Stock,
    Strategy,
    TimerFired,
)
from ibkrfw.engine import EngineObserver
from ibkrfw.ports import EventSink
from ibkrfw.risk import Halt, RiskMonitor
from ibkrfw.sim import SimBroker

WAIT = 10.0
X, Y = Stock("X"), Stock("Y")
DAY = 86_400 * 10**9
T0 = 1_704_186_000 * 10**9  # 2024-01-02 09:00 UTC


def until(condition: Callable[[], object], timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.002)
    return False


def bar(inst: Instrument, day: int, close: float = 100.0) -> Bar:
    return Bar(inst, T0 + day * DAY, close, close + 1, close - 1, close, 1_000.0)


class PushFeed(DataFeed):
    """A live feed whose bars the test hands over one at a time."""

    def __init__(self, instruments: Sequence[Instrument]) -> None:
        self._instruments = tuple(instruments)
        self._emit: EventSink | None = None
        self.pushed = 0

    @property
    def instruments(self) -> tuple[Instrument, ...]:
        return self._instruments

    @property
    def is_live(self) -> bool:
        return True

    def __iter__(self) -> Iterator[Bar]:
        return iter(())

    def start(self, clock: Clock, emit: EventSink) -> None:
        self._emit = emit

    def push(self, *bars: Bar) -> None:
        assert self._emit is not None, "the engine has not started the feed"
        for one in bars:
            self.pushed += 1
            self._emit(BarReceived(ts_ns=one.ts_ns, bar=one))


class Record(Strategy):
    """Records every bar, slice, timer and data problem, with when they came."""

    def __init__(self, timer_after_s: float | None = None) -> None:
        self.timer_after_s = timer_after_s
        self.bars: list[tuple[str, int]] = []
        self.slices: list[list[tuple[str, int]]] = []
        self.slice_times: list[float] = []
        self.timer_times: list[float] = []
        self.problems: list[str] = []
        self.arm = threading.Event()  # set: schedule the timer at the next on_bar

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        self.bars.append((bar.instrument.symbol, (bar.ts_ns - T0) // DAY))
        if self.arm.is_set() and self.timer_after_s is not None:
            self.arm.clear()
            ctx.schedule("poke", ctx.now_ns + int(self.timer_after_s * 1e9))

    def on_slice(self, ctx: Context, bars: Sequence[Bar]) -> None:
        self.slice_times.append(time.monotonic())
        self.slices.append([(b.instrument.symbol, (b.ts_ns - T0) // DAY) for b in bars])

    def on_timer(self, ctx: Context, timer: TimerFired) -> None:
        self.timer_times.append(time.monotonic())

    def on_event(self, ctx: Context, event: object) -> None:
        if isinstance(event, DataProblem):
            self.problems.append(f"{event.instrument.symbol}: {event.reason}")


class Seen(RiskMonitor):
    def __init__(self) -> None:
        self.times: list[int] = []

    def observe(self, portfolio: PortfolioView, ts_ns: int) -> Halt | None:
        self.times.append(ts_ns)
        return None


class Beats(EngineObserver):
    """Keeps the heartbeats stamped with a bar's time (the idle ones read the wall clock)."""

    def __init__(self) -> None:
        self.times: list[int] = []

    def on_heartbeat(self, engine: Engine, now_ns: int) -> None:
        if now_ns < T0 + 365 * DAY:
            self.times.append(now_ns)


class Run:
    """The engine on its own thread, on the wall clock, fed by a PushFeed."""

    def __init__(self, strategy: Strategy, **options: object) -> None:
        self.feed = PushFeed([X, Y])
        self.monitor, self.beats = Seen(), Beats()
        self.engine = Engine(
            strategy, self.feed, SimBroker(), risk_monitors=[self.monitor],
            observers=[self.beats], tune_gc=False, **options,  # type: ignore[arg-type]
        )  # fmt: skip
        self._thread = threading.Thread(target=self.engine.run, name="engine")

    def __enter__(self) -> Run:
        self._thread.start()
        assert until(lambda: self.feed._emit is not None)
        return self

    def push(self, *bars: Bar) -> None:
        """Hand ``bars`` over and wait until the engine has finished with them."""
        self.feed.push(*bars)
        assert until(lambda: self.engine.bars_processed == self.feed.pushed), "not handled"

    def __exit__(self, *exc: object) -> None:
        self.engine.stop()
        self._thread.join(WAIT)
        assert not self._thread.is_alive()


def test_live_slices_close_when_complete_or_after_the_wait_and_late_bars_go_to_on_bar() -> None:
    strategy = Record()
    wait_s = 0.3
    with Run(strategy, slice_wait_s=wait_s) as run:
        run.push(bar(X, 0), bar(Y, 0))
        # complete: closed with Y's bar, monitors and heartbeat at its time, before returning
        # (the monitors at the run's time: the wall clock here, as a live run's halts are)
        assert strategy.slices == [[("X", 0), ("Y", 0)]]
        assert len(run.monitor.times) == 1 and run.beats.times == [T0]
        assert all(t > T0 + 365 * DAY for t in run.monitor.times)

        pushed = time.monotonic()
        run.push(bar(X, 1))  # Y's bar of day 1 does not come in time
        assert until(lambda: len(strategy.slices) == 2)
        assert strategy.slice_times[1] - pushed >= wait_s * 0.95
        assert strategy.slices[1] == [("X", 1)]
        assert len(run.monitor.times) == 2 and run.beats.times == [T0, T0 + DAY]
        assert len(strategy.problems) == 1 and strategy.problems[0].startswith("Y: no bar of Y")

        run.push(bar(Y, 1))  # late: on_bar sees it, its slice is over
        run.push(bar(X, 0))  # older than the time stamp in progress: dropped
        run.push(bar(X, 1))  # a second bar of X for day 1: dropped
        run.push(bar(X, 2))
        run.push(bar(Y, 2))
        assert strategy.slices[2:] == [[("X", 2), ("Y", 2)]]

        run.push(bar(X, 3))
        run.push(bar(X, 4))  # a later time stamp closes the one in progress at once
        assert strategy.slices[3:] == [[("X", 3)]]
    assert strategy.bars == [("X", 0), ("Y", 0), ("X", 1), ("Y", 1), ("X", 2), ("Y", 2),
                             ("X", 3), ("X", 4)]  # fmt: skip
    assert strategy.slices[4:] == [[("X", 4)]]  # the slice in progress closes at the stop
    assert len(run.monitor.times) == 5  # once a time stamp
    assert [p.split(":")[0] for p in strategy.problems] == ["Y", "X", "X", "Y"]
    assert "older" in strategy.problems[1] and "second bar" in strategy.problems[2]
    assert run.engine.bars_processed == 10  # the dropped ones too: the engine is done with them


def test_a_missing_instrument_is_reported_once_until_its_bars_come_in_time_again() -> None:
    strategy = Record()
    with Run(strategy, slice_wait_s=0.05) as run:
        for day in range(3):
            run.push(bar(X, day))
            assert until(lambda: len(strategy.slices) == day + 1)  # noqa: B023
        run.push(bar(X, 3), bar(Y, 3))
        run.push(bar(X, 4))
        assert until(lambda: len(strategy.slices) == 5)
    assert [p.split(":")[0] for p in strategy.problems] == ["Y", "Y"]
    assert "reported once" in strategy.problems[0]


def test_a_timer_due_while_a_slice_waits_fires_on_time_and_the_wait_is_kept() -> None:
    strategy = Record(timer_after_s=0.05)
    with Run(strategy, slice_wait_s=0.6) as run:
        strategy.arm.set()
        pushed = time.monotonic()
        run.push(bar(X, 0))
        assert until(lambda: len(strategy.slices) == 1)
    assert len(strategy.timer_times) == 1
    assert strategy.timer_times[0] - pushed < 0.6  # not held back by the open slice
    assert strategy.slice_times[0] - pushed >= 0.6 * 0.95  # nor the slice closed by the timer


def test_an_infinite_wait_closes_a_slice_only_when_complete_or_at_the_next_time_stamp() -> None:
    strategy = Record()
    with Run(strategy, slice_wait_s=math.inf) as run:
        run.push(bar(X, 0))
        time.sleep(0.2)
        assert strategy.slices == []
        run.push(bar(X, 1))
        assert strategy.slices == [[("X", 0)]]
        run.push(bar(Y, 1))
        assert strategy.slices == [[("X", 0)], [("X", 1), ("Y", 1)]]


@pytest.mark.parametrize("wait", [-1.0, math.nan, "2", True])
def test_engine_slice_wait_that_is_not_seconds_is_refused(wait: object) -> None:
    with pytest.raises(ConfigError, match="slice_wait_s"):
        Engine(Record(), PushFeed([X]), SimBroker(), slice_wait_s=wait)  # type: ignore[arg-type]
