"""The dashboard's controls (issue 21 point 10), over HTTP, on a live session of the fake TWS.

Each action is checked by what the run does (orders denied, sent, cancelled, positions) with
a Protection, a risk rule and a risk monitor on at the same time, and by what is journalled
and alerted; then the token, host and body checks.
"""

from __future__ import annotations

import http.client
import json
import logging
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from ibkrfw import Context, OrderDenied, OrderType
from ibkrfw.model.data import Bar
from ibkrfw.model.orders import OrderStatus, Side
from ibkrfw.monitoring import Alerter, Dashboard, LiveMonitor
from ibkrfw.monitoring.alerts import LogChannel
from ibkrfw.risk import MaxDrawdownKillSwitch, MaxPosition, Protection, StopLoss
from ibkrfw.testing import FakeTWS, LiveSession, ScriptedStrategy

TOKEN = "control-t0ken-0123456789"


def post(
    dashboard: Dashboard,
    action: str,
    body: object = None,
    *,
    token: str | None = TOKEN,
    host: str | None = None,
    query: str = "",
    raw: bytes | None = None,
) -> tuple[int, dict[str, Any]]:
    """POST /api/control/<action>; the status and the JSON answer."""
    where = urlsplit(dashboard.url)
    connection = http.client.HTTPConnection(where.hostname or "", where.port, timeout=10)
    data = raw if raw is not None else b"" if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "Host": host or where.netloc}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    connection.request("POST", f"/api/control/{action}{query}", body=data, headers=headers)
    response = connection.getresponse()
    text = response.read().decode()
    connection.close()
    try:
        return response.status, json.loads(text)
    except ValueError:
        return response.status, {"text": text}


def state(dashboard: Dashboard) -> dict[str, Any]:
    return dashboard.state()


def _buy(quantity: int) -> Any:
    return lambda ctx, bar: ctx.buy(bar.instrument, quantity)


def _rest(ctx: Context, bar: Bar) -> None:  # a limit far below the market: it stays working
    price = round(bar.close * 0.5, 2)
    ctx.buy(bar.instrument, 5, order_type=OrderType.LIMIT, limit_price=price)


