"""Validation reports and explicit cleaning of OHLCV bars: nothing is ever fixed silently."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal, NamedTuple

import numpy as np
import numpy.typing as npt
import pandas as pd

from ibkrfw.data.barsize import bar_size_ns
from ibkrfw.data.sessions import SessionCalendar
from ibkrfw.errors import ConfigError, DataError
from ibkrfw.sim._csvfile import origin_of
from ibkrfw.sim.feeds import PRICE_RANGE, frame_times

__all__ = ["PROBLEM_KINDS", "CleanResult", "clean_bars", "count_gaps", "validate_bars"]

PROBLEM_KINDS = (
    "naive_timestamp",
    "unsorted_timestamp",
    "duplicate_timestamp",
    "missing_price",
    "non_positive_price",
    "implausible_price",
    "high_below_low",
    "open_outside_range",
    "close_outside_range",
    "bad_volume",
    "zero_volume_run",
    "outlier",
    "outside_session",
    "gap",
)
"""Every kind of problem :func:`~ibkrfw.data.validate_bars` reports."""

Action = Literal["drop", "ffill", "keep", "raise"]
_ALLOWED: dict[str, tuple[str, ...]] = {
    "naive_timestamp": ("raise",),
    "unsorted_timestamp": ("drop", "keep", "raise"),
    "duplicate_timestamp": ("drop", "keep", "raise"),
    "missing_price": ("drop", "ffill", "raise"),
    "non_positive_price": ("drop", "ffill", "raise"),
    "implausible_price": ("drop", "ffill", "raise"),
    "high_below_low": ("drop", "ffill", "raise"),
    "open_outside_range": ("drop", "ffill", "raise"),
    "close_outside_range": ("drop", "ffill", "raise"),
    "bad_volume": ("drop", "raise"),
    "zero_volume_run": ("drop", "keep", "raise"),
    "outlier": ("drop", "ffill", "keep", "raise"),
    "outside_session": ("drop", "keep", "raise"),
    "gap": ("ffill", "keep", "raise"),
}
_Add = Callable[
    [npt.NDArray[np.bool_] | npt.NDArray[np.intp], str, str, npt.NDArray[np.float64] | None, str],
    None,
]
"""How the checks report rows: (rows, column, kind, values, detail)."""
_REPORT_COLUMNS = ["row", "line", "timestamp", "column", "kind", "value", "detail"]
_CHANGE_COLUMNS = ["row", "timestamp", "kind", "action", "column", "old", "new"]
_PRICES = ("open", "high", "low", "close")


def _times(frame: pd.DataFrame, tz: str | None) -> tuple[pd.DatetimeIndex, bool]:
    """The frame's times in UTC, and whether they were naive (then read as UTC)."""
    index = frame_times(frame, "bars")
    if index.tz is None:
        if tz is None:
            return index.tz_localize("UTC"), True
        index = index.tz_localize(tz)
    return index.tz_convert("UTC"), False


def _column(frame: pd.DataFrame, name: str) -> npt.NDArray[np.float64] | None:
    lower = {str(c).lower(): c for c in frame.columns}
    if name not in lower:
        return None
    return pd.to_numeric(frame[lower[name]], errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan
    )


