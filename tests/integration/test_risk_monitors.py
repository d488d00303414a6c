"""Running monitors in backtests: a daily loss limit and a drawdown kill switch."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import pandas as pd
import pytest

from ibkrfw import (
    ConfigError,
    Engine,
    Event,
    OrderDenied,
    RiskWarning,
    Side,
    Stock,
    TradingHalted,
)
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


# --- bar sizes: the same path as minute bars and as daily bars -----------------------------
# Four sessions (2 to 5 January 2024), six minute bars each from 09:30 New York, and the same
# sessions as one daily bar each. The second session falls from 100 to 90.
_SESSIONS = [
    [100.0] * 7,
    [100.0, 99.0, 98.0, 96.0, 94.0, 92.0, 90.0],
    [90.0, 90.5, 91.0, 91.5, 92.0, 92.0, 92.0],
    [92.0] * 7,
]


def _minute_and_daily_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    minutes, days = [], []
    for k, path in enumerate(_SESSIONS):
        start = pd.Timestamp(f"2024-01-0{k + 2} 09:30", tz="America/New_York")
        rows = [(a, max(a, b), min(a, b), b) for a, b in pairwise(path)]
        minutes.append(bars_frame(rows, start=str(start.tz_convert("UTC")), freq="1min"))
        days.append((path[0], max(path), min(path), path[-1]))
    return pd.concat(minutes), bars_frame(days, start="2024-01-02 14:30", freq="1D")


class _EndOfDayBuyer(ScriptedStrategy):
    """Buy 100 on the first bar; at the last bar of each session, buy 10 more."""

    def __init__(self, closes: set[int]) -> None:
        super().__init__()
        self.closes = closes

    def on_bar(self, ctx, bar):  # type: ignore[no-untyped-def, override]
        if not self.bars:
            ctx.buy(ACME, 100)
        super().on_bar(ctx, bar)
        if bar.ts_ns in self.closes:
            ctx.buy(ACME, 10)


@pytest.mark.parametrize("bars", ["minute", "daily"])
def test_the_daily_loss_limit_halts_on_minute_and_on_daily_bars_alike(bars: str) -> None:
    minute, daily = _minute_and_daily_frames()
    frame = minute if bars == "minute" else daily
    closes = {int(minute.index[6 * k + 5].value) for k in range(4)} if bars == "minute" else {
        int(t.value) for t in daily.index
    }  # fmt: skip
    strategy = _EndOfDayBuyer(closes)
    result = Engine(
        strategy, DataFrameFeed(frame, ACME), SimBroker(100_000),
        risk_monitors=[DailyLossLimit(500)],
    ).run()  # fmt: skip
    # The second session loses 110 x 10 = 1,100 from the first one's close: halted on both
    # bar sizes (on daily bars, at that session's close).
    assert [h.rule for h in result.halts] == ["DailyLossLimit"]
    halted = pd.Timestamp(result.halts[0].ts_ns, tz="UTC").tz_convert("America/New_York")
    assert halted.date() == pd.Timestamp("2024-01-03").date()
    # The halt stops the buy decided at that session's close (minute bars: denied; daily
    # bars: sent before the close was known, and cancelled): the same trades on both.
    assert [f.quantity for f in result.fill_list] == [100, 10, 10]


class _Listener(ScriptedStrategy):
    """Record the other events (``on_event``) and whether ``on_start`` came before them."""

    def __init__(self, actions: dict[int, Any] | None = None) -> None:
        super().__init__(actions)
        self.others: list[tuple[bool, Event]] = []
        self.started = False

    def on_start(self, ctx):  # type: ignore[no-untyped-def, override]
        self.started = True

    def on_event(self, ctx, event):  # type: ignore[no-untyped-def, override]
        self.others.append((self.started, event))


def test_on_daily_bars_the_daily_loss_limit_says_what_it_cannot_do_when_the_run_starts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    minute, daily = _minute_and_daily_frames()
    strategy = _Listener()
    with caplog.at_level("WARNING", logger="ibkrfw.engine"):
        result = Engine(
            strategy, DataFrameFeed(daily, ACME), SimBroker(100_000),
            risk_monitors=[DailyLossLimit(500, flatten=True)],
        ).run()  # fmt: skip
    (warning,) = result.risk_warnings
    assert warning.rule == "DailyLossLimit" and warning.ts_ns == daily.index[0].value
    assert "on bars of 1 day a day's loss is known only at a bar's close" in warning.reason
    assert "cannot stop trading during the day" in warning.reason
    assert "every position is closed at the next open" in warning.reason
    assert [(started, e) for started, e in strategy.others if isinstance(e, RiskWarning)] == [
        (True, warning)
    ]  # to the strategy, after on_start
    assert any("DailyLossLimit: on bars of 1 day" in r.message for r in caplog.records)
    # minute bars: nothing to say
    result = Engine(
        ScriptedStrategy(), DataFrameFeed(minute, ACME), SimBroker(100_000),
        risk_monitors=[DailyLossLimit(500)],
    ).run()  # fmt: skip
    assert result.risk_warnings == []


def test_a_days_loss_counts_from_the_previous_close_as_ibs_daily_pnl() -> None:
    # Minute bars: 100 held from the first session, which closes at 100; the next opens at
    # 92 and stays there. Its loss of 800 is there from its first bar (it used to be measured
    # from that bar, and was never seen).
    day_one = bars_frame([(100, 100, 100, 100)] * 4, start="2024-01-02 14:30", freq="1min")
    day_two = bars_frame([(92, 92, 92, 92)] * 4, start="2024-01-03 14:30", freq="1min")
    strategy = ScriptedStrategy({0: lambda ctx, bar: ctx.buy(ACME, 100)})
    result = Engine(
        strategy, DataFrameFeed(pd.concat([day_one, day_two]), ACME), SimBroker(100_000),
        risk_monitors=[DailyLossLimit(500)],
    ).run()  # fmt: skip
    (halt,) = result.halts
    assert halt.ts_ns == day_two.index[0].value
    assert "the day's loss of 800.00 reached the limit of 500.00" in halt.reason


def test_on_daily_bars_the_halt_flattens_at_the_next_open_and_keeps_the_protective_stop() -> None:
    # Daily bars; 100 bought on the first day with a stop 30 below. The second day closes 10
    # lower: the limit is seen at that close, where the strategy has just bought 50 more.
    from ibkrfw.risk import Protection, StopLoss

    rows = [(100, 101, 99, 100), (100, 100, 90, 90), (90, 91, 89, 90), (90, 91, 89, 90)]
    frame = bars_frame(rows, start="2024-01-02 14:30")
    buy = lambda n: lambda ctx, bar: ctx.buy(ACME, n)  # noqa: E731
    for flatten in (False, True):
        strategy = ScriptedStrategy({0: buy(100), 1: buy(50)})
        broker = RecordingBroker(SimBroker(100_000))
        result = Engine(
            strategy, DataFrameFeed(frame, ACME), broker,
            risk_monitors=[DailyLossLimit(500, flatten=flatten)],
            protection=Protection(StopLoss.fixed(30)),
        ).run()  # fmt: skip
        (halt,) = result.halts
        assert halt.ts_ns == frame.index[1].value and "seen at the day's close" in halt.reason
        cancelled = [o for o in result.order_list if o.status == "CANCELLED"]
        assert any(o.request.quantity == 50 and o.request.side is Side.BUY for o in cancelled)
        fills = [(f.side, f.quantity, f.price) for f in result.fill_list]
        if flatten:  # closed at the third day's open; its stop cancelled with it
            assert fills == [(Side.BUY, 100, 100), (Side.SELL, 100, 90)]
            assert all(o.status.is_terminal for o in result.order_list)
        else:  # the position stays, and so does its stop
            assert fills == [(Side.BUY, 100, 100)]
            (stop,) = [o for o in result.order_list if not o.status.is_terminal]
            assert stop.request.tag == "stop-loss" and stop.request.quantity == 100


def test_a_kill_switch_on_daily_bars_cancels_the_entry_decided_at_the_close_that_broke_it() -> None:
    rows = [(100, 101, 99, 100), (100, 100, 80, 80), (80, 81, 79, 80), (80, 81, 79, 80)]
    strategy = ScriptedStrategy({0: lambda c, b: c.buy(ACME, 500), 1: lambda c, b: c.buy(ACME, 5)})
    result = Engine(
        strategy, DataFrameFeed(bars_frame(rows), ACME), SimBroker(100_000),
        risk_monitors=[MaxDrawdownKillSwitch(0.05, flatten=False)],
    ).run()  # fmt: skip
    assert [h.rule for h in result.halts] == ["MaxDrawdownKillSwitch"]
    assert [f.quantity for f in result.fill_list] == [500]  # the 5 never filled
    assert result.risk_warnings == []  # it works at any bar size


def test_a_circuit_breaker_says_its_pause_is_shorter_than_a_daily_bar() -> None:
    from ibkrfw.risk import CircuitBreaker

    rows = [(100, 101, 99, 100)] * 3
    result = Engine(
        ScriptedStrategy(), DataFrameFeed(bars_frame(rows), ACME), SimBroker(100_000),
        risk_monitors=[CircuitBreaker(max_rejections=2, minutes=240, pause_minutes=90)],
    ).run()  # fmt: skip
    (warning,) = result.risk_warnings
    assert "the window of 240 minutes is shorter than a bar (1 day)" in warning.reason
    assert (
        "the pause of 90 minutes is shorter than a bar (1 day): it stops only the orders of the "
        "bar on which it trips"
    ) in warning.reason


def test_rules_that_cannot_work_at_the_bar_size_say_so_or_refuse_to_start() -> None:
    from ibkrfw import ConfigError as Refused
    from ibkrfw.risk import StaleDataGuard, TradingHours

    rows = [(100, 101, 99, 100)] * 3
    daily = bars_frame(rows, start="2024-01-02 14:30")
    hours = TradingHours("09:35", "15:55")
    result = Engine(ScriptedStrategy(), DataFrameFeed(daily, ACME), SimBroker(100_000),
                    risk_rules=[hours]).run()  # fmt: skip
    (warning,) = result.risk_warnings
    assert warning.rule == "TradingHours" and "cannot tell the hours apart" in warning.reason
    hourly = bars_frame(rows, start="2024-01-02 14:30", freq="1h")
    result = Engine(ScriptedStrategy(), DataFrameFeed(hourly, ACME), SimBroker(100_000),
                    risk_rules=[TradingHours("10:00", "10:30")]).run()  # fmt: skip
    assert "shorter than a bar (1 hour)" in result.risk_warnings[0].reason
    minutes = bars_frame(rows, start="2024-01-02 14:30", freq="1min")
    result = Engine(ScriptedStrategy(), DataFrameFeed(minutes, ACME), SimBroker(100_000),
                    risk_rules=[hours, StaleDataGuard(120)]).run()  # fmt: skip
    assert result.risk_warnings == []
    broker = SimBroker(100_000)
    with pytest.raises(Refused, match=r"StaleDataGuard\(max_age_s=60\) is not longer than one "
                                      r"of the run's bars \(1 minute\).*e\.g\. 120"):  # fmt: skip
        Engine(ScriptedStrategy(), DataFrameFeed(minutes, ACME), broker,
               risk_rules=[StaleDataGuard(60)]).run()  # fmt: skip
