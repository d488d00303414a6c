"""CSV import and export of bars, in ibkrfw's layout or a vendor's."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal, NamedTuple

import pandas as pd

from ibkrfw.errors import ConfigError, DataError

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
    ``volume`` columns (volume NaN if the file has none). Check it with
    :func:`~ibkrfw.data.validate_bars` before storing it.

    Args:
        path: The file.
        layout: A name from :data:`~ibkrfw.data.csvio.LAYOUTS` or a :class:`CsvLayout`.
        tz: The time zone of times written without a UTC offset (dates, local times).

    Raises:
        ConfigError: for an unknown layout name.
        DataError: if a column is missing, a time cannot be read, or times are naive and no
            ``tz`` is given.
    """
    if isinstance(layout, str):
        try:
            layout = LAYOUTS[layout]
        except KeyError:
            raise ConfigError(f"unknown CSV layout {layout!r}; known: {sorted(LAYOUTS)}") from None
    raw = pd.read_csv(path)
    source = os.fspath(path)
    missing = [
        theirs
        for ours, theirs in layout.columns.items()
        if ours != "volume" and theirs not in raw.columns
    ]
    if missing:
        raise DataError(f"{source}: missing column(s) {missing}; the file has {list(raw.columns)}")
    times = raw[layout.columns["timestamp"]]
    try:
        if layout.epoch_unit is not None:
            index = pd.DatetimeIndex(pd.to_datetime(times, unit=layout.epoch_unit, utc=True))
        else:
            text = times.astype(str)
            try:
                index = pd.DatetimeIndex(pd.to_datetime(text, format="mixed"))
            except (ValueError, TypeError):  # several UTC offsets (across DST): to UTC
                if not text.str.contains(r"(?:[+-]\d\d:?\d\d|Z)$", regex=True).all():
                    raise
                index = pd.DatetimeIndex(pd.to_datetime(text, format="mixed", utc=True))
    except (ValueError, TypeError) as exc:
        raise DataError(f"{source}: unreadable time in column {times.name!r}: {exc}") from None
    if index.tz is None:
        if tz is None:
            raise DataError(
                f"{source}: times have no UTC offset (e.g. {times.iloc[0]!r}); give the time "
                "zone they are in (tz=..., or --tz on the command line)"
            )
        index = index.tz_localize(tz)
    frame = pd.DataFrame(
        {
            ours: pd.to_numeric(raw[theirs], errors="coerce").to_numpy()
            for ours, theirs in layout.columns.items()
            if ours != "timestamp" and theirs in raw.columns
        },
        index=index.tz_convert("UTC").as_unit("ns").rename("timestamp"),
    )
    if "volume" not in frame:
        frame["volume"] = float("nan")
    return frame[["open", "high", "low", "close", "volume"]]


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