def validate_bars(
    frame: pd.DataFrame,
    *,
    bar_size: str | None = None,
    calendar: SessionCalendar | None = None,
    tz: str | None = None,
    outlier_zscore: float = 10.0,
    zero_volume_run: int = 5,
) -> pd.DataFrame:
    """Check OHLCV bars and return every problem found, one row each (empty if none).

    The report's columns: ``row`` (position in ``frame``), ``line`` (the row's line in the
    CSV file it was read from, counting the header as line 1 as an editor does; ``<NA>``
    unless ``frame`` comes from :func:`~ibkrfw.data.read_bars_csv` with its rows still the
    file's, in the file's order), ``timestamp`` (UTC), ``column``, ``kind`` (one of
    :data:`~ibkrfw.data.validation.PROBLEM_KINDS`), ``value`` and ``detail``. For a gap,
    ``row`` is the first bar after it, ``timestamp`` the first missing
    time (or session), and ``value`` how many bars (or sessions) are missing. Nothing is
    changed: :func:`clean_bars` applies the actions you choose.

    Checks: naive timestamps; out-of-order and duplicate times; missing, infinite, zero or
    negative prices; implausible prices, below 1e-9 (such as a subnormal 1e-320) or above
    10**9 (such as 1e308), which no market quotes (a feed or a store refuses them too);
    ``high < low``; open or close outside the low-high range; negative or
    non-finite volume; runs of ``zero_volume_run`` or more bars with zero volume; outliers,
    close-to-close log returns whose robust z-score (from the median and the median absolute
    deviation) exceeds ``outlier_zscore`` (a one-bar spike is reported once, at the spike);
    and, with a ``calendar`` and a ``bar_size``, bars outside the sessions and gaps within
    them (missing bars of intraday sizes, missing sessions of daily ones).

    Args:
        frame: The bars (a DatetimeIndex or time column; ``open``, ``high``, ``low``,
            ``close``, optionally ``volume``).
        bar_size: The bars' size, for the gap check (``"1min"``, ``"1d"``...).
        calendar: The instrument's sessions, for the gap check
            (:func:`~ibkrfw.data.calendar_for`).
        tz: The time zone of naive timestamps; without it they are reported, and read as UTC
            for the other checks.
        outlier_zscore: The robust z-score above which a return is an outlier.
        zero_volume_run: The shortest run of zero-volume bars reported.

    Raises:
        DataError: if ``frame`` has no bars (nothing validated is not "no problems"), or
            lacks a price column.
    """
    if not len(frame):
        origin = origin_of(frame)
        where = origin.source if origin is not None else "the frame"
        raise DataError(
            f"{where} has no bars to validate: no bars is not 'no problems'",
            fix="give bars: check the file, or the dates and bar size read from a store",
        )
    index, naive = _times(frame, tz)
    ts = index.as_unit("ns").asi8
    problems: list[tuple[int, int, str, str, float, str]] = []

    def add(
        rows: npt.NDArray[np.bool_] | npt.NDArray[np.intp],
        column: str,
        kind: str,
        values: npt.NDArray[np.float64] | None,
        detail: str,
    ) -> None:
        positions = np.flatnonzero(rows) if rows.dtype == bool else rows
        for i in positions.tolist():
            value = float(values[i]) if values is not None else float("nan")
            problems.append((i, int(ts[i]), column, kind, value, detail))

    if naive and len(ts):
        problems.append(
            (
                0,
                int(ts[0]),
                "timestamp",
                "naive_timestamp",
                float("nan"),
                f"all {len(ts)} timestamps have no time zone; give tz=",
            )
        )
    running_max = np.maximum.accumulate(ts) if len(ts) else ts
    earlier = np.zeros(len(ts), dtype=bool)
    earlier[1:] = ts[1:] < running_max[:-1]
    add(earlier, "timestamp", "unsorted_timestamp", None, "earlier than a row before it")
    duplicated = pd.Index(ts).duplicated(keep="first") & ~earlier
    add(
        np.asarray(duplicated),
        "timestamp",
        "duplicate_timestamp",
        None,
        "the same time as a row before it",
    )

    prices: dict[str, npt.NDArray[np.float64]] = {}
    for name in _PRICES:
        values = _column(frame, name)
        if values is None:
            raise DataError(f"missing column {name!r}; got {list(frame.columns)}")
        prices[name] = values
        add(~np.isfinite(values), name, "missing_price", values, "missing or infinite")
        add(
            np.isfinite(values) & (values <= 0),
            name,
            "non_positive_price",
            values,
            "zero or negative",
        )
        low, high = PRICE_RANGE
        add(
            np.isfinite(values) & (values > 0) & ((values < low) | (values > high)),
            name,
            "implausible_price",
            values,
            f"outside any market's prices (from {low:g} to {high:g})",
        )
    o, h, lo, c = (prices[n] for n in _PRICES)
    add(h < lo, "high", "high_below_low", h, "high is below low")
    add((o < lo) | (o > h), "open", "open_outside_range", o, "open outside low-high")
    add((c < lo) | (c > h), "close", "close_outside_range", c, "close outside low-high")
    volume = _column(frame, "volume")
    if volume is not None:
        add(
            ~np.isfinite(volume) | (volume < 0),
            "volume",
            "bad_volume",
            volume,
            "missing, infinite or negative",
        )
        _zero_runs(volume, zero_volume_run, add)
    _outliers(c, outlier_zscore, add)
    if calendar is not None and bar_size is not None and len(ts) and not naive:
        _session_checks(ts, bar_size_ns(bar_size), calendar, problems)

    report = pd.DataFrame(problems, columns=[c for c in _REPORT_COLUMNS if c != "line"])
    origin = origin_of(frame)
    lines = (
        origin.lines[report["row"].to_numpy(dtype=np.intp)]
        if origin is not None
        else np.full(len(report), pd.NA)
    )
    report.insert(1, "line", pd.Series(lines, index=report.index, dtype="Int64"))
    report["timestamp"] = pd.to_datetime(report["timestamp"].astype("int64"), utc=True)
    return report.sort_values(["row", "kind"], kind="stable").reset_index(drop=True)


