"""A process killed mid-session and started again: nothing lost, nothing sent twice."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from ibkrfw import EngineError, OrderRequest, OrderType, Reconciled, Side, TimeInForce
from ibkrfw.testing import FakeTWS, LiveSession, ScriptedStrategy

PLACE_ORDER = 3


def placed(tws: FakeTWS) -> list[int]:
    return [int(r.fields[1]) for r in tws.messages("in", msg_id=PLACE_ORDER)]


def first_session(tws: FakeTWS, state: Path, limit: Decimal) -> None:
    buy = ScriptedStrategy({
        0: lambda ctx, bar: ctx.buy(bar.instrument, 10),
        1: lambda ctx, bar: ctx.submit(OrderRequest(
            bar.instrument, Side.BUY, 5, OrderType.LIMIT, limit_price=limit,
            tif=TimeInForce.GTC,
        )),
    })  # fmt: skip
    with LiveSession(buy, tws, state_dir=state) as session:
        session.step(3)
        session.stop()  # the process dies here: its GTC order stays working at IB


def test_restart_reconciles_fills_missed_while_down(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with FakeTWS.from_sample(["ACME"]) as tws:
        closes = tws.market.arrays[next(iter(tws.market.arrays))]
        limit = Decimal(str(round(float(min(closes.low[4:40])) + 0.01, 2)))
        first_session(tws, state, limit)
        assert placed(tws) == [1, 2]
        tws.step(40)  # nobody is connected: the limit order fills meanwhile
        again = ScriptedStrategy({0: lambda ctx, bar: ctx.buy(bar.instrument, 1)})
        with LiveSession(again, tws, state_dir=state) as session:
            session.step(2)
            result = session.stop()
            notices = [e for e in session.engine.notices if isinstance(e, Reconciled)]
    assert placed(tws) == [1, 2, 3]  # nothing sent twice; the new order's id is fresh
    assert notices[0].resolution == "agreed" and notices[0].differences == ()
    assert any("1 execution(s) recorded that happened while away" in n for n in notices[0].notes)
    assert not any("cash moved" in n for n in notices[0].notes)  # the fills explain it all
    adopted = result.fills[result.fills["fill_id"].str.startswith("adopted:")]
    assert list(adopted["quantity"]) == [Decimal(15)]
    assert result.fill_list[-1].quantity == 1
    inst = result.fill_list[-1].instrument
    assert session.engine.portfolio is not None
    assert session.engine.portfolio.quantity(inst) == 16


def test_an_account_the_journal_does_not_explain_is_refused_or_adopted(tmp_path: Path) -> None:
    with FakeTWS.from_sample(["ACME"]) as tws:
        first_session(tws, tmp_path / "one", Decimal("0.01"))  # 10 bought, a far limit working
        with pytest.raises(EngineError, match="journal holds 0, the account 10"):
            LiveSession(ScriptedStrategy({}), tws, state_dir=tmp_path / "two").start()
        with LiveSession(
            ScriptedStrategy({}), tws, state_dir=tmp_path / "two", on_mismatch="adopt"
        ) as session:
            session.step(1)
            result = session.stop()
            notices = [e for e in session.engine.notices if isinstance(e, Reconciled)]
    assert notices[0].resolution == "adopted"
    assert any("unknown to the journal" in d for d in notices[0].differences)
    assert list(result.fills["quantity"]) == [Decimal(10)]
    working = [o for o in result.order_list if not o.status.is_terminal]
    assert [(o.request.quantity, o.request.limit_price) for o in working] == [
        (Decimal(5), Decimal("0.01"))
    ]


def test_cash_the_fills_do_not_explain_is_noted(tmp_path: Path) -> None:
    with FakeTWS.from_sample(["ACME"]) as tws:
        first_session(tws, tmp_path / "state", Decimal("0.01"))
        tws.market.portfolio.adjust_cash(Decimal(2500))  # a deposit while the process is down
        with LiveSession(ScriptedStrategy({}), tws, state_dir=tmp_path / "state") as session:
            session.step(1)
            session.stop()
            notices = [e for e in session.engine.notices if isinstance(e, Reconciled)]
    assert notices[0].resolution == "agreed"
    assert any("cash moved +2500.00 USD" in n for n in notices[0].notes)


def _wall_clock_session(strategy: ScriptedStrategy, tws: FakeTWS, state: Path) -> LiveSession:
    """A session as `ibkrfw run` against `ibkrfw fake-tws`: both on the wall clock."""
    from ibkrfw.core.clock import LiveClock

    session = LiveSession(strategy, tws, state_dir=state)
    session.engine.clock = LiveClock()
    tws.clock = None  # executions stamped when they happen, not with their bars' (old) times
    return session


def test_a_restart_on_the_wall_clock_finds_the_cash_explained(tmp_path: Path) -> None:
    import datetime as dt

    state = tmp_path / "state"
    buy = ScriptedStrategy({0: lambda ctx, bar: ctx.buy(bar.instrument, 100)})
    with FakeTWS.from_sample(["ACME"]) as tws:
        with _wall_clock_session(buy, tws, state) as session:
            session.step(3)
            session.stop()
        (execution,) = tws.messages("out", msg_id=11)
        today = dt.datetime.now(dt.UTC).strftime("%Y%m%d")
        assert execution.fields[15].startswith(today)  # the fill's time, not 2017's bar's
        assert execution.fields[15].endswith(" UTC")
        with _wall_clock_session(ScriptedStrategy({}), tws, state) as session:
            session.step(1)
            session.stop()
            notices = [e for e in session.engine.notices if isinstance(e, Reconciled)]
    assert notices[0].resolution == "agreed"
    assert not [n for n in notices[0].notes if "cash moved" in n], notices[0].notes
