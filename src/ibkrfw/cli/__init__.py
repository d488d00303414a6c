"""The ``ibkrfw`` command."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ibkrfw._redact import redact
from ibkrfw._version import __version__
from ibkrfw.cli import (
    backtest,
    config,
    contract,
    data,
    download,
    fake_tws,
    optimize,
    report,
    run,
)
from ibkrfw.cli._common import BUILTIN_STRATEGIES as BUILTIN_STRATEGIES
from ibkrfw.cli._common import _load_strategy_class as _load_strategy_class
from ibkrfw.cli._common import _option
from ibkrfw.cli._common import _parameters as _parameters
from ibkrfw.cli.run import _operations as _operations
from ibkrfw.cli.run import _sandbox_broker as _sandbox_broker
from ibkrfw.errors import ContractError, ContractNotFoundError, DataError, IBKRFWError

__all__ = ["build_parser", "main"]


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
    backtest.add_parser(sub)
    optimize.add_parser(sub)
    report.add_parser(sub)
    data.add_parser(sub)
    fake_tws.add_parser(sub)
    run.add_parser(sub)
    download.add_parser(sub)
    contract.add_parser(sub)
    config.add_parser(sub)
    return parser


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

    Exit codes: 0 done; 1 ``data validate`` found problems, or ``contract`` found no match;
    2 the command could not do its work: bad arguments (argparse's convention) or bad input
    (a file that cannot be read, malformed data, a wrong setting, a file that cannot be
    written, an ambiguous contract), with a message on standard error and no traceback;
    130 interrupted (Ctrl-C); 141 its output was closed early (``ibkrfw backtest | head``),
    quietly, as a process stopped by SIGPIPE.
    """
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:  # argparse would report them with the top-level usage: say it for the command
        _command_parser(parser, args).error(f"unrecognized arguments: {' '.join(extras)}")
    try:
        code: int = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here rather than at exit
    except DataError as exc:  # its fix names settings: word them as options (--tz, not tz=)
        print(f"ibkrfw: error: {redact(exc.explain(_option))}", file=sys.stderr)
        return 2
    except ContractError as exc:  # no match is an answer (1); an ambiguous name is not (2)
        print(f"ibkrfw: error: {redact(exc.explain(_option))}", file=sys.stderr)
        return 1 if isinstance(exc, ContractNotFoundError) else 2
    except IBKRFWError as exc:  # a secret quoted by a message is masked (defence in depth)
        print(f"ibkrfw: error: {redact(str(exc))}", file=sys.stderr)
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
