"""LiveMonitor's snapshot: mode, clock, today's P&L, the P&L split, trades, risk, data."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
import pytest

from ibkrfw import ConfigError, Engine, Stock
from ibkrfw.ibkr import ConnectionMonitor, Farm, FarmStatus
from ibkrfw.monitoring import LiveMonitor, prometheus_text
from ibkrfw.risk import DailyLossLimit, ExposureLimit
from ibkrfw.sim import DataFrameFeed, PerShareCommission, SimBroker
from ibkrfw.testing import ScriptedStrategy, bars_frame

ACME = Stock("ACME")


def run(
    rows: list[tuple[float, float, float, float]],
    actions: dict[int, Any],
    monitor: LiveMonitor,
    *,
    freq: str = "1D",
    start: str = "2024-01-02 21:00",
    broker: SimBroker | None = None,
    **kw: Any,
) -> None:
    feed = DataFrameFeed(bars_frame(rows, start=start, freq=freq), ACME)
    broker = broker or SimBroker(100_000)
    Engine(ScriptedStrategy(actions), feed, broker, observers=[monitor], **kw).run()


def check(snap: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in snap["health"]["checks"] if c["name"] == name)


def test_monitor_mode_not_one_of_the_four_is_a_config_error_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"mode='papr'.*'paper', 'live', 'sandbox', 'backtest'"):
        LiveMonitor(mode="papr")


def test_monitor_mode_of_a_backtest_unless_told_and_the_clock_it_keeps() -> None:
    monitor = LiveMonitor(stale_after_s=1e9)
    run([(100, 100, 100, 100)] * 2, {}, monitor)
    snap = monitor.snapshot()
    assert (snap["mode"], snap["account"], snap["currency"]) == ("backtest", None, "USD")
    # the engine's clock: the last bar's time, 2024-01-03 21:00 UTC, 16:00 in New York
    assert snap["time"] == snap["clock"]["time"] == "2024-01-03T21:00:00Z"
    assert snap["clock"] == {
        "time": "2024-01-03T21:00:00Z", "zone": "America/New_York",
        "local": "2024-01-03 16:00:00 EST", "day": "2024-01-03", "source": "engine",
    }  # fmt: skip
    wall = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    assert snap["updated"].endswith("Z") and snap["updated"][:10] == wall  # on the wall clock
    told = LiveMonitor(stale_after_s=1e9, mode="sandbox")
    run([(100, 100, 100, 100)] * 2, {}, told)
    assert told.snapshot()["mode"] == "sandbox"


def test_monitor_daily_bars_todays_pnl_counts_from_the_previous_close() -> None:
    # one equity point a day: today's P&L was always 0, each day starting at its only point
    monitor = LiveMonitor(stale_after_s=1e9, daily_loss_alert=None)
    rows = [(100, 100, 100, 100), (100, 100, 100, 100), (100, 104, 99, 103), (97, 98, 95, 96)]
    run(rows, {0: lambda ctx, bar: ctx.buy(ACME, 100)}, monitor)  # filled at 100
    snap = monitor.snapshot()
    pnl = snap["pnl"]
    assert pnl["day"] == "2024-01-05"
    assert pnl["day_start_equity"] == 100_300.0  # the day before closed at 103
    assert pnl["today"] == pytest.approx(-700.0)  # 100 x (96 - 103)
    assert (
        snap["pnl_today"]
        == pnl["today"]
        == pytest.approx(snap["equity"] - pnl["day_start_equity"], abs=0.011)
    )
    assert "ibkrfw_pnl_unrealized -400.0" in prometheus_text(snap)


def test_monitor_pnl_split_reconciles_and_round_trips_sum_to_the_realised_pnl() -> None:
    monitor = LiveMonitor(stale_after_s=1e9)
    closes = [100, 102, 104, 101, 99, 97, 98, 95, 96]
    rows = [(c, c + 1, c - 1, c) for c in closes]
    actions = {
        0: lambda ctx, bar: ctx.buy(ACME, 10),
        2: lambda ctx, bar: ctx.sell(ACME, 10),  # closed: one round trip
        3: lambda ctx, bar: ctx.buy(ACME, 5),
        5: lambda ctx, bar: ctx.sell(ACME, 12),  # closes the long, opens a short of 7
    }
    run(rows, actions, monitor, broker=SimBroker(100_000, commission=PerShareCommission("0.35")))
    snap = monitor.snapshot()
    pnl = snap["pnl"]
    assert pnl["commission"] > 0 and pnl["unrealized"] != 0
    assert pnl["realized"] + pnl["unrealized"] - pnl["commission"] == pytest.approx(
        snap["equity"] - 100_000, abs=0.011
    )
    trades = snap["trades"]
    assert [(t["side"], t["quantity"], t["open"]) for t in trades] == [
        ("short", 7.0, True), ("long", 5.0, False), ("long", 10.0, False),
    ]  # fmt: skip
    opened = trades[0]
    assert opened["exit_price"] is None and opened["pnl"] is None
    assert opened["entry_time"] == trades[1]["exit_time"]  # the reversal opened it
    assert opened["unrealized"] == pytest.approx(pnl["unrealized"], abs=0.011)
    closed = [t for t in trades if not t["open"]]
    assert sum(t["pnl"] for t in closed) == pytest.approx(pnl["realized"], abs=0.011)
    assert all(t["net_pnl"] == pytest.approx(t["pnl"] - t["commission"], abs=0.011)
               for t in closed)  # fmt: skip
    assert [f["order"] for f in snap["fills"]] == [4, 3, 2, 1]  # newest first, with its order


def test_monitor_keeps_the_last_200_fills() -> None:
    monitor = LiveMonitor(stale_after_s=1e9)
    rows = [(100, 101, 99, 100)] * 230
    run(rows, {i: (lambda ctx, bar: ctx.buy(ACME, 1)) for i in range(220)}, monitor, freq="1h")
    snap = monitor.snapshot()
    assert len(snap["fills"]) == 200 and snap["fills_total"] == 220
    assert snap["fills"][0]["order"] == 220


def test_monitor_risk_check_near_a_limit_then_halted_then_ok_the_next_day() -> None:
    monitor = LiveMonitor(stale_after_s=1e9, drawdown_alert=None, daily_loss_alert=None)
    # 850 of ACME at 100 against a gross exposure limit of 100,000: 85 % of it used
    exposure = ExposureLimit(max_gross=100_000)
    run([(100, 100, 100, 100)] * 3, {0: lambda ctx, bar: ctx.buy(ACME, 850)}, monitor,
        risk_rules=[exposure])  # fmt: skip
    snap = monitor.snapshot()
    assert snap["risk"]["near"] == ["ExposureLimit: 85% of gross exposure"]
    assert check(snap, "risk") == {
        "name": "risk", "status": "degraded", "detail": "ExposureLimit: 85% of gross exposure",
    }  # fmt: skip

    # a daily loss limit halts the rest of the day: failing; the next day, lifted: ok
    halted = LiveMonitor(stale_after_s=1e9, drawdown_alert=None, daily_loss_alert=None)
    rows = [(100, 100, 100, 100)] * 2 + [(90, 90, 90, 90)]
    run(rows, {0: lambda ctx, bar: ctx.buy(ACME, 500)}, halted, freq="1h",
        start="2024-01-02 15:00", risk_monitors=[DailyLossLimit(1_000)])  # fmt: skip
    snap = halted.snapshot()
    risk = check(snap, "risk")
    assert risk["status"] == "failing"
    assert risk["detail"].startswith("trading halted by DailyLossLimit at 2024-01-02T17:00:00Z")
    assert "until 2024-01-03T05:00:00Z: the day's loss of 5,000.00" in risk["detail"]
    assert snap["risk"]["daily_loss_limit"] is not None and snap["risk"]["halt"] is not None
    after = LiveMonitor(stale_after_s=1e9, drawdown_alert=None, daily_loss_alert=None)
    frame = pd.concat([
        bars_frame(rows, start="2024-01-02 15:00", freq="1h"),
        bars_frame([(90, 90, 90, 90)], start="2024-01-03 15:00"),
    ])  # fmt: skip
    Engine(ScriptedStrategy({0: lambda ctx, bar: ctx.buy(ACME, 500)}), DataFrameFeed(frame, ACME),
           SimBroker(100_000), risk_monitors=[DailyLossLimit(1_000)],
           observers=[after]).run()  # fmt: skip
    snap = after.snapshot()
    assert snap["halts"] and snap["risk"]["halt"] is None
    assert check(snap, "risk")["status"] == "ok"
    assert check(snap, "risk")["detail"].startswith("drawdown ")


def test_monitor_data_rows_of_a_backtest() -> None:
    monitor = LiveMonitor(stale_after_s=1e9)
    run([(100, 101, 99, 100), (100, 102, 99, 101)], {}, monitor, freq="1h")
    (row,) = monitor.snapshot()["data"]
    assert row == {
        "instrument": "ACME.SMART", "bar_size": "1 hour",
        "last_bar_time": "2024-01-02T22:00:00Z", "last_bar_age_s": 0.0, "last_price": 101.0,
        "bid": None, "ask": None, "quote_time": None, "quote_age_s": None,
        "status": "fresh", "detail": "",
    }  # fmt: skip


def test_connection_monitor_keeps_each_farms_last_notice_by_name() -> None:
    monitor = ConnectionMonitor()
    monitor.on_code(2104, "Market data farm connection is OK:usfarm")
    monitor.on_code(2104, "Market data farm connection is OK:eufarm")
    monitor.on_code(2103, "Market data farm connection is broken:usfarm")
    monitor.on_code(2107, "HMDS data farm connection is inactive but should be available "
                          "upon demand.ushmds")  # fmt: skip
    monitor.on_code(2158)  # no text: named by its kind
    assert monitor.farm_status == {
        "usfarm": FarmStatus("usfarm", Farm.MARKET_DATA, False, 2103),
        "eufarm": FarmStatus("eufarm", Farm.MARKET_DATA, True, 2104),
        "ushmds": FarmStatus("ushmds", Farm.HISTORICAL, True, 2107),
        "security_definition": FarmStatus(
            "security_definition", Farm.SECURITY_DEFINITION, True, 2158
        ),
    }
    assert monitor.farms[Farm.MARKET_DATA] is False  # the kind's flag: the last notice's
