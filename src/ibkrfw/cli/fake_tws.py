"""The ``ibkrfw fake-tws`` command."""

from __future__ import annotations

import argparse
from typing import Any

from ibkrfw.cli._common import (
    _port,
    _store,
    _symbol_list,
)
from ibkrfw.errors import ConfigError


def _fake_tws(args: argparse.Namespace) -> int:
    import logging
    import time

    # the fake's warnings (listening off loopback: anyone on the network can trade its account)
    # reach the terminal as one line each
    logging.basicConfig(level=logging.WARNING, format="ibkrfw: %(levelname)s: %(message)s")

    from ibkrfw.testing.faketws import FakeTWS

    kind = "cash" if args.cash_account else "margin"
    options = {"host": args.host, "port": args.port, "account": args.account, "account_kind": kind}
    if args.store is not None:
        if not args.instrument or not args.bar_size:
            raise ConfigError("--store needs --instrument and --bar-size")
        with _store(args, create=False) as store:
            tws = FakeTWS.from_store(store, args.instrument, args.bar_size, **options)
    else:
        tws = FakeTWS.from_sample(_symbol_list(args.sample, "--sample"), **options)
    with tws:
        print(
            f"fake TWS listening on {tws.host}:{tws.port} as account {tws.account} "
            f"(a {kind} account)",
            flush=True,
        )
        tws.play(args.interval)
        try:
            while not (args.exit_at_end and tws.market.finished):
                time.sleep(0.05)
        except KeyboardInterrupt:
            pass
    print("fake TWS stopped")
    return 0


def add_parser(sub: Any) -> None:
    """Add the ``fake-tws`` command to ``sub``."""
    fake = sub.add_parser(
        "fake-tws",
        help="run the fake TWS for manual testing with any TWS API client",
        description="Serve the TWS socket protocol on 127.0.0.1, replaying sample or stored "
        "bars, until interrupted (Ctrl-C).",
    )
    fake.add_argument("--host", default="127.0.0.1", help="address to listen on")
    fake.add_argument(
        "--port", type=_port(zero=True), default=7497, help="port (default 7497, 0: any)"
    )
    fake.add_argument(
        "--account", default="DU1234567", help="the account id it reports (default DU1234567)"
    )
    fake.add_argument(
        "--cash-account",
        action="store_true",
        help="a cash account (no borrowing, no short sales) instead of a Reg T margin account",
    )
    fake.add_argument("--sample", help="comma-separated sample symbols (default: all)")
    fake.add_argument("--store", help="replay bars from this SQLite file (or Parquet directory)")
    fake.add_argument("--parquet", action="store_true", help="the store is a Parquet directory")
    fake.add_argument("--instrument", action="append", help="an instrument key in the store")
    fake.add_argument("--bar-size", help="the stored bar size to replay")
    fake.add_argument(
        "--interval", type=float, default=1.0, help="seconds between replayed bars (default 1)"
    )
    fake.add_argument("--exit-at-end", action="store_true", help="stop when the bars run out")
    fake.set_defaults(func=_fake_tws)
