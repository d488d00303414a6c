"""IBKRBroker: the engine's orders sent to TWS or IB Gateway, and IB's answers as events."""

from __future__ import annotations

import logging
import math
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from decimal import Decimal
from functools import partial
from typing import Any, ClassVar, Literal, final

import attrs
from typing_extensions import override

from ibkrfw.core.clock import Clock
from ibkrfw.errors import BrokerError, ConfigError, OrderError, RequestError
from ibkrfw.ibkr.client import IBClient, Listener
from ibkrfw.ibkr.config import IBKRConfig
from ibkrfw.ibkr.connection import Action, ConnectionMonitor, ConnectionState, Transition
from ibkrfw.ibkr.executions import ExecutionBook, ExecutionReport
from ibkrfw.ibkr.ids import OrderIds
from ibkrfw.ibkr.journal import DONE, SENT, WORKING, Journal
from ibkrfw.ibkr.translate import from_ib_contract, from_ib_order, to_ib_contract, to_ib_order
from ibkrfw.model._decimal import float_decimal
from ibkrfw.model._time import parse_ib_time
from ibkrfw.model.events import (
    CashAdjusted,
    ConnectionChanged,
    Event,
    OrderAccepted,
    OrderCancelled,
    OrderCancelRejected,
    OrderFilled,
    OrderModified,
    OrderModifyRejected,
    OrderRejected,
    Reconciled,
)
from ibkrfw.model.fills import Fill
from ibkrfw.model.instruments import Instrument
from ibkrfw.model.orders import Order, OrderRequest, OrderType, Side
from ibkrfw.ports import Broker, EventSink
from ibkrfw.risk.account import IB_INITIAL_MARGIN, MarginSpec, margin_rates

__all__ = ["IBKRBroker"]

log = logging.getLogger("ibkrfw.ibkr")

_CANCEL_REFUSED = frozenset((161, 10147, 10148))
_CANCELLED_STATUS = frozenset(("Cancelled", "ApiCancelled"))
# What the broker reads of the account at each reconciliation (reqAccountSummary's tags)
_ACCOUNT_TAGS = (
    "TotalCashValue",
    "NetLiquidation",
    "GrossPositionValue",
    "InitMarginReq",
    "MaintMarginReq",
    "AvailableFunds",
    "ExcessLiquidity",
    "BuyingPower",
)
_MARGIN_TOLERANCE = Decimal("0.10")  # IB's margin may exceed the run's rates by this share


class _AtIB:
    """What IB knows of orders: open, completed (finished) and executed ones.

    An order of this library is known when a record carries its IB order id and its
    ``orderRef``; a record without an ``orderRef`` counts by its id alone, and completed
    orders (which carry no order id) by their ``orderRef`` or ``permId``.
    """

    def __init__(
        self,
        executions: list[tuple[Any, ...]],
        open_rows: list[tuple[Any, ...]],
        completed: list[tuple[Any, ...]],
    ) -> None:
        self.open = {(int(row[0]), _row_ref(row[2])) for row in open_rows}
        self.executed = {
            (int(execution.orderId), str(getattr(execution, "orderRef", "") or ""))
            for _contract, execution in executions
        }
        self.finished: dict[str | int, tuple[str, str]] = {}
        for _contract, order, state in completed:
            status = (str(getattr(state, "status", "") or ""),
                      str(getattr(state, "completedStatus", "") or ""))  # fmt: skip
            if ref := _row_ref(order):
                self.finished[ref] = status
            if perm := int(getattr(order, "permId", 0) or 0):
                self.finished[perm] = status

    @staticmethod
    def _known(records: set[tuple[int, str]], ib_id: int, ref: str) -> bool:
        return (ib_id, ref) in records or (ib_id, "") in records

    def is_open(self, ib_id: int, ref: str) -> bool:
        """Whether IB lists the order among the open ones."""
        return self._known(self.open, ib_id, ref)

    def was_executed(self, ib_id: int, ref: str) -> bool:
        """Whether IB reports an execution of the order."""
        return self._known(self.executed, ib_id, ref)

    def completed(self, ref: str, perm_id: int) -> tuple[str, str] | None:
        """IB's status and completed status of the order, if IB lists it as finished."""
        return self.finished.get(ref) or (self.finished.get(perm_id) if perm_id else None)

    def knows(self, ib_id: int, ref: str, perm_id: int) -> bool:
        """Whether IB has any record of the order."""
        return (
            self.is_open(ib_id, ref)
            or self.was_executed(ib_id, ref)
            or self.completed(ref, perm_id) is not None
        )


def _row_ref(order: Any) -> str:
    return str(getattr(order, "orderRef", "") or "")


def _executed(
    executions: list[tuple[Any, ...]], ib_id: int, ref: str
) -> tuple[Decimal, Decimal | None]:
    """What IB's executions of one order filled (once per ``execId``), and at what price."""
    seen: dict[str, tuple[Decimal, Decimal]] = {}
    for _contract, execution in executions:
        row_ref = str(getattr(execution, "orderRef", "") or "")
        if int(execution.orderId) == ib_id and row_ref in (ref, ""):
            seen[execution.execId] = (_quantity(execution.shares), float_decimal(execution.price))
    quantity = sum((q for q, _ in seen.values()), Decimal(0))
    if not quantity:
        return quantity, None
    return quantity, sum((q * p for q, p in seen.values()), Decimal(0)) / quantity


def _ref_id(order_ref: str) -> int:
    """The IB order id an ``orderRef`` of this library names (``ibkrfw:<id>[/strategy][:tag]``).

    0 if it names none.
    """
    parts = order_ref.split(":")
    if len(parts) >= 2 and parts[0] == "ibkrfw":
        number = parts[1].split("/", 1)[0]
        if number.isdigit():
            return int(number)
    return 0


def _ref_strategy(order_ref: str) -> str:
    """The strategy an ``orderRef`` of this library names (``ibkrfw:<id>/<strategy>...``)."""
    parts = order_ref.split(":", 2)
    if len(parts) >= 2 and parts[0] == "ibkrfw" and "/" in parts[1]:
        return parts[1].split("/", 1)[1]
    return ""


def _ref_tag(order_ref: str) -> str:
    """The strategy's tag in an ``orderRef`` of this library (``ibkrfw:<id>:<tag>``), or ""."""
    parts = order_ref.split(":", 2)
    return parts[2] if len(parts) == 3 and parts[0] == "ibkrfw" else ""


def _quantity(value: Any) -> Decimal:
    """A share count as an exact Decimal (9.81 sends floats, 10.x Decimals); 100.0 is 100."""
    number = float_decimal(value) if isinstance(value, float) else Decimal(value)
    return number.quantize(Decimal(1)) if number == number.to_integral_value() else number


