"""The engine's record of every order and the order state machine."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Set
from decimal import Decimal
from typing import final

from ibkrfw.model.events import (
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
    OrderResized,
    OrderSubmitted,
)
from ibkrfw.model.instruments import Instrument
from ibkrfw.model.orders import Order, OrderRequest, OrderStatus

__all__ = ["OrderBook", "StrategyOrders"]

# Enum members bound once: on Python 3.11 each `Side.BUY` in a function is a slow lookup
# (EnumType.__getattr__ routes every class attribute through Python), on the order path.
_CANCELLED = OrderStatus.CANCELLED
_DENIED = OrderStatus.DENIED
_EXPIRED = OrderStatus.EXPIRED
_FILLED = OrderStatus.FILLED
_PARTIALLY_FILLED = OrderStatus.PARTIALLY_FILLED
_PENDING_SUBMIT = OrderStatus.PENDING_SUBMIT
_REJECTED = OrderStatus.REJECTED
_SUBMITTED = OrderStatus.SUBMITTED
_ZERO = Decimal(0)
_ORDER_SLOTS = tuple(
    getattr(Order, name).__set__
    for name in ("order_id", "request", "status", "created_ns", "updated_ns", "filled_quantity",
                 "avg_fill_price", "reason")
)  # fmt: skip
_TERMINAL = frozenset(s for s in OrderStatus if s.is_terminal)


class _Record:
    """Mutable state of one order; users only ever see immutable :class:`Order` snapshots."""

    __slots__ = (
        "avg",
        "created_ns",
        "filled",
        "order_id",
        "reason",
        "request",
        "snap",
        "status",
        "updated_ns",
    )

    def __init__(self, order_id: int, request: OrderRequest, ts_ns: int) -> None:
        self.order_id = order_id
        self.request = request
        self.status = _PENDING_SUBMIT
        self.created_ns = ts_ns
        self.updated_ns = ts_ns
        self.filled = _ZERO
        self.avg: Decimal | None = None
        self.reason = ""
        self.snap: Order | None = None

    @classmethod
    def of(cls, order: Order) -> _Record:
        """The record of an ended order again, from its snapshot (a late fill changes it)."""
        record = cls(order.order_id, order.request, order.created_ns)
        record.status = order.status
        record.updated_ns = order.updated_ns
        record.filled = order.filled_quantity
        record.avg = order.avg_fill_price
        record.reason = order.reason
        record.snap = order
        return record

    def snapshot(self) -> Order:
        # Built on demand and cached until the next change: most events are never looked at.
        # Each slot is written directly (Order has no converters or validators to skip): the
        # frozen class's __init__ sets each field through object.__setattr__ by name.
        snap = self.snap
        if snap is None:
            snap = self.snap = object.__new__(Order)
            s_id, s_request, s_status, s_created, s_updated, s_filled, s_avg, s_reason = (
                _ORDER_SLOTS
            )
            s_id(snap, self.order_id)
            s_request(snap, self.request)
            s_status(snap, self.status)
            s_created(snap, self.created_ns)
            s_updated(snap, self.updated_ns)
            s_filled(snap, self.filled)
            s_avg(snap, self.avg)
            s_reason(snap, self.reason)
        return snap

    def move(self, ts_ns: int, status: OrderStatus, reason: str | None = None) -> None:
        self.status = status
        self.updated_ns = ts_ns
        if reason is not None:
            self.reason = reason
        self.snap = None


@final
class OrderBook:
    """Hold every order of a run by id and apply lifecycle events to them.

    :meth:`apply` implements the state machine of :class:`~ibkrfw.OrderStatus`: an event that
    would make an illegal transition (e.g. an acceptance after a cancellation) leaves the order
    unchanged and is reported back so the engine can log it. Fills are facts and always count,
    even when they arrive after a cancellation (a race that happens in live trading).
    """

    __slots__ = ("_active", "_next_id", "_records")

    def __init__(self) -> None:
        # An ended order keeps only its final snapshot, which is immutable: a run of a million
        # orders keeps a million of them, and their mutable records would double that.
        self._records: dict[int, _Record | Order] = {}
        self._active: dict[int, _Record] = {}
        self._next_id = 1

    def create(self, request: OrderRequest, ts_ns: int) -> Order:
        """Register ``request`` as a new order in ``PENDING_SUBMIT`` and return it."""
        record = _Record(self._next_id, request, ts_ns)
        self._next_id += 1
        self._records[record.order_id] = record
        self._active[record.order_id] = record
        return record.snapshot()

    def adopt_filled(
        self, order_id: int, filled: Decimal, avg_price: Decimal | None, ts_ns: int
    ) -> None:
        """Set what an order adopted from the broker filled before the run (no fill booked).

        Raises:
            KeyError: if the order is unknown.
        """
        record = _record(self._records[order_id])
        record.filled = filled
        record.avg = avg_price
        status = _FILLED if filled >= record.request.quantity else _PARTIALLY_FILLED
        record.move(ts_ns, status)
        self._records[order_id] = record
        if status in _TERMINAL:
            self._end(record)

    def get(self, order_id: int) -> Order | None:
        """Return the current snapshot of order ``order_id``, or ``None`` if unknown."""
        record = self._records.get(order_id)
        return None if record is None else _snapshot(record)

    def unknown(self, order_id: int) -> str:
        """Say why ``order_id`` names no order of the book."""
        return f"no order has the id {order_id}"

    def __iter__(self) -> Iterator[Order]:
        """Iterate over every order of the run, in creation order."""
        return map(_snapshot, self._records.values())

    def __len__(self) -> int:
        return len(self._records)

    @property
    def active_index(self) -> Mapping[int, object]:
        """The live index of the orders that may still fill, keyed by id.

        It is the book's own dictionary, truthy exactly while some order is active, so a
        caller can keep it and test it per bar for the cost of a dictionary truth test.
        """
        return self._active

    def active(self, instrument: Instrument | None = None) -> list[Order]:
        """Return the orders that may still fill, optionally of one instrument only."""
        return [
            r.snapshot()
            for r in self._active.values()
            if instrument is None or r.request.instrument == instrument
        ]

    def working(
        self, exclude: int | Set[int] = 0, joining: OrderRequest | None = None
    ) -> dict[Instrument, tuple[Decimal, Decimal]]:
        """The most each instrument's live orders could still buy and sell: ``(buy, sell)``.

        What risk limits add to a position: orders waiting for a parent's fill do not count
        yet, and of the orders of one OCA group only the largest on each side counts, since a
        fill in one reduces the others.

        Args:
            exclude: An order, or several, left out (one being modified, those being
                cancelled).
            joining: An order about to be sent, which risk limits add to these: if it joins an
                OCA group, the group's orders on its side count only by what the largest of
                them has beyond it, so that the group still counts once.
        """
        if not self._active:
            return {}  # the common case when an order is sent: nothing else working
        return _working(self._active.values(), self._active, exclude, joining)

    def pending_quantity(
        self,
        instrument: Instrument,
        skip: Callable[[OrderRequest], bool] | None = None,
        exclude: Set[int] = frozenset(),
    ) -> Decimal:
        """Return the signed quantity the active orders of ``instrument`` may still fill.

        Of the orders of one OCA group only the largest on each side counts, since a fill in
        one reduces the others by as much.

        Args:
            instrument: Whose orders count.
            skip: Leaves out the orders whose request it is true of.
            exclude: Leaves out these orders (one being modified).
        """
        return _pending(self._active.values(), instrument, skip, exclude)

    def apply(self, event: OrderEvent) -> tuple[bool, str | None]:
        """Apply ``event`` to its order.

        Returns:
            Whether the order is known, and, when the event was not a legal transition, a
            sentence saying why it was ignored (fills are never ignored).
        """
        entry = self._records.get(event.order_id)
        if entry is None:
            return False, f"event {type(event).__name__} for unknown order {event.order_id}"
        # an ended order's again, for a late fill or an ignored event
        record = _Record.of(entry) if isinstance(entry, Order) else entry
        kind = type(event)
        status = record.status
        problem: str | None = None
        ts = event.ts_ns
        if kind is OrderFilled:
            problem = self._fill(record, event)  # type: ignore[arg-type]
        elif status in _TERMINAL:
            if kind is not OrderCancelRejected and kind is not OrderModifyRejected:
                problem = f"{kind.__name__} ignored: order {record.order_id} is {status}"
            return True, problem
        elif kind is OrderAccepted:
            if status is _PENDING_SUBMIT:  # otherwise a fill overtook its acknowledgement
                record.move(ts, _SUBMITTED)
        elif isinstance(event, OrderResized):  # kept, so the orders table shows why
            record.reason = (
                f"resized from {event.requested} to {event.quantity} by {event.rule}: "
                + event.reason
            )
        elif kind is OrderSubmitted or kind is OrderCancelRejected or kind is OrderModifyRejected:
            pass
        elif isinstance(event, OrderModified):
            record.request = event.request
            record.move(ts, status)
        elif kind is OrderDenied:
            if status is not _PENDING_SUBMIT:
                return True, f"OrderDenied ignored: order {record.order_id} was already sent"
            record.move(ts, _DENIED, event.reason)  # type: ignore[attr-defined]
        elif kind is OrderRejected:
            record.move(ts, _REJECTED, event.reason)  # type: ignore[attr-defined]
        elif kind is OrderCancelled:
            record.move(ts, _CANCELLED, event.reason)  # type: ignore[attr-defined]
        elif kind is OrderExpired:
            record.move(ts, _EXPIRED, "time in force expired")
        if record.status in _TERMINAL:
            self._end(record)
        return True, problem

    def _end(self, record: _Record) -> None:
        """Keep an order that ended as its snapshot alone."""
        self._active.pop(record.order_id, None)
        self._records[record.order_id] = record.snapshot()

    @staticmethod
    def _fill(record: _Record, event: OrderFilled) -> str | None:
        fill = event.fill
        before = record.filled
        filled = before + fill.quantity if before else fill.quantity  # a Decimal less when whole
        if before:
            record.avg = ((record.avg or _ZERO) * before + fill.price * fill.quantity) / filled
        else:
            record.avg = fill.price
        record.filled = filled
        quantity = record.request.quantity
        problem = None
        if filled > quantity:
            problem = f"order {record.order_id} filled {filled}, more than its quantity {quantity}"
        if filled >= quantity:
            record.move(event.ts_ns, _FILLED)
        elif record.status in _TERMINAL:
            record.move(event.ts_ns, record.status)
            problem = f"order {record.order_id} filled {fill.quantity} after it was {record.status}"
        else:
            record.move(event.ts_ns, _PARTIALLY_FILLED)
        return problem


@final
class StrategyOrders:
    """One strategy's orders in an :class:`OrderBook` shared by several (read-only).

    What a strategy's :class:`~ibkrfw.Context` reads when one engine runs several
    strategies: only the orders whose request carries its name
    (``OrderRequest.strategy``).

    Args:
        book: The engine's book of every order.
        strategy: The strategy's name.
    """

    __slots__ = ("_book", "strategy")

    def __init__(self, book: OrderBook, strategy: str) -> None:
        self._book = book
        self.strategy = strategy

    def _mine(self) -> Iterator[_Record | Order]:
        name = self.strategy
        return (r for r in self._book._records.values() if r.request.strategy == name)

    def _active(self) -> Iterator[_Record]:
        name = self.strategy
        return (r for r in self._book._active.values() if r.request.strategy == name)

    def get(self, order_id: int) -> Order | None:
        """Return the strategy's order ``order_id``, or None (unknown, or another's)."""
        record = self._book._records.get(order_id)
        if record is None or record.request.strategy != self.strategy:
            return None
        return _snapshot(record)

    def unknown(self, order_id: int) -> str:
        """Say why ``order_id`` is not one of the strategy's orders."""
        record = self._book._records.get(order_id)
        if record is None:
            return f"no order has the id {order_id}"
        owner = record.request.strategy
        return (
            f"order {order_id} belongs to "
            f"{f'strategy {owner!r}' if owner else 'the engine (no strategy)'}, not to "
            f"strategy {self.strategy!r}: a strategy acts on its own orders only"
        )

    def __iter__(self) -> Iterator[Order]:
        """Iterate over the strategy's orders, in creation order."""
        return map(_snapshot, self._mine())

    def __len__(self) -> int:
        return sum(1 for _ in self._mine())

    def active(self, instrument: Instrument | None = None) -> list[Order]:
        """Return the strategy's orders that may still fill, optionally of one instrument."""
        return [
            r.snapshot()
            for r in self._active()
            if instrument is None or r.request.instrument == instrument
        ]

    def working(
        self, exclude: int | Set[int] = 0, joining: OrderRequest | None = None
    ) -> dict[Instrument, tuple[Decimal, Decimal]]:
        """As :meth:`OrderBook.working`, over the strategy's orders only."""
        return _working(self._active(), self._book._active, exclude, joining)

    def pending_quantity(
        self,
        instrument: Instrument,
        skip: Callable[[OrderRequest], bool] | None = None,
        exclude: Set[int] = frozenset(),
    ) -> Decimal:
        """As :meth:`OrderBook.pending_quantity`, over the strategy's orders only."""
        return _pending(self._active(), instrument, skip, exclude)


