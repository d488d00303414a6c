"""Two strategies in one live engine over a real socket: own orderRefs, own books back."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from ibkrfw import OrderRequest, OrderType, Reconciled, Side, TimeInForce
from ibkrfw.ibkr import IBKRBroker
from ibkrfw.testing import FakeTWS, LiveSession, ScriptedStrategy


def _first(tws: FakeTWS, state: Path) -> None:
    buyer = ScriptedStrategy({
        0: lambda ctx, bar: ctx.buy(bar.instrument, 10),
        1: lambda ctx, bar: ctx.submit(OrderRequest(
            bar.instrument, Side.BUY, 5, OrderType.LIMIT, limit_price=Decimal("0.01"),
            tif=TimeInForce.GTC, tag="dip",
        )),
    })  # fmt: skip
    seller = ScriptedStrategy({0: lambda ctx, bar: ctx.sell(bar.instrument, 4)})
    with LiveSession({"buyer": buyer, "seller": seller}, tws, state_dir=state) as session:
        session.step(3)
        engine = session.engine
        assert engine.portfolios["buyer"].position(engine.instruments[0]).quantity == 10
        assert engine.portfolios["seller"].position(engine.instruments[0]).quantity == -4
        session.stop()  # the process dies here: the GTC order stays working at IB


def test_live_strategies_carry_their_names_to_ib_and_get_their_books_back(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    with FakeTWS.from_sample(["ACME"]) as tws:
        _first(tws, state)
        seen: list[list[tuple[str, str]]] = []

        def look(ctx: object, bar: object) -> None:
            orders = ctx.open_orders()  # type: ignore[attr-defined]
            seen.append([(o.request.strategy, o.request.tag) for o in orders])

        buyer = ScriptedStrategy({0: look})
        seller = ScriptedStrategy({0: look})
        with LiveSession({"buyer": buyer, "seller": seller}, tws, state_dir=state) as session:
            session.step(1)
            engine = session.engine
            broker = session.broker
            assert isinstance(broker, IBKRBroker)
            refs = sorted(o.order_ref for o in broker.journal.orders())
            books = engine.portfolios
            inst = engine.instruments[0]
            held = {name: book.quantity(inst) for name, book in books.items()}
            assert engine.portfolio is not None
            account = engine.portfolio.quantity(inst)
            session.stop()
            notices = [e for e in engine.notices if isinstance(e, Reconciled)]
    assert refs == ["ibkrfw:1/buyer", "ibkrfw:2/seller", "ibkrfw:3/buyer:dip"]
    assert notices[0].resolution == "agreed"
    assert held == {"buyer": 10, "seller": -4, "(unallocated)": 0}
    assert account == 6
    # the order left working at IB comes back to its own strategy (orderRef read back)
    assert seen == [[("buyer", "dip")], []]
