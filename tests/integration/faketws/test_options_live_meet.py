"""Options live, where features meet: a restart, the chain's filters from the command line.

Found by the issue-23 review. Across a restart the journal, the state directory and IB's
positions agree: a position in an option read back from IB after a restart must be
the same key as the one the journal holds (strike 101.5 as IB sends it, the multiplier, the
trading class), or the reconciliation sees two positions where there is one.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ibkrfw import Option, OrderRequest, Reconciled, Side, Stock
from ibkrfw.testing import FakeTWS, LiveSession, ScriptedStrategy, bars_frame

ACME = Stock("ACME")
LISTED = Option("ACME", expiry="20240119", strike="101.5", right="C")
WEEKLY = Option("ACME", expiry="20240119", strike="101.5", right="P", trading_class="ACMW")
ROWS = [(100, 101, 99, 100), (100.5, 102, 99.5, 101), (101, 103, 98, 102)] * 3
OPTION_ROWS = [(1.5, 1.6, 1.4, 1.5), (1.6, 1.8, 1.5, 1.7), (1.7, 2.2, 1.2, 2.0)] * 3


@pytest.fixture
def tws() -> Iterator[FakeTWS]:
    data = {ACME: bars_frame(ROWS), **{o: bars_frame(OPTION_ROWS) for o in (LISTED, WEEKLY)}}
    with FakeTWS(data=data) as server:
        yield server


def trade(option: Option, side: Side, quantity: int) -> Any:
    def act(ctx: Any, bar: Any) -> None:
        if bar.instrument == option and not ctx.open_orders() and not ctx.position(option).quantity:
            ctx.submit(OrderRequest(option, side, quantity))

    return act


@pytest.mark.parametrize(("option", "side"), [(LISTED, Side.BUY), (WEEKLY, Side.SELL)])
def test_an_option_held_over_a_restart_is_the_same_position(
    tws: FakeTWS, tmp_path: Path, option: Option, side: Side
) -> None:
    state = tmp_path / "state"
    first = ScriptedStrategy({i: trade(option, side, 2) for i in range(6)})
    with LiveSession(first, tws, state_dir=state) as session:
        session.step(3)
        session.stop()
    assert tws.market.portfolio.position(option).quantity == 2 * side.sign
    tws.step(1)
    with LiveSession(ScriptedStrategy({}), tws, state_dir=state) as session:
        session.step(1)
        session.broker.reconcile()
        result = session.stop()
        notices = [e for e in session.engine.notices if isinstance(e, Reconciled)]
        assert session.engine.portfolio is not None
        held = session.engine.portfolio.positions
    assert notices and all(n.resolution == "agreed" for n in notices), notices
    assert all(n.differences == () for n in notices)
    assert {i: p.quantity for i, p in held.items() if p.quantity} == {
        option: Decimal(2 * side.sign)
    }
    assert result.positions.iloc[-1][option.id] == 2 * side.sign


# --- the chain's expiry window, backwards -------------------------------------------------------
def test_a_backwards_expiry_window_is_refused_not_an_empty_chain(
    tws: FakeTWS, tmp_path: Path, capsys: Any
) -> None:
    from ibkrfw import ConfigError
    from ibkrfw.cli import main
    from ibkrfw.ibkr import OptionChain

    chain = OptionChain("X", 1, "SMART", "X", Decimal(100), ("20260116",), (Decimal(10),))
    with pytest.raises(ConfigError, match="expiry_from 2026-03-01 is after expiry_to 2026-01-01"):
        chain.expiries(expiry_from="20260301", expiry_to="20260101")
    args = ["--expiry-from", "20240301", "--expiry-to", "20240101"]
    code = main(["contract", "ACME", "--chain", *args, "--port", str(tws.port),
                 "--state-dir", str(tmp_path)])  # fmt: skip
    assert code == 2
    assert "expiry_from 2024-03-01 is after expiry_to 2024-01-01" in capsys.readouterr().err
