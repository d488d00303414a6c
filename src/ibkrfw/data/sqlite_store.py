"""The default bar store: one SQLite file (standard library only)."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from itertools import islice
from typing import final

import numpy as np
from typing_extensions import override

from ibkrfw.core.history import BarArrays
from ibkrfw.data.store import Advance, BarStore, SeriesInfo, _ignore
from ibkrfw.errors import DataError

__all__ = ["SQLiteBarStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS instruments (
    key TEXT PRIMARY KEY,
    spec TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL REFERENCES instruments(key),
    bar_size TEXT NOT NULL,
    UNIQUE (key, bar_size)
);
CREATE TABLE IF NOT EXISTS bars (
    series INTEGER NOT NULL REFERENCES series(id),
    ts INTEGER NOT NULL,
    open REAL NOT NULL,
    high REAL NOT NULL,
    low REAL NOT NULL,
    close REAL NOT NULL,
    volume REAL,
    PRIMARY KEY (series, ts)
) WITHOUT ROWID;
"""
_PART = 50_000  # rows per executemany: the progress of a large write moves this often

_UPSERT = (
    "INSERT INTO bars VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (series, ts) DO UPDATE SET "
    "open = excluded.open, high = excluded.high, low = excluded.low, close = excluded.close, "
    "volume = excluded.volume"
)
_ROW = np.dtype(
    [("ts", "i8"), ("open", "f8"), ("high", "f8"), ("low", "f8"), ("close", "f8"), ("volume", "f8")]
)


_MAGIC = b"SQLite format 3\x00"
_OURS = frozenset(("instruments", "series", "bars"))
_FIX = "restore the file from a backup, or give the path of another store (or a new file)"


def _damage(path: str) -> str | None:
    """What makes ``path`` unreadable as a SQLite database, read from its 100-byte header.

    Cheap enough for every open: a file of other bytes, and a store cut short (a copy that
    stopped half-way, a full disk), which SQLite itself notices only when it reads a missing
    page, perhaps in the middle of a write.
    """
    try:
        size = os.path.getsize(path)
        if not size:
            return None  # SQLite makes a new database of an empty file
        with open(path, "rb") as handle:
            header = handle.read(100)
    except FileNotFoundError:
        return None
    if len(header) < 100 or not header.startswith(_MAGIC):
        return f"{path} is not a SQLite database (it begins {header[:8]!r})"
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65_536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    valid = header[24:28] == header[92:96]  # the page count is kept up to date (SQLite 3.7+)
    wal = os.path.exists(f"{path}-wal") and os.path.getsize(f"{path}-wal") > 0
    if valid and not wal and pages and pages * page_size > size:
        return (
            f"{path} is cut short: its header counts {pages} pages of {page_size} bytes "
            f"({pages * page_size:,} bytes), the file has {size:,}"
        )
    return None


