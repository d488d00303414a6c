"""A bar store of Parquet files, partitioned by bar size, instrument and year (needs pyarrow)."""

from __future__ import annotations

import functools
import json
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any, Concatenate, ParamSpec, TypeVar, final

import numpy as np
from typing_extensions import override

from ibkrfw.core.history import BarArrays
from ibkrfw.data.store import _COLUMNS, Advance, BarStore, SeriesInfo, _ignore
from ibkrfw.errors import ConfigError, DataError

__all__ = ["ParquetBarStore"]

_P = ParamSpec("_P")
_R = TypeVar("_R")

_JOURNAL = "_commit.json"
_INSTRUMENTS = "_instruments.json"


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - depends on the installation
        raise ConfigError(
            'the Parquet store needs pyarrow: pip install "ibkrfw[parquet]"'
        ) from None
    return pa, pq


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durably(path: str, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _years(ts_ns: np.ndarray[Any, np.dtype[np.int64]]) -> np.ndarray[Any, np.dtype[np.int64]]:
    return ts_ns.astype("datetime64[ns]").astype("datetime64[Y]").astype(np.int64) + 1970


def _one_at_a_time(
    method: Callable[Concatenate[ParquetBarStore, _P], _R],
) -> Callable[Concatenate[ParquetBarStore, _P], _R]:
    """Run ``method`` under the store's lock: threads sharing a store take turns."""

    @functools.wraps(method)
    def locked(self: ParquetBarStore, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with self._lock:
            return method(self, *args, **kwargs)

    return locked


@final
class ParquetBarStore(BarStore):
    """Bars in Parquet files under one directory, for large sets read by other tools too.

    The layout is Hive-style, one file per bar size, instrument and UTC year::

        root/bar_size=1min/instrument=ACME.SMART/year=2024/bars.parquet

    with columns ``timestamp`` (UTC, nanoseconds), ``open``, ``high``, ``low``, ``close`` and
    ``volume``, so DuckDB (``read_parquet('root/**/*.parquet', hive_partitioning=true)``),
    Dask or pandas read the tree directly.

    A :meth:`~ibkrfw.data.BarStore.write` rewrites the year files it touches. It writes the new
    files beside the old ones, then a commit journal listing them, then renames them into
    place: a process killed
    before the journal is complete leaves the old files (the new ones are swept up when the
    store is next opened); killed after, the next open finishes the renames. Either way no
    batch is ever half stored. One writer at a time: threads sharing one store take turns
    (and read between whole writes); separate processes or handles must not write at once.
    Readers in other processes see whole files, but one that runs while a write spanning
    several years is being committed may see some of its files replaced and others not yet:
    when other processes read during writes, use :class:`~ibkrfw.data.SQLiteBarStore`, whose
    readers always see whole writes.

    Args:
        root: The directory; created if missing.

    Raises:
        ConfigError: if pyarrow is not installed (``pip install "ibkrfw[parquet]"``).
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        _pyarrow()
        self.root = os.fspath(root)
        self._lock = threading.RLock()  # threads sharing this store take turns
        os.makedirs(self.root, exist_ok=True)
        self._recover()

    # --- files ------------------------------------------------------------------------------
    def _dir(self, key: str, bar_size: str) -> str:
        return os.path.join(self.root, f"bar_size={bar_size}", f"instrument={key}")

    def _file(self, key: str, bar_size: str, year: int) -> str:
        return os.path.join(self._dir(key, bar_size), f"year={year}", "bars.parquet")

    def _year_files(self, key: str, bar_size: str) -> Iterator[tuple[int, str]]:
        base = self._dir(key, bar_size)
        if not os.path.isdir(base):
            return
        for name in sorted(os.listdir(base)):
            path = os.path.join(base, name, "bars.parquet")
            if name.startswith("year=") and os.path.isfile(path):
                yield int(name[5:]), path

    def _recover(self) -> None:
        """Finish a commit whose journal is complete; sweep files of one that never was."""
        journal = os.path.join(self.root, _JOURNAL)
        if os.path.exists(journal):
            try:
                with open(journal, encoding="utf-8") as handle:
                    renames = json.load(handle)
            except (OSError, ValueError):  # torn journal: the commit never happened
                renames = []
            _apply(renames)
            os.remove(journal)
        for folder, _, files in os.walk(self.root):
            for name in files:
                if name.endswith(".tmp"):
                    os.remove(os.path.join(folder, name))

    def _load(self, path: str, start: int | None = None, end: int | None = None) -> BarArrays:
        pa, pq = _pyarrow()
        try:
            table = pq.read_table(path)
            ts = table.column("timestamp").cast("int64").to_numpy()
            for name in _COLUMNS:
                table.column(name)
        except (pa.ArrowException, OSError, KeyError, ValueError) as exc:
            raise DataError(
                f"{path} is not a readable file of bars: {exc}",
                fix="restore the store from a backup, or remove that year's directory and "
                "import its bars again",
            ) from None
        lo = 0 if start is None else int(np.searchsorted(ts, start, side="left"))
        hi = len(ts) if end is None else int(np.searchsorted(ts, end, side="left"))

        def column(name: str) -> np.ndarray[Any, np.dtype[np.float64]]:
            return np.asarray(table.column(name).to_numpy()[lo:hi], dtype=np.float64)

        return BarArrays(
            np.asarray(ts[lo:hi], dtype=np.int64),
            column("open"),
            column("high"),
            column("low"),
            column("close"),
            column("volume"),
        )

    def _dump(self, path: str, arrays: BarArrays) -> None:
        pa, pq = _pyarrow()
        table = pa.table(
            {
                "timestamp": pa.array(arrays.ts_ns, pa.int64()).cast(pa.timestamp("ns", "UTC")),
                "open": arrays.open,
                "high": arrays.high,
                "low": arrays.low,
                "close": arrays.close,
                "volume": arrays.volume,
            }
        )
        with open(path, "wb") as handle:
            pq.write_table(table, handle, compression="zstd")
            handle.flush()
            os.fsync(handle.fileno())

    # --- the store --------------------------------------------------------------------------
    @override
    @_one_at_a_time
    def _put(
        self,
        key: str,
        spec: dict[str, str],
        bar_size: str,
        arrays: BarArrays,
        advance: Advance = _ignore,
    ) -> None:
        years = _years(arrays.ts_ns)
        renames: list[tuple[str, str]] = []
        token = uuid.uuid4().hex
        for year in np.unique(years).tolist():
            mine = years == year
            new = _take(arrays, mine)
            path = self._file(key, bar_size, int(year))
            if os.path.exists(path):
                new = _merge(self._load(path), new)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            temp = f"{path}.{token}.tmp"
            self._dump(temp, new)
            renames.append((temp, path))
            advance(int(mine.sum()))
        instruments = self._instruments()
        if instruments.get(key) != spec:
            instruments[key] = spec
            temp = os.path.join(self.root, f"{_INSTRUMENTS}.{token}.tmp")
            _write_durably(temp, json.dumps(instruments, sort_keys=True, indent=1).encode())
            renames.append((temp, os.path.join(self.root, _INSTRUMENTS)))
        self._commit(renames, token)

    def _commit(self, operations: list[tuple[str, str]], token: str) -> None:
        """Journal ``operations``, then carry them out.

        Each operation renames a temp file over its final path, or deletes the final path when
        the temp is "". Once the journal is on disk, the batch is stored.
        """
        journal = os.path.join(self.root, _JOURNAL)
        _write_durably(f"{journal}.{token}.tmp", json.dumps(operations).encode())
        os.replace(f"{journal}.{token}.tmp", journal)
        _fsync_dir(self.root)
        _apply(operations)
        os.remove(journal)

    def _instruments(self) -> dict[str, dict[str, str]]:
        path = os.path.join(self.root, _INSTRUMENTS)
        if not os.path.exists(path):
            return {}
        try:
            with open(path, encoding="utf-8") as handle:
                specs: dict[str, dict[str, str]] = json.load(handle)
        except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
            raise DataError(
                f"{path} is damaged: {exc}", fix="restore the store from a backup"
            ) from None
        if not isinstance(specs, dict):
            raise DataError(f"{path} is damaged: it holds no table of instruments")
        return specs

    @override
    @_one_at_a_time
    def _get(self, key: str, bar_size: str, start: int | None, end: int | None) -> BarArrays:
        parts = []
        first_year = None if start is None else int(_years(np.array([start]))[0])
        last_year = None if end is None else int(_years(np.array([end]))[0])
        for year, path in self._year_files(key, bar_size):
            if (first_year is not None and year < first_year) or (
                last_year is not None and year > last_year
            ):
                continue
            parts.append(self._load(path, start, end))
        if not parts:
            empty = np.empty(0)
            return BarArrays(np.empty(0, dtype=np.int64), empty, empty, empty, empty, empty)
        if len(parts) == 1:
            return parts[0]
        return _concat(parts)

    @override
    @_one_at_a_time
    def _catalog(self) -> list[SeriesInfo]:
        _, pq = _pyarrow()
        found = []
        for size_dir in sorted(os.listdir(self.root)):
            if not size_dir.startswith("bar_size="):
                continue
            for inst_dir in sorted(os.listdir(os.path.join(self.root, size_dir))):
                if not inst_dir.startswith("instrument="):
                    continue
                key, size = inst_dir[len("instrument=") :], size_dir[len("bar_size=") :]
                first = last = None
                rows = 0
                for _, path in self._year_files(key, size):
                    ts = pq.read_table(path, columns=["timestamp"]).column(0)
                    if not len(ts):
                        continue
                    values = ts.cast("int64").to_numpy()
                    first = int(values[0]) if first is None else first
                    last = int(values[-1])
                    rows += len(values)
                if rows and first is not None and last is not None:
                    found.append(SeriesInfo(key, size, first, last, rows))
        return found

    @override
    @_one_at_a_time
    def _spec(self, key: str) -> dict[str, str] | None:
        return self._instruments().get(key)

    @override
    @_one_at_a_time
    def _remove(self, key: str, bar_size: str, start: int | None, end: int | None) -> int:
        removed = 0
        operations: list[tuple[str, str]] = []
        token = uuid.uuid4().hex
        for _, path in self._year_files(key, bar_size):
            bars = self._load(path)
            ts = bars.ts_ns
            gone = np.ones(len(ts), dtype=bool)
            if start is not None:
                gone &= ts >= start
            if end is not None:
                gone &= ts < end
            count = int(gone.sum())
            if not count:
                continue
            removed += count
            if count == len(ts):
                operations.append(("", path))
                continue
            temp = f"{path}.{token}.tmp"
            self._dump(temp, _take(bars, ~gone))
            operations.append((temp, path))
        if removed:
            self._commit(operations, token)
        return removed

    @override
    def close(self) -> None:
        """Nothing to release: files are opened per call."""

    def __repr__(self) -> str:
        return f"ParquetBarStore({self.root!r})"


def _apply(operations: list[tuple[str, str]]) -> None:
    """Rename each temp file over its final path, or delete the final path if temp is ""."""
    for temp, final_path in operations:
        if not temp:
            if os.path.exists(final_path):
                os.remove(final_path)
                folder = os.path.dirname(final_path)
                if not os.listdir(folder):
                    os.rmdir(folder)
        elif os.path.exists(temp):
            os.replace(temp, final_path)


def _take(bars: BarArrays, index: Any) -> BarArrays:
    """The rows of ``bars`` that ``index`` (a mask or positions) selects."""
    return BarArrays(
        bars.ts_ns[index],
        bars.open[index],
        bars.high[index],
        bars.low[index],
        bars.close[index],
        bars.volume[index],
    )


def _concat(parts: list[BarArrays]) -> BarArrays:
    return BarArrays(
        np.concatenate([p.ts_ns for p in parts]),
        np.concatenate([p.open for p in parts]),
        np.concatenate([p.high for p in parts]),
        np.concatenate([p.low for p in parts]),
        np.concatenate([p.close for p in parts]),
        np.concatenate([p.volume for p in parts]),
    )


def _merge(old: BarArrays, new: BarArrays) -> BarArrays:
    """The union of two sorted sets of bars; ``new`` wins at equal times."""
    merged = _concat([_take(old, ~np.isin(old.ts_ns, new.ts_ns)), new])
    return _take(merged, np.argsort(merged.ts_ns, kind="stable"))
