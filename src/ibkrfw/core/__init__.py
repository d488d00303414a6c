"""Layer 1: clocks, the event queue and the order book."""

from ibkrfw.core.clock import Clock, LiveClock, SimClock
from ibkrfw.core.orderbook import OrderBook
from ibkrfw.core.queue import EventQueue

__all__ = ["Clock", "EventQueue", "LiveClock", "OrderBook", "SimClock"]
