"""The dashboard of a live session against the fake TWS, checked over HTTP and in Chromium."""

from __future__ import annotations

import json
import subprocess
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ibkrfw import ConfigError
from ibkrfw.monitoring import Dashboard, LiveMonitor
from ibkrfw.testing import FakeTWS, LiveSession, ScriptedStrategy

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
]  # fmt: skip


def get(url: str, token: str | None = None) -> tuple[int, str, str]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read().decode()


def buys(*bars: int) -> ScriptedStrategy:
    return ScriptedStrategy({b: (lambda ctx, bar: ctx.buy(bar.instrument, 10)) for b in bars})


def test_the_api_metrics_and_health_of_a_running_session() -> None:
    monitor = LiveMonitor(stale_after_s=10 * 86_400)
    with FakeTWS.from_sample(["ACME"]) as tws, Dashboard(monitor, port=0) as dashboard:
        session = LiveSession(buys(0), tws, observers=[monitor])
        with session:
            session.step(3)
            status, kind, body = get(dashboard.url + "api/state")
            assert status == 200 and kind == "application/json"
            state = json.loads(body)
            assert state["strategy"] == "ScriptedStrategy"
            assert [(p["instrument"], p["quantity"]) for p in state["positions"]] == [
                ("ACME.SMART", 10.0)
            ]
            assert state["fills"][0]["quantity"] == 10.0
            assert state["health"]["status"] == "ok", state["health"]
            names = [c["name"] for c in state["health"]["checks"]]
            assert names == [
                "connection",
                "risk",
                "data",
                "orders",
                "reconciliation",
                "load",
                "heartbeat",
                "disk",
            ]
            status, kind, metrics = get(dashboard.url + "metrics")
            assert kind.startswith("text/plain; version=0.0.4")
            assert 'ibkrfw_position_quantity{instrument="ACME.SMART"} 10.0' in metrics
            assert "ibkrfw_connected 1.0" in metrics
            assert 'ibkrfw_orders_total{event="filled"} 1.0' in metrics
            assert "ibkrfw_health_status 0.0" in metrics
            status, _, health = get(dashboard.url + "healthz")
            assert status == 200 and json.loads(health)["status"] == "ok"
            session.stop()
        status, _, health = get(dashboard.url + "healthz")
        assert status == 503  # the run stopped: failing
        assert "the run has stopped" in health


def test_off_loopback_needs_a_token_and_every_request_carries_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("IBKRFW_DASHBOARD_TOKEN", raising=False)
    monitor = LiveMonitor()
    with pytest.raises(ConfigError, match="access token"):
        Dashboard(monitor, host="0.0.0.0")
    monkeypatch.setenv("IBKRFW_DASHBOARD_TOKEN", "t0ken-of-16-chars")
    # accepted with a token, over plain HTTP only when asked to (not started)
    Dashboard(monitor, host="0.0.0.0", allow_plain_http=True)
    with Dashboard(monitor, port=0) as dashboard:  # loopback, with the token set: required too
        assert get(dashboard.url + "api/state")[0] == 401
        assert get(dashboard.url + "api/state", token="wrong")[0] == 401
        assert get(dashboard.url + "api/state", token="t0ken-of-16-chars")[0] == 200
        assert get(dashboard.url + "?token=t0ken-of-16-chars")[0] == 200
        assert get(dashboard.url + "nothing?token=t0ken-of-16-chars")[0] == 404


class _SteppingMonitor:
    """Serves the first state as it is; before the second, steps the session to a new fill."""

    def __init__(self, monitor: LiveMonitor, session: LiveSession) -> None:
        self.monitor, self.session = monitor, session
        self.calls = 0
        self.stepped = threading.Event()

    def snapshot(self) -> dict[str, Any]:
        self.calls += 1
        if self.calls == 2:
            self.session.step(3)  # bar 5 buys 10 more: a new fill
            self.stepped.set()
        return self.monitor.snapshot()

    def health(self) -> Any:
        return self.monitor.health()


def test_the_page_shows_the_positions_and_updates_itself_after_a_fill(
    tmp_path: Path, chromium: str
) -> None:
    monitor = LiveMonitor(stale_after_s=10 * 86_400)
    with FakeTWS.from_sample(["ACME"]) as tws:
        session = LiveSession(buys(0, 4), tws, observers=[monitor])
        with session:
            session.step(3)  # bought 10
            stepping = _SteppingMonitor(monitor, session)
            dashboard = Dashboard(stepping, port=0, refresh_s=1.0)  # type: ignore[arg-type]
            with dashboard:
                common = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
                dom = subprocess.run(
                    [*common, "--virtual-time-budget=2500", "--dump-dom", dashboard.url],
                    capture_output=True, text=True, timeout=120,
                )  # fmt: skip
                assert dom.returncode == 0, dom.stderr[-2000:]
                assert stepping.stepped.is_set() and stepping.calls >= 2
                html = dom.stdout
                # the page refreshed itself: the second state has 20 held and two fills
                assert "ACME.SMART" in html
                positions = html.split('id="positions"')[1].split("</table>")[0]
                assert ">20<" in positions, positions
                fills = html.split('id="fills"')[1].split("</table>")[0]
                assert fills.count("<tr>") == 3  # the header and two fills
                assert 'class="badge ok"' in html
                shot = tmp_path / "dashboard.png"
                done = subprocess.run(
                    [*common, "--window-size=1280,1100", "--hide-scrollbars",
                     "--virtual-time-budget=1500", f"--screenshot={shot}", dashboard.url],
                    capture_output=True, text=True, timeout=120,
                )  # fmt: skip
                assert done.returncode == 0, done.stderr[-2000:]
            session.stop()
    from PIL import Image

    image = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert image.shape == (1100, 1280) and image.std() > 10
