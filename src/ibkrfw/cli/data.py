"""The ``ibkrfw data`` commands: import, export, info, validate."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ibkrfw.cli._common import (
    _check_store,
    _store,
)
from ibkrfw.errors import ConfigError
from ibkrfw.model.instruments import Instrument, Stock

if TYPE_CHECKING:
    import pandas as pd

    from ibkrfw.data.store import BarStore


def _actions(pairs: Sequence[str]) -> dict[str, Any]:
    actions: dict[str, Any] = {}
    for pair in pairs:
        kind, sep, action = pair.partition("=")
        if not sep:
            raise ConfigError(f"bad --clean {pair!r}: expected KIND=ACTION, e.g. gap=keep")
        actions[kind] = action
    return actions


def _print_report(
    report: pd.DataFrame, limit: int = 50, *, bar_size: str | None = None, tz: str = "UTC"
) -> None:
    """Print a validation report: by file line (or row), daily bars' times as exchange dates."""
    import pandas as pd

    from ibkrfw.data.barsize import bar_size_ns

    counts = report["kind"].value_counts().sort_index()
    print(f"{len(report)} problem(s): " + ", ".join(f"{k} {n}" for k, n in counts.items()))
    # read from a file: its line numbers (as an editor shows them), not positions in a frame
    where = "row" if report["line"].isna().all() else "line"
    shown = report.drop(columns="line" if where == "row" else "row").head(limit)
    if shown["value"].isna().all():  # e.g. only bars outside sessions: no value to show
        shown = shown.drop(columns="value")
    if bar_size is not None and bar_size_ns(bar_size) >= 86_400 * 10**9:
        stamps = pd.to_datetime(shown["timestamp"], utc=True).dt.tz_convert(tz)
        shown = shown.assign(timestamp=stamps.dt.strftime("%Y-%m-%d")).rename(
            columns={"timestamp": "date"}
        )
    print(shown.to_string(index=False))
    if len(report) > limit:
        print(f"... and {len(report) - limit} more")


def _stage(text: str, rows: int) -> None:
    """Say on stderr which step of a long job runs (from the progress threshold of bars on)."""
    from ibkrfw._progress import min_bars

    if rows >= min_bars():
        print(f"ibkrfw: {text}", file=sys.stderr, flush=True)


def _data_import(args: argparse.Namespace) -> int:
    from ibkrfw.data import calendar_for, clean_bars, read_bars_csv, validate_bars

    instrument = Stock(args.symbol, currency=args.currency, exchange=args.exchange)
    _check_store(args, create=True)
    frame = read_bars_csv(args.csv, layout=args.layout, tz=args.tz)
    _stage(f"validating {len(frame):,} bars (prices, volumes, sessions)", len(frame))
    report = validate_bars(frame, bar_size=args.bar_size, calendar=calendar_for(instrument))
    if len(report):
        _print_report(report, bar_size=args.bar_size, tz=instrument.timezone)
        actions = _actions(args.clean)
        _stage(f"cleaning {len(report):,} problem(s)", len(frame))
        frame, changes = clean_bars(frame, report, actions, bar_size=args.bar_size)
        print(f"{len(changes)} change(s) made")
    _stage(f"writing {len(frame):,} bars to {args.store}", len(frame))
    with _store(args, create=True) as store:
        rows = store.write(instrument, args.bar_size, frame, progress=None)
    print(f"stored {rows} {args.bar_size} bar(s) of {instrument.id} in {args.store}")
    return 0


def _no_bars(store: BarStore, instrument: str, bar_size: str) -> ConfigError | None:
    """An error if the store holds no ``bar_size`` bars of ``instrument``, naming those it has."""
    from ibkrfw.data.barsize import normalize_bar_size

    sizes = [s.bar_size for s in store.series() if s.key == instrument]
    if normalize_bar_size(bar_size) in sizes:
        return None
    return ConfigError(
        f"the store has no {bar_size} bars of {instrument}; it has "
        + (", ".join(sizes) + " bars of it" if sizes else "none")
        + (f", e.g. --bar-size {sizes[0]}" if sizes else "")
    )


def _data_export(args: argparse.Namespace) -> int:
    from ibkrfw.data import write_bars_csv

    with _store(args, create=False) as store:
        instrument = store.instrument(args.instrument)
        problem = _no_bars(store, instrument.id, args.bar_size)
        if problem is not None:
            raise problem
        frame = store.read(instrument, args.bar_size, args.start, args.end)
    if frame.empty:
        raise ConfigError(f"the store has no {args.bar_size} bars of {args.instrument} there")
    rows = write_bars_csv(frame, args.csv)
    print(f"wrote {rows} bar(s) to {args.csv}")
    return 0


def _data_info(args: argparse.Namespace) -> int:
    with _store(args, create=False) as store:
        info = store.info()
    print(info.to_string(index=False) if len(info) else "the store is empty")
    return 0


