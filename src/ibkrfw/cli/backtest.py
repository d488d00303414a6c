"""The ``ibkrfw backtest`` command."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ibkrfw.cli._common import (
    BUILTIN_STRATEGIES,
    _add_backtest_data_options,
    _feed,
    _load_strategy_class,
    _make_strategy,
    _output_file,
    _parameters,
)

if TYPE_CHECKING:
    pass


def _bar_size_text(bar_ns: int | None) -> str:
    """A bar length in words: ``1 day``, ``5 min``, ``30 s``."""
    if not bar_ns:
        return "unknown"
    seconds = bar_ns // 1_000_000_000
    for unit, length in (("week", 604_800), ("day", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= length and seconds % length == 0:
            count = seconds // length
            plural = "s" if count > 1 and unit in ("week", "day") else ""
            return f"{count} {unit}{plural}"
    return f"{seconds} s"


def _backtest(args: argparse.Namespace) -> int:
    from ibkrfw.engine.engine import Engine
    from ibkrfw.model.orders import OrderStatus
    from ibkrfw.sim.broker import SimBroker
    from ibkrfw.sim.commission import PerShareCommission

    cls = _load_strategy_class(args.strategy)
    strategy = _make_strategy(cls, _parameters(cls, args.param))
    feed = _feed(args)
    commission = PerShareCommission(args.commission) if args.commission else None
    broker = SimBroker(args.cash, commission=commission)
    result = Engine(strategy, feed, broker).run(progress=None)  # long runs only
    summary = result.summary()
    instruments = feed.instruments
    tz = instruments[0].timezone if instruments else "UTC"
    source = "the sample data shipped with ibkrfw" if args.csv is None else f"CSV {args.csv}"
    header = {
        "Strategy": repr(strategy),
        "Data": source,
        "Symbols": ", ".join(i.symbol for i in instruments),
        "Bar size": _bar_size_text(feed.bar_ns),
        "First bar": f"{summary['Start']} ({tz})",
        "Last bar": f"{summary['End']} ({tz})",
        "Bars": summary["Bars"],
        "Starting cash": f"{args.cash:,.2f} {result.base_currency}",
    }
    width = max(map(len, header))
    for key, text in header.items():
        print(f"{key:<{width}}  {text}")
    print()
    print(summary.to_string())
    refused = [
        o for o in result.order_list if o.status in (OrderStatus.DENIED, OrderStatus.REJECTED)
    ]
    if refused:
        first = refused[0]
        local = first.created.tz_convert(tz)
        when = local.strftime("%Y-%m-%d %H:%M" if local.hour or local.minute else "%Y-%m-%d")
        print(
            f"\n{len(refused)} order(s) refused (denied by a risk rule or rejected by the "
            f"broker); the first, {first.side} {first.quantity} {first.instrument.symbol} "
            f"on {when}, {first.status.lower()}: {first.reason or 'no reason given'}"
        )
    if args.save:
        result.save(args.save)
        print(f"saved to {args.save}")
    if args.report:
        result.report(args.report)
        print(f"report written to {args.report}")
    return 0


def add_parser(sub: Any) -> None:
    """Add the ``backtest`` command to ``sub``."""
    bt = sub.add_parser(
        "backtest",
        help="run a strategy on the sample data or a CSV file and print its statistics",
        description="Run a strategy on the shipped sample data (default) or a CSV file.",
    )
    bt.add_argument(
        "--strategy",
        default="sma_crossover",
        help="'module:Class' of a Strategy subclass, or a built-in: "
        + ", ".join(BUILTIN_STRATEGIES)
        + " (default: sma_crossover)",
    )
    bt.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a strategy parameter (repeatable), e.g. -p fast=20",
    )
    _add_backtest_data_options(bt)
    bt.add_argument(
        "--save",
        type=_output_file,
        help="save the result to this file (ibkrfw report reads it)",
    )
    bt.add_argument("--report", type=_output_file, help="write an HTML report to this file")
    bt.set_defaults(func=_backtest)