def _same_terms(shown: OrderRequest, asked: OrderRequest) -> bool:
    """Whether IB shows an order with the quantity, prices and time in force asked for.

    A trailing stop's stop price is left out: IB reports where the trail has moved it.
    """
    return (
        shown.quantity == asked.quantity
        and shown.limit_price == asked.limit_price
        and (shown.stop_price == asked.stop_price or asked.order_type is OrderType.TRAILING_STOP)
        and shown.tif is asked.tif
        and shown.trail_amount == asked.trail_amount
        and shown.trail_percent == asked.trail_percent
    )


class _Working:
    """What the broker knows of one order it sent."""

    __slots__ = (
        "accepted",
        "cancelling",
        "deferred",
        "done",
        "filled",
        "flushing",
        "ib_id",
        "modifying",
        "order",
        "perm_id",
        "request",
        "sent_at",
        "unacknowledged",
    )

    def __init__(self, order: Order, ib_id: int) -> None:
        self.order = order
        self.request = order.request  # the terms IB has confirmed last
        self.ib_id = ib_id
        self.perm_id = 0
        self.accepted = False
        self.done = False
        self.cancelling = 0  # cancellations sent that IB may still refuse, one answer each
        self.filled = Decimal(0)
        # Changes sent and not answered yet, oldest first (IB answers them in order)...
        self.modifying: deque[OrderRequest] = deque()
        # ...and changes asked for before IB acknowledged the order, sent once it has (None:
        # a cancellation asked for after them).
        self.deferred: list[OrderRequest | None] = []
        self.flushing = False  # the deferred changes are being sent
        self.sent_at = math.inf  # when placeOrder went out (time.monotonic)
        self.unacknowledged = False  # warned of: no acknowledgement within ack_timeout_s


