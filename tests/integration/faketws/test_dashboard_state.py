"""What /api/state and /healthz say of a live session against the fake TWS (issue 21).

A drawdown halt, a disconnection, IB's farm notices, daily bars replayed, a run on the wall
clock replaying bars of years ago: checked over HTTP, as a supervisor or the page reads them.
"""

from __future__ import annotations

import datetime as dt
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from ibkrfw import Stock
from ibkrfw.core.clock import LiveClock
from ibkrfw.monitoring import Alerter, Dashboard, LiveMonitor, prometheus_text
from ibkrfw.risk import MaxDrawdownKillSwitch
from ibkrfw.testing import FakeTWS, LiveSession, RecordingChannel, ScriptedStrategy, bars_frame

ACME = Stock("ACME")


def get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def until(monitor: LiveMonitor, test: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The monitor's snapshot once ``test`` holds of it (the heartbeat publishes it)."""
    deadline = time.monotonic() + 10
    while True:
        snap = monitor.snapshot()
        if test(snap) or time.monotonic() > deadline:
            return snap
        time.sleep(0.05)


def check(snap: dict[str, Any], name: str) -> dict[str, Any]:
    checks = snap["health"]["checks"] if "health" in snap else snap["checks"]  # or /healthz
    return next(c for c in checks if c["name"] == name)


def reconciles(snap: dict[str, Any], starting_equity: float) -> None:
    """Realised + unrealised - commissions is what equity gained; trades sum to realised."""
    pnl = snap["pnl"]
    gained = snap["equity"] - starting_equity
    assert pnl["realized"] + pnl["unrealized"] - pnl["commission"] == pytest.approx(
        gained, abs=0.011
    )
    closed = [t["pnl"] for t in snap["trades"] if not t["open"]]
    assert sum(closed) == pytest.approx(pnl["realized"], abs=0.011)


def test_a_drawdown_halt_fails_the_health_and_healthz_answers_503() -> None:
    # 9,000 bought at 100 of a 1M account; daily closes fall to 80: 18 % below the peak
    rows = [(100, 100, 100, 100)] * 3 + [(c, c, c, c) for c in (97, 93, 86, 80, 80, 80)]
    frame = bars_frame(rows, start="2024-01-02 21:00", freq="1D")
    monitor = LiveMonitor(stale_after_s=10 * 86_400, drawdown_alert=0.1)
    strategy = ScriptedStrategy({0: lambda ctx, bar: ctx.buy(ACME, 9_000)})
    with FakeTWS(data={ACME: frame}) as tws, Dashboard(monitor, port=0) as dashboard:
        session = LiveSession(
            strategy, tws, risk_monitors=[MaxDrawdownKillSwitch(0.15)], observers=[monitor]
        )
        with session:
            session.step(4)  # bought at 100, marked at 97
            snap = until(monitor, lambda s: s["bars"] >= 4 and s["positions"])
            assert snap["mode"] == "paper" and snap["account"] == "DU1234567"
            assert snap["currency"] == "USD"
            assert snap["risk"]["status"] == "ok" and check(snap, "risk")["status"] == "ok"
            assert snap["risk"]["drawdown_limit"] == 0.15
            # the replay's clock: the day of the last bar, and today's P&L from the day before
            assert snap["clock"]["source"] == "engine"
            assert snap["clock"]["day"] == snap["pnl"]["day"] == "2024-01-05"
            assert snap["pnl"]["today"] == pytest.approx(-27_000.0, abs=1)  # 9,000 x (97 - 100)
            assert snap["pnl"]["today"] == pytest.approx(
                snap["equity"] - snap["pnl"]["day_start_equity"], abs=0.011
            )
            session.step(2)  # 93, then 86: 12.6 % down, past the alert level, near the limit
            snap = until(monitor, lambda s: s["bars"] >= 6)
            assert snap["risk"]["status"] == "degraded", snap["risk"]
            assert "MaxDrawdownKillSwitch: 8" in check(snap, "risk")["detail"]  # 80 % and more
            assert "past the alert level of 10%" in check(snap, "risk")["detail"]
            status, health = get(dashboard.url + "healthz")
            assert status == 200 and health["status"] == "degraded"
            session.step(1)  # 80: 18 % down, the kill switch halts and flattens
            snap = until(monitor, lambda s: s["halts"])
            status, health = get(dashboard.url + "healthz")
            assert status == 503 and health["status"] == "failing"
            risk = check(health, "risk")
            assert risk["status"] == "failing"
            assert risk["detail"].startswith("trading halted by MaxDrawdownKillSwitch at ")
            assert "for the rest of the run: equity" in risk["detail"]
            session.step(1)  # the flattening sale fills at the next open
            until(monitor, lambda s: not s["positions"])
            status, state = get(dashboard.url + "api/state")
            assert state["risk"]["halt"]["rule"] == "MaxDrawdownKillSwitch"
            assert state["risk"]["status"] == "failing"
            assert "ibkrfw_risk_status 2.0" in prometheus_text(state)
            # the round trip: bought 9,000 at 100, sold at the next open (80)
            trade = state["trades"][0]
            assert (trade["side"], trade["quantity"], trade["open"]) == ("long", 9_000.0, False)
            assert trade["pnl"] == pytest.approx(9_000 * (trade["exit_price"] - 100), abs=0.011)
            reconciles(state, 1_000_000.0)
            session.stop()


def test_disconnections_farms_and_reconnection_in_the_connection_detail() -> None:
    monitor = LiveMonitor(stale_after_s=10 * 86_400)
    with (
        FakeTWS.from_sample(["ACME"]) as tws,
        LiveSession(ScriptedStrategy({}), tws, observers=[monitor]) as session,
    ):
        session.step(1)
        snap = until(monitor, lambda s: len(s["connection_detail"]["farms"]) == 3)
        detail = snap["connection_detail"]
        assert detail["state"] == "connected" and not detail["reconnecting"]
        assert detail["code"] != 2106  # a farm's notice is not the connection's reason
        assert {(f["name"], f["kind"], f["ok"], f["code"]) for f in detail["farms"]} == {
            ("usfarm", "market data", True, 2104),
            ("ushmds", "historical data", True, 2106),
            ("secdefnj", "security definitions", True, 2158),
        }
        tws.send_error(2103, "Market data farm connection is broken:usfarm")
        tws.connectivity_lost()
        snap = until(monitor, lambda s: s["connection"] == "ib_unreachable")
        detail = snap["connection_detail"]
        assert detail["code"] == 1100 and detail["since"] == snap["time"]
        assert detail["reason"] == "code 1100: connectivity between IB and TWS lost"
        assert not detail["reconnecting"]  # TWS reconnects to IB, not the adapter
        assert ("usfarm", False, 2103) in {(f["name"], f["ok"], f["code"]) for f in detail["farms"]}
        assert check(snap, "connection")["status"] == "degraded"
        tws.connectivity_restored(data_kept=True)
        snap = until(monitor, lambda s: s["connection"] == "connected")
        assert snap["connection_detail"]["code"] == 1102
        tws.drop_connections()
        snap = until(monitor, lambda s: s["connection"] == "disconnected")
        assert snap["connection_detail"]["reconnecting"] is True
        assert snap["connection_detail"]["reason"] == "socket closed"
        snap = until(monitor, lambda s: s["connection"] == "connected")
        assert snap["connection_detail"]["reconnecting"] is False
        session.stop()


def test_a_run_on_the_wall_clock_replaying_old_bars_keeps_one_clock() -> None:
    # As `ibkrfw run` against `ibkrfw fake-tws`: the engine on the wall clock, the bars of
    # 2017. Every time is the wall clock's; a bar's age counts from when it came, so the
    # data is fresh while bars come and goes stale seconds (not years) after they stop.
    inbox = RecordingChannel()
    alerter = Alerter([inbox]).start()
    monitor = LiveMonitor(alerter=alerter, stale_after_s=1.0, quiet=())
    strategy = ScriptedStrategy({0: lambda ctx, bar: ctx.buy(bar.instrument, 100)})
    with FakeTWS.from_sample(["ACME"]) as tws:
        session = LiveSession(strategy, tws, observers=[monitor])
        session.engine.clock = LiveClock()  # the clock of `ibkrfw run`
        with session:
            session.step(5)
            snap = until(monitor, lambda s: s["bars"] >= 5 and s["fills"])
            now = dt.datetime.now(dt.UTC)
            assert snap["time"].startswith(now.strftime("%Y-%m-%d")) and snap["time"][-1] == "Z"
            assert snap["clock"]["day"] == snap["pnl"]["day"]
            assert snap["clock"]["zone"] == "America/New_York"
            (row,) = snap["data"]
            # what the feed asks IB for: 5-second bars (the fake replays a day in each)
            assert row["instrument"] == "ACME.SMART" and row["bar_size"] == "5 secs"
            assert row["last_bar_time"] < "2020"  # the bar's own time: the replayed data's
            assert row["last_bar_age_s"] < 5 and row["status"] == "fresh"
            assert row["last_price"] is not None
            fill = snap["fills"][0]
            assert fill["order"] == 1 and fill["time"].startswith(now.strftime("%Y-%m-%d"))
            assert fill["exec_time"] < "2020"  # as the fake stamps it: the replay's time
            # every bar replayed today (on the wall clock): today's P&L is all the run's
            assert snap["pnl"]["day_start_equity"] == 1_000_000.0
            assert snap["pnl"]["today"] == pytest.approx(snap["equity"] - 1_000_000.0, abs=0.011)
            reconciles(snap, 1_000_000.0)
            snap = until(monitor, lambda s: s["data"][0]["status"] == "stale")
            row = snap["data"][0]
            assert 1 <= row["last_bar_age_s"] < 10, row
            assert check(snap, "data")["status"] == "degraded"
            session.stop()
    alerter.flush()
    stale = [a for a in inbox.alerts if a.kind == "stale_data"]
    assert stale and stale[0].title.startswith("no new bar of ACME.SMART for ")
    assert stale[0].title.endswith(" s")  # seconds, not 4075202 min
    assert abs(stale[0].ts_ns / 1e9 - time.time()) < 60  # stamped with the engine's clock
    alerter.stop()


def test_quotes_and_trades_of_a_live_feed_in_the_data_rows() -> None:
    # IB's top of book and last trade, kept per instrument as they come (no snapshot each)
    import threading

    from ibkrfw import Engine
    from ibkrfw.ibkr import IBClient, IBKRBroker, IBKRConfig, IBKRDataFeed

    monitor = LiveMonitor(stale_after_s=10 * 86_400)
    with FakeTWS.from_sample(["ACME"]) as tws:
        (acme,) = list(tws.market.arrays)
        client = IBClient(IBKRConfig(port=tws.port))
        feed = IBKRDataFeed([acme], client=client, bar_size=None, quotes=True)
        engine = Engine(
            ScriptedStrategy({}), feed, IBKRBroker(client=client), observers=[monitor],
            tune_gc=False,
        )  # fmt: skip
        runner = threading.Thread(target=engine.run)
        runner.start()
        try:
            assert tws.wait_for(lambda: tws.messages("in", client_id=1, msg_id=1), 10)
            tws.step(3)
            snap = until(monitor, lambda s: s["bars"] >= 3 and s["data"][0]["bid"] is not None)
        finally:
            engine.stop()
            runner.join(10)
        closes = [float(c) for c in tws.market.arrays[acme].close[:3]]
    (row,) = snap["data"]
    assert row["bid"] < row["ask"] and row["quote_time"] and row["quote_age_s"] < 5
    assert row["last_price"] == closes[-1]  # the fake prints each bar's close as a trade
    wall = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    assert row["status"] == "fresh" and snap["time"][:10] == wall  # a LiveClock: the wall's
    assert snap["mode"] == "paper" and snap["account"] == "DU1234567"
