"""Layer 0: immutable values (instruments, market data, orders, fills, events)."""

from ibkrfw.model.data import Bar, Quote
from ibkrfw.model.events import (
    CashAdjusted,
    Event,
    OrderAccepted,
    OrderCancelled,
    OrderCancelRejected,
    OrderDenied,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderModified,
    OrderModifyRejected,
    OrderRejected,
    OrderSubmitted,
    TimerFired,
)
from ibkrfw.model.fills import Fill, Position
from ibkrfw.model.instruments import AssetClass, Forex, Future, Instrument, Stock
from ibkrfw.model.orders import (
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    check_request,
)

__all__ = [
    "AssetClass",
    "Bar",
    "CashAdjusted",
    "Event",
    "Fill",
    "Forex",
    "Future",
    "Instrument",
    "Order",
    "OrderAccepted",
    "OrderCancelRejected",
    "OrderCancelled",
    "OrderDenied",
    "OrderEvent",
    "OrderExpired",
    "OrderFilled",
    "OrderModified",
    "OrderModifyRejected",
    "OrderRejected",
    "OrderRequest",
    "OrderStatus",
    "OrderSubmitted",
    "OrderType",
    "Position",
    "Quote",
    "Side",
    "Stock",
    "TimeInForce",
    "TimerFired",
    "check_request",
]
