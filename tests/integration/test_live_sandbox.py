"""Sandbox mode on the wall clock: a live feed, the simulator's fills, the backtest's trades.

Live bars are stamped with their open time, which the wall clock has long passed when the
strategy answers the bar before; the simulator must still fill that answer on the next bar,
as in the backtest, not one bar later.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence

import pytest

from ibkrfw import (
    Bar,
    BarReceived,
    Clock,
    Context,
    DataFeed,
    Engine,
    Instrument,
    LiveClock,
    Strategy,
)
from ibkrfw.data import sample_feed
from ibkrfw.ports import EventSink
from ibkrfw.sim import IBKRTieredCommission, SimBroker
from ibkrfw.strategies import MovingAverageCrossover

WAIT = 60.0


class ReplayFeed(DataFeed):
    """A live feed that emits the bars of a historical one from a thread, as fast as it can."""

    def __init__(self, source: DataFeed) -> None:
        self._source = source
        self.done = threading.Event()

    @property
    def instruments(self) -> tuple[Instrument, ...]:
        return self._source.instruments

    @property
    def is_live(self) -> bool:
        return True

    def __iter__(self) -> Iterator[Bar]:
        return iter(())

    def start(self, clock: Clock, emit: EventSink) -> None:
        def replay() -> None:
            for bar in self._source:
                emit(BarReceived(ts_ns=bar.ts_ns, bar=bar))
            self.done.set()

        threading.Thread(target=replay, name="replay", daemon=True).start()


class Leader(Strategy):
    """Every fifth time slice, hold the instrument whose close rose most over five bars."""

    def __init__(self) -> None:
        self.slices = 0

    def on_slice(self, ctx: Context, bars: Sequence[Bar]) -> None:
        self.slices += 1
        if self.slices < 6 or self.slices % 5:
            return
        gains = {b.instrument: b.close / ctx.history(b.instrument, 6).close[0] for b in bars}
        best = max(gains, key=lambda inst: (gains[inst], inst.id))
        for inst in gains:
            if inst != best:
                ctx.order_target_percent(inst, 0.0)
        ctx.order_target_percent(best, 0.45)


@pytest.mark.parametrize(
    ("timing", "strategy"),
    [
        ("next_bar", MovingAverageCrossover),
        ("this_close", MovingAverageCrossover),
        ("next_bar", Leader),  # on_slice: a slice ends with its last bar, before the next
        ("this_close", Leader),
    ],
)
def test_sandbox_fills_on_the_wall_clock_equal_the_backtests(
    timing: str, strategy: Callable[[], Strategy]
) -> None:
    def broker() -> SimBroker:
        return SimBroker(
            cash=250_000,
            commission=IBKRTieredCommission(),
            fill_timing=timing,  # type: ignore[arg-type]
        )

    symbols = ["ACME", "BOLT"]
    backtest = Engine(strategy(), sample_feed(symbols), broker()).run()
    feed = ReplayFeed(sample_feed(symbols))
    engine = Engine(strategy(), feed, broker(), tune_gc=False)
    assert isinstance(engine.clock, LiveClock)

    total = len(sample_feed(symbols))

    def stop_when_replayed() -> None:  # bounded: WAIT for the replay, WAIT for the handling
        deadline = time.monotonic() + 2 * WAIT
        feed.done.wait(WAIT)
        while engine.bars_processed < total and time.monotonic() < deadline:
            time.sleep(0.05)
        engine.stop()

    stopper = threading.Thread(target=stop_when_replayed, daemon=True)
    stopper.start()
    sandbox = engine.run()
    stopper.join(WAIT)
    assert engine.bars_processed == total
    columns = ["instrument", "side", "quantity", "price", "commission"]
    assert len(backtest.fills) > 20
    assert len(set(backtest.fills["instrument"])) == 2
    assert list(sandbox.fills[columns].itertuples(index=False)) == list(
        backtest.fills[columns].itertuples(index=False)
    )