@contextlib.contextmanager
def _readable(path: str) -> Iterator[None]:
    """Turn SQLite's word for a damaged file into a DataError naming the file."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
        if code not in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
            raise  # locked, read-only, out of disk: not the data's fault
        raise DataError(f"{path} is damaged: SQLite says {exc}", fix=_FIX) from None


def _range(start: int | None, end: int | None) -> tuple[str, list[int]]:
    clauses, params = [], []
    if start is not None:
        clauses.append("ts >= ?")
        params.append(start)
    if end is not None:
        clauses.append("ts < ?")
        params.append(end)
    return "".join(f" AND {c}" for c in clauses), params


@final
class SQLiteBarStore(BarStore):
    """Bars in one SQLite file: transactional upserts, safe with one writer and many readers.

    The database runs in write-ahead-log mode, so readers (other processes too) never block
    the writer or see half a write. Each :meth:`~ibkrfw.data.BarStore.write` is one
    transaction; a process killed in the middle leaves the file as it was before that write.
    With ``synchronous=NORMAL`` the last transactions may be lost in a power failure, never
    corrupted. One store may be shared by threads (a download on a worker thread, a reader on
    another): its calls take turns on one connection.

    Args:
        path: The database file; created if missing (with its directory).
        timeout: Seconds to wait for another writer's lock before failing.

    Raises:
        DataError: naming the file, if it is not a SQLite database, is cut short or damaged,
            or is another program's database (tables of its own, none of a bar store's);
            nothing is written to it. A store found damaged later, by a read or a write,
            raises it too, never :class:`sqlite3.DatabaseError`.

    Example:
        >>> import tempfile, os
        >>> from ibkrfw.data import generate_bars
        >>> from ibkrfw import Stock
        >>> path = os.path.join(tempfile.mkdtemp(), "bars.sqlite")
        >>> frame = generate_bars(["ACME"], freq="1D", periods=5).set_index("timestamp")
        >>> with SQLiteBarStore(path) as store:
        ...     store.write(Stock("ACME"), "1d", frame)
        ...     len(store.read("ACME.SMART", "1 day"))
        5
        5
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 30.0) -> None:
        self.path = os.fspath(path)
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        self._lock = threading.RLock()  # one connection, shared by threads in turn
        damage = _damage(self.path)
        if damage is not None:
            raise DataError(damage, fix=_FIX)
        self._db = sqlite3.connect(
            self.path, timeout=timeout, isolation_level=None, check_same_thread=False
        )
        try:
            with _readable(self.path):
                tables = {
                    row[0]
                    for row in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")
                }
                if tables and not tables & _OURS:
                    raise DataError(
                        f"{self.path} is another program's database (tables "
                        f"{', '.join(sorted(tables)[:5])}), not a bar store",
                        fix="give the path of a bar store, or of a new file",
                    )
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute("PRAGMA foreign_keys=ON")
                self._db.executescript(_SCHEMA)
        except BaseException:
            self._db.close()
            raise

    def _series_id(self, key: str, bar_size: str) -> int | None:
        row = self._db.execute(
            "SELECT id FROM series WHERE key = ? AND bar_size = ?", (key, bar_size)
        ).fetchone()
        return None if row is None else int(row[0])

    @override
    def _put(
        self,
        key: str,
        spec: dict[str, str],
        bar_size: str,
        arrays: BarArrays,
        advance: Advance = _ignore,
    ) -> None:
        with self._lock, _readable(self.path):
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute(
                    "INSERT INTO instruments VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET "
                    "spec = excluded.spec",
                    (key, json.dumps(spec, sort_keys=True)),
                )
                db.execute(
                    "INSERT INTO series (key, bar_size) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    (key, bar_size),
                )
                series = self._series_id(key, bar_size)
                volume: list[float | None] = arrays.volume.tolist()
                if np.isnan(arrays.volume).any():  # unknown volume: NULL
                    volume = [None if v != v else v for v in volume]
                rows = zip(
                    [series] * len(arrays.ts_ns),
                    arrays.ts_ns.tolist(),
                    arrays.open.tolist(),
                    arrays.high.tolist(),
                    arrays.low.tolist(),
                    arrays.close.tolist(),
                    volume,
                    strict=True,
                )
                left = len(arrays.ts_ns)
                while left:  # in parts, for progress; still one transaction
                    part = min(left, _PART)
                    db.executemany(_UPSERT, islice(rows, part))
                    advance(part)
                    left -= part
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    @override
    def _get(self, key: str, bar_size: str, start: int | None, end: int | None) -> BarArrays:
        with self._lock, _readable(self.path):
            series = self._series_id(key, bar_size)
            if series is None:
                empty = np.empty(0)
                return BarArrays(np.empty(0, dtype=np.int64), empty, empty, empty, empty, empty)
            where, params = _range(start, end)
            # Volume is never negative: -1 stands for NULL (unknown), read back as NaN.
            cursor = self._db.execute(
                "SELECT ts, open, high, low, close, IFNULL(volume, -1.0) FROM bars "
                f"WHERE series = ?{where} ORDER BY ts",
                [series, *params],
            )
            rows = np.fromiter(cursor, dtype=_ROW)
            volume = rows["volume"].copy()
            volume[volume < 0] = np.nan
            return BarArrays(
                rows["ts"].copy(),
                rows["open"].copy(),
                rows["high"].copy(),
                rows["low"].copy(),
                rows["close"].copy(),
                volume,
            )

    @override
    def _catalog(self) -> list[SeriesInfo]:
        with self._lock, _readable(self.path):
            rows = self._db.execute(
                "SELECT s.key, s.bar_size, MIN(b.ts), MAX(b.ts), COUNT(*) FROM series s "
                "JOIN bars b ON b.series = s.id GROUP BY s.id"
            ).fetchall()
            return [
                SeriesInfo(k, size, int(first), int(last), int(n))
                for k, size, first, last, n in rows
            ]

    @override
    def _spec(self, key: str) -> dict[str, str] | None:
        with self._lock, _readable(self.path):
            row = self._db.execute("SELECT spec FROM instruments WHERE key = ?", (key,)).fetchone()
            if row is None:
                return None
            spec: dict[str, str] = json.loads(row[0])
            return spec

    @override
    def _remove(self, key: str, bar_size: str, start: int | None, end: int | None) -> int:
        with self._lock, _readable(self.path):
            series = self._series_id(key, bar_size)
            if series is None:
                return 0
            where, params = _range(start, end)
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                count = db.execute(f"DELETE FROM bars WHERE series = ?{where}", [series, *params])
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return int(count.rowcount)

    @override
    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __repr__(self) -> str:
        return f"SQLiteBarStore({self.path!r})"
