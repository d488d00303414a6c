"""Layer 1: clocks, the event queue and the order book."""

from ibkrfw.core.clock import Clock, LiveClock, SimClock
from ibkrfw.core.orderbook import OrderBook, StrategyOrders
from ibkrfw.core.queue import EventQueue, Inbox, LoadStats, set_arrival_ns

__all__ = [
    "Clock",
    "EventQueue",
    "Inbox",
    "LiveClock",
    "LoadStats",
    "OrderBook",
    "SimClock",
    "StrategyOrders",
    "set_arrival_ns",
]