def count_gaps(
    ts_ns: npt.NDArray[np.int64], bar_size: str, calendar: SessionCalendar
) -> tuple[int, int]:
    """Return how many gaps sorted bar times have within the sessions, and how much is missing.

    The second number counts missing bars, or missing sessions for daily bars; both are 0 for
    weekly and longer bars, which are not checked.
    """
    if not len(ts_ns):
        return 0, 0
    problems: list[tuple[int, int, str, str, float, str]] = []
    _session_checks(np.asarray(ts_ns, dtype=np.int64), bar_size_ns(bar_size), calendar, problems)
    gaps = [p for p in problems if p[3] == "gap"]
    return len(gaps), int(sum(p[4] for p in gaps))


def _zero_runs(volume: npt.NDArray[np.float64], shortest: int, add: _Add) -> None:
    zero = np.concatenate([[False], volume == 0, [False]])
    edges = np.flatnonzero(np.diff(zero.astype(np.int8)))
    for start, stop in zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True):
        if stop - start >= shortest:
            rows = np.arange(start, stop)
            add(
                rows,
                "volume",
                "zero_volume_run",
                volume,
                f"{stop - start} bars in a row with zero volume",
            )


def _outliers(close: npt.NDArray[np.float64], threshold: float, add: _Add) -> None:
    good = np.isfinite(close) & (close > 0)
    if good.sum() < 3:
        return
    rows = np.flatnonzero(good)
    r = np.diff(np.log(close[rows]))
    median = np.median(r)
    mad = np.median(np.abs(r - median)) * 1.4826
    if not mad > 0:
        return
    z = (r - median) / mad
    big = np.abs(z) > threshold
    # A one-bar spike makes two big returns of opposite signs: report the spike only.
    reversal = np.zeros(len(r), dtype=bool)
    reversal[1:] = big[:-1] & big[1:] & (np.sign(z[:-1]) != np.sign(z[1:]))
    flagged = rows[1:][big & ~reversal]
    values = np.full(len(close), np.nan)
    values[rows[1:]] = z
    add(
        flagged,
        "close",
        "outlier",
        values,
        f"close-to-close return beyond {threshold:g} robust standard deviations (value: z)",
    )


def _calendar_name(calendar: SessionCalendar) -> str:
    """The calendar as a reader knows it: the exchange's code, or the days it opens."""
    if calendar.source == "exchange_calendars":
        return "XNYS"  # the only exchange_calendars calendar in use (USEquityCalendar)
    if calendar.source == "weekdays":
        return "the weekday calendar (Monday to Friday)"
    return calendar.source


