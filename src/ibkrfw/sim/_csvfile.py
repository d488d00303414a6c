"""Reading a CSV file of bars, with errors that name the file, the line and what to do."""

from __future__ import annotations

import difflib
import importlib
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import final

import numpy as np
import numpy.typing as npt
import pandas as pd

from ibkrfw.errors import ConfigError, DataError

_COMPRESSED = (".gz", ".bz2", ".zip", ".xz", ".zst", ".tar")
_SAMPLE = 8192


def read_csv_file(
    path: str | os.PathLike[str], *, dtype: Mapping[str, type] | None = None
) -> tuple[pd.DataFrame, npt.NDArray[np.int64]]:
    """Read a comma-separated file; return its rows and each row's line in the file.

    Lines count from 1 with the header as line 1, as an editor shows them; blank lines are
    skipped but counted. A value spread over several lines inside quotes is not expected in
    bars and would shift the numbers after it.

    Raises:
        DataError: if the file is missing, a directory, binary, empty, has a header only, is
            separated by something other than commas, or has a line with too many fields.
    """
    name = os.fspath(path)
    if os.path.isdir(name):
        raise DataError(f"{name} is a directory, not a CSV file", fix="give the path of the file")
    if not os.path.exists(name):
        raise DataError(f"{name}: no such file", fix="check the path")
    if not name.lower().endswith(_COMPRESSED):
        try:
            with open(name, "rb") as handle:
                head = handle.read(_SAMPLE)
        except OSError as exc:
            raise DataError(f"cannot read {name}: {exc.strerror}") from None
        if b"\0" in head:
            raise DataError(
                f"{name} holds binary data, not comma-separated text",
                fix="give a CSV file (UTF-8 text, optionally gzip-compressed as .csv.gz)",
            )
    try:
        frame = pd.read_csv(name, dtype=dtype, skip_blank_lines=False)
    except pd.errors.EmptyDataError:
        raise DataError(
            f"{name} is empty",
            fix="a CSV file of bars has a header line (e.g. timestamp,open,high,low,close,"
            "volume) and one line per bar",
        ) from None
    except pd.errors.ParserError as exc:
        raise DataError(_parser_problem(name, str(exc))) from None
    except UnicodeDecodeError:
        raise DataError(
            _not_utf8(name),
            fix="ibkrfw reads CSV files as UTF-8: save the file as UTF-8 (in a spreadsheet: "
            "CSV UTF-8), or convert it, e.g. iconv -f latin1 -t utf-8",
        ) from None
    except OSError as exc:
        raise DataError(f"cannot read {name}: {exc.strerror or exc}") from None
    if len(frame.columns) == 1:
        header = str(frame.columns[0])
        for sep, sep_name in ((";", "semicolons"), ("\t", "tabs"), ("|", "bars (|)")):
            if sep in header:
                raise DataError(
                    f"{name} line 1: the header {header!r} is separated by {sep_name}; "
                    "ibkrfw reads comma-separated files",
                    fix="save the file with commas between values (and '.' as the decimal point)",
                )
    if not isinstance(frame.index, pd.RangeIndex):
        # pandas takes a first row with one value more than the header as having an index
        # column; no file of bars has one, so this is a line with a value too many
        first = next((i for i, v in enumerate(frame.index) if not pd.isna(v)), 0)
        raise DataError(_too_many(name, first + 2, len(frame.columns) + 1, len(frame.columns)))
    lines = np.arange(2, len(frame) + 2, dtype=np.int64)  # +1 one-based, +1 the header
    blank = frame.isna().all(axis=1).to_numpy()
    if blank.any():
        frame, lines = frame.loc[~blank].reset_index(drop=True), lines[~blank]
    if frame.empty:
        raise DataError(
            f"{name} has a header but no bars",
            fix="add one line per bar after the header, or give the right file",
        )
    return frame, lines


def _not_utf8(name: str) -> str:
    """Say where the first byte that is not UTF-8 is: line, byte offset and the byte."""
    opener = {".gz": "gzip", ".bz2": "bz2", ".xz": "lzma"}.get(os.path.splitext(name)[1].lower())
    try:
        if opener is None and name.lower().endswith(_COMPRESSED):
            raise OSError("zip, zst and tar archives are not searched")
        if opener is None:
            with open(name, "rb") as handle:
                data = handle.read()
        else:
            module = importlib.import_module(opener)
            with module.open(name, "rb") as handle:
                data = handle.read()
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        text = "the decompressed text" if opener else "the file"
        return (
            f"{name} line {line}, byte {column}: 0x{data[exc.start]:02x} (offset {exc.start:,} "
            f"of {text}) is not UTF-8 text"
        )
    except (OSError, EOFError, ValueError):
        pass
    return f"{name} is not UTF-8 text"


