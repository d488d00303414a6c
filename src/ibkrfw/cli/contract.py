"""The ``ibkrfw contract`` command: search IB's contracts, or resolve one."""

from __future__ import annotations

import argparse
import difflib
import json
import sys
import time
from typing import TYPE_CHECKING, Any

from ibkrfw.cli._common import _connection_options

if TYPE_CHECKING:
    from ibkrfw.ibkr.lookup import ContractInfo, ContractMatch, TradingSession


def _search_text(text: str) -> str:
    """An argparse ``type`` for the search text: not empty."""
    if not text.strip():
        raise argparse.ArgumentTypeError(
            f"the search text {text!r} is empty: give the start of a symbol or a company "
            "name, e.g. ibkrfw contract AAPL"
        )
    return text.strip()


def _sec_type(text: str) -> str:
    """An argparse ``type`` for ``--sec-type``: one of IB's security types."""
    from ibkrfw.ibkr.lookup import SEC_TYPES

    if text not in SEC_TYPES:
        close = difflib.get_close_matches(text.upper(), sorted(SEC_TYPES), n=1, cutoff=0.5)
        hint = f"did you mean --sec-type {close[0]}? " if close else ""
        raise argparse.ArgumentTypeError(
            f"{text!r} is not one of IB's security types: {hint}give one of "
            f"{', '.join(sorted(SEC_TYPES))} (STK a stock, FUT a future, CASH forex)"
        )
    return text


def _exchange(text: str) -> str:
    """An argparse ``type`` for ``--exchange``: a name without spaces."""
    if not text or text != text.strip() or " " in text:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an exchange name: give one without spaces, e.g. --exchange NASDAQ"
        )
    return text


def _currency(text: str) -> str:
    """An argparse ``type`` for ``--currency``: three capital letters."""
    if not (len(text) == 3 and text.isalpha() and text.isupper()):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a currency code: give three capital letters, e.g. --currency USD"
        )
    return text


