"""The ``ibkrfw download`` command."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ibkrfw.cli._common import (
    _connection_options,
    _ibkr_config,
    _store,
    _symbol_list,
)
from ibkrfw.model.instruments import Stock

if TYPE_CHECKING:
    pass


def _download(args: argparse.Namespace) -> int:
    import pandas as pd

    from ibkrfw.ibkr import IBClient
    from ibkrfw.ibkr.download import HistoryDownloader

    config = _ibkr_config(args)
    symbols = _symbol_list(args.symbols) or []

    def when(text: str | None, tz: str) -> int:
        stamp = pd.Timestamp.now(tz="UTC") if text is None else pd.Timestamp(text)
        if stamp.tzinfo is None:
            stamp = stamp.tz_localize(tz)
        return int(stamp.value)

    client = IBClient(config)
    client.connect()
    try:
        with _store(args, create=True) as store:
            downloader = HistoryDownloader(client, store, progress=not args.quiet)
            for symbol in symbols:
                inst = Stock(symbol)
                report = downloader.download(
                    inst, args.bar_size, when(args.start, inst.timezone),
                    when(args.end, inst.timezone), what_to_show=args.what, use_rth=args.rth,
                )  # fmt: skip
                print(
                    f"{inst.id} {report.bar_size}: {report.bars} bars in {report.chunks} "
                    f"request(s), {report.skipped} already stored, {report.retries} retried"
                )
    finally:
        client.close()
    return 0


def add_parser(sub: Any) -> None:
    """Add the ``download`` command to ``sub``."""
    dl = sub.add_parser(
        "download",
        help="download historical bars from TWS/Gateway into a store, within IB's pacing",
        description="Download bars in requests IB accepts, paced to its rules, retried after "
        "pacing violations, into a SQLite file (or Parquet directory); run it again to resume.",
    )
    _connection_options(dl, "a TOML file with an [ibkr] table")
    dl.add_argument("--symbols", required=True, help="comma-separated stock symbols")
    dl.add_argument("--bar-size", required=True, help="e.g. 1min, 5min, 1h, 1d")
    dl.add_argument("--start", required=True, help="first time (naive: the exchange's zone)")
    dl.add_argument("--end", help="end, excluded (default: now)")
    dl.add_argument("--store", required=True, help="the SQLite file (or Parquet directory)")
    dl.add_argument("--parquet", action="store_true", help="the store is a Parquet directory")
    dl.add_argument("--what", default="TRADES", help="whatToShow (default TRADES)")
    dl.add_argument("--rth", action="store_true", help="regular trading hours only")
    dl.add_argument("--quiet", action="store_true", help="no progress bar")
    dl.set_defaults(func=_download)
