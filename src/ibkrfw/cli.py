"""The ``ibkrfw`` command."""

from __future__ import annotations

import argparse
import collections.abc
import difflib
import importlib
import math
import os
import sys
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, cast, get_type_hints

import attrs

from ibkrfw._version import __version__
from ibkrfw.errors import ConfigError, DataError, IBKRFWError
from ibkrfw.model._decimal import float_decimal, to_decimal
from ibkrfw.model.instruments import Instrument, Stock
from ibkrfw.ports import DataFeed
from ibkrfw.strategy import Strategy

if TYPE_CHECKING:
    import pandas as pd

    from ibkrfw.data.store import BarStore
    from ibkrfw.sim.broker import SimBroker

__all__ = ["main"]

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
        raise ConfigError(f"{target!r} is not a Strategy subclass")
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


def _grid(
    cls: type[Strategy], pairs: Sequence[str], table: Mapping[str, Any]
) -> dict[str, list[Any]]:
    """The grid from a TOML table (values as typed there) and NAME=V1,V2 pairs (converted)."""
    hints = get_type_hints(cls) if attrs.has(cls) else {}
    known = _parameter_names(cls)
    space: dict[str, list[Any]] = {}
    for name, values in table.items():
        if name not in known:
            raise ConfigError(f"[optimize.grid] {name}: {_unknown_parameter(cls, name)}")
        space[name] = list(values) if isinstance(values, list) else [values]
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep:
            example = f"{known[0]}=..." if known else "NAME=V1,V2"
            raise ConfigError(
                f"-g {pair!r}: expected NAME=V1,V2,..., e.g. -g {example}; "
                f"parameters of {cls.__name__}: {', '.join(known) or 'none'}"
            )
        if name not in known:
            raise ConfigError(f"-g {pair}: {_unknown_parameter(cls, name)}")
        kind = hints.get(name, str)
        try:
            space[name] = [_convert(v.strip(), kind) for v in raw.split(",")]
        except ValueError as exc:
            what, example = _describe(kind)
            raise ConfigError(
                f"-g {pair}: {exc} ({cls.__name__}.{name} is {what}, "
                f"e.g. -g {name}={example},{example})"
            ) from None
    if not space:
        raise ConfigError(
            "nothing to search: give --grid NAME=V1,V2,... or a [optimize.grid] table"
        )
    return space


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


def _check_sets(
    cls: type[Strategy],
    sets: Sequence[Mapping[str, Any]],
    fixed: Mapping[str, object],
    from_table: set[str],
) -> None:
    """Build each set's strategy once (cheap: no data) so its validators refuse bad values now."""
    for values in sets:
        try:
            cls(**{**fixed, **values})
        except (ValueError, TypeError) as exc:  # ConfigError is a ValueError
            where = " ".join(
                f"[optimize.grid] {k}={v}" if k in from_table else f"-g {k}={v}"
                for k, v in values.items()
            )
            if fixed:
                where += " (with " + " ".join(f"-p {k}={v}" for k, v in fixed.items()) + ")"
            given = ", ".join(f"{k}={v}" for k, v in {**fixed, **values}.items())
            raise ConfigError(f"{where}: {cls.__name__} refuses {given}: {exc}") from None


def _walk_lengths(text: str) -> tuple[str, str]:
    """The TRAIN and TEST lengths of ``--walk-forward``, both checked to be above zero."""
    from ibkrfw.optimize import check_lengths

    fix = "give TRAIN:TEST, two lengths above zero, e.g. --walk-forward 730D:180D or 24MS:6MS"
    train, sep, test = text.partition(":")
    if not sep:
        raise ConfigError(f"--walk-forward {text}: {fix}")
    try:
        check_lengths(train, test)
    except ConfigError as exc:
        raise ConfigError(f"--walk-forward {text}: {exc}; {fix}") from None
    return train, test


