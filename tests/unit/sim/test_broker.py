"""SimBroker on its own, driven as the engine drives it."""

from __future__ import annotations

from decimal import Decimal

import attrs

from ibkrfw import Bar, Event, OrderFilled, OrderModifyRejected, OrderRequest, Stock
from ibkrfw.core.clock import SimClock
from ibkrfw.core.orderbook import OrderBook
from ibkrfw.sim import SimBroker

ACME = Stock("ACME")


def test_modify_below_what_filled_is_refused_even_from_a_stale_view() -> None:
    # The engine may resize an order from a view that has not seen its latest fill yet (the
    # fill's event is still queued). IB refuses to modify a filled quantity away; before, the
    # simulator accepted it and left an order for 20 that had filled 30.
    clock, events = SimClock(0), list[Event]()
    broker = SimBroker(volume_limit=0.1)
    broker.start(clock, events.append)
    order = OrderBook().create(OrderRequest(ACME, "BUY", 100, tif="GTC"), 0)
    broker.submit(order)
    clock.advance_to(1)
    broker.on_bar(Bar(ACME, 1, 10.0, 10.0, 10.0, 10.0, 300.0))  # 30 of 100 fill
    assert [e.fill.quantity for e in events if isinstance(e, OrderFilled)] == [30]
    broker.modify(order, attrs.evolve(order.request, quantity=Decimal(20)))  # order: stale
    refused = events[-1]
    assert isinstance(refused, OrderModifyRejected)
    assert refused.reason == (
        "a filled quantity cannot be modified away: 30 filled, 20 asked (cancel the order instead)"
    )
    broker.on_bar(Bar(ACME, 2, 10.0, 10.0, 10.0, 10.0, 1_000.0))
    assert [e.fill.quantity for e in events if isinstance(e, OrderFilled)] == [30, 70]
