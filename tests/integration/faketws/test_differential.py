"""Backtest against live: the same strategy on SimBroker and through the fake TWS.

A strategy runs in a backtest or live with the same code, and must do the same: place the
same orders, get the same fills, hold the same positions. Each test here runs one script on
:class:`~ibkrfw.sim.SimBroker` over some bars and live, IB's official client over a real
socket to a :class:`~ibkrfw.testing.FakeTWS` replaying the same bars, and compares them.
"""

from __future__ import annotations

from collections.abc import Callable

from ibkrfw import Bar, Context, Engine, Stock
from ibkrfw.risk import Protection, StopLoss
from ibkrfw.sim import DataFrameFeed, IBKRFixedCommission, SimBroker
from ibkrfw.testing import FakeTWS, LiveSession, ScriptedStrategy, bars_frame

ACME = Stock("ACME")
CASH = 1_000_000
TIMEOUT = 10.0  # seconds: the longest the live run waits for any one step


FLAT = (100.0, 101.0, 99.0, 100.0)


def run_both(
    actions: dict[int, Callable[[Context, Bar], object]],
    rows: list[tuple[float, float, float, float]],
    protection: Protection | None = None,
) -> tuple[ScriptedStrategy, ScriptedStrategy, FakeTWS]:
    """The backtest and the live run of one script on ``rows`` (daily bars)."""
    frame = bars_frame(rows, start="2024-03-04", volume=100_000)
    backtest = ScriptedStrategy(actions)
    Engine(
        backtest,
        DataFrameFeed(frame, ACME),
        SimBroker(CASH, commission=IBKRFixedCommission(), initial_margin=None),
        protection=protection or (),
    ).run()
    live = ScriptedStrategy(actions)
    with (
        FakeTWS(data={ACME: frame}, cash=CASH, commission=IBKRFixedCommission()) as tws,
        LiveSession(live, tws, protection=protection or (), timeout=TIMEOUT) as session,
    ):
        session.step(len(rows))
        session.stop()
    return backtest, live, tws


def test_orders_made_in_answer_to_a_fill_carry_the_replays_time() -> None:
    # Before: the live session's clock stood at the previous bar until the engine handled
    # the next bar, so the stop-loss placed for a fill was stamped a bar early.
    actions = {0: lambda ctx, bar: ctx.buy(ACME, 10)}
    backtest, live, _ = run_both(actions, [FLAT] * 3, Protection(StopLoss.percent(0.5)))
    expected = [(o.order_id, o.created_ns) for o, _ in backtest.events]
    assert [(o.order_id, o.created_ns) for o, _ in live.events] == expected
    stop = next(o for o, _ in live.events if o.request.tag == "stop-loss")
    assert stop.created_ns == live.fills[0].ts_ns


def test_stop_waits_for_ibs_answers_to_the_last_orders() -> None:
    # The stop-loss is placed after a fill on the last bar replayed. Before: the session
    # stopped the engine with IB's acknowledgement still on its way, and it was lost.
    actions = {1: lambda ctx, bar: ctx.buy(ACME, 10)}
    backtest, live, _ = run_both(actions, [FLAT] * 3, Protection(StopLoss.percent(0.5)))
    assert live.event_types()[-1] == "OrderAccepted"
    assert [type(e).__name__ for _, e in live.events if e.order_id == 2] == [
        "OrderSubmitted",
        "OrderAccepted",
    ]
    assert backtest.event_types()[-1] == "OrderAccepted"


def test_a_position_that_turns_within_a_bar_gets_the_same_protection_in_both_runs() -> None:
    # A sale and a larger buy fill on one bar: short 155, then long 160. Live, the engine
    # protects the short (a buy stop) before it hears of the buy, then turns the protection
    # around. Before: the backtest saw the bar's fills together and placed one sell stop,
    # so every later order had another id than live.
    actions = {0: lambda ctx, bar: (ctx.sell(ACME, 155), ctx.buy(ACME, 315))}
    backtest, live, _ = run_both(actions, [FLAT] * 4, Protection(StopLoss.percent(0.5)))
    placed = [
        (o.order_id, o.side.value, o.quantity, o.request.tag)
        for o, e in backtest.events
        if type(e).__name__ == "OrderSubmitted"
    ]
    assert placed == [
        (1, "SELL", 155, ""),
        (2, "BUY", 315, ""),
        (3, "BUY", 155, "stop-loss"),  # for the short, cancelled when the buy fills
        (4, "SELL", 160, "stop-loss"),
    ]
    assert by_order(live) == by_order(backtest)


def by_order(strategy: ScriptedStrategy) -> dict[int, list[str]]:
    """The kinds of events of each order, in order."""
    events: dict[int, list[str]] = {}
    for order, event in strategy.events:
        events.setdefault(order.order_id, []).append(type(event).__name__)
    return events
