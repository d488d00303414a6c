"""The depth book: IB's row operations, the readings, and what bad data does."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from ibkrfw import (
    BookLevel,
    BookSide,
    DataProblem,
    DepthBook,
    DepthOperation,
    DepthUpdate,
    Side,
    Stock,
)
from ibkrfw.errors import ConfigError

ACME = Stock("ACME")
INS, UPD, DEL = DepthOperation.INSERT, DepthOperation.UPDATE, DepthOperation.DELETE
ASK, BID = BookSide.ASK, BookSide.BID


def up(
    side: BookSide, position: int, op: DepthOperation, price: float = 0.0, size: float = 0.0
) -> DepthUpdate:
    return DepthUpdate(ACME, 1, side, position, op, price, size)


def book_of(bids: list[tuple[float, float]], asks: list[tuple[float, float]]) -> DepthBook:
    book = DepthBook(ACME, max_levels=10)
    for side, levels in ((BID, bids), (ASK, asks)):
        for row, (price, size) in enumerate(levels):
            assert book.apply(up(side, row, INS, price, size)) is None
    assert book.check() is None
    return book


def prices(levels: tuple[BookLevel, ...]) -> list[float]:
    return [level.price for level in levels]


def test_depth_book_insert_at_a_row_moves_the_rows_below_down() -> None:
    book = book_of([(99.0, 100), (98.0, 200)], [(101.0, 100)])
    assert book.apply(up(BID, 1, INS, 98.5, 50)) is None
    bids, asks = book.levels()
    assert bids == (BookLevel(99.0, 100), BookLevel(98.5, 50), BookLevel(98.0, 200))
    assert prices(asks) == [101.0]


def test_depth_book_delete_at_a_row_moves_the_rows_below_up() -> None:
    book = book_of([(99.0, 100), (98.5, 50), (98.0, 200)], [(101.0, 100), (102.0, 300)])
    assert book.apply(up(BID, 0, DEL)) is None
    assert book.apply(up(ASK, 0, DEL, 101.0, 100)) is None
    bids, asks = book.levels()
    assert prices(bids) == [98.5, 98.0] and asks == (BookLevel(102.0, 300),)
    assert book.best_bid == 98.5 and book.best_ask == 102.0


def test_depth_book_update_replaces_the_row_with_its_market_maker() -> None:
    book = book_of([(99.0, 100)], [(101.0, 100)])
    update = DepthUpdate(ACME, 5, BID, 0, UPD, 99.25, 700, "NSDQ", True)
    assert book.apply(update) is None
    assert book.levels()[0] == (BookLevel(99.25, 700, "NSDQ"),)
    assert book.ts_ns == 5


def test_depth_book_keeps_at_most_max_levels_the_deepest_falls_off() -> None:
    book = DepthBook(ACME, max_levels=2)
    for row, price in enumerate((101.0, 102.0)):
        assert book.apply(up(ASK, row, INS, price, 1)) is None
    assert book.apply(up(ASK, 0, INS, 100.5, 1)) is None
    assert prices(book.levels()[1]) == [100.5, 101.0]
    problem = book.apply(up(ASK, 2, INS, 103.0, 1))
    assert isinstance(problem, DataProblem) and "beyond the book" in problem.reason


def test_depth_book_readings_spread_mid_levels_and_volume() -> None:
    book = book_of([(99.0, 100), (98.0, 200)], [(101.0, 150), (102.0, 250), (103.0, 400)])
    assert (book.spread, book.mid) == (2.0, 100.0)
    assert book.levels(1) == ((BookLevel(99.0, 100),), (BookLevel(101.0, 150),))
    assert book.volume_to(Side.BUY, 102.0) == 400
    assert book.volume_to(Side.BUY, 100.0) == 0
    assert book.volume_to(Side.SELL, 98.0) == 300
    assert book.state == "ok"


def test_depth_book_walk_averages_the_levels_taken_and_reports_a_thin_book() -> None:
    book = book_of([(99.0, 100)], [(101.0, 150), (102.0, 250)])
    assert book.average_fill_price(Side.BUY, 300) == pytest.approx((101 * 150 + 102 * 150) / 300)
    walk = book.walk(Side.BUY, 500)
    assert walk is not None and not walk.complete
    assert (walk.filled, walk.takes, walk.worst_price) == (400, ((101.0, 150), (102.0, 250)), 102.0)
    assert book.average_fill_price(Side.BUY, 500) is None  # thinner than the order
    limited = book.walk(Side.BUY, 500, limit=101.5)
    assert limited is not None and limited.takes == ((101.0, 150),)
    depleted = book.walk(Side.BUY, 200, taken={101.0: 100.0})
    assert depleted is not None and depleted.takes == ((101.0, 50), (102.0, 150))
    empty = book.walk(Side.SELL, 10, limit=100.0)
    assert empty is not None and empty.filled == 0 and empty.average_price is None


def test_depth_book_walk_takes_from_equal_prices_of_several_market_makers() -> None:
    book = DepthBook(ACME)
    for row, (price, maker) in enumerate(((101.0, "ARCA"), (101.0, "NSDQ"), (102.0, "ARCA"))):
        assert book.apply(DepthUpdate(ACME, 1, ASK, row, INS, price, 100, maker)) is None
    walk = book.walk(Side.BUY, 250, taken={101.0: 120.0})
    assert walk is not None and walk.takes == ((101.0, 80), (102.0, 100))


@pytest.mark.parametrize(
    ("update", "words"),
    [
        (up(BID, 3, INS, 97.0, 10), "beyond the book"),
        (up(BID, 2, DEL), "delete of bid row 2, which is not there"),
        (up(ASK, 1, UPD, 102.0, 10), "update of ask row 1, which is not there"),
        (up(BID, 0, UPD, 99.0, -5), "size -5 at row 0 is not a finite number >= 0"),
        (up(ASK, 0, UPD, math.nan, 5), "ask price nan"),
        (up(BID, -1, INS, 99.0, 5), "position -1"),
    ],
)
def test_depth_book_malformed_update_reports_a_problem_and_goes_stale(
    update: DepthUpdate, words: str
) -> None:
    book = book_of([(99.0, 100), (98.0, 100)], [(101.0, 100)])
    problem = book.apply(update)
    assert isinstance(problem, DataProblem)
    assert words in problem.reason and "ACME" in problem.reason and problem.instrument == ACME
    assert book.state == "stale" and book.problem is not None
    # it answers nothing from a corrupt state, and ignores what comes until reset
    assert (book.best_bid, book.best_ask, book.mid, book.spread) == (None, None, None, None)
    assert book.levels() == ((), ())
    assert book.volume_to(Side.BUY, 200.0) is None
    assert book.walk(Side.BUY, 1) is None and book.average_fill_price(Side.BUY, 1) is None
    assert book.apply(up(BID, 0, INS, 99.0, 1)) is None and book.best_bid is None
    book.reset()
    assert book.state == "ok" and book.apply(up(BID, 0, INS, 99.0, 1)) is None
    assert book.best_bid == 99.0


def test_depth_book_crossed_or_disordered_book_is_a_problem_when_checked() -> None:
    book = book_of([(99.0, 100)], [(101.0, 100), (102.0, 100)])
    # one row at a time the book may pass through disorder: only the finished change counts
    assert book.apply(up(ASK, 0, UPD, 103.0, 100)) is None
    assert book.apply(up(ASK, 1, UPD, 104.0, 100)) is None
    assert book.check() is None
    assert book.apply(up(BID, 0, UPD, 103.5, 100)) is None
    problem = book.check()
    assert isinstance(problem, DataProblem) and "crossed (bid 103.5 above ask 103.0)" in (
        problem.reason
    )
    assert book.state == "stale"
    locked = book_of([(101.0, 1)], [(101.0, 1)])  # locked, not crossed
    assert locked.state == "ok"
    disordered = book_of([(99.0, 1)], [(101.0, 1), (102.0, 1)])
    assert disordered.apply(up(ASK, 1, UPD, 100.5, 1)) is None
    problem = disordered.check()
    assert problem is not None and "ask row 1 at 100.5 is out of order" in problem.reason


def test_depth_book_wrong_input_is_a_config_error_naming_it() -> None:
    with pytest.raises(ConfigError, match="max_levels must be a whole number >= 1"):
        DepthBook(ACME, max_levels=0)
    book = DepthBook(ACME)
    with pytest.raises(ConfigError, match=r"of ACME\.SMART was given an update of OTHR\.SMART"):
        book.apply(DepthUpdate(Stock("OTHR"), 1, BID, 0, INS, 1.0, 1.0))
    with pytest.raises(ConfigError, match="quantity must be a finite number > 0, got 0"):
        book.walk(Side.BUY, 0)
    with pytest.raises(ConfigError, match=r"side must be Side\.BUY or Side\.SELL"):
        book.volume_to("BUY", 1.0)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="n must be a whole number >= 0"):
        book.levels(-1)


def test_depth_book_snapshot_is_a_table() -> None:
    book = book_of([(99.0, 100)], [(101.0, 150), (102.0, 250)])
    text = str(book.snapshot())
    assert "ACME.SMART book (ok)" in text
    assert text.splitlines()[2].split() == ["100", "99", "|", "101", "150"]
    assert text.splitlines()[3].split() == ["|", "102", "250"]


# --- the book against a reference model, under random valid sequences -----------------------
MAX = 4


class BookMachine(RuleBasedStateMachine):
    """Random row operations, valid as IB sends them; the book must equal a plain model."""

    def __init__(self) -> None:
        super().__init__()
        self.book = DepthBook(ACME, max_levels=MAX)
        # the reference: plain lists of (price, size), best first, per IB side number
        self.ref: list[list[tuple[float, float]]] = [[], []]

    def _price(self, side: int, position: int, data: st.DataObject) -> float:
        """A price that keeps the side in order and the book uncrossed (in cents)."""
        rows = self.ref[side]
        other = self.ref[1 - side]
        if side == 0:  # asks rise; above the best bid
            low = rows[position - 1][0] if position else (other[0][0] if other else 90.0)
            high = rows[position][0] if position < len(rows) else 110.0
        else:
            high = rows[position - 1][0] if position else (other[0][0] if other else 110.0)
            low = rows[position][0] if position < len(rows) else 90.0
        cents = data.draw(st.integers(round(low * 100), round(high * 100)))
        return cents / 100

    @rule(side=st.sampled_from([0, 1]), data=st.data(), size=st.integers(0, 1000))
    def insert(self, side: int, data: st.DataObject, size: int) -> None:
        rows = self.ref[side]
        position = data.draw(st.integers(0, min(len(rows), MAX - 1)))
        price = self._price(side, position, data)
        assert self.book.apply(up(BookSide(side), position, INS, price, size)) is None
        rows.insert(position, (price, float(size)))
        del rows[MAX:]

    @rule(side=st.sampled_from([0, 1]), data=st.data(), size=st.integers(0, 1000))
    def update(self, side: int, data: st.DataObject, size: int) -> None:
        rows = self.ref[side]
        if not rows:
            return
        position = data.draw(st.integers(0, len(rows) - 1))
        neighbours = rows[:position] + rows[position + 1 :]
        saved, self.ref[side] = rows, neighbours  # price between the neighbours it keeps
        price = self._price(side, position, data)
        self.ref[side] = saved
        assert self.book.apply(up(BookSide(side), position, UPD, price, size)) is None
        rows[position] = (price, float(size))

    @rule(side=st.sampled_from([0, 1]), data=st.data())
    def delete(self, side: int, data: st.DataObject) -> None:
        rows = self.ref[side]
        if not rows:
            return
        position = data.draw(st.integers(0, len(rows) - 1))
        assert self.book.apply(up(BookSide(side), position, DEL)) is None
        del rows[position]

    @invariant()
    def equals_the_reference_and_is_never_crossed(self) -> None:
        assert self.book.check() is None
        bids, asks = self.book.levels()
        assert [(lv.price, lv.size) for lv in asks] == self.ref[0]
        assert [(lv.price, lv.size) for lv in bids] == self.ref[1]
        if bids and asks:
            assert bids[0].price <= asks[0].price
        assert self.book.state == "ok"


TestBookMachine = BookMachine.TestCase
TestBookMachine.settings = settings(
    settings.default, max_examples=60, stateful_step_count=40, derandomize=True
)


@pytest.mark.parametrize("seed_side", [0, 1])
def test_depth_book_any_structurally_bad_update_goes_stale(seed_side: int) -> None:
    """Rows that are not there, on either side: always a problem, never half applied."""
    book = book_of([(99.0, 1), (98.0, 1)], [(101.0, 1)])
    n = 2 if seed_side == 1 else 1
    for op, position in ((UPD, n), (DEL, n), (INS, n + 1)):
        fresh = book_of([(99.0, 1), (98.0, 1)], [(101.0, 1)])
        assert isinstance(fresh.apply(up(BookSide(seed_side), position, op, 100.0, 1)), DataProblem)
        assert fresh.state == "stale"
    assert book.state == "ok"


@settings(max_examples=100, derandomize=True)
@given(
    bids=st.integers(0, MAX),
    asks=st.integers(0, MAX),
    kind=st.sampled_from(["gap", "delete", "update", "negative", "nan", "inf"]),
    side=st.sampled_from([ASK, BID]),
)
def test_depth_book_malformed_update_after_any_valid_book_goes_stale(
    bids: int, asks: int, kind: str, side: BookSide
) -> None:
    book = DepthBook(ACME, max_levels=MAX)
    for row in range(bids):
        assert book.apply(up(BID, row, INS, 99.0 - row, 10)) is None
    for row in range(asks):
        assert book.apply(up(ASK, row, INS, 101.0 + row, 10)) is None
    rows = bids if side is BID else asks
    bad = {
        "gap": up(side, rows + 1, INS, 100.0, 1),
        "delete": up(side, rows, DEL),
        "update": up(side, rows, UPD, 100.0, 1),
        "negative": up(side, 0, INS, 100.0, -1),
        "nan": up(side, 0, INS, math.nan, 1),
        "inf": up(side, 0, INS, math.inf, 1),
    }[kind]
    problem = book.apply(bad)
    assert isinstance(problem, DataProblem) and problem.instrument == ACME
    assert book.state == "stale" and book.snapshot().bids == () and book.mid is None
