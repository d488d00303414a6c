"""The broker's journal: lost orders, commissions and multipliers in the cash it explains."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

from ibkrfw.ibkr.journal import LOST, Journal

D = Decimal


def test_journal_lost_order_is_closed_with_a_note() -> None:
    with Journal(":memory:") as journal:
        journal.order_sent(7, "ibkrfw:7", "ACME.SMART", "BUY", D(10), 1)
        journal.order_sent(8, "ibkrfw:8", "ACME.SMART", "BUY", D(5), 2)
        journal.order_lost(7, "lost: TWS never received order 7", 3)
        assert [o.ib_id for o in journal.orders(open_only=True)] == [8]
        assert [o.status for o in journal.orders()] == [LOST, "sent"]
        assert journal.notes(7) == [(3, 7, "lost: TWS never received order 7")]


def test_journal_cash_flow_counts_multipliers_and_commissions() -> None:
    with Journal(":memory:") as journal:
        journal.execution("e1", 1, "ES.203012.CME", "BUY", D(2), D(5000), 10, D(50))
        journal.commission("e1", D("4.20"))
        journal.commission("e2", D("1.00"))  # its report before its execution
        journal.execution("e2", 2, "ACME.SMART", "SELL", D(10), D(100), 11)
        journal.execution("e3", 2, "ACME.SMART", "SELL", D(1), D(100), 12)  # no report
        flow, missing = journal.cash_flow_since(0)
        assert flow == -D(2) * 5000 * 50 - D("4.20") + 1000 - 1 + 100
        assert missing == 1
        assert journal.cash_flow_since(11) == (D(100), 1)
        assert journal.fill(2) == (D(11), D(100))
        assert journal.fill(3) == (D(0), None)


def test_journal_written_before_multipliers_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE executions (exec_id TEXT PRIMARY KEY, ib_id INTEGER NOT NULL, "
        "instrument TEXT NOT NULL, side TEXT NOT NULL, quantity TEXT NOT NULL, "
        "price TEXT NOT NULL, ts_ns INTEGER NOT NULL)"
    )
    old.execute("INSERT INTO executions VALUES ('e1', 1, 'ACME.SMART', 'BUY', '3', '10', 5)")
    old.commit()
    old.close()
    with Journal(path) as journal:
        assert journal.cash_flow_since(0) == (D(-30), 1)
        assert journal.positions() == {"ACME.SMART": D(3)}
