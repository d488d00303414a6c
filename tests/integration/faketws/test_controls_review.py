"""The dashboard's controls in combination (issue 21 review), on a live session of the fake TWS.

Each test drives a real run (LiveSession + FakeTWS over a socket) through the dashboard's HTTP
endpoints and checks the invariants an operator relies on: a position is closed once, not
twice; what the operator types never carries a secret into the run; a command is answered.
"""

from __future__ import annotations

import http.client
import json
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ibkrfw.model.orders import OrderStatus, Side
from ibkrfw.monitoring import Dashboard, LiveMonitor
from ibkrfw.risk import Protection, StopLoss
from ibkrfw.testing import FakeTWS, LiveSession, ScriptedStrategy

TOKEN = "review-t0ken-0123456789"


def post(dashboard: Dashboard, action: str, body: object = None) -> tuple[int, dict[str, Any]]:
    """POST /api/control/<action> with the token; the status and the JSON answer."""
    where = urlsplit(dashboard.url)
    connection = http.client.HTTPConnection(where.hostname or "", where.port, timeout=10)
    data = b"" if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
    connection.request("POST", f"/api/control/{action}", body=data, headers=headers)
    response = connection.getresponse()
    answer = json.loads(response.read().decode())
    connection.close()
    return response.status, answer


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
