"""Historical feeds from pandas DataFrames and CSV files, validated on load."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from functools import partial
from itertools import chain, repeat
from typing import final

import numpy as np
import numpy.typing as npt
import pandas as pd
from typing_extensions import override

from ibkrfw.core.history import BarArrays
from ibkrfw.errors import DataError
from ibkrfw.model.data import Bar
from ibkrfw.model.instruments import Instrument
from ibkrfw.model.orders import MAX_PRICE
from ibkrfw.ports import DataFeed
from ibkrfw.sim._csvfile import (
    bad_number,
    check_zone,
    localize,
    missing_columns_problem,
    naive_times_error,
    parse_times,
    read_csv_file,
)

__all__ = ["CSVFeed", "DataFrameFeed", "frame_times", "frame_to_arrays"]

_PRICES = ("open", "high", "low", "close")
PRICE_RANGE = (1e-9, float(MAX_PRICE))
"""The prices a bar may have: beyond them, a mistake in the data (no market quotes a price
above 10**9, nor one too small for any tick size; 1e308 would overflow the analytics and a
subnormal 1e-320 divide to infinity)."""
_TIME_COLUMNS = ("timestamp", "datetime", "time", "date")
_HINT = "ibkrfw never corrects data silently: fix or drop the offending rows before loading."
_CHUNK = 4096  # bars converted to Python objects at a time, to bound memory


def _where(labels: Sequence[str], i: int) -> str:
    return labels[i] if labels else f"row {i}"


def _fail(
    problem: str,
    mask: npt.NDArray[np.bool_],
    column: str,
    values: npt.NDArray[np.float64],
    stamps: pd.DatetimeIndex | None,
    labels: Sequence[str],
    source: str,
) -> None:
    bad = np.flatnonzero(mask)
    if not len(bad):
        return
    i = int(bad[0])
    more = f"; {len(bad) - 1} more row(s) have the same problem" if len(bad) > 1 else ""
    if column == "timestamp" and stamps is not None:  # a time: show it, and the row before
        got = f"{stamps[i]}, {_where(labels, i - 1)} has {stamps[i - 1]}"
        when = ""
    else:
        got = repr(float(values[i]))
        when = f" ({stamps[i]})" if stamps is not None else ""
    raise DataError(
        f"{source} {_where(labels, i)}{when}, column {column}: {problem} (got {got}){more}. {_HINT}"
    )


def frame_times(
    frame: pd.DataFrame, source: str = "DataFrame", labels: Sequence[str] = ()
) -> pd.DatetimeIndex:
    """Return the times of a frame of bars as they are, naive ones included.

    They are the frame's DatetimeIndex, or else its ``timestamp``, ``datetime``, ``time`` or
    ``date`` column (any letter case), parsed: ISO 8601 dates or times such as
    ``2024-01-02``, ``2024-01-02T14:30:00`` or ``2024-01-02T14:30:00-05:00``.

    Args:
        frame: The bars.
        source: How to name the data in errors.
        labels: How to name each row in errors (default: ``row <position>``).

    Raises:
        DataError: if there is no such index or column, or a time cannot be read.
    """
    if isinstance(frame.index, pd.DatetimeIndex):
        return frame.index
    lower = {str(c).lower(): c for c in frame.columns}
    name = next((lower[c] for c in _TIME_COLUMNS if c in lower), None)
    if name is None:
        raise DataError(
            f"{source}: no timestamps found; expected a DatetimeIndex or a column named one "
            f"of {', '.join(_TIME_COLUMNS)}, got columns {list(frame.columns)}"
        )
    return parse_times(frame[name], source=source, labels=labels)


def _timestamps(
    frame: pd.DataFrame, tz: str | None, source: str, labels: Sequence[str]
) -> pd.DatetimeIndex:
    index = frame_times(frame, source, labels)
    if index.hasnans:
        i = int(np.flatnonzero(index.isna())[0])
        raise DataError(f"{source} {_where(labels, i)}: missing timestamp (NaT). {_HINT}")
    if index.tz is None:
        if tz is None:
            raise naive_times_error(source, _where(labels, 0), str(index[0]))
        index = localize(index, tz, source, labels, None)
    return index.tz_convert("UTC")


def frame_to_arrays(
    frame: pd.DataFrame,
    *,
    tz: str | None = None,
    source: str = "DataFrame",
    labels: Sequence[str] = (),
) -> BarArrays:
    """Validate an OHLCV frame of one instrument and return it as columns.

    The frame needs a tz-aware :class:`~pandas.DatetimeIndex` (or a ``timestamp``/``date``
    column) and columns ``open``, ``high``, ``low``, ``close``, optionally ``volume`` (any
    letter case). Naive timestamps are accepted only with ``tz``. Rows must be strictly
    increasing in time, prices finite and positive, ``low <= open, close <= high``, and volume
    finite and non-negative; a missing volume column gives NaN volumes.

    Args:
        frame: The bars.
        tz: Time zone of naive timestamps.
        source: How to name the data in errors.
        labels: How to name each row in errors (default: ``row <position>``).

    Raises:
        DataError: naming the first bad row, its column and value, and how many rows share the
            problem.
    """
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"{source}: expected a pandas DataFrame, got {type(frame).__name__}")
    if frame.empty:
        raise DataError(f"{source}: no rows")
    stamps = _timestamps(frame, tz, source, labels)
    lower = {str(c).lower(): c for c in frame.columns}
    missing = [c for c in _PRICES if c not in lower]
    if missing:
        raise DataError(
            missing_columns_problem(source, missing, frame.columns),
            fix="name the columns timestamp, open, high, low, close and (optionally) volume",
        )
    columns: dict[str, npt.NDArray[np.float64]] = {}
    for name in (*_PRICES, "volume"):
        if name not in lower:
            columns[name] = np.full(len(frame), np.nan)
            continue
        try:
            columns[name] = pd.to_numeric(frame[lower[name]], errors="raise").to_numpy(
                dtype=np.float64, na_value=np.nan
            )
        except (ValueError, TypeError):
            problem = bad_number(source, labels, name, frame[lower[name]])
            raise problem or DataError(f"{source}: column {name} is not numeric") from None

    ts = np.asarray(stamps.as_unit("ns").asi8, dtype=np.int64)
    o, h, lo, c, v = (columns[k] for k in ("open", "high", "low", "close", "volume"))
    for name in _PRICES:
        values = columns[name]
        _fail(
            "missing or infinite price", ~np.isfinite(values), name, values, stamps, labels, source
        )
        _fail("price must be positive", values <= 0, name, values, stamps, labels, source)
        low, high = PRICE_RANGE
        _fail(
            f"price outside any market's (from {low:g} to {high:g})",
            (values < low) | (values > high),
            name,
            values,
            stamps,
            labels,
            source,
        )
    _fail("high is below low", h < lo, "high", h, stamps, labels, source)
    for name, values in (("open", o), ("close", c)):
        _fail(
            "outside the bar's low-high range",
            (values < lo) | (values > h),
            name,
            values,
            stamps,
            labels,
            source,
        )
    if "volume" in lower:
        _fail("missing or infinite volume", ~np.isfinite(v), "volume", v, stamps, labels, source)
        _fail("volume must not be negative", v < 0, "volume", v, stamps, labels, source)
    step = np.diff(ts)
    tsf = ts.astype(np.float64)
    _fail(
        "timestamp earlier than the row before (sort the data by time)",
        np.concatenate([[False], step < 0]),
        "timestamp",
        tsf,
        stamps,
        labels,
        source,
    )
    _fail(
        "duplicate timestamp",
        np.concatenate([[False], step == 0]),
        "timestamp",
        tsf,
        stamps,
        labels,
        source,
    )
    return BarArrays(ts, o, h, lo, c, v)


class _ArrayFeed(DataFeed):
    """A feed over validated columns per instrument, merged by time (stable on ties)."""

    def __init__(self, data: Mapping[Instrument, BarArrays]) -> None:
        if not data:
            raise DataError("a feed needs at least one instrument")
        self._data = dict(data)
        self._instruments = tuple(self._data)
        self._spacing: int | None = None
        self._spacing_known = False

    @property
    @override
    def instruments(self) -> tuple[Instrument, ...]:
        return self._instruments

    @override
    def history_arrays(self, instrument: Instrument) -> BarArrays | None:
        return self._data.get(instrument)

    @override
    def __len__(self) -> int:
        return sum(len(a.ts_ns) for a in self._data.values())

    @property
    @override
    def bar_ns(self) -> int | None:
        """The usual spacing of the bars, in nanoseconds (None with fewer than two per instrument).

        For each instrument, the tenth percentile of the gaps between its consecutive bars
        (nights, weekends, holidays and missing bars are longer and do not count, nor does
        the odd short one); the shortest over the instruments. Worked out once.
        """
        if not self._spacing_known:
            found = [s for a in self._data.values() if (s := _spacing(a.ts_ns)) is not None]
            self._spacing, self._spacing_known = min(found, default=None), True
        return self._spacing

    def between(self, start_ns: int | None = None, end_ns: int | None = None) -> DataFeed:
        """A feed of the bars from ``start_ns`` (included) to ``end_ns`` (excluded).

        The columns are views of this feed's, not copies. Instruments without a bar in the
        window are left out.

        Raises:
            DataError: if no instrument has a bar in the window.
        """
        cut: dict[Instrument, BarArrays] = {}
        for inst, a in self._data.items():
            lo = 0 if start_ns is None else int(np.searchsorted(a.ts_ns, start_ns, "left"))
            hi = len(a.ts_ns) if end_ns is None else int(np.searchsorted(a.ts_ns, end_ns, "left"))
            if hi > lo:
                cut[inst] = BarArrays(
                    a.ts_ns[lo:hi], a.open[lo:hi], a.high[lo:hi], a.low[lo:hi],
                    a.close[lo:hi], a.volume[lo:hi],
                )  # fmt: skip
        if not cut:
            raise DataError("no bars between the given times")
        return _ArrayFeed(cut)

    @override
    def __iter__(self) -> Iterator[Bar]:
        if len(self._instruments) == 1:
            inst = self._instruments[0]
            return self._iter_one(inst, self._data[inst])
        return self._iter_many()

    @staticmethod
    def _iter_one(inst: Instrument, a: BarArrays) -> Iterator[Bar]:
        # Per bar everything runs in C: zip builds the row, tuple.__new__ makes it a Bar.
        make = partial(tuple.__new__, Bar)
        return chain.from_iterable(
            map(make, zip(repeat(inst), *(column[s : s + _CHUNK].tolist() for column in a)))
            for s in range(0, len(a.ts_ns), _CHUNK)
        )

    def _iter_many(self) -> Iterator[Bar]:
        arrays = list(self._data.values())
        which = np.concatenate(
            [np.full(len(a.ts_ns), k, dtype=np.int64) for k, a in enumerate(arrays)]
        )
        merged = [np.concatenate([getattr(a, f) for a in arrays]) for f in BarArrays._fields]
        order = np.argsort(merged[0], kind="stable")
        insts = self._instruments
        new = tuple.__new__
        for s in range(0, len(order), _CHUNK):
            idx = order[s : s + _CHUNK]
            cols = [m[idx].tolist() for m in merged]
            for k, t, o, h, lo, c, v in zip(which[idx].tolist(), *cols, strict=True):
                yield new(Bar, (insts[k], t, o, h, lo, c, v))


def _spacing(ts_ns: npt.NDArray[np.int64]) -> int | None:
    """The tenth percentile of the positive gaps between consecutive times (None if none)."""
    gaps = np.diff(ts_ns)
    gaps = gaps[gaps > 0]
    if not len(gaps):
        return None
    k = len(gaps) // 10
    return int(np.partition(gaps, k)[k])


@final
class DataFrameFeed(_ArrayFeed):
    """Bars from pandas DataFrames, validated once when the feed is built.

    Pass one frame and its instrument, or a mapping of instrument to frame. Bars of several
    instruments are delivered in time order; bars sharing a timestamp arrive one after another
    in the mapping's order, then together in :meth:`Strategy.on_slice <ibkrfw.Strategy.on_slice>`.
    See :func:`frame_to_arrays` for the layout and the checks.

    Args:
        data: A DataFrame of one instrument, or a mapping of instrument to DataFrame.
        instrument: The instrument of ``data`` when it is a single DataFrame.
        tz: Time zone of naive timestamps (they are an error otherwise).

    Raises:
        DataError: if a frame is malformed (the message names the row, column and value).
    """

    def __init__(
        self,
        data: pd.DataFrame | Mapping[Instrument, pd.DataFrame],
        instrument: Instrument | None = None,
        *,
        tz: str | None = None,
    ) -> None:
        if isinstance(data, pd.DataFrame):
            if instrument is None:
                raise DataError(
                    "DataFrameFeed(frame) needs the instrument: DataFrameFeed(df, inst)"
                )
            frames: Mapping[Instrument, pd.DataFrame] = {instrument: data}
        else:
            frames = data
        super().__init__(
            {
                inst: frame_to_arrays(f, tz=tz, source=f"bars of {inst.id}")
                for inst, f in frames.items()
            }
        )


@final
class CSVFeed(_ArrayFeed):
    """Bars from a CSV file, validated on load.

    The file has a header with ``timestamp`` (or ``date``/``datetime``/``time``), ``open``,
    ``high``, ``low``, ``close`` and optionally ``volume``. With several instruments it also needs
    a ``symbol`` column, matched against each instrument's symbol; rows of other symbols are left
    out. Errors name the file's line number.

    Args:
        path: The CSV file (may be gzip-compressed: ``.csv.gz``).
        instruments: One instrument (the whole file), or several (split by ``symbol``).
        tz: Time zone of naive timestamps.
        symbol_column: Name of the symbol column.

    Raises:
        DataError: if the file cannot be read, an instrument has no rows, or a row is malformed.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        instruments: Instrument | Sequence[Instrument],
        *,
        tz: str | None = None,
        symbol_column: str = "symbol",
    ) -> None:
        name = os.fspath(path)
        if tz is not None:
            check_zone(tz)
        frame, numbers = read_csv_file(name, dtype={symbol_column: str})
        lines = [f"line {n}" for n in numbers.tolist()]
        if isinstance(instruments, Instrument):
            data = {instruments: frame_to_arrays(frame, tz=tz, source=name, labels=lines)}
        else:
            if symbol_column not in frame.columns:
                raise DataError(
                    f"{name}: several instruments need a '{symbol_column}' column, got "
                    f"{list(frame.columns)}"
                )
            symbols = frame[symbol_column].to_numpy()
            data = {}
            for inst in instruments:
                rows = np.flatnonzero(symbols == inst.symbol)
                if not len(rows):
                    found = sorted({str(x) for x in symbols if isinstance(x, str)})
                    shown = ", ".join(found[:20]) + (", ..." if len(found) > 20 else "")
                    raise DataError(
                        f"{name}: no rows for symbol {inst.symbol!r}; its {symbol_column} "
                        f"column has {shown or 'no symbols'}",
                        fix="give symbols the file has (--symbols / the instruments)",
                    )
                data[inst] = frame_to_arrays(
                    frame.iloc[rows],
                    tz=tz,
                    source=f"{name} ({inst.symbol})",
                    labels=[lines[r] for r in rows],
                )
        super().__init__(data)