def _con_id(text: str) -> int:
    """An argparse ``type`` for ``--con-id``: a whole number above 0."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a contract id: give IB's whole number above 0, as a search "
            "lists it, e.g. --con-id 265598"
        )
    return value


def _pair(text: str, flag: str, top: float, example: str) -> tuple[float, float]:
    """``LOW,HIGH`` with ``0 <= LOW <= HIGH <= top``, or an argparse error naming ``flag``."""
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        low, high = -1.0, -2.0
    if not 0 <= low <= high <= top:
        bound = "" if top == float("inf") else f" <= {top:g}"
        raise argparse.ArgumentTypeError(
            f"{text!r} is not LOW,HIGH with 0 <= LOW <= HIGH{bound}: e.g. {flag} {example}"
        )
    return (low, high)


def _window(text: str) -> tuple[float, float]:
    """An argparse ``type`` for ``--moneyness``: ``LOW,HIGH``."""
    return _pair(text, "--moneyness", float("inf"), "0.9,1.1 keeps strikes within 10 % of --spot")


def _delta_window(text: str) -> tuple[float, float]:
    """An argparse ``type`` for ``--delta``: ``LOW,HIGH`` within 0 and 1."""
    return _pair(text, "--delta", 1.0, "0.2,0.4")


def _volatility(text: str) -> float:
    """An argparse ``type`` for ``--volatility``: an annualised fraction above 0."""
    import math

    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not (math.isfinite(value) and 0 < value < 10):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a volatility: give an annualised fraction, e.g. --volatility 0.25"
        )
    return value


def _days(text: str) -> tuple[int, int]:
    """An argparse ``type`` for ``--days``: ``LEAST,MOST`` whole days to expiry."""
    try:
        least, most = (int(part) for part in text.split(","))
    except ValueError:
        least, most = 1, 0
    if not 0 <= least <= most:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not LEAST,MOST days to expiry: e.g. --days 20,60"
        )
    return (least, most)


def _price(text: str) -> float:
    """An argparse ``type`` for ``--spot``: a positive price."""
    import math

    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a price: give the underlying's price, e.g. --spot 187.5"
        )
    return value


def _print_chains(args: argparse.Namespace, lookup: Any) -> int:
    from ibkrfw.errors import ConfigError
    from ibkrfw.ibkr.chains import option_chains

    if args.moneyness is not None and args.spot is None:
        raise ConfigError("--moneyness needs --spot: the underlying's price to compare with")
    if args.delta is not None and (args.spot is None or args.volatility is None):
        raise ConfigError(
            "--delta needs --spot and --volatility: the deltas are Black-Scholes on them, "
            "e.g. --spot 187.5 --volatility 0.25 --delta 0.2,0.4"
        )
    chains = option_chains(
        lookup, args.search, sec_type=args.sec_type or "STK", exchange=args.exchange,
        currency=args.currency, con_id=args.con_id,
    )  # fmt: skip
    filters = {
        "rights": args.right or ("C", "P"), "spot": args.spot, "moneyness": args.moneyness,
        "expiry_from": args.expiry_from, "expiry_to": args.expiry_to, "days": args.days,
        "volatility": args.volatility, "delta": args.delta,
    }  # fmt: skip
    tables = [(chain, chain.frame(**filters)) for chain in chains]
    if args.json:
        print(json.dumps([
            {"exchange": c.exchange, "trading_class": c.trading_class,
             "multiplier": str(c.multiplier), "underlying_con_id": c.underlying_con_id,
             "options": t.to_dict(orient="records")}
            for c, t in tables
        ], indent=2))  # fmt: skip
    else:
        for chain, table in tables:
            span = f" {chain.expirations[0]}-{chain.expirations[-1]}" if chain.expirations else ""
            print(
                f"{chain.symbol} options, {chain.exchange} (class {chain.trading_class}, "
                f"x{chain.multiplier}): {len(chain.expirations)} expiries{span}, "
                f"{len(chain.strikes)} strikes, {len(table)} kept"
            )
            if len(table):
                print(table.to_string(index=False))
    if not any(len(t) for _, t in tables):
        print("ibkrfw: no option of the chain is within the filters", file=sys.stderr)
        return 1
    return 0


def _contract(args: argparse.Namespace) -> int:
    from ibkrfw.config import _check_state_dir, load_settings
    from ibkrfw.errors import ConfigError
    from ibkrfw.ibkr.lookup import ContractCache, ContractLookup

    if args.search is None and args.con_id is None:
        raise ConfigError(
            "give the text to search for (e.g. ibkrfw contract AAPL), or --con-id with --resolve"
        )
    if args.con_id is not None and not (args.resolve or args.chain):
        raise ConfigError(
            f"--con-id {args.con_id} names one contract: add --resolve to see its details"
        )
    chain_only = [
        name
        for name in (
            "right", "spot", "moneyness", "expiry_from", "expiry_to", "days", "volatility",
            "delta",
        )
        if getattr(args, name) is not None
    ]  # fmt: skip
    if chain_only and not args.chain:
        raise ConfigError(
            f"--{chain_only[0].replace('_', '-')} filters an option chain: add --chain"
        )
    if args.chain and args.resolve:
        raise ConfigError("--chain and --resolve are two answers: give one")
    ibkr: dict[str, object] = {}
    if args.port is not None:
        ibkr["port"] = args.port
    if args.client_id is not None:
        ibkr["client_id"] = args.client_id
    run = {"state_dir": args.state_dir} if args.state_dir is not None else {}
    settings = load_settings(
        args.config, overrides={"ibkr": ibkr, "run": run}, override_source="the command line"
    )
    cache = None
    if not args.no_cache:
        _check_state_dir(
            settings, "--state-dir" if args.state_dir else args.config or "the default"
        )
        cache = ContractCache.in_directory(settings.run.state_dir)
    started = time.time()
    filters = {"sec_type": args.sec_type, "exchange": args.exchange, "currency": args.currency}
    with ContractLookup.open(settings.ibkr, cache=cache) as lookup:
        if args.chain:
            return _print_chains(args, lookup)
        if args.resolve:
            info = lookup.resolve(args.search, con_id=args.con_id, refresh=args.refresh, **filters)
            found: list[Any] = [info]
        else:
            found = lookup.search(args.search, refresh=args.refresh, **filters)
    if cache is not None and cache.problem is not None:
        print(f"ibkrfw: warning: {cache.problem}", file=sys.stderr)
    if args.resolve:
        _print_info(found[0], args.json)
    elif args.json:
        print(json.dumps([m.to_dict() for m in found], indent=2))
    elif found:
        _print_table(found)
    if found and found[0].fetched_at_s < started - 1:
        age = _age(started - found[0].fetched_at_s)
        print(
            f"ibkrfw: from the contract cache, {age} old (--refresh asks IB again)",
            file=sys.stderr,
        )
    if not found:
        said = ", ".join(f"--{k.replace('_', '-')} {v}" for k, v in filters.items() if v)
        print(
            f"ibkrfw: no match for {args.search!r}{f' ({said})' if said else ''}",
            file=sys.stderr,
        )
        return 1
    return 0


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _print_table(matches: list[ContractMatch]) -> None:
    header = ("CON ID", "SYMBOL", "TYPE", "EXCHANGE", "CURRENCY", "DERIVATIVES", "DESCRIPTION")
    rows = [header] + [
        (str(m.con_id), m.symbol, m.sec_type, m.primary_exchange, m.currency,
         ",".join(m.derivative_sec_types), m.description)
        for m in matches
    ]  # fmt: skip
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


def _session(session: TradingSession, zone: str) -> str:
    """A session in the contract's own time zone: ``Mon 2026-12-07 09:30 - 16:00``."""
    import datetime as dt
    from zoneinfo import ZoneInfo

    start, end = (
        dt.datetime.fromtimestamp(ns / 1e9, tz=ZoneInfo(zone))
        for ns in (session.start_ns, session.end_ns)
    )
    until = f"{end:%H:%M}" if end.date() == start.date() else f"{end:%a %Y-%m-%d %H:%M}"
    return f"{start:%a %Y-%m-%d %H:%M} - {until}"