def _heatmap_axes(text: str, space: Mapping[str, Any]) -> tuple[str, str, str]:
    """The X and Y parameters and the file of ``--heatmap X,Y=FILE.png``, checked."""
    axes, sep, path = text.partition("=")
    x, comma, y = axes.partition(",")
    swept = ", ".join(space)
    if not (sep and comma and path and x and y):
        raise ConfigError(f"--heatmap {text}: give X,Y=FILE.png, e.g. --heatmap fast,slow=heat.png")
    for name in (x, y):
        if name not in space:
            raise ConfigError(
                f"--heatmap {text}: {name!r} is not a swept parameter; the swept ones: {swept} "
                "(sweep it with -g NAME=V1,V2)"
            )
    if x == y:
        raise ConfigError(f"--heatmap {text}: X and Y must be two different swept parameters")
    return x, y, path


_COUNTS = frozenset({"Trades", "Open trades", "Bars", "Halts", "windows"})


def _formatted(frame: pd.DataFrame, keep: Sequence[str], *, tz: str, daily: bool) -> pd.DataFrame:
    """``frame`` as text for printing, its values unchanged elsewhere.

    Statistics are rounded by ``format_stats``' rules, counts whole, times in ``tz`` (dates
    alone if ``daily``); the columns in ``keep`` (the parameters) are shown as given.
    """
    import pandas as pd

    from ibkrfw.analysis import format_stats

    def row_text(row: pd.Series) -> pd.Series:
        values = {
            key: int(value)
            if key in _COUNTS and isinstance(value, float) and value.is_integer()
            else value
            for key, value in row.items()
        }
        texts = format_stats(pd.Series(values, dtype=object), tz=tz, daily=daily)
        for key in keep:
            if key in row.index:
                texts[key] = str(row[key])
        return texts

    return pd.DataFrame(
        [row_text(row) for _, row in frame.astype(object).iterrows()], index=frame.index
    )


