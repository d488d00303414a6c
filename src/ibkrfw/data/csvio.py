"""CSV import and export of bars, in ibkrfw's layout or a vendor's."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal, NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd

from ibkrfw.errors import ConfigError, DataError
from ibkrfw.sim._csvfile import (
    bad_number,
    check_zone,
    localize,
    missing_columns_problem,
    naive_times_error,
    parse_times,
    read_csv_file,
    remember_origin,
)

__all__ = ["LAYOUTS", "CsvLayout", "read_bars_csv", "write_bars_csv"]


class CsvLayout(NamedTuple):
    """How a CSV file names its columns, and how its times are written.

    Args:
        columns: The file's column for each of ``timestamp``, ``open``, ``high``, ``low``,
            ``close`` and (optionally) ``volume``.
        epoch_unit: ``"s"`` or ``"ms"`` if times are UTC epoch numbers; None for text.
    """

    columns: Mapping[str, str]
    epoch_unit: Literal["s", "ms"] | None = None


LAYOUTS: dict[str, CsvLayout] = {
    # timestamp,open,high,low,close,volume with ISO 8601 times and UTC offsets (what we write)
    "ibkrfw": CsvLayout({n: n for n in ("timestamp", "open", "high", "low", "close", "volume")}),
    # Yahoo Finance downloads: Date,Open,High,Low,Close,Adj Close,Volume (dates: give tz)
    "yahoo": CsvLayout(
        {
            "timestamp": "Date",
            "open": "Open",
            "high": "High",
            "low": "Low",
            "close": "Close",
            "volume": "Volume",
        }
    ),
    # IB's exported bars: date,open,high,low,close,volume,barCount,average (local times: give tz)
    "ib": CsvLayout(
        {n: n for n in ("open", "high", "low", "close", "volume")} | {"timestamp": "date"}
    ),
    # Polygon.io aggregates: t (epoch milliseconds), o, h, l, c, v
    "polygon": CsvLayout(
        {"timestamp": "t", "open": "o", "high": "h", "low": "l", "close": "c", "volume": "v"},
        epoch_unit="ms",
    ),
    # TradingView chart exports: time (epoch seconds), open, high, low, close, Volume
    "tradingview": CsvLayout(
        {
            "timestamp": "time",
            "open": "open",
            "high": "high",
            "low": "low",
            "close": "close",
            "volume": "Volume",
        },
        epoch_unit="s",
    ),
}
"""The known layouts, by name."""


def read_bars_csv(
    path: str | os.PathLike[str],
    *,
    layout: str | CsvLayout = "ibkrfw",
    tz: str | None = None,
) -> pd.DataFrame:
    """Read bars from a CSV file into ibkrfw's layout, checking nothing else.

    The result has a UTC ``timestamp`` index and ``open``, ``high``, ``low``, ``close`` and
    ``volume`` columns (volume NaN if the file has none; an empty price is NaN). Check it with
    :func:`~ibkrfw.data.validate_bars` before storing it: the frame remembers the file and the
    line of each row (in :attr:`pandas.DataFrame.attrs`), so the problems found are reported
    by line for as long as its rows are the file's, in the file's order.

    Lines are numbered as an editor shows them: the header is line 1. Times are text (ISO
    8601 such as ``2024-01-02``, ``2024-01-02T14:30:00`` or ``2024-01-02T14:30:00-05:00``;
    other common forms such as IB's ``20240102 14:30:00`` are read too), or epoch numbers in
    the layouts that say so.

    Args:
        path: The file (UTF-8, comma-separated; may be compressed, e.g. ``.csv.gz``).
        layout: A name from :data:`~ibkrfw.data.csvio.LAYOUTS` or a :class:`CsvLayout`.
        tz: The time zone of times written without a UTC offset (dates, local times), an
            IANA name such as ``"America/New_York"``.

    Raises:
        ConfigError: for an unknown layout name or time zone.
        DataError: naming the file, and the line, column and value where there is one: if the
            file cannot be read as CSV (missing, a directory, binary, empty, header only, not
            comma-separated), a column is missing, a time or a number cannot be read, a time
            does not exist in ``tz`` (DST), or times are naive and no ``tz`` is given.
    """
    if isinstance(layout, str):
        try:
            layout = LAYOUTS[layout]
        except KeyError:
            raise ConfigError(f"unknown CSV layout {layout!r}; known: {sorted(LAYOUTS)}") from None
    if tz is not None:
        check_zone(tz)
    source = os.fspath(path)
    raw, lines = read_csv_file(source)
    missing = [
        theirs
        for ours, theirs in layout.columns.items()
        if ours != "volume" and theirs not in raw.columns
    ]
    if missing:
        fits = [
            name
            for name, known in LAYOUTS.items()
            if all(c in raw.columns for o, c in known.columns.items() if o != "volume")
        ]
        if fits:
            raise DataError(
                missing_columns_problem(source, missing, raw.columns),
                fix=f"the file looks like the {fits[0]!r} layout: give {{layout}}",
                settings={"layout": fits[0]},
            )
        raise DataError(
            missing_columns_problem(source, missing, raw.columns),
            fix=f"name the columns {', '.join(layout.columns.values())} (volume is optional), "
            f"or give the layout the file is in ({', '.join(LAYOUTS)})",
        )
    labels = [f"line {n}" for n in lines.tolist()]
    times = raw[layout.columns["timestamp"]]
    if layout.epoch_unit is not None:
        unit = "seconds" if layout.epoch_unit == "s" else "milliseconds"
        problem = bad_number(source, labels, str(times.name), times)
        if problem is None and times.isna().any():
            i = int(np.flatnonzero(times.isna().to_numpy())[0])
            problem = DataError(f"{source} {labels[i]}, column {times.name}: no time")
        if problem is not None:
            raise DataError(
                problem.problem,
                fix=f"times in this layout are UTC epoch {unit}, e.g. "
                + ("1704205800" if layout.epoch_unit == "s" else "1704205800000"),
            )
        index = pd.DatetimeIndex(pd.to_datetime(times, unit=layout.epoch_unit, utc=True))
    else:
        index = parse_times(
            times.astype("string"),
            source=source,
            labels=labels,
            time_format="mixed",
            accepted=_TEXT_TIMES,
        )
    if index.tz is None:
        if tz is None:
            raise naive_times_error(source, labels[0], times.iloc[0])
        index = localize(index, tz, source, labels, times)
    columns: dict[str, npt.NDArray[np.float64]] = {}
    for ours, theirs in layout.columns.items():
        if ours == "timestamp" or theirs not in raw.columns:
            continue
        problem = bad_number(source, labels, theirs, raw[theirs])
        if problem is not None:
            raise problem
        columns[ours] = pd.to_numeric(raw[theirs], errors="coerce").to_numpy(
            dtype=np.float64, na_value=np.nan
        )
    frame = pd.DataFrame(columns, index=index.tz_convert("UTC").as_unit("ns").rename("timestamp"))
    if "volume" not in frame:
        frame["volume"] = float("nan")
    frame = frame[["open", "high", "low", "close", "volume"]]
    remember_origin(frame, source, lines)
    return frame


_TEXT_TIMES = (
    "ISO 8601 dates or times such as 2024-01-02, 2024-01-02T14:30:00 or "
    "2024-01-02T14:30:00-05:00 (other common forms such as 20240102 14:30:00 are read too)"
)


def write_bars_csv(frame: pd.DataFrame, path: str | os.PathLike[str]) -> int:
    """Write bars in ibkrfw's layout: ``timestamp,open,high,low,close,volume``.

    Times are ISO 8601 in UTC with their offset (``2024-01-02T14:30:00+00:00``); numbers are
    written in their shortest form that reads back exactly. Returns the number of rows.
    """
    out = frame[["open", "high", "low", "close", "volume"]].copy()
    index = pd.DatetimeIndex(frame.index).tz_convert("UTC")
    out.insert(
        0,
        "timestamp",
        index.strftime("%Y-%m-%dT%H:%M:%S.%f+00:00").str.replace(".000000+", "+", regex=False),
    )
    out.to_csv(path, index=False)  # floats in their shortest exact form
    return len(out)
