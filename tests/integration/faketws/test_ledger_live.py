"""A tax-lot ledger live, through the fake TWS over a real socket, and across a restart."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from ibkrfw import ConfigError, EngineError, Side
from ibkrfw.portfolio import TaxLotPortfolio
from ibkrfw.sim import IBKRFixedCommission
from ibkrfw.strategies import MovingAverageCrossover
from ibkrfw.testing import FakeTWS, LiveSession, ScriptedStrategy


def test_a_tax_lot_ledger_live_keeps_the_accounts_books_and_its_lots() -> None:
    script = ScriptedStrategy({
        0: lambda ctx, bar: ctx.buy(bar.instrument, 10),
        2: lambda ctx, bar: ctx.buy(bar.instrument, 5),
        4: lambda ctx, bar: ctx.sell(bar.instrument, 12),
    })  # fmt: skip
    with FakeTWS.from_sample(["ACME"], commission=IBKRFixedCommission()) as tws:
        ledger = TaxLotPortfolio(tws.market.portfolio.cash, method="lifo")
        with LiveSession(script, tws, portfolio=ledger) as session:
            session.step(8)
            result = session.stop()
        account = tws.market.portfolio  # what the fake TWS's account holds
    inst = result.fill_list[0].instrument
    assert session.engine.portfolio is ledger
    assert ledger.quantity(inst) == account.quantity(inst) == 3
    assert ledger.cash == account.cash
    first, second, sale = result.fill_list
    # LIFO: the 5 bought second close first, then 7 of the first 10
    assert [(c.open_price, c.quantity) for c in ledger.closed_lots] == [
        (second.price, 5),
        (first.price, 7),
    ]
    assert all(c.close_price == sale.price for c in ledger.closed_lots)
    (lot,) = ledger.lots(inst)
    assert (lot.quantity, lot.open_price, lot.side) == (3, first.price, Side.BUY)
    commissions = sum((f.commission for f in result.fill_list), Decimal(0))
    assert sum(c.commission for c in ledger.closed_lots) + lot.commission == commissions
    assert list(result.fills["realized_pnl"]) == ledger.realized_per_fill


def test_a_live_run_with_the_tax_lot_ledger_matches_the_default() -> None:
    def run(lots: bool) -> tuple[list[object], float]:
        with FakeTWS.from_sample(["ACME"]) as tws:
            ledger = TaxLotPortfolio(tws.market.portfolio.cash) if lots else None
            with LiveSession(MovingAverageCrossover(), tws, portfolio=ledger) as session:
                session.step(300)
                result = session.stop()
        return [(f.side, f.quantity, f.price) for f in result.fill_list], result.stats[
            "Final equity"
        ]

    default, lots = run(False), run(True)
    assert default == lots and len(default[0]) > 2


def test_after_a_restart_a_tax_lot_ledger_starts_from_the_accounts_positions(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    with FakeTWS.from_sample(["ACME"]) as tws:
        buy = ScriptedStrategy({0: lambda ctx, bar: ctx.buy(bar.instrument, 10)})
        with LiveSession(buy, tws, state_dir=state) as session:
            session.step(3)
            session.stop()  # the process ends holding 10
        cash = tws.market.portfolio.cash
        held = tws.market.portfolio.positions
        (inst,) = held
        cost = held[inst].avg_price
        wrong = TaxLotPortfolio(cash + 1)
        with LiveSession(ScriptedStrategy({}), tws, state_dir=state, portfolio=wrong) as session:
            session.step(1)
            with pytest.raises(EngineError) as refused:
                session.stop()
        assert isinstance(refused.value.__cause__, ConfigError)
        assert "starts with cash" in str(refused.value.__cause__)
        ledger = TaxLotPortfolio(cash)
        sell = ScriptedStrategy({0: lambda ctx, bar: ctx.sell(bar.instrument, 4)})
        with LiveSession(sell, tws, state_dir=state, portfolio=ledger) as session:
            start_ns = session.engine.clock.now_ns()
            session.step(3)
            result = session.stop()
        account = tws.market.portfolio
    # the adopted position is one lot at IB's average cost, opened when the run started
    (closed,) = ledger.closed_lots
    assert (closed.quantity, closed.open_price) == (4, cost)
    assert closed.open_fill_id.startswith("adopted:")
    (lot,) = ledger.lots(inst)
    assert (lot.quantity, lot.open_price) == (6, cost)
    assert lot.open_ns >= start_ns
    assert ledger.cash == account.cash and ledger.quantity(inst) == account.quantity(inst) == 6
    assert result.fill_list[-1].quantity == 4
