"""Backtest against live: the same strategy on SimBroker and through the fake TWS.

A strategy runs in a backtest or live with the same code, and must do the same: place the
same orders, get the same fills, hold the same positions. Each test here runs one script on
:class:`~ibkrfw.sim.SimBroker` over some bars and live, IB's official client over a real
socket to a :class:`~ibkrfw.testing.FakeTWS` replaying the same bars, and compares them.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from ibkrfw import Bar, Context, Engine, OrderStatus, Stock
from ibkrfw.risk import Protection, StopLoss, TakeProfit
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


def working_at(tws: FakeTWS) -> list[tuple[str, str, Decimal]]:
    """The orders working at the fake TWS: (tag, side, quantity)."""
    with tws.market.lock:
        orders = tws.market.orders.active()
    tags = [[*o.request.tag.split(":", 2), ""][2] for o in orders]  # ibkrfw:<id>[:<tag>]
    return sorted((tag, o.side.value, o.quantity) for tag, o in zip(tags, orders, strict=True))


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


def test_a_protective_order_resized_before_ibs_acknowledgement_covers_the_position() -> None:
    # Two buys fill on one bar. Live, each fill comes alone: the stop-loss is placed for the
    # first and resized for the second before IB acknowledged it. Before: the adapter refused
    # the resize ("not accepted by IB yet"), and the stop-loss covered 10 of 30 shares.
    actions = {
        0: lambda ctx, bar: (ctx.buy(ACME, 10), ctx.buy(ACME, 20, limit_price=101)),
    }
    backtest, live, tws = run_both(actions, [FLAT] * 4, Protection(StopLoss.percent(0.5)))
    assert working_at(tws) == [("stop-loss", "SELL", Decimal(30))]
    assert "OrderModifyRejected" not in live.event_types()
    assert [(f.quantity, f.price) for f in live.fills] == [
        (f.quantity, f.price) for f in backtest.fills
    ]


def test_an_oca_reduction_at_ib_reaches_the_engines_book() -> None:
    # IB reduces the other orders of an OCA group (ocaType 3) when one fills, and says so
    # with openOrder. Before: the adapter ignored it and the engine kept the old quantity.
    actions = {
        0: lambda ctx, bar: (
            ctx.sell(ACME, 60, oca_group="pair"),
            ctx.sell(ACME, 100, limit_price=150, oca_group="pair", tif="GTC"),
        ),
    }
    backtest, live, tws = run_both(actions, [FLAT] * 3)
    expected = [(type(e).__name__, o.quantity) for o, e in backtest.events if o.order_id == 2]
    got = [(type(e).__name__, o.quantity) for o, e in live.events if o.order_id == 2]
    assert expected[-1] == ("OrderModified", Decimal(40))
    assert got == expected
    assert working_at(tws) == [("", "SELL", Decimal(40))]


def test_a_modification_overtaken_by_a_fill_is_refused_not_confirmed() -> None:
    # Long 10 with a stop-loss at 98. On bar 2 a buy fills at the open, then the stop fills.
    # Live the engine resizes the stop for the buy while IB has filled it already. Before:
    # the openOrder IB sends with the fill was taken for the resize's answer (an
    # OrderModified of a filled order), and IB's refusal of the resize was dropped.
    actions = {
        0: lambda ctx, bar: ctx.buy(ACME, 10),
        1: lambda ctx, bar: ctx.buy(ACME, 10),
    }
    rows = [FLAT, FLAT, (100.0, 100.5, 97.0, 99.0), FLAT, FLAT]
    _, live, tws = run_both(actions, rows, Protection(StopLoss.fixed(2.0)))
    modified = [o.status.value for o, e in live.events if type(e).__name__ == "OrderModified"]
    assert "FILLED" not in modified
    refused = [o.order_id for o, e in live.events if type(e).__name__ == "OrderModifyRejected"]
    assert refused == [2]  # the first stop-loss: filled when its resize arrived
    assert working_at(tws) == [("stop-loss", "SELL", Decimal(10))]


def test_a_cancellation_after_an_unacknowledged_change_follows_the_change() -> None:
    # Three fills on one bar: long 10, long 30, flat. The stop-loss is placed, resized before
    # IB acknowledged it (held), then cancelled. Before: the cancellation went out at once,
    # ahead of the held change, which IB then refused for a cancelled order.
    actions = {0: lambda ctx, bar: (ctx.buy(ACME, 10), ctx.buy(ACME, 20), ctx.sell(ACME, 30))}
    backtest, live, tws = run_both(actions, [FLAT] * 3, Protection(StopLoss.percent(0.5)))
    expected = [type(e).__name__ for o, e in backtest.events if o.order_id == 4]
    assert expected == ["OrderSubmitted", "OrderAccepted", "OrderModified", "OrderCancelled"]
    assert [type(e).__name__ for o, e in live.events if o.order_id == 4] == expected
    assert working_at(tws) == []


def test_a_cancellation_ib_refuses_after_the_order_ended_is_answered() -> None:
    # Long 10 with a stop-loss and a take-profit. The take-profit fills; IB cancels the
    # stop-loss (one OCA group) while the engine, flat, cancels it too. Before: IB's refusal
    # (161) came after the order had ended and was dropped: the cancellation went unanswered
    # live, while the simulator refused it.
    protection = Protection(StopLoss.fixed(5.0), TakeProfit.fixed(2.0))
    actions = {0: lambda ctx, bar: ctx.buy(ACME, 10)}
    rows = [FLAT, FLAT, (100.0, 103.0, 99.5, 102.5), FLAT]
    backtest, live, _ = run_both(actions, rows, protection)
    expected = [type(e).__name__ for o, e in backtest.events if o.request.tag == "stop-loss"]
    assert expected[-2:] == ["OrderCancelled", "OrderCancelRejected"]
    assert [type(e).__name__ for o, e in live.events if o.request.tag == "stop-loss"] == expected


def test_an_order_filled_after_its_quantity_was_cut_is_done_for_the_reconciliation() -> None:
    # Before: the adapter judged an order done against the quantity it was sent with, so an
    # order cut from 100 to 50 that then filled 50 stayed "working", and the reconciliation
    # after a reconnection reported the filled order cancelled.
    from ibkrfw.ibkr import Backoff

    def cut(ctx: Context, bar: Bar) -> None:
        ctx.modify(1, quantity=50, limit_price=101)

    buy = ScriptedStrategy({0: lambda ctx, bar: ctx.buy(ACME, 100, limit_price=90, tif="GTC")})
    strategy = ScriptedStrategy({**buy.actions, 1: cut})
    frame = bars_frame([FLAT] * 6, start="2024-03-04", volume=100_000)
    with FakeTWS(data={ACME: frame}, cash=CASH) as tws:
        session = LiveSession(strategy, tws, timeout=TIMEOUT)
        session.client.backoff = Backoff(base=0.05, cap=0.2, seed=1)
        with session:
            session.step(3)  # filled at the third bar's open
            reconciled = len(tws.messages("in", client_id=1, msg_id=5))  # reqOpenOrders
            tws.drop_connections()
            assert tws.wait_for(
                lambda: len(tws.messages("in", client_id=1, msg_id=5)) > reconciled, TIMEOUT
            )
            session.step(2)
            result = session.stop()
    assert [(f.quantity, f.price) for f in strategy.fills] == [(50, Decimal("100.00"))]
    assert by_order(strategy)[1] == [
        "OrderSubmitted", "OrderAccepted", "OrderModified", "OrderFilled",
    ]  # fmt: skip
    assert result.order_list[0].status is OrderStatus.FILLED


def test_each_cancellation_of_an_ended_order_is_refused() -> None:
    # The strategy cancels one order three times in one handler. Before: IB's refusals came
    # after the first cancellation had ended the order; the first was dropped, and once the
    # adapter answered one it forgot the others were pending.
    def cancel_thrice(ctx: Context, bar: Bar) -> None:
        for _ in range(3):
            ctx.cancel(1)

    buy = ScriptedStrategy({0: lambda ctx, bar: ctx.buy(ACME, 10, limit_price=90, tif="GTC")})
    backtest, live, _ = run_both({**buy.actions, 1: cancel_thrice}, [FLAT] * 3)
    assert by_order(backtest)[1] == [
        "OrderSubmitted", "OrderAccepted", "OrderCancelled", "OrderCancelRejected",
        "OrderCancelRejected",
    ]  # fmt: skip
    assert by_order(live) == by_order(backtest)
