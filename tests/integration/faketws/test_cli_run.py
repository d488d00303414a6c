"""`ibkrfw run` against the fake TWS, in a real process, stopped by SIGTERM."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ibkrfw.testing import FakeTWS

WAIT = 30.0


def _run(tws: FakeTWS, tmp_path: Path, *options: str, extra: str = "") -> subprocess.Popen[str]:
    config = tmp_path / "ibkrfw.toml"
    config.write_text(
        "[ibkr]\n"
        f"port = {tws.port}\n"
        "client_id = 3\n"
        "[run]\n"
        'strategy = "sma_crossover"\n'
        'symbols = ["ACME"]\n'
        'bar_size = "5s"\n'
        "[run.parameters]\n"
        "fast = 2\n"
        "slow = 5\n" + extra
    )
    return subprocess.Popen(
        [sys.executable, "-m", "ibkrfw", "run", "--config", str(config),
         "--state-dir", str(tmp_path / "state"), *options],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


@contextlib.contextmanager
def _killed_on_failure(process: subprocess.Popen[str]) -> Iterator[subprocess.Popen[str]]:
    """Kill ``process`` if it is still running when the block ends (a failed assertion)."""
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def _sigterm(process: subprocess.Popen[str]) -> str:
    """Stop ``process`` as systemd would and return what it printed."""
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=WAIT)
    return out


def test_run_trades_paper_and_stops_on_sigterm(tmp_path: Path) -> None:
    with (
        FakeTWS.from_sample(["ACME"]) as tws,
        _killed_on_failure(_run(tws, tmp_path, "--cancel-on-stop")) as process,
    ):
        assert tws.wait_for(lambda: tws.messages("in", client_id=3, msg_id=50), WAIT)
        deadline = time.monotonic() + WAIT
        while not tws.messages("in", client_id=3, msg_id=3) and time.monotonic() < deadline:
            tws.step()
            time.sleep(0.02)
        assert tws.messages("in", client_id=3, msg_id=3), "no order was placed"
        out = _sigterm(process)
    assert process.returncode == 0, out
    assert "running MovingAverageCrossover(fast=2, slow=5" in out
    assert "SIGTERM: stopping" in out
    # the fake serves daily bars only: the 5-second warm-up history fails, loudly, not fatally
    assert "warm-up history could not be loaded" in out
    assert "ibkrfw: stopped after" in out
    assert (tmp_path / "state" / "order_ids.json").exists()


def test_a_live_account_is_refused_without_the_live_flag(tmp_path: Path) -> None:
    with FakeTWS.from_sample(["ACME"], account="U7654321") as tws:
        process = _run(tws, tmp_path)
        out, _ = process.communicate(timeout=WAIT)
    assert process.returncode == 2
    assert "live account, and the mode is paper" in out
    assert "[start_failed] ibkrfw could not start: ConfigError" in out  # alerted (log channel)


def test_run_serves_the_dashboard_and_sends_alerts(tmp_path: Path) -> None:
    import json
    import socket
    import threading
    import urllib.request
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    received: list[dict[str, object]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    hook = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    extra = (
        f'[[alerts.webhook]]\nurl = "http://127.0.0.1:{hook.server_address[1]}/alerts"\n'
        "[monitor]\nstale_after_s = 1e9\n"
    )
    try:
        with FakeTWS.from_sample(["ACME"]) as tws:
            tws.reject_next_order(201, "Order rejected - reason: no margin")
            process = _run(tws, tmp_path, "--dashboard", f"127.0.0.1:{port}", extra=extra)
            with _killed_on_failure(process):
                assert tws.wait_for(lambda: tws.messages("in", client_id=3, msg_id=50), WAIT)
                deadline = time.monotonic() + WAIT
                state: dict[str, object] = {}
                while time.monotonic() < deadline:
                    tws.step()
                    time.sleep(0.02)
                    try:
                        with urllib.request.urlopen(
                            f"http://127.0.0.1:{port}/api/state", timeout=5
                        ) as response:
                            state = json.loads(response.read())
                    except OSError:
                        continue
                    if state.get("positions") and received:
                        break
                assert state.get("positions"), state
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    assert b"ibkrfw_position_quantity" in r.read()
                out = _sigterm(process)
    finally:
        hook.shutdown()
        hook.server_close()
    assert process.returncode == 0, out
    assert f"dashboard on http://127.0.0.1:{port}/" in out
    assert any(a.get("kind") == "order_rejected" for a in received), received
    journal = (tmp_path / "state" / "alerts.jsonl").read_text()  # kept for the next run
    assert '"kind": "order_rejected"' in journal


def test_an_unexplained_position_is_refused_unless_adopted(tmp_path: Path) -> None:
    from ibkrfw.testing import LiveSession, ScriptedStrategy

    with FakeTWS.from_sample(["ACME"]) as tws:
        buy = ScriptedStrategy({0: lambda ctx, bar: ctx.buy(bar.instrument, 10)})
        with LiveSession(buy, tws, state_dir=tmp_path / "by-hand") as session:
            session.step(2)  # 10 ACME bought by another program: this run's journal knows none
            session.stop()
        refused = _run(tws, tmp_path)
        out, _ = refused.communicate(timeout=WAIT)
        assert refused.returncode == 2, out
        assert "the journal holds 0, the account 10" in out

        with _killed_on_failure(_run(tws, tmp_path, "--adopt")) as adopted:
            assert tws.wait_for(lambda: tws.messages("in", client_id=3, msg_id=50), WAIT)
            out = _sigterm(adopted)
    assert adopted.returncode == 0, out
    assert "ibkrfw: stopped after" in out


def test_sandbox_fills_in_the_simulator_with_the_costs_of_the_sandbox_table(
    tmp_path: Path,
) -> None:
    import json
    import socket
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    extra = (
        "[sandbox]\ncash = 50000\ncommission = 0.01\nslippage_bps = 10\n"
        "[monitor]\nstale_after_s = 1e9\n"
    )
    with FakeTWS.from_sample(["ACME"]) as tws:
        process = _run(tws, tmp_path, "--sandbox", "--dashboard", f"127.0.0.1:{port}", extra=extra)
        with _killed_on_failure(process):
            assert tws.wait_for(lambda: tws.messages("in", client_id=3, msg_id=50), WAIT)
            deadline = time.monotonic() + WAIT
            state: dict[str, Any] = {}
            while time.monotonic() < deadline and not state.get("fills"):
                tws.step()
                time.sleep(0.02)
                with contextlib.suppress(OSError):
                    url = f"http://127.0.0.1:{port}/api/state"
                    with urllib.request.urlopen(url, timeout=5) as response:
                        state = json.loads(response.read())
            out = _sigterm(process)
    assert process.returncode == 0, out
    assert "sandbox (IB data, simulated fills)" in out
    assert not tws.messages("in", client_id=3, msg_id=3)  # no order went to the "TWS"
    fill = state["fills"][0]
    assert fill["commission"] == pytest.approx(0.01 * fill["quantity"])
    worse = 1.001 if fill["side"] == "BUY" else 0.999  # a bar's open, 10 bps worse, to a tick
    opens = tws.market.arrays[next(iter(tws.market.arrays))].open
    assert any(abs(fill["price"] - float(o) * worse) <= 0.0101 for o in opens)
    assert state["cash"] < 50_000  # the [sandbox] table's cash, not the default 100000
    assert "fills (commissions " in out


def test_run_sends_a_days_summary_once_across_restarts(tmp_path: Path) -> None:
    import json
    import socket
    import threading
    import urllib.request
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from ibkrfw import Engine, Stock
    from ibkrfw.monitoring import DailySummary, LiveMonitor
    from ibkrfw.sim import DataFrameFeed, SimBroker
    from ibkrfw.testing import ScriptedStrategy, bars_frame

    # an earlier run was up on Wednesday 3 January 2024 until 12:30 New York: it stopped
    # (or crashed) before its summary time, leaving the day in progress in the state directory
    monitor = LiveMonitor(stale_after_s=1e9)
    earlier = DailySummary(monitor, directory=tmp_path / "state" / "summaries")
    rows = [(100.0, 100.0, 100.0, 100.0)] * 4
    frame = bars_frame(rows, start="2024-01-03 09:30", freq="1h", tz="America/New_York")
    Engine(ScriptedStrategy({}), DataFrameFeed(frame, Stock("ACME")), SimBroker(),
           observers=[monitor, earlier]).run()  # fmt: skip
    assert earlier.sent == []

    received: list[dict[str, Any]] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    hook = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # summaries at midnight: no day of the real clock is ever "before its time" here, so the
    # only summary due is the earlier run's Wednesday, late
    extra = (
        f'[[alerts.webhook]]\nurl = "http://127.0.0.1:{hook.server_address[1]}/alerts"\n'
        '[summary]\nat = "00:00"\n[monitor]\nstale_after_s = 1e9\n'
    )
    try:
        for _ in ("the next run", "a restart of it"):
            with FakeTWS.from_sample(["ACME"]) as tws:
                process = _run(tws, tmp_path, "--sandbox", "--dashboard", f"127.0.0.1:{port}",
                               extra=extra)  # fmt: skip
                with _killed_on_failure(process):
                    deadline = time.monotonic() + WAIT
                    state: dict[str, Any] = {}
                    # bars handled: the loop has beaten (its first heartbeat comes before them)
                    while time.monotonic() < deadline and not state.get("bars"):
                        tws.step()
                        time.sleep(0.02)
                        with contextlib.suppress(OSError):
                            url = f"http://127.0.0.1:{port}/api/state"
                            with urllib.request.urlopen(url, timeout=5) as response:
                                state = json.loads(response.read())
                    assert state.get("bars"), state
                    out = _sigterm(process)
            assert process.returncode == 0, out
    finally:
        hook.shutdown()
        hook.server_close()
    summaries = [a for a in received if a.get("kind") == "daily_summary"]
    assert [a["title"] for a in summaries] == ["daily summary 2024-01-03 (late): P&L +0.00"]
    assert summaries[0]["message"].startswith("Late: no run was up at")
    saved = json.loads((tmp_path / "state" / "summaries" / "summary-2024-01-03.json").read_text())
    assert saved["late"] and saved["as_of"] == "2024-01-03T12:30-05:00"


def _step_until(tws: FakeTWS, done: Any) -> bool:
    deadline = time.monotonic() + WAIT
    while not done() and time.monotonic() < deadline:
        tws.step()
        time.sleep(0.02)
    return bool(done())


def test_a_risk_rule_of_the_risk_table_denies_the_strategys_orders(tmp_path: Path) -> None:
    extra = "[risk]\nmax_order_value = 1.0\nmax_drawdown = 0.5\n"
    with FakeTWS.from_sample(["ACME"]) as tws:
        process = _run(tws, tmp_path, extra=extra)
        with _killed_on_failure(process):
            assert tws.wait_for(lambda: tws.messages("in", client_id=3, msg_id=50), WAIT)
            tws.step(60)  # the crossover decides to buy at least once on the sample's bars
            time.sleep(1.0)
            out = _sigterm(process)
    assert process.returncode == 0, out
    assert "denied by MaxOrderNotional" in out, out
    assert "over the limit of 1.00 per order" in out
    assert not tws.messages("in", client_id=3, msg_id=3)  # no order reached the "TWS"


def test_the_protection_table_puts_a_stop_loss_on_each_position(tmp_path: Path) -> None:
    from ibkrfw import OrderType

    extra = "[protection]\nstop_loss_percent = 0.5\n"

    def stops() -> list[Any]:
        with tws.market.lock:
            orders = tws.market.orders.active()
        return [o for o in orders if o.request.order_type is OrderType.STOP]

    with FakeTWS.from_sample(["ACME"]) as tws:
        process = _run(tws, tmp_path, extra=extra)
        with _killed_on_failure(process):
            assert tws.wait_for(lambda: tws.messages("in", client_id=3, msg_id=50), WAIT)
            assert _step_until(tws, lambda: bool(stops())), "no stop-loss was placed"
            out = _sigterm(process)
    assert process.returncode == 0, out
    (stop,) = stops()  # GTC: it stays at IB after the run (no --cancel-on-stop)
    assert stop.request.tag.endswith("stop-loss")
