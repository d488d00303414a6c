"""Fills from IB's two halves, ``execDetails`` and ``commissionReport``, each counted once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import final

import attrs

from ibkrfw.model.fills import Fill
from ibkrfw.model.instruments import Instrument
from ibkrfw.model.orders import Side

__all__ = ["ExecutionBook", "ExecutionReport"]


@final
@attrs.frozen
class ExecutionReport:
    """What ``execDetails`` says of one execution, in model terms.

    Args:
        exec_id: IB's execution id, unique per execution.
        order_id: The model's id of the order it belongs to.
        instrument: What was traded.
        side: ``BUY`` for IB's ``BOT``, ``SELL`` for ``SLD``.
        quantity: The shares of this execution (not the cumulative quantity).
        price: Its price.
        ts_ns: When it happened, UTC epoch nanoseconds.
    """

    exec_id: str
    order_id: int
    instrument: Instrument
    side: Side
    quantity: Decimal
    price: Decimal
    ts_ns: int


@final
class ExecutionBook:
    """Joins executions and their commission reports by ``execId`` into fills, once each.

    IB sends ``execDetails`` and ``commissionReport`` separately, in either order, and may send
    either again (after a reconnect, on ``reqExecutions``, or by mistake). A fill is made when
    both halves of an execution have arrived, and only the first time; repeats of either half
    are ignored and counted in :attr:`duplicates`.

    An execution whose commission report does not come can be made into a fill without it
    (:meth:`uncharged`, :meth:`charge_missing`); its commission, if it comes later, is then
    reported by :meth:`late_commission` instead of making a second fill.

    Args:
        clock: Seconds, monotonic (for tests): when each half arrived.

    Example:
        >>> from ibkrfw import Stock
        >>> book = ExecutionBook()
        >>> report = ExecutionReport("e1", 7, Stock("X"), Side.BUY, Decimal(10), Decimal(5), 0)
        >>> book.on_execution(report) is None  # waits for its commission
        True
        >>> book.on_commission("e1", Decimal("1.00")).quantity
        Decimal('10')
        >>> book.on_execution(report), book.duplicates
        (None, 1)
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._done: set[str] = set()
        self._uncharged: set[str] = set()  # made into fills without their commission
        self._arrived: dict[str, float] = {}  # execution waiting for its commission: since
        self._executions: dict[str, ExecutionReport] = {}
        self._commissions: dict[str, Decimal] = {}
        self.duplicates = 0
        """How many repeated halves were ignored."""

    def on_execution(self, report: ExecutionReport) -> Fill | None:
        """Take an ``execDetails``; return the fill if its commission is already known."""
        with self._lock:
            if report.exec_id in self._done or report.exec_id in self._executions:
                self.duplicates += 1
                return None
            commission = self._commissions.pop(report.exec_id, None)
            if commission is None:
                self._executions[report.exec_id] = report
                self._arrived[report.exec_id] = self._clock()
                return None
            return self._fill(report, commission)

    def on_commission(self, exec_id: str, commission: Decimal) -> Fill | None:
        """Take a ``commissionReport``; return the fill if its execution is already known."""
        with self._lock:
            if exec_id in self._done or exec_id in self._commissions:
                self.duplicates += 1
                return None
            report = self._executions.pop(exec_id, None)
            if report is None:
                self._commissions[exec_id] = commission
                return None
            return self._fill(report, commission)

    def uncharged(self, older_than_s: float) -> list[str]:
        """The executions that have waited more than ``older_than_s`` for their commission."""
        now = self._clock()
        with self._lock:
            return [e for e, t in self._arrived.items() if now - t > older_than_s]

    def charge_missing(self, exec_id: str) -> Fill | None:
        """Make the fill of an execution still waiting for its commission, without it.

        Returns None if the execution is not waiting (its commission came meanwhile).
        """
        with self._lock:
            report = self._executions.pop(exec_id, None)
            if report is None:
                return None
            self._uncharged.add(exec_id)
            return self._fill(report, Decimal(0))

    def late_commission(self, exec_id: str) -> bool:
        """Whether a commission report belongs to a fill made without it (once each)."""
        with self._lock:
            if exec_id in self._uncharged:
                self._uncharged.discard(exec_id)
                return True
            return False

    def _fill(self, report: ExecutionReport, commission: Decimal) -> Fill:
        self._arrived.pop(report.exec_id, None)
        self._done.add(report.exec_id)
        return Fill(
            report.order_id,
            report.instrument,
            report.side,
            report.quantity,
            report.price,
            commission,
            report.ts_ns,
            report.exec_id,
        )

    def mark_seen(self, exec_id: str) -> None:
        """Treat an execution as made into a fill already (recorded by an earlier session)."""
        with self._lock:
            self._done.add(exec_id)
            self._executions.pop(exec_id, None)
            self._arrived.pop(exec_id, None)
            self._commissions.pop(exec_id, None)

    def waiting(self) -> list[str]:
        """The execution ids still waiting for their other half."""
        with self._lock:
            return sorted({*self._executions, *self._commissions})

    def seen(self, exec_id: str) -> bool:
        """Whether a fill was already made from this execution."""
        with self._lock:
            return exec_id in self._done
