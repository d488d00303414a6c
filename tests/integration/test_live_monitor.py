"""LiveMonitor's checks and alerts, driven by backtests and by hand-made events."""

from __future__ import annotations

import pandas as pd
import pytest

from ibkrfw import ConnectionChanged, Engine, Order, Reconciled, Stock
from ibkrfw.monitoring import Alerter, LiveMonitor, prometheus_text
from ibkrfw.risk import MaxDrawdownKillSwitch
from ibkrfw.sim import DataFrameFeed, SimBroker
from ibkrfw.testing import RecordingBroker, RecordingChannel, ScriptedStrategy, bars_frame

ACME = Stock("ACME")


def run(rows, actions, monitor: LiveMonitor, broker=None, **kw):
    feed = DataFrameFeed(bars_frame(rows, start="2024-01-02 15:00", freq="1h"), ACME)
    broker = broker or SimBroker(10_000, account="cash")  # refuses what the cash cannot pay for
    return Engine(ScriptedStrategy(actions), feed, broker, observers=[monitor], **kw).run()


def alerts_of(monitor: LiveMonitor, inbox: RecordingChannel) -> list[tuple[str, str]]:
    assert monitor.alerter is not None
    monitor.alerter.flush()
    return [(a.kind, a.title) for a in inbox.alerts]


def test_a_halt_a_drawdown_and_a_daily_loss_raise_alerts() -> None:
    inbox = RecordingChannel()
    monitor = LiveMonitor(alerter=Alerter([inbox]).start(), drawdown_alert=0.1,
                          daily_loss_alert=0.05, stale_after_s=10 * 86_400)  # fmt: skip
    rows = [(100, 100, 100, 100)] * 3 + [(80, 80, 80, 80)] * 3
    result = run(rows, {0: lambda c, b: c.buy(ACME, 90)}, monitor,
                 risk_monitors=[MaxDrawdownKillSwitch(0.15)])  # fmt: skip
    kinds = [k for k, _ in alerts_of(monitor, inbox)]
    # the halt is decided by the monitors of the time stamp, before the heartbeat's checks
    assert kinds == ["risk_halt", "drawdown", "daily_loss"]
    assert result.halts and monitor.snapshot()["halts"][0]["rule"] == "MaxDrawdownKillSwitch"
    snap = monitor.snapshot()
    assert snap["status"] == "stopped" and snap["health"]["status"] == "failing"
    assert snap["order_counts"]["filled"] == 2  # the buy and the flattening sale
    assert len(snap["equity_curve"]) == 6
    # limits used: the kill switch's drawdown (18 % of the 15 % allowed)
    assert snap["limits"] == [{"rule": "MaxDrawdownKillSwitch", "measure": "drawdown",
                               "used": 0.18, "limit": 0.15, "share": 1.2}]  # fmt: skip
    assert 'ibkrfw_limit_usage_ratio{rule="MaxDrawdownKillSwitch",measure="drawdown"} 1.2' in (
        prometheus_text(snap)
    )


def test_limits_used_by_exposure_margin_and_daily_loss() -> None:
    from ibkrfw.risk import DailyLossLimit, ExposureLimit, MarginCheck

    monitor = LiveMonitor(stale_after_s=1e9)
    rows = [(100, 100, 100, 100)] * 3
    run(rows, {0: lambda c, b: c.buy(ACME, 50)}, monitor,
        risk_rules=[ExposureLimit(max_leverage=2.0, max_gross=20_000), MarginCheck()],
        risk_monitors=[DailyLossLimit(percent=0.05)])  # fmt: skip
    used = {
        (u["rule"], u["measure"]): (u["used"], u["limit"]) for u in monitor.snapshot()["limits"]
    }
    assert used[("ExposureLimit", "gross exposure")] == (5_000.0, 20_000.0)
    assert used[("ExposureLimit", "leverage")] == (0.5, 2.0)
    assert used[("MarginCheck", "initial margin")] == (2_500.0, 10_000.0)
    assert used[("DailyLossLimit", "daily loss")] == (0.0, 500.0)


def test_rejections_and_a_failed_run_are_alerted() -> None:
    inbox = RecordingChannel()
    monitor = LiveMonitor(alerter=Alerter([inbox]).start(), stale_after_s=10 * 86_400)
    rows = [(100, 100, 100, 100)] * 4

    def boom(ctx, bar):  # type: ignore[no-untyped-def]
        raise ZeroDivisionError("the strategy divided by zero")

    broker = RecordingBroker(SimBroker(), reject=lambda order: "201: no margin")
    with pytest.raises(ZeroDivisionError):
        run(rows, {0: lambda c, b: c.buy(ACME, 1_000), 2: boom}, monitor, broker)
    got = alerts_of(monitor, inbox)
    assert got[0][0] == "order_rejected" and got[0][1] == "order 1 rejected"
    assert got[-1] == ("strategy_error", "the run stopped: ZeroDivisionError")


