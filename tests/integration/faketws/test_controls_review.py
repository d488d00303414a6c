"""The dashboard's controls in combination (issue 21 review), on a live session of the fake TWS.

Each test drives a real run (LiveSession + FakeTWS over a socket) through the dashboard's HTTP
endpoints and checks the invariants an operator relies on: a position is closed once, not
twice; what the operator types never carries a secret into the run; a command is answered.
"""

from __future__ import annotations

import json
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from ibkrfw import OrderDenied, Stock
from ibkrfw.model.orders import OrderStatus, Side
from ibkrfw.monitoring import Dashboard, LiveMonitor, prometheus_text
from ibkrfw.risk import Protection, StopLoss
from ibkrfw.testing import FakeTWS, LiveSession, ScriptedStrategy, bars_frame

from .test_dashboard_controls import post as post_control

TOKEN = "review-t0ken-0123456789"


def post(dashboard: Dashboard, action: str, body: object = None) -> tuple[int, dict[str, Any]]:
    """POST /api/control/<action> with this file's token; the status and the JSON answer."""
    return post_control(dashboard, action, body, token=TOKEN)


def test_flatten_twice_before_the_first_fill_is_heard_closes_the_position_once(
    tmp_path: Path,
) -> None:
    # At IB a market order fills at once; its execution may reach the run after a second
    # flatten is asked. Cancelling the first closing order to send another would then sell
    # the position twice (a short as large as the long). The second flatten keeps it.
    strategy = ScriptedStrategy({0: lambda ctx, bar: ctx.buy(bar.instrument, 16)})
    monitor = LiveMonitor(stale_after_s=10 * 86_400, journal_dir=tmp_path)
    with (
        FakeTWS.from_sample(["ACME"]) as tws,
        Dashboard(monitor, port=0, token=TOKEN) as dashboard,
        LiveSession(
            strategy, tws, observers=[monitor], protection=Protection(StopLoss.percent(0.5))
        ) as session,
    ):
        engine = session.engine
        session.step(2)  # bar 0 buys 16, bar 1 fills it; the Protection's stop works
        portfolio = engine.portfolio
        assert portfolio is not None
        inst = next(iter(portfolio.positions))
        assert portfolio.quantity(inst) == 16
        status, first = post(dashboard, "flatten", {"confirm": "flatten"})
        assert status == 202 and "closing ACME.SMART 16" in first["detail"], first
        session.settle()
        tws.hold_acknowledgements()  # IB fills it, but the run does not hear so yet
        tws.step()
        status, second = post(dashboard, "flatten", {"confirm": "flatten"})
        assert status == 202, second
        assert "ACME.SMART SELL 16 by an earlier flatten's orders" in second["detail"], second
        assert "not sent again" in second["detail"]
        tws.release_acknowledgements()
        session.settle()
        session.step(2)
        assert portfolio.quantity(inst) == 0 and not portfolio.positions
        at_ib = [p.quantity for p in tws.market.portfolio.positions.values() if p.quantity]
        assert at_ib == []  # not short 16 at IB
        flattens = [o for o in engine.orders if o.request.tag == "flatten"]
        assert [o.status for o in flattens] == [OrderStatus.FILLED]
        fills = list(portfolio.fills)
        signed = sum((f.quantity if f.side is Side.BUY else -f.quantity for f in fills), Decimal(0))
        assert signed == 0 and len({f.fill_id for f in fills}) == len(fills)
        session.stop()


