"""Recorded market depth: Parquet tables of depth updates, per instrument and UTC day."""

from __future__ import annotations

import datetime as dt
import heapq
import json
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from operator import attrgetter
from typing import TYPE_CHECKING, Any, final

import numpy as np

from ibkrfw.data.parquet_store import _fsync_dir, _pyarrow, _write_durably
from ibkrfw.data.store import _bound, _key
from ibkrfw.errors import ConfigError, DataError
from ibkrfw.model.book import BookSide, DepthOperation, DepthUpdate
from ibkrfw.model.instruments import Instrument

if TYPE_CHECKING:
    import pandas as pd

    from ibkrfw.sim.depth import DepthFeed

__all__ = ["DepthStore"]

_INSTRUMENTS = "_instruments.json"
_FILE = "depth.parquet"
_NS_PER_DAY = 86_400 * 10**9
_COLUMNS = (
    "ts_ns",
    "side",
    "position",
    "operation",
    "price",
    "size",
    "market_maker",
    "is_smart_depth",
)


def _day(ts_ns: int) -> str:
    return str(np.datetime64(ts_ns // _NS_PER_DAY, "D"))


@final
class DepthStore:
    """Depth updates kept on disk as Parquet, one table per instrument and UTC day (pyarrow).

    Updates are stored as they came, in the order they came, good or bad: the replay
    (:meth:`feed`) reports what a book cannot apply as a :class:`~ibkrfw.DataProblem`, so a
    recording keeps the evidence and nothing is corrected on the way in. Writes append: a
    batch must be in time order per instrument and not older than what is stored. Each day's
    file is replaced in one step (written aside, then renamed), so a crash leaves the old
    file or the new one, never half of one.

    Layout: ``ROOT/instrument=KEY/date=YYYY-MM-DD/depth.parquet`` with the columns
    ``ts_ns, side, position, operation, price, size, market_maker, is_smart_depth`` (IB's
    numbers for side and operation), and ``ROOT/_instruments.json`` with each instrument's
    contract, so a key read back is the same :class:`~ibkrfw.Instrument`.

    Args:
        root: The store's directory (created if missing).

    Raises:
        ConfigError: if pyarrow is not installed (``pip install "ibkrfw[parquet]"``).

    Example:
        >>> import tempfile
        >>> from ibkrfw import BookSide, DepthOperation, DepthUpdate, Stock
        >>> acme, ins = Stock("ACME"), DepthOperation.INSERT
        >>> store = DepthStore(tempfile.mkdtemp())
        >>> store.write([DepthUpdate(acme, 10**18, BookSide.BID, 0, ins, 99.5, 300.0),
        ...              DepthUpdate(acme, 10**18, BookSide.ASK, 0, ins, 100.5, 200.0)])
        2
        >>> store.days(acme), len(store.updates(acme))
        (['2001-09-09'], 2)
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        _pyarrow()
        self.root = os.fspath(root)
        """The store's directory."""
        self._lock = threading.RLock()
        os.makedirs(self.root, exist_ok=True)

    def __repr__(self) -> str:
        return f"DepthStore({self.root!r})"

    # --- files ------------------------------------------------------------------------------
    def _dir(self, key: str) -> str:
        return os.path.join(self.root, f"instrument={key}")

    def _file(self, key: str, day: str) -> str:
        return os.path.join(self._dir(key), f"date={day}", _FILE)

    def _specs(self) -> dict[str, dict[str, str]]:
        path = os.path.join(self.root, _INSTRUMENTS)
        if not os.path.exists(path):
            return {}
        try:
            with open(path, encoding="utf-8") as handle:
                specs = json.load(handle)
        except ValueError as exc:
            raise DataError(f"{path} is damaged: {exc}", fix="restore it from a backup") from None
        if not isinstance(specs, dict):
            raise DataError(f"{path} is damaged: it holds no table of instruments")
        return specs

    def _load(self, path: str) -> dict[str, Any]:
        _, pq = _pyarrow()
        try:
            table = pq.read_table(path)
        except Exception as exc:  # pyarrow's errors have no common base worth naming
            raise DataError(f"{path} cannot be read: {exc}") from None
        missing = [c for c in _COLUMNS if c not in table.column_names]
        if missing:
            raise DataError(f"{path} is not a depth table: column(s) {missing} missing")
        return {c: table.column(c).to_numpy(zero_copy_only=False) for c in _COLUMNS}

    # --- writing ----------------------------------------------------------------------------
    def write(self, updates: Iterable[DepthUpdate]) -> int:
        """Append ``updates`` (of any instruments) to the store; return how many were stored.

        Raises:
            DataError: if the updates of one instrument are not in time order, or are older
                than the latest already stored for that instrument and day; nothing of the
                batch is then written.
            ConfigError: if an instrument's key cannot name a directory.
        """
        groups: dict[tuple[str, str], list[DepthUpdate]] = {}
        specs_new: dict[str, dict[str, str]] = {}
        last: dict[str, int] = {}
        count = 0
        for row, update in enumerate(updates):
            if not isinstance(update, DepthUpdate):
                raise DataError(f"DepthStore.write: row {row} is not a DepthUpdate: {update!r}")
            key = _key(update.instrument)
            ts = update.ts_ns
            if ts < last.get(key, ts):
                raise DataError(
                    f"DepthStore.write: row {row} of {key} at {update.timestamp} is older than "
                    "the row before it; depth updates are stored in the order they came: sort "
                    "them by time (stable) first"
                )
            last[key] = ts
            specs_new.setdefault(key, update.instrument.to_dict())
            groups.setdefault((key, _day(ts)), []).append(update)
            count += 1
        pa, pq = _pyarrow()
        with self._lock:
            specs = self._specs()
            tables: list[tuple[str, Any]] = []
            for (key, day), rows in groups.items():
                path = self._file(key, day)
                old = self._load(path) if os.path.exists(path) else None
                if old is not None and len(old["ts_ns"]) and rows[0].ts_ns < int(old["ts_ns"][-1]):
                    raise DataError(
                        f"DepthStore.write: {key} has updates stored up to "
                        f"{_stamp(int(old['ts_ns'][-1]))} on {day}; the batch starts at "
                        f"{rows[0].timestamp}. Depth is appended in time order: write a later "
                        "batch, or delete the day's file to record it again"
                    )
                new: dict[str, Any] = {
                    "ts_ns": np.array([u.ts_ns for u in rows], dtype=np.int64),
                    "side": np.array([int(u.side) for u in rows], dtype=np.int8),
                    "position": np.array([u.position for u in rows], dtype=np.int32),
                    "operation": np.array([int(u.operation) for u in rows], dtype=np.int8),
                    "price": np.array([u.price for u in rows], dtype=np.float64),
                    "size": np.array([u.size for u in rows], dtype=np.float64),
                    "market_maker": [u.market_maker for u in rows],
                    "is_smart_depth": np.array([u.is_smart_depth for u in rows], dtype=bool),
                }
                columns: dict[str, Any] = {}
                for name in _COLUMNS:
                    if old is None:
                        columns[name] = new[name]
                    elif name == "market_maker":
                        columns[name] = [*old[name].tolist(), *new[name]]
                    else:
                        columns[name] = np.concatenate([old[name], new[name]])
                tables.append((path, pa.table(columns)))
            for path, table in tables:
                folder = os.path.dirname(path)
                os.makedirs(folder, exist_ok=True)
                sink = pa.BufferOutputStream()
                pq.write_table(table, sink)
                aside = path + ".new"
                _write_durably(aside, sink.getvalue().to_pybytes())
                os.replace(aside, path)
                _fsync_dir(folder)
            if any(key not in specs for key in specs_new):
                specs.update({k: v for k, v in specs_new.items() if k not in specs})
                path = os.path.join(self.root, _INSTRUMENTS)
                _write_durably(path + ".new", json.dumps(specs, indent=1).encode())
                os.replace(path + ".new", path)
        return count

    # --- reading ----------------------------------------------------------------------------
    def instrument(self, key: str) -> Instrument:
        """Return the instrument stored under ``key``.

        Raises:
            ConfigError: if the store has no depth of ``key``.
        """
        spec = self._specs().get(_key(key))
        if spec is None:
            known = ", ".join(sorted(self._specs())) or "none"
            raise ConfigError(f"the depth store has no instrument {key!r} (it holds: {known})")
        return Instrument.from_dict(spec)

    def _resolve(self, instrument: Instrument | str) -> Instrument:
        return instrument if isinstance(instrument, Instrument) else self.instrument(instrument)

    def days(self, instrument: Instrument | str) -> list[str]:
        """Return the UTC days (``YYYY-MM-DD``) recorded for ``instrument``, oldest first."""
        base = self._dir(_key(instrument))
        if not os.path.isdir(base):
            return []
        return sorted(
            name[5:]
            for name in os.listdir(base)
            if name.startswith("date=") and os.path.isfile(os.path.join(base, name, _FILE))
        )

    def _rows(
        self, instrument: Instrument, start: object, end: object
    ) -> tuple[dict[str, Any], int, int]:
        lo = _bound(start, instrument.timezone)
        hi = _bound(end, instrument.timezone)
        parts = []
        for day in self.days(instrument):
            if lo is not None and day < _day(lo):
                continue
            if hi is not None and day > _day(hi):
                continue
            parts.append(self._load(self._file(_key(instrument), day)))
        if not parts:
            empty: dict[str, Any] = {c: np.array([]) for c in _COLUMNS}
            return empty, 0, 0
        cols = {
            c: np.concatenate([p[c] for p in parts]) if c != "market_maker" else
            np.concatenate([np.asarray(p[c], dtype=object) for p in parts])
            for c in _COLUMNS
        }  # fmt: skip
        ts = cols["ts_ns"]
        first = 0 if lo is None else int(np.searchsorted(ts, lo, "left"))
        stop = len(ts) if hi is None else int(np.searchsorted(ts, hi, "right"))
        return cols, first, stop

    def read(
        self, instrument: Instrument | str, start: object = None, end: object = None
    ) -> pd.DataFrame:
        """Return the stored updates of ``instrument`` as a DataFrame, in the order they came.

        Args:
            instrument: The instrument, or its key (``"AAPL.SMART"``).
            start: The first time included (UTC ns, or anything pandas reads as a time; a
                naive one is in the instrument's time zone); None from the first.
            end: The last time included; None to the last.

        Raises:
            ConfigError: if a key is unknown or a bound is not a time.
        """
        import pandas as pd

        inst = self._resolve(instrument)
        cols, first, stop = self._rows(inst, start, end)
        return pd.DataFrame({c: cols[c][first:stop] for c in _COLUMNS})

    def updates(
        self, instrument: Instrument | str, start: object = None, end: object = None
    ) -> list[DepthUpdate]:
        """Return the stored updates of ``instrument`` (see :meth:`read`) as values.

        Raises:
            ConfigError: if a key is unknown or a bound is not a time.
        """
        inst = self._resolve(instrument)
        cols, first, stop = self._rows(inst, start, end)
        out: list[DepthUpdate] = []
        sides = (BookSide.ASK, BookSide.BID)
        ops = (DepthOperation.INSERT, DepthOperation.UPDATE, DepthOperation.DELETE)
        for i in range(first, stop):
            side, op = int(cols["side"][i]), int(cols["operation"][i])
            out.append(
                DepthUpdate(
                    inst,
                    int(cols["ts_ns"][i]),
                    sides[side] if 0 <= side <= 1 else side,  # type: ignore[arg-type]
                    int(cols["position"][i]),
                    ops[op] if 0 <= op <= 2 else op,  # type: ignore[arg-type]
                    float(cols["price"][i]),
                    float(cols["size"][i]),
                    str(cols["market_maker"][i] or ""),
                    bool(cols["is_smart_depth"][i]),
                )
            )
        return out

    def feed(
        self,
        instruments: Instrument | str | Sequence[Instrument | str],
        start: object = None,
        end: object = None,
        *,
        max_levels: int = 10,
        group_ns: int = 0,
    ) -> DepthFeed:
        """Return a :class:`~ibkrfw.sim.DepthFeed` replaying the instruments' stored depth.

        ``max_levels`` and ``group_ns`` are the feed's (see there).

        Raises:
            ConfigError: if a key is unknown, a bound is not a time, ``max_levels`` < 1 or
                ``group_ns`` < 0.
        """
        from ibkrfw.sim.depth import DepthFeed

        wanted = [instruments] if isinstance(instruments, Instrument | str) else instruments
        insts = [self._resolve(i) for i in wanted]
        streams = [self.updates(inst, start, end) for inst in insts]
        merged: Iterator[DepthUpdate] = heapq.merge(*streams, key=attrgetter("ts_ns"))
        return DepthFeed(merged, max_levels=max_levels, instruments=insts, group_ns=group_ns)


def _stamp(ts_ns: int) -> str:
    return str(dt.datetime.fromtimestamp(ts_ns / 1e9, tz=dt.UTC))
