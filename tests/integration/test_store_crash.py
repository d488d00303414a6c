"""A writer killed half-way through a write leaves the store readable and without a partial batch.

Each test starts a real writer process, waits until it is provably in the middle of its second
batch (SQLite: its write-ahead log is growing; Parquet: its first new file is on disk), kills
it with SIGKILL, and opens the store again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from ibkrfw import Stock
from ibkrfw.data import ParquetBarStore, SQLiteBarStore

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")

WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    import pandas as pd
    from ibkrfw import Stock
    from ibkrfw.data import ParquetBarStore, SQLiteBarStore

    kind, path, first, second = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

    def bars(start, n, scale):
        index = pd.date_range(start, periods=n, freq="1min", tz="UTC", name="timestamp")
        close = 100.0 + (np.arange(n) % 50) * 0.01
        data = {"open": close, "high": close + 0.05, "low": close - 0.05, "close": close,
                "volume": np.full(n, 100.0)}
        return pd.DataFrame({k: v * (scale if k != "volume" else 1) for k, v in data.items()},
                            index=index)

    store = SQLiteBarStore(path) if kind == "sqlite" else ParquetBarStore(path)
    store.write(Stock("ACME"), "1min", bars("2020-01-01", first, 1.0))
    print("first batch stored", flush=True)
    # The second batch rewrites the first (prices doubled) and goes on for years.
    store.write(Stock("ACME"), "1min", bars("2020-01-01", second, 2.0))
    print("second batch stored", flush=True)
    """
)
FIRST = 50_000


def _start(kind: str, path: Path, second: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, kind, str(path), str(FIRST), str(second)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # bounded: the first batch takes about a second
    assert line.strip() == "first batch stored", proc.stderr.read() if proc.stderr else ""
    return proc


def _kill_when(proc: subprocess.Popen[str], ready: object, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    while not ready():  # type: ignore[operator]
        assert proc.poll() is None, "the writer finished before it could be interrupted"
        assert time.monotonic() < deadline, "the writer never got to its second batch"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)  # reaps it and closes the pipes
    assert proc.returncode == -signal.SIGKILL


def _check_first_batch_only(closes: np.ndarray) -> None:  # type: ignore[type-arg]
    assert len(closes) == FIRST
    expected = 100.0 + (np.arange(FIRST) % 50) * 0.01
    np.testing.assert_allclose(closes, expected)  # none of the doubled prices


def test_sqlite_writer_killed_mid_transaction(tmp_path: Path) -> None:
    path = tmp_path / "bars.sqlite"
    proc = _start("sqlite", path, second=3_000_000)
    wal = Path(f"{path}-wal")
    base = wal.stat().st_size if wal.exists() else 0
    _kill_when(proc, lambda: wal.exists() and wal.stat().st_size > base + 8_000_000)
    with SQLiteBarStore(path) as store:
        assert store._db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        _check_first_batch_only(store.read(Stock("ACME"), "1min")["close"].to_numpy())
        (series,) = store.series()
        assert series.rows == FIRST


def test_parquet_writer_killed_between_files(tmp_path: Path) -> None:
    root = tmp_path / "parquet"
    proc = _start("parquet", root, second=4 * 366 * 1440)  # four years of minutes

    def temp_files() -> list[str]:
        return [f for _, _, files in os.walk(root) for f in files if f.endswith(".tmp")]

    _kill_when(proc, lambda: len(temp_files()) >= 1)
    journal_written = (root / "_commit.json").exists()
    store = ParquetBarStore(root)  # opening recovers: sweeps temps, or finishes a commit
    assert temp_files() == []
    assert not (root / "_commit.json").exists()
    closes = store.read(Stock("ACME"), "1min")["close"].to_numpy()
    if journal_written:  # killed after the commit point: the whole second batch is there
        assert len(closes) == 4 * 366 * 1440
        assert closes.min() >= 200.0
    else:
        _check_first_batch_only(closes)


def test_parquet_commit_interrupted_after_its_journal_is_finished_on_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pandas as pd

    from ibkrfw.data import parquet_store

    root = tmp_path / "parquet"
    index = pd.date_range("2021-12-31", periods=4, freq="12h", tz="UTC", name="timestamp")
    frame = pd.DataFrame(
        {"open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5, "volume": 10.0}, index=index
    )
    store = ParquetBarStore(root)
    store.write(Stock("ACME"), "12h", frame.iloc[:1])

    def crash(operations: object) -> None:
        raise KeyboardInterrupt("killed after the journal")

    monkeypatch.setattr(parquet_store, "_apply", crash)
    with pytest.raises(KeyboardInterrupt):
        store.write(Stock("ACME"), "12h", frame * 2)
    monkeypatch.undo()
    assert (root / "_commit.json").exists()
    recovered = ParquetBarStore(root).read(Stock("ACME"), "12h")
    assert recovered["close"].tolist() == [3.0, 3.0, 3.0, 3.0]  # the whole second batch


BATCHES = textwrap.dedent(
    """
    import sys
    import numpy as np
    import pandas as pd
    from ibkrfw import Stock
    from ibkrfw.data import SQLiteBarStore

    store = SQLiteBarStore(sys.argv[1])
    for k in range(20):
        index = pd.date_range("2020-01-01", periods=10_000, freq="1min", tz="UTC") + pd.Timedelta(
            days=10 * k
        )
        frame = pd.DataFrame(
            {"open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0},
            index=index.rename("timestamp"),
        )
        store.write(Stock("ACME"), "1min", frame)
    """
)


def test_sqlite_readers_see_whole_batches_while_a_writer_writes(tmp_path: Path) -> None:
    path = tmp_path / "bars.sqlite"
    SQLiteBarStore(path).close()  # the schema exists before the reader looks
    writer = subprocess.Popen([sys.executable, "-c", BATCHES, str(path)], stderr=subprocess.PIPE)
    seen: set[int] = set()
    deadline = time.monotonic() + 120
    with SQLiteBarStore(path) as reader:
        while writer.poll() is None:
            assert time.monotonic() < deadline, "the writer took too long"
            rows = sum(s.rows for s in reader.series())
            assert rows % 10_000 == 0, f"a reader saw {rows} rows: part of a batch"
            seen.add(rows)
        _, err = writer.communicate(timeout=30)
        assert writer.returncode == 0, err
        assert sum(s.rows for s in reader.series()) == 200_000
    assert len(seen) > 2  # the reader did look while batches were landing
