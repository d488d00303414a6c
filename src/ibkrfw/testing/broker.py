"""A broker that forwards to another one and keeps every order that reached it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import final

from typing_extensions import override

from ibkrfw.core.clock import Clock
from ibkrfw.model.data import Bar, Quote
from ibkrfw.model.events import OrderRejected
from ibkrfw.model.orders import Order, OrderRequest
from ibkrfw.portfolio.fx import FxRates
from ibkrfw.ports import Broker, EventSink
from ibkrfw.risk.rule import RiskRule

__all__ = ["RecordingBroker"]


@final
class RecordingBroker(Broker):
    """Forwards everything to ``inner`` and records the orders that reached it.

    Use it to assert what risk rules let through: an order they denied is never in
    :attr:`submitted`.

    Args:
        inner: The broker that does the work (a :class:`~ibkrfw.sim.SimBroker` usually).
        reject: Plays a broker refusing orders: for each order submitted it returns the reason
            to reject it with (an :class:`~ibkrfw.OrderRejected` of code 201, as IB's), or
            None to hand it on. Rejected orders are recorded in :attr:`submitted` too.

    Example:
        >>> from ibkrfw import Engine, Stock
        >>> from ibkrfw.risk import MaxOrderQuantity
        >>> from ibkrfw.sim import DataFrameFeed, SimBroker
        >>> from ibkrfw.testing import ScriptedStrategy, bars_frame
        >>> broker = RecordingBroker(SimBroker())
        >>> buy = ScriptedStrategy({0: lambda c, b: [c.buy(b.instrument, n) for n in (5, 50)]})
        >>> feed = DataFrameFeed(bars_frame([(10, 11, 9, 10)] * 3), Stock("X"))
        >>> _ = Engine(buy, feed, broker, risk_rules=[MaxOrderQuantity(10)]).run()
        >>> [order.request.quantity for order in broker.submitted]
        [Decimal('5')]
    """

    def __init__(
        self, inner: Broker, *, reject: Callable[[Order], str | None] | None = None
    ) -> None:
        self.inner = inner
        self.reject = reject
        self._clock: Clock | None = None
        self._emit: EventSink | None = None
        self.submitted: list[Order] = []
        """Every order handed to the broker, in order."""
        self.modified: list[tuple[Order, OrderRequest]] = []
        """Each modification handed to the broker, as (order, replacement request)."""

    @override
    def start(self, clock: Clock, emit: EventSink) -> None:
        self._clock, self._emit = clock, emit
        self.inner.start(clock, emit)

    @override
    def starting_cash(self) -> Decimal:
        return self.inner.starting_cash()

    @property
    @override
    def base_currency(self) -> str:
        return self.inner.base_currency

    @property
    @override
    def fx(self) -> FxRates | None:
        return self.inner.fx

    @override
    def submit(self, order: Order) -> None:
        self.submitted.append(order)
        reason = self.reject(order) if self.reject is not None else None
        if reason is not None and self._clock is not None and self._emit is not None:
            now = self._clock.now_ns()
            self._emit(OrderRejected(ts_ns=now, order_id=order.order_id, reason=reason, code=201))
            return
        self.inner.submit(order)

    @override
    def cancel(self, order: Order) -> None:
        self.inner.cancel(order)

    @override
    def modify(self, order: Order, request: OrderRequest) -> None:
        self.modified.append((order, request))
        self.inner.modify(order, request)

    @property
    @override
    def needs_every_bar(self) -> bool:
        return self.inner.needs_every_bar

    @property
    @override
    def account_rules(self) -> Sequence[RiskRule]:
        return self.inner.account_rules

    @override
    def on_bar(self, bar: Bar) -> None:
        self.inner.on_bar(bar)

    @override
    def on_quote(self, quote: Quote) -> None:
        self.inner.on_quote(quote)

    @override
    def begin_group(self) -> None:
        self.inner.begin_group()

    @override
    def end_group(self) -> None:
        self.inner.end_group()

    @override
    def stop(self) -> None:
        self.inner.stop()
