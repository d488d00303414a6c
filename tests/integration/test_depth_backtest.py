"""A backtest on recorded depth: orders fill by walking the book, and the books reconcile."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from ibkrfw import (
    BookSide,
    BookSnapshot,
    DataProblem,
    DepthBook,
    DepthOperation,
    DepthUpdate,
    Engine,
    Fill,
    OrderStatus,
    Side,
    Stock,
)
from ibkrfw.data import DepthStore
from ibkrfw.errors import ConfigError
from ibkrfw.sim import DataFrameFeed, DepthFeed, FixedBpsSlippage, PerShareCommission, SimBroker
from ibkrfw.testing import ScriptedStrategy, bars_frame

ACME, OTHR = Stock("ACME"), Stock("OTHR")
T0 = int(pd.Timestamp("2024-01-02 14:30", tz="UTC").value)
S = 10**9
LEVELS = 4  # per side, sizes 100, 200, 300, 400: 1000 a side


def recording(stamps: int = 14, snapshots: tuple[int, ...] = (0,)) -> list[DepthUpdate]:
    """A deterministic session: a snapshot, then every row updated as the mid wanders."""
    rows: list[DepthUpdate] = []
    mid = 10.01
    for i in range(stamps):
        ts = T0 + i * S
        op = DepthOperation.INSERT if i in snapshots else DepthOperation.UPDATE
        mid = round(mid + 0.01 * ((i % 3) - 1), 2)
        for k in range(LEVELS):
            size = 100.0 * (k + 1)
            ask, bid = round(mid + 0.01 * (k + 1), 2), round(mid - 0.01 * (k + 1), 2)
            rows.append(DepthUpdate(ACME, ts, BookSide.ASK, k, op, ask, size))
            rows.append(DepthUpdate(ACME, ts, BookSide.BID, k, op, bid, size))
    return rows


def books(rows: list[DepthUpdate]) -> dict[int, BookSnapshot]:
    """The recorded book at each time stamp, rebuilt on its own."""
    book, out = DepthBook(ACME), {}
    for update in rows:
        assert book.apply(update) is None
        out[update.ts_ns] = book.snapshot()
    return out


def run(tmp_path: Path, actions: dict, **broker: object):  # type: ignore[no-untyped-def, type-arg]
    store = DepthStore(tmp_path)
    store.write(recording())
    feed = store.feed(ACME, max_levels=LEVELS)
    script = ScriptedStrategy(actions)
    sim = SimBroker(100_000, depth=feed, commission=PerShareCommission(0.005), **broker)  # type: ignore[arg-type]
    result = Engine(script, feed, sim).run()
    return script, result


def by_order(fills: list[Fill]) -> dict[int, list[Fill]]:
    out: dict[int, list[Fill]] = defaultdict(list)
    for fill in fills:
        out[fill.order_id].append(fill)
    return out


def test_market_and_limit_orders_walk_the_recorded_book_and_the_books_reconcile(
    tmp_path: Path,
) -> None:
    script, result = run(
        tmp_path,
        {
            0: lambda ctx, bar: (ctx.buy(ACME, 250), ctx.buy(ACME, 200)),  # same time stamp
            3: lambda ctx, bar: ctx.sell(ACME, 1500),  # more than the bids hold
            6: lambda ctx, bar: ctx.buy(ACME, 1000, limit_price=bar.close + 0.02),
        },
    )
    recorded = books(recording())
    orders = {o.order_id: o for o in result.order_list}
    fills = by_order(script.fills)
    assert len(fills) == 4
    first, second, big, limit = (fills[i] for i in sorted(fills))
    for order_id, taken in fills.items():
        assert sum(f.quantity for f in taken) == orders[order_id].filled_quantity
        for ts in {f.ts_ns for f in taken}:  # each fill a level of that time stamp's book
            at = [f for f in taken if f.ts_ns == ts]
            side = recorded[ts].asks if at[0].side is Side.BUY else recorded[ts].bids
            levels = [Decimal(str(level.price)) for level in side]
            taken_prices = [f.price for f in at]
            start = levels.index(taken_prices[0])  # later orders find the best levels taken
            assert taken_prices == levels[start : start + len(at)]
            qty = sum(f.quantity for f in at)
            average = sum(f.price * f.quantity for f in at) / qty
            best, worst = taken_prices[0], taken_prices[-1]
            assert min(best, worst) <= average <= max(best, worst)
    # the first buy takes 100 at the best ask and 150 at the next; the second, at the same
    # time stamp, finds only 50 left there: the book is depleted within a time stamp
    assert [f.quantity for f in first] == [100, 150]
    assert [f.quantity for f in second] == [50, 150]
    assert second[0].price == first[1].price and second[1].price > first[1].price
    # 1500 against 1000 of bids: a partial fill, the rest from the next time stamps' books,
    # less what it took at the prices they still show (9.96 left the book at 5: fresh at 6)
    assert [(f.ts_ns - T0) // S for f in big] == [4] * 4 + [5] * 4 + [6]
    assert sum(f.quantity for f in big[:4]) == 1000
    assert [(str(f.price), int(f.quantity)) for f in big[4:]] == [
        ("10.00", 100),
        ("9.99", 100),
        ("9.98", 100),
        ("9.97", 100),
        ("9.96", 100),
    ]
    assert orders[3].status is OrderStatus.FILLED
    # the limit takes only the levels at or under it, and keeps working for the rest
    cap = orders[4].request.limit_price
    assert cap is not None and all(f.price <= cap for f in limit)
    first_ts = [f for f in limit if f.ts_ns == T0 + 7 * S]
    under = sum(lv.size for lv in recorded[T0 + 7 * S].asks if lv.price <= float(cap))
    assert 0 < sum(f.quantity for f in first_ts) <= under  # the asks at or under the limit
    assert orders[4].status is OrderStatus.PARTIALLY_FILLED  # it took what it could
    # positions are the sum of the fills; cash is what they cost
    held = sum(f.signed_quantity for f in script.fills)
    assert result.positions["ACME.SMART"].iloc[-1] == float(held)
    spent = sum(f.signed_quantity * f.price + f.commission for f in script.fills)
    assert result.equity["cash"].iloc[-1] == pytest.approx(100_000 - float(spent))


def test_what_an_order_took_stays_gone_while_the_recording_shows_that_price() -> None:
    ask, bid = BookSide.ASK, BookSide.BID
    ins, upd, dele = DepthOperation.INSERT, DepthOperation.UPDATE, DepthOperation.DELETE
    rows = [
        DepthUpdate(ACME, T0, bid, 0, ins, 9.99, 100),
        DepthUpdate(ACME, T0, ask, 0, ins, 10.01, 100),
        DepthUpdate(ACME, T0, ask, 1, ins, 10.02, 200),
        DepthUpdate(ACME, T0, ask, 2, ins, 10.03, 300),
    ]
    for i in range(1, 7):  # the book is recorded unchanged, but 10.01 leaves at 3, back at 4
        rows.append(DepthUpdate(ACME, T0 + i * S, bid, 0, upd, 9.99, 100))
        if i == 3:
            rows.append(DepthUpdate(ACME, T0 + i * S, ask, 0, dele, 10.01, 100))
        if i == 4:
            rows.append(DepthUpdate(ACME, T0 + i * S, ask, 0, ins, 10.01, 100))
    feed = DepthFeed(rows)
    script = ScriptedStrategy(
        {
            0: lambda ctx, bar: ctx.buy(ACME, 150),  # 100 at 10.01, 50 at 10.02
            1: lambda ctx, bar: ctx.buy(ACME, 100),  # 10.01 is still taken: 10.02
            4: lambda ctx, bar: ctx.buy(ACME, 100),  # 10.01 left and came back: fresh
        }
    )
    Engine(script, feed, SimBroker(depth=feed)).run()
    got = [((f.ts_ns - T0) // S, str(f.price), int(f.quantity)) for f in script.fills]
    assert got == [(1, "10.01", 100), (1, "10.02", 50), (2, "10.02", 100), (5, "10.01", 100)]


def test_ioc_market_order_on_a_thin_book_expires_the_rest(tmp_path: Path) -> None:
    script, result = run(tmp_path, {0: lambda ctx, bar: ctx.sell(ACME, 1200, tif="IOC")})
    (order,) = result.order_list
    assert order.filled_quantity == 1000 and order.status is OrderStatus.EXPIRED
    assert len(script.fills) == LEVELS


def test_bars_of_instruments_without_depth_fill_by_the_bar_rules(tmp_path: Path) -> None:
    store = DepthStore(tmp_path)
    store.write(recording())
    depth = store.feed(ACME)
    bars = DataFrameFeed(
        bars_frame([(50, 51, 49, 50)] * 3, start="2024-01-02 14:30", freq="1s"), OTHR
    )
    script = ScriptedStrategy({0: lambda ctx, bar: ctx.buy(OTHR, 10)})
    Engine(script, [depth, bars], SimBroker(depth=depth)).run()
    (fill,) = script.fills
    assert (fill.instrument, fill.price) == (OTHR, Decimal(50))


def test_a_bad_row_in_the_recording_reaches_the_strategy_as_a_data_problem() -> None:
    rows = recording(5, snapshots=(0, 3))  # the live feed's fresh snapshot at 3
    bad = DepthUpdate(ACME, T0 + 2 * S, BookSide.BID, 9, DepthOperation.DELETE, 0, 0)
    rows.insert(3 * 2 * LEVELS, bad)
    feed = DepthFeed(rows)
    script = ScriptedStrategy({})
    engine = Engine(script, feed, SimBroker(depth=feed))
    engine.run()
    (problem,) = [e for e in engine.notices if isinstance(e, DataProblem)]
    assert "delete of bid row 9" in problem.reason
    assert len(script.bars) == 4  # the spoilt time stamp yields no bar; the next is rebuilt


@pytest.mark.parametrize(
    ("setting", "words"),
    [
        ({"slippage": FixedBpsSlippage(1)}, "leave slippage unset"),
        ({"volume_limit": 0.5}, "leave volume_limit unset"),
        ({"fill_on": "quotes"}, "fill_on='quotes'"),
        ({"fill_timing": "this_close"}, "fill_timing='this_close'"),
        ({"depth": "book.parquet"}, "depth must be a depth source"),
    ],
)
def test_depth_fills_refuse_settings_that_would_count_the_impact_twice(
    setting: dict,
    words: str,  # type: ignore[type-arg]
) -> None:
    kwargs = {"depth": DepthFeed(recording(1)), **setting}
    with pytest.raises(ConfigError, match=words.replace("(", r"\(")):
        SimBroker(**kwargs)
