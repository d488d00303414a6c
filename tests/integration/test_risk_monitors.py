"""Running monitors in backtests: a daily loss limit and a drawdown kill switch."""

from __future__ import annotations

import pandas as pd
import pytest

from ibkrfw import ConfigError, Engine, OrderDenied, Stock, TradingHalted
from ibkrfw.risk import DailyLossLimit, MaxDrawdownKillSwitch
from ibkrfw.sim import DataFrameFeed, SimBroker
from ibkrfw.testing import RecordingBroker, ScriptedStrategy, bars_frame

ACME = Stock("ACME")


def test_a_daily_loss_limit_halts_for_the_rest_of_the_day() -> None:
    # hourly bars: four on Tuesday (New York 10:00 to 13:00), two on Wednesday
    day_one = bars_frame(
        [(100, 100, 100, 100), (100, 100, 95, 95), (95, 95, 90, 90), (90, 90, 90, 90)],
        start="2024-01-02 15:00", freq="1h",
    )  # fmt: skip
    day_two = bars_frame([(90, 90, 90, 90), (91, 91, 91, 91)], start="2024-01-03 15:00", freq="1h")
    frame = pd.concat([day_one, day_two])
    buy = lambda ctx, bar: ctx.buy(ACME, 100)  # noqa: E731
    strategy = ScriptedStrategy({0: buy, 3: buy, 4: buy})
    result = Engine(
        strategy, DataFrameFeed(frame, ACME), SimBroker(100_000),
        risk_monitors=[DailyLossLimit(800)],
    ).run()  # fmt: skip
    # 100 bought at 100; after the third bar the day has lost 100 * (100 - 90) = 1,000
    assert [h.rule for h in result.halts] == ["DailyLossLimit"]
    assert "loss of 1,000.00 reached the limit of 800.00" in result.halts[0].reason
    assert result.halts[0].ts_ns == day_one.index[2].value
    denials = [e for _, e in strategy.events if isinstance(e, OrderDenied)]
    assert [d.rule for d in denials] == ["DailyLossLimit"]  # the fourth bar's buy, same day
    assert "trading is halted" in denials[0].reason
    assert [f.quantity for f in result.fill_list] == [100, 100]  # and Wednesday's went through
    assert result.stats["Halts"] == 1


def test_a_drawdown_kill_switch_flattens_and_stops_everything() -> None:
    rows = [(100, 100, 100, 100), (100, 100, 100, 100), (80, 80, 70, 70), (70, 70, 70, 70),
            (70, 75, 70, 75), (75, 75, 75, 75)]  # fmt: skip
    buy = lambda ctx, bar: ctx.buy(ACME, 500)  # noqa: E731
    strategy = ScriptedStrategy({0: buy, 4: buy})
    result = Engine(
        strategy,
        DataFrameFeed(bars_frame(rows), ACME),
        SimBroker(100_000),
        risk_monitors=[MaxDrawdownKillSwitch(0.1)],
    ).run()
    assert [h.rule for h in result.halts] == ["MaxDrawdownKillSwitch"]
    assert result.halts[0].flatten and result.halts[0].until_ns is None
    sides = [(str(f.side), f.quantity) for f in result.fill_list]
    assert sides == [("BUY", 500), ("SELL", 500)]  # in, then flattened; bar 4's buy denied
    assert result.positions["ACME.SMART"].iloc[-1] == 0
    denials = [e for _, e in strategy.events if isinstance(e, OrderDenied)]
    assert [d.rule for d in denials] == ["MaxDrawdownKillSwitch"]
    assert any(isinstance(e, TradingHalted) for e in [*result.halts])


@pytest.mark.parametrize(
    "make",
    [
        lambda: DailyLossLimit(),
        lambda: DailyLossLimit(-5),
        lambda: MaxDrawdownKillSwitch(1.5),
        lambda: DailyLossLimit(10, tz="Nowhere/Land"),
    ],
)
def test_bad_monitors_are_refused(make: object) -> None:
    with pytest.raises(ConfigError):
        make()  # type: ignore[operator]