def _parser_problem(name: str, text: str) -> str:
    found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", text)
    if found is None:
        return f"{name} is not a well-formed CSV file: {text.splitlines()[-1]}"
    expected, line, saw = found.groups()
    return _too_many(name, int(line), int(saw), int(expected))


def _too_many(name: str, line: int, saw: int, expected: int) -> str:
    return (
        f"{name} line {line} has {saw} values, the header has {expected}; remove the extra "
        "commas (a value that contains a comma must be in double quotes)"
    )


def missing_columns_problem(source: str, missing: Iterable[str], found: Iterable[object]) -> str:
    """Describe missing columns: which, which the file has, and the nearest names."""
    have = [str(c) for c in found]
    parts = []
    for column in missing:
        near = difflib.get_close_matches(column, have, n=1, cutoff=0.6)
        near += [c for c in have if c.lower() == column.lower() and c not in near]
        parts.append(f"{column!r}" + (f" (did you mean {near[0]!r}?)" if near else ""))
    return f"{source}: missing column(s) {', '.join(parts)}; it has {have}"


def bad_number(
    source: str, labels: Sequence[str], column: str, values: pd.Series
) -> DataError | None:
    """Return an error for the first value of ``values`` that is not a number, if any."""
    numbers = pd.to_numeric(values, errors="coerce")
    bad = np.flatnonzero((numbers.isna() & values.notna()).to_numpy())
    if not len(bad):
        return None
    i = int(bad[0])
    where = labels[i] if labels else f"row {i}"
    more = f" ({len(bad) - 1} more value(s) in that column too)" if len(bad) > 1 else ""
    return DataError(
        f"{source} {where}, column {column}: {values.iloc[i]!r} is not a number{more}",
        fix="write numbers with '.' as the decimal point and no thousands separator; leave a "
        "missing value empty",
    )


def check_zone(tz: str) -> None:
    """Refuse a time zone name that is not known.

    Raises:
        ConfigError: naming it, with examples of good ones.
    """
    try:
        pd.Timestamp(0).tz_localize(tz)
    except Exception:  # zoneinfo, pytz and dateutil raise different kinds
        raise ConfigError(
            f"unknown time zone {tz!r}; give an IANA name such as America/New_York, "
            "Europe/London or UTC"
        ) from None


def localize(
    index: pd.DatetimeIndex, tz: str, source: str, labels: Sequence[str], texts: pd.Series | None
) -> pd.DatetimeIndex:
    """Place naive times in ``tz``, refusing times that DST skips or repeats, by line.

    Raises:
        ConfigError: for an unknown zone.
        DataError: naming the first time that does not exist or happens twice there.
    """
    check_zone(tz)
    try:
        return index.tz_localize(tz, ambiguous="raise", nonexistent="raise")
    except Exception:  # pytz/zoneinfo raise several kinds for DST gaps and overlaps
        pass
    given = ~np.asarray(index.isna())
    skipped = np.asarray(
        index.tz_localize(tz, ambiguous=np.zeros(len(index), dtype=bool), nonexistent="NaT").isna()
    )
    repeated = np.asarray(
        index.tz_localize(tz, ambiguous="NaT", nonexistent="shift_forward").isna()
    )
    bad = np.flatnonzero(given & (skipped | repeated))
    if len(bad):
        i = int(bad[0])
        value = texts.iloc[i] if texts is not None else str(index[i])
        where = labels[i] if labels else f"row {i}"
        what = (
            "does not exist in {tz} (clocks went forward then)"
            if skipped[i]
            else "happens twice in {tz} (clocks went back then)"
        )
        raise DataError(
            f"{source} {where}: {value!r} {what.format(tz=tz)}",
            fix="write the times with their UTC offset (e.g. 2024-11-03T01:30:00-05:00), or in UTC",
        )
    raise DataError(f"{source}: cannot place the times in {tz!r}")  # pragma: no cover


