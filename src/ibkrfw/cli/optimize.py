"""The ``ibkrfw optimize`` command."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any, get_type_hints

import attrs

from ibkrfw.cli._common import (
    _add_backtest_data_options,
    _convert,
    _count,
    _describe,
    _feed,
    _load_strategy_class,
    _output_file,
    _parameter_names,
    _parameters,
    _symbol_list,
    _unknown_parameter,
)
from ibkrfw.errors import ConfigError
from ibkrfw.strategy import Strategy

if TYPE_CHECKING:
    import pandas as pd

    from ibkrfw.config import OptimizeSettings
    from ibkrfw.optimize import Backtest, StoredBars
    from ibkrfw.ports import DataFeed


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
    from functools import partial

    from ibkrfw.config import load_settings
    from ibkrfw.data.barsize import bar_size_ns
    from ibkrfw.optimize import Backtest, check_statistic, grid, sample
    from ibkrfw.optimize.cluster import address_problem, connect, shown
    from ibkrfw.sim.broker import SimBroker
    from ibkrfw.sim.commission import PerShareCommission

    # the [optimize] table of --config (the whole file is checked), the environment's
    # IBKRFW_OPTIMIZE_* variables, then the options
    table = load_settings(args.config).optimize
    # everything is checked before the data is read and before any run
    strategy = args.strategy or table.strategy
    cls = _load_strategy_class(strategy)
    fixed = _parameters(cls, args.param)
    space = _grid(cls, args.grid, table.grid)
    both = [name for name in space if name in fixed]
    if both:
        name = both[0]
        raise ConfigError(
            f"{name} is given both to search (-g {name}=...) and fixed (-p {name}=...): "
            f"give it once, with -g to search it or -p to fix it"
        )
    objective = args.objective or table.objective
    check_statistic(objective, "--objective" if args.objective else "objective in [optimize]")
    walk = _walk_lengths(args.walk_forward) if args.walk_forward else None
    heatmap = _heatmap_axes(args.heatmap, space) if args.heatmap else None
    if heatmap and walk:
        raise ConfigError("--heatmap draws a sweep: it cannot go with --walk-forward")
    sets = sample(space, args.random, seed=args.seed) if args.random else grid(space)
    from_table = set(table.grid) - {pair.partition("=")[0] for pair in args.grid}
    _check_sets(cls, sets, fixed, from_table)
    if args.symbols is None and table.symbols is not None:
        args.symbols = ",".join(table.symbols)
    # the command line wins over the [optimize] table, key by key
    scheduler = args.scheduler or table.scheduler
    timeout_s = args.scheduler_timeout or table.scheduler_timeout_s
    option = "--scheduler" if args.scheduler else "scheduler in [optimize]"
    if scheduler is not None and (problem := address_problem(scheduler)) is not None:
        raise ConfigError(f"{option} {shown(scheduler)}: {problem}")
    journal = args.journal or table.journal
    if journal is not None and walk is not None:
        raise ConfigError(
            f"--journal {journal} records the sets of a sweep: it cannot go with --walk-forward "
            "(leave one out)"
        )
    store = _store_reference(args, table)
    commission = PerShareCommission(args.commission) if args.commission else None
    if store is not None:
        instruments = store.check()  # before any work is sent: the store's index only
        data: DataFeed = store
        daily = bar_size_ns(store.bar_size) >= 86_400 * 1_000_000_000
    else:
        feed = _feed(args)
        instruments = feed.instruments
        data = feed
        daily = (feed.bar_ns or 0) >= 86_400 * 1_000_000_000
    tz = instruments[0].timezone if instruments else "UTC"
    setup = Backtest(
        cls, [data], partial(SimBroker, args.cash, commission=commission),
        objective=objective, fixed=fixed,
    )  # fmt: skip
    with contextlib.ExitStack() as stack:
        executor = None
        if scheduler is not None:
            client = stack.enter_context(connect(scheduler, timeout_s, option))
            executor = client.get_executor()
            if not args.quiet:
                try:  # distributed >= 2025 lists 5 workers unless asked for all
                    info = client.scheduler_info(n_workers=-1)
                except TypeError:
                    info = client.scheduler_info()
                workers = len(info.get("workers", {}))
                print(
                    f"running on the Dask scheduler at {shown(scheduler)} ({workers} workers)",
                    file=sys.stderr,
                )
        return _search(args, setup, sets, space, walk, heatmap, executor, journal, tz, daily)


def _store_reference(args: argparse.Namespace, table: OptimizeSettings) -> StoredBars | None:
    """The bars named by ``--store`` (or ``store`` in [optimize]), or None for the others."""
    from ibkrfw.config import _store_uri, _time_text
    from ibkrfw.optimize import StoredBars
    from ibkrfw.optimize.stored import _shown

    uri = args.store or table.store
    if uri is None:
        for option in ("bar_size", "start", "end"):
            if getattr(args, option) is not None:
                flag = "--" + option.replace("_", "-")
                raise ConfigError(
                    f"{flag} says what to read from a Parquet store: give --store too"
                )
        return None
    flag = "--store" if args.store else "store in [optimize]"
    if args.csv is not None:
        raise ConfigError(f"{flag} and --csv both give the bars: give one of them")
    problem = _store_uri(uri)
    if problem is not None:
        raise ConfigError(f"{flag} {_shown(uri)}: {problem}")
    symbols = _symbol_list(args.symbols)
    if not symbols:
        raise ConfigError(
            f"{flag} needs --symbols (or symbols in [optimize]): the instruments to read from "
            "the store, by key or symbol, e.g. --symbols ACME"
        )
    bounds: dict[str, str | None] = {}
    for name in ("start", "end"):
        value = getattr(args, name)
        problem = _time_text(value)
        if problem is not None:
            raise ConfigError(f"--{name} {value}: {problem}")
        bounds[name] = value if value is not None else getattr(table, name)
    bar_size = args.bar_size or table.bar_size
    try:
        return StoredBars(uri, symbols, bar_size, bounds["start"], bounds["end"])
    except ConfigError as exc:
        raise ConfigError(f"--bar-size {bar_size}: {exc}") from None


def _search(
    args: argparse.Namespace,
    setup: Backtest,
    sets: list[dict[str, Any]],
    space: Mapping[str, Any],
    walk: tuple[str, str] | None,
    heatmap: tuple[str, str, str] | None,
    executor: Executor | None,
    journal: str | None,
    tz: str,
    daily: bool,
) -> int:
    """Run the sweep (or the walk-forward analysis) and print it."""
    from ibkrfw.optimize import SweepJournal, run_sweep, walk_forward

    cls_name = getattr(setup.strategy, "__name__", "the strategy")
    objective = setup.objective_name
    workers = None if executor is not None else args.workers
    maximize = not args.minimize
    progress = not args.quiet
    if walk is not None:
        wf = walk_forward(
            setup, sets, train=walk[0], test=walk[1], anchored=args.anchored,
            executor=executor, workers=workers, progress=progress, maximize=maximize,
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
    book = SweepJournal(journal) if journal is not None else None
    result = run_sweep(
        setup, sets, executor=executor, workers=workers, progress=progress,
        maximize=maximize, journal=book,
    )  # fmt: skip
    if book is not None:  # said on stderr: the table on stdout stays the same
        if book.torn:
            print(
                f"journal {book.path}: its last line was torn (a run stopped while writing "
                "it); that set ran again",
                file=sys.stderr,
            )
        print(
            f"journal {book.path}: {book.recorded} of {len(sets)} sets resumed from it, "
            f"{len(sets) - book.recorded} run now",
            file=sys.stderr,
        )
    print(f"{len(result.frame)} parameter sets of {cls_name}, ranked by {objective}:")
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


def _seconds(text: str) -> float:
    """An argparse ``type`` for a number of seconds above 0."""
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(
            f"must be a number of seconds above 0, e.g. --scheduler-timeout 10; got {text!r}"
        )
    return value


def add_parser(sub: Any) -> None:
    """Add the ``optimize`` command to ``sub``."""
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
    cluster = opt.add_argument_group(
        "cluster, bars by reference and resuming",
        "Each option wins over the same key of the [optimize] table of --config.",
    )
    cluster.add_argument(
        "--scheduler", metavar="ADDRESS",
        help="run the sets on the workers of this Dask scheduler, e.g. tcp://127.0.0.1:8786",
    )  # fmt: skip
    cluster.add_argument(
        "--scheduler-timeout", metavar="SECONDS", type=_seconds,
        help="how long to wait for the scheduler to answer (default: 10)",
    )  # fmt: skip
    cluster.add_argument(
        "--store", metavar="PATH_OR_URI",
        help="a Parquet bar store (a path, file://, s3://...) each worker reads the bars of "
        "--symbols from itself, instead of receiving them",
    )  # fmt: skip
    cluster.add_argument("--bar-size", help="the bar size read from --store (default: 1d)")
    cluster.add_argument("--start", help="first time read from --store, e.g. 2020-01-01")
    cluster.add_argument("--end", help="first time not read from --store")
    cluster.add_argument(
        "--journal", metavar="PATH",
        help="record each finished set in this file; run the same command again to resume "
        "a stopped sweep where it stopped",
    )  # fmt: skip
    opt.set_defaults(func=_optimize)
