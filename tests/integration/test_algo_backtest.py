"""IB algos in a backtest: VWAP, TWAP and Arrival Price in slices per bar; Adaptive as is."""

from __future__ import annotations

from decimal import Decimal

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from ibkrfw import (
    Adaptive,
    ArrivalPrice,
    Bar,
    Context,
    Engine,
    OrderRequest,
    OrderStatus,
    RunResult,
    Stock,
    Twap,
    Vwap,
)
from ibkrfw.sim import DataFrameFeed, SimBroker
from ibkrfw.testing import ScriptedStrategy, bars_frame

X = Stock("X")  # New York time
D = Decimal


def _frame(volumes: list[float], start: str = "2024-01-02 14:30") -> pd.DataFrame:
    """15-minute bars from 9:30 New York time, typical price 100.xx, the given volumes."""
    rows = [
        (100 + i / 10, 101 + i / 10, 99 + i / 10, 100.3 + i / 10, v) for i, v in enumerate(volumes)
    ]
    return bars_frame(rows, start=start, freq="15min")


HELD: list[Decimal] = []  # the position each bar's on_bar sees, of the latest run


def _run(
    request: OrderRequest, frame: pd.DataFrame, **broker: object
) -> tuple[ScriptedStrategy, RunResult]:
    HELD.clear()
    actions = dict.fromkeys(range(len(frame)), _look)
    actions[0] = lambda ctx, bar: (ctx.submit(request), _look(ctx, bar))
    script = ScriptedStrategy(actions)  # type: ignore[arg-type]
    result = Engine(script, DataFrameFeed(frame, X), SimBroker(10_000_000, **broker)).run()  # type: ignore[arg-type]
    return script, result


def _look(ctx: Context, bar: Bar) -> None:
    HELD.append(ctx.position(X).quantity)


def _typical(bar: object) -> Decimal:
    return X.round_price((bar.high + bar.low + bar.close) / 3)  # type: ignore[attr-defined]


def test_vwap_takes_its_share_of_each_bars_volume_at_the_typical_price() -> None:
    frame = _frame([1000, 2500, 40, 800, 1000, 1000])
    request = OrderRequest.market(X, "BUY", 500, algo=Vwap(0.2))
    script, result = _run(request, frame)
    by_ts = {bar.ts_ns: bar for bar in script.bars}
    assert [f.quantity for f in script.fills] == [D(500)]  # 20 % of 2500: 500, all at once
    request = OrderRequest.market(X, "BUY", 400, algo=Vwap(0.1))
    script, result = _run(request, frame)
    assert [f.quantity for f in script.fills] == [D(250), D(4), D(80), D(66)]
    for fill in script.fills:
        bar = by_ts[fill.ts_ns]
        assert fill.quantity <= D("0.1") * D(bar.volume)
        assert fill.price == _typical(bar)
    assert result.order_list[0].status is OrderStatus.FILLED
    assert HELD[-1] == 400


def test_what_a_vwap_order_has_not_filled_by_end_time_expires() -> None:
    frame = _frame([1000] * 8)  # 9:30 to 11:15 New York time
    request = OrderRequest.market(X, "SELL", 1000, algo=Vwap(0.1, end_time="10:30:00 US/Eastern"))
    script, result = _run(request, frame)
    # bars at 9:45, 10:00, 10:15 (the one it was sent on, 9:30, is not one of them)
    assert [f.quantity for f in script.fills] == [D(100)] * 3
    order = result.order_list[0]
    assert (order.status, order.filled_quantity) == (OrderStatus.EXPIRED, D(300))
    assert order.updated_ns == script.bars[4].ts_ns  # 10:30, the end
    past = OrderRequest.market(
        X, "SELL", 1000, algo=Vwap(0.1, end_time="10:30:00 US/Eastern", allow_past_end_time=True)
    )
    script, result = _run(past, frame)
    assert sum(f.quantity for f in script.fills) == D(700)  # every bar to the last


