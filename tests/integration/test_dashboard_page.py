"""What the dashboard page shows, in headless Chromium, at desktop and phone widths.

The states come from ``tests/fixtures/dashboard_state.json`` (every key of ``/api/state``),
served through the real :class:`~ibkrfw.monitoring.Dashboard`; one Chromium serves the module.
Screenshots go to the test's directory and, when ``IBKRFW_SCREENSHOTS`` names a directory,
there too.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ibkrfw.monitoring import Dashboard, LiveMonitor
from ibkrfw.risk import MaxDrawdownKillSwitch
from ibkrfw.testing import FakeTWS, LiveSession, ScriptedStrategy

from .chromium_pipe import Chromium

FIXTURE = Path(__file__).parents[1] / "fixtures" / "dashboard_state.json"
IDS = [
    "mode", "account", "connection", "health-badge", "trading", "clock", "updated", "risk",
    "data", "trades", "order-counts", "stop-reason", "controls", "positions", "fills", "checks",
    "pnl", "pnl-day", "realized", "unrealized", "drawdown", "drawdown-limit",
]  # fmt: skip
TOKEN = "a-dashboard-token-of-32-characters"


def running() -> dict[str, Any]:
    state: dict[str, Any] = json.loads(FIXTURE.read_text())
    state["updated"] = "now"
    return state


def disconnected() -> dict[str, Any]:
    s = running()
    reason = "1100 connectivity between IB and TWS lost"
    s["connection"] = "ib_unreachable"
    s["connection_detail"] = {
        "state": "ib_unreachable", "since": "2026-12-04T16:03:10Z", "reason": reason,
        "code": 1100, "reconnecting": True,
        "farms": [{"name": "usfarm", "kind": "market data", "ok": False, "code": 2103}],
    }  # fmt: skip
    for row in s["data"]:
        row.update(status="stale", last_bar_age_s=1620.0, quote_age_s=1615.0,
                   detail="no new bar for 27 min")  # fmt: skip
    s["health"]["status"] = "degraded"
    s["health"]["reasons"] = [f"connection: {reason} since 2026-12-04 11:03:10 EST"]
    s["health"]["checks"][0] = {
        "name": "connection", "status": "degraded",
        "detail": f"{reason} since 2026-12-04 11:03:10 EST; reconnecting (attempt 4)",
    }  # fmt: skip
    return s


def halted() -> dict[str, Any]:
    s = running()
    reason = "drawdown 15.30% reached the 15.00% limit"
    s.update(mode="live", account="U7654321", drawdown=0.153)
    s["risk"].update(status="failing", drawdown=0.153, near=[])
    s["risk"]["halt"] = {"rule": "MaxDrawdownKillSwitch", "reason": reason,
                         "time": "2026-12-04T16:20:00Z", "until": None}  # fmt: skip
    s["halts"] = [{"time": "2026-12-04T16:20:00Z", "rule": "MaxDrawdownKillSwitch",
                   "reason": reason, "until": None, "flatten": True}]  # fmt: skip
    s["trading"] = {"state": "halted", "reason": reason, "since": "2026-12-04T16:20:00Z",
                    "by": "MaxDrawdownKillSwitch"}  # fmt: skip
    s["health"]["status"] = "failing"
    s["health"]["reasons"] = [f"risk: trading halted by MaxDrawdownKillSwitch: {reason}"]
    for check in s["health"]["checks"]:
        if check["name"] == "risk":
            check.update(status="failing", detail=s["health"]["reasons"][0][6:])
    return s


def stopped() -> dict[str, Any]:
    s = running()
    s.update(status="stopped", stopped=True, stop_reason="duration reached (--duration 60)")
    s["trading"] = {"state": "stopped", "reason": "duration reached (--duration 60)",
                    "since": s["time"], "by": None}  # fmt: skip
    s["health"]["status"] = "failing"
    s["health"]["reasons"] = ["heartbeat: the run has stopped"]
    for check in s["health"]["checks"]:
        if check["name"] == "heartbeat":
            check.update(status="failing", detail="the run has stopped")
    return s


class _Health:
    def __init__(self, health: dict[str, Any]) -> None:
        self.health = health
        self.status = health["status"]

    def to_dict(self) -> dict[str, Any]:
        return self.health


class _StateMonitor:
    """Serves whatever state the test sets, as LiveMonitor.snapshot would."""

    engine = None  # no run to control: the controls answer that

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state

    def snapshot(self) -> dict[str, Any]:
        state = copy.deepcopy(self.state)
        if state.get("updated") == "now":  # built just now, as a running monitor's is
            state["updated"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return state

    def health(self) -> _Health:
        return _Health(self.state["health"])


@pytest.fixture(scope="module")
def browser(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    with Chromium(chromium, tmp_path_factory.mktemp("chromium") / "profile") as b:
        yield b


def show(browser: Chromium, url: str, width: int, polls: int = 1) -> dict[str, str]:
    """Open the page at ``width`` (a phone's below 600), wait for ``polls`` answers; its texts."""
    browser.open(url, width, phone=width < 600)
    browser.wait(f"Number(document.body.dataset.polls || 0) >= {polls}")
    texts: dict[str, str] = browser.eval(
        f"Object.fromEntries({json.dumps(IDS)}"
        ".map(id => [id, document.getElementById(id).textContent]))"
    )
    return texts


def fits(browser: Chromium) -> None:
    """Nothing overflows the window sideways."""
    width, inner = browser.eval("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width <= inner, f"the page is {width} px wide in a {inner} px window"


def test_the_page_shows_a_run_its_disconnection_its_halt_and_its_stop(
    browser: Chromium, tmp_path: Path
) -> None:
    monitor = _StateMonitor(running())
    with Dashboard(monitor, port=0, refresh_s=0.5) as dashboard:  # type: ignore[arg-type]
        for width in (1280, 390):
            t = show(browser, dashboard.url, width)
            assert t["mode"] == "PAPER" and t["account"] == "DU1234567"
            assert t["connection"].startswith("IB connected since 09:29:58"), t["connection"]
            assert "data farms ok" in t["connection"]
            assert t["trading"] == "trading active"
            assert t["health-badge"] == "degraded"
            assert t["clock"] == "engine time, America/New_York 2026-12-04 11:30:05 EST"
            assert t["updated"].startswith("updated ") and t["updated"].endswith(" s ago")
            assert t["pnl"] == "+7,045.53" and t["pnl-day"] == "2026-12-04 (USD)"
            assert (t["realized"], t["unrealized"]) == ("+266.00", "-81.00")
            assert t["drawdown"] == "2.43 %" and t["drawdown-limit"] == "limit 15.0 %"
            assert "risk degraded" in t["risk"]
            assert "MaxPosition: position value16,230 of 20,000 (81 %)" in t["risk"]
            assert "2.43 % of 15.0 % (16 %)" in t["risk"]
            assert "no halts: trading allowed" in t["risk"]
            assert "ACME.SMARTfresh11:30:00 (1 min)5.0 s100.92100.91100.930.4 s" in t["data"]
            assert "ACME.SMARTshort50" in t["trades"] and "+83.00" in t["trades"]
            assert "BOLT.SMARTlong300" in t["trades"] and "open" in t["trades"]
            assert "denied1" in t["order-counts"] and "bars handled482" in t["order-counts"]
            assert "acknowledgement p50 / max13.3 / 30.4 ms" in t["order-counts"]
            assert "11:20:026ACME.SMARTBUY50100.701.00" in t["fills"]  # with the order id
            assert "open" in t["trades"] and "-81.00" in t["trades"]  # an open one: unrealized
            # a long health detail is shown whole, wrapped, never cut with "..."
            assert "drawdown 2.4% of a 15% limit" in t["checks"]
            assert browser.eval("getComputedStyle(document.querySelector("
                                "'#checks td.detail')).whiteSpace") == "normal"  # fmt: skip
            assert t["stop-reason"] == "" and browser.eval(
                "document.getElementById('stop-reason').hidden"
            )
            # opened without the token: no buttons, and the panel says how to get them
            assert "access token" in t["controls"] and "?token=" in t["controls"]
            assert browser.eval("document.querySelectorAll('#controls button').length") == 0
            fits(browser)
            browser.screenshot(tmp_path / f"dashboard-running-{width}.png")

        monitor.state = disconnected()
        for width in (1280, 390):
            t = show(browser, dashboard.url, width)
            assert t["connection"].startswith(
                "IB connectivity lost (1100) since 11:03:10reconnecting…"
            ), t["connection"]
            assert "1100 connectivity between IB and TWS lost" in t["connection"]
            assert browser.eval("document.getElementById('connection').className") == "conn bad"
            assert t["health-badge"] == "degraded"
            assert "stale: no new bar for 27 min" in t["data"] and "27 min" in t["data"]
            fits(browser)
            browser.screenshot(tmp_path / f"dashboard-disconnected-{width}.png")

        monitor.state = halted()
        for width in (1280, 390):
            t = show(browser, dashboard.url, width)
            assert t["mode"] == "LIVE" and t["account"] == "U7654321"
            assert browser.eval("document.getElementById('mode').className") == "mode live"
            reason = "drawdown 15.30% reached the 15.00% limit"
            assert t["trading"] == f"HALTED by MaxDrawdownKillSwitch: {reason}"
            assert t["health-badge"] == "failing"
            assert "risk failing" in t["risk"]
            assert f"trading halted by MaxDrawdownKillSwitch: {reason}" in t["risk"]
            assert "15.30 % of 15.0 % (102 %)" in t["risk"]
            assert f"MaxDrawdownKillSwitch{reason}end of run" in t["risk"]  # the halts table
            fits(browser)
            browser.screenshot(tmp_path / f"dashboard-halted-{width}.png")

        monitor.state = stopped()
        for width in (1280, 390):
            t = show(browser, dashboard.url, width)
            assert t["stop-reason"] == (
                "stopped: duration reached (--duration 60) (at 2026-12-04 11:30:05 engine time)"
            )
            assert not browser.eval("document.getElementById('stop-reason').hidden")
            assert t["trading"] == "STOPPED: duration reached (--duration 60)"
            assert t["health-badge"] == "failing"
            fits(browser)
            browser.screenshot(tmp_path / f"dashboard-stopped-{width}.png")

        # the dashboard answers but the run has stopped publishing (a hung engine)
        monitor.state = running()
        monitor.state["updated"] = "2026-12-04T16:30:06Z"
        t = show(browser, dashboard.url, 390)
        assert t["updated"].startswith("updated "), t["updated"]
        assert "; the state itself is " in t["updated"]
        assert t["updated"].endswith(" old: the run is not publishing")
        assert browser.eval("document.getElementById('updated').className") == "updated bad"

        # the server goes away: the page says so, and keeps what it last showed
        dashboard.stop()
        browser.wait("document.getElementById('updated').textContent.startsWith('unreachable')")
        assert browser.eval("document.getElementById('health-badge').textContent") == (
            "unreachable"
        )
        assert "the state itself is" not in browser.eval(
            "document.getElementById('updated').textContent"
        )


def test_the_page_of_a_live_session_against_the_fake_tws_running_then_stopped(
    browser: Chromium, tmp_path: Path
) -> None:
    monitor = LiveMonitor(stale_after_s=10 * 86_400)
    strategy = ScriptedStrategy({0: lambda ctx, bar: ctx.buy(bar.instrument, 10)})
    with (
        FakeTWS.from_sample(["ACME"]) as tws,
        Dashboard(monitor, port=0, token_env=None) as dashboard,
    ):
        session = LiveSession(strategy, tws, observers=[monitor])
        with session:
            session.step(5)
            for width in (1280, 390):
                t = show(browser, dashboard.url, width)
                assert t["mode"] == "PAPER" and t["account"] == "DU1234567"
                assert t["connection"].startswith("IB connected"), t["connection"]
                assert t["trading"] == "trading active"
                # the replay's clock, the run's one clock, in the monitor's zone
                assert t["clock"] == "engine time, America/New_York 2015-01-08 00:00:00 EST"
                assert t["pnl-day"] == "2015-01-08 (USD)"
                data = r"ACME\.SMARTfresh00:00:00 \(5 secs\)[\d.]+ s"
                assert re.search(data, t["data"]), t["data"]
                assert "risk ok" in t["risk"] and "Drawdown" in t["risk"]
                assert t["health-badge"] in ("ok", "degraded"), t["health-badge"]  # not failing
                assert "ACME.SMART10" in t["positions"]
                assert "filled1" in t["order-counts"]
                assert re.search(r"bars handled[1-9]", t["order-counts"]), t["order-counts"]
                assert "ACME.SMARTBUY10" in t["fills"]
                assert t["stop-reason"] == ""
                chart = browser.eval(CHART_LABELS)
                readable(chart)
                assert len(chart["labels"]) >= 5 and chart["buys"] == 1
                # the replay's first point is its first bar's, not the clock's 0 before it (1970)
                assert monitor.snapshot()["equity_curve"][0]["t"] == "2015-01-02T05:00:00Z"
                assert not any(label["text"].startswith("19") for label in chart["labels"])
                fits(browser)
                browser.screenshot(tmp_path / f"dashboard-session-{width}.png")
            # IB loses its connectivity (1100): the header says so at once, then that it is back
            tws.connectivity_lost()
            connection = "document.getElementById('connection')"
            lost = browser.wait(
                f"!{connection}.textContent.startsWith('IB connected') && {connection}.textContent"
            )
            assert browser.eval(f"{connection}.className") == "conn bad", lost
            assert lost.startswith("IB connectivity lost (1100) since "), lost
            fits(browser)
            browser.screenshot(tmp_path / "dashboard-session-disconnected-390.png")
            tws.connectivity_restored(data_kept=True)
            browser.wait(f"{connection}.textContent.startsWith('IB connected')")
            session.stop()
        # the dashboard outlives the run: the page shows that it stopped, and why
        for width in (1280, 390):
            t = show(browser, dashboard.url, width)
            assert t["stop-reason"] == (
                "stopped: stopped by Engine.stop() (at 2015-01-08 00:00:00 engine time)"
            )
            assert t["trading"] == "STOPPED: stopped by Engine.stop()"
            assert t["health-badge"] == "failing"
            assert "the run has stopped" in t["checks"]
            fits(browser)
            browser.screenshot(tmp_path / f"dashboard-session-stopped-{width}.png")


def test_the_page_of_a_live_session_halted_by_its_drawdown_kill_switch(
    browser: Chromium, tmp_path: Path
) -> None:
    monitor = LiveMonitor(stale_after_s=10 * 86_400)
    strategy = ScriptedStrategy({0: lambda ctx, bar: ctx.buy(bar.instrument, 5000)})
    switch = MaxDrawdownKillSwitch(max_drawdown=0.01)
    with (
        FakeTWS.from_sample(["ACME"]) as tws,
        Dashboard(monitor, port=0, token_env=None) as dashboard,
    ):
        session = LiveSession(strategy, tws, observers=[monitor], risk_monitors=[switch])
        with session:
            for _ in range(20):
                session.step(1)
                if monitor.snapshot()["halts"]:
                    break
            assert monitor.snapshot()["halts"], "the kill switch never halted"
            for width in (1280, 390):
                t = show(browser, dashboard.url, width)
                assert t["mode"] == "PAPER"
                assert t["trading"].startswith("HALTED by MaxDrawdownKillSwitch: equity "), t
                assert t["health-badge"] == "failing"
                assert "risk failing" in t["risk"]
                assert "trading halted by MaxDrawdownKillSwitch" in t["risk"]
                assert re.search(r"Drawdown[\d.]+ % of 1\.0 % \(\d+ %\)", t["risk"]), t["risk"]
                assert "MaxDrawdownKillSwitch" in browser.eval(
                    "document.getElementById('halts').textContent"
                )
                fits(browser)
                browser.screenshot(tmp_path / f"dashboard-session-halted-{width}.png")
            session.stop()


CHART_LABELS = """(() => {
  const svg = document.getElementById('curve');
  const box = svg.getBoundingClientRect();
  const labels = [...svg.querySelectorAll('text.axis')].map(t => {
    const r = t.getBoundingClientRect();
    return {text: t.textContent, left: r.left, right: r.right, top: r.top, bottom: r.bottom,
            size: getComputedStyle(t).fontSize};
  });
  return {width: box.width, viewBox: svg.getAttribute('viewBox'), left: box.left,
          right: box.right, labels: labels,
          preserve: svg.getAttribute('preserveAspectRatio'),
          buys: svg.querySelectorAll('polygon.buy').length,
          sells: svg.querySelectorAll('polygon.sell').length,
          band: svg.querySelectorAll('path.dd').length};
})()"""


def readable(chart: dict[str, Any]) -> None:
    """The chart's labels are inside it, none over another, and tell their ticks apart."""
    for i, a in enumerate(chart["labels"]):
        assert chart["left"] <= a["left"] and a["right"] <= chart["right"], a
        for b in chart["labels"][i + 1 :]:
            assert not _overlap(a, b), (a, b)
    texts = [label["text"] for label in chart["labels"]]
    assert len(set(texts)) == len(texts), texts


def _overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return not (
        a["right"] <= b["left"]
        or b["right"] <= a["left"]
        or a["bottom"] <= b["top"]
        or b["bottom"] <= a["top"]
    )


def test_the_equity_chart_has_readable_axes_markers_and_a_drawdown_band_at_any_width(
    browser: Chromium,
) -> None:
    with Dashboard(_StateMonitor(running()), port=0) as dashboard:  # type: ignore[arg-type]
        for width in (360, 420, 1280):
            show(browser, dashboard.url, width)
            chart = browser.eval(CHART_LABELS)
            # drawn in the element's own pixels: a label is 11 px at every width
            assert chart["viewBox"] == f"0 0 {round(chart['width'])} {200 if width < 600 else 260}"
            assert chart["preserve"] is None
            assert {label["size"] for label in chart["labels"]} == {"11px"}
            texts = [label["text"] for label in chart["labels"]]
            assert any(":" in text for text in texts), texts  # a time axis (HH:MM)
            assert len([t for t in texts if ":" not in t]) >= 3, texts  # a value axis
            readable(chart)
            assert (chart["buys"], chart["sells"], chart["band"]) == (4, 2, 1)
            fits(browser)
        # a resize redraws it at the new width
        browser.page(
            "Emulation.setDeviceMetricsOverride",
            {"width": 700, "height": 900, "deviceScaleFactor": 1, "mobile": False},
        )
        browser.wait(
            "document.getElementById('curve').getAttribute('width') === "
            "String(Math.floor(document.querySelector('.chart-wrap').clientWidth))"
            " && document.getElementById('curve').getAttribute('width') !== '1230'"
        )


def test_the_page_renders_hostile_values_as_text(browser: Chromium) -> None:
    evil = "<img src=x onerror=\"document.title='owned'\">"
    state = running()
    state["strategy"] = evil
    state["account"] = evil
    state["positions"][0]["instrument"] = evil
    state["data"][0]["instrument"] = evil
    state["alerts"][0]["title"] = evil
    state["health"]["checks"][0]["detail"] = evil
    state["health"]["status"] = "degraded"
    state["health"]["reasons"] = [evil]
    state["connection_detail"].update(state="disconnected", reason=evil)
    state["trading"] = {"state": "paused", "reason": evil, "since": None, "by": "operator"}
    state.update(stopped=True, stop_reason=evil)
    with Dashboard(_StateMonitor(state), port=0) as dashboard:  # type: ignore[arg-type]
        t = show(browser, dashboard.url, 1280)
        assert browser.eval("document.querySelectorAll('img').length") == 0
        assert browser.eval("document.title") == "ibkrfw dashboard"
        assert t["account"] == evil and evil in t["data"] and evil in t["connection"]
        assert t["trading"] == f"PAUSED by operator: {evil}"
        assert t["stop-reason"].startswith(f"stopped: {evil}")
        assert browser.eval("document.getElementById('strategy').textContent") == evil


def test_the_controls_send_the_token_as_a_header_and_flatten_needs_a_typed_confirmation(
    browser: Chromium,
) -> None:
    state = running()
    with Dashboard(_StateMonitor(state), port=0, token=TOKEN, refresh_s=0.3) as dashboard:  # type: ignore[arg-type]
        # the token comes in the address, is taken off it, and every poll sends it as a header
        t = show(browser, dashboard.url + "?token=" + TOKEN, 1280, polls=3)
        assert browser.eval("location.href") == dashboard.url
        assert TOKEN not in browser.eval("document.documentElement.outerHTML")
        assert t["health-badge"] == "degraded" and t["updated"].startswith("updated")
        buttons = browser.eval(
            "[...document.querySelectorAll('#controls button')].map(b => [b.id, b.disabled])"
        )
        assert buttons == [
            ["control-pause", False], ["control-resume", True],
            ["control-flatten", False], ["control-cancel-all", False],
        ]  # fmt: skip
        browser.eval("document.getElementById('control-flatten').click()")
        assert not browser.eval("document.getElementById('flatten-confirm').hidden")
        # the confirmation, half typed, outlives a poll that rebuilds the panel (paused now)
        browser.eval(
            "(() => { const i = document.getElementById('flatten-typed'); i.value = 'flat';"
            " i.dispatchEvent(new Event('input')); })()"
        )
        state["trading"] = {"state": "paused", "reason": "", "since": None, "by": "operator"}
        browser.wait("document.getElementById('control-resume').disabled === false")
        assert browser.eval("document.getElementById('flatten-typed').value") == "flat"
        assert browser.eval("document.getElementById('flatten-go').disabled")
        confirm = browser.eval("document.getElementById('flatten-confirm').textContent")
        assert "Type flatten to confirm" in confirm
        assert browser.eval("document.getElementById('flatten-go').disabled")
        browser.eval(
            "(() => { const i = document.getElementById('flatten-typed'); i.value = 'flatten';"
            " i.dispatchEvent(new Event('input')); })()"
        )
        assert not browser.eval("document.getElementById('flatten-go').disabled")
        browser.eval("document.getElementById('flatten-go').click()")
        answer = browser.wait(
            "(e => e && !e.textContent.includes('sending') && e.textContent)"
            "(document.getElementById('control-answer'))"
        )
        assert answer.startswith("flatten: "), answer


def test_the_page_pauses_and_flattens_a_live_session_with_the_token(
    browser: Chromium, tmp_path: Path
) -> None:
    monitor = LiveMonitor(stale_after_s=10 * 86_400)
    strategy = ScriptedStrategy({0: lambda ctx, bar: ctx.buy(bar.instrument, 10)})
    with FakeTWS.from_sample(["ACME"]) as tws:
        session = LiveSession(strategy, tws, observers=[monitor])
        with session:
            session.step(3)
            with Dashboard(monitor, port=0, token=TOKEN, refresh_s=0.3) as dashboard:
                show(browser, dashboard.url + "?token=" + TOKEN, 1280, polls=2)
                browser.eval(
                    "document.getElementById('control-reason').value = 'news at 14:00';"
                    "document.getElementById('control-pause').click()"
                )
                answer = browser.wait(
                    "(e => e && !e.textContent.includes('sending') && e.textContent)"
                    "(document.getElementById('control-answer'))"
                )
                assert answer.startswith("pause: accepted"), answer
                session.step(1)
                browser.wait(
                    "document.getElementById('trading').textContent"
                    " === 'PAUSED by operator: news at 14:00'"
                )
                assert browser.eval("document.getElementById('control-pause').disabled")
                assert not browser.eval("document.getElementById('control-resume').disabled")
                browser.eval("document.getElementById('control-flatten').click()")
                browser.eval(
                    "(() => { const i = document.getElementById('flatten-typed');"
                    " i.value = 'flatten'; i.dispatchEvent(new Event('input'));"
                    " document.getElementById('flatten-go').click(); })()"
                )
                answer = browser.wait(
                    "(e => e && e.textContent.startsWith('flatten') &&"
                    " !e.textContent.includes('sending') && e.textContent)"
                    "(document.getElementById('control-answer'))"
                )
                assert answer.startswith("flatten: accepted"), answer
                session.step(2)
                browser.wait("document.getElementById('positions').textContent.includes('flat')")
                last = browser.eval("document.getElementById('controls').textContent")
                assert "last action: flatten" in last, last
                browser.screenshot(tmp_path / "dashboard-controls-1280.png")
            session.stop()


TOOL = Path(__file__).parents[2] / "tools" / "dashboard_screenshot.py"


def test_dashboard_screenshot_shoots_a_live_session_and_refuses_bad_input(
    tmp_path: Path, chromium: str
) -> None:
    out = tmp_path / "docs" / "dashboard.png"
    done = subprocess.run(
        [sys.executable, str(TOOL), str(out), "--width", "390", "--height", "900", "--bars", "40"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == str(out)
    from PIL import Image

    with Image.open(out) as image:
        assert image.size == (390, 900)
    for args, message in [
        (["--width", "100"], "--width 100 is narrower than any phone: give 320 or more"),
        (["--bars", "0"], "--bars must be a positive whole number, not 0"),
        (["--fixture", str(tmp_path / "none.json")], "cannot read a JSON state"),
    ]:
        bad = subprocess.run(
            [sys.executable, str(TOOL), str(tmp_path / "x.png"), *args],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert bad.returncode == 2 and message in bad.stderr, bad.stderr
        assert not (tmp_path / "x.png").exists()
