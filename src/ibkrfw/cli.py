"""The ``ibkrfw`` command."""

from __future__ import annotations

import argparse
import importlib
import sys
import types
from collections.abc import Sequence
from decimal import Decimal
from typing import get_type_hints

import attrs

from ibkrfw._version import __version__
from ibkrfw.errors import ConfigError, IBKRFWError
from ibkrfw.model.instruments import Stock
from ibkrfw.ports import DataFeed
from ibkrfw.strategy import Strategy

__all__ = ["main"]

BUILTIN_STRATEGIES = {"sma_crossover": "ibkrfw.strategies:MovingAverageCrossover"}


def _load_strategy_class(spec: str) -> type[Strategy]:
    target = BUILTIN_STRATEGIES.get(spec, spec)
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        names = ", ".join(BUILTIN_STRATEGIES)
        raise ConfigError(f"strategy must be 'module:Class' or one of {names}; got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import {module_name!r}: {exc}") from None
    cls = getattr(module, attr, None)
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise ConfigError(f"{target!r} is not a Strategy subclass")
    return cls


def _convert(value: str, kind: object) -> object:
    if isinstance(kind, types.UnionType):
        options = [k for k in kind.__args__ if k is not type(None)]
        if value.lower() == "none" and len(options) < len(kind.__args__):
            return None
        kind = options[0] if len(options) == 1 else str
    if kind is bool:
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected true or false, got {value!r}")
    if kind in (int, float, Decimal, str):
        return kind(value)
    return value


def _parameters(cls: type[Strategy], pairs: Sequence[str]) -> dict[str, object]:
    hints = get_type_hints(cls) if attrs.has(cls) else {}
    fields = {f.name: f for f in attrs.fields(cls)} if attrs.has(cls) else {}
    params: dict[str, object] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or name not in fields or not fields[name].init:
            known = ", ".join(n for n, f in fields.items() if f.init and not n.startswith("_"))
            raise ConfigError(f"bad parameter {pair!r}: expected NAME=VALUE with NAME in: {known}")
        try:
            params[name] = _convert(raw, hints.get(name, str))
        except (ValueError, ArithmeticError) as exc:
            raise ConfigError(f"bad value for {name}: {exc}") from None
    return params


def _feed(args: argparse.Namespace) -> DataFeed:
    from ibkrfw.data.sample import sample_feed
    from ibkrfw.sim.feeds import CSVFeed

    symbols = [s for s in (args.symbols or "").split(",") if s] or None
    if args.csv is None:
        return sample_feed(symbols)
    if symbols is None:
        raise ConfigError("--csv needs --symbols (one symbol, or several with a symbol column)")
    instruments = [Stock(s) for s in symbols]
    target = instruments[0] if len(instruments) == 1 else instruments
    return CSVFeed(args.csv, target, tz=args.tz)


def _backtest(args: argparse.Namespace) -> int:
    from ibkrfw.engine.engine import Engine
    from ibkrfw.sim.broker import SimBroker
    from ibkrfw.sim.commission import PerShareCommission

    cls = _load_strategy_class(args.strategy)
    strategy = cls(**_parameters(cls, args.param))
    commission = PerShareCommission(args.commission) if args.commission else None
    broker = SimBroker(args.cash, commission=commission)
    result = Engine(strategy, _feed(args), broker).run()
    print(f"{strategy!r}")
    print(result.stats.to_string())
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``ibkrfw`` command."""
    parser = argparse.ArgumentParser(prog="ibkrfw", description=__doc__)
    parser.add_argument("--version", action="version", version=f"ibkrfw {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
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
    bt.add_argument(
        "--csv", help="CSV of bars (timestamp, [symbol], open, high, low, close, volume)"
    )
    bt.add_argument(
        "--symbols", help="comma-separated symbols to trade (default: every sample one)"
    )
    bt.add_argument("--tz", help="time zone of naive timestamps in the CSV")
    bt.add_argument("--cash", default="100000", help="starting cash (default: 100000)")
    bt.add_argument("--commission", help="commission per share, e.g. 0.005 (default: none)")
    bt.set_defaults(func=_backtest)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``ibkrfw`` command with ``argv`` (default: the process arguments)."""
    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except IBKRFWError as exc:
        print(f"ibkrfw: error: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
