"""Protective orders live: they sit at IB, outlive the process, and are taken over on restart."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from ibkrfw import OrderType
from ibkrfw.risk import Protection, StopLoss, TakeProfit
from ibkrfw.testing import FakeTWS, LiveSession, ScriptedStrategy

PLACE_ORDER = 3


def placed(tws: FakeTWS) -> list[int]:
    return [int(r.fields[1]) for r in tws.messages("in", msg_id=PLACE_ORDER)]


def working(tws: FakeTWS) -> list[tuple[str, OrderType, Decimal]]:
    with tws.market.lock:
        orders = tws.market.orders.active()
    return sorted(
        (o.request.tag.rsplit(":", 1)[-1], o.request.order_type, o.request.quantity) for o in orders
    )


def test_protection_outlives_the_process_and_is_taken_over(tmp_path: Path) -> None:
    state = tmp_path / "state"
    protect = Protection(StopLoss.percent(0.5), TakeProfit.percent(1.0))  # far away
    buy = ScriptedStrategy({0: lambda ctx, bar: ctx.buy(bar.instrument, 10)})
    with FakeTWS.from_sample(["ACME"]) as tws:
        with LiveSession(buy, tws, state_dir=state, protection=protect) as session:
            session.step(3)
            session.stop()  # the process dies: the GTC exits stay at IB
        assert placed(tws) == [1, 2, 3]
        assert working(tws) == [
            ("stop-loss", OrderType.STOP, Decimal(10)),
            ("take-profit", OrderType.LIMIT, Decimal(10)),
        ]
        tws.step(5)  # nobody connected; the exits keep working
        assert len(working(tws)) == 2

        # Restarted: the exits are recognised, not placed again; an exit of the strategy's
        # joins their group, and once it fills nothing is left working.
        sell = ScriptedStrategy({1: lambda ctx, bar: ctx.sell(bar.instrument, 10)})
        with LiveSession(sell, tws, state_dir=state, protection=protect) as session:
            session.step(1)
            assert placed(tws) == [1, 2, 3]
            session.step(3)
            result = session.stop()
        assert placed(tws) == [1, 2, 3, 4]
        assert working(tws) == []
        sale = result.order_list[-1]
        assert sale.request.oca_group.startswith("protect-ACME")
        assert session.engine.portfolio is not None
        assert not session.engine.portfolio.positions


def test_a_target_closes_a_protected_position_live_without_doubling_it() -> None:
    # Before: live as in a backtest, a target of 0 counted the stop-loss and the take-profit
    # as two pending sales and bought 10 more.
    protect = Protection(StopLoss.percent(0.5), TakeProfit.percent(1.0))  # far away
    strategy = ScriptedStrategy(
        {
            0: lambda ctx, bar: ctx.order_target_quantity(bar.instrument, 10),
            3: lambda ctx, bar: ctx.order_target_quantity(bar.instrument, 0),
            4: lambda ctx, bar: ctx.order_target_quantity(bar.instrument, 0),
        }
    )
    with FakeTWS.from_sample(["ACME"]) as tws:
        with LiveSession(strategy, tws, protection=protect) as session:
            session.step(7)
            result = session.stop()
        assert working(tws) == []
        assert placed(tws) == [1, 2, 3, 4]  # the buy, its two exits, one sale
    assert [(f.side.value, f.quantity) for f in result.fill_list] == [("BUY", 10), ("SELL", 10)]
    assert session.engine.portfolio is not None
    assert not session.engine.portfolio.positions
