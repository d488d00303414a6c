"""Rolling a futures position live: IBKRBroker against the fake TWS, over a real socket."""

from __future__ import annotations

import time
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import attrs
from typing_extensions import override

from ibkrfw import Bar, Context, Order, Strategy
from ibkrfw.data import DaysBeforeExpiry, roll_schedule, synthetic_future_bars
from ibkrfw.model.events import OrderEvent
from ibkrfw.strategies import FutureRoller
from ibkrfw.testing import FakeTWS, LiveSession, ScriptedStrategy

CHAIN = synthetic_future_bars(expiries=("20261218", "20270319"), start="2026-11-23")
DEC, MAR = CHAIN
PLACE_ORDER = 3


@attrs.define
class Hold(Strategy):
    """Hold two contracts of the continuous future, rolled five days before expiry."""

    roller: FutureRoller = attrs.field(
        factory=lambda: FutureRoller([DEC, MAR], DaysBeforeExpiry(5))
    )

    @override
    def on_slice(self, ctx: Context, bars: Sequence[Bar]) -> None:
        self.roller.update(ctx)
        self.roller.order_target(ctx, 2)

    @override
    def on_order(self, ctx: Context, order: Order, event: OrderEvent) -> None:
        self.roller.on_order(ctx, order, event)


def until(condition: object, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.005)
    return False


def test_live_roll_sends_both_legs_and_ends_in_the_new_month_only() -> None:
    strategy = Hold()
    with FakeTWS(data=CHAIN) as tws, LiveSession(strategy, tws) as session:
        session.step(len(CHAIN[DEC]) + 3)
        assert until(lambda: strategy.roller.rolls and strategy.roller.rolls[0].status == "done")
        result = session.stop()
        placed = tws.messages("in", msg_id=PLACE_ORDER)
    (roll,) = strategy.roller.rolls
    assert roll.timestamp == roll_schedule(CHAIN, DaysBeforeExpiry(5))[0].timestamp
    assert roll.quantity == 2 and roll.price_difference == Decimal("15.00")
    # three orders reached IB: the entry, then the roll's two legs, each with its own id and
    # orderRef, both transmitted (neither waits in TWS for the other)
    ids = [int(r.fields[1]) for r in placed]
    assert len(ids) == 3 and len(set(ids)) == 3
    refs = [f for r in placed[1:] for f in r.fields if str(f).startswith("ibkrfw:")]
    assert len(refs) == 2 and len(set(refs)) == 2 and all(r.endswith(":roll") for r in refs)
    fills = result.fills
    signed = fills["quantity"] * fills["side"].map({"BUY": 1, "SELL": -1})
    held = signed.groupby(fills["instrument"]).sum().to_dict()
    assert held == {DEC.id: 0, MAR.id: 2}
    assert session.engine.portfolio is not None
    assert session.engine.portfolio.quantity(DEC) == 0
    assert session.engine.portfolio.quantity(MAR) == 2


def test_live_roll_interrupted_by_a_restart_is_finished_not_doubled(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with FakeTWS(data=CHAIN) as tws:
        # The first process held December and died right after the roll's opening leg
        # filled: the closing leg was never sent.
        first = ScriptedStrategy(
            {
                0: lambda ctx, bar: ctx.buy(DEC, 2),
                10: lambda ctx, bar: ctx.buy(MAR, 2),
            }
        )
        with LiveSession(first, tws, state_dir=state) as session:
            session.step(10)
            session.stop()
        strategy = Hold()
        with LiveSession(strategy, tws, state_dir=state) as session:
            session.step(3)
            assert until(lambda: bool(strategy.roller.rolls))
            session.step(2)
            assert session.engine.portfolio is not None
            held = (
                session.engine.portfolio.quantity(DEC),
                session.engine.portfolio.quantity(MAR),
            )
            session.stop()
    finished = strategy.roller.rolls[0]
    assert finished.status == "finished", finished
    assert finished.from_contract == DEC and finished.to_contract == MAR
    assert held == (0, 2)
    assert strategy.roller.current == MAR


def test_live_roll_with_a_leg_rejected_by_ib_is_undone_then_redone() -> None:
    strategy = Hold()
    roll_bar = roll_schedule(CHAIN, DaysBeforeExpiry(5))[0].timestamp
    before = int((CHAIN[DEC].index < roll_bar).sum())
    with FakeTWS(data=CHAIN) as tws, LiveSession(strategy, tws) as session:
        session.step(before)
        tws.reject_next_order(201, "Order rejected - reason:no trading permissions")
        session.step(4)
        assert until(lambda: len(strategy.roller.rolls) == 2)
        assert until(lambda: strategy.roller.rolls[1].status == "done")
        result = session.stop()
    first, second = strategy.roller.rolls
    assert first.status == "undone" and "no trading permissions" in first.reason
    assert second.timestamp > first.timestamp
    # The open leg was cancelled, or (IB's rejection arriving after the next bar filled it)
    # reversed by an order of the roll's tag: either way nothing of it is left.
    opened = result.orders.loc[first.open_order_id]
    orders = result.orders
    if opened["status"] == "FILLED":
        undo = orders[(orders["instrument"] == MAR.id) & (orders["side"] == "SELL")]
        assert list(undo["tag"]) == ["roll"] and list(undo["filled_quantity"]) == [2]
    else:
        assert opened["status"] == "CANCELLED" and opened["filled_quantity"] == 0
    fills = result.fills
    signed = fills["quantity"] * fills["side"].map({"BUY": 1, "SELL": -1})
    assert signed.groupby(fills["instrument"]).sum().to_dict() == {DEC.id: 0, MAR.id: 2}