def _print_info(info: ContractInfo, as_json: bool) -> None:
    if as_json:
        print(json.dumps(info.to_dict(), indent=2))
        return
    inst = info.instrument
    primary = getattr(inst, "primary_exchange", "")
    lines = [
        ("instrument", repr(inst)),
        ("id", inst.id),
        ("con id", str(info.con_id)),
        ("name", info.long_name),
        ("type", inst.asset_class.value),
        ("exchange", inst.exchange + (f" (listed on {primary})" if primary else "")),
        ("currency", inst.currency),
        ("min tick", str(inst.tick_size)),
        ("multiplier", str(inst.multiplier)),
        ("time zone", info.time_zone or "(not given)"),
        ("exchanges", ", ".join(info.valid_exchanges)),
    ]
    for title, hours in (
        ("trading hours", info.trading_hours),
        ("liquid hours", info.liquid_hours),
    ):
        shown = [_session(s, info.time_zone) for s in hours] or ["(not given)"]
        lines += [(title if i == 0 else "", text) for i, text in enumerate(shown)]
    for name, value in lines:
        print(f"{name:<15}{value}".rstrip())


def add_parser(sub: Any) -> None:
    """Add the ``contract`` command to ``sub``."""
    con = sub.add_parser(
        "contract",
        help="search IB's contracts by symbol or name, or resolve one into an instrument",
        description="List the contracts TWS/Gateway knows whose symbol or name starts with "
        "SEARCH (reqMatchingSymbols, at most 16), or, with --resolve, the one contract SEARCH "
        "names with its details (reqContractDetails). Several matches are listed, never "
        "guessed. With --chain, the option chains IB lists on the underlying SEARCH "
        "(reqSecDefOptParams), filtered. Answers are kept a day in contracts.json in the "
        "state directory. Exit codes: 0 found, 1 no match, 2 an ambiguous symbol or another "
        "error.",
    )
    con.add_argument(
        "search", nargs="?", type=_search_text, metavar="SEARCH", help="a symbol or name start"
    )
    _connection_options(con, "a TOML file with an [ibkr] table (and [run] state_dir)")
    con.add_argument("--sec-type", type=_sec_type, help="only this security type, e.g. STK")
    con.add_argument(
        "--exchange", type=_exchange, help="only contracts listed on this exchange, e.g. NASDAQ"
    )
    con.add_argument("--currency", type=_currency, help="only contracts in this currency")
    con.add_argument(
        "--resolve", action="store_true", help="resolve SEARCH into one instrument, with details"
    )
    con.add_argument(
        "--con-id", type=_con_id, help="with --resolve: the contract id a search listed"
    )
    con.add_argument("--json", action="store_true", help="print JSON instead of a table")
    con.add_argument(
        "--refresh", action="store_true", help="ask IB even if the cache has a recent answer"
    )
    con.add_argument(
        "--state-dir", help="where the cache is kept (default: [run] state_dir, ibkrfw-state)"
    )
    con.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    chain = con.add_argument_group("option chains (reqSecDefOptParams)")
    chain.add_argument(
        "--chain", action="store_true", help="list the options IB lists on SEARCH (an underlying)"
    )
    chain.add_argument("--right", choices=("C", "P"), help="only calls (C) or puts (P)")
    chain.add_argument("--expiry-from", metavar="YYYYMMDD", help="the first expiry to list")
    chain.add_argument("--expiry-to", metavar="YYYYMMDD", help="the last expiry to list")
    chain.add_argument(
        "--days", type=_days, metavar="LEAST,MOST", help="expiries this many days away, e.g. 20,60"
    )
    chain.add_argument("--spot", type=_price, help="the underlying's price (adds moneyness)")
    chain.add_argument(
        "--moneyness", type=_window, metavar="LOW,HIGH",
        help="strikes with strike/spot in LOW..HIGH, e.g. 0.9,1.1 (needs --spot)",
    )  # fmt: skip
    chain.add_argument(
        "--volatility", type=_volatility, help="adds Black-Scholes deltas at it, e.g. 0.25"
    )
    chain.add_argument(
        "--delta", type=_delta_window, metavar="LOW,HIGH",
        help="options with |delta| in LOW..HIGH, e.g. 0.2,0.4 (needs --spot, --volatility)",
    )  # fmt: skip
    con.set_defaults(func=_contract)
