"""`ibkrfw run` against the fake TWS's replayed history: the one clock of the run (issue 21).

The fake replays old daily bars as they come in, while the run's clock is the wall clock. A
risk monitor's halt must live on the run's clock too: stamped now, in force until its end
on that clock, and reported by /healthz (503) all that time; not stamped with a bar's old
date and over as soon as it began.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from ibkrfw.testing import FakeTWS

WAIT = 30.0
TOKEN = "review-cli-t0ken-0123456789"
STRATEGY = '''
import attrs
from ibkrfw import Bar, Context, Strategy


@attrs.define
class BuyBig(Strategy):
    """Hold 10,000 shares of each symbol: the replay's first days lose money."""

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        if ctx.position(bar.instrument).quantity == 0 and not ctx.open_orders(bar.instrument):
            ctx.buy(bar.instrument, 10_000)
'''


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get(url: str) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url)
    request.add_header("Authorization", f"Bearer {TOKEN}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _when(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_a_daily_loss_halt_on_replayed_bars_lasts_on_the_wall_clock(tmp_path: Path) -> None:
    (tmp_path / "buy_big.py").write_text(STRATEGY)
    port = _free_port()
    base = f"http://127.0.0.1:{port}/"
    with FakeTWS.from_sample(["ACME", "BOLT"]) as tws:
        config = tmp_path / "ibkrfw.toml"
        config.write_text(
            f'[ibkr]\nport = {tws.port}\nclient_id = 5\n[run]\nstrategy = "buy_big:BuyBig"\n'
            'symbols = ["ACME", "BOLT"]\nbar_size = "5s"\n[monitor]\nstale_after_s = 1e9\n'
            "[risk]\ndaily_loss_percent = 0.002\n"
        )
        env = {
            **os.environ,
            "IBKRFW_DASHBOARD_TOKEN": TOKEN,
            "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "ibkrfw", "run", "--config", str(config),
             "--state-dir", str(tmp_path / "state"), "--dashboard", f"127.0.0.1:{port}"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + WAIT
            state: dict[str, Any] = {}
            while time.monotonic() < deadline:
                tws.step()
                time.sleep(0.05)
                try:
                    state = _get(base + "api/state")[1]
                except OSError:
                    continue  # not listening yet
                if state.get("halts"):
                    break
            assert state.get("halts"), state
            halt = state["halts"][-1]
            now = dt.datetime.now(dt.UTC)
            assert halt["rule"] == "DailyLossLimit"
            assert abs((_when(halt["time"]) - now).total_seconds()) < 60, halt  # not 2015
            assert halt["until"] is not None and _when(halt["until"]) > now, halt
            for _ in range(10):  # more replayed days: the halt lasts (it ends tomorrow)
                tws.step()
                time.sleep(0.1)
                status, health = _get(base + "healthz")
                state = _get(base + "api/state")[1]
                assert state["trading"]["state"] == "halted", state["trading"]
                assert state["trading"]["by"] == "DailyLossLimit"
                assert status == 503, health
                assert health["status"] == "failing"
            assert len(state["halts"]) == 1  # one halt, not one a replayed day
        finally:
            process.send_signal(signal.SIGTERM)
            output = process.communicate(timeout=WAIT)[0]
        assert process.returncode == 0, output
        assert "stop reason: SIGTERM" in output