_ORIGIN = "ibkrfw.csv_origin"


@final
class CsvOrigin:
    """The file a frame was read from and each row's line there (immutable, never copied)."""

    __slots__ = ("lines", "source", "ts_ns")

    def __init__(
        self, source: str, lines: npt.NDArray[np.int64], ts_ns: npt.NDArray[np.int64]
    ) -> None:
        self.source = source
        self.lines = lines
        self.ts_ns = ts_ns

    def __deepcopy__(self, memo: dict[int, object]) -> CsvOrigin:
        return self  # pandas deep-copies attrs on every operation: share, it never changes


def remember_origin(frame: pd.DataFrame, source: str, lines: npt.NDArray[np.int64]) -> None:
    """Record in ``frame.attrs`` the file and line of each row of a frame just read."""
    ts = np.asarray(pd.DatetimeIndex(frame.index).as_unit("ns").asi8, dtype=np.int64)
    frame.attrs[_ORIGIN] = CsvOrigin(source, lines, ts)


def origin_of(frame: pd.DataFrame) -> CsvOrigin | None:
    """Return where a frame's rows came from, if they are still the file's rows in its order.

    A frame filtered, sorted or extended since it was read has other times: then None.
    """
    origin = frame.attrs.get(_ORIGIN)
    if not isinstance(origin, CsvOrigin) or not isinstance(frame.index, pd.DatetimeIndex):
        return None
    if len(frame.index) != len(origin.ts_ns):
        return None
    if not np.array_equal(frame.index.as_unit("ns").asi8, origin.ts_ns):
        return None
    return origin


ISO_TIMES = (
    "ISO 8601 dates or times such as 2024-01-02, 2024-01-02T14:30:00 or 2024-01-02T14:30:00-05:00"
)
"""The times the CSV feed reads, for messages."""
_OFFSET = r"(?:[+-]\d\d:?\d\d|Z)$"


def parse_times(
    column: pd.Series,
    *,
    source: str,
    labels: Sequence[str] = (),
    time_format: str = "ISO8601",
    accepted: str = ISO_TIMES,
) -> pd.DatetimeIndex:
    """Parse a column of times as they are (naive ones stay naive).

    Times with different UTC offsets (across a DST change) come back in UTC.

    Raises:
        DataError: naming the line (or row) and value of the first missing or unreadable
            time, or of a time without an offset among times with one.
    """
    name = str(column.name)

    def where(i: int) -> str:
        return f"{source} {labels[i] if labels else f'row {i}'}, column {name}"

    missing = np.flatnonzero(column.isna().to_numpy())
    if len(missing):
        raise DataError(
            f"{where(int(missing[0]))}: no time", fix="give every bar its time, or remove the line"
        )
    try:
        return pd.DatetimeIndex(pd.to_datetime(column, format=time_format))
    except (ValueError, TypeError, OverflowError):
        pass  # an unreadable time, or several UTC offsets (across DST): find out which
    try:
        utc = pd.to_datetime(column, format=time_format, utc=True, errors="coerce")
    except (ValueError, TypeError, OverflowError):
        utc = pd.Series(pd.NaT, index=column.index)
    bad = np.flatnonzero(pd.isna(utc))
    if len(bad):
        i = int(bad[0])
        raise DataError(
            f"{where(i)}: {column.iloc[i]!r} is not a time",
            fix=f"write times as {accepted}",
        )
    has_offset = column.astype(str).str.contains(_OFFSET, regex=True).to_numpy()
    if not has_offset.all():
        i, j = int(np.flatnonzero(~has_offset)[0]), int(np.flatnonzero(has_offset)[0])
        raise DataError(
            f"{where(i)}: {column.iloc[i]!r} has no UTC offset, but "
            f"{labels[j] if labels else f'row {j}'} ({column.iloc[j]!r}) has one",
            fix="write every time the same way, all with their offset (or all without)",
        )
    return pd.DatetimeIndex(utc)


def naive_times_error(source: str, where: str, example: object) -> DataError:
    """The error for times without a UTC offset when no time zone was given."""
    return DataError(
        f"{source} {where}: timestamps have no time zone (the first, {example!r}, has no UTC "
        "offset) and none was given",
        fix="give the time zone the file's times are in, e.g. {tz} (or UTC); ibkrfw never "
        "guesses it",
        settings={"tz": "America/New_York"},
    )
