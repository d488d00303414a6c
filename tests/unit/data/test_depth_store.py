"""Recorded depth: stored as it came, read back equal, replayed as books and bars."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from ibkrfw import BookSide, DataProblem, DepthOperation, DepthUpdate, Side, Stock
from ibkrfw.data import DepthStore
from ibkrfw.errors import ConfigError, DataError
from ibkrfw.sim import DepthFeed, depth_updates_from_frame

ACME, BOLT = Stock("ACME"), Stock("BOLT")
INS, UPD, DEL = DepthOperation.INSERT, DepthOperation.UPDATE, DepthOperation.DELETE
ASK, BID = BookSide.ASK, BookSide.BID
T0 = int(pd.Timestamp("2024-01-02 14:30", tz="UTC").value)
S = 10**9


def snapshot(inst: Stock, ts: int, bid: float, ask: float) -> list[DepthUpdate]:
    rows = []
    for k in range(3):
        rows.append(DepthUpdate(inst, ts, BID, k, INS, round(bid - k * 0.01, 2), 100.0 * (k + 1)))
        rows.append(DepthUpdate(inst, ts, ASK, k, INS, round(ask + k * 0.01, 2), 100.0 * (k + 1)))
    return rows


def test_depth_store_reads_back_what_it_wrote_across_days_and_appends(tmp_path: Path) -> None:
    store = DepthStore(tmp_path)
    first = [*snapshot(ACME, T0, 10.00, 10.02), DepthUpdate(ACME, T0 + S, BID, 0, DEL, 10.0, 0)]
    late = [DepthUpdate(ACME, T0 + 86_400 * S, ASK, 0, UPD, 10.05, 7.0, "ARCA", True)]
    assert store.write(first) == 7
    assert store.write(late) == 1
    assert store.days(ACME) == ["2024-01-02", "2024-01-03"]
    assert store.updates(ACME) == [*first, *late]
    assert store.updates("ACME.SMART", start=T0 + S) == [first[-1], *late]
    assert store.updates(ACME, end="2024-01-02 23:00") == first  # naive: the instrument's zone
    frame = store.read(ACME)
    assert list(frame.columns[:5]) == ["ts_ns", "side", "position", "operation", "price"]
    assert frame["market_maker"].iloc[-1] == "ARCA" and bool(frame["is_smart_depth"].iloc[-1])
    assert DepthStore(tmp_path).instrument("ACME.SMART") == ACME


def test_depth_store_keeps_bad_rows_as_they_came(tmp_path: Path) -> None:
    store = DepthStore(tmp_path)
    bad = DepthUpdate(ACME, T0, BID, 4, UPD, math.nan, -1.0)
    store.write([bad])
    (got,) = store.updates(ACME)
    assert got.position == 4 and math.isnan(got.price) and got.size == -1.0


def test_depth_store_refuses_updates_out_of_time_order(tmp_path: Path) -> None:
    store = DepthStore(tmp_path)
    store.write(snapshot(ACME, T0 + S, 10.0, 10.02))
    with pytest.raises(DataError, match=r"stored up to .* the batch starts at"):
        store.write(snapshot(ACME, T0, 10.0, 10.02))
    backwards = [*snapshot(BOLT, T0 + S, 5.0, 5.01), *snapshot(BOLT, T0, 5.0, 5.01)]
    with pytest.raises(DataError, match=r"row 6 of BOLT\.SMART .* is older than the row before"):
        store.write(backwards)
    assert store.days(BOLT) == []  # nothing of a refused batch is written
    with pytest.raises(ConfigError, match="no instrument 'NONE'"):
        store.updates("NONE")


def test_depth_feed_replays_books_and_yields_a_mid_bar_per_time_stamp(tmp_path: Path) -> None:
    store = DepthStore(tmp_path)
    store.write(snapshot(ACME, T0, 10.00, 10.02))
    store.write(snapshot(BOLT, T0 + S, 5.00, 5.04))
    store.write([DepthUpdate(ACME, T0 + 2 * S, BID, 0, UPD, 10.01, 50.0)])
    feed = store.feed([ACME, "BOLT.SMART"])
    assert feed.instruments == (ACME, BOLT)
    seen = []
    for bar in feed:
        book = feed.book_at(bar.instrument, bar.ts_ns)
        assert book is not None and book.mid == bar.close
        seen.append((bar.instrument.symbol, bar.ts_ns - T0, bar.open, math.isnan(bar.volume)))
    assert seen == [
        ("ACME", 0, pytest.approx(10.01), True),
        ("BOLT", S, pytest.approx(5.02), True),
        ("ACME", 2 * S, pytest.approx(10.015), True),
    ]
    assert feed.book(ACME).levels(1)[0][0].size == 50.0
    assert feed.book_at(ACME, T0) is None  # never a book at a time it does not hold
    assert feed.book(ACME).average_fill_price(Side.BUY, 300) == pytest.approx(
        (10.02 * 100 + 10.03 * 200) / 300
    )


def test_depth_feed_reports_bad_rows_once_and_rebuilds_from_what_follows() -> None:
    rows = [
        *snapshot(ACME, T0, 10.0, 10.02),
        DepthUpdate(ACME, T0 + S, BID, 7, UPD, 9.9, 10.0),  # no row 7: stale
        DepthUpdate(ACME, T0 + 2 * S, BID, 0, UPD, 9.9, 10.0),  # rebuilding: still no row 0
        *snapshot(ACME, T0 + 3 * S, 10.1, 10.12),  # the fresh snapshot
        DepthUpdate(ACME, T0 + 4 * S, ASK, 0, UPD, 10.11, 1.0),
        DepthUpdate(ACME, T0 + 2 * S, ASK, 0, UPD, 10.2, 1.0),  # out of time order
    ]
    feed = DepthFeed(rows)
    got: list[object] = []
    feed.start(None, got.append)  # type: ignore[arg-type]
    bars = [(bar.ts_ns - T0) // S for bar in feed]
    assert bars == [0, 3]  # the out-of-order row spoils the time stamp it arrives in
    assert [type(p) for p in got] == [DataProblem, DataProblem]
    first, second = feed.problems
    assert "update of bid row 7, which is not there (3 rows)" in first.reason
    assert "out of time order" in second.reason and feed.book(ACME).state == "stale"


def test_depth_feed_crossed_book_yields_no_bar() -> None:
    rows = [*snapshot(ACME, T0, 10.0, 10.02), DepthUpdate(ACME, T0 + S, BID, 0, UPD, 10.5, 1.0)]
    feed = DepthFeed(rows)
    assert [bar.ts_ns for bar in feed] == [T0]
    assert "crossed" in feed.problems[0].reason


def test_depth_updates_from_frame_takes_ib_numbers_and_refuses_others() -> None:
    frame = pd.DataFrame(
        {"side": [1, 0], "position": [0, 0], "operation": [0, 0], "price": [9.9, 10.1]},
        index=pd.DatetimeIndex([T0, T0], tz="UTC"),
    ).assign(size=[5.0, 6.0])
    ups = depth_updates_from_frame(frame, ACME)
    assert [(u.side, u.price, u.size, u.ts_ns) for u in ups] == [
        (BID, 9.9, 5.0, T0),
        (ASK, 10.1, 6.0, T0),
    ]
    with pytest.raises(DataError, match="row 1: side 3 must be 0"):
        depth_updates_from_frame(frame.assign(side=[1, 3]), ACME)
    with pytest.raises(DataError, match="column"):
        depth_updates_from_frame(frame.drop(columns="size"), ACME)
    with pytest.raises(DataError, match="naive"):
        depth_updates_from_frame(frame.tz_localize(None), ACME)


def test_depth_feed_groups_rows_of_one_change_stamped_apart() -> None:
    # the quote moves up: IB updates row 0 before row 1, each row stamped on arrival
    rows = [
        *snapshot(ACME, T0, 10.0, 10.02),
        DepthUpdate(ACME, T0 + S, ASK, 0, UPD, 10.05, 100.0),  # above row 1 for a moment
        DepthUpdate(ACME, T0 + S + 1000, ASK, 1, UPD, 10.06, 200.0),
        DepthUpdate(ACME, T0 + S + 2000, ASK, 2, UPD, 10.07, 300.0),
    ]
    strict = DepthFeed(rows)
    assert [bar.ts_ns - T0 for bar in strict] == [0]
    assert "ask row 1 at 10.03 is out of order" in strict.problems[0].reason
    grouped = DepthFeed(rows, group_ns=10_000)
    assert [bar.ts_ns - T0 for bar in grouped] == [0, S + 2000]  # stamped at its last row
    assert not grouped.problems
    with pytest.raises(ConfigError, match="group_ns must be a whole number"):
        DepthFeed(rows, group_ns=-1)