def test_vwap_starts_at_start_time() -> None:
    frame = _frame([1000] * 8)
    request = OrderRequest.market(X, "BUY", 1000, algo=Vwap(0.5, start_time="10:15:00 US/Eastern"))
    script, _ = _run(request, frame)
    assert script.fills[0].ts_ns == script.bars[3].ts_ns
    assert [f.quantity for f in script.fills] == [D(500), D(500)]


def test_a_limit_vwap_order_trades_only_where_the_typical_price_allows() -> None:
    frame = _frame([1000] * 6)  # typical prices 100.10, 100.20, ... 100.60
    request = OrderRequest.limit(X, "BUY", 1000, "100.35", algo=Vwap(0.1))
    script, _ = _run(request, frame)
    assert [(f.quantity, f.price) for f in script.fills] == [
        (D(100), D("100.20")),
        (D(100), D("100.30")),
    ]


def test_twap_spreads_the_order_evenly_and_is_done_by_end_time() -> None:
    frame = _frame([1000] * 12)
    request = OrderRequest.market(X, "BUY", 100, algo=Twap(end_time="10:45:00 US/Eastern"))
    script, result = _run(request, frame)
    # four bars from 9:45 to 10:30 New York time: 25 each
    assert [f.quantity for f in script.fills] == [D(25)] * 4
    assert script.fills[-1].ts_ns < script.bars[5].ts_ns
    assert result.order_list[0].status is OrderStatus.FILLED


def test_arrival_price_works_as_vwap_to_the_close_by_default() -> None:
    frame = _frame([1000] * 4)
    request = OrderRequest.market(X, "BUY", 1000, algo=ArrivalPrice(0.3))
    script, _ = _run(request, frame)
    assert [f.quantity for f in script.fills] == [D(300)] * 3


def test_adaptive_fills_as_its_plain_order() -> None:
    frame = _frame([1000] * 3)
    script, _ = _run(OrderRequest.market(X, "BUY", 5000, algo=Adaptive("Urgent")), frame)
    assert [(f.quantity, f.price) for f in script.fills] == [(D(5000), D("100.10"))]  # the open


def test_the_brokers_volume_limit_still_caps_an_algo_slice() -> None:
    frame = _frame([1000] * 3)
    script, _ = _run(OrderRequest.market(X, "BUY", 5000, algo=Vwap(0.5)), frame, volume_limit=0.1)
    assert [f.quantity for f in script.fills] == [D(100), D(100)]


@settings(max_examples=40, deadline=None)
@given(
    volumes=st.lists(st.integers(0, 5000), min_size=2, max_size=12),
    pct=st.sampled_from(["0.01", "0.05", "0.1", "0.25", "0.5"]),
    quantity=st.integers(1, 4000),
    end_bar=st.integers(1, 12),
    twap=st.booleans(),
)
def test_algo_slices_keep_their_invariants(
    volumes: list[int], pct: str, quantity: int, end_bar: int, twap: bool
) -> None:
    frame = _frame([float(v) for v in volumes])
    end = pd.Timestamp("2024-01-02 09:30", tz="US/Eastern") + pd.Timedelta(minutes=15 * end_bar)
    end_text = f"{end:%H:%M:%S} US/Eastern"
    algo = Twap(end_time=end_text) if twap else Vwap(pct, end_time=end_text)
    script, result = _run(OrderRequest.market(X, "BUY", quantity, algo=algo), frame)
    by_ts = {bar.ts_ns: bar for bar in script.bars}
    end_ns = end.value
    filled = sum((f.quantity for f in script.fills), D(0))
    assert filled <= quantity  # never more than the order
    for fill in script.fills:
        bar = by_ts[fill.ts_ns]
        assert fill.ts_ns < end_ns  # nothing after end_time
        assert fill.price == _typical(bar)
        if not twap:
            assert fill.quantity <= D(pct) * D(bar.volume)  # never above max_pct_vol
    order = result.order_list[0]
    assert order.filled_quantity == filled
    if filled < quantity and end_bar < len(volumes):  # the rest expired at the end
        assert order.status is OrderStatus.EXPIRED
    if twap and end_bar < len(volumes) and end_bar >= 2:  # TWAP is done by its end
        assert filled == quantity
    assert HELD[-1] == filled  # the position is the sum of the fills
