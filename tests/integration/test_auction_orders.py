"""On-open (time in force OPG) and on-close (MOC, LOC) orders in the simulator."""

from __future__ import annotations

from decimal import Decimal

import pandas as pd
import pytest

from ibkrfw import Bar, Context, Engine, OrderRequest, OrderStatus, OrderType, Stock, TimeInForce
from ibkrfw.sim import DataFrameFeed, SimBroker
from ibkrfw.testing import ScriptedStrategy, bars_frame

X = Stock("X")  # New York time
D = Decimal

# Two days of three hourly bars from 9:30 New York time (14:30 UTC), open/high/low/close.
DAY1 = [(100, 101, 99, 100), (100, 102, 99, 101), (101, 103, 100, 102)]
DAY2 = [(105, 106, 104, 105), (105, 107, 104, 106), (106, 108, 105, 107)]


def _intraday() -> pd.DataFrame:
    return pd.concat(
        [
            bars_frame(DAY1, start="2024-01-02 14:30", freq="1h"),
            bars_frame(DAY2, start="2024-01-03 14:30", freq="1h"),
        ]
    )


def _run(actions: dict, frame: pd.DataFrame | None = None, **broker_kw: object):  # type: ignore[no-untyped-def, type-arg]
    script = ScriptedStrategy(actions)
    feed = DataFrameFeed(_intraday() if frame is None else frame, X)
    result = Engine(script, feed, SimBroker(100_000, **broker_kw)).run()  # type: ignore[arg-type]
    return script, result


def _moc(side: str = "BUY", qty: int = 10, limit: str | None = None) -> OrderRequest:
    kind = OrderType.MARKET_ON_CLOSE if limit is None else OrderType.LIMIT_ON_CLOSE
    return OrderRequest(X, side, qty, kind, limit_price=limit)  # type: ignore[arg-type]


def test_market_on_close_fills_at_the_close_of_the_days_last_bar() -> None:
    held: list[Decimal] = []

    def look(ctx: Context, bar: Bar) -> None:
        held.append(ctx.position(X).quantity)

    script, result = _run(
        {0: lambda ctx, bar: ctx.submit(_moc()), 1: look, 2: look, 3: look, 4: look}
    )
    (fill,) = script.fills
    assert fill.price == D(102)  # day 1's last close, not the close of the next bar (101)
    assert fill.ts_ns == script.bars[2].ts_ns  # stamped at the closing bar
    # Bar 2 is known to be the day's last when day 2's first bar arrives: the strategy hears
    # of the fill then, before that bar's on_bar.
    assert held == [0, 0, 10, 10]
    assert result.order_list[0].status is OrderStatus.FILLED
    assert result.equity["equity"].iloc[2] == 100_000  # bought at the close it is marked at


def test_limit_on_close_fills_only_if_the_close_satisfies_the_limit() -> None:
    script, result = _run(
        {0: lambda ctx, bar: (ctx.submit(_moc(limit="102")), ctx.submit(_moc(limit="101.50")))}
    )
    assert [(f.order_id, f.price) for f in script.fills] == [(1, D(102))]
    missed = result.order_list[1]
    assert missed.status is OrderStatus.EXPIRED  # the closing auction is over
    assert missed.updated_ns == script.bars[2].ts_ns


def test_a_sell_limit_on_close_needs_a_close_at_or_above_the_limit() -> None:
    script, _ = _run(
        {
            0: lambda ctx, bar: ctx.buy(X, 20),
            1: lambda ctx, bar: (
                ctx.submit(_moc("SELL", 10, limit="102")),
                ctx.submit(_moc("SELL", 10, limit="102.01")),
            ),
        }
    )
    assert [(f.order_id, f.price) for f in script.fills] == [(1, D(100)), (2, D(102))]


def test_an_on_close_order_sent_on_the_days_last_bar_waits_for_the_next_close() -> None:
    script, result = _run({2: lambda ctx, bar: ctx.submit(_moc())})
    # Day 2 never sees a bar of a later day: the order is still waiting when the data ends.
    assert script.fills == []
    assert result.order_list[0].status is OrderStatus.SUBMITTED


def test_market_on_open_waits_for_the_next_days_open() -> None:
    script, _ = _run({0: lambda ctx, bar: ctx.buy(X, 10, tif="OPG")})
    (fill,) = script.fills
    assert fill.price == D(105)  # day 2's open, not bar 1's open of 100
    assert fill.ts_ns == script.bars[3].ts_ns


