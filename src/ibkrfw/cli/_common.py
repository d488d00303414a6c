"""Helpers the commands of ``ibkrfw`` share: strategies, parameters, options, stores."""

from __future__ import annotations

import argparse
import collections.abc
import difflib
import importlib
import math
import os
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, cast, get_type_hints

import attrs

from ibkrfw.errors import ConfigError
from ibkrfw.model.instruments import Stock
from ibkrfw.ports import DataFeed
from ibkrfw.strategy import Strategy

if TYPE_CHECKING:
    from ibkrfw.data.store import BarStore


BUILTIN_STRATEGIES = {
    "sma_crossover": "ibkrfw.strategies:MovingAverageCrossover",
    "mean_reversion": "ibkrfw.strategies:MeanReversion",
    "ts_momentum": "ibkrfw.strategies:TimeSeriesMomentum",
    "xs_momentum": "ibkrfw.strategies:CrossSectionalMomentum",
    "target_weights": "ibkrfw.strategies:TargetWeights",
}


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
        found = sorted(
            name
            for name, value in vars(module).items()
            if isinstance(value, type) and issubclass(value, Strategy) and value is not Strategy
        )
        what = "is not a Strategy subclass" if cls is not None else f"{module_name} has no {attr}"
        close = difflib.get_close_matches(attr, found, n=1, cutoff=0.5)
        if close:
            hint = f"; did you mean {module_name}:{close[0]}?"
        elif found:
            hint = f"; its strategies: {', '.join(found)}"
        else:
            hint = f"; {module_name} defines no Strategy subclass"
        if cls is not None:
            what = f"{target!r} {what}"
        raise ConfigError(f"{what}{hint}")
    return cls


_KINDS: dict[object, tuple[str, str]] = {
    int: ("an int", "10"),
    float: ("a number", "0.5"),
    Decimal: ("a number", "0.5"),
    bool: ("true or false", "true"),
    str: ("text", "text"),
}


def _options(kind: object) -> tuple[list[object], bool]:
    """The types a parameter's annotation allows, and whether None is one of them."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        args = typing.get_args(kind)
        return [k for k in args if k is not type(None)], type(None) in args
    return [kind], False


def _describe(kind: object) -> tuple[str, str]:
    """What a value of ``kind`` is, in words, and an example of one."""
    options, nullable = _options(kind)
    kind = options[0] if len(options) == 1 else str
    if typing.get_origin(kind) is typing.Literal:
        choices = typing.get_args(kind)
        what = "one of " + ", ".join(str(c) for c in choices)
        example = str(choices[0])
    elif typing.get_origin(kind) in (dict, Mapping, collections.abc.Mapping):
        what, example = "KEY:VALUE pairs, comma-separated", "ACME:0.6,BOLT:0.3"
    else:
        what, example = _KINDS.get(kind, ("text", "text"))
    return (what + " or none" if nullable else what), example


def _convert(value: str, kind: object) -> object:
    """``value`` as the type ``kind`` names; ValueError saying what it is not."""
    options, nullable = _options(kind)
    if nullable and value.lower() == "none":
        return None
    kind = options[0] if len(options) == 1 else str
    what, _ = _describe(kind)
    if typing.get_origin(kind) is typing.Literal:
        if value not in [str(c) for c in typing.get_args(kind)]:
            raise ValueError(f"{value!r} is not {what}")
        return next(c for c in typing.get_args(kind) if str(c) == value)
    if kind is bool:
        if value.lower() in ("1", "true", "yes", "on"):
            return True
        if value.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{value!r} is not {what}")
    if typing.get_origin(kind) in (dict, Mapping, collections.abc.Mapping):
        key_kind, value_kind = typing.get_args(kind) or (str, str)
        items = [item.partition(":") for item in value.split(",") if item.strip()]
        if not items or any(not sep for _, sep, _ in items):
            raise ValueError(f"{value!r} is not {what}")
        return {_convert(k.strip(), key_kind): _convert(v.strip(), value_kind) for k, _, v in items}
    if kind in (int, float, Decimal):
        try:
            number = cast(Any, kind)(value)
        except (ValueError, ArithmeticError):
            raise ValueError(f"{value!r} is not {what}") from None
        if not math.isfinite(number):
            raise ValueError(f"{value!r} is not a finite number")
        return number
    return value


def _parameter_names(cls: type[Strategy]) -> list[str]:
    """The names a user can set on ``cls`` (its public attrs fields taken by ``__init__``)."""
    if not attrs.has(cls):
        return []
    return [f.name for f in attrs.fields(cls) if f.init and not f.name.startswith("_")]


def _unknown_parameter(cls: type[Strategy], name: str) -> ConfigError:
    known = _parameter_names(cls)
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    listed = ", ".join(known) or "none"
    return ConfigError(f"{cls.__name__} has no parameter {name!r}: {hint}its parameters: {listed}")


def _parameters(cls: type[Strategy], pairs: Sequence[str], option: str = "-p") -> dict[str, object]:
    """The strategy parameters of ``NAME=VALUE`` pairs, converted to the fields' types."""
    hints = get_type_hints(cls) if attrs.has(cls) else {}
    known = _parameter_names(cls)
    params: dict[str, object] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep:
            example = f"{known[0]}=..." if known else "NAME=VALUE"
            raise ConfigError(
                f"{option} {pair!r}: expected NAME=VALUE, e.g. {option} {example}; "
                f"parameters of {cls.__name__}: {', '.join(known) or 'none'}"
            )
        if name not in known:
            raise _unknown_parameter(cls, name)
        kind = hints.get(name, str)
        try:
            params[name] = _convert(raw, kind)
        except ValueError as exc:
            what, example = _describe(kind)
            raise ConfigError(
                f"parameter {name}: {exc} ({cls.__name__}.{name} is {what}, "
                f"e.g. {option} {name}={example})"
            ) from None
    return params