@final
class IBKRBroker(Broker, Listener):
    """Send the engine's orders to TWS or IB Gateway and report IB's answers as events.

    Orders carry an IB order id from :class:`~ibkrfw.ibkr.OrderIds` (never reused, persisted
    before use when ``state_dir`` is given) and an ``orderRef`` of the form
    ``ibkrfw:<IB order id>`` (followed by ``:<tag>`` when the request has a tag), by which they
    are recognised after a restart. Fills come from ``execDetails`` joined with their commission
    reports, once per ``execId``; ``orderStatus`` only confirms acceptance and cancellation,
    since IB may skip or repeat it.

    While the connection is down or IB unreachable, new orders and cancellations are held and
    sent once it is back and the executions missed meanwhile have been fetched; modifications
    are refused (:class:`~ibkrfw.OrderModifyRejected`) rather than held.

    Args:
        config: Where to connect; the mode (paper by default) must match the account.
        client: An :class:`~ibkrfw.ibkr.client.IBClient` to share with an
            :class:`~ibkrfw.ibkr.IBKRDataFeed`; one is made from ``config`` if not given.
        state_dir: A directory for the order id file and the journal (``journal.db``); None
            keeps both in memory, so nothing survives a restart.
        on_mismatch: What to do when the journal and the account disagree (see below):
            ``"refuse"`` (the default) to trade nothing until they agree, ``"adopt"`` to take
            the account's positions and working orders as the truth.
        ack_timeout_s: How long IB may take to acknowledge an order (``openOrder`` or
            ``orderStatus``) before a warning is logged, once per order. The order is not
            given up for that: the next reconciliation settles it. An execution whose
            commission report has not come in that time is booked without it (a warning; a
            commission that comes later is a :class:`~ibkrfw.CashAdjusted`).
        initial_margin: The initial margin rates the run's buying-power checks assume (those
            of its :class:`~ibkrfw.risk.BuyingPower` rule; IB's Regulation T rates by
            default), compared with the margin IB asks for the account's positions.

    Start-up reconciliation: before the run's first order, the broker fetches the account's
    positions, open orders, completed orders and today's executions. Executions of journaled
    orders missed while the process was down are recorded; journaled orders still working are
    handed to the engine (:meth:`adopt_orders`) with what they filled, the others are closed.
    A journaled order IB has no record of at all (not open, not completed, never executed,
    matched by order id and ``orderRef``) never reached IB: it is recorded as *lost*, logged
    as a warning and reported in the ``warnings`` of :class:`~ibkrfw.Reconciled`,
    and never sent again. Then the positions the journal adds up to are compared with the
    account's. If they agree (or ``on_mismatch="adopt"``), the account's positions become the
    run's starting positions and its working ``ibkrfw:`` orders are adopted; otherwise
    :meth:`start` raises :class:`~ibkrfw.BrokerError` naming every difference. The cash the
    recorded executions explain (futures at their multiplier, commissions included) and the
    account's margin (a shortfall, or IB asking more than ``initial_margin`` accounts for) are
    checked too. After a reconnection the same comparison runs (see :meth:`reconcile`), and a
    disagreement under ``"refuse"`` keeps new orders held. Each comparison ends in a
    :class:`~ibkrfw.Reconciled` event.

    Raises:
        ConfigError: if neither ``config`` nor ``client`` is given, ``on_mismatch`` is
            neither ``"refuse"`` nor ``"adopt"``, ``ack_timeout_s`` is not a positive number
            of seconds, or a margin rate is not in (0, 1].
    """

    def __init__(
        self,
        config: IBKRConfig | None = None,
        *,
        client: IBClient | None = None,
        state_dir: str | os.PathLike[str] | None = None,
        on_mismatch: Literal["refuse", "adopt"] = "refuse",
        ack_timeout_s: float = 10.0,
        initial_margin: MarginSpec = IB_INITIAL_MARGIN,
    ) -> None:
        if (
            isinstance(ack_timeout_s, bool)
            or not isinstance(ack_timeout_s, int | float)
            or not 0 < ack_timeout_s < math.inf
        ):
            raise ConfigError(
                f"IBKRBroker: ack_timeout_s must be a positive number of seconds, got "
                f"{ack_timeout_s!r}; give how long IB may take to acknowledge an order, "
                "e.g. 10.0"
            )
        self.ack_timeout_s = float(ack_timeout_s)
        self.margin_rates = margin_rates(initial_margin)
        if client is None:
            if config is None:
                raise ConfigError("IBKRBroker needs a config or a client")
            client = IBClient(config)
        self.client = client
        self.config = client.config
        path = None if state_dir is None else os.path.join(os.fspath(state_dir), "order_ids.json")
        if state_dir is not None:
            os.makedirs(state_dir, exist_ok=True)
        if on_mismatch not in ("refuse", "adopt"):
            raise ConfigError(f"on_mismatch must be 'refuse' or 'adopt', got {on_mismatch!r}")
        self.on_mismatch = on_mismatch
        self.ids = OrderIds(path)
        self.journal = Journal(
            ":memory:" if state_dir is None else os.path.join(os.fspath(state_dir), "journal.db")
        )
        self.ids.observe_used(self.journal.highest_order_id())
        self.executions = ExecutionBook()
        self._start_positions: list[Fill] = []
        # ib id, perm id, request, and what it filled: quantity, average price
        self._start_orders: list[tuple[int, int, OrderRequest, Decimal, Decimal | None]] = []
        self._halted = False
        self._started = False
        self._group: list[Order] | None = None
        self._lock = threading.RLock()
        self._by_ib: dict[int, _Working] = {}
        self._by_engine: dict[int, _Working] = {}
        self._held: list[tuple[int, Callable[[], object]]] = []  # (engine id or 0, send)
        self._emit: EventSink | None = None
        self._clock: Clock | None = None
        self._cash = Decimal(0)
        self._currency = "USD"
        self._account_values: dict[str, Decimal] = {}
        self._tasks: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._released = threading.Event()

    # --- start and stop ------------------------------------------------------------------------
    @override
    def start(self, clock: Clock, emit: EventSink) -> None:
        """Connect (unless the shared client is connected already) and read the account.

        Raises:
            BrokerError: if TWS cannot be reached or the account cannot be read.
            ConfigError: if the account does not match the mode (paper or live).
        """
        self._clock, self._emit = clock, emit
        client = self.client
        client.add_listener(self)
        if client.monitor.state is not ConnectionState.CONNECTED:
            client.connect()
        self.config.check_account(client.account)
        self.ids.observe_next_valid_id(client.next_valid_id)
        self._read_account()
        self._reconcile_at_start()
        self._worker = threading.Thread(target=self._work, name="ibkrfw-broker", daemon=True)
        self._worker.start()
        self._released.set()
        self._started = True
        log.info(
            "trading account %s (%s) with %s %s",
            client.account,
            self.config.mode,
            self._cash,
            self._currency,
        )

    def _read_account(self) -> dict[str, Decimal]:
        """Read the account's cash and margin values (``reqAccountSummary``).

        Raises:
            BrokerError: if TWS does not report the account's cash.
            RequestError: if TWS does not answer.
        """
        # A summary is a subscription TWS keeps (two at most per client, error 322 beyond)
        # until it is cancelled by its own id.
        req_id = self.client.new_req_id()
        try:
            rows = self.client.request(
                "reqAccountSummary",
                "All",
                ",".join(_ACCOUNT_TAGS),
                rows="accountSummary",
                req_id=req_id,
            )
        finally:
            self.client.send("cancelAccountSummary", req_id)
        values: dict[str, Decimal] = {}
        for account, tag, value, currency in rows:
            if account != self.client.account or tag not in _ACCOUNT_TAGS:
                continue
            try:
                values[tag] = Decimal(value)
            except ArithmeticError:
                log.warning("account value %s=%r not understood: left out", tag, value)
                continue
            if tag == "TotalCashValue":
                self._currency = currency or "USD"
        if "TotalCashValue" not in values:
            raise BrokerError(f"TWS did not report the cash of account {self.client.account}")
        if not self._started:  # the run's starting cash; later readings are for the checks
            self._cash = values["TotalCashValue"]
        self._account_values = values
        return values

    @override
    def starting_cash(self) -> Decimal:
        """The account's total cash when the run started (``TotalCashValue``)."""
        return self._cash

    @property
    @override
    def base_currency(self) -> str:
        """The account's base currency, as TWS reports it."""
        return self._currency

    @override
    def stop(self) -> None:
        """Stop the broker's worker, close the journal, and let go of the connection.

        The connection closes unless a data feed still uses it.
        """
        self._tasks.put(None)
        if self._worker is not None:
            self._worker.join(5.0)
        self._emit = None  # late callbacks (the client may live on for the feed) are ignored
        self.client.remove_listener(self)
        self.journal.close()

    def _work(self) -> None:
        poll = min(1.0, self.ack_timeout_s / 4)
        while True:
            try:
                task = self._tasks.get(timeout=poll)
            except queue.Empty:
                self._check_overdue()
                continue
            if task is None:
                return
            try:
                task()
            except Exception:
                log.exception("broker task failed")
            self._check_overdue()

    def _check_overdue(self) -> None:
        self._check_acknowledgements()
        self._check_commissions()

    def _check_commissions(self) -> None:
        """Book, without its commission, a fill whose commission report has not come.

        IB sends ``commissionReport`` right after ``execDetails``; one that has not come within
        ack_timeout_s may never come (another client's order without the master client id,
        a report lost with the connection). The fill is booked at no commission, with a
        warning, so the position follows IB's; a commission that comes later is booked as a
        :class:`~ibkrfw.CashAdjusted`.
        """
        if self._emit is None:
            return
        for exec_id in self.executions.uncharged(self.ack_timeout_s):
            fill = self.executions.charge_missing(exec_id)
            if fill is None:
                continue
            with self._lock:
                working = self._by_engine.get(fill.order_id)
            if working is None:
                continue
            log.warning(
                "execution %s of order %d (%s %s %s at %s): no commission report within %g s; "
                "booked without its commission", exec_id, fill.order_id, fill.side,
                fill.quantity, fill.instrument.id, fill.price, self.ack_timeout_s,
            )  # fmt: skip
            self._filled(working, fill)

    def _check_acknowledgements(self) -> None:
        """Warn, once per order, of an order IB has not acknowledged within ack_timeout_s."""
        now = time.monotonic()
        with self._lock:
            late = [
                w for w in self._by_ib.values()
                if not w.accepted and not w.done and not w.unacknowledged
                and now - w.sent_at > self.ack_timeout_s
            ]  # fmt: skip
            for working in late:
                working.unacknowledged = True
        for working in late:
            order = working.order
            log.warning(
                "order %d (%s %s %s, IB order id %d) not acknowledged by IB within %g s: it "
                "may be lost on the way to TWS; it is not sent again, and the next "
                "reconciliation settles it",
                order.order_id, order.request.side, order.request.quantity, order.instrument.id,
                working.ib_id, self.ack_timeout_s,
            )  # fmt: skip

    @property
    def unacknowledged(self) -> list[int]:
        """The engine's ids of the orders sent that IB has not acknowledged yet, oldest first."""
        with self._lock:
            return sorted(
                w.order.order_id for w in self._by_engine.values() if not w.accepted and not w.done
            )

    # --- sending ---------------------------------------------------------------------------
    def _now(self) -> int:
        assert self._clock is not None
        return self._clock.now_ns()

    def _put(self, event: Event) -> None:
        assert self._emit is not None
        self._emit(event)

    def _can_send(self) -> bool:
        return self.client.is_connected and self._released.is_set() and not self._halted

    @override
    def submit(self, order: Order) -> None:
        """Give ``order`` an IB order id and send it (or hold it while disconnected)."""
        with self._lock:
            if self._group is not None:
                self._group.append(order)
                return
            if not self._can_send():
                log.warning(
                    "not connected: order %d held until the connection is back", order.order_id
                )
                self._held.append((order.order_id, lambda: self._place(order)))
                return
        self._place(order)

    @override
    def begin_group(self) -> None:
        """Hold the orders submitted from now on, to send them as one group."""
        with self._lock:
            self._group = []

    @override
    def end_group(self) -> None:
        """Send the group: every order but the last with ``transmit`` off, as IB wants.

        TWS keeps the orders of a group until the last one arrives, so a bracket's entry cannot
        fill before its take-profit and stop-loss are attached.
        """
        with self._lock:
            group, self._group = self._group or [], None
            if not self._can_send():
                for i, order in enumerate(group):
                    last = i == len(group) - 1
                    self._held.append((order.order_id, partial(self._place, order, transmit=last)))
                return
        for i, order in enumerate(group):
            self._place(order, transmit=i == len(group) - 1)

    def _place(self, order: Order, *, transmit: bool = True) -> None:
        request = order.request
        parent = 0
        if request.parent_id is not None:
            known = self._by_engine.get(request.parent_id)
            if known is None:
                with self._lock:
                    if any(held_id == request.parent_id for held_id, _ in self._held):
                        # Its parent's send failed and waits for the connection: it waits
                        # behind it, with its transmit flag, so the group goes out whole.
                        self._held.append(
                            (order.order_id, partial(self._place, order, transmit=transmit))
                        )
                        return
                self._put(OrderRejected(
                    ts_ns=self._now(), order_id=order.order_id,
                    reason=f"parent order {request.parent_id} was never sent to IB",
                ))  # fmt: skip
                return
            parent = known.ib_id
        ib_id = self.ids.next()
        working = _Working(order, ib_id)
        with self._lock:
            self._by_ib[ib_id] = working
            self._by_engine[order.order_id] = working
        ref = self.order_ref(ib_id, request.tag, request.strategy)
        self.journal.order_sent(
            ib_id, ref, order.instrument.id, request.side.value, request.quantity, self._now()
        )
        ib_order = to_ib_order(
            request,
            order_id=ib_id,
            order_ref=ref,
            account=self.client.account,
            parent_id=parent,
            transmit=transmit,
        )
        working.sent_at = time.monotonic()
        if not self.client.send("placeOrder", ib_id, to_ib_contract(order.instrument), ib_order):
            with self._lock:  # the socket went down just now: keep it for the reconnection
                self._by_ib.pop(ib_id)
                self._by_engine.pop(order.order_id)
                # with its transmit flag: a bracket's entry must not go out transmitted
                # ahead of its exits (they are held behind it, see above)
                self._held.append((order.order_id, partial(self._place, order, transmit=transmit)))
            # nothing went out under this id: it is closed, so no reconciliation calls it lost
            self.journal.order_status(ib_id, DONE)
            self.journal.note(ib_id, "not sent: no connection; held, to go out under a new id",
                              self._now())  # fmt: skip

    @property
    def changes_waiting(self) -> int:
        """How many order changes wait for IB to acknowledge their order before they go out."""
        with self._lock:
            return sum(len(w.deferred) + w.flushing for w in self._by_engine.values())

    @staticmethod
    def order_ref(ib_id: int, tag: str = "", strategy: str = "") -> str:
        """The ``orderRef`` the broker gives an order: ``ibkrfw:<IB order id>[:<tag>]``.

        An order of one strategy among several (``OrderRequest.strategy``) carries its name
        after the id, ``ibkrfw:<IB order id>/<strategy>[:<tag>]``, which gives each strategy
        its orders and positions back after a restart.
        """
        ref = f"ibkrfw:{ib_id}/{strategy}" if strategy else f"ibkrfw:{ib_id}"
        return f"{ref}:{tag}" if tag else ref

    @override
    def cancel(self, order: Order) -> None:
        """Ask IB to cancel ``order`` (held while disconnected)."""
        with self._lock:
            working = self._by_engine.get(order.order_id)
            if working is None:  # never sent (held while disconnected): cancelled here
                before = len(self._held)
                self._held = [h for h in self._held if h[0] != order.order_id]
                if len(self._held) < before:
                    self._put(OrderCancelled(
                        ts_ns=self._now(), order_id=order.order_id,
                        reason="cancelled before it was sent to IB",
                    ))  # fmt: skip
                return
            working.cancelling += 1
            if not self._can_send():
                self._held.append((0, lambda: self.client.cancel_order(working.ib_id)))
                return
            if working.deferred or working.flushing:
                working.deferred.append(None)  # after the changes asked for before it
                return
        self.client.cancel_order(working.ib_id)

    @override
    def modify(self, order: Order, request: OrderRequest) -> None:
        """Send ``placeOrder`` again with the order's IB id and the new request.

        A change asked for before IB has acknowledged the order is sent once it has (TWS
        takes a ``placeOrder`` for an id it does not know as a new order), and refused if the
        order ends first. A change of an order that has just ended at IB is sent all the same:
        IB's refusal then comes after the order's end, as it does in the simulator. The answer
        is :class:`~ibkrfw.OrderModified` once IB reports the order with the new terms, or
        :class:`~ibkrfw.OrderModifyRejected`.
        """
        working = self._by_engine.get(order.order_id)
        reason = None
        if working is None:
            reason = "the order has not been sent to IB yet"
        elif working.done and not working.accepted:
            reason = "IB did not take the order"
        elif not self._can_send():
            reason = "not connected to IB"
        if reason is not None or working is None:
            self._put(OrderModifyRejected(
                ts_ns=self._now(), order_id=order.order_id, reason=reason or "unknown order"
            ))  # fmt: skip
            return
        with self._lock:
            if not working.accepted or working.deferred or working.flushing:
                working.deferred.append(request)  # in the order asked for
                return
        self._send_modification(working, request)

    def _send_modification(self, working: _Working, request: OrderRequest) -> None:
        with self._lock:
            working.modifying.append(request)
        parent = self._by_engine.get(request.parent_id) if request.parent_id is not None else None
        ib_order = to_ib_order(
            request,
            order_id=working.ib_id,
            order_ref=self.order_ref(working.ib_id, request.tag, request.strategy),
            account=self.client.account,
            parent_id=parent.ib_id if parent is not None else 0,
        )
        if not self.client.send(
            "placeOrder", working.ib_id, to_ib_contract(working.order.instrument), ib_order
        ):
            with self._lock:
                working.modifying.remove(request)
            self._put(OrderModifyRejected(ts_ns=self._now(), order_id=working.order.order_id,
                                          reason="not connected to IB"))  # fmt: skip

    def _flush(self, working: _Working) -> None:
        """Send the changes asked for before IB acknowledged the order, in order."""
        while True:
            with self._lock:
                if not working.deferred or working.done:
                    working.flushing = False
                    return
                request = working.deferred.pop(0)
                working.flushing = True
            if request is None:
                self.client.cancel_order(working.ib_id)
            else:
                self._send_modification(working, request)

    def _finished(self, working: _Working) -> list[OrderRequest | None]:
        """Mark the order ended at IB; return the changes still waiting to be sent."""
        with self._lock:
            working.done = True
            deferred, working.deferred = working.deferred, []
        self.journal.order_status(working.ib_id, DONE)
        return deferred

    def _refuse_deferred(self, working: _Working, deferred: list[OrderRequest | None]) -> None:
        order_id, reason = working.order.order_id, "the order ended at IB before it was sent"
        for request in deferred:
            if request is None:
                working.cancelling -= 1
                self._put(OrderCancelRejected(ts_ns=self._now(), order_id=order_id,
                                              reason=f"cancellation: {reason}"))  # fmt: skip
            else:
                self._put(OrderModifyRejected(ts_ns=self._now(), order_id=order_id,
                                              reason=f"change: {reason}"))  # fmt: skip

    # --- the connection ----------------------------------------------------------------------
    @override
    def on_transition(self, transition: Transition) -> None:
        """Hold orders, reconcile and release them as the connection's state changes."""
        if self._emit is None:
            return
        self._put(ConnectionChanged(
            ts_ns=self._now(), state=transition.after.value, reason=transition.reason,
            actions=tuple(a.value for a in transition.actions),
        ))  # fmt: skip
        actions = transition.actions
        if Action.HOLD_ORDERS in actions:
            self._released.clear()
        if not self._started:
            return  # start() reconciles itself
        if Action.RECONCILE in actions or Action.RELEASE_ORDERS in actions:
            # Requests wait for answers that arrive on this very thread: run them elsewhere.
            self._tasks.put(lambda: self._resume(Action.RECONCILE in actions))

    def _resume(self, reconcile: bool) -> None:
        if reconcile:
            try:
                self.reconcile()
            except RequestError as exc:
                log.warning("reconciliation after reconnecting failed: %s", exc)
                return  # orders stay held; the next transition tries again
        with self._lock:
            if not self.client.is_connected or self._halted:
                return
            held, self._held = self._held, []
            self._released.set()
        if held:
            log.info("connection back: sending %d held order message(s)", len(held))
        for _, send in held:
            send()

    def reconcile(self) -> None:
        """Compare with the account again (after a reconnection); missed fills are reported.

        Executions IB has are fetched (those already seen are recognised by their ``execId``
        and counted once), with the open and completed orders. Each order sent and not
        finished is then settled, matched by IB order id and ``orderRef``:

        * open at IB: it works on;
        * known only as executed: its fills (just fetched) tell what became of it;
        * finished at IB unfilled (a completed order), or acknowledged before and no longer
          open: reported cancelled;
        * never acknowledged, and unknown to IB in every answer: IB never received it (the
          message was lost with the connection). It is reported as an
          :class:`~ibkrfw.OrderRejected` whose reason begins ``"lost:"``, recorded as lost in
          the journal, logged as a warning, listed in the ``warnings`` of
          :class:`~ibkrfw.Reconciled`, and never sent again: the strategy may send a new
          one.

        Then the journal's positions are compared with the account's, and the account's
        margin is checked. The outcome is a :class:`~ibkrfw.Reconciled` event; under
        ``on_mismatch="refuse"`` a disagreement keeps new orders held.

        Raises:
            RequestError: if IB does not answer.
        """
        from ibapi.execution import ExecutionFilter

        executions = self.client.request("reqExecutions", ExecutionFilter(), rows="execDetails")
        open_rows = self.client.request("reqOpenOrders", rows="openOrder")
        completed = self._completed_orders()
        at_ib = _AtIB(executions, open_rows, completed)
        warnings: list[str] = []
        lost_groups: list[_Working] = []
        with self._lock:
            pending = [w for w in self._by_ib.values() if not w.done]
        for working in pending:
            request = working.order.request
            ref = self.order_ref(working.ib_id, request.tag, request.strategy)
            if at_ib.is_open(working.ib_id, ref) or working.filled >= working.request.quantity:
                continue
            finished = at_ib.completed(ref, working.perm_id)
            if finished is None and not working.accepted:
                if not at_ib.was_executed(working.ib_id, ref):
                    warnings.append(self._lose(working, ref))
                    lost_groups.append(working)
                continue  # executed while away: its fills settle it
            if finished is not None and finished[0] == "Filled":
                continue  # its fills settle it
            reason = "no longer open at IB after the reconnection"
            if finished is not None:
                reason = f"{finished[1] or finished[0]} at IB while disconnected"
            deferred = self._finished(working)
            self._put(OrderCancelled(ts_ns=self._now(), order_id=working.order.order_id,
                                     reason=reason))  # fmt: skip
            self._refuse_deferred(working, deferred)
        for working in lost_groups:
            self._cancel_group(working)
        account = self._account_positions()
        differences = self._position_differences(account)
        notes: list[str] = []
        try:
            values = self._read_account()
        except (BrokerError, RequestError) as exc:
            notes.append(f"the account's cash and margin could not be read: {exc}")
        else:
            warnings += self._margin_findings(values, account, notes)
        resolution = "agreed"
        if differences:
            resolution = "refused" if self.on_mismatch == "refuse" else "adopted"
            if resolution == "adopted":
                self._adopt_positions(account)
            else:
                self._halted = True
                log.error("trading stopped: the journal and the account disagree: %s",
                          "; ".join(differences))  # fmt: skip
        else:
            self._halted = False
        self._put(Reconciled(ts_ns=self._now(), differences=tuple(differences),
                             notes=tuple(notes), resolution=resolution,
                             warnings=tuple(warnings)))  # fmt: skip
        for warning in warnings:
            log.warning("reconciliation: %s", warning)

    def _cancel_group(self, lost: _Working) -> None:
        """Cancel what is left of a lost order's group (a bracket is sent whole or not at all).

        The orders of a group sent before the lost one, with ``transmit`` off, wait in TWS for
        the group's last order, which will never come: they are cancelled, and IB's answers
        reach the strategy as for any cancellation.
        """
        request = lost.order.request
        root = request.parent_id if request.parent_id is not None else lost.order.order_id
        with self._lock:
            group = [
                w for w in self._by_engine.values()
                if not w.done and w is not lost
                and (w.order.order_id == root or w.order.request.parent_id == root)
            ]  # fmt: skip
        for working in group:
            log.warning("order %d is cancelled: order %d of its group was lost on the way to IB",
                        working.order.order_id, lost.order.order_id)  # fmt: skip
            working.cancelling += 1
            self.client.cancel_order(working.ib_id)

    def _completed_orders(self) -> list[tuple[Any, ...]]:
        """The orders IB lists as finished today (``reqCompletedOrders``)."""
        return self.client.request("reqCompletedOrders", False, rows="completedOrder")

    def _lose(self, working: _Working, ref: str) -> str:
        """Settle an order IB never received: rejected as lost, journaled; return a warning."""
        order, request = working.order, working.order.request
        reason = (
            f"lost: TWS never received IB order id {working.ib_id} (orderRef {ref}); it was "
            "released and is not sent again"
        )
        deferred = self._finished(working)
        self.journal.order_lost(working.ib_id, reason, self._now())
        self._put(OrderRejected(ts_ns=self._now(), order_id=order.order_id, reason=reason))
        self._refuse_deferred(working, deferred)
        return (
            f"order {order.order_id} ({request.side} {request.quantity} {order.instrument.id}) "
            f"{reason}"
        )

    def _margin_findings(
        self,
        values: dict[str, Decimal],
        account: dict[str, tuple[Instrument, Decimal, Decimal]],
        notes: list[str],
    ) -> list[str]:
        """Return what the account's margin values call for, as warnings.

        A shortfall, or IB asking more margin than the run's rates assume, is a warning;
        IB asking less is added to ``notes``.
        """
        currency, found = self._currency, []

        def amount(tag: str) -> str:
            return f"{values[tag]:,.2f} {currency}"

        if values.get("ExcessLiquidity", Decimal(0)) < 0:
            maintenance = (
                f" (maintenance margin {amount('MaintMarginReq')})"
                if "MaintMarginReq" in values
                else ""
            )
            found.append(
                f"margin shortfall: ExcessLiquidity is {amount('ExcessLiquidity')}"
                f"{maintenance}: IB may close positions to cover it; reduce them or add funds"
            )
        elif values.get("AvailableFunds", Decimal(0)) < 0:
            found.append(
                f"initial margin not covered: AvailableFunds is {amount('AvailableFunds')}: "
                "IB rejects orders that add margin until positions shrink or funds arrive"
            )
        ib_margin = values.get("InitMarginReq")
        if ib_margin is None or not account:
            return found
        # the positions at market, shared out by their cost (reqPositions gives no prices)
        costs = {key: abs(qty) * price * inst.multiplier for key, (inst, qty, price) in
                 account.items()}  # fmt: skip
        total_cost = sum(costs.values(), Decimal(0))
        gross = values.get("GrossPositionValue", total_cost)
        if not total_cost:
            return found
        assumed = sum(
            (
                costs[key] / total_cost * gross
                * Decimal(str(self.margin_rates[inst.asset_class]))
                for key, (inst, _qty, _price) in account.items()
            ),
            Decimal(0),
        )  # fmt: skip
        if ib_margin > assumed * (1 + _MARGIN_TOLERANCE) + Decimal(1):
            found.append(
                f"IB asks {amount('InitMarginReq')} of initial margin for the positions, the "
                f"run's margin rates come to {assumed:,.2f} {currency}: orders its buying-power "
                "checks let through may be rejected by IB; give the BuyingPower rule (and "
                "IBKRBroker's initial_margin) the account's rates"
            )
        elif assumed > ib_margin * (1 + _MARGIN_TOLERANCE) + Decimal(1):
            notes.append(
                f"IB asks {amount('InitMarginReq')} of initial margin, less than the "
                f"{assumed:,.2f} {currency} the run's margin rates assume"
            )
        return found

    # --- start-up reconciliation ---------------------------------------------------------------
    def _account_positions(self) -> dict[str, tuple[Instrument, Decimal, Decimal]]:
        """The account's positions by instrument id: (instrument, quantity, average price)."""
        try:
            rows = self.client.request("reqPositions", rows="position")
        finally:
            self.client.send("cancelPositions")  # TWS keeps sending changes until cancelled
        held: dict[str, tuple[Instrument, Decimal, Decimal]] = {}
        for account, contract, quantity, avg_cost in rows:
            if account != self.client.account or not quantity:
                continue
            try:
                inst = from_ib_contract(contract)
            except ConfigError as exc:
                log.warning("position in %s not understood: %s", contract.symbol, exc)
                continue
            price = float_decimal(avg_cost) / inst.multiplier
            held[inst.id] = (inst, quantity, price)
        return held

    def _position_differences(
        self, account: dict[str, tuple[Instrument, Decimal, Decimal]]
    ) -> list[str]:
        journal = self.journal.positions()
        differences = []
        for key in sorted(set(journal) | set(account)):
            mine = journal.get(key, Decimal(0))
            theirs = account[key][1] if key in account else Decimal(0)
            if mine != theirs:
                differences.append(f"{key}: the journal holds {mine}, the account {theirs}")
        return differences

    def _adopt_positions(self, account: dict[str, tuple[Instrument, Decimal, Decimal]]) -> None:
        journal = self.journal.positions()
        now = self._now()
        for key in sorted(set(journal) | set(account)):
            theirs = account[key][1] if key in account else Decimal(0)
            change = theirs - journal.get(key, Decimal(0))
            if change:
                self.journal.adjust(key, change, "adopted from the account", now)

    def _reconcile_at_start(self) -> None:
        from ibapi.execution import ExecutionFilter

        notes: list[str] = []
        differences: list[str] = []
        journaled = {o.ib_id: o for o in self.journal.orders()}
        # 1. executions of journaled orders that happened while the process was down
        rows = self.client.request("reqExecutions", ExecutionFilter(), rows="execDetails")
        missed = 0
        for contract, execution in rows:
            # by orderRef first: it holds the id this library gave the order, whatever
            # client id the previous process connected with
            ref_id = _ref_id(str(getattr(execution, "orderRef", "") or ""))
            known = journaled.get(ref_id or int(execution.orderId))
            if known is None:
                continue
            try:
                ts = parse_ib_time(execution.time)
            except ValueError:
                ts = self._now()
            side = "BUY" if execution.side in ("BOT", "BUY") else "SELL"
            multiplier = Decimal(str(getattr(contract, "multiplier", "") or 1))
            if self.journal.execution(
                execution.execId, known.ib_id, known.instrument, side,
                _quantity(execution.shares), float_decimal(execution.price), ts, multiplier,
            ):  # fmt: skip
                missed += 1
                self.executions.mark_seen(execution.execId)
            else:
                self.executions.mark_seen(execution.execId)
        if missed:
            notes.append(f"{missed} execution(s) recorded that happened while away")
        # 2. orders: still working at IB, or finished while away, or lost on the way to IB
        open_rows = self.client.request("reqOpenOrders", rows="openOrder")
        at_ib = _AtIB(rows, open_rows, self._completed_orders())
        warnings: list[str] = []
        for order in self.journal.orders(open_only=True):
            if at_ib.is_open(order.ib_id, order.order_ref):
                continue
            if (
                order.status == SENT
                and not order.perm_id
                and not at_ib.knows(order.ib_id, order.order_ref, order.perm_id)
            ):
                reason = (
                    f"lost: TWS never received IB order id {order.ib_id} (orderRef "
                    f"{order.order_ref}); it was released and is not sent again"
                )
                self.journal.order_lost(order.ib_id, reason, self._now())
                warnings.append(
                    f"IB order id {order.ib_id} ({order.side} {order.quantity} "
                    f"{order.instrument}) of an earlier run {reason}"
                )
                continue
            self.journal.order_status(order.ib_id, DONE)
            notes.append(f"IB order id {order.ib_id} ({order.order_ref}) finished while away")
        adopt: list[tuple[int, int, OrderRequest, Decimal, Decimal | None]] = []
        for ib_id, contract, ib_order, _state in open_rows:
            ref = str(getattr(ib_order, "orderRef", "") or "")
            if not ref.startswith("ibkrfw:"):
                notes.append(
                    f"order {ib_id} at IB is not ours ({ref or 'no orderRef'}): left alone"
                )
                continue
            try:
                request = from_ib_order(from_ib_contract(contract), ib_order)
            except (ConfigError, OrderError) as exc:
                differences.append(f"order {ib_id} at IB cannot be read: {exc}")
                continue
            request = attrs.evolve(request, tag=_ref_tag(ref), strategy=_ref_strategy(ref))
            mine = _ref_id(ref) or ib_id
            if mine in journaled:
                filled, avg_price = self.journal.fill(mine)
            else:
                differences.append(f"order {ib_id} ({ref}) works at IB, unknown to the journal")
                filled, avg_price = _executed(rows, ib_id, ref)
            perm_id = int(getattr(ib_order, "permId", 0) or 0)
            adopt.append((ib_id, perm_id, request, filled, avg_price))
        # 3. cash: what the recorded executions explain since the last reading (a note only:
        # deposits, interest, dividends and fees move cash too)
        last = self.journal.last_cash()
        if last is not None and last[1] == self._currency:
            # IB stamps executions in whole seconds: one in the second of the last reading
            # counts as after it (a fill right after the start would be missed otherwise)
            explained, uncharged = self.journal.cash_flow_since(last[2] // 10**9 * 10**9 - 1)
            unexplained = self._cash - (last[0] + explained)
            if uncharged:
                notes.append(
                    f"{uncharged} execution(s) since the last run have no commission report: "
                    f"the cash check leaves their commissions out (cash is {unexplained:+.2f} "
                    f"{self._currency} off what the rest explains)"
                )
            elif abs(unexplained) >= Decimal("0.01"):
                notes.append(
                    f"cash moved {unexplained:+.2f} {self._currency} beyond what the fills "
                    "recorded since the last run explain (deposits, interest, dividends or "
                    "fees)"
                )
        self.journal.note_cash(self._cash, self._currency, self._now())
        # 4. positions and margin
        account = self._account_positions()
        differences += self._position_differences(account)
        warnings += self._margin_findings(self._account_values, account, notes)
        resolution = "agreed"
        if differences:
            if self.on_mismatch == "refuse":
                self._put(Reconciled(ts_ns=self._now(), differences=tuple(differences),
                                     notes=tuple(notes), resolution="refused",
                                     warnings=tuple(warnings)))  # fmt: skip
                raise BrokerError(
                    "the journal and the account disagree, and on_mismatch is 'refuse': "
                    + "; ".join(differences)
                    + ". Settle them by hand, or start with on_mismatch='adopt' to take the "
                    "account's state."
                )
            resolution = "adopted"
            self._adopt_positions(account)
        now = self._now()
        self._start_positions = [
            Fill(
                0,
                inst,
                Side.BUY if qty > 0 else Side.SELL,
                abs(qty),
                price,
                Decimal(0),
                now,
                f"adopted:{inst.id}",
            )
            for inst, qty, price in account.values()
        ]
        self._start_orders = adopt
        self._put(Reconciled(ts_ns=now, differences=tuple(differences), notes=tuple(notes),
                             resolution=resolution, warnings=tuple(warnings)))  # fmt: skip
        for note in notes:
            log.info("reconciliation: %s", note)
        for warning in warnings:
            log.warning("reconciliation: %s", warning)

    @override
    def starting_positions(self) -> list[Fill]:
        """The account's positions at start-up (after reconciliation), at their average cost."""
        return list(self._start_positions)

    @override
    def strategy_positions(self) -> dict[str, dict[str, tuple[Decimal, Decimal]]]:
        """What each strategy's recorded executions add up to, from the journal.

        The executions of orders whose ``orderRef`` names a strategy (``ibkrfw:<id>/<name>``),
        in the order they happened, at average cost: by strategy, then instrument id, the
        signed quantity and its average price. Flat positions are left out.
        """
        books: dict[str, dict[str, tuple[Decimal, Decimal]]] = {}
        for ref, inst, side, quantity, price in self.journal.executions_by_ref():
            name = _ref_strategy(ref)
            if not name:
                continue
            held, avg = books.setdefault(name, {}).get(inst, (Decimal(0), Decimal(0)))
            signed = quantity if side == "BUY" else -quantity
            new = held + signed
            if not held or (held > 0) == (signed > 0):
                avg = (avg * abs(held) + price * quantity) / abs(new)
            elif abs(signed) > abs(held):
                avg = price  # turned: the rest opens at this price
            books[name][inst] = (new, avg if new else Decimal(0))
        return {
            name: {inst: pos for inst, pos in held.items() if pos[0]}
            for name, held in books.items()
            if any(pos[0] for pos in held.values())
        }

    @override
    def adopt_orders(self, create: Callable[..., Order]) -> None:
        """Hand the orders of this library still working at IB to the engine.

        Each comes with what it filled before the run (the executions IB reports, and those
        the journal recorded), so a part-filled order enters the run's book part-filled.
        """
        for ib_id, perm_id, request, filled, avg_price in self._start_orders:
            order = create(request, filled=filled, avg_price=avg_price)
            working = _Working(order, ib_id)
            working.perm_id = perm_id
            working.accepted = True
            working.filled = filled
            with self._lock:
                self._by_ib[ib_id] = working
                self._by_engine[order.order_id] = working
            self.ids.observe_used(ib_id)
        self._start_orders = []

    # --- IB's callbacks ----------------------------------------------------------------------
    @override
    def on_message(self, name: str, args: tuple[Any, ...]) -> None:
        """Translate IB's order callbacks into order events."""
        if self._emit is None:
            return
        handler = self._handlers.get(name)
        if handler is not None:
            handler(self, *args)

    def _accept(self, working: _Working) -> None:
        """Report the order accepted, the first time IB shows it (changes then go out)."""
        with self._lock:
            if working.accepted:
                return
            working.accepted = True
            working.flushing = bool(working.deferred)  # changes asked meanwhile wait for these
        self.journal.order_status(working.ib_id, WORKING, working.perm_id)
        self._put(OrderAccepted(
            ts_ns=self._now(), order_id=working.order.order_id,
            broker_order_id=str(working.perm_id or working.ib_id),
        ))  # fmt: skip

    def _on_open_order(self, ib_id: int, contract: Any, order: Any, state: Any) -> None:
        working = self._by_ib.get(ib_id)
        if working is None:
            self.ids.observe_used(ib_id)
            return
        working.perm_id = int(getattr(order, "permId", 0) or 0) or working.perm_id
        self._accept(working)
        try:
            shown = from_ib_order(working.order.instrument, order)
        except (ConfigError, OrderError):  # not an order this library sends: nothing to compare
            shown = None
        if shown is not None:
            self._compare(working, shown)
        self._flush(working)

    def _compare(self, working: _Working, shown: OrderRequest) -> None:
        """Tell the engine what changed in an order IB reports (``openOrder``).

        TWS sends ``openOrder`` when an order is placed, changed, or fills, and in answer to
        requests: it is the answer to a change only if it shows the change's terms. A
        quantity IB changed by itself (an OCA group's fill reduces the other orders, IB's
        ``ocaType`` 3) is reported as the simulator reports it, an ``OrderModified``.
        """
        if working.done:
            return  # its changes are answered by IB's refusals (see _on_error)
        with self._lock:
            pending = working.modifying
            # IB answers changes in order: one it shows confirms those sent before it too
            at = next((i for i, r in enumerate(pending) if _same_terms(shown, r)), -1)
            answered = [pending.popleft() for _ in range(at + 1)]
        if not answered and shown.quantity != working.request.quantity:
            answered = [attrs.evolve(working.request, quantity=_quantity(shown.quantity))]
            log.info("order %d: IB changed its quantity to %s", working.order.order_id,
                     answered[0].quantity)  # fmt: skip
        for request in answered:
            working.request = request
            self._put(OrderModified(ts_ns=self._now(), order_id=working.order.order_id,
                                    request=request))  # fmt: skip
        if answered and working.filled >= working.request.quantity:
            self._refuse_deferred(working, self._finished(working))

    def _on_order_status(
        self, ib_id: int, status: str, filled: Decimal, remaining: Decimal, avg: float, perm: int
    ) -> None:
        working = self._by_ib.get(ib_id)
        if working is None or working.done:
            return
        working.perm_id = perm or working.perm_id
        if status in ("Submitted", "PreSubmitted"):
            self._accept(working)
            self._flush(working)
        elif status in _CANCELLED_STATUS:
            self._cancelled(working, "")

    def _cancelled(self, working: _Working, reason: str) -> None:
        if working.done:
            return
        deferred = self._finished(working)
        self._put(OrderCancelled(ts_ns=self._now(), order_id=working.order.order_id,
                                 reason=reason))  # fmt: skip
        self._refuse_deferred(working, deferred)

    def _on_error(self, req_id: int, code: int, text: str) -> None:
        working = self._by_ib.get(req_id)
        if working is None:
            return
        if ConnectionMonitor.is_warning(code):
            log.info("IB notice on order %d: %s", working.order.order_id, text)
            return
        order_id, now = working.order.order_id, self._now()
        if working.done:
            # An order that ended meanwhile: IB's refusal of a cancellation or a change sent
            # before the end was known is still their answer.
            if code in _CANCEL_REFUSED and working.cancelling:
                working.cancelling -= 1
                self._put(OrderCancelRejected(ts_ns=now, order_id=order_id, reason=text))
                return
            with self._lock:
                refused = working.modifying.popleft() if working.modifying and code != 202 else None
            if refused is not None:
                self._put(OrderModifyRejected(ts_ns=now, order_id=order_id,
                                              reason=f"IB error {code}: {text}"))  # fmt: skip
            return
        if code == 202:
            self._cancelled(working, text)
        elif code in _CANCEL_REFUSED and working.cancelling:
            working.cancelling -= 1
            self._put(OrderCancelRejected(ts_ns=now, order_id=order_id, reason=text))
        elif working.modifying:
            with self._lock:
                working.modifying.popleft()
            self._put(OrderModifyRejected(ts_ns=now, order_id=order_id,
                                          reason=f"IB error {code}: {text}"))  # fmt: skip
        elif not working.accepted:
            deferred = self._finished(working)
            log.warning("order %d rejected by IB (%d): %s", order_id, code, text)
            self._put(OrderRejected(ts_ns=now, order_id=order_id, reason=text, code=code))
            self._refuse_deferred(working, deferred)
        else:
            log.warning("IB error %d on working order %d: %s", code, order_id, text)

    def _on_execution(self, req_id: int, contract: Any, execution: Any) -> None:
        working = self._by_ib.get(int(execution.orderId))
        if working is None:
            return  # another client's, or an order of an earlier session (reconciliation)
        try:
            ts = parse_ib_time(execution.time)
        except ValueError:
            ts = self._now()
        order = working.order
        report = ExecutionReport(
            execution.execId,
            order.order_id,
            order.instrument,
            Side.BUY if execution.side in ("BOT", "BUY") else Side.SELL,
            _quantity(execution.shares),
            order.instrument.round_price(float_decimal(execution.price)),
            ts,
        )  # fmt: skip
        self.journal.execution(
            report.exec_id, working.ib_id, order.instrument.id, report.side.value,
            report.quantity, report.price, report.ts_ns, order.instrument.multiplier,
        )  # fmt: skip
        self._filled(working, self.executions.on_execution(report))

    def _on_commission(self, exec_id: str, commission: Decimal, currency: str) -> None:
        if commission >= Decimal("1e300"):  # IB's "not set" double: no commission known yet
            commission = Decimal(0)
        else:
            self.journal.commission(exec_id, commission)
        if self.executions.late_commission(exec_id):  # its fill was booked without it
            log.info("commission of execution %s came late: %s %s", exec_id, commission, currency)
            self._put(CashAdjusted(
                ts_ns=self._now(), amount=-commission, currency=currency or None,
                reason=f"commission of execution {exec_id}, reported after its fill",
            ))  # fmt: skip
            return
        fill = self.executions.on_commission(exec_id, commission)
        if fill is not None:
            self._filled(self._by_engine[fill.order_id], fill)

    def _filled(self, working: _Working, fill: Any) -> None:
        if fill is None:
            return
        self._accept(working)  # a fill may overtake its acknowledgement
        deferred = None
        # under the lock: the broker's worker books fills whose commission never came
        with self._lock:
            working.filled += fill.quantity
            if working.filled >= working.request.quantity and not working.done:
                deferred = self._finished(working)
        self._put(OrderFilled(ts_ns=self._now(), order_id=fill.order_id, fill=fill))
        if deferred is not None:
            self._refuse_deferred(working, deferred)
        else:
            self._flush(working)

    _handlers: ClassVar[dict[str, Callable[..., None]]] = {
        "openOrder": _on_open_order,
        "orderStatus": _on_order_status,
        "error": _on_error,
        "execDetails": _on_execution,
        "commissionReport": _on_commission,
    }

    def __repr__(self) -> str:
        return f"IBKRBroker({self.client!r})"
