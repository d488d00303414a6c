from __future__ import annotations

import math
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ibkrfw import Fill, Future, Portfolio, Side, Stock
from ibkrfw.portfolio import round_trips

X = Stock("X")
ES = Future("ES", expiry="202612", exchange="CME", multiplier=50, tick_size="0.25")


def fill(
    side: str, qty: int | str, price: str, fee: str = "0", inst: object = X, ts: int = 0
) -> Fill:
    return Fill(1, inst, Side(side), Decimal(qty), Decimal(price), Decimal(fee), ts, f"e{ts}")  # type: ignore[arg-type]


def test_buy_then_sell_realises_profit_and_moves_cash() -> None:
    pf = Portfolio(10_000)
    pf.apply_fill(fill("BUY", 10, "100", fee="1", ts=1))
    assert pf.cash == Decimal("8999")
    pf.mark(X, 105.0)
    assert pf.equity == pytest.approx(8999 + 1050)
    assert pf.position(X).unrealized_pnl == pytest.approx(50.0)
    pf.apply_fill(fill("SELL", 10, "110", fee="1", ts=2))
    pos = pf.position(X)
    assert pos.is_flat and pos.realized_pnl == Decimal(100) and pos.commission == Decimal(2)
    assert pf.cash == Decimal("10098")
    assert pf.positions == {}


def test_average_cost_when_adding() -> None:
    pf = Portfolio(0)
    pf.apply_fill(fill("BUY", 10, "100"))
    pf.apply_fill(fill("BUY", 30, "120"))
    assert pf.position(X).avg_price == Decimal(115)


def test_partial_close_keeps_average_cost() -> None:
    pf = Portfolio(0)
    pf.apply_fill(fill("BUY", 10, "100"))
    pf.apply_fill(fill("SELL", 4, "90"))
    pos = pf.position(X)
    assert (pos.quantity, pos.avg_price, pos.realized_pnl) == (6, 100, -40)


def test_short_then_cover() -> None:
    pf = Portfolio(1000)
    pf.apply_fill(fill("SELL", 5, "50"))
    assert pf.cash == Decimal(1250)
    pf.mark(X, 40.0)
    assert pf.position(X).market_value == pytest.approx(-200.0)
    assert pf.equity == pytest.approx(1050.0)
    pf.apply_fill(fill("BUY", 5, "40"))
    assert pf.position(X).realized_pnl == Decimal(50)


def test_reversal_closes_and_reopens_at_fill_price() -> None:
    pf = Portfolio(0)
    pf.apply_fill(fill("BUY", 10, "100", ts=1))
    pf.apply_fill(fill("SELL", 15, "110", ts=2))
    pos = pf.position(X)
    assert (pos.quantity, pos.avg_price, pos.realized_pnl) == (-5, 110, 100)


def test_futures_multiplier_scales_cash_and_pnl() -> None:
    pf = Portfolio(100_000)
    pf.apply_fill(fill("BUY", 2, "4000", inst=ES))
    assert pf.cash == Decimal(100_000 - 2 * 4000 * 50)
    pf.apply_fill(fill("SELL", 2, "4010.25", inst=ES))
    assert pf.position(ES).realized_pnl == Decimal("1025.00")


def test_round_trips_flat_to_flat_with_partial_exits_and_commissions() -> None:
    fills = [
        fill("BUY", 10, "100", fee="1", ts=1),
        fill("BUY", 10, "110", fee="1", ts=2),
        fill("SELL", 5, "120", fee="1", ts=3),
        fill("SELL", 15, "130", fee="1", ts=4),
    ]
    (trade,) = round_trips(fills)
    assert trade.side is Side.BUY
    assert (trade.entry_ns, trade.exit_ns, trade.quantity) == (1, 4, 20)
    assert trade.entry_price == Decimal(105)
    assert trade.exit_price == Decimal("127.5")
    assert trade.gross_pnl == Decimal(450)
    assert trade.commission == Decimal(4)
    assert trade.pnl == Decimal(446)


def test_round_trips_reversal_splits_commission() -> None:
    fills = [
        fill("BUY", 10, "100", fee="2", ts=1),
        fill("SELL", 20, "90", fee="4", ts=2),
        fill("BUY", 10, "80", fee="2", ts=3),
    ]
    long, short = round_trips(fills)
    assert (long.side, long.gross_pnl, long.commission) == (Side.BUY, -100, 4)
    assert (short.side, short.gross_pnl, short.commission) == (Side.SELL, 100, 4)
    assert short.entry_price == Decimal(90)