def _make_strategy(cls: type[Strategy], params: Mapping[str, object]) -> Strategy:
    """``cls(**params)``, its refusal of a value turned into a ConfigError naming them."""
    given = " ".join(f"-p {k}={v}" for k, v in params.items()) or "its defaults"
    try:
        return cls(**params)
    except (ValueError, TypeError) as exc:  # ConfigError is a ValueError
        raise ConfigError(f"{cls.__name__} refuses {given}: {exc}") from None


_MAX_CASH = Decimal("1e12")
# the largest --cash: as orders' MAX_QUANTITY (10**12), beyond any real account


def _money(
    option: str, *, positive: bool, maximum: Decimal | None = None
) -> Callable[[str], Decimal]:
    """An argparse ``type`` for an amount of money: a finite number, above (or at least) 0.

    With ``maximum``, amounts above it are refused too.
    """
    allowed = "a positive amount of money" if positive else "an amount of money of 0 or more"
    if maximum is not None:
        allowed += f" up to {maximum:,.0f}"

    def parse(text: str) -> Decimal:
        try:
            value = Decimal(text.replace("_", ""))
        except InvalidOperation:
            value = Decimal("NaN")
        if (
            not value.is_finite()
            or value < 0
            or (positive and value == 0)
            or (maximum is not None and value > maximum)
        ):
            raise argparse.ArgumentTypeError(
                f"must be {allowed}, e.g. {option} {100000 if positive else 0.005}; got {text!r}"
            )
        return value

    return parse


def _output_file(text: str) -> str:
    """An argparse ``type`` for a file to write: not a directory, in a directory that exists.

    Checked when the command starts, not after a long run has nothing to write to.
    """
    path = os.path.expanduser(text)
    if os.path.isdir(path):
        raise argparse.ArgumentTypeError(
            f"{text!r} is a directory: give a file name, e.g. {os.path.join(text, 'run.ibkrfw')}"
        )
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(
            f"the folder {folder!r} of {text!r} does not exist: create it first"
        )
    if not os.access(folder, os.W_OK):
        raise argparse.ArgumentTypeError(f"cannot write in the folder {folder!r} of {text!r}")
    return path


def _port(*, zero: bool) -> Callable[[str], int]:
    """An argparse ``type`` for a TCP port: 1 to 65535 (or 0, any free port, if ``zero``)."""
    low = 0 if zero else 1

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = -1
        if not low <= value <= 65535:
            raise argparse.ArgumentTypeError(
                f"a port is a whole number from {low} to 65535 (TWS paper: 7497, "
                f"IB Gateway paper: 4002); got {text!r}"
            )
        return value

    return parse


def _symbol_list(text: str | None, option: str = "--symbols") -> list[str] | None:
    """The symbols of a comma-separated option (spaces around names allowed); None if not given.

    Raises:
        ConfigError: if the option was given but names no symbol, or has an empty name.
    """
    if text is None:
        return None
    names = [name.strip() for name in text.split(",")]
    if not any(names):
        raise ConfigError(f"{option} {text!r} names no symbol: give e.g. {option} ACME,BOLT")
    if not all(names):
        raise ConfigError(
            f"{option} {text!r} has an empty name between commas: give e.g. {option} ACME,BOLT"
        )
    return names