def test_limit_on_open_fills_at_the_open_or_not_at_all() -> None:
    script, result = _run(
        {
            0: lambda ctx, bar: (
                ctx.buy(X, 10, limit_price="105", tif="OPG"),
                ctx.buy(X, 10, limit_price="104", tif="OPG"),
            )
        }
    )
    assert [(f.order_id, f.price) for f in script.fills] == [(1, D(105))]
    # Day 2's first bar trades down to 104 after the open, too late for an auction order.
    assert result.order_list[1].status is OrderStatus.EXPIRED
    assert result.order_list[1].updated_ns == script.bars[3].ts_ns


def test_on_daily_bars_each_bar_is_a_session() -> None:
    rows = [
        (100, 101, 99, 100),
        (102, 103, 101, 102.5),
        (104, 105, 103, 104.5),
        (106, 107, 105, 106),
    ]
    script, _ = _run(
        {
            0: lambda ctx, bar: (ctx.buy(X, 1, tif="OPG"), ctx.submit(_moc(qty=2))),
        },
        frame=bars_frame(rows),
    )
    opened, closed = script.fills
    assert (opened.quantity, opened.price, opened.ts_ns) == (1, D(102), script.bars[1].ts_ns)
    # The close of bar 1 (102.50), known to be the day's last when bar 2 arrives.
    assert (closed.quantity, closed.price, closed.ts_ns) == (2, D("102.5"), script.bars[1].ts_ns)


def test_the_same_bar_convention_fills_on_close_orders_at_this_close() -> None:
    script, _ = _run(
        {1: lambda ctx, bar: (ctx.submit(_moc()), ctx.buy(X, 5, tif="OPG"))},
        fill_timing="this_close",
    )
    on_close, on_open = script.fills
    assert (on_close.price, on_close.ts_ns) == (D(101), script.bars[1].ts_ns)
    assert (on_open.price, on_open.ts_ns) == (D(105), script.bars[3].ts_ns)  # still the next open


def test_a_volume_limit_expires_what_the_auction_could_not_fill() -> None:
    script, result = _run({0: lambda ctx, bar: ctx.submit(_moc(qty=300))}, volume_limit=0.1)
    (fill,) = script.fills
    assert fill.quantity == D(100)  # 10 % of the closing bar's 1,000
    order = result.order_list[0]
    assert order.status is OrderStatus.EXPIRED
    assert order.filled_quantity == D(100)


def test_an_on_close_order_can_be_cancelled_while_it_waits() -> None:
    script, result = _run(
        {0: lambda ctx, bar: ctx.submit(_moc()), 1: lambda ctx, bar: ctx.cancel(1)}
    )
    assert script.fills == []
    assert result.order_list[0].status is OrderStatus.CANCELLED


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (
            OrderRequest(X, "BUY", 1, OrderType.MARKET_ON_CLOSE, tif=TimeInForce.GTC),
            "a MARKET_ON_CLOSE order is a DAY order, got time in force GTC",
        ),
        (
            OrderRequest(X, "BUY", 1, OrderType.LIMIT_ON_CLOSE),
            "a LIMIT_ON_CLOSE order needs a limit price",
        ),
        (
            OrderRequest(X, "BUY", 1, OrderType.MARKET_ON_CLOSE, limit_price=D(1)),
            "a MARKET_ON_CLOSE order takes no limit price",
        ),
        (
            OrderRequest.stop(X, "BUY", 1, 110, tif=TimeInForce.OPG),
            "time in force OPG (on the open) is for MARKET and LIMIT orders, not STOP",
        ),
    ],
)
def test_invalid_auction_orders_are_denied_with_the_reason(
    request_: OrderRequest, reason: str
) -> None:
    script, _ = _run({0: lambda ctx, bar: ctx.submit(request_)})
    (event,) = [e for _, e in script.events]
    assert type(event).__name__ == "OrderDenied"
    assert reason in event.reason  # type: ignore[attr-defined]


def test_the_worked_examples_of_the_fill_model_page() -> None:
    rows = [(100, 101, 99, 100), (100.5, 102, 99.5, 101), (101, 103, 98, 102), (96, 97, 95, 96.5)]
    script, result = _run(
        {
            0: lambda ctx, bar: (
                ctx.buy(X, 1, tif="OPG"),
                ctx.buy(X, 1, limit_price=100, tif="OPG"),
                ctx.buy(X, 1, order_type="MOC"),
                ctx.sell(X, 1, limit_price="101.50", order_type="LOC"),
            )
        },
        frame=bars_frame(rows),
    )
    t1 = script.bars[1].ts_ns
    assert [(f.order_id, f.price, f.ts_ns) for f in script.fills] == [
        (1, D("100.5"), t1),
        (3, D(101), t1),
    ]
    expired = [o for o in result.order_list if o.status is OrderStatus.EXPIRED]
    assert [(o.order_id, o.updated_ns) for o in expired] == [(2, t1), (4, t1)]