def _snapshot(entry: _Record | Order) -> Order:
    return entry if type(entry) is Order else entry.snapshot()


def _record(entry: _Record | Order) -> _Record:
    return _Record.of(entry) if type(entry) is Order else entry


def _working(
    records: Iterable[_Record],
    active: Mapping[int, _Record],
    exclude: int | Set[int],
    joining: OrderRequest | None,
) -> dict[Instrument, tuple[Decimal, Decimal]]:
    groups: dict[tuple[Instrument, int, str], Decimal] = {}
    skip = (exclude,) if isinstance(exclude, int) else exclude
    for r in records:
        request = r.request
        if r.order_id in skip:
            continue
        if request.parent_id is not None and request.parent_id in active:
            continue  # a bracket's exit: live only once its entry has filled
        key = (request.instrument, request.side.sign, request.oca_group or f"#{r.order_id}")
        remaining = request.quantity - r.filled
        if remaining > groups.get(key, _ZERO):
            groups[key] = remaining
    if joining is not None and joining.oca_group:
        key = (joining.instrument, joining.side.sign, joining.oca_group)
        largest = groups.get(key)
        if largest is not None:
            groups[key] = max(largest - joining.quantity, _ZERO)
    out: dict[Instrument, tuple[Decimal, Decimal]] = {}
    for (inst, sign, _), remaining in groups.items():
        buys, sells = out.get(inst, (_ZERO, _ZERO))
        out[inst] = (buys + remaining, sells) if sign > 0 else (buys, sells + remaining)
    return out


def _pending(
    records: Iterable[_Record],
    instrument: Instrument,
    skip: Callable[[OrderRequest], bool] | None,
    exclude: Set[int],
) -> Decimal:
    groups: dict[tuple[int, str], Decimal] = {}
    for r in records:
        request = r.request
        if request.instrument != instrument or (skip is not None and skip(request)):
            continue
        if r.order_id in exclude:
            continue
        key = (request.side.sign, request.oca_group or f"#{r.order_id}")
        remaining = request.quantity - r.filled
        if remaining > groups.get(key, _ZERO):
            groups[key] = remaining
    return sum(
        (remaining if sign > 0 else -remaining for (sign, _), remaining in groups.items()),
        _ZERO,
    )
