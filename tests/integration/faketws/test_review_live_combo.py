"""Issue 24's parts together, live over a real socket: two strategies, one on hours built
from IB's 5-second bars, a restart in the middle; each gets its orders and positions back."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ibkrfw import (
    Bar,
    Context,
    Instrument,
    Order,
    OrderEvent,
    OrderRequest,
    OrderType,
    Reconciled,
    Side,
    Stock,
    Strategy,
    TimeInForce,
    Twap,
    Vwap,
)
from ibkrfw.data import DaysBeforeExpiry, synthetic_future_bars
from ibkrfw.ibkr import IBKRBroker
from ibkrfw.portfolio import Ledger, TaxLotPortfolio
from ibkrfw.strategies import FutureRoller
from ibkrfw.testing import FakeTWS, LiveSession, ScriptedStrategy, bars_frame

ACME = Stock("ACME")
NY = "America/New_York"


def _five_seconds(minutes: int) -> pd.DataFrame:
    index = pd.date_range("2024-03-11 09:30", periods=12 * minutes, freq="5s", tz=NY)
    step = np.arange(len(index))
    price = 100 + (step % 37) * 0.01 + step * 0.001
    return pd.DataFrame(
        {"open": price.round(2), "high": (price + 0.02).round(2), "low": (price - 0.02).round(2),
         "close": (price + 0.01).round(2), "volume": 1000.0 + step % 7},
        index=index.tz_convert("UTC").rename("timestamp"),
    )  # fmt: skip


class Hourly(Strategy):
    """Buys 10 on each complete hour, 1 on each complete minute; keeps a GTC bid working."""

    def __init__(self) -> None:
        self.sizes: list[str | None] = []
        self.open_seen: list[list[tuple[str, str]]] = []

    def bar_sizes(self) -> Mapping[Instrument, Sequence[str]]:
        return {ACME: ["1min", "1h"]}

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        self.sizes.append(ctx.bar_size)
        if len(self.sizes) == 1:
            self.open_seen.append([(o.request.strategy, o.request.tag) for o in ctx.open_orders()])
        if ctx.bar_size == "1h":
            ctx.buy(ACME, 10)
        elif ctx.bar_size == "1min" and not ctx.open_orders(ACME):
            ctx.submit(OrderRequest(ACME, Side.BUY, 3, OrderType.LIMIT,
                                    limit_price=Decimal("50.00"), tif=TimeInForce.GTC,
                                    tag="bid"))  # fmt: skip


class Fast(Strategy):
    """Sells 4 on its third 5-second bar of each run."""

    def __init__(self) -> None:
        self.bars = 0

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        self.bars += 1
        if ctx.bar_size == "5s" and self.bars == 3:
            ctx.sell(ACME, 4)


def _ledger(tws: FakeTWS, lots: str | None) -> Ledger | None:
    return None if lots is None else TaxLotPortfolio(tws.market.portfolio.cash, method=lots)


@pytest.mark.parametrize("lots", [None, "fifo"])  # the account's ledger: default, tax lots
def test_live_two_strategies_one_on_hours_from_5s_bars_restart_gives_each_its_own(
    tmp_path: Path, lots: str | None
) -> None:
    state = tmp_path / "state"
    frame = _five_seconds(70)  # 09:30 to 10:40
    with FakeTWS(data={ACME: frame}) as tws:
        hourly, fast = Hourly(), Fast()
        with LiveSession(
            {"hourly": hourly, "fast": fast}, tws, state_dir=state, portfolio=_ledger(tws, lots)
        ) as session:
            session.step(12 * 62)  # past 10:30: the 09:30 hour is complete
            engine = session.engine
            before = {n: b.quantity(ACME) for n, b in engine.portfolios.items()}
            assert engine.portfolio is not None
            account_before = engine.portfolio.quantity(ACME)
            session.stop()  # the process dies: the GTC bid stays working at IB
        assert hourly.sizes.count("1h") == 1
        assert before["hourly"] == 10 and before["fast"] == -4
        assert account_before == 6
        hourly2, fast2 = Hourly(), Fast()
        with LiveSession(
            {"hourly": hourly2, "fast": fast2}, tws, state_dir=state, portfolio=_ledger(tws, lots)
        ) as session:
            session.step(12 * 3)
            engine = session.engine
            broker = session.broker
            assert isinstance(broker, IBKRBroker)
            books = {n: b.quantity(ACME) for n, b in engine.portfolios.items()}
            assert engine.portfolio is not None
            account = engine.portfolio.quantity(ACME)
            equity = round(sum(b.equity for b in engine.portfolios.values()), 2)
            account_equity = round(engine.portfolio.equity, 2)
            refs = [o.order_ref for o in broker.journal.orders()]
            session.stop()
            notices = [e for e in engine.notices if isinstance(e, Reconciled)]
    assert notices and notices[0].resolution == "agreed"
    # each strategy's position back, from its own orders; the account is their sum
    assert books == {"hourly": 10, "fast": -8, "(unallocated)": 0}
    assert account == 2
    assert equity == account_equity
    # the bid left working comes back to its strategy, which does not send another
    assert hourly2.open_seen == [[("hourly", "bid")]]
    bids = [r for r in refs if r.endswith("/hourly:bid")]
    assert len(bids) == 1, refs
    assert len(refs) == len(set(refs))  # nothing sent twice


def test_live_restart_without_one_strategy_leaves_its_position_unallocated_saying_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # run-several-strategies.md: "A strategy removed from the run leaves its positions
    # unallocated (a warning says so)".
    state = tmp_path / "state"
    frame = _five_seconds(4)
    with FakeTWS(data={ACME: frame}) as tws:
        with LiveSession({"hourly": Hourly(), "fast": Fast()}, tws, state_dir=state) as session:
            session.step(12)
            session.stop()
        with LiveSession({"hourly": Hourly()}, tws, state_dir=state) as session:
            session.step(2)
            engine = session.engine
            books = {n: b.quantity(ACME) for n, b in engine.portfolios.items()}
            assert engine.portfolio is not None
            account = engine.portfolio.quantity(ACME)
            session.stop()
    assert account == -4
    assert books == {"hourly": 0, "(unallocated)": -4}
    said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("'fast' stays unallocated" in s for s in said), said


def test_live_algo_orders_of_two_strategies_net_and_come_back_to_each_after_a_restart(
    tmp_path: Path,
) -> None:
    # A Vwap of one strategy and a Twap of the other, on one instrument, filled in slices by
    # the fake TWS; the process stops with both working. After the restart each strategy
    # finds its own order again (its algo, its tag, what it had filled), the slices go on
    # filling into its own books, and the books add up to the account.
    rows = [(100 + i / 10, 101 + i / 10, 99 + i / 10, 100.3 + i / 10) for i in range(12)]
    frame = bars_frame(rows, start="2024-01-02 14:30", freq="15min")
    frame["volume"] = [800, 50, 3000, 10, 700, 900, 40, 2000, 100, 100, 5000, 60]
    state = tmp_path / "state"
    vwap = OrderRequest.market(ACME, "BUY", 900, algo=Vwap("0.2"), tif="GTC", tag="v")
    twap = OrderRequest.market(ACME, "SELL", 300, algo=Twap(), tif="GTC", tag="t")
    seen: dict[str, list[tuple[str, str, object, Decimal]]] = {}

    def look(name: str) -> Callable[[Context, Bar], None]:
        def at_first_bar(ctx: Context, bar: Bar) -> None:
            seen[name] = [
                (o.request.strategy, o.request.tag, o.request.algo, o.filled_quantity)
                for o in ctx.open_orders()
            ]

        return at_first_bar

    with FakeTWS(data={ACME: frame}) as tws:
        first = {
            "a": ScriptedStrategy({0: lambda ctx, bar: ctx.submit(vwap)}),
            "b": ScriptedStrategy({0: lambda ctx, bar: ctx.submit(twap)}),
        }
        with LiveSession(first, tws, state_dir=state) as session:  # type: ignore[arg-type]
            session.step(4)
            filled = {o.request.strategy: o.filled_quantity for o in session.engine.orders}
            session.stop()
        assert 0 < filled["a"] < 900 and 0 < filled["b"] < 300  # both still working
        again = {"a": ScriptedStrategy({0: look("a")}), "b": ScriptedStrategy({0: look("b")})}
        with LiveSession(again, tws, state_dir=state) as session:  # type: ignore[arg-type]
            session.step(8)
            engine = session.engine
            assert engine.portfolio is not None
            books = {n: b.quantity(ACME) for n, b in engine.portfolios.items()}
            account = engine.portfolio.quantity(ACME)
            equity = round(sum(b.equity for b in engine.portfolios.values()), 2)
            account_equity = round(engine.portfolio.equity, 2)
            orders = {o.request.strategy: o for o in engine.orders}
            session.stop()
        held = tws.market.portfolio.quantity(ACME)
    (a,), (b,) = seen["a"], seen["b"]
    assert a[:3] == ("a", "v", vwap.algo) and a[3] >= filled["a"]
    assert b[:3] == ("b", "t", twap.algo) and b[3] >= filled["b"]
    assert books["a"] == orders["a"].filled_quantity
    assert books["b"] == -orders["b"].filled_quantity
    assert books["a"] + books["b"] + books["(unallocated)"] == account == held
    assert equity == account_equity


CHAIN = synthetic_future_bars(expiries=("20261218", "20270319"), start="2026-11-23")
DEC, MAR = CHAIN


class Hold(Strategy):
    """Hold two contracts of the continuous future, rolled five days before expiry."""

    def __init__(self) -> None:
        self.roller = FutureRoller([DEC, MAR], DaysBeforeExpiry(5))

    def on_slice(self, ctx: Context, bars: Sequence[Bar]) -> None:
        self.roller.update(ctx)
        self.roller.order_target(ctx, 2)

    def on_order(self, ctx: Context, order: Order, event: OrderEvent) -> None:
        self.roller.on_order(ctx, order, event)


def test_live_roller_in_one_of_two_strategies_rolls_its_own_position_after_a_restart(
    tmp_path: Path,
) -> None:
    # The roller's strategy holds 2 December contracts and the other is short 1 (the
    # account: 1); the process stops before the roll date. After the restart the roller's
    # strategy gets its 2 back from the journal, rolls them (and only them) into March,
    # and buys nothing more; the other strategy's December stays its own.
    state = tmp_path / "state"

    def short_one(ctx: Context, bar: Bar) -> None:
        if bar.instrument == DEC:
            ctx.sell(DEC, 1)

    with FakeTWS(data=CHAIN) as tws:
        first = {"roll": Hold(), "front": ScriptedStrategy({0: short_one})}
        with LiveSession(first, tws, state_dir=state) as session:
            session.step(len(CHAIN[DEC]) - 8)  # before the roll date
            books = session.engine.portfolios
            assert (books["roll"].quantity(DEC), books["front"].quantity(DEC)) == (2, -1)
            session.stop()
        hold = Hold()
        with LiveSession(
            {"roll": hold, "front": ScriptedStrategy({})}, tws, state_dir=state
        ) as session:
            session.step(8)
            deadline = time.monotonic() + 10
            while not hold.roller.rolls and time.monotonic() < deadline:
                time.sleep(0.01)
            engine, broker = session.engine, session.broker
            assert isinstance(broker, IBKRBroker)
            books = {n: (b.quantity(DEC), b.quantity(MAR)) for n, b in engine.portfolios.items()}
            assert engine.portfolio is not None
            account = (engine.portfolio.quantity(DEC), engine.portfolio.quantity(MAR))
            refs = [o.order_ref for o in broker.journal.orders()]
            session.stop()
    assert [(r.status, r.quantity) for r in hold.roller.rolls] == [("done", 2)]
    assert books == {"roll": (0, 2), "front": (-1, 0), "(unallocated)": (0, 0)}
    assert account == (-1, 2)
    assert refs == ["ibkrfw:1/front", "ibkrfw:2/roll", "ibkrfw:3/roll:roll", "ibkrfw:4/roll:roll"]
