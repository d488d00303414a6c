"""The ``ibkrfw report`` command."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ibkrfw.cli._common import (
    _output_file,
)

if TYPE_CHECKING:
    pass


def _report(args: argparse.Namespace) -> int:
    from ibkrfw.engine.result import RunResult

    result = RunResult.load(args.run)
    result.report(args.output, title=args.title)
    print(f"report written to {args.output}")
    return 0


def add_parser(sub: Any) -> None:
    """Add the ``report`` command to ``sub``."""
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
