"""Events: facts that happened, named in the past tense.

Every event carries ``ts_ns`` (UTC epoch nanoseconds). Order events also carry the engine's
``order_id``; the strategy receives them in :meth:`Strategy.on_order <ibkrfw.Strategy.on_order>`
together with the updated :class:`~ibkrfw.Order`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, final

import attrs

from ibkrfw.model._time import to_timestamp
from ibkrfw.model.data import Bar, OptionGreeks, Quote, Tick
from ibkrfw.model.fills import Fill, _slot_setters
from ibkrfw.model.instruments import Future, Instrument, Option
from ibkrfw.model.orders import OrderRequest

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "BarReceived",
    "CashAdjusted",
    "ConnectionChanged",
    "DataProblem",
    "Event",
    "FutureSettled",
    "GreeksReceived",
    "OptionSettled",
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
    "OrderResized",
    "OrderSubmitted",
    "ProtectionFailed",
    "QuoteReceived",
    "Reconciled",
    "RiskWarning",
    "TickReceived",
    "TimerFired",
    "TradingHalted",
]


@attrs.frozen(kw_only=True)
class Event:
    """Base of every event: something that happened at ``ts_ns``."""

    ts_ns: int

    @property
    def timestamp(self) -> pd.Timestamp:
        """The event time as a UTC :class:`pandas.Timestamp`."""
        return to_timestamp(self.ts_ns)


@attrs.frozen(kw_only=True)
class OrderEvent(Event):
    """Base of the events of one order's lifecycle."""

    order_id: int


@final
@attrs.frozen(kw_only=True)
class OrderSubmitted(OrderEvent):
    """The order passed validation and every risk rule and was handed to the broker."""

    request: OrderRequest


@final
@attrs.frozen(kw_only=True)
class OrderResized(OrderEvent):
    """A risk rule let the order through smaller than asked; it was sent at ``quantity``.

    It comes just before the order's :class:`OrderSubmitted`, whose request carries the new
    quantity.

    Args:
        requested: The quantity the strategy asked for.
        quantity: The quantity sent.
        rule: The name of the rule that shrank it.
        reason: Why, in words.
    """

    requested: Decimal
    quantity: Decimal
    rule: str
    reason: str


@final
@attrs.frozen(kw_only=True)
class OrderAccepted(OrderEvent):
    """The broker acknowledged the order; it is working."""

    broker_order_id: str = ""


@final
@attrs.frozen(kw_only=True)
class OrderDenied(OrderEvent):
    """The order was refused before reaching the broker; nothing was sent.

    Args:
        reason: Why, in words.
        rule: The name of the risk rule that refused it, or ``"validation"``.
    """

    reason: str
    rule: str


@final
@attrs.frozen(kw_only=True)
class OrderRejected(OrderEvent):
    """The broker refused the order.

    A live broker also reports so an order its broker never received (lost on the way, with
    the connection): its ``reason`` then begins ``"lost:"``, ``code`` is None, and the order
    was not sent again (see :doc:`/concepts/order-lifecycle`).

    Args:
        reason: The broker's explanation.
        code: The broker's error code (IB's error code in live trading), if any.
    """

    reason: str
    code: int | None = None


@final
@attrs.frozen(kw_only=True)
class OrderFilled(OrderEvent):
    """The order filled, wholly or partly; ``fill`` says how much and at what price."""

    fill: Fill


_ACCEPTED_SLOTS = _slot_setters(OrderAccepted, ("ts_ns", "order_id", "broker_order_id"))
_FILLED_SLOTS = _slot_setters(OrderFilled, ("ts_ns", "order_id", "fill"))


def accepted_of(ts_ns: int, order_id: int, broker_order_id: str) -> OrderAccepted:
    """``OrderAccepted(ts_ns=..., ...)``, built faster: for the simulator's every order.

    Each slot is written directly, as :func:`~ibkrfw.model.fills.position_of` does.
    """
    event = object.__new__(OrderAccepted)
    s_ts, s_id, s_broker = _ACCEPTED_SLOTS
    s_ts(event, ts_ns)
    s_id(event, order_id)
    s_broker(event, broker_order_id)
    return event


