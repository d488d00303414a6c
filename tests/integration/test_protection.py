"""Stop-loss and take-profit kept on every position as real orders, in backtests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import pandas as pd
import pytest

from ibkrfw import (
    ConfigError,
    Engine,
    OrderCancelled,
    OrderType,
    ProtectionFailed,
    Stock,
)
from ibkrfw.risk import (
    Protection,
    StopLoss,
    TakeProfit,
    TradingHours,
)
from ibkrfw.risk.protect import average_true_range
from ibkrfw.sim import DataFrameFeed, SimBroker
from ibkrfw.testing import RecordingBroker, ScriptedStrategy, bars_frame

ACME = Stock("ACME")
Action = Callable[[Any, Any], object]


def run(rows: Sequence[tuple[float, ...]], actions: dict[int, Action], protection, **kw: Any):
    feed = DataFrameFeed(bars_frame(rows, start="2024-01-02 14:30"), ACME)
    broker = RecordingBroker(SimBroker(100_000))
    strategy = ScriptedStrategy(actions)
    result = Engine(strategy, feed, broker, protection=protection, **kw).run()
    return result, broker, strategy


def buy(q: int) -> Action:
    return lambda ctx, bar: ctx.buy(ACME, q)


def sell(q: int) -> Action:
    return lambda ctx, bar: ctx.sell(ACME, q)


def protective(broker: RecordingBroker) -> list[Any]:
    return [o for o in broker.submitted if o.request.tag in ("stop-loss", "take-profit")]


FLAT = (100, 101, 99, 100)


def test_a_position_gets_a_stop_and_a_take_profit_that_cancel_each_other() -> None:
    rows = [FLAT, FLAT, FLAT, (100, 100, 94, 95), FLAT, FLAT]
    protect = Protection(StopLoss.fixed(5), TakeProfit.fixed(10))
    result, broker, strategy = run(rows, {0: buy(100)}, protect)
    stop, take = protective(broker)
    assert (stop.request.order_type, stop.request.side, stop.request.quantity) == (
        OrderType.STOP, "SELL", 100,
    )  # fmt: skip
    assert stop.request.stop_price == 95 and take.request.limit_price == 110
    assert stop.request.tif == "GTC" and stop.request.oca_group == take.request.oca_group
    assert stop.request.oca_group.startswith("protect-ACME.SMART-")
    # bar 3 trades down to 94: the stop fills at 95, the take-profit is cancelled with it
    fills = result.fill_list
    assert [(f.side.value, f.quantity, f.price) for f in fills] == [
        ("BUY", 100, 100), ("SELL", 100, 95),
    ]  # fmt: skip
    cancelled = [e for o, e in strategy.events if isinstance(e, OrderCancelled)]
    assert [e.order_id for e in cancelled] == [take.order_id]
    assert len(broker.submitted) == 3  # nothing placed once flat


def test_the_orders_follow_the_position_as_it_grows_and_shrinks() -> None:
    rows = [FLAT, FLAT, (110, 111, 109, 110), (110, 111, 109, 110), FLAT, FLAT, FLAT]
    protect = Protection(StopLoss.percent(0.1), TakeProfit.percent(0.2))
    result, broker, _ = run(rows, {0: buy(100), 1: buy(100), 3: sell(50)}, protect)
    stop, take = protective(broker)
    # first 100 at 100: stop 90, take-profit 120; then 100 more at 110: average 105
    assert (stop.request.stop_price, take.request.limit_price) == (90, 120)
    grown = [(o.request.quantity, r.quantity, r.stop_price, r.limit_price)
             for o, r in broker.modified]  # fmt: skip
    assert grown[:2] == [
        (100, 200, Decimal("94.50"), None),  # 105 - 10 %
        (100, 200, None, Decimal("126.00")),  # 105 + 20 %
    ]
    # selling 50 joins the group: the broker reduces the exits to 150, nothing else to do
    sale = [o for o in broker.submitted if o.request.side.value == "SELL" and not o.request.tag]
    assert sale[0].request.oca_group == stop.request.oca_group
    assert len(protective(broker)) == 2  # resized and reduced, never replaced
    final = {o.request.tag: o for o in result.order_list if not o.status.is_terminal}
    assert final["stop-loss"].request.quantity == 150
    assert final["take-profit"].request.quantity == 150
    assert result.positions[ACME.id].iloc[-1] == 150


def test_an_exit_of_the_strategy_and_the_stop_never_both_fill() -> None:
    # The strategy sells at the open of bar 3, which also trades through the stop: the
    # market order fills first, and the group takes the stop and take-profit away.
    rows = [FLAT, FLAT, FLAT, (100, 100, 80, 85), FLAT]
    protect = Protection(StopLoss.fixed(5), TakeProfit.fixed(10))
    result, _, _ = run(rows, {0: buy(100), 2: sell(100)}, protect)
    assert [(f.side.value, f.quantity) for f in result.fill_list] == [("BUY", 100), ("SELL", 100)]
    assert result.positions[ACME.id].iloc[-1] == 0
    assert all(o.status.is_terminal for o in result.order_list)


def test_a_position_turned_around_gets_new_exits_on_the_other_side() -> None:
    rows = [FLAT] * 5
    protect = Protection(StopLoss.fixed(5))
    result, broker, _ = run(rows, {0: buy(100), 2: sell(300)}, protect)
    first, second = protective(broker)
    assert (first.request.side.value, first.request.stop_price) == ("SELL", 95)
    assert (second.request.side.value, second.request.quantity) == ("BUY", 200)
    assert second.request.stop_price == 105 and second.request.oca_group != first.request.oca_group
    status = {o.order_id: o.status for o in result.order_list}
    assert status[first.order_id].is_terminal and not status[second.order_id].is_terminal


def test_trailing_stops_by_percent_amount_and_atr() -> None:
    rows = [FLAT] * 4
    _, broker, _ = run(rows, {0: buy(10)}, Protection(StopLoss.trailing(percent=0.05)))
    (stop,) = protective(broker)
    assert stop.request.order_type is OrderType.TRAILING_STOP
    assert stop.request.trail_percent == 5 and stop.request.trail_amount is None
    _, broker, _ = run(rows, {0: buy(10)}, Protection(StopLoss.trailing(amount=2.5)))
    assert protective(broker)[0].request.trail_amount == Decimal("2.5")
    _, broker, _ = run(rows, {0: buy(10)}, Protection(StopLoss.atr(1.5, period=2, trail=True)))
    assert protective(broker)[0].request.trail_amount == 3  # 1.5 x a range of 2


def test_an_atr_stop_waits_for_enough_bars() -> None:
    rows = [(100, 102, 98, 100)] * 3 + [(100, 104, 96, 100)] * 6
    protect = Protection(StopLoss.atr(2.0, period=5))
    result, broker, _ = run(rows, {0: buy(10)}, protect)
    (stop,) = protective(broker)
    # filled at bar 1; five bars are known at bar 4: ranges 4, 4, 4, 8, 8 -> ATR 5.6
    assert stop.created_ns == result.order_list[0].created_ns + 4 * 86_400 * 10**9
    assert stop.request.stop_price == Decimal("88.80")


def test_protective_orders_skip_the_pre_trade_rules() -> None:
    # New orders only 10:00-11:00 New York. Hourly bars from 10:30 there: the entry goes in
    # at 10:30 and fills at 11:30, when the strategy's own orders are refused; the stop, put
    # on at the fill, is sent all the same.
    hours = TradingHours("10:00", "11:00", "America/New_York")
    frame = bars_frame([FLAT] * 4, start="2024-01-02 15:30", freq="1h")
    broker = RecordingBroker(SimBroker(100_000))
    strategy = ScriptedStrategy({0: buy(10), 1: buy(10)})
    Engine(
        strategy, DataFrameFeed(frame, ACME), broker, risk_rules=[hours],
        protection=Protection(StopLoss.fixed(5)),
    ).run()  # fmt: skip
    assert [o.request.tag for o in broker.submitted] == ["", "stop-loss"]
    denied = [e for _, e in strategy.events if type(e).__name__ == "OrderDenied"]
    assert [d.rule for d in denied] == ["TradingHours"]


def test_only_the_instruments_asked_for() -> None:
    other = Stock("BOLT")
    _, broker, _ = run([FLAT] * 3, {0: buy(10)}, Protection(StopLoss.fixed(5), instruments=[other]))
    assert protective(broker) == []


def test_average_true_range_by_hand() -> None:
    from ibkrfw import Bar
    from ibkrfw.core.history import BarHistory

    h = BarHistory.empty()
    rows = [(11, 9, 10), (12, 10, 11), (14, 11, 13), (13, 12, 12.5), (13, 12, 12.5)]
    for i, (hi, lo, c) in enumerate(rows):
        h.push(Bar(ACME, i, c, hi, lo, c, 0.0))
    # true ranges: 2 (first: high - low), 2, 3 (14 - 11), 1.0 (13 - 12; prev close 13), 1
    # the last four bars alone: the first of them has no previous close (12 - 10)
    assert average_true_range(h.last(4), 4) == pytest.approx((2 + 3 + 1 + 1) / 4)
    # Wilder's: the mean of the first two ranges (2), then half-way to each next one in turn:
    # 2.5 (to 3), 1.75 (to 1), 1.375 (to 1); a mean of the last two would say 1
    assert average_true_range(h.last(), 2) == pytest.approx(1.375)
    assert average_true_range(h.last(), 6) != average_true_range(h.last(), 6)  # NaN


@pytest.mark.parametrize(
    "make",
    [
        lambda: Protection(),
        lambda: StopLoss.fixed(0),
        lambda: StopLoss.percent(1.0),
        lambda: StopLoss.trailing(),
        lambda: StopLoss.trailing(amount=1, percent=0.1),
        lambda: StopLoss.atr(2, period=0),
        lambda: TakeProfit.fixed(float("nan")),
        lambda: TakeProfit.percent(-0.1),
    ],
)
def test_bad_settings_are_refused(make: Callable[[], object]) -> None:
    with pytest.raises(ConfigError):
        make()


# --- where Protection meets targets, the strategy's own orders and a refusing broker --------
def working_exits(result: Any) -> dict[str, tuple[str, Decimal]]:
    return {
        o.request.tag: (o.request.side.value, o.remaining)
        for o in result.order_list
        if not o.status.is_terminal and o.request.tag in ("stop-loss", "take-profit")
    }


@pytest.mark.parametrize(
    "protect",
    [
        Protection(StopLoss.fixed(5)),
        Protection(take_profit=TakeProfit.fixed(10)),
        Protection(StopLoss.fixed(5), TakeProfit.fixed(10)),
        Protection(StopLoss.trailing(amount=3), TakeProfit.percent(0.2)),
    ],
    ids=["stop", "take", "both", "trailing"],
)
@pytest.mark.parametrize("target", [0, 40, 100, 160, -100])
def test_a_target_is_reached_whatever_protection_keeps(protect: Protection, target: int) -> None:
    # The protective exits wait for a trigger: they are not "pending" toward the target.
    # Before: with a stop, a target of 0 sent nothing; with a stop and a take-profit, it
    # bought 100 more (the position doubled).
    rows = [FLAT] * 6
    to_target = lambda ctx, bar: ctx.order_target_quantity(ACME, target)  # noqa: E731
    result, broker, _ = run(rows, {0: buy(100), 2: to_target, 3: to_target}, protect)
    assert result.positions[ACME.id].iloc[-1] == target
    own = [o for o in broker.submitted if not o.request.tag]
    assert len(own) == (1 if target == 100 else 2)  # asking again on bar 3 sends nothing
    exits = working_exits(result)
    if target:
        side = "SELL" if target > 0 else "BUY"
        assert set(exits.values()) == {(side, abs(target))}
    else:
        assert exits == {}


def test_calling_a_target_every_bar_with_protection_neither_piles_up_nor_doubles() -> None:
    # the ready strategies call order_target_* on every bar; here the target flips each bar
    rows = [FLAT] * 8
    goals = [100, 100, -50, -50, 0, 30, 30]

    def to(goal: int) -> Action:
        return lambda ctx, bar: ctx.order_target_quantity(ACME, goal)

    actions = {i: to(g) for i, g in enumerate(goals)}
    protect = Protection(StopLoss.fixed(5), TakeProfit.fixed(10))
    result, broker, _ = run(rows, actions, protect)
    positions = result.positions[ACME.id].tolist()
    assert positions == [0, 100, 100, -50, -50, 0, 30, 30]  # each goal one bar later
    assert len([o for o in broker.submitted if not o.request.tag]) == 4
    assert set(working_exits(result).values()) == {("SELL", 30)}


def test_the_crossover_with_protection_trades_the_sample_as_without() -> None:
    # Before: its position grew to 10**27 shares short and the run ended in InvalidOperation.
    from ibkrfw.data import sample_feed
    from ibkrfw.strategies import MovingAverageCrossover

    protect = Protection(StopLoss.percent(0.2), TakeProfit.percent(0.5))
    protected = Engine(
        MovingAverageCrossover(), sample_feed(["ACME"]), SimBroker(), protection=protect
    ).run()
    plain = Engine(MovingAverageCrossover(), sample_feed(["ACME"]), SimBroker()).run()
    held = protected.positions["ACME.SMART"].abs()
    assert held.max() == plain.positions["ACME.SMART"].abs().max() < 5_000  # 100k at ~50
    assert protected.stats["Trades"] >= plain.stats["Trades"] > 10


def test_a_rejected_protective_order_is_placed_again_at_the_next_bars() -> None:
    refusals = iter(["no liquidity", "no liquidity"])

    def reject(order: Any) -> str | None:
        return next(refusals, None) if order.request.tag == "stop-loss" else None

    feed = DataFrameFeed(bars_frame([FLAT] * 6), ACME)
    broker = RecordingBroker(SimBroker(100_000), reject=reject)
    strategy = ScriptedStrategy({0: buy(100)})
    engine = Engine(strategy, feed, broker, protection=Protection(StopLoss.fixed(5)))
    result = engine.run()
    stops = [o for o in broker.submitted if o.request.tag == "stop-loss"]
    assert len(stops) == 3  # placed at the fill, then once as each of two time stamps came
    assert working_exits(result) == {"stop-loss": ("SELL", 100)}
    assert not any(isinstance(n, ProtectionFailed) for n in engine.notices)


def test_a_protective_order_refused_again_and_again_is_said_and_tried_after_a_fill() -> None:
    def reject(order: Any) -> str | None:
        return "201: no trading permissions" if order.request.tag == "stop-loss" else None

    feed = DataFrameFeed(bars_frame([FLAT] * 8), ACME)
    broker = RecordingBroker(SimBroker(100_000), reject=reject)
    seen: list[Any] = []
    strategy = ScriptedStrategy({0: buy(100), 6: buy(10)})
    strategy.on_event = lambda ctx, event: seen.append(event)  # type: ignore[method-assign]
    engine = Engine(strategy, feed, broker, protection=Protection(StopLoss.fixed(5)))
    engine.run()
    stops = [o for o in broker.submitted if o.request.tag == "stop-loss"]
    failed = [e for e in seen if isinstance(e, ProtectionFailed)]
    assert len(failed) == 1 and failed[0].tag == "stop-loss"
    assert "rejected 3 times in a row; last: 201: no trading permissions" in failed[0].reason
    assert failed[0] in engine.notices
    # three tries for the first position; the buy on bar 6 (filled on bar 7) changes it: again
    assert len(stops) == 4


def test_a_protective_order_cancelled_from_outside_is_put_back() -> None:
    def cancel_stop(ctx: Any, bar: Any) -> None:
        (stop,) = [o for o in ctx.open_orders(ACME) if o.request.tag == "stop-loss"]
        ctx.cancel(stop)

    protect = Protection(StopLoss.fixed(5))
    result, broker, _ = run([FLAT] * 5, {0: buy(100), 2: cancel_stop}, protect)
    stops = [o for o in broker.submitted if o.request.tag == "stop-loss"]
    assert len(stops) == 2
    assert working_exits(result) == {"stop-loss": ("SELL", 100)}


def test_a_halt_that_flattens_does_not_put_the_exits_back() -> None:
    from ibkrfw.risk import MaxDrawdownKillSwitch

    rows = [FLAT, FLAT, FLAT, (90, 91, 89, 90), FLAT, FLAT]
    result, broker, _ = run(
        rows, {0: buy(100)}, Protection(StopLoss.fixed(50), TakeProfit.fixed(50)),
        risk_monitors=[MaxDrawdownKillSwitch(0.005)],
    )  # fmt: skip
    assert result.halts
    assert result.positions[ACME.id].iloc[-1] == 0
    assert len(protective(broker)) == 2  # never placed again
    assert all(o.status.is_terminal for o in result.order_list)


def _walk(n: int, seed: int = 7) -> list[tuple[float, float, float, float]]:
    """``n`` bars of a random walk with real ranges: (open, high, low, close)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    opens = np.concatenate(([100.0], close[:-1]))
    high = np.maximum(opens, close) * (1 + rng.uniform(0, 0.03, n))
    low = np.minimum(opens, close) * (1 - rng.uniform(0, 0.03, n))
    return list(zip(opens.tolist(), high.tolist(), low.tolist(), close.tolist(), strict=True))