def test_open_trade_is_not_listed() -> None:
    assert round_trips([fill("BUY", 1, "10")]) == []


def test_exposure_and_weights_over_long_and_short() -> None:
    y = Stock("Y")
    pf = Portfolio(10_000)
    pf.apply_fill(fill("BUY", 10, "100"))
    pf.apply_fill(fill("SELL", 5, "50", inst=y))
    pf.mark(X, 110.0)
    pf.mark(y, 40.0)
    assert pf.market_value == pytest.approx(1100 - 200)
    assert pf.gross_exposure == pytest.approx(1100 + 200)
    assert pf.equity == pytest.approx(10_000 - 1000 + 250 + 900)
    assert pf.weight(X) == pytest.approx(1100 / pf.equity)


def test_price_is_nan_before_any_mark() -> None:
    assert math.isnan(Portfolio(0).price(X))


# --- accounting invariants ------------------------------------------------------------------
INSTRUMENTS = [X, Stock("Y", lot_size=10), ES]

fills_strategy = st.lists(
    st.tuples(
        st.sampled_from(range(len(INSTRUMENTS))),
        st.sampled_from(["BUY", "SELL"]),
        st.integers(1, 50),
        st.integers(1, 40_000),  # price in ticks
        st.integers(0, 300),  # commission in cents
        st.floats(0.5, 2.0),  # mark as a multiple of the fill price
    ),
    min_size=1,
    max_size=40,
)


@given(fills_strategy)
def test_equity_is_cash_plus_marked_positions_after_any_fills(script: list[tuple]) -> None:  # type: ignore[type-arg]
    start = Decimal(1_000_000)
    pf = Portfolio(start)
    fees = Decimal(0)
    flows = Decimal(0)
    for ts, (k, side, lots, ticks, cents, mark) in enumerate(script):
        inst = INSTRUMENTS[k]
        qty = lots * inst.lot_size
        price = ticks * inst.tick_size
        fee = Decimal(cents) / 100
        pf.apply_fill(Fill(1, inst, Side(side), qty, price, fee, ts, f"e{ts}"))
        pf.mark(inst, float(price) * mark)
        fees += fee
        flows += (qty if side == "BUY" else -qty) * price * inst.multiplier
        # cash is exactly what the fills moved
        assert pf.cash == start - flows - fees
        # equity is cash plus every position at its mark
        marked = sum(p.market_value for p in pf.positions.values())
        assert pf.equity == pytest.approx(float(pf.cash) + marked, rel=1e-12, abs=1e-6)
        # and P&L reconciles: realised + unrealised - commissions = equity - start
        realized = sum(float(pf.position(i).realized_pnl) for i in INSTRUMENTS)
        unrealized = sum(p.unrealized_pnl for p in pf.positions.values())
        assert realized + unrealized - float(fees) == pytest.approx(
            pf.equity - float(start), rel=1e-9, abs=1e-4
        )
    # closed trades account for the realised P&L of the instruments that ended flat
    for trade in pf.trades:
        assert trade.exit_ns >= trade.entry_ns


def test_each_fill_records_the_profit_it_realised() -> None:
    pf = Portfolio(0)
    pf.apply_fill(fill("BUY", 10, "100", ts=1))
    pf.apply_fill(fill("BUY", 10, "102", ts=2))  # average cost 101
    pf.apply_fill(fill("SELL", 15, "104", fee="1", ts=3))  # 15 x 3, before commission
    pf.apply_fill(fill("SELL", 10, "99", ts=4))  # closes 5 at a loss of 2 each, opens 5 short
    pf.apply_fill(fill("BUY", 5, "97", inst=X, ts=5))  # covers at a profit of 2 each
    pf.apply_fill(fill("SELL", 1, "4000", inst=ES, ts=6))
    pf.apply_fill(fill("BUY", 1, "3990", inst=ES, ts=7))  # 10 points x 50
    assert pf.realized_per_fill == [0, 0, 45, -10, 10, 0, 500]
    assert sum(pf.realized_per_fill) == pf.position(X).realized_pnl + pf.position(ES).realized_pnl