def filled_of(ts_ns: int, order_id: int, fill: Fill) -> OrderFilled:
    """``OrderFilled(ts_ns=..., order_id=..., fill=...)``, built faster (as :func:`accepted_of`)."""
    event = object.__new__(OrderFilled)
    s_ts, s_id, s_fill = _FILLED_SLOTS
    s_ts(event, ts_ns)
    s_id(event, order_id)
    s_fill(event, fill)
    return event


@final
@attrs.frozen(kw_only=True)
class OrderCancelled(OrderEvent):
    """The order was cancelled; whatever had filled before stays filled."""

    reason: str = ""


@final
@attrs.frozen(kw_only=True)
class OrderExpired(OrderEvent):
    """The order's time in force ran out before it filled completely."""


@final
@attrs.frozen(kw_only=True)
class OrderModified(OrderEvent):
    """The broker replaced the working order's request with ``request``."""

    request: OrderRequest


@final
@attrs.frozen(kw_only=True)
class OrderModifyRejected(OrderEvent):
    """A modification could not be made; the order works on unchanged.

    Args:
        reason: Why (the order had finished, the quantity fell below what had filled...).
    """

    reason: str


@final
@attrs.frozen(kw_only=True)
class OrderCancelRejected(OrderEvent):
    """A cancel request could not be carried out (e.g. the order had already filled)."""

    reason: str


@final
@attrs.frozen(kw_only=True)
class CashAdjusted(Event):
    """Cash moved for something other than a fill (a borrow fee, later interest or dividends).

    Args:
        amount: The change to cash, in ``currency`` (negative for a charge).
        reason: What it was for.
        currency: The currency moved; None for the account's base currency.
    """

    amount: Decimal
    reason: str
    currency: str | None = None


@final
@attrs.frozen(kw_only=True)
class OptionSettled(Event):
    """A held option reached its expiry and was settled (in a backtest, by the simulator).

    In the money by $0.01 or more at the underlying's last price, it is exercised (held
    long) or assigned (held short), as IB does automatically: a physically settled option
    delivers ``multiplier`` units of the underlying a contract at the strike, a cash-settled
    one pays its intrinsic value. Out of the money it expires worthless. The ``fills`` are
    booked like an order's (``order_id`` -1, no commission): the option closed at zero (at
    its intrinsic value when cash-settled), and the underlying bought or sold at the strike.

    Args:
        option: The option.
        action: ``"exercised"``, ``"assigned"`` or ``"expired"``.
        quantity: The contracts held before (negative when short).
        underlying_price: The price it was settled on: the underlying's last price, or the
            option's own when the underlying was never priced (then ``reason`` says so).
        fills: What was booked.
        reason: A sentence saying what happened and on which price.
    """

    option: Option
    action: str
    quantity: Decimal
    underlying_price: float
    fills: tuple[Fill, ...]
    reason: str


@final
@attrs.frozen(kw_only=True)
class FutureSettled(Event):
    """A future still held after its last trading day was settled (in a backtest).

    The simulator closes it at the last price it saw for the contract, as a cash settlement
    at that price: one fill of no order (``order_id`` -1, no commission). Orders still working
    on it are cancelled, and new ones are rejected. Roll a position before its last trading
    day (:class:`~ibkrfw.strategies.FutureRoller`) to keep it.

    Args:
        future: The contract.
        quantity: The contracts held before (negative when short).
        price: The price it was settled at.
        fills: What was booked.
        reason: A sentence saying what happened and on which price.
    """

    future: Future
    quantity: Decimal
    price: float
    fills: tuple[Fill, ...]
    reason: str


@final
@attrs.frozen(kw_only=True)
class TimerFired(Event):
    """A timer set with :meth:`Context.schedule <ibkrfw.Context.schedule>` went off."""

    name: str


@final
@attrs.frozen(kw_only=True)
class ConnectionChanged(Event):
    """A live broker or feed's connection changed state.

    Args:
        state: The new state (``"connected"``, ``"disconnected"``, ``"ib_unreachable"``...).
        reason: What caused it (IB's code and its meaning, or the socket's fate).
        actions: What the adapter does about it (``"hold_orders"``, ``"resubscribe"``...).
    """

    state: str
    reason: str
    actions: tuple[str, ...] = ()


@final
@attrs.frozen(kw_only=True)
class BarReceived(Event):
    """A live feed completed ``bar``; the engine hands it to the strategy as any other bar."""

    bar: Bar