def _wait(condition: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_flatten_while_ib_is_unreachable_says_nothing_reached_ib_then_closes_once(
    tmp_path: Path,
) -> None:
    strategy = ScriptedStrategy({0: lambda ctx, bar: ctx.buy(bar.instrument, 16)})
    monitor = LiveMonitor(stale_after_s=10 * 86_400, journal_dir=tmp_path)
    with (
        FakeTWS.from_sample(["ACME"]) as tws,
        Dashboard(monitor, port=0, token=TOKEN) as dashboard,
        LiveSession(strategy, tws, observers=[monitor]) as session,
    ):
        engine = session.engine
        session.step(2)
        portfolio = engine.portfolio
        assert portfolio is not None
        inst = next(iter(portfolio.positions))
        tws.connectivity_lost()  # 1100: TWS is up, IB is not; orders are held
        assert _wait(lambda: dashboard.state()["connection"] != "connected")
        status, answer = post(dashboard, "flatten", {"confirm": "flatten"})
        assert status == 202, answer
        assert "closing ACME.SMART 16" in answer["detail"]
        assert "nothing has reached IB yet and the positions are not closed" in answer["detail"]
        # journalled (and alerted) so, before the answer came
        assert "nothing has reached IB yet" in dashboard.state()["controls"]["last"]["detail"]
        assert "nothing has reached IB yet" in (tmp_path / "controls.jsonl").read_text()
        status, answer = post(dashboard, "flatten", {"confirm": "flatten"})  # asked again
        assert status == 202 and "not sent again" in answer["detail"], answer
        tws.connectivity_restored(data_kept=True)
        assert _wait(lambda: dashboard.state()["connection"] == "connected")
        flat = False
        for _ in range(20):  # the held order goes out once the broker has released it
            session.step(1)
            if flat := _wait(lambda: portfolio.quantity(inst) == 0, timeout=0.2):
                break
        if not flat:
            raise AssertionError([(o.order_id, o.request.tag, o.status) for o in engine.orders])
        at_ib = [p.quantity for p in tws.market.portfolio.positions.values() if p.quantity]
        assert at_ib == []
        flattens = [o for o in engine.orders if o.request.tag == "flatten"]
        assert [o.status for o in flattens] == [OrderStatus.FILLED]
        session.stop()


def test_a_reason_is_printable_and_its_secrets_never_reach_the_run(tmp_path: Path) -> None:
    strategy = ScriptedStrategy(
        {
            0: lambda ctx, bar: ctx.buy(bar.instrument, 5),
            2: lambda ctx, bar: ctx.buy(bar.instrument, 5),
        }
    )
    monitor = LiveMonitor(stale_after_s=10 * 86_400, journal_dir=tmp_path)
    with (
        FakeTWS.from_sample(["ACME"]) as tws,
        Dashboard(monitor, port=0, token=TOKEN) as dashboard,
        LiveSession(strategy, tws, observers=[monitor]) as session,
    ):
        for reason in ("a\u2028b", "\u202eesrever", "bell\x7f", "tab\there"):
            status, answer = post(dashboard, "pause", {"reason": reason})
            assert status == 400, (reason, answer)
            assert "without control or invisible characters" in answer["detail"]
        status, answer = post(dashboard, "pause", {"reason": f"ünïcode ✓ key {TOKEN}"})
        assert status == 202, answer
        session.step(3)  # bars 0 and 2 buy: denied by the pause
        trading = session.engine.trading
        assert trading.state == "paused" and trading.reason.startswith("ünïcode ✓ key ")
        assert TOKEN not in trading.reason
        denied = [e for _, e in strategy.events if isinstance(e, OrderDenied)]
        assert len(denied) == 2 and all(TOKEN not in d.reason for d in denied)
        result = session.stop()
    everything = (tmp_path / "controls.jsonl").read_text() + json.dumps(dashboard.state())
    everything += " ".join(str(o.reason) for o in result.order_list if hasattr(o, "reason"))
    assert TOKEN not in everything


def test_concurrent_controls_are_each_answered_and_journalled_even_as_the_run_stops(
    tmp_path: Path,
) -> None:
    monitor = LiveMonitor(stale_after_s=10 * 86_400, journal_dir=tmp_path)
    answers: list[tuple[int, dict[str, Any]]] = []
    lock = threading.Lock()
    with (
        FakeTWS.from_sample(["ACME"]) as tws,
        Dashboard(monitor, port=0, token=TOKEN) as dashboard,
        LiveSession(ScriptedStrategy({}), tws, observers=[monitor]) as session,
    ):
        session.step(2)

        def hammer(worker: int) -> None:
            for i in range(6):
                action = ("pause", "resume", "cancel_all")[(worker + i) % 3]
                got = post(dashboard, action, {"reason": f"worker {worker} #{i}"})
                with lock:
                    answers.append(got)

        threads = [threading.Thread(target=hammer, args=(w,)) for w in range(6)]
        for thread in threads:
            thread.start()
        time.sleep(0.1)
        session.stop()  # while the threads still post
        for thread in threads:
            thread.join(30)
        assert not any(thread.is_alive() for thread in threads)
        status, answer = post(dashboard, "resume")
        assert status == 409, answer
        assert answer["detail"] == (
            "the run has stopped (stopped by Engine.stop()): it takes no more commands; start "
            "a new run to trade again"
        )
    assert len(answers) == 36
    codes = {code for code, _ in answers}
    assert codes <= {202, 409}, answers  # done, or refused because the run has ended
    accepted = [a for code, a in answers if code == 202]
    assert all(a["accepted"] for a in accepted)
    # every accepted command was carried out (or refused as the run ended) and journalled
    assert _wait(
        lambda: len((tmp_path / "controls.jsonl").read_text().splitlines()) == len(accepted)
    )


def test_cancel_all_with_the_protection_says_which_positions_it_leaves_bare(
    tmp_path: Path,
) -> None:
    strategy = ScriptedStrategy({0: lambda ctx, bar: ctx.buy(bar.instrument, 16)})
    monitor = LiveMonitor(stale_after_s=10 * 86_400, journal_dir=tmp_path)
    with (
        FakeTWS.from_sample(["ACME"]) as tws,
        Dashboard(monitor, port=0, token=TOKEN) as dashboard,
        LiveSession(
            strategy, tws, observers=[monitor], protection=Protection(StopLoss.percent(0.5))
        ) as session,
    ):
        session.step(2)
        status, answer = post(dashboard, "cancel_all")
        assert status == 202 and "kept 1 protective order(s)" in answer["detail"], answer
        status, answer = post(dashboard, "cancel_all", {"include_protection": True})
        assert status == 202, answer
        assert answer["detail"] == (
            "cancelling 1 working order(s), the protective ones among them: ACME.SMART stay "
            "without a stop-loss or target until the position changes"
        )
        session.settle()
        session.step(1)
        assert session.engine.orders.active() == []
        session.stop()


def test_metrics_say_whether_trading_is_paused(tmp_path: Path) -> None:
    monitor = LiveMonitor(stale_after_s=10 * 86_400, journal_dir=tmp_path)
    with (
        FakeTWS.from_sample(["ACME"]) as tws,
        Dashboard(monitor, port=0, token=TOKEN) as dashboard,
        LiveSession(ScriptedStrategy({}), tws, observers=[monitor]) as session,
    ):
        session.step(1)
        assert "\nibkrfw_trading_state 0.0\n" in prometheus_text(monitor.snapshot())
        assert post(dashboard, "pause")[0] == 202
        text = prometheus_text(monitor.snapshot())
        assert "\nibkrfw_trading_state 1.0\n" in text
        assert "\nibkrfw_health_status 0.0\n" in text  # a pause is not a health problem
        session.stop()
        assert "\nibkrfw_trading_state 3.0\n" in prometheus_text(monitor.snapshot())


def test_an_instrument_that_never_gets_a_bar_goes_stale(tmp_path: Path) -> None:
    acme, bolt = Stock("ACME"), Stock("BOLT")
    data = {
        acme: bars_frame([(10, 11, 9, 10)] * 10, start="2024-01-02"),
        bolt: bars_frame([(20, 21, 19, 20)] * 2, start="2024-03-01"),  # none for weeks
    }
    monitor = LiveMonitor(stale_after_s=3 * 86_400, journal_dir=tmp_path)

    def data_check() -> dict[str, Any]:
        checks = monitor.snapshot()["health"]["checks"]
        return next((c for c in checks if c["name"] == "data"), {"status": None})

    with FakeTWS(data=data) as tws:
        tws.step()  # the run starts on 2 January (its clock follows the replay)
        strategy = ScriptedStrategy({})
        with LiveSession(strategy, tws, instruments=[bolt], observers=[monitor]) as session:
            tws.step(1)  # the market moves on (ACME trades), BOLT's stays silent
            session.settle()
            assert _wait(lambda: data_check()["status"] == "ok"), data_check()  # not long
            tws.step(6)
            session.settle()
            assert _wait(lambda: data_check()["status"] == "degraded"), data_check()
            assert data_check()["detail"].startswith("BOLT.SMART stale: no new bar for ")
            rows = [(row["instrument"], row["status"]) for row in monitor.snapshot()["data"]]
            assert rows == [("BOLT.SMART", "no data")]
            session.stop()
