from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from ibkrfw import ConfigError, Side, Stock
from ibkrfw.ibkr.executions import ExecutionBook, ExecutionReport
from ibkrfw.ibkr.ids import OrderIds

X = Stock("X")


def test_ids_survive_a_restart_and_a_lower_next_valid_id(tmp_path: Path) -> None:
    path = tmp_path / "ids.json"
    ids = OrderIds(path)
    ids.observe_next_valid_id(10)
    assert [ids.next() for _ in range(3)] == [10, 11, 12]
    assert json.loads(path.read_text()) == {"highest_order_id": 12}
    again = OrderIds(path)  # the process restarted; TWS restarted too and says 3
    again.observe_next_valid_id(3)
    assert again.next() == 13
    again.observe_used(40)  # another client's order seen in openOrder
    assert again.next() == 41
    again.observe_next_valid_id(100)
    assert again.next() == 100


def test_an_id_is_on_disk_before_it_is_returned(tmp_path: Path) -> None:
    path = tmp_path / "ids.json"
    code = (
        "import os, sys\n"
        "from ibkrfw.ibkr.ids import OrderIds\n"
        f"ids = OrderIds({str(path)!r}); ids.observe_next_valid_id(7)\n"
        "print(ids.next(), flush=True)\n"
        "os._exit(9)  # dies at once, as a crash would\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 9 and done.stdout.strip() == "7"
    assert OrderIds(path).next() == 8


def test_an_unreadable_id_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ids.json"
    path.write_text("not json")
    with pytest.raises(ConfigError, match="cannot read the order id file"):
        OrderIds(path)


def _report(exec_id: str, qty: int = 10, price: str = "5") -> ExecutionReport:
    return ExecutionReport(exec_id, 1, X, Side.BUY, Decimal(qty), Decimal(price), 123)


def test_a_fill_needs_both_halves_in_either_order_and_counts_once() -> None:
    book = ExecutionBook()
    assert book.on_commission("a", Decimal("0.35")) is None
    fill = book.on_execution(_report("a"))
    assert fill is not None
    assert (fill.fill_id, fill.quantity, fill.price, fill.commission) == (
        "a",
        10,
        5,
        Decimal("0.35"),
    )
    assert book.on_execution(_report("b", 3)) is None
    assert book.waiting() == ["b"]
    assert book.on_commission("b", Decimal(1)).quantity == 3
    # repeats of either half, from a reconnect or reqExecutions: ignored
    assert book.on_execution(_report("a")) is None
    assert book.on_commission("b", Decimal(1)) is None
    assert book.duplicates == 2
    assert book.seen("a") and not book.seen("c")
    assert book.on_execution(_report("c")) is None
    assert book.on_execution(_report("c")) is None  # a duplicate while waiting
    assert book.duplicates == 3


def test_execution_book_fill_without_its_commission_then_the_late_commission() -> None:
    now = [0.0]
    book = ExecutionBook(clock=lambda: now[0])
    report = ExecutionReport("e9", 3, Stock("X"), Side.BUY, Decimal(10), Decimal(5), 0)
    assert book.on_execution(report) is None
    assert book.uncharged(1.0) == []
    now[0] = 2.0
    assert book.uncharged(1.0) == ["e9"]
    fill = book.charge_missing("e9")
    assert fill is not None and fill.commission == 0 and fill.quantity == 10
    assert book.charge_missing("e9") is None and book.uncharged(1.0) == []
    assert book.late_commission("e9") is True
    assert book.late_commission("e9") is False  # once
    assert book.on_commission("e9", Decimal(1)) is None  # never a second fill