def _optimize(args: argparse.Namespace) -> int:
    import tomllib
    from functools import partial

    from ibkrfw.optimize import Backtest, check_statistic, grid, run_sweep, sample, walk_forward
    from ibkrfw.sim.broker import SimBroker
    from ibkrfw.sim.commission import PerShareCommission

    table: dict[str, Any] = {}
    if args.config:
        try:
            with open(args.config, "rb") as handle:
                table = dict(tomllib.load(handle).get("optimize", {}))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read {args.config}: {exc}") from None
    # everything is checked before the data is read and before any run
    strategy = args.strategy or table.get("strategy", "sma_crossover")
    cls = _load_strategy_class(strategy)
    fixed = _parameters(cls, args.param)
    space = _grid(cls, args.grid, table.get("grid", {}))
    both = [name for name in space if name in fixed]
    if both:
        name = both[0]
        raise ConfigError(
            f"{name} is given both to search (-g {name}=...) and fixed (-p {name}=...): "
            f"give it once, with -g to search it or -p to fix it"
        )
    objective = args.objective or table.get("objective", "Sharpe ratio")
    if not isinstance(objective, str):
        raise ConfigError(f"objective in [optimize] must be a statistic's name, got {objective!r}")
    check_statistic(objective, "--objective" if args.objective else "objective in [optimize]")
    walk = _walk_lengths(args.walk_forward) if args.walk_forward else None
    heatmap = _heatmap_axes(args.heatmap, space) if args.heatmap else None
    if heatmap and walk:
        raise ConfigError("--heatmap draws a sweep: it cannot go with --walk-forward")
    sets = sample(space, args.random, seed=args.seed) if args.random else grid(space)
    from_table = set(table.get("grid", {})) - {pair.partition("=")[0] for pair in args.grid}
    _check_sets(cls, sets, fixed, from_table)
    if args.symbols is None and "symbols" in table:
        args.symbols = ",".join(table["symbols"])
    feed = _feed(args)
    instruments = feed.instruments
    tz = instruments[0].timezone if instruments else "UTC"
    daily = (feed.bar_ns or 0) >= 86_400 * 1_000_000_000
    commission = PerShareCommission(args.commission) if args.commission else None
    setup = Backtest(
        cls, [feed], partial(SimBroker, args.cash, commission=commission),
        objective=objective, fixed=fixed,
    )  # fmt: skip
    maximize = not args.minimize
    progress = not args.quiet
    if walk is not None:
        wf = walk_forward(
            setup, sets, train=walk[0], test=walk[1], anchored=args.anchored,
            workers=args.workers, progress=progress, maximize=maximize,
        )  # fmt: skip
        shown = [c for c in wf.frame.columns if c not in ("train_start", "error")]
        print(_formatted(wf.frame[shown], list(space), tz=tz, daily=daily).to_string())
        print()
        summary = wf.summary.astype(object)
        summary["windows"] = int(summary["windows"])
        from ibkrfw.analysis import format_stats

        print(format_stats(summary).to_string())
        if args.out:
            wf.frame.to_csv(args.out)
            print(f"windows written to {args.out}")
        errors = wf.frame["error"]
        if (errors != "").all():
            print(
                f"ibkrfw: error: every window failed; the first: {errors.iloc[0]}", file=sys.stderr
            )
            return 1
        return 0
    result = run_sweep(setup, sets, workers=args.workers, progress=progress, maximize=maximize)
    print(f"{len(result.frame)} parameter sets of {cls.__name__}, ranked by {objective}:")
    top = result.frame.drop(columns="error").head(args.top)
    print(_formatted(top, list(space), tz=tz, daily=daily).to_string())
    failed = len(result.failures)
    if failed:
        first = result.failures["error"].iloc[0]
        print(f"\n{failed} set(s) failed; the first: {first}")
    if args.out:
        result.frame.to_csv(args.out)
        print(f"results written to {args.out}")
    if failed == len(result.frame):
        print(f"ibkrfw: error: every parameter set failed; the first: {first}", file=sys.stderr)
        return 1
    if result.frame[result.objective].notna().any():
        print(f"\nbest: {result.best_params} ({objective} {result.best_value:.4g})")
    else:
        print(f"\nno parameter set has a value of {objective} (n/a for every run)")
    if heatmap is not None:
        x, y, path = heatmap
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure

        figure = Figure(figsize=(7, 5), layout="constrained")
        result.heatmap(x, y, figure.add_subplot())
        figure.savefig(path, dpi=110)
        print(f"heatmap written to {path}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from ibkrfw.engine.result import RunResult

    result = RunResult.load(args.run)
    result.report(args.output, title=args.title)
    print(f"report written to {args.output}")
    return 0


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


def _add_data_commands(sub: Any) -> None:
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


def _fake_tws(args: argparse.Namespace) -> int:
    import time

    from ibkrfw.testing.faketws import FakeTWS

    options = {"host": args.host, "port": args.port, "account": args.account}
    if args.store is not None:
        if not args.instrument or not args.bar_size:
            raise ConfigError("--store needs --instrument and --bar-size")
        with _store(args, create=False) as store:
            tws = FakeTWS.from_store(store, args.instrument, args.bar_size, **options)
    else:
        tws = FakeTWS.from_sample(_symbol_list(args.sample, "--sample"), **options)
    with tws:
        print(f"fake TWS listening on {tws.host}:{tws.port} as account {tws.account}", flush=True)
        tws.play(args.interval)
        try:
            while not (args.exit_at_end and tws.market.finished):
                time.sleep(0.05)
        except KeyboardInterrupt:
            pass
    print("fake TWS stopped")
    return 0


def _run(args: argparse.Namespace) -> int:
    import logging
    import signal
    import threading
    import tomllib

    from ibkrfw.engine.engine import Engine
    from ibkrfw.ibkr import IBClient, IBKRBroker, IBKRDataFeed

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("ibapi").setLevel(logging.WARNING)  # it logs every message at INFO
    tables: dict[str, Any] = {}
    if args.config is not None:
        try:
            with open(args.config, "rb") as handle:
                tables = dict(tomllib.load(handle))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read {args.config!r}: {exc}") from None
    run_table: dict[str, Any] = dict(tables.get("run", {}))
    config = _ibkr_config(args, mode=args.mode)
    symbols = args.symbols or ",".join(run_table.get("symbols", []))
    instruments: list[Instrument] = [Stock(s) for s in symbols.split(",") if s]
    if not instruments:
        raise ConfigError("nothing to trade: give --symbols or 'symbols' in the [run] table")
    cls = _load_strategy_class(args.strategy or run_table.get("strategy", ""))
    pairs = [f"{k}={v}" for k, v in run_table.get("parameters", {}).items()] + args.param
    strategy = _make_strategy(cls, _parameters(cls, pairs))
    bar_size = args.bar_size or run_table.get("bar_size", "1min")
    client = IBClient(config)
    feed = IBKRDataFeed(instruments, client=client, bar_size=None if bar_size == "5s" else bar_size)
    state_dir = args.state_dir or run_table.get("state_dir", "ibkrfw-state")
    sandbox_table = tables.get("sandbox", {})
    if not isinstance(sandbox_table, Mapping):
        raise ConfigError("[sandbox] must be a table")
    if args.sandbox:
        broker: Any = _sandbox_broker(args.cash, sandbox_table)
    else:
        on_mismatch = "adopt" if args.adopt else run_table.get("on_mismatch", "refuse")
        broker = IBKRBroker(  # the broker refuses a value other than "refuse" or "adopt"
            client=client, state_dir=state_dir, on_mismatch=cast(Any, on_mismatch)
        )
    alerter, monitor, summary, dashboard = _operations(args, tables, state_dir)
    engine = Engine(strategy, feed, broker, observers=[monitor, summary])
    cancel = args.cancel_on_stop or bool(run_table.get("cancel_on_stop", False))

    def stop(signum: int, frame: object) -> None:
        print(f"ibkrfw: {signal.Signals(signum).name}: stopping", file=sys.stderr, flush=True)
        engine.stop(cancel_orders=cancel)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    timer = None
    if args.duration is not None:
        timer = threading.Timer(args.duration, lambda: engine.stop(cancel_orders=cancel))
        timer.daemon = True
        timer.start()
    mode = "sandbox (IB data, simulated fills)" if args.sandbox else config.mode
    print(f"ibkrfw: running {strategy!r} in {mode} mode on {config.host}:{config.port}",
          flush=True)  # fmt: skip
    if dashboard is not None:
        dashboard.start()
        print(f"ibkrfw: dashboard on {dashboard.url}", flush=True)
    try:
        result = engine.run()
    except Exception as exc:
        if monitor.engine is None:  # it failed before the run began: the monitor never saw it
            from ibkrfw.monitoring import Alert

            alerter.send(Alert("start_failed", f"ibkrfw could not start: {type(exc).__name__}",
                               str(exc), "critical"))  # fmt: skip
        raise
    finally:
        if timer is not None:
            timer.cancel()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if dashboard is not None:
            dashboard.stop()
        alerter.stop()
    working = [o for o in result.order_list if not o.status.is_terminal]
    fees = sum((f.commission for f in result.fill_list), Decimal(0))
    print(
        f"ibkrfw: stopped after {engine.bars_processed} bars, {len(result.fill_list)} fills "
        f"(commissions {fees}), {len(working)} order(s) still working",
        flush=True,
    )
    return 0


_SANDBOX_KEYS = {
    "cash": "starting cash (default 100000; --cash overrides it)",
    "commission": '"ibkr_fixed", "ibkr_tiered", "none", or a number: that much per share',
    "slippage_bps": "a fixed slippage, in basis points of the price",
    "spread_bps": "half of this spread, or of the quote's, is paid on each fill",
    "volume_limit": "the largest fraction of a bar's volume one order may take",
    "fill_timing": '"next_bar" (default) or "this_close"',
    "fill_on": '"bars" (default) or "quotes"',
    "account": '"margin" (default) or "cash"',
}


def _sandbox_broker(cash: Decimal | None, table: Mapping[str, Any]) -> SimBroker:
    """The simulated broker of ``ibkrfw run --sandbox``, from the ``[sandbox]`` table.

    The costs and fill rules are those of a backtest's :class:`~ibkrfw.sim.SimBroker`, so
    sandbox results can be compared with a backtest that has the same settings.
    """
    from ibkrfw.sim.broker import SimBroker
    from ibkrfw.sim.commission import (
        CommissionModel,
        IBKRFixedCommission,
        IBKRTieredCommission,
        PerShareCommission,
        ZeroCommission,
    )
    from ibkrfw.sim.slippage import FixedBpsSlippage, HalfSpreadSlippage, SlippageModel

    unknown = sorted(set(table) - set(_SANDBOX_KEYS))
    if unknown:
        known = "; ".join(f"{k}: {v}" for k, v in _SANDBOX_KEYS.items())
        raise ConfigError(f"[sandbox]: unknown setting(s) {', '.join(unknown)} (known: {known})")

    def number(key: str) -> float:
        value = table[key]
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        return float(value)

    try:
        chosen = table.get("commission", "none")
        commission: CommissionModel
        if chosen == "ibkr_fixed":
            commission = IBKRFixedCommission()
        elif chosen == "ibkr_tiered":
            commission = IBKRTieredCommission()
        elif chosen == "none":
            commission = ZeroCommission()
        elif isinstance(chosen, int | float) and not isinstance(chosen, bool):
            commission = PerShareCommission(float_decimal(number("commission")))
        else:
            raise ConfigError(f"commission: {_SANDBOX_KEYS['commission']}; got {chosen!r}")
        if "slippage_bps" in table and "spread_bps" in table:
            raise ConfigError("give slippage_bps or spread_bps, not both")
        slippage: SlippageModel | None = None
        if "slippage_bps" in table:
            slippage = FixedBpsSlippage(number("slippage_bps"))
        elif "spread_bps" in table:
            slippage = HalfSpreadSlippage(number("spread_bps"))
        options = {k: table[k] for k in ("volume_limit", "fill_timing", "fill_on", "account")
                   if k in table}  # fmt: skip
        starting = cash if cash is not None else table.get("cash", 100_000)
        return SimBroker(
            to_decimal(starting, "cash"), commission=commission, slippage=slippage, **options
        )
    except (ValueError, TypeError) as exc:  # ConfigError is a ValueError too
        raise ConfigError(f"[sandbox]: {exc}") from None


def _operations(args: argparse.Namespace, tables: Mapping[str, Any], state_dir: str) -> Any:
    """The alerter, monitor, daily summary and dashboard of a run, from its TOML tables."""
    from pathlib import Path

    from ibkrfw.monitoring import Alerter, DailySummary, Dashboard, LiveMonitor
    from ibkrfw.monitoring.alerts import channels_from_config

    def table(name: str) -> dict[str, Any]:
        value = tables.get(name, {})
        if not isinstance(value, Mapping):
            raise ConfigError(f"[{name}] must be a table")
        return dict(value)

    alerts = table("alerts")
    limits = {k: alerts.pop(k) for k in ("quiet_s", "max_per_hour") if k in alerts}
    journal = Path(state_dir) / "alerts.jsonl"  # alerts outlive a restart (and its repeats)
    alerter = Alerter(channels_from_config(alerts), journal=journal, **limits).start()
    settings = table("monitor")
    if "quiet" in settings:
        settings["quiet"] = [tuple(w) for w in settings["quiet"]]
    try:
        monitor = LiveMonitor(alerter=alerter, journal_dir=state_dir, **settings)
        folder = Path(state_dir) / "summaries"
        summary = DailySummary(monitor, alerter=alerter, directory=folder, **table("summary"))
    except TypeError as exc:
        alerter.stop()
        raise ConfigError(f"[monitor] or [summary]: {exc}") from None
    served = table("dashboard")
    where = args.dashboard or served.get("listen")
    dashboard = None
    if where:
        host, _, port = str(where).rpartition(":")
        token_env = served.get("token_env", "IBKRFW_DASHBOARD_TOKEN")
        try:
            dashboard = Dashboard(
                monitor, host=host or "127.0.0.1", port=int(port), token_env=token_env
            )
        except ValueError:
            alerter.stop()
            raise ConfigError(f"--dashboard takes [HOST:]PORT, got {where!r}") from None
        except ConfigError:
            alerter.stop()
            raise
    return alerter, monitor, summary, dashboard


def _ibkr_config(args: argparse.Namespace, **settings: Any) -> Any:
    """The ``[ibkr]`` settings of ``--config``, with ``--port`` and ``--client-id`` on top."""
    from ibkrfw.ibkr import IBKRConfig

    if args.port is not None:
        settings["port"] = args.port
    if args.client_id is not None:
        settings["client_id"] = args.client_id
    return IBKRConfig.load(args.config, **settings)


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


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``ibkrfw`` command."""
    parser = argparse.ArgumentParser(
        prog="ibkrfw",
        description="Backtest, optimise and run trading strategies on Interactive Brokers: "
        "one strategy, the same code on the simulator and on TWS or IB Gateway.",
        epilog="Run 'ibkrfw COMMAND --help' for a command's options.",
    )
    parser.add_argument(
        "--version", action="version", version=f"ibkrfw {__version__}", help="print the version"
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", title="commands", help="one of:"
    )
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
    opt = sub.add_parser(
        "optimize",
        help="search strategy parameters (grid or random), optionally walking forward",
        description="Backtest a strategy over a grid (or random draws) of parameters on the "
        "sample data or a CSV file, in parallel, and rank the results. The grid comes from "
        "--grid options or the [optimize] table of a TOML file.",
    )
    opt.add_argument("--strategy", help="as for backtest (default: sma_crossover)")
    opt.add_argument(
        "-g", "--grid", action="append", default=[], metavar="NAME=V1,V2",
        help="values of one parameter (repeatable), e.g. -g fast=5,10,20",
    )  # fmt: skip
    opt.add_argument(
        "-p", "--param", action="append", default=[], metavar="NAME=VALUE",
        help="a parameter fixed for every run (repeatable)",
    )  # fmt: skip
    opt.add_argument("--config", help="a TOML file with an [optimize] table (and [optimize.grid])")
    opt.add_argument("--objective", help="the statistic to rank by (default: 'Sharpe ratio')")
    opt.add_argument("--minimize", action="store_true", help="smaller objective is better")
    opt.add_argument(
        "--random", type=_count("--random", 20), metavar="N",
        help="draw N sets (at least 1) from the grid's values instead of running all",
    )  # fmt: skip
    opt.add_argument("--seed", type=int, help="the seed of --random draws")
    opt.add_argument(
        "--workers", type=_count("--workers", 2),
        help="processes, at least 1 (default: the number of CPUs)",
    )  # fmt: skip
    opt.add_argument(
        "--walk-forward", metavar="TRAIN:TEST",
        help="walk-forward analysis with these lengths, e.g. 730D:180D or 24MS:6MS",
    )  # fmt: skip
    opt.add_argument("--anchored", action="store_true", help="anchored walk-forward windows")
    _add_backtest_data_options(opt)
    opt.add_argument(
        "--top", type=_count("--top", 10), default=10, help="rows to print (default: 10)"
    )
    opt.add_argument("--out", type=_output_file, help="write every row to this CSV file")
    opt.add_argument(
        "--heatmap", metavar="X,Y=FILE.png", help="draw the objective over two parameters"
    )
    opt.add_argument("--quiet", action="store_true", help="no progress bar")
    opt.set_defaults(func=_optimize)
    rep = sub.add_parser(
        "report",
        help="write the HTML report of a saved run",
        description="Write one self-contained HTML report of a run saved with --save or "
        "RunResult.save().",
    )
    rep.add_argument("run", help="the saved run")
    rep.add_argument(
        "-o", "--output", type=_output_file, default="report.html", help="the HTML file to write"
    )
    rep.add_argument("--title", help="the report's title (default: the strategy's name)")
    rep.set_defaults(func=_report)
    _add_data_commands(sub)
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
    _add_run_command(sub)
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
    return parser


def _connection_options(parser: argparse.ArgumentParser, config_help: str) -> None:
    """The options that say where TWS or IB Gateway is (read by :func:`_ibkr_config`)."""
    parser.add_argument("--config", help=config_help)
    parser.add_argument(
        "--port", type=_port(zero=False), help="TWS/Gateway port (overrides the file)"
    )
    parser.add_argument("--client-id", type=int, help="API client id (overrides the file)")


def _add_run_command(sub: Any) -> None:
    run = sub.add_parser(
        "run",
        help="run a strategy live against TWS or IB Gateway (paper by default)",
        description="Run a strategy on IB's live data, trading the paper account unless "
        "--mode live is given, until interrupted (Ctrl-C or SIGTERM).",
    )
    _connection_options(run, "a TOML file with [ibkr] and [run] tables")
    run.add_argument(
        "--mode",
        choices=("paper", "live"),
        default="paper",
        help="paper (default) or live; live trading needs this flag, whatever the file says",
    )
    run.add_argument("--strategy", help="'module:Class' or a built-in (or 'strategy' in [run])")
    run.add_argument(
        "-p", "--param", action="append", default=[], metavar="NAME=VALUE",
        help="a strategy parameter (repeatable)",
    )  # fmt: skip
    run.add_argument("--symbols", help="comma-separated stock symbols (or 'symbols' in [run])")
    run.add_argument("--bar-size", help="bar size for the strategy (default 1min; 5s: IB's own)")
    run.add_argument("--state-dir", help="where order ids are kept (default ./ibkrfw-state)")
    run.add_argument(
        "--sandbox", action="store_true", help="IB's data, the simulator's fills: nothing is sent"
    )
    run.add_argument(
        "--cash",
        type=_money("--cash", positive=True, maximum=_MAX_CASH),
        help="the sandbox's starting cash (default: 'cash' in [sandbox], or 100000)",
    )
    run.add_argument(
        "--cancel-on-stop", action="store_true", help="cancel working orders when stopping"
    )
    run.add_argument(
        "--adopt", action="store_true",
        help="start from the account's positions and orders when they differ from the journal "
        "(instead of refusing to start; or on_mismatch = \"adopt\" in [run])",
    )  # fmt: skip
    run.add_argument("--duration", type=float, help="stop after this many seconds")
    run.add_argument(
        "--dashboard", nargs="?", const="127.0.0.1:8765", metavar="[HOST:]PORT",
        help="serve the dashboard (default 127.0.0.1:8765; a token is needed off loopback)",
    )  # fmt: skip
    run.set_defaults(func=_run)


def _option(name: str, value: object) -> str:
    """Spell a library setting named in an error's fix as this command's option."""
    if name == "actions" and isinstance(value, Mapping):
        return " ".join(f"--clean {kind}={action}" for kind, action in value.items())
    return f"--{name.replace('_', '-')} {value}"


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The parsers of the commands directly under ``parser`` (none for a leaf command)."""
    commands: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            commands.update(action.choices)
    return commands


def _command_parser(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> argparse.ArgumentParser:
    """The parser of the innermost command ``args`` were parsed for (``data import``...)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            chosen = action.choices.get(getattr(args, action.dest, None) or "")
            if chosen is not None:
                return _command_parser(chosen, args)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``ibkrfw`` command with ``argv`` (default: the process arguments).

    Exit codes: 0 done; 1 ``data validate`` found problems; 2 the command could not do its
    work: bad arguments (argparse's convention) or bad input (a file that cannot be read,
    malformed data, a wrong setting, a file that cannot be written), with a message on
    standard error and no traceback; 130 interrupted (Ctrl-C); 141 its output was closed
    early (``ibkrfw backtest | head``), quietly, as a process stopped by SIGPIPE.
    """
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:  # argparse would report them with the top-level usage: say it for the command
        _command_parser(parser, args).error(f"unrecognized arguments: {' '.join(extras)}")
    try:
        code: int = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here rather than at exit
    except DataError as exc:  # its fix names settings: word them as options (--tz, not tz=)
        print(f"ibkrfw: error: {exc.explain(_option)}", file=sys.stderr)
        return 2
    except IBKRFWError as exc:
        print(f"ibkrfw: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nibkrfw: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away: nothing more to say to it, and no traceback at exit when
        # Python flushes stdout (the recipe of Python's signal module documentation).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except OSError as exc:  # a file the command could not read or write
        where = f": {exc.filename}" if exc.filename else ""
        print(f"ibkrfw: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
