from __future__ import annotations

import threading
import time
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ibkrfw import (
    Bar,
    EngineError,
    Fill,
    OrderAccepted,
    OrderCancelled,
    OrderDenied,
    OrderFilled,
    OrderRequest,
    OrderStatus,
    Side,
    SimClock,
    Stock,
)
from ibkrfw.core import EventQueue, OrderBook
from ibkrfw.core.history import BarArrays, BarHistory
from ibkrfw.core.orderbook import StrategyOrders, _record
from ibkrfw.core.timers import NEVER, Timers
from ibkrfw.model import (
    Order,
    OrderCancelRejected,
    OrderEvent,
    OrderExpired,
    OrderRejected,
    OrderSubmitted,
)

X = Stock("X")


def test_sim_clock_moves_forward_only() -> None:
    clock = SimClock(10)
    clock.advance_to(10)
    clock.advance_to(20)
    assert clock.now_ns() == 20
    with pytest.raises(EngineError, match="backwards"):
        clock.advance_to(5)


def test_event_queue_wakes_a_waiting_consumer() -> None:
    queue = EventQueue()
    event = OrderCancelled(ts_ns=1, order_id=1)

    def produce() -> None:
        time.sleep(0.05)
        queue.put(event)

    thread = threading.Thread(target=produce)
    thread.start()
    got = queue.get(timeout_s=5.0)
    thread.join(timeout=5.0)
    assert got is event


def test_event_queue_get_times_out_empty() -> None:
    assert EventQueue().get(timeout_s=0.01) is None


def test_event_queue_many_producers_lose_nothing() -> None:
    queue = EventQueue()
    n, producers = 2000, 4

    def produce(base: int) -> None:
        for i in range(n):
            queue.put(OrderCancelled(ts_ns=base + i, order_id=1))

    threads = [threading.Thread(target=produce, args=(k * n,)) for k in range(producers)]
    for t in threads:
        t.start()
    seen = []
    deadline = time.monotonic() + 20
    while len(seen) < n * producers and time.monotonic() < deadline:
        event = queue.get(timeout_s=1.0)
        if event is not None:
            seen.append(event.ts_ns)
    for t in threads:
        t.join(timeout=5.0)
    assert sorted(seen) == list(range(n * producers))


_Z = Decimal(0)


def _fill(order_id: int, qty: int, price: str = "10") -> Fill:
    return Fill(order_id, X, Side.BUY, Decimal(qty), Decimal(price), Decimal(0), 5, f"f{qty}")


def test_order_book_lifecycle_partial_then_full() -> None:
    book = OrderBook()
    order = book.create(OrderRequest.market(X, "BUY", 10), 1)
    assert order.status is OrderStatus.PENDING_SUBMIT
    book.apply(OrderSubmitted(ts_ns=1, order_id=1, request=order.request))
    book.apply(OrderAccepted(ts_ns=2, order_id=1))
    assert book.get(1).status is OrderStatus.SUBMITTED  # type: ignore[union-attr]
    book.apply(OrderFilled(ts_ns=3, order_id=1, fill=_fill(1, 4, "10")))
    partial = book.get(1)
    assert partial is not None
    assert (partial.status, partial.filled_quantity, partial.remaining) == (
        OrderStatus.PARTIALLY_FILLED,
        4,
        6,
    )
    assert book.pending_quantity(X) == 6
    book.apply(OrderFilled(ts_ns=4, order_id=1, fill=_fill(1, 6, "11")))
    done = book.get(1)
    assert done is not None
    assert done.status is OrderStatus.FILLED
    assert done.avg_fill_price == Decimal("10.6")
    assert book.active() == []


def test_order_book_reports_illegal_transitions_and_keeps_state() -> None:
    book = OrderBook()
    book.create(OrderRequest.market(X, "BUY", 10), 1)
    book.apply(OrderCancelled(ts_ns=2, order_id=1))
    known, problem = book.apply(OrderAccepted(ts_ns=3, order_id=1))
    assert known
    assert problem is not None and "CANCELLED" in problem
    assert book.get(1).status is OrderStatus.CANCELLED  # type: ignore[union-attr]


def test_order_book_denial_only_before_sending() -> None:
    book = OrderBook()
    book.create(OrderRequest.market(X, "BUY", 10), 1)
    book.apply(OrderAccepted(ts_ns=2, order_id=1))
    _, problem = book.apply(OrderDenied(ts_ns=3, order_id=1, reason="late", rule="r"))
    assert problem is not None
    assert book.get(1).status is OrderStatus.SUBMITTED  # type: ignore[union-attr]


def test_order_book_counts_fill_after_cancel_and_says_so() -> None:
    book = OrderBook()
    book.create(OrderRequest.market(X, "BUY", 10), 1)
    book.apply(OrderCancelled(ts_ns=2, order_id=1))
    _, problem = book.apply(OrderFilled(ts_ns=3, order_id=1, fill=_fill(1, 3)))
    assert problem is not None and "after it was CANCELLED" in problem
    order = book.get(1)
    assert order is not None and order.filled_quantity == 3


def test_order_book_overfill_is_reported() -> None:
    book = OrderBook()
    book.create(OrderRequest.market(X, "BUY", 2), 1)
    _, problem = book.apply(OrderFilled(ts_ns=3, order_id=1, fill=_fill(1, 3)))
    assert problem is not None and "more than its quantity" in problem


