"""The broker's journal: every order before it is sent, every execution once, on disk."""

from __future__ import annotations

import os
import sqlite3
import threading
from decimal import Decimal
from typing import NamedTuple, final

from ibkrfw.errors import ConfigError

__all__ = ["Journal", "JournalOrder"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    ib_id INTEGER PRIMARY KEY,
    order_ref TEXT NOT NULL,
    instrument TEXT NOT NULL,
    side TEXT NOT NULL,
    quantity TEXT NOT NULL,
    perm_id INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL,
    created_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS executions (
    exec_id TEXT PRIMARY KEY,
    ib_id INTEGER NOT NULL,
    instrument TEXT NOT NULL,
    side TEXT NOT NULL,
    quantity TEXT NOT NULL,
    price TEXT NOT NULL,
    ts_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS cash (
    ts_ns INTEGER NOT NULL,
    amount TEXT NOT NULL,
    currency TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS commissions (
    exec_id TEXT PRIMARY KEY,
    amount TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS notes (
    ts_ns INTEGER NOT NULL,
    ib_id INTEGER NOT NULL,
    text TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS adjustments (
    instrument TEXT NOT NULL,
    quantity TEXT NOT NULL,
    reason TEXT NOT NULL,
    ts_ns INTEGER NOT NULL
);
"""

SENT, WORKING, DONE, LOST = "sent", "working", "done", "lost"


class JournalOrder(NamedTuple):
    """An order as the journal knows it."""

    ib_id: int
    order_ref: str
    instrument: str
    """The instrument's id (``ACME.SMART``)."""
    side: str
    quantity: Decimal
    perm_id: int
    status: str
    """``sent`` (written, maybe not received by IB), ``working`` (acknowledged), ``done``, or
    ``lost`` (sent, and IB never received it: released, never sent again)."""


@final
class Journal:
    """What this account's orders and executions were, kept in SQLite across restarts.

    An order is written *before* it is sent, so a crash right after sending cannot lose it;
    an execution is written once per ``execId``. The positions the journal implies (the sum
    of its executions, plus any adjustments adopted from the broker) are compared with the
    broker's at start-up and after a reconnection.

    Args:
        path: The database file (created if missing); ``":memory:"`` for a test.

    Example:
        >>> journal = Journal(":memory:")
        >>> journal.order_sent(7, "ibkrfw:7", "ACME.SMART", "BUY", Decimal(10), 0)
        >>> journal.execution("e1", 7, "ACME.SMART", "BUY", Decimal(10), Decimal("9.5"), 1)
        True
        >>> journal.execution("e1", 7, "ACME.SMART", "BUY", Decimal(10), Decimal("9.5"), 1)
        False
        >>> journal.positions()
        {'ACME.SMART': Decimal('10')}
        >>> journal.close()
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")  # an order row survives a power cut
            self._db.executescript(_SCHEMA)
            columns = {r[1] for r in self._db.execute("PRAGMA table_info(executions)")}
            if "multiplier" not in columns:  # a journal written before futures were valued
                self._db.execute(
                    "ALTER TABLE executions ADD COLUMN multiplier TEXT NOT NULL DEFAULT '1'"
                )
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open the journal {self.path!r}: {exc}") from None
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the database (again: nothing)."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def order_sent(
        self,
        ib_id: int,
        order_ref: str,
        instrument: str,
        side: str,
        quantity: Decimal,
        ts_ns: int,
    ) -> None:
        """Record an order about to be sent (call before ``placeOrder``)."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO orders VALUES (?, ?, ?, ?, ?, 0, ?, ?)",
                (ib_id, order_ref, instrument, side, str(quantity), SENT, ts_ns),
            )

    def order_status(self, ib_id: int, status: str, perm_id: int = 0) -> None:
        """Record that an order is ``working`` or ``done`` (and its permId once known)."""
        with self._lock:
            self._db.execute(
                "UPDATE orders SET status = ?, perm_id = CASE WHEN ? THEN ? ELSE perm_id END "
                "WHERE ib_id = ?",
                (status, perm_id, perm_id, ib_id),
            )

    def execution(
        self,
        exec_id: str,
        ib_id: int,
        instrument: str,
        side: str,
        quantity: Decimal,
        price: Decimal,
        ts_ns: int,
        multiplier: Decimal = Decimal(1),
    ) -> bool:
        """Record an execution; return False if its ``execId`` was already recorded.

        ``multiplier`` is the instrument's (a futures contract's 50): the cash an execution
        moves is quantity times price times multiplier.
        """
        with self._lock:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO executions "
                "(exec_id, ib_id, instrument, side, quantity, price, ts_ns, multiplier) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (exec_id, ib_id, instrument, side, str(quantity), str(price), ts_ns,
                 str(multiplier)),
            )  # fmt: skip
            return cursor.rowcount == 1

    def commission(self, exec_id: str, amount: Decimal) -> None:
        """Record an execution's commission (its report may come before or after it)."""
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO commissions VALUES (?, ?)", (exec_id, str(amount))
            )

    def order_lost(self, ib_id: int, reason: str, ts_ns: int) -> None:
        """Record that IB never received an order: it is ``lost``, and why, in a note."""
        with self._lock:
            self._db.execute("UPDATE orders SET status = ? WHERE ib_id = ?", (LOST, ib_id))
            self._db.execute("INSERT INTO notes VALUES (?, ?, ?)", (ts_ns, ib_id, reason))

    def note(self, ib_id: int, text: str, ts_ns: int) -> None:
        """Record what happened to an order, in words (a lost order, an id left unsent)."""
        with self._lock:
            self._db.execute("INSERT INTO notes VALUES (?, ?, ?)", (ts_ns, ib_id, text))

    def notes(self, ib_id: int | None = None) -> list[tuple[int, int, str]]:
        """The notes recorded (of one order if ``ib_id``): time, IB order id, text."""
        where, args = ("WHERE ib_id = ? ", (ib_id,)) if ib_id is not None else ("", ())
        with self._lock:
            rows = self._db.execute(
                f"SELECT ts_ns, ib_id, text FROM notes {where}ORDER BY rowid", args
            ).fetchall()
        return [(int(r[0]), int(r[1]), str(r[2])) for r in rows]

    def adjust(self, instrument: str, quantity: Decimal, reason: str, ts_ns: int) -> None:
        """Record a position change that no execution explains (a position adopted)."""
        with self._lock:
            self._db.execute(
                "INSERT INTO adjustments VALUES (?, ?, ?, ?)",
                (instrument, str(quantity), reason, ts_ns),
            )

    def note_cash(self, amount: Decimal, currency: str, ts_ns: int) -> None:
        """Record the account's cash as the broker reported it."""
        with self._lock:
            self._db.execute("INSERT INTO cash VALUES (?, ?, ?)", (ts_ns, str(amount), currency))

    def last_cash(self) -> tuple[Decimal, str, int] | None:
        """The cash recorded last: amount, currency and time (None before any)."""
        with self._lock:
            row = self._db.execute(
                "SELECT amount, currency, ts_ns FROM cash ORDER BY rowid DESC LIMIT 1"
            ).fetchone()
        return None if row is None else (Decimal(row[0]), row[1], int(row[2]))

    def orders(self, *, open_only: bool = False) -> list[JournalOrder]:
        """The orders recorded, oldest first (only those ``sent`` or ``working`` if asked)."""
        where = f" WHERE status IN ('{SENT}', '{WORKING}')" if open_only else ""
        with self._lock:
            rows = self._db.execute(
                "SELECT ib_id, order_ref, instrument, side, quantity, perm_id, status "
                f"FROM orders{where} ORDER BY ib_id"
            ).fetchall()
        return [JournalOrder(r[0], r[1], r[2], r[3], Decimal(r[4]), r[5], r[6]) for r in rows]

    def filled(self, ib_id: int) -> Decimal:
        """How much of an order the recorded executions filled."""
        with self._lock:
            rows = self._db.execute(
                "SELECT quantity FROM executions WHERE ib_id = ?", (ib_id,)
            ).fetchall()
        return sum((Decimal(r[0]) for r in rows), Decimal(0))

    def exec_ids(self) -> set[str]:
        """Every execution id recorded."""
        with self._lock:
            return {r[0] for r in self._db.execute("SELECT exec_id FROM executions")}

    def positions(self) -> dict[str, Decimal]:
        """The signed quantity per instrument the executions and adjustments add up to."""
        totals: dict[str, Decimal] = {}
        with self._lock:
            executions = self._db.execute(
                "SELECT instrument, side, quantity FROM executions"
            ).fetchall()
            adjustments = self._db.execute("SELECT instrument, quantity FROM adjustments")
            adjusted = adjustments.fetchall()
        for inst, side, qty in executions:
            signed = Decimal(qty) if side == "BUY" else -Decimal(qty)
            totals[inst] = totals.get(inst, Decimal(0)) + signed
        for inst, qty in adjusted:
            totals[inst] = totals.get(inst, Decimal(0)) + Decimal(qty)
        return {inst: qty for inst, qty in sorted(totals.items()) if qty}

    def executions_by_ref(self) -> list[tuple[str, str, str, Decimal, Decimal]]:
        """Every execution with its order's ``orderRef``, in the order they happened.

        Each row is ``(order_ref, instrument id, side, quantity, price)``; executions of
        orders the journal did not send are left out.
        """
        with self._lock:
            rows = self._db.execute(
                "SELECT o.order_ref, e.instrument, e.side, e.quantity, e.price "
                "FROM executions e JOIN orders o ON e.ib_id = o.ib_id "
                "ORDER BY e.ts_ns, e.rowid"
            ).fetchall()
        return [(ref, inst, side, Decimal(q), Decimal(p)) for ref, inst, side, q, p in rows]

    def fill(self, ib_id: int) -> tuple[Decimal, Decimal | None]:
        """How much of an order the recorded executions filled, and at what average price."""
        with self._lock:
            rows = self._db.execute(
                "SELECT quantity, price FROM executions WHERE ib_id = ?", (ib_id,)
            ).fetchall()
        quantity = sum((Decimal(r[0]) for r in rows), Decimal(0))
        if not quantity:
            return quantity, None
        cost = sum((Decimal(r[0]) * Decimal(r[1]) for r in rows), Decimal(0))
        return quantity, cost / quantity

    def cash_flow_since(self, ts_ns: int) -> tuple[Decimal, int]:
        """The cash the executions after ``ts_ns`` moved, and how many lack a commission.

        Each execution pays (a buy, negative) or gets quantity times price times the
        instrument's multiplier, less its commission when its report was recorded. The count
        is of the executions whose commission report never came: their commissions are left
        out of the sum.
        """
        with self._lock:
            rows = self._db.execute(
                "SELECT e.side, e.quantity, e.price, e.multiplier, c.amount FROM executions e "
                "LEFT JOIN commissions c ON c.exec_id = e.exec_id WHERE e.ts_ns > ?",
                (ts_ns,),
            ).fetchall()
        total, missing = Decimal(0), 0
        for side, qty, price, multiplier, commission in rows:
            value = Decimal(qty) * Decimal(price) * Decimal(multiplier)
            total += -value if side == "BUY" else value
            if commission is None:
                missing += 1
            else:
                total -= Decimal(commission)
        return total, missing

    def highest_order_id(self) -> int:
        """The highest IB order id recorded (0 if none)."""
        with self._lock:
            row = self._db.execute("SELECT MAX(ib_id) FROM orders").fetchone()
        return int(row[0] or 0)
