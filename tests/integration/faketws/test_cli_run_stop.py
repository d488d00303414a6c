"""`ibkrfw run --keep-dashboard`: the final state served after the run stops (issue 21 point 9).

A real process in the sandbox (the fake TWS's data, the simulator's fills), stopped by
--duration, then by SIGTERM; the dashboard's controls reached through it with the token of
$IBKRFW_DASHBOARD_TOKEN and journalled in the run's state directory.
"""

from __future__ import annotations

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
TOKEN = "cli-control-t0ken-0123456789"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _call(url: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
    request.add_header("Authorization", f"Bearer {TOKEN}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_keep_dashboard_serves_the_stopped_state_until_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    base = f"http://127.0.0.1:{port}/"
    with FakeTWS.from_sample(["ACME"]) as tws:
        config = tmp_path / "ibkrfw.toml"
        config.write_text(
            f'[ibkr]\nport = {tws.port}\nclient_id = 4\n[run]\nstrategy = "sma_crossover"\n'
            'symbols = ["ACME"]\nbar_size = "5s"\n[monitor]\nstale_after_s = 1e9\n'
        )
        env = {**os.environ, "IBKRFW_DASHBOARD_TOKEN": TOKEN}
        process = subprocess.Popen(
            [sys.executable, "-m", "ibkrfw", "run", "--config", str(config), "--sandbox",
             "--state-dir", str(tmp_path / "state"), "--duration", "3",
             "--dashboard", f"127.0.0.1:{port}", "--keep-dashboard"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + WAIT
            state: dict[str, Any] = {}
            paused: tuple[int, dict[str, Any]] | None = None
            while time.monotonic() < deadline:
                tws.step()
                time.sleep(0.05)
                try:
                    state = _call(base + "api/state")[1]
                except OSError:
                    continue  # not listening yet
                if paused is None and state.get("status") == "running":
                    paused = _call(base + "api/control/pause", {"reason": "from the test"})
                if state.get("stopped"):
                    break
            assert paused is not None and paused[0] == 202, paused
            assert state.get("stopped") is True, state
            assert state["status"] == "stopped"
            assert state["stop_reason"] == "duration reached (--duration 3)"
            assert state["mode"] == "sandbox"  # the run says what it trades
            assert state["trading"]["state"] == "stopped"
            assert state["controls"]["last"]["action"] == "pause"
            time.sleep(1.0)  # still served, the process still alive
            assert process.poll() is None
            assert _call(base + "api/state")[1]["stopped"] is True
            process.send_signal(signal.SIGTERM)
            out, _ = process.communicate(timeout=WAIT)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert process.returncode == 0, out
    assert "ibkrfw: stop reason: duration reached (--duration 3)" in out
    assert f"keeps serving its final state on {base} (--keep-dashboard)" in out
    assert "SIGTERM: closing the dashboard" in out
    assert "ibkrfw: stopped after" in out
    assert TOKEN not in out
    journal = (tmp_path / "state" / "controls.jsonl").read_text()
    assert '"action": "pause"' in journal and '"reason": "from the test"' in journal
    try:
        urllib.request.urlopen(base + "api/state", timeout=2)
        raise AssertionError("the dashboard still answers after the process ended")
    except urllib.error.URLError:
        pass


def test_keep_dashboard_without_a_dashboard_is_refused_saying_what_to_add(
    tmp_path: Path, capsys: Any
) -> None:
    from ibkrfw.cli import main

    config = tmp_path / "ibkrfw.toml"
    config.write_text('[run]\nstrategy = "sma_crossover"\nsymbols = ["ACME"]\n')
    common = ["run", "--config", str(config), "--port", "1", "--state-dir", str(tmp_path / "s")]
    assert main([*common, "--keep-dashboard"]) == 2
    err = capsys.readouterr().err
    assert "keep_after_stop = true: needs a dashboard: set listen" in err, err
    config.write_text(config.read_text() + "[dashboard]\nkeep_after_stop = true\n")
    assert main(common) == 2
    assert "keep_after_stop = true: needs a dashboard" in capsys.readouterr().err