def test_each_control_acts_on_the_live_run_and_is_journalled_and_alerted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    strategy = ScriptedStrategy(
        {
            0: _buy(10),
            2: _buy(10),  # paused: denied
            3: lambda ctx, bar: ctx.sell(bar.instrument, 4),  # an exit: passes
            5: _buy(10),  # resumed: passes
            7: _rest,
            8: _rest,
        }
    )
    alerter = Alerter([LogChannel()], journal=tmp_path / "alerts.jsonl").start()
    monitor = LiveMonitor(alerter=alerter, stale_after_s=10 * 86_400, journal_dir=tmp_path)
    protection = Protection(StopLoss.percent(0.5))  # far away: stays working
    with (
        FakeTWS.from_sample(["ACME"]) as tws,
        Dashboard(monitor, port=0, token=TOKEN) as dashboard,
        LiveSession(
            strategy,
            tws,
            observers=[monitor],
            protection=protection,
            risk_rules=[MaxPosition(quantity=1000)],
            risk_monitors=[MaxDrawdownKillSwitch(0.5)],
        ) as session,  # fmt: skip
    ):
        engine = session.engine
        session.step(2)
        assert state(dashboard)["trading"]["state"] == "active"
        assert state(dashboard)["controls"] == {
            "enabled": True,
            "actions": ["pause", "resume", "flatten", "cancel_all"],
            "last": None,
        }
        status, answer = post(dashboard, "pause", {"reason": "news at 14:00"})
        assert status == 202, answer
        assert answer["accepted"] and answer["detail"].startswith("paused")
        trading = state(dashboard)["trading"]
        assert (trading["state"], trading["by"], trading["reason"]) == (
            "paused",
            "operator",
            "news at 14:00",
        )
        session.step(2)  # bar 2 buys (denied), bar 3 sells 4 (sent)
        denied = [e for _, e in strategy.events if isinstance(e, OrderDenied)]
        assert [(d.rule, d.reason) for d in denied] == [
            ("operator", "trading is paused by the operator: news at 14:00")
        ]
        status, answer = post(dashboard, "resume")
        assert status == 202 and answer["detail"].startswith("resumed"), answer
        assert state(dashboard)["trading"]["state"] == "active"
        session.step(4)  # bar 5 buys 10; bar 7 rests a limit
        portfolio = engine.portfolio
        assert portfolio is not None
        inst = next(iter(portfolio.positions))
        assert portfolio.quantity(inst) == 16
        limits = [o for o in engine.orders.active() if o.request.order_type is OrderType.LIMIT]
        stops = [o for o in engine.orders.active() if o.request.order_type is OrderType.STOP]
        assert len(limits) == 1 and len(stops) == 1

        status, answer = post(dashboard, "cancel_all")
        assert status == 202, answer
        assert answer["detail"].startswith("cancelling 1 working order(s); kept 1 protective")
        session.settle()
        session.step(1)  # bar 8 rests another limit
        assert engine.orders.get(limits[0].order_id).status is OrderStatus.CANCELLED  # type: ignore[union-attr]
        assert not engine.orders.get(stops[0].order_id).status.is_terminal  # type: ignore[union-attr]

        status, answer = post(dashboard, "flatten", {"reason": "end of test"})
        assert status == 400 and 'confirm it with {"confirm": "flatten"}' in answer["detail"]
        assert portfolio.quantity(inst) == 16  # nothing done
        status, answer = post(dashboard, "flatten", {"confirm": "flatten", "reason": "eod"})
        assert status == 202, answer
        assert "cancelled 1 working order(s); closing ACME.SMART 16" in answer["detail"]
        session.settle()
        session.step(2)  # the closing order fills; its OCA group takes the stop away
        assert portfolio.quantity(inst) == 0 and not portfolio.positions
        assert engine.orders.active() == []
        trading = state(dashboard)["trading"]
        assert (trading["state"], trading["reason"]) == ("paused", "flatten: eod")
        # invariants: the position is the sum of the fills, here and at the fake's IB
        fills = list(portfolio.fills)
        signed = sum((f.quantity if f.side is Side.BUY else -f.quantity for f in fills), Decimal(0))
        assert signed == 0
        assert [p.quantity for p in tws.market.portfolio.positions.values() if p.quantity] == []
        assert len({f.fill_id for f in fills}) == len(fills)  # no execution counted twice
        flattens = [o for o in engine.orders if o.request.tag == "flatten"]
        assert len(flattens) == 1 and flattens[0].status is OrderStatus.FILLED
        last = state(dashboard)["controls"]["last"]
        assert (last["action"], last["result"]) == ("flatten", "done")
        session.stop()
        final = state(dashboard)
        assert final["stopped"] and final["trading"]["state"] == "stopped"
        assert final["stop_reason"] == "stopped by Engine.stop()"
        status, answer = post(dashboard, "pause")  # the run has ended
        assert (
            status == 409 and "the run has stopped (stopped by Engine.stop())" in answer["detail"]
        )
    alerter.stop()
    journal = [json.loads(line) for line in (tmp_path / "controls.jsonl").read_text().splitlines()]
    assert [(j["action"], j["result"]) for j in journal] == [
        ("pause", "done"),
        ("resume", "done"),
        ("cancel_all", "done"),
        ("flatten", "done"),
    ]
    assert journal[0]["reason"] == "news at 14:00" and journal[0]["from"] == "127.0.0.1"
    alerts = [(d.alert.kind, d.alert.severity, d.alert.title) for d in alerter.recent(50)]
    operator = [a for a in alerts if a[0] == "operator_action"][::-1]
    assert operator == [
        ("operator_action", "warning", "operator: pause done"),
        ("operator_action", "warning", "operator: resume done"),
        ("operator_action", "warning", "operator: cancel all done"),
        ("operator_action", "critical", "operator: flatten done"),
    ]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("operator: flatten (eod)" in w for w in warnings)
    everything = caplog.text + (tmp_path / "controls.jsonl").read_text()
    assert TOKEN not in everything


def test_controls_need_a_configured_token_in_a_bearer_header_and_this_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("IBKRFW_DASHBOARD_TOKEN", raising=False)
    monitor = LiveMonitor(stale_after_s=10 * 86_400)
    with Dashboard(monitor, port=0) as open_dashboard:
        status, answer = post(open_dashboard, "pause")
        assert status == 403
        assert answer["detail"].startswith("controls need a dashboard token: set $IBKRFW_")
        assert open_dashboard.state()["controls"]["enabled"] is False
    with Dashboard(monitor, port=0, token=TOKEN) as dashboard:
        assert post(dashboard, "pause", token="wrong-token-of-some-length")[0] == 401
        assert post(dashboard, "pause", token=None)[0] == 401
        status, answer = post(dashboard, "pause", token=None, query=f"?token={TOKEN}")
        assert status == 401 and "never in the URL" in answer["detail"]
        status, answer = post(dashboard, "pause", query=f"?token={TOKEN}")  # even with both
        assert status == 401
        assert post(dashboard, "pause", host="evil.example:80")[0] == 421
        status, answer = post(dashboard, "sell_everything")
        assert status == 400 and "unknown control 'sell_everything'" in answer["detail"]
        assert post(dashboard, "pause", raw=b"{not json")[0] == 400
        assert post(dashboard, "pause", ["a list"])[0] == 400
        status, answer = post(dashboard, "pause", {"confirm": "flatten"})
        assert status == 400 and "pause takes no 'confirm'" in answer["detail"]
        assert post(dashboard, "pause", {"reason": "two\nlines"})[0] == 400
        assert post(dashboard, "cancel_all", {"include_protection": "yes"})[0] == 400
        assert post(dashboard, "pause", raw=b" " * 5000)[0] == 413
        status, answer = post(dashboard, "pause")  # all good, but no run yet
        assert status == 503 and "has not started" in answer["detail"]
        assert TOKEN not in json.dumps(dashboard.state())
