"""Orders that only reduce risk: no built-in rule denies them, so a halt can always get out."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ibkrfw import (
    Bar,
    Engine,
    Fill,
    OrderDenied,
    OrderRequest,
    OrderType,
    RiskRule,
    Side,
    Stock,
)
from ibkrfw.core.clock import SimClock
from ibkrfw.core.history import BarHistory
from ibkrfw.portfolio import Portfolio
from ibkrfw.risk import (
    CapitalRamp,
    CorrelationLimit,
    DailyLossLimit,
    ExposureLimit,
    MarginCheck,
    MaxDrawdownKillSwitch,
    MaxOrderNotional,
    MaxOrderQuantity,
    MaxPosition,
    OrderRateLimit,
    Protection,
    RestrictedList,
    RiskMonitor,
    StaleDataGuard,
    StopLoss,
    TakeProfit,
    TradingHours,
)
from ibkrfw.sim import DataFrameFeed, SimBroker
from ibkrfw.testing import RecordingBroker, ScriptedStrategy, bars_frame

ACME, BOLT = Stock("ACME"), Stock("BOLT")
NIGHT = int(pd.Timestamp("2024-01-06 03:00", tz="America/New_York").value)  # a Saturday


def every_rule() -> list[RiskRule]:
    """Each built-in rule, set so that the account is over it and the clock is outside it."""
    rate = OrderRateLimit(1, 3_600)
    rate.check(OrderRequest(BOLT, Side.BUY, 1), Portfolio(), NIGHT)  # the hour's one order
    return [
        MaxOrderQuantity(1),
        MaxOrderQuantity(1, shrink=True),
        MaxPosition(quantity=1),
        MaxPosition(notional=1.0, shrink=True),
        MaxPosition(percent_of_equity=0.001),
        MaxOrderNotional(1.0),
        MaxOrderNotional(1.0, shrink=True),
        ExposureLimit(max_gross=1.0, max_net=1.0, max_leverage=0.001),
        MarginCheck(1.0),
        RestrictedList([ACME], symbols=["BOLT"]),
        TradingHours("09:30", "16:00", "America/New_York"),
        rate,
        StaleDataGuard(max_age_s=60),
        CorrelationLimit(0.001, threshold=0.1, window=3),
        CapitalRamp((0.25, 1.0)),
    ]


def account(held: int, buys: int, sells: int) -> Portfolio:
    """An account holding ``held`` ACME (and some BOLT, moving with it), with working orders."""
    clock = SimClock()
    pf = Portfolio(1_000, clock=clock)
    histories = {ACME: BarHistory.empty(), BOLT: BarHistory.empty()}
    for i, close in enumerate([100.0, 101.0, 99.0, 102.0, 100.0]):  # a day ago: stale
        for inst in (ACME, BOLT):
            histories[inst].push(Bar(inst, NIGHT - 86_400 * 10**9 + i, close, close, close,
                                     close, 0.0))  # fmt: skip
    for inst, quantity in ((ACME, held), (BOLT, 50)):
        side = Side.BUY if quantity > 0 else Side.SELL
        pf.apply_fill(Fill(0, inst, side, Decimal(abs(quantity)), Decimal(100), Decimal(0), 0,
                           f"adopted-{inst.symbol}"))  # fmt: skip
        pf.mark(inst, 100.0)
    pf.follow_histories(histories)
    working = {ACME: (Decimal(buys), Decimal(sells)), BOLT: (Decimal(10), Decimal(10))}
    pf.follow_orders(lambda: working)
    return pf


@st.composite
def reductions(draw: st.DrawFn) -> tuple[int, int, int, OrderRequest]:
    """A position, working orders on both sides, and an order that only brings it toward flat:
    with the working orders on its own side it does not take the position past flat."""
    held = draw(st.integers(1, 5_000)) * draw(st.sampled_from([1, -1]))
    away = draw(st.integers(0, 5_000))  # the working orders that would add to the position
    toward = draw(st.integers(0, abs(held) - 1))  # those on the order's side
    quantity = draw(st.integers(1, abs(held) - toward))
    side = Side.SELL if held > 0 else Side.BUY
    buys, sells = (away, toward) if held > 0 else (toward, away)
    kind = draw(st.sampled_from(["market", "limit", "stop"]))
    price = Decimal(draw(st.integers(50, 150)))
    request = OrderRequest(
        ACME, side, quantity,
        OrderType.LIMIT if kind == "limit" else OrderType.STOP if kind == "stop" else
        OrderType.MARKET,
        limit_price=price if kind == "limit" else None,
        stop_price=price if kind == "stop" else None,
    )  # fmt: skip
    return held, buys, sells, request


@given(reductions())
def test_no_built_in_rule_denies_or_shrinks_an_order_that_only_reduces_a_position(
    case: tuple[int, int, int, OrderRequest],
) -> None:
    held, buys, sells, request = case
    pf = account(held, buys, sells)
    for rule in every_rule():
        decision = rule.check(request, pf, NIGHT)
        assert decision.approved and decision.quantity is None, (rule.name, decision.reason)


def test_an_order_that_with_the_working_orders_would_go_past_flat_is_not_a_reduction() -> None:
    # long 100 with a working sale of 80: selling 50 more could leave a short of 30
    pf = account(100, 0, 80)
    request = OrderRequest(ACME, Side.SELL, 50)
    for rule in (RestrictedList([ACME]), TradingHours("09:30", "16:00"), MaxOrderQuantity(10)):
        assert not rule.check(request, pf, NIGHT).approved, rule.name
    assert MaxPosition(quantity=20).check(request, pf, NIGHT).reason == (
        "the position in ACME.SMART would be -30, over the limit of 20"
    )
    # ... while 20 more only brings it to flat
    for rule in every_rule():
        assert rule.check(OrderRequest(ACME, Side.SELL, 20), pf, NIGHT).approved, rule.name


# --- a halt that flattens gets out whatever the rules ------------------------------------
def _flatten_run(monitor: RiskMonitor, guard: str) -> tuple[Any, Any, Any]:
    # Hourly bars of Tuesday 2 January 2024 from 09:30 New York. Orders of the strategy only
    # 09:30-15:00 and of at most 100: 200 are bought in two orders; the fall at 15:30 (outside
    # the window) trips the monitor, whose flatten must sell all 200 at once. The position
    # may have exits working: Protection's, or a take-profit of the strategy's own; the
    # flatten cancels them, and they must not make its sale look like more than a reduction.
    rows = [(100, 101, 99, 100)] * 6 + [(100, 100, 90, 90), (90, 91, 89, 90)]
    frame = bars_frame(rows, start="2024-01-02 14:30", freq="1h")
    buy: Callable[[Any, Any], object] = lambda ctx, bar: ctx.buy(ACME, 100)  # noqa: E731
    take = lambda ctx, bar: ctx.submit(  # noqa: E731
        OrderRequest(ACME, Side.SELL, 200, OrderType.LIMIT, limit_price=Decimal(130), tif="GTC")
    )
    actions = {0: buy, 1: buy} | ({3: take} if guard == "own-exit" else {})
    strategy = ScriptedStrategy(actions)
    protection = Protection(StopLoss.fixed(30), TakeProfit.fixed(30))
    broker = RecordingBroker(SimBroker(100_000))
    result = Engine(
        strategy, DataFrameFeed(frame, ACME), broker,
        risk_rules=[MaxOrderQuantity(100), TradingHours("09:30", "15:00")],
        risk_monitors=[monitor],
        protection=protection if guard == "protection" else (),
    ).run()  # fmt: skip
    return result, broker, strategy


@pytest.mark.parametrize("guard", ["bare", "protection", "own-exit"])
@pytest.mark.parametrize(
    "make",
    [lambda: DailyLossLimit(1_000, flatten=True), lambda: MaxDrawdownKillSwitch(0.01)],
    ids=["daily-loss", "kill-switch"],
)
def test_a_halt_flattens_outside_trading_hours_a_position_larger_than_the_order_limit(
    make: Callable[[], RiskMonitor], guard: str
) -> None:
    result, broker, strategy = _flatten_run(make(), guard)
    assert len(result.halts) == 1 and result.halts[0].flatten
    flatten = [o for o in broker.submitted if o.request.tag == "flatten"]
    assert [(o.request.side, o.request.quantity) for o in flatten] == [(Side.SELL, 200)]
    denied = [e for _, e in strategy.events if isinstance(e, OrderDenied)]
    assert denied == []
    ours = [(f.side, f.quantity) for f in result.fill_list]
    assert ours == [(Side.BUY, 100), (Side.BUY, 100), (Side.SELL, 200)]
    assert result.positions[ACME.id].iloc[-1] == 0
    assert all(o.status.is_terminal for o in result.order_list)  # exits cancelled too


@pytest.mark.parametrize("exit_quantity", [200, 150])
def test_an_exit_joining_the_protective_orders_group_is_a_reduction(exit_quantity: int) -> None:
    # 200 held with a stop and a take-profit of 200 each (one OCA group: they fill 200 at most).
    # The strategy's sale at 15:30, outside its hours, joins that group, so it adds nothing to
    # it: a reduction, which goes out though larger than the order limit.
    rows = [(100, 101, 99, 100)] * 8
    frame = bars_frame(rows, start="2024-01-02 14:30", freq="1h")
    buy: Callable[[Any, Any], object] = lambda ctx, bar: ctx.buy(ACME, 100)  # noqa: E731
    sell: Callable[[Any, Any], object] = lambda ctx, bar: ctx.sell(ACME, exit_quantity)  # noqa: E731
    strategy = ScriptedStrategy({0: buy, 1: buy, 6: sell})
    broker = RecordingBroker(SimBroker(100_000))
    result = Engine(
        strategy, DataFrameFeed(frame, ACME), broker,
        risk_rules=[MaxOrderQuantity(100), TradingHours("09:30", "15:00")],
        protection=Protection(StopLoss.fixed(30), TakeProfit.fixed(30)),
    ).run()  # fmt: skip
    assert [e for _, e in strategy.events if isinstance(e, OrderDenied)] == []
    (sale,) = [o for o in broker.submitted if o.request.side is Side.SELL and not o.request.tag]
    stop = next(o for o in broker.submitted if o.request.tag == "stop-loss")
    assert sale.request.oca_group == stop.request.oca_group
    assert result.positions[ACME.id].iloc[-1] == 200 - exit_quantity
