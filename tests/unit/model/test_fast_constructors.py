"""The hot path's constructors build exactly what the classes' own ``__init__`` builds."""

from __future__ import annotations

import math
import pickle
from decimal import Decimal

import attrs
from hypothesis import given
from hypothesis import strategies as st

from ibkrfw import Fill, OrderAccepted, OrderFilled, Position, Side, Stock
from ibkrfw.model.events import accepted_of, filled_of
from ibkrfw.model.fills import fill_of, position_of

decimals = st.decimals(min_value=0, max_value=10**6, allow_nan=False, places=4)
ACME = Stock("ACME")


@given(
    order_id=st.integers(0, 10**9),
    side=st.sampled_from(list(Side)),
    quantity=decimals,
    price=decimals,
    fee=decimals,
    ts=st.integers(0, 2**62),
    slip=decimals,
)
def test_fill_of_equals_fill(
    order_id: int,
    side: Side,
    quantity: Decimal,
    price: Decimal,
    fee: Decimal,
    ts: int,
    slip: Decimal,
) -> None:
    fast = fill_of(order_id, ACME, side, quantity, price, fee, ts, "SIM-1-1", slip)
    slow = Fill(order_id, ACME, side, quantity, price, fee, ts, "SIM-1-1", slip)
    assert fast == slow and hash(fast) == hash(slow) and repr(fast) == repr(slow)
    assert pickle.loads(pickle.dumps(fast)) == slow
    event = filled_of(ts, order_id, fast)
    assert event == OrderFilled(ts_ns=ts, order_id=order_id, fill=slow)
    assert accepted_of(ts, order_id, f"SIM{order_id}") == OrderAccepted(
        ts_ns=ts, order_id=order_id, broker_order_id=f"SIM{order_id}"
    )


def test_the_fast_constructors_know_every_field() -> None:
    """A field added to one of these classes must be added to its fast constructor too."""
    assert [f.name for f in attrs.fields(Fill)] == [
        "order_id", "instrument", "side", "quantity", "price", "commission", "ts_ns", "fill_id",
        "slippage",
    ]  # fmt: skip
    assert [f.name for f in attrs.fields(OrderAccepted)] == ["ts_ns", "order_id",
                                                             "broker_order_id"]  # fmt: skip
    assert [f.name for f in attrs.fields(OrderFilled)] == ["ts_ns", "order_id", "fill"]
    assert list(Position._fields) == [
        "instrument", "quantity", "avg_price", "realized_pnl", "commission", "market_price",
    ]  # fmt: skip
    one = Decimal(1)
    assert position_of(ACME, one, one, one, one, 2.0) == Position(ACME, one, one, one, one, 2.0)
    flat = position_of(ACME, Decimal(0), Decimal(0), Decimal(0), Decimal(0), math.nan)
    assert flat.is_flat and flat.instrument is ACME


def test_the_order_book_s_snapshots_know_every_field_of_an_order() -> None:
    """``_Record.snapshot`` writes Order's slots directly: a new field must be added there."""
    from ibkrfw import Order, OrderRequest, OrderStatus
    from ibkrfw.core.orderbook import OrderBook

    assert [f.name for f in attrs.fields(Order)] == [
        "order_id", "request", "status", "created_ns", "updated_ns", "filled_quantity",
        "avg_fill_price", "reason",
    ]  # fmt: skip
    book = OrderBook()
    request = OrderRequest(ACME, "BUY", 5)
    made = book.create(request, 7)
    assert made == Order(1, request, OrderStatus.PENDING_SUBMIT, 7, 7, Decimal(0), None, "")
    assert pickle.loads(pickle.dumps(made)) == made and hash(made) == hash(book.get(1))