def _session_checks(
    ts: npt.NDArray[np.int64],
    bar_ns: int,
    calendar: SessionCalendar,
    problems: list[tuple[int, int, str, str, float, str]],
) -> None:
    order = np.argsort(ts, kind="stable")
    sorted_ts = ts[order]
    sessions = calendar.sessions_between(int(sorted_ts[0]), int(sorted_ts[-1]))
    where = sessions.locate(sorted_ts)
    daily = bar_ns >= 86_400 * 10**9
    if daily:  # a daily bar belongs to the session of its local date
        local = pd.to_datetime(sorted_ts, utc=True).tz_convert(calendar.timezone)
        days = local.normalize().tz_localize(None).to_numpy().astype("datetime64[D]")
        where = np.searchsorted(sessions.day, days)
        where = np.where(
            (where < len(sessions.day))
            & (sessions.day[np.minimum(where, len(sessions.day) - 1)] == days),
            where,
            -1,
        )
        if bar_ns > 86_400 * 10**9:
            return  # weekly and longer bars: no gap check
    outside = np.flatnonzero(where < 0)
    for k in outside.tolist():
        i = int(order[k])
        problems.append(
            (
                i,
                int(ts[i]),
                "timestamp",
                "outside_session",
                float("nan"),
                f"not in a trading session of {_calendar_name(calendar)} (e.g. a weekend or "
                "a holiday)",
            )
        )
    inside = where >= 0
    if not inside.any():
        return
    first_s, last_s = int(where[inside][0]), int(where[inside][-1])
    present = where[inside]
    rows_in = order[inside]
    if daily:
        have = np.zeros(len(sessions.day), dtype=bool)
        have[present] = True
        missing = np.flatnonzero(~have[first_s : last_s + 1]) + first_s
        if not len(missing):
            return
        for run in np.split(missing, np.flatnonzero(np.diff(missing) != 1) + 1):
            after = int(np.searchsorted(present, run[-1], side="right"))  # the next bar there
            i = int(rows_in[min(after, len(rows_in) - 1)])
            start = pd.Timestamp(str(sessions.day[run[0]]), tz=calendar.timezone)
            problems.append(
                (
                    i,
                    int(start.value),
                    "timestamp",
                    "gap",
                    float(len(run)),
                    f"{len(run)} missing session(s) from {sessions.day[run[0]]} to "
                    f"{sessions.day[run[-1]]}",
                )
            )
        return
    # Intraday: the expected times are each session's open plus whole bars, before its close.
    expected = []
    for s in range(first_s, last_s + 1):
        expected.append(np.arange(sessions.open_ns[s], sessions.close_ns[s], bar_ns))
    grid = np.concatenate(expected)
    grid = grid[(grid >= sorted_ts[inside][0]) & (grid <= sorted_ts[inside][-1])]
    absent = ~np.isin(grid, sorted_ts)
    if not absent.any():
        return
    missing_ts = grid[absent]
    # A run of missing bars is contiguous in time: it never spans a session's close.
    breaks = np.flatnonzero(np.diff(missing_ts) != bar_ns) + 1
    for run in np.split(missing_ts, breaks):
        after = int(np.searchsorted(sorted_ts, run[-1], side="right"))  # the next bar there
        i = int(order[min(after, len(order) - 1)])
        first = pd.Timestamp(int(run[0]), unit="ns", tz="UTC")
        last = pd.Timestamp(int(run[-1]), unit="ns", tz="UTC")
        problems.append(
            (
                i,
                int(run[0]),
                "timestamp",
                "gap",
                float(len(run)),
                f"{len(run)} missing bar(s) from {first} to {last}",
            )
        )


class CleanResult(NamedTuple):
    """What :func:`clean_bars` returns."""

    frame: pd.DataFrame
    """The cleaned bars, indexed by UTC ``timestamp``."""
    changes: pd.DataFrame
    """Every change made, with columns ``row``, ``timestamp``, ``kind``, ``action``,
    ``column``, ``old`` and ``new`` (``row`` is -1 for an inserted bar)."""