@final
@attrs.frozen(kw_only=True)
class DataProblem(Event):
    """A live feed could not deliver ``instrument``'s data (IB's error on the subscription).

    Args:
        instrument: The instrument concerned.
        code: The provider's error code (IB's: 101 too many market data lines, 354 not
            subscribed, 200 no such contract...), if any.
        reason: The provider's explanation.
    """

    instrument: Instrument
    code: int | None
    reason: str


@final
@attrs.frozen(kw_only=True)
class Reconciled(Event):
    """A live broker compared its journal with the account (at start-up, after a reconnection).

    Args:
        differences: Each disagreement, in words (a position, an order working at the broker
            that the journal does not know...); empty when they agree.
        notes: What was found and settled without disagreement (executions missed while away,
            an order that finished while away, cash the fills do not explain).
        resolution: What was done: ``"agreed"``, ``"adopted"`` (the broker's state taken) or
            ``"refused"`` (no order is sent until the states agree).
        warnings: What needs the operator's attention though trading goes on: an order the
            broker never received (lost on the way, released and not sent again), a margin
            shortfall, margin the run's checks underestimate. Each raises an alert.
    """

    differences: tuple[str, ...]
    notes: tuple[str, ...] = ()
    resolution: str = "agreed"
    warnings: tuple[str, ...] = ()


@final
@attrs.frozen(kw_only=True)
class QuoteReceived(Event):
    """A live feed's top of book changed.

    The engine hands ``quote`` to the broker, then to
    :meth:`Strategy.on_quote <ibkrfw.Strategy.on_quote>`.
    """

    quote: Quote


@final
@attrs.frozen(kw_only=True)
class GreeksReceived(Event):
    """A live feed got IB's option model for one price of an option.

    The engine keeps the latest of each option and source for
    :meth:`Context.greeks <ibkrfw.Context.greeks>`, then hands the event to
    :meth:`Strategy.on_event <ibkrfw.Strategy.on_event>`.
    """

    greeks: OptionGreeks


@final
@attrs.frozen(kw_only=True)
class TickReceived(Event):
    """A live feed saw a trade.

    The engine hands ``tick`` to :meth:`Strategy.on_tick <ibkrfw.Strategy.on_tick>`.
    """

    tick: Tick


@final
@attrs.frozen(kw_only=True)
class RiskWarning(Event):
    """A risk rule or monitor said, as the run started, what it cannot do in this run.

    Rules and monitors are told the run's bar size when it starts; one that cannot do all its
    job at it (a daily loss limit on daily bars, a circuit breaker whose pause is shorter than
    a bar) says so: a warning on the ``ibkrfw.engine`` logger, this event to
    :meth:`Strategy.on_event <ibkrfw.Strategy.on_event>` after ``on_start``, and an entry in
    :attr:`RunResult.risk_warnings <ibkrfw.RunResult.risk_warnings>`.

    Its ``ts_ns`` is the time the run starts (in a backtest, its first bar's).

    Args:
        rule: The rule's or monitor's name.
        reason: What it cannot do, and what it does instead.
    """

    rule: str
    reason: str


@final
@attrs.frozen(kw_only=True)
class TradingHalted(Event):
    """A risk monitor halted trading: orders that add risk are denied until ``until_ns``.

    Args:
        rule: The monitor's name.
        reason: Why, in words.
        until_ns: When trading may resume (UTC ns); None for the rest of the run.
        flatten: Whether every position was closed as well.
    """

    rule: str
    reason: str
    until_ns: int | None = None
    flatten: bool = False


@final
@attrs.frozen(kw_only=True)
class ProtectionFailed(Event):
    """A position is left without a protective order the engine could not keep.

    A :class:`~ibkrfw.risk.Protection`'s stop-loss or take-profit that the broker rejects is
    placed again at the next time stamps; after three refusals in a row (or three
    cancellations from outside the engine) without the position changing, the engine stops
    trying until it does, and says so with this event (to :meth:`Strategy.on_event
    <ibkrfw.Strategy.on_event>`, the run's notices and a critical alert).

    Args:
        instrument: The position's instrument.
        tag: Which order: ``"stop-loss"`` or ``"take-profit"``.
        reason: The broker's last answer, in words.
    """

    instrument: Instrument
    tag: str
    reason: str