def test_a_rejected_exit_is_critical_past_the_cap_and_a_rejected_entry_a_warning() -> None:
    inbox = RecordingChannel()
    alerter = Alerter([inbox], max_per_hour=1).start()
    monitor = LiveMonitor(alerter=alerter, stale_after_s=10 * 86_400)
    rows = [(100, 100, 100, 100)] * 6
    sell = lambda c, b: c.sell(ACME, 20)  # noqa: E731  # long 10: IB's cash account refuses

    def reject(order: Order) -> str | None:
        if order.quantity == 20:
            return "201: a cash account cannot sell short"
        return "201: no cash for it" if order.quantity == 1_000 else None

    broker = RecordingBroker(SimBroker(), reject=reject)
    run(rows, {0: lambda c, b: c.buy(ACME, 10), 2: sell, 3: sell,
               4: lambda c, b: c.buy(ACME, 1_000)}, monitor, broker)  # fmt: skip
    assert alerter.flush()
    got = [(a.kind, a.severity, a.title) for a in inbox.alerts]
    # the exit's rejection goes out; the same again (a retry) is a repeat; the entry's is
    # held back by the spent hour, which the notice says
    assert got == [
        ("order_rejected", "critical", "order 2 rejected"),
        ("alerts_capped", "warning", "alert cap of 1 an hour reached"),
    ]
    assert alerter.suppressed == 2


class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_disconnections_alert_after_a_while_but_not_in_the_nightly_reset() -> None:
    inbox = RecordingChannel()
    wall = _Clock()
    monitor = LiveMonitor(alerter=Alerter([inbox]).start(), disconnect_after_s=120,
                          stale_after_s=1e9, wall_clock=wall)  # fmt: skip
    engine = Engine(ScriptedStrategy({}), DataFrameFeed(bars_frame([(1, 1, 1, 1)]), ACME),
                    SimBroker())  # fmt: skip
    engine.run()  # books and a portfolio to look at
    ns = lambda text: pd.Timestamp(text, tz="America/New_York").value  # noqa: E731

    def at(text: str) -> None:
        engine.clock.advance_to(ns(text))  # type: ignore[attr-defined]

    at("2024-03-05 10:00")
    monitor.on_event(engine, ConnectionChanged(ts_ns=ns("2024-03-05 10:00"), state="disconnected",
                                               reason="socket closed"))  # fmt: skip
    monitor.on_heartbeat(engine, ns("2024-03-05 10:01"))
    assert monitor.health().status == "degraded"  # down, not for long yet
    monitor.on_heartbeat(engine, ns("2024-03-05 10:03"))
    assert alerts_of(monitor, inbox) == [("disconnected", "IB disconnected for 3 min")]
    at("2024-03-05 10:03")
    assert [c.status for c in monitor.health().checks if c.name == "connection"] == ["failing"]
    monitor.on_event(engine, ConnectionChanged(ts_ns=ns("2024-03-05 10:04"), state="connected",
                                               reason="reconnected"))  # fmt: skip
    assert alerts_of(monitor, inbox)[-1] == ("reconnected", "IB connection back")
    # the nightly reset: 00:20 to 01:40 New York raises nothing
    inbox.alerts.clear()
    at("2024-03-06 00:20")
    monitor.on_event(engine, ConnectionChanged(ts_ns=ns("2024-03-06 00:20"), state="disconnected",
                                               reason="reset"))  # fmt: skip
    monitor.on_heartbeat(engine, ns("2024-03-06 01:40"))
    assert alerts_of(monitor, inbox) == []
    # ... unless it lasts past the window by the tolerance
    monitor.on_heartbeat(engine, ns("2024-03-06 01:48"))
    assert [k for k, _ in alerts_of(monitor, inbox)] == ["disconnected"]
    # a report stamped before the last one applied (another thread's, late) is ignored
    late = ConnectionChanged(ts_ns=ns("2024-03-06 01:10"), state="connecting", reason="late")
    monitor.on_event(engine, ConnectionChanged(ts_ns=ns("2024-03-06 01:50"), state="connected",
                                               reason="back"))  # fmt: skip
    monitor.on_event(engine, late)
    assert [c.status for c in monitor.health().checks if c.name == "connection"] == ["ok"]
    # the heartbeat check uses the wall clock
    wall.t = 100.0
    assert [c.status for c in monitor.health().checks if c.name == "heartbeat"] == ["failing"]