def _feed(args: argparse.Namespace) -> DataFeed:
    from ibkrfw.data.sample import sample_feed
    from ibkrfw.sim.feeds import CSVFeed

    symbols = _symbol_list(args.symbols)
    if args.csv is None:
        if args.tz is not None:
            raise ConfigError(
                f"--tz {args.tz} is for the times of a --csv file; the sample data carries "
                "its own time zone: leave --tz out, or give --csv"
            )
        return sample_feed(symbols)
    if not os.path.isfile(args.csv):
        what = "is a directory, not a file" if os.path.isdir(args.csv) else "does not exist"
        raise ConfigError(f"--csv {args.csv}: {what}; give the path of a CSV file of bars")
    if symbols is None:
        raise ConfigError(
            f"--csv {args.csv} needs --symbols: the symbol of the stock whose bars the file "
            "holds (e.g. --symbols SPY), or, for a file with a symbol column, the symbols to "
            "read from it (e.g. --symbols SPY,QQQ)"
        )
    instruments = [Stock(s) for s in symbols]
    # one symbol reads a whole file of one stock, or that symbol's rows of a file that has a
    # symbol column (a list of one instrument is split by that column)
    one = len(instruments) == 1 and not _has_column(args.csv, "symbol")
    return CSVFeed(args.csv, instruments[0] if one else instruments, tz=args.tz)


def _has_column(path: str, column: str) -> bool:
    """Whether the header of the CSV file ``path`` names ``column`` (False if unreadable)."""
    import pandas as pd

    try:
        header = pd.read_csv(path, nrows=0)
    except Exception:  # the feed reads the file again and says what is wrong with it
        return False
    return column in header.columns


def _count(option: str, example: int) -> Callable[[str], int]:
    """An argparse ``type`` for a whole number of at least 1, naming ``option`` if not."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = 0
        if value < 1:
            raise argparse.ArgumentTypeError(
                f"must be a whole number of at least 1, e.g. {option} {example}; got {text!r}"
            )
        return value

    return parse


def _store(args: argparse.Namespace, *, create: bool) -> BarStore:
    """The store of ``--store``; one that does not exist is refused unless ``create``."""
    from ibkrfw.data import ParquetBarStore, SQLiteBarStore

    _check_store(args, create=create)
    if args.parquet:
        return ParquetBarStore(args.store)
    return SQLiteBarStore(args.store)


def _check_store(args: argparse.Namespace, *, create: bool) -> None:
    """Refuse a ``--store`` of the wrong kind, or (unless ``create``) one that does not exist."""
    path: str = args.store
    kind = "a Parquet directory" if args.parquet else "a SQLite file"
    if args.parquet and os.path.isfile(path):
        raise ConfigError(
            f"--store {path} is a file, not a Parquet directory; give a directory, or leave "
            "out --parquet for a SQLite file"
        )
    if not args.parquet and os.path.isdir(path):
        raise ConfigError(
            f"--store {path} is a directory, not a SQLite file; give the path of a file "
            "(e.g. --store bars.sqlite), or add --parquet for a Parquet directory"
        )
    if not create and not os.path.exists(path):
        raise ConfigError(
            f"--store {path} does not exist; give the path of {kind} that "
            "'ibkrfw data import' filled"
        )


def _ibkr_config(args: argparse.Namespace, **settings: Any) -> Any:
    """The ``[ibkr]`` settings of ``--config``, with ``--port`` and ``--client-id`` on top.

    The whole file is checked, and the environment's ``IBKRFW_*`` variables read.
    """
    from ibkrfw.config import load_settings

    if args.port is not None:
        settings["port"] = args.port
    if args.client_id is not None:
        settings["client_id"] = args.client_id
    overrides = {"ibkr": settings}
    return load_settings(args.config, overrides=overrides, override_source="the command line").ibkr


def _add_backtest_data_options(parser: argparse.ArgumentParser) -> None:
    """The data and account options of ``backtest`` and ``optimize`` (read by ``_feed``)."""
    parser.add_argument(
        "--csv", help="CSV of bars (timestamp, [symbol], open, high, low, close, volume)"
    )
    parser.add_argument(
        "--symbols", help="comma-separated symbols to trade (default: every sample one)"
    )
    parser.add_argument("--tz", help="time zone of naive timestamps in the CSV")
    parser.add_argument(
        "--cash",
        default="100000",
        type=_money("--cash", positive=True, maximum=_MAX_CASH),
        help="starting cash, above 0 (default: 100000)",
    )
    parser.add_argument(
        "--commission",
        type=_money("--commission", positive=False),
        help="commission per share, e.g. 0.005 (default: none)",
    )


def _connection_options(parser: argparse.ArgumentParser, config_help: str) -> None:
    """The options that say where TWS or IB Gateway is (read by :func:`_ibkr_config`)."""
    parser.add_argument("--config", help=config_help)
    parser.add_argument(
        "--port", type=_port(zero=False), help="TWS/Gateway port (overrides the file)"
    )
    parser.add_argument("--client-id", type=int, help="API client id (overrides the file)")


def _option(name: str, value: object) -> str:
    """Spell a library setting named in an error's fix as this command's option."""
    if name == "actions" and isinstance(value, Mapping):
        return " ".join(f"--clean {kind}={action}" for kind, action in value.items())
    return f"--{name.replace('_', '-')} {value}"
