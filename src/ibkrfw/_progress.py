"""Progress bars for long jobs, drawn by tqdm on stderr.

One place decides how progress looks, for every job (backtests, sweeps, downloads, imports):

* a terminal (stderr is a TTY): tqdm's bar, redrawn in place;
* Jupyter with ipywidgets installed: tqdm's notebook widget;
* anything else (CI logs, pipes, files, a notebook without ipywidgets): plain lines, one when
  the job starts, then at most one every :data:`LINE_INTERVAL_S` seconds, and one at the end.
  Never a carriage-return redraw, which a log shows as one endless line.

tqdm is imported only when a bar is made, so a quiet run does not pay for it.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
from typing import IO, TYPE_CHECKING, Any

from ibkrfw.errors import ConfigError

if TYPE_CHECKING:
    from tqdm import tqdm

__all__ = ["LINE_INTERVAL_S", "MIN_BARS", "MIN_BARS_ENV", "check", "make_bar", "min_bars"]

LINE_INTERVAL_S = 10.0
"""The least time between two plain progress lines, in seconds."""

MIN_BARS = 200_000
"""A backtest with ``progress=None`` shows progress from this many bars on."""

MIN_BARS_ENV = "IBKRFW_PROGRESS_MIN_BARS"
"""The environment variable that overrides :data:`MIN_BARS`."""


def check(progress: object, where: str, *, callable_ok: bool = False) -> None:
    """Refuse a ``progress`` argument that is not True, False or None (or a function).

    Raises:
        ConfigError: naming the value and ``where`` it was given.
    """
    if progress is None or isinstance(progress, bool) or (callable_ok and callable(progress)):
        return
    expected = "True, False, None or a function" if callable_ok else "True, False or None"
    raise ConfigError(f"{where}: progress must be {expected}, got {progress!r}")


def min_bars() -> int:
    """The bar count from which a backtest with ``progress=None`` shows progress.

    :data:`MIN_BARS`, or the value of the ``IBKRFW_PROGRESS_MIN_BARS`` environment variable.

    Raises:
        ConfigError: if the variable is set to something else than a whole number >= 0.
    """
    text = os.environ.get(MIN_BARS_ENV)
    if text is None or not text.strip():
        return MIN_BARS
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise ConfigError(
            f"{MIN_BARS_ENV}={text!r} is not a whole number of bars >= 0; set it to e.g. "
            f"{MIN_BARS} or unset it"
        )
    return value


class _Lines:
    """A file for tqdm that writes each redraw as a line of its own (for logs and pipes)."""

    def __init__(self, file: IO[str]) -> None:
        self._file = file
        self._last = ""

    def write(self, text: str) -> int:
        for part in re.split(r"[\r\n]", text):
            line = part.rstrip()
            if line and line != self._last:
                self._file.write(line + "\n")
                self._last = line
        return len(text)

    def flush(self) -> None:
        self._file.flush()


def _widgets() -> bool:
    """Whether this runs in a Jupyter kernel that can show ipywidgets."""
    if "ipykernel.zmqshell" not in sys.modules:
        return False
    return importlib.util.find_spec("ipywidgets") is not None


def _is_tty(file: IO[str]) -> bool:
    isatty = getattr(file, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except ValueError:  # a closed stream
        return False


def make_bar(*, total: int | None, desc: str, unit: str, delay_s: float = 0.0) -> tqdm[Any]:
    """A progress bar on stderr, drawn the way stderr can show it (see the module).

    Args:
        total: How many units the job has, if known.
        desc: What is in progress (shown first).
        unit: What is counted (``"bar"``, ``"run"``, ``"request"``...).
        delay_s: Show nothing until the job has taken this long.
    """
    options: dict[str, Any] = {"total": total, "desc": desc, "unit": unit, "delay": delay_s}
    if unit == "bar":  # 1.2M bars/s reads better than 1200000bar/s
        options["unit_scale"] = True
    if _widgets():
        from tqdm.notebook import tqdm as notebook_tqdm

        return notebook_tqdm(**options)
    from tqdm import tqdm

    stderr = sys.stderr
    if _is_tty(stderr):
        return tqdm(file=stderr, dynamic_ncols=True, **options)
    return tqdm(file=_Lines(stderr), mininterval=LINE_INTERVAL_S, ascii=True, ncols=80, **options)