def test_a_circuit_breaker_trips_on_rejections() -> None:
    from ibkrfw import OrderRejected
    from ibkrfw.risk import CircuitBreaker

    too_big = lambda ctx, bar: ctx.buy(ACME, 2_000)  # noqa: E731 - the broker refuses it
    strategy = ScriptedStrategy({0: too_big, 1: too_big, 2: lambda c, b: c.buy(ACME, 10)})
    rows = [(100, 100, 100, 100)] * 6
    broker = RecordingBroker(
        SimBroker(100_000), reject=lambda o: "no margin" if o.quantity >= 2_000 else None
    )
    result = Engine(
        strategy, DataFrameFeed(bars_frame(rows, freq="1h"), ACME), broker,
        risk_monitors=[CircuitBreaker(max_rejections=2, minutes=240, pause_minutes=90)],
    ).run()  # fmt: skip
    rejected = [e for _, e in strategy.events if isinstance(e, OrderRejected)]
    assert len(rejected) == 2
    assert [h.rule for h in result.halts] == ["CircuitBreaker"]
    assert "2 rejections within 240 minutes" in result.halts[0].reason
    assert result.halts[0].until_ns == result.halts[0].ts_ns + 90 * 60 * 10**9
    denials = [e for _, e in strategy.events if isinstance(e, OrderDenied)]
    assert [d.rule for d in denials] == ["CircuitBreaker"]  # the small buy an hour later...
    assert result.fill_list == []


def test_a_circuit_breaker_trips_on_stop_outs() -> None:
    from decimal import Decimal

    from ibkrfw import OrderRequest, OrderType, Side
    from ibkrfw.risk import CircuitBreaker

    def enter(ctx, bar):  # type: ignore[no-untyped-def]
        ctx.buy(ACME, 10)
        ctx.submit(OrderRequest(ACME, Side.SELL, 10, OrderType.STOP,
                                stop_price=Decimal(str(bar.close - 2))))  # fmt: skip

    rows = [(100, 100, 100, 100), (100, 100, 97, 97), (97, 97, 97, 97), (97, 97, 94, 94),
            (94, 94, 94, 94), (94, 94, 94, 94)]  # fmt: skip
    strategy = ScriptedStrategy({0: enter, 2: enter, 4: enter})
    result = Engine(
        strategy, DataFrameFeed(bars_frame(rows), ACME), SimBroker(100_000),
        risk_monitors=[CircuitBreaker(max_stop_outs=2, minutes=10 * 24 * 60)],
    ).run()  # fmt: skip
    assert [h.rule for h in result.halts] == ["CircuitBreaker"]
    assert "2 stop-outs" in result.halts[0].reason and result.halts[0].until_ns is None
    denials = [e for _, e in strategy.events if isinstance(e, OrderDenied)]
    # the third entry: its buy, and its stop (a sale from flat would open a short)
    assert [d.rule for d in denials] == ["CircuitBreaker", "CircuitBreaker"]


def test_a_maintenance_margin_call_flattens() -> None:
    from ibkrfw.risk import MaintenanceMargin

    # 1,900 bought at 100 with 100,000: equity falls to 100,000 - 1,900 * 40 = 24,000 at 60,
    # under 25 % of 114,000 = 28,500
    rows = [(100, 100, 100, 100), (100, 100, 100, 100), (60, 60, 60, 60), (60, 60, 60, 60)]
    strategy = ScriptedStrategy({0: lambda ctx, bar: ctx.buy(ACME, 1_900)})
    result = Engine(
        strategy, DataFrameFeed(bars_frame(rows), ACME), SimBroker(100_000),
        risk_monitors=[MaintenanceMargin(0.25)],
    ).run()  # fmt: skip
    assert [h.rule for h in result.halts] == ["MaintenanceMargin"]
    assert "below the maintenance margin of 28,500.00" in result.halts[0].reason
    assert [(str(f.side), f.quantity) for f in result.fill_list] == [("BUY", 1900), ("SELL", 1900)]