def test_reconciliation_differences_and_the_disk(tmp_path) -> None:
    inbox = RecordingChannel()
    monitor = LiveMonitor(alerter=Alerter([inbox]).start(), journal_dir=tmp_path,
                          min_free_mb=1e12, stale_after_s=10 * 86_400)  # fmt: skip
    engine = Engine(ScriptedStrategy({}), DataFrameFeed(bars_frame([(1, 1, 1, 1)]), ACME),
                    SimBroker())  # fmt: skip
    engine.run()
    monitor.on_event(engine, Reconciled(ts_ns=0, differences=("ACME: journal 0, account 10",),
                                        resolution="refused"))  # fmt: skip
    health = monitor.health()
    checks = {c.name: c for c in health.checks}
    assert checks["reconciliation"].status == "failing"
    assert checks["disk"].status == "failing" and "MB free" in checks["disk"].detail
    assert health.status == "failing"
    assert alerts_of(monitor, inbox) == [("reconciliation", "reconciliation: refused")]
    text = prometheus_text(monitor.snapshot())
    assert "ibkrfw_health_status 2.0" in text and "# TYPE ibkrfw_equity gauge" in text


def test_the_daily_summary_is_sent_and_saved_once_a_day(tmp_path) -> None:
    import json

    from ibkrfw.monitoring import DailySummary

    inbox = RecordingChannel()
    alerter = Alerter([inbox]).start()
    monitor = LiveMonitor(alerter=alerter, stale_after_s=1e9, drawdown_alert=None,
                          daily_loss_alert=None)  # fmt: skip
    summary = DailySummary(monitor, alerter=alerter, at="15:00", directory=tmp_path)
    # hourly bars Friday 5 January 2024, 09:30 to 16:30 New York, then Monday the 8th
    closes = [100.0 + i for i in range(8)]
    frames = [bars_frame([(c, c, c, c) for c in closes], start=f"2024-01-0{d} 14:30", freq="1h")
              for d in (5, 8)]  # fmt: skip
    frame = pd.concat(frames)
    strategy = ScriptedStrategy({0: lambda c, b: c.buy(ACME, 10)})
    Engine(strategy, DataFrameFeed(frame, ACME), SimBroker(10_000),
           observers=[monitor, summary]).run()  # fmt: skip
    assert [s["date"] for s in summary.sent] == ["2024-01-05", "2024-01-08"]
    first = summary.sent[0]
    assert first["fills_today"] == 1 and first["positions"][0]["quantity"] == 10.0
    assert first["pnl_today"] == pytest.approx(10 * 5.0)  # bought at 101, marked at 106 at 15:30
    sent = [a for a in inbox.alerts if a.kind == "daily_summary"] if alerter.flush() else []
    # Monday's P&L counts from Friday's close (107), as IB's daily P&L: 106 at 15:30 is -10
    assert [a.title for a in sent] == [
        "daily summary 2024-01-05: P&L +50.00", "daily summary 2024-01-08: P&L -10.00",
    ]  # fmt: skip
    saved = json.loads((tmp_path / "summary-2024-01-05.json").read_text())
    assert saved["fills_today"] == 1
    assert "P&amp;L today: 50.00" in (tmp_path / "summary-2024-01-05.html").read_text()


def test_a_position_left_without_its_stop_is_a_critical_alert() -> None:
    from ibkrfw.risk import Protection, StopLoss

    inbox = RecordingChannel()
    monitor = LiveMonitor(alerter=Alerter([inbox]).start(), stale_after_s=10 * 86_400)
    broker = RecordingBroker(
        SimBroker(), reject=lambda o: "201: no permissions" if o.request.tag else None
    )
    rows = [(100, 100, 100, 100)] * 6
    run(rows, {0: lambda c, b: c.buy(ACME, 10)}, monitor, broker,
        protection=Protection(StopLoss.fixed(5)))  # fmt: skip
    assert monitor.alerter is not None
    monitor.alerter.flush()
    (alert,) = [a for a in inbox.alerts if a.kind == "protection_failed"]
    assert (alert.title, alert.severity) == ("ACME.SMART is without its stop-loss", "critical")
    assert "rejected 3 times in a row; last: 201: no permissions" in alert.message


def test_reconciliation_warnings_are_alerted_once_and_degrade_the_health() -> None:
    from ibkrfw import OrderRejected

    inbox = RecordingChannel()
    monitor = LiveMonitor(alerter=Alerter([inbox]).start(), stale_after_s=10 * 86_400)
    engine = Engine(ScriptedStrategy({}), DataFrameFeed(bars_frame([(1, 1, 1, 1)]), ACME),
                    SimBroker())  # fmt: skip
    engine.run()
    lost = "lost: TWS never received IB order id 3 (orderRef ibkrfw:3); it was released"
    monitor.on_event(engine, OrderRejected(ts_ns=0, order_id=1, reason=lost))
    warning = f"order 1 (BUY 10 ACME.SMART) {lost}"
    monitor.on_event(engine, Reconciled(ts_ns=0, differences=(), warnings=(warning,)))
    checks = {c.name: c for c in monitor.health().checks}
    assert checks["reconciliation"].status == "degraded"
    assert "lost: TWS never received IB order id 3" in checks["reconciliation"].detail
    assert alerts_of(monitor, inbox) == [
        ("reconciliation_warning", "reconciliation: 1 warning(s)")
    ]  # the lost order's rejection is not alerted a second time
    assert [a.severity for a in inbox.alerts] == ["critical"]
