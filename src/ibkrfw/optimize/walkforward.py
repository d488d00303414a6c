"""Walk-forward analysis: optimise in sample, then trade the winner on the data that follows."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from typing import TYPE_CHECKING, Any, Literal, final

import numpy as np

from ibkrfw._progress import check as check_progress
from ibkrfw.errors import ConfigError
from ibkrfw.optimize.sweep import (
    Backtest,
    Progress,
    Runner,
    SweepResult,
    _check_objective_name,
    _reporting,
)

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

__all__ = ["WalkForwardResult", "Window", "check_lengths", "walk_forward", "windows"]


@final
class Window:
    """One step of a walk-forward: the in-sample span, then the out-of-sample one (UTC ns).

    Spans include their start and exclude their end.
    """

    __slots__ = ("test_end", "test_start", "train_end", "train_start")

    def __init__(self, train_start: int, train_end: int, test_start: int, test_end: int) -> None:
        self.train_start, self.train_end = train_start, train_end
        self.test_start, self.test_end = test_start, test_end

    def __repr__(self) -> str:
        import pandas as pd

        def day(ns: int) -> str:
            return f"{pd.Timestamp(ns, tz='UTC'):%Y-%m-%d}"

        return (
            f"Window(train {day(self.train_start)}..{day(self.train_end)}, "
            f"test {day(self.test_start)}..{day(self.test_end)})"
        )


def _offset(value: object, name: str) -> Any:
    import pandas as pd

    length: Any = None
    if isinstance(value, pd.Timedelta | pd.DateOffset):
        length = value
    elif isinstance(value, str):
        try:  # offsets first: "12MS" is twelve month starts, not 12 ms
            length = pd.tseries.frequencies.to_offset(value)
        except ValueError:
            with contextlib.suppress(ValueError):
                length = pd.Timedelta(value)
    if length is None:
        raise ConfigError(
            f"{name} must be a length of time such as '365D', '26W' or '12MS', got {value!r}"
        )
    start = pd.Timestamp("2000-01-01", tz="UTC")
    if not start + length > start:  # "0D", "-3MS": no window would ever move on
        raise ConfigError(
            f"{name} must be a length above zero such as '365D', '26W' or '12MS', got {value!r}"
        )
    return length


def check_lengths(train: object, test: object) -> None:
    """Refuse walk-forward lengths that :func:`windows` would refuse, before any data is read.

    Args:
        train: The in-sample length (``"730D"``, ``"104W"``, ``"24MS"``...).
        test: The out-of-sample length.

    Raises:
        ConfigError: for a length that is not one, or is not above zero.

    Example:
        >>> from ibkrfw.errors import ConfigError
        >>> try:
        ...     check_lengths("730D", "0D")
        ... except ConfigError as exc:
        ...     print(str(exc).split(" such as")[0])
        test must be a length above zero
    """
    _offset(train, "train")
    _offset(test, "test")


def windows(
    start_ns: int, end_ns: int, *, train: object, test: object, anchored: bool = False
) -> list[Window]:
    """Cut ``[start_ns, end_ns)`` into walk-forward windows.

    Rolling (the default): each in-sample span has the length ``train`` and is followed by
    ``test``; the next window starts ``test`` later. Anchored: every in-sample span starts at
    ``start_ns`` and grows by ``test`` each step. The last test span may be shorter, down to half
    of ``test`` (a shorter one is left out).

    Args:
        start_ns: The first time of the data.
        end_ns: Just after the last time of the data.
        train: The in-sample length (``"730D"``, ``"104W"``, ``"24MS"``...).
        test: The out-of-sample length.
        anchored: Anchor every in-sample span at the start.

    Raises:
        ConfigError: for a length that is not one or not above zero, or data too short for
            one window.

    Example:
        >>> import pandas as pd
        >>> ns = lambda d: pd.Timestamp(d, tz="UTC").value
        >>> for w in windows(ns("2020-01-01"), ns("2021-01-01"), train="180D", test="90D"):
        ...     print(w)
        Window(train 2020-01-01..2020-06-29, test 2020-06-29..2020-09-27)
        Window(train 2020-03-31..2020-09-27, test 2020-09-27..2020-12-26)
    """
    import pandas as pd

    train_len, test_len = _offset(train, "train"), _offset(test, "test")
    begin = pd.Timestamp(start_ns, tz="UTC")
    stop = pd.Timestamp(end_ns, tz="UTC")
    out: list[Window] = []
    k = 0
    while True:
        test_start = begin + train_len + k * test_len
        if test_start >= stop:
            break
        train_start = begin if anchored else begin + k * test_len
        full_end = test_start + test_len
        test_end = min(full_end, stop)
        if out and (test_end - test_start) * 2 < full_end - test_start:
            break  # a last test span under half the length says little: left out
        out.append(Window(train_start.value, test_start.value, test_start.value, test_end.value))
        k += 1
    if not out:
        raise ConfigError("the data is too short for one in-sample span and a test after it")
    return out


@final
class WalkForwardResult:
    """The windows of a walk-forward analysis: the chosen parameters, in and out of sample.

    Attributes:
        frame: One row per window: its spans, the parameters chosen in sample, the best
            in-sample objective (``in_sample``), the objective of those parameters on the
            following data (``out_of_sample``) and its total return.
        sweeps: The in-sample sweep of each window.
        parameters: The names of the parameters searched.
    """

    def __init__(
        self, frame: pd.DataFrame, sweeps: list[SweepResult], parameters: list[str]
    ) -> None:
        self.frame = frame
        self.sweeps = sweeps
        self.parameters = parameters

    @property
    def summary(self) -> pd.Series:
        """Mean in-sample and out-of-sample objective, and their ratio (the efficiency).

        An efficiency far below 1 means the in-sample results do not carry over: the
        optimisation fits noise.
        """
        import pandas as pd

        ins = float(self.frame["in_sample"].mean())
        oos = float(self.frame["out_of_sample"].mean())
        ratio = oos / ins if ins and math.isfinite(ins) else math.nan
        return pd.Series(
            {
                "in-sample (mean)": ins,
                "out-of-sample (mean)": oos,
                "efficiency": ratio,
                "windows": len(self.frame),
            }
        )

    def plot(self, ax: Axes | None = None) -> Axes:
        """Bars of the in-sample and out-of-sample objective of each window."""
        from ibkrfw.reports.plots import plot_in_and_out_of_sample

        return plot_in_and_out_of_sample(self.frame, ax)


def walk_forward(
    setup: Backtest,
    sets: Sequence[Mapping[str, Any]],
    *,
    train: object,
    test: object,
    anchored: bool = False,
    executor: Executor | None = None,
    workers: int | None = None,
    progress: bool | Progress | None = False,
    maximize: bool = True,
    warm_up: Literal["lead-in", "none"] = "lead-in",
) -> WalkForwardResult:
    """Optimise over each in-sample span, then run the best parameters on the span after it.

    Every parameter set runs on every in-sample span (with the data sent to the workers once
    for the whole analysis, and the spans cut there). The out-of-sample run starts early by the
    strategy's :attr:`~ibkrfw.Strategy.warmup_bars` (``warm_up="lead-in"``), so its
    indicators are ready when the span begins; during the lead-in the indicators are not ready
    and a strategy that waits for them does not trade. The out-of-sample score and return are
    those of the span alone (:meth:`RunResult.since <ibkrfw.RunResult.since>`), so the
    lead-in's flat bars do not dilute per-bar ratios such as a Sharpe ratio.

    Args:
        setup: The backtest (its feeds must be cut by time: DataFrameFeed, CSVFeed).
        sets: The parameter sets searched in each window.
        train: The in-sample length (``"730D"``, ``"104W"``, ``"24MS"``...).
        test: The out-of-sample length.
        anchored: Anchor every in-sample span at the start of the data.
        executor: Where to run (see :func:`~ibkrfw.optimize.run_sweep`).
        workers: The size of the pool made here.
        progress: True (or None) for a progress bar on stderr, moved as each run finishes
            (see :func:`~ibkrfw.optimize.run_sweep`); False (the default) for none; or a
            function of (done, total).
        maximize: Whether a larger objective is better.
        warm_up: ``"lead-in"`` or ``"none"`` (the out-of-sample run starts cold).

    Raises:
        ConfigError: for bad lengths (not lengths of time, or not above zero), feeds that
            cannot be cut, no parameter sets, or a ``progress`` that is none of the above.
    """
    import pandas as pd

    check_progress(progress, "walk_forward", callable_ok=True)
    if not sets:
        raise ConfigError("no parameter sets to run")
    _check_objective_name(setup, sets)
    stamps = np.unique(np.concatenate([_stamps(feed) for feed in setup.feeds]))
    if not len(stamps):
        raise ConfigError("the feeds have no bars")
    steps = windows(int(stamps[0]), int(stamps[-1]) + 1, train=train, test=test, anchored=anchored)
    setup.between(None, None)  # fails early for feeds that cannot be cut
    total = len(steps) * len(sets)
    done = 0
    names = list(sets[0])
    rows: list[dict[str, Any]] = []
    sweeps: list[SweepResult] = []
    with (
        Runner(setup, executor, workers) as runner,
        _reporting(progress, f"walk-forward, {len(steps)} windows", total) as report,
    ):

        def count(_: int, __: int) -> None:
            nonlocal done
            done += 1
            if report is not None:
                report(done, total)

        for number, w in enumerate(steps):
            found = runner.run(sets, (w.train_start, w.train_end), count)
            sweep = SweepResult.from_rows(
                found, names, maximize=maximize, objective=setup.objective_name
            )
            sweeps.append(sweep)
            row: dict[str, Any] = {
                "window": number,
                "train_start": pd.Timestamp(w.train_start, tz="UTC"),
                "train_end": pd.Timestamp(w.train_end, tz="UTC"),
                "test_start": pd.Timestamp(w.test_start, tz="UTC"),
                "test_end": pd.Timestamp(w.test_end, tz="UTC"),
            }
            try:
                best = sweep.best_params
            except ConfigError as exc:
                rows.append({**row, "in_sample": math.nan, "out_of_sample": math.nan,
                             "out_of_sample_return": math.nan, "error": str(exc)})  # fmt: skip
                continue
            lead = w.test_start
            if warm_up == "lead-in":
                need = setup.strategy(**{**setup.fixed, **best}).warmup_bars
                at = int(np.searchsorted(stamps, w.test_start, "left"))
                lead = int(stamps[max(at - need, 0)])
            test_job = setup.between(lead, w.test_end)
            try:
                result = test_job.run(best).since(w.test_start)  # without the lead-in
                oos = test_job.score(result)
                oos_return = float(result.stats.get("Total return [%]", math.nan))
                error = ""
            except Exception as exc:  # the chosen set fails out of sample: say so, go on
                oos, oos_return, error = math.nan, math.nan, f"{type(exc).__name__}: {exc}"
            rows.append({**row, **best, "in_sample": sweep.best_value, "out_of_sample": oos,
                         "out_of_sample_return": oos_return, "error": error})  # fmt: skip
    frame = pd.DataFrame(rows).set_index("window")
    return WalkForwardResult(frame, sweeps, names)


def _stamps(feed: object) -> np.ndarray[Any, np.dtype[np.int64]]:
    instruments = getattr(feed, "instruments", ())
    arrays = [feed.history_arrays(inst) for inst in instruments]  # type: ignore[attr-defined]
    columns = [a.ts_ns for a in arrays if a is not None]
    if not columns:
        raise ConfigError(
            f"{type(feed).__name__} has no stored bars to cut: use a DataFrameFeed or CSVFeed"
        )
    return np.concatenate(columns)
