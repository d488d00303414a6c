"""Exits where features meet: brackets, a Protection, targets, rules and the account together.

Each test is a case an adversarial review found broken (the comment says what happened).
Invariants throughout: a bracket's entry never works without its stop-loss; the exits and the
strategy's closing orders never close more than the position; a target is reached.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from ibkrfw import (
    ConfigError,
    Engine,
    OrderError,
    OrderRequest,
    OrderStatus,
    ProtectionFailed,
    Stock,
)
from ibkrfw.risk import (
    CapitalRamp,
    OrderRateLimit,
    Protection,
    StopLoss,
    TakeProfit,
    TradingHours,
)
from ibkrfw.sim import DataFrameFeed, SimBroker
from ibkrfw.testing import FakeTWS, LiveSession, RecordingBroker, ScriptedStrategy, bars_frame

ACME = Stock("ACME")
FLAT = (100, 101, 99, 100)
DROP = (100, 100.5, 94, 95)  # trades through a stop at 95


def run(rows: list[Any], actions: dict[int, Any], *, broker: Any = None, **kw: Any) -> Any:
    feed = DataFrameFeed(bars_frame(rows, start="2024-01-02 14:30", freq="1min"), ACME)
    broker = broker or RecordingBroker(SimBroker())
    strategy = ScriptedStrategy(actions)
    engine = Engine(strategy, feed, broker, **kw)
    result = engine.run()
    return result, broker, strategy, engine


def held(result: Any) -> Decimal:
    return sum(
        (f.quantity if f.side.value == "BUY" else -f.quantity for f in result.fill_list),
        Decimal(0),
    )


def bracket(quantity: int = 100, stop: str = "95") -> Any:
    return lambda ctx, bar: ctx.bracket(ACME, "BUY", quantity, take_profit=110, stop_loss=stop)


# --- a bracket is all or nothing ------------------------------------------------------------
@pytest.mark.parametrize(
    "setup",
    [
        {"broker": RecordingBroker(SimBroker(account="cash"))},
        {"risk_rules": [OrderRateLimit(2, 60)]},
    ],
    ids=["cash account", "a rule that would refuse the third order"],
)
def test_a_brackets_exits_are_never_refused_while_its_entry_goes(setup: dict[str, Any]) -> None:
    # Before: a cash account denied both exits as short sales (sent while flat), a rate limit
    # the stop-loss; the entry filled and the price fell through the stop with no exit.
    result, _, _, _ = run([FLAT, FLAT, DROP, FLAT], {0: bracket()}, **setup)
    assert [(f.side.value, f.price) for f in result.fill_list] == [
        ("BUY", Decimal("100.00")), ("SELL", Decimal("95")),
    ]  # fmt: skip


def test_a_bracket_an_exit_of_which_is_invalid_is_refused_before_anything_is_sent() -> None:
    result, broker, _, _ = run([FLAT] * 3, {0: bracket(stop="95.001")})  # off the tick grid
    assert broker.submitted == []
    statuses = [o.status for o in result.order_list]
    assert statuses == [OrderStatus.DENIED] * 3
    assert "stop-loss: stop price 95.001 is not a multiple" in result.order_list[0].reason


def test_a_bracket_where_a_protection_keeps_the_exits_is_refused() -> None:
    # Before: both stops worked and both filled: the position went short.
    result, broker, _, _ = run(
        [FLAT, FLAT, DROP, FLAT], {0: bracket()}, protection=Protection(StopLoss.percent(0.05))
    )
    assert broker.submitted == [] and result.fill_list == []
    assert "a Protection keeps the exits of ACME.SMART" in result.order_list[0].reason


# --- the strategy's closing orders and the exits never close more than the position ---------
@pytest.mark.parametrize("brackets", [1, 2])
def test_a_target_of_zero_on_a_bracketed_position_is_not_doubled_by_the_stop(
    brackets: int,
) -> None:
    # Before: the target's sale and the bracket's stop both filled on bar 3: short 100 (200
    # with two brackets), backtest and live alike.
    entries = lambda ctx, bar: [bracket()(ctx, bar) for _ in range(brackets)]  # noqa: E731
    target = lambda ctx, bar: ctx.order_target_quantity(ACME, 0)  # noqa: E731
    result, _, _, _ = run([FLAT, FLAT, FLAT, DROP, FLAT, FLAT], {0: entries, 2: target})
    assert held(result) == 0
    assert [f.side.value for f in result.fill_list] == ["BUY"] * brackets + ["SELL"]
    assert all(o.status.is_terminal for o in result.order_list)


def test_a_target_of_zero_on_a_bracketed_position_live_through_the_fake_tws() -> None:
    strategy = ScriptedStrategy(
        {0: bracket(), 2: lambda ctx, bar: ctx.order_target_quantity(ACME, 0)}
    )
    frame = bars_frame([FLAT, FLAT, FLAT, DROP, FLAT, FLAT], start="2024-01-02", freq="1D")
    with FakeTWS(data={ACME: frame}) as tws, LiveSession(strategy, tws) as session:
        session.step(6)
        result = session.stop()
    assert held(result) == 0
    assert [(f.side.value, f.quantity) for f in result.fill_list] == [("BUY", 100), ("SELL", 100)]


def test_closing_a_bracketed_position_only_reduces_so_no_rule_denies_it() -> None:
    # Before: the bracket's exits counted as working sales, so the closing sale did not "only
    # reduce" and TradingHours denied it outside its window.
    hours = TradingHours("09:30", "09:33", "America/New_York")
    target = lambda ctx, bar: ctx.order_target_quantity(ACME, 0)  # noqa: E731
    result, _, strategy, _ = run([FLAT] * 8, {0: bracket(stop="80"), 3: target},
                                 risk_rules=[hours])  # fmt: skip
    assert [type(e).__name__ for _, e in strategy.events].count("OrderDenied") == 0
    assert held(result) == 0


def test_a_scale_out_under_a_protection_fills_both_halves() -> None:
    # Before: both sales joined the protective OCA group; the first one's fill cancelled the
    # second ("filled it all"), leaving 50 held without a word.
    rows = [FLAT, FLAT, FLAT, (100, 103, 99.5, 102.5), (102.5, 105, 102, 104.5), FLAT, FLAT]
    out = lambda ctx, bar: (ctx.sell(ACME, 50, limit_price=102, tif="GTC"),  # noqa: E731
                            ctx.sell(ACME, 50, limit_price=104, tif="GTC"))  # fmt: skip
    result, _, _, _ = run(rows, {0: lambda c, b: c.buy(ACME, 100), 2: out},
                          protection=Protection(StopLoss.percent(0.05)))  # fmt: skip
    assert [(f.side.value, f.quantity) for f in result.fill_list] == [
        ("BUY", 100), ("SELL", 50), ("SELL", 50),
    ]  # fmt: skip
    assert all(o.status.is_terminal for o in result.order_list)


def test_targets_with_protection_and_partial_fills_reach_their_goal_without_piling_up() -> None:
    # Before: a later target's sale joined the group of the earlier one, whose partial fills
    # cut it to nothing (ending flat, not -60); called every bar, a sale was added each bar.
    protect = Protection(StopLoss.percent(0.05), TakeProfit.percent(0.1))
    goal = lambda i: 100 if i < 5 else (0 if i < 12 else -60)  # noqa: E731
    actions = {i: (lambda g: lambda c, b: c.order_target_quantity(ACME, g))(goal(i))
               for i in range(30)}  # fmt: skip
    result, broker, _, _ = run([FLAT] * 30, actions, broker=RecordingBroker(
        SimBroker(volume_limit=0.01)), protection=protect)  # fmt: skip
    assert held(result) == -60
    assert len([o for o in broker.submitted if not o.request.tag]) == 3


def test_a_capital_ramp_does_not_count_the_protective_stop_as_a_sale() -> None:
    # Before: the ramp saw the stop as a pending sale of 100 and let the target grow to 94.
    actions = {i: lambda c, b: c.order_target_quantity(ACME, 100) for i in range(12)}
    result, _, _, _ = run([FLAT] * 14, actions, risk_rules=[CapitalRamp((0.25, 0.5, 1.0))],
                          protection=Protection(StopLoss.percent(0.05)))  # fmt: skip
    assert held(result) == 25


# --- protection that cannot be kept is said ---------------------------------------------------
def test_losses_are_counted_per_protective_order() -> None:
    # Before: one count per instrument: the stop-loss was given up after two rejections,
    # because the take-profit's counted too.
    refusals = iter([True, True, True, True])

    def reject(order: Any) -> str | None:
        return "201: test" if order.request.tag and next(refusals, False) else None

    protect = Protection(StopLoss.fixed(5), TakeProfit.fixed(5))
    result, _, _, engine = run([FLAT] * 6, {0: lambda c, b: c.buy(ACME, 100)},
                               broker=RecordingBroker(SimBroker(), reject=reject),
                               protection=protect)  # fmt: skip
    assert not [n for n in engine.notices if isinstance(n, ProtectionFailed)]
    working = {o.request.tag for o in result.order_list if not o.status.is_terminal}
    assert working == {"stop-loss", "take-profit"}


def test_a_stop_that_cannot_be_placed_is_said_once() -> None:
    rows = [FLAT] * 3 + [(100, 100, 20, 25)] * 3
    _, _, _, engine = run(rows, {0: lambda c, b: c.buy(ACME, 100)},
                          protection=Protection(StopLoss.fixed(150)))  # fmt: skip
    (failed,) = [n for n in engine.notices if isinstance(n, ProtectionFailed)]
    assert failed.tag == "stop-loss" and "at or below zero" in failed.reason


# --- inputs -----------------------------------------------------------------------------------
def test_a_target_too_large_for_a_float_is_denied_not_read_as_zero() -> None:
    # Before: 1e305 of equity overflowed to infinity, sized as 0: the position was sold.
    actions = {0: lambda c, b: c.buy(ACME, 10),
               2: lambda c, b: c.order_target_percent(ACME, 1e305),
               3: lambda c, b: c.order_target_value(ACME, 10**400)}  # fmt: skip
    result, _, strategy, _ = run([FLAT] * 5, actions)
    assert held(result) == 10
    denied = [e.reason for _, e in strategy.events if type(e).__name__ == "OrderDenied"]
    assert len(denied) == 2 and all("not a finite number" in r for r in denied)
    assert "the value 1.000E+400 is not a finite number" in denied[1]


@pytest.mark.parametrize(
    ("action", "error", "match"),
    [
        (lambda c: c.submit(OrderRequest(ACME, "BUY", 1, tif="GTD", good_till_ns="tomorrow")),
         OrderError, "good_till_ns must be UTC epoch nanoseconds"),
    ],
)  # fmt: skip
def test_wrong_types_are_typed_errors(action: Any, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        run([FLAT] * 2, {0: lambda c, b: action(c)})


def test_one_instrument_twice_in_a_feed_or_two_with_one_id_are_refused() -> None:
    frame = bars_frame([FLAT] * 2)
    with pytest.raises(ConfigError, match=r"two instruments share the id ACME\.SMART"):
        Engine(ScriptedStrategy({}), [DataFrameFeed(frame, ACME),
               DataFrameFeed(frame, Stock("ACME", tick_size="0.001"))], SimBroker())  # fmt: skip