def clean_bars(
    frame: pd.DataFrame,
    report: pd.DataFrame,
    actions: Mapping[str, Action],
    *,
    tz: str | None = None,
    bar_size: str | None = None,
) -> CleanResult:
    """Apply the chosen action to each kind of problem in ``report``; list every change.

    Actions, per kind (a kind of :data:`~ibkrfw.data.validation.PROBLEM_KINDS` present in the
    report but missing from ``actions`` counts as ``"raise"``):

    * ``"raise"``: refuse, with a :class:`~ibkrfw.DataError` naming the first such problem;
    * ``"drop"``: remove the row (for duplicates, every row after the first at that time);
    * ``"ffill"``: carry the previous good bar forward: the row becomes a flat bar at the
      previous close with zero volume (for gaps: such bars are inserted at the missing times,
      which needs ``bar_size``). A first row with nothing before it is dropped instead;
    * ``"keep"``: leave the rows as they are (gaps, zero-volume runs, outliers, rows outside
      sessions, order problems).

    Raises:
        DataError: for the first problem whose action is ``"raise"``, naming its line in the
            file when ``frame`` was read by :func:`~ibkrfw.data.read_bars_csv` (its row
            otherwise).
        ConfigError: for an action a kind does not allow (e.g. forward-filling a duplicate).
    """
    for kind, action in actions.items():
        allowed = _ALLOWED.get(kind)
        if allowed is None:
            raise ConfigError(f"unknown problem kind {kind!r}; known: {list(PROBLEM_KINDS)}")
        if action not in allowed:
            raise ConfigError(f"{kind} problems can be {', '.join(allowed)}, not {action!r}")
    origin = origin_of(frame)
    for problem in report.itertuples(index=False):
        kind = str(problem.kind)
        if actions.get(kind, "raise") == "raise":
            line = getattr(problem, "line", pd.NA)
            where = f"row {problem.row}" if pd.isna(line) else f"line {line}"
            if origin is not None:
                where = f"{origin.source} {where}"
            message = (
                f"{where} ({problem.timestamp}), column {problem.column}: {kind}: {problem.detail}"
            )
            choices = [a for a in _ALLOWED.get(kind, ()) if a != "raise"]
            if not choices:  # naive times: only a time zone helps
                raise DataError(
                    message.removesuffix("; give tz="),
                    fix="give the time zone they are in, e.g. {tz}",
                    settings={"tz": "America/New_York"},
                )
            example = " or ".join(repr(a) for a in choices)
            raise DataError(
                message,
                fix=f"choose an action for {kind!r} ({example}), e.g. {{actions}}, or fix the data",
                settings={"actions": {kind: choices[0]}},
            )
    index, _ = _times(frame, tz)
    columns = {name: _column(frame, name) for name in (*_PRICES, "volume")}
    if columns["volume"] is None:
        columns["volume"] = np.full(len(frame), np.nan)
    data = pd.DataFrame(columns, index=index)
    data.index.name = "timestamp"
    changes: list[tuple[int, object, str, str, str, float, float]] = []
    drop: set[int] = set()
    fill: dict[int, str] = {}
    gaps: list[str] = []
    for row, kind in zip(report["row"].tolist(), report["kind"].astype(str), strict=True):
        action = actions[kind]
        if action == "keep":
            continue
        if kind == "gap":
            gaps.append(kind)
        elif action == "drop":
            drop.add(row)
        else:
            fill.setdefault(row, kind)
    close = data["close"].to_numpy(copy=True)
    values = data.to_numpy(copy=True)
    keep = np.ones(len(data), dtype=bool)
    last_good: float | None = None
    for row in range(len(data)):
        stamp = data.index[row]
        if row in drop:
            keep[row] = False
            changes.append(
                (row, stamp, _kind_of(report, row), "drop", "*", float(close[row]), float("nan"))
            )
            continue
        if row in fill:
            if last_good is None:
                keep[row] = False
                changes.append(
                    (row, stamp, fill[row], "drop", "*", float(close[row]), float("nan"))
                )
                continue
            changes.append((row, stamp, fill[row], "ffill", "*", float(close[row]), last_good))
            values[row] = [last_good] * 4 + [0.0]
        last_good = float(values[row][3])
    cleaned = pd.DataFrame(values[keep], index=data.index[keep], columns=data.columns)
    if gaps:
        cleaned, inserted = _fill_gaps(cleaned, report, bar_size)
        changes.extend(inserted)
    change_frame = pd.DataFrame(changes, columns=_CHANGE_COLUMNS)
    return CleanResult(cleaned, change_frame)


def _kind_of(report: pd.DataFrame, row: int) -> str:
    kinds = report.loc[report["row"] == row, "kind"]
    return ",".join(sorted(set(kinds.astype(str)))) if len(kinds) else ""


def _fill_gaps(
    frame: pd.DataFrame, report: pd.DataFrame, bar_size: str | None
) -> tuple[pd.DataFrame, list[tuple[int, object, str, str, str, float, float]]]:
    if bar_size is None:
        raise ConfigError("forward-filling gaps needs the bar_size")
    step = bar_size_ns(bar_size)
    if step >= 86_400 * 10**9:
        raise ConfigError("gaps of daily or longer bars are missing sessions: keep them")
    inserted: list[tuple[int, object, str, str, str, float, float]] = []
    rows = []
    gaps = report.loc[report["kind"] == "gap"]
    for first, count in zip(gaps["timestamp"], gaps["value"].astype(int), strict=True):
        before = frame.loc[: first - pd.Timedelta(1, "ns")]
        if before.empty:
            continue
        price = float(before["close"].iloc[-1])
        for stamp in pd.date_range(first, periods=count, freq=pd.Timedelta(step, "ns")):
            rows.append((stamp, price))
            inserted.append((-1, stamp, "gap", "ffill", "*", float("nan"), price))
    if rows:
        extra = pd.DataFrame(
            {
                "open": [p for _, p in rows],
                "high": [p for _, p in rows],
                "low": [p for _, p in rows],
                "close": [p for _, p in rows],
                "volume": 0.0,
            },
            index=pd.DatetimeIndex([s for s, _ in rows], name="timestamp"),
        )
        frame = pd.concat([frame, extra]).sort_index(kind="stable")
    return frame, inserted