def _data_validate(args: argparse.Namespace) -> int:
    from ibkrfw.data import calendar_for, read_bars_csv, validate_bars

    instrument: Instrument
    if args.csv is not None:
        instrument = Stock(args.symbol or "X")
        frame = read_bars_csv(args.csv, layout=args.layout, tz=args.tz)
    else:
        if args.store is None or args.instrument is None:
            raise ConfigError("validate needs a CSV file, or --store and --instrument")
        with _store(args, create=False) as store:
            instrument = store.instrument(args.instrument)
            problem = _no_bars(store, instrument.id, args.bar_size)
            if problem is not None:
                raise problem
            frame = store.read(instrument, args.bar_size, args.start, args.end)
    report = validate_bars(frame, bar_size=args.bar_size, calendar=calendar_for(instrument))
    if report.empty:
        print(f"{len(frame)} bar(s), no problems")
        return 0
    _print_report(report, bar_size=args.bar_size, tz=instrument.timezone)
    return 1


def add_parser(sub: Any) -> None:
    """Add the ``data`` command and its commands to ``sub``."""
    data = sub.add_parser(
        "data",
        help="import, export, validate stored bars and show what a store holds (info)",
        description="Keep bars in a store (a SQLite file, or a Parquet directory with "
        "--parquet): import CSV files after validating them, export them again, list what "
        "the store holds, and report the problems of a CSV file or of stored bars.",
    )
    commands = data.add_subparsers(
        dest="data_command", required=True, metavar="COMMAND", title="commands", help="one of:"
    )

    def store_options(p: argparse.ArgumentParser, required: bool = True) -> None:
        p.add_argument("--store", required=required, help="the SQLite file (or Parquet directory)")
        p.add_argument("--parquet", action="store_true", help="the store is a Parquet directory")

    imp = commands.add_parser(
        "import",
        help="validate a CSV file of bars and store it",
        description="Read a CSV file of one stock's bars, report its problems, clean those "
        "you name with --clean (other problems stop the import) and store the bars.",
    )
    imp.add_argument("csv", help="the CSV file")
    store_options(imp)
    imp.add_argument("--symbol", required=True, help="the stock's symbol")
    imp.add_argument("--exchange", default="SMART", help="the stock's exchange (default SMART)")
    imp.add_argument("--currency", default="USD", help="the stock's currency (default USD)")
    imp.add_argument("--bar-size", required=True, help="e.g. 1min, 1h, 1d")
    imp.add_argument("--layout", default="ibkrfw", help="ibkrfw, yahoo, ib, polygon, tradingview")
    imp.add_argument("--tz", help="time zone of times without a UTC offset")
    imp.add_argument(
        "--clean",
        action="append",
        default=[],
        metavar="KIND=ACTION",
        help="what to do with a kind of problem: drop, ffill, keep or raise (repeatable); "
        "problems of other kinds stop the import",
    )
    imp.set_defaults(func=_data_import)

    exp = commands.add_parser(
        "export",
        help="write stored bars to a CSV file",
        description="Write one instrument's stored bars of one size, optionally between two "
        "times, to a CSV file that 'ibkrfw data import' and 'ibkrfw backtest --csv' read.",
    )
    exp.add_argument("csv", help="the CSV file to write")
    store_options(exp)
    exp.add_argument("--instrument", required=True, help="the instrument key, e.g. ACME.SMART")
    exp.add_argument("--bar-size", required=True, help="the stored bar size, e.g. 1min, 1h, 1d")
    exp.add_argument("--start", help="first time (naive: the instrument's time zone)")
    exp.add_argument("--end", help="end time, excluded")
    exp.set_defaults(func=_data_export)

    info = commands.add_parser(
        "info",
        help="list what the store holds",
        description="List the instruments and bar sizes in a store, with their first and last "
        "bars and counts.",
    )
    store_options(info)
    info.set_defaults(func=_data_info)

    val = commands.add_parser(
        "validate",
        help="report the problems of a CSV file or of stored bars (exit 1 if any)",
        description="Check bars for NaN, non-positive prices, high below low, duplicates, "
        "times out of order, gaps against the session calendar and outliers; print every "
        "problem and exit with 1 if there is any, 0 if none.",
    )
    val.add_argument("csv", nargs="?", help="a CSV file (or give --store and --instrument)")
    store_options(val, required=False)
    val.add_argument("--instrument", help="the instrument key in the store")
    val.add_argument("--symbol", help="the stock a CSV file holds (for its sessions)")
    val.add_argument("--bar-size", required=True, help="e.g. 1min, 1h, 1d")
    val.add_argument(
        "--layout",
        default="ibkrfw",
        help="the CSV file's columns: ibkrfw (default), yahoo, ib, polygon, tradingview",
    )
    val.add_argument("--tz", help="time zone of times without a UTC offset")
    val.add_argument("--start", help="first stored time to check (naive: the instrument's zone)")
    val.add_argument("--end", help="end of the stored bars to check, excluded")
    val.set_defaults(func=_data_validate)