@pytest.mark.parametrize("period", [1, 2, 14, 50])
def test_the_protective_atr_is_wilders_as_indicators_atr_computes_it(period: int) -> None:
    import numpy as np

    from ibkrfw import Bar
    from ibkrfw.core.history import BarHistory
    from ibkrfw.indicators import ATR, atr

    rows = _walk(3_000)
    high, low, close = (np.array([r[k] for r in rows]) for k in (1, 2, 3))
    expected = atr(high, low, close, period)
    incremental = ATR(period)
    h = BarHistory.empty()
    checked = 0
    # the stop reads the history as the engine holds it, growing bar by bar: at each length,
    # the ATR of indicators.atr and indicators.ATR over the same bars, to 1e-9
    for i, (o, hi, lo, c) in enumerate(rows):
        h.push(Bar(ACME, i, o, hi, lo, c, 0.0))
        incremental.add(hi, lo, c)
        if i < 3 * period + 3 or i % 97 == 0 or i == len(rows) - 1:
            got = average_true_range(h.last(), period)
            if i + 1 < period:
                assert got != got  # NaN before `period` bars
                continue
            assert got == pytest.approx(expected[i], rel=1e-9, abs=0), i
            assert got == pytest.approx(incremental.value, rel=1e-9, abs=0), i
            checked += 1
    assert checked > 30


