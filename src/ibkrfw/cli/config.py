"""The ``ibkrfw config`` commands: check a configuration file, show the effective settings."""

from __future__ import annotations

import argparse
from typing import Any

from ibkrfw.cli._common import _load_strategy_class, _make_strategy, _parameters
from ibkrfw.errors import ConfigError


def _config_check(args: argparse.Namespace) -> int:
    """Check the whole file, and that its strategies load and take their parameters."""
    from ibkrfw.cli.optimize import _grid
    from ibkrfw.cli.run import _sandbox_broker
    from ibkrfw.config import _check_state_dir, load_settings
    from ibkrfw.data.barsize import bar_size_ns
    from ibkrfw.model.instruments import Stock
    from ibkrfw.optimize import check_statistic

    settings = load_settings(args.file)  # every problem of the file, at once
    problems: list[str] = []
    try:
        _check_state_dir(settings, args.file)  # the default too: a run would use it
    except ConfigError as exc:
        problems.append(str(exc))
    run = settings.run
    spec = args.strategy or run.strategy
    if spec:
        where = f"--strategy {spec}" if args.strategy else f'[run] strategy = "{spec}"'
        try:
            cls = _load_strategy_class(spec)
            pairs = [f"{k}={v}" for k, v in run.parameters.items()]
            _make_strategy(cls, _parameters(cls, pairs, option="[run.parameters]"))
        except ConfigError as exc:
            problems.append(f"{args.file}: {where}: {exc}")
    try:
        _sandbox_broker(None, settings.sandbox)
    except (ConfigError, ValueError) as exc:
        problems.append(f"{args.file}: [sandbox]: {exc}")
    try:  # the risk rules and protection a run would build (the model checked their values)
        settings.risk.rules(), settings.risk.monitors()
        traded = run.symbols or settings.protection.symbols or []  # none: given at run time
        settings.protection.protection([Stock(symbol) for symbol in traded])
    except ConfigError as exc:
        problems.append(f"{args.file}: {exc}")
    age = settings.risk.max_data_age_s
    bar_s = bar_size_ns(run.bar_size) / 1e9
    if age is not None and age <= bar_s:  # the run would refuse to start (StaleDataGuard)
        problems.append(
            f"{args.file}: [risk] max_data_age_s = {age!r} is not longer than one of the run's "
            f'bars ([run] bar_size = "{run.bar_size}"): every live order would be denied; '
            f"give more than a bar, e.g. {2 * bar_s:g} for one late bar"
        )
    optimize = settings.optimize
    if optimize.grid:
        try:
            cls = _load_strategy_class(optimize.strategy)
            _grid(cls, [], optimize.grid)
        except ConfigError as exc:
            problems.append(f'{args.file}: [optimize] strategy = "{optimize.strategy}": {exc}')
    try:
        check_statistic(optimize.objective, "objective in [optimize]")
    except ConfigError as exc:
        problems.append(f"{args.file}: {exc}")
    if problems:
        head = f"{len(problems)} problems:\n  " if len(problems) > 1 else ""
        raise ConfigError(head + "\n  ".join(problems))
    if settings.ibkr.mode == "live":
        print(f'{args.file}: ok ([ibkr] mode = "live": ibkrfw run needs --mode live too)')
        return 0
    print(f"{args.file}: ok")
    return 0


def _config_show(args: argparse.Namespace) -> int:
    from ibkrfw.config import load_settings, settings_toml

    source = args.config or "no file"
    print(f"# the effective settings: defaults, {source}, the environment (secrets masked)")
    print("# masked values (***) are not usable as they are: a file needs the real ones")
    print(settings_toml(load_settings(args.config)), end="")
    return 0


def add_parser(sub: Any) -> None:
    """Add the ``config`` command and its commands to ``sub``."""
    config = sub.add_parser(
        "config",
        help="check a configuration file, or show the effective settings",
        description="Check an ibkrfw.toml file without connecting to anything (check), or "
        "print the settings a run would use, defaults, file and environment together, with "
        "secrets masked (show).",
    )
    commands = config.add_subparsers(
        dest="config_command", required=True, metavar="COMMAND", title="commands", help="one of:"
    )
    check = commands.add_parser(
        "check",
        help="check every table and key of a file, and that its strategy loads",
        description="Check every table and key of a configuration file (types, ranges, "
        "unknown names), the environment's IBKRFW_* overrides, and that the strategy loads "
        "and takes its parameters; print 'FILE: ok' (exit 0) or every problem (exit 2). "
        "Nothing is connected to.",
    )
    check.add_argument("file", help="the TOML file, e.g. ibkrfw.toml")
    check.add_argument(
        "--strategy", help="check this strategy ('module:Class' or a built-in) with the file"
    )
    check.set_defaults(func=_config_check)
    show = commands.add_parser(
        "show",
        help="print the effective settings as TOML, secrets masked",
        description="Print every setting as a run would use it (defaults, then --config's "
        "file, then IBKRFW_* environment variables) as TOML. Passwords and tokens are never "
        "printed: their variables are named, with whether they are set; webhook URLs are masked.",
    )
    show.add_argument("--config", help="the TOML file (default: none, defaults and environment)")
    show.set_defaults(func=_config_show)