@pytest.mark.parametrize(
    ("event", "status"),
    [
        (OrderRejected(ts_ns=2, order_id=1, reason="no", code=201), OrderStatus.REJECTED),
        (OrderExpired(ts_ns=2, order_id=1), OrderStatus.EXPIRED),
        (OrderDenied(ts_ns=2, order_id=1, reason="no", rule="r"), OrderStatus.DENIED),
    ],
)
def test_order_book_terminal_events(event: OrderRejected, status: OrderStatus) -> None:
    book = OrderBook()
    book.create(OrderRequest.market(X, "BUY", 2), 1)
    book.apply(event)
    order = book.get(1)
    assert order is not None and order.status is status and not order.is_active


def test_order_book_unknown_order() -> None:
    known, problem = OrderBook().apply(OrderAccepted(ts_ns=1, order_id=99))
    assert not known and problem is not None


def test_snapshots_are_immutable_values() -> None:
    book = OrderBook()
    first = book.create(OrderRequest.market(X, "BUY", 2), 1)
    book.apply(OrderAccepted(ts_ns=2, order_id=1))
    assert first.status is OrderStatus.PENDING_SUBMIT  # the old snapshot did not change


def test_timers_fire_in_order_and_repeat() -> None:
    timers = Timers()
    timers.add("b", 20)
    timers.add("a", 10, every_ns=15)
    fired = []
    while (due := timers.pop_due(50)) is not None:
        fired.append(due)
    assert fired == [("a", 10), ("b", 20), ("a", 25), ("a", 40)]
    assert timers.next_due_ns == 55


def test_timers_cancel_and_replace() -> None:
    timers = Timers()
    timers.add("a", 10)
    assert timers.cancel("a")
    assert not timers.cancel("a")
    timers.add("b", 5)
    timers.add("b", 30)  # replaces
    assert timers.pop_due(20) is None
    assert timers.pop_due(30) == ("b", 30)
    assert timers.pop_due(10**18) is None
    assert timers.next_due_ns == NEVER


def _bar(i: int) -> Bar:
    return Bar(X, i, 1.0, 2.0, 0.5, float(i), 10.0)


def test_growing_history_returns_readonly_views() -> None:
    history = BarHistory.empty(capacity=2)
    for i in range(5):  # forces growth twice
        history.push(_bar(i))
    view = history.last(3)
    assert len(view) == 3
    np.testing.assert_array_equal(view.close, [2.0, 3.0, 4.0])
    np.testing.assert_array_equal(history.last().ts_ns, [0, 1, 2, 3, 4])
    with pytest.raises(ValueError, match="read-only"):
        view.close[0] = 99.0


def test_preloaded_history_follows_the_clock() -> None:
    clock = SimClock(0)
    ts = np.array([10, 20, 30], dtype=np.int64)
    col = np.array([1.0, 2.0, 3.0])
    history = BarHistory.preloaded(BarArrays(ts, col, col, col, col, col), clock)
    assert len(history) == 0
    clock.advance_to(20)
    np.testing.assert_array_equal(history.last(5).close, [1.0, 2.0])
    clock.advance_to(25)
    assert len(history.last(1)) == 1 and history.last(1).close[0] == 2.0


_EVENTS = st.lists(
    st.tuples(
        st.sampled_from(
            ["accept", "fill", "cancel", "reject", "expire", "deny", "cancel_rejected"]
        ),
        st.integers(1, 3),
        st.integers(1, 4),
    ),
    max_size=25,
)


def _event(kind: str, order_id: int, qty: int, ts: int) -> OrderEvent:
    if kind == "fill":
        fill = Fill(order_id, X, Side.BUY, Decimal(qty), Decimal(f"1{qty}.5"), _Z, ts, f"f{ts}")
        return OrderFilled(ts_ns=ts, order_id=order_id, fill=fill)
    if kind == "accept":
        return OrderAccepted(ts_ns=ts, order_id=order_id)
    if kind == "cancel":
        return OrderCancelled(ts_ns=ts, order_id=order_id)
    if kind == "reject":
        return OrderRejected(ts_ns=ts, order_id=order_id, reason="no", code=201)
    if kind == "expire":
        return OrderExpired(ts_ns=ts, order_id=order_id)
    if kind == "deny":
        return OrderDenied(ts_ns=ts, order_id=order_id, reason="no", rule="r")
    return OrderCancelRejected(ts_ns=ts, order_id=order_id, reason="too late")


@given(_EVENTS)
def test_order_book_keeping_ended_orders_as_snapshots_changes_nothing(
    events: list[tuple[str, int, int]],
) -> None:
    compact, revived = OrderBook(), OrderBook()
    for book in (compact, revived):
        for i, name in enumerate(["a", "b", "a"]):
            book.create(OrderRequest.market(X, "BUY", 5, strategy=name), i)
    for ts, (kind, order_id, qty) in enumerate(events, start=10):
        event = _event(kind, order_id, qty, ts)
        assert compact.apply(event) == revived.apply(event)
        # the other book's ended orders made mutable records again, as before issue 25
        revived._records.update({k: _record(v) for k, v in revived._records.items()})
        assert list(compact) == list(revived)
        assert all(compact.get(i) == revived.get(i) for i in (1, 2, 3))
        assert compact.active() == revived.active()
        assert compact.pending_quantity(X) == revived.pending_quantity(X)
        mine, theirs = StrategyOrders(compact, "a"), StrategyOrders(revived, "a")
        assert list(mine) == list(theirs) and mine.get(2) is None and len(mine) == 2
    for order_id, entry in compact._records.items():
        if entry.status.is_terminal:
            assert type(entry) is Order and compact.get(order_id) is entry