def test_an_atr_stop_sits_at_indicators_atr_of_the_bars_when_placed() -> None:
    # A volatile spell, then a calm one: Wilder's ATR still remembers the spell, a mean of the
    # last `period` ranges has forgotten it. The stop must use the ATR a strategy reads.
    from ibkrfw.indicators import atr

    rows = [(100, 110, 90, 100)] * 6 + [FLAT] * 6
    frame = bars_frame(rows, start="2024-01-02 14:30")
    strategy = ScriptedStrategy({8: buy(10)})
    broker = RecordingBroker(SimBroker(100_000))
    Engine(strategy, DataFrameFeed(frame, ACME), broker,
           protection=Protection(StopLoss.atr(2.0, period=3))).run()  # fmt: skip
    (stop,) = protective(broker)
    placed = int((frame.index <= pd.Timestamp(stop.created_ns, tz="UTC")).sum())  # bars known
    known = frame.iloc[:placed]
    wilder = atr(known.high.to_numpy(), known.low.to_numpy(), known.close.to_numpy(), 3)[-1]
    assert wilder > 2.5  # (the mean of the last three ranges is 2)
    entry = 100  # filled at bar 9's open
    assert stop.request.stop_price == Decimal(str(entry - 2 * wilder)).quantize(
        Decimal("0.01"), rounding="ROUND_FLOOR"
    )
