"""TaxLotPortfolio: lots by method, worked by hand; the books agree with Portfolio's."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ibkrfw import ConfigError, Fill, Future, Portfolio, Side, Stock
from ibkrfw.portfolio import ClosedLot, Ledger, LotMethod, TaxLotPortfolio

X = Stock("X")
ES = Future("ES", expiry="202612", exchange="CME", multiplier=50, tick_size="0.25")
DAY_NS = 86_400 * 10**9
TOL = Decimal("1e-9")  # average cost divides: Decimal rounds at 28 digits


def fill(
    side: str, qty: int | str, price: str, fee: str = "0", inst: object = X, ts: int = 0
) -> Fill:
    return Fill(1, inst, Side(side), Decimal(qty), Decimal(price), Decimal(fee), ts, f"e{ts}")  # type: ignore[arg-type]


def book(method: str, *fills: Fill, cash: int = 10_000) -> TaxLotPortfolio:
    pf = TaxLotPortfolio(cash, method=method)
    for f in fills:
        pf.apply_fill(f)
    return pf


# Worked by hand: buy 10 @ 100 (fee 1), buy 10 @ 120 (fee 2), sell 15 @ 130 (fee 3).
WORKED = (
    fill("BUY", 10, "100", "1", ts=1),
    fill("BUY", 10, "120", "2", ts=2),
    fill("SELL", 15, "130", "3", ts=3),
)


def test_tax_lots_fifo_closes_the_oldest_lot_first() -> None:
    pf = book("fifo", *WORKED)
    # 10 of the lot at 100 (+300), then 5 of the lot at 120 (+50)
    assert [(c.open_price, c.quantity, c.gross_pnl) for c in pf.closed_lots] == [
        (100, 10, 300),
        (120, 5, 50),
    ]
    # the sale's fee 3 shared 10:5 (2 and 1); the first lot's own fee 1; half of the second's 2
    assert [c.commission for c in pf.closed_lots] == [Decimal(3), Decimal(2)]
    assert pf.realized_per_fill == [0, 0, 350]
    (lot,) = pf.lots(X)
    assert (lot.quantity, lot.open_price, lot.commission, lot.open_ns) == (5, 120, 1, 2)
    pos = pf.position(X)
    assert (pos.quantity, pos.avg_price, pos.realized_pnl) == (5, 120, 350)


def test_tax_lots_lifo_closes_the_newest_lot_first() -> None:
    pf = book("lifo", *WORKED)
    # 10 of the lot at 120 (+100), then 5 of the lot at 100 (+150)
    assert [(c.open_price, c.quantity, c.gross_pnl) for c in pf.closed_lots] == [
        (120, 10, 100),
        (100, 5, 150),
    ]
    assert [c.commission for c in pf.closed_lots] == [Decimal(4), Decimal("1.5")]
    assert pf.realized_per_fill == [0, 0, 250]
    (lot,) = pf.lots(X)
    assert (lot.quantity, lot.open_price, lot.commission) == (5, 100, Decimal("0.5"))
    assert pf.position(X).avg_price == 100


def test_tax_lots_fifo_and_lifo_differ_by_the_lots_left_open_and_agree_once_flat() -> None:
    fifo, lifo, average = book("fifo", *WORKED), book("lifo", *WORKED), Portfolio(10_000)
    for f in WORKED:
        average.apply_fill(f)
    # average cost: 110 a unit; 15 sold at 130 realise 300
    assert average.position(X).realized_pnl == 300
    for pf in (fifo, lifo, average):
        pf.mark(X, 140.0)
    assert fifo.cash == lifo.cash == average.cash == Decimal(10_000 - 1001 - 1202 + 1947)
    assert fifo.equity == lifo.equity == average.equity
    # realised + unrealised: the same whatever the method
    totals = {p.realized_pnl + Decimal(p.unrealized_pnl) for p in map(_pos, (fifo, lifo, average))}
    assert totals == {Decimal(450)}
    close = fill("SELL", 5, "140", ts=4)
    for pf in (fifo, lifo, average):
        pf.apply_fill(close)
    assert fifo.position(X).realized_pnl == lifo.position(X).realized_pnl == 450
    assert average.position(X).realized_pnl == 450


def _pos(pf: Ledger) -> object:
    return pf.position(X)


def test_tax_lots_hifo_closes_the_dearest_lot_of_a_long_and_the_cheapest_of_a_short() -> None:
    long = book("hifo", fill("BUY", 1, "100", ts=1), fill("BUY", 1, "120", ts=2),
                fill("BUY", 1, "110", ts=3), fill("SELL", 2, "115", ts=4))  # fmt: skip
    assert [c.open_price for c in long.closed_lots] == [120, 110]
    short = book("hifo", fill("SELL", 1, "100", ts=1), fill("SELL", 1, "90", ts=2),
                 fill("SELL", 1, "95", ts=3), fill("BUY", 1, "92", ts=4))  # fmt: skip
    (closed,) = short.closed_lots
    assert (closed.side, closed.open_price, closed.gross_pnl) == (Side.SELL, 90, -2)


def test_tax_lots_a_reversal_closes_every_lot_and_opens_one_with_the_rest() -> None:
    pf = book("fifo", fill("BUY", 2, "10", "1", ts=1), fill("BUY", 2, "12", "1", ts=2),
              fill("SELL", 6, "11", "6", ts=3))  # fmt: skip
    assert [(c.quantity, c.gross_pnl, c.commission) for c in pf.closed_lots] == [
        (2, 2, 3),  # own fee 1, 2/6 of the sale's 6
        (2, -2, 3),
    ]
    (lot,) = pf.lots()
    assert (lot.side, lot.quantity, lot.open_price, lot.commission) == (Side.SELL, 2, 11, 2)
    assert pf.quantity(X) == -2
    pf.apply_fill(fill("BUY", 2, "8", ts=4))  # the short lot closes at a profit
    assert pf.closed_lots[-1].gross_pnl == 6 and pf.lots() == []
    assert pf.position(X).realized_pnl == 6


def test_tax_lots_of_a_future_count_its_multiplier() -> None:
    pf = book("lifo", fill("BUY", 1, "5000", inst=ES, ts=1),
              fill("BUY", 1, "5010", inst=ES, ts=2), fill("SELL", 1, "5020.25", inst=ES, ts=3),
              cash=100_000)  # fmt: skip
    assert pf.closed_lots[0].gross_pnl == Decimal("10.25") * 50
    assert pf.cash == 100_000 - 5000 * 50 - 5010 * 50 + Decimal("5020.25") * 50


def test_tax_lots_long_term_after_the_anniversary_and_never_for_a_short() -> None:
    def lot(side: Side, opened: str, closed: str) -> ClosedLot:
        ns = [int(dt.datetime.fromisoformat(d).replace(tzinfo=dt.UTC).timestamp()) * 10**9
              for d in (opened, closed)]  # fmt: skip
        one = Decimal(1)
        return ClosedLot(X, side, one, ns[0], one, ns[1], one, one, one, "a", "b")

    assert not lot(Side.BUY, "2024-03-01", "2025-03-01").long_term  # the anniversary itself
    assert lot(Side.BUY, "2024-03-01", "2025-03-02").long_term
    assert lot(Side.BUY, "2024-02-29", "2025-03-01").long_term  # anniversary 28 February
    assert not lot(Side.SELL, "2020-01-01", "2025-01-01").long_term
    held = lot(Side.BUY, "2024-01-01", "2024-01-03")
    assert held.held_ns == 2 * DAY_NS and held.pnl == 0


def test_tax_lots_an_unknown_method_is_refused_naming_the_choices() -> None:
    with pytest.raises(ConfigError, match=r"method='FIFO'.*'fifo', 'lifo', 'hifo'"):
        TaxLotPortfolio(0, method="FIFO")
    assert TaxLotPortfolio(0, method=LotMethod.LIFO).method is LotMethod.LIFO


def test_adopt_books_the_position_and_leaves_cash_alone() -> None:
    for pf in (Portfolio(5_000), TaxLotPortfolio(5_000)):
        pf.adopt(fill("BUY", 10, "100", ts=1))
        assert pf.cash == 5_000 and pf.quantity(X) == 10 and pf.position(X).avg_price == 100
        pf.apply_fill(fill("SELL", 10, "110", ts=2))
        assert pf.cash == 6_100 and pf.position(X).realized_pnl == 100


# --- any fill sequence: the books are Portfolio's whatever the method ------------------------
INSTRUMENTS = (X, ES)
fills = st.lists(
    st.tuples(
        st.sampled_from(INSTRUMENTS),
        st.sampled_from(["BUY", "SELL"]),
        st.integers(1, 20),
        st.integers(4000, 4200),
        st.integers(0, 300),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(fills, st.sampled_from(list(LotMethod)))
def test_tax_lots_keep_the_same_books_as_average_cost(
    steps: list[tuple[Stock | Future, str, int, int, int]], method: LotMethod
) -> None:
    average, lots = Portfolio(1_000_000), TaxLotPortfolio(1_000_000, method=method)
    fees = Decimal(0)
    for ts, (inst, side, qty, ticks, cents) in enumerate(steps):
        price = Decimal(ticks) * inst.tick_size
        f = Fill(ts, inst, Side(side), Decimal(qty), price, Decimal(cents) / 100, ts, f"e{ts}")
        fees += f.commission
        for pf in (average, lots):
            pf.apply_fill(f)
            pf.mark(inst, float(price))
        assert lots.cash == average.cash and lots.equity == average.equity
        for i in INSTRUMENTS:
            a, b = average.position(i), lots.position(i)
            assert (
                b.quantity
                == a.quantity
                == sum(
                    lot.quantity if lot.side is Side.BUY else -lot.quantity for lot in lots.lots(i)
                )
            )
            assert {lot.side for lot in lots.lots(i)} <= {Side.BUY if a.quantity > 0 else Side.SELL}
            # realised plus what the open lots would realise at the average's mark
            mark = a.avg_price
            open_pnl = sum(
                ((mark - lot.open_price) if lot.side is Side.BUY else (lot.open_price - mark))
                * lot.quantity * i.multiplier
                for lot in lots.lots(i)
            )  # fmt: skip
            assert b.realized_pnl + open_pnl == pytest.approx(a.realized_pnl, abs=TOL)
            if a.quantity == 0:
                assert b.realized_pnl == pytest.approx(a.realized_pnl, abs=TOL)
    closed_fees = sum((c.commission for c in lots.closed_lots), Decimal(0))
    assert closed_fees + sum((lot.commission for lot in lots.lots()), Decimal(0)) == fees
    assert sum(lots.realized_per_fill) == sum(c.gross_pnl for c in lots.closed_lots)
    assert lots.fills == average.fills and lots.trades == average.trades
