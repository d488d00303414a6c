"""Run one backtest per parameter set, on any ``concurrent.futures`` executor.

The setup (strategy, feeds, broker, rules, objective) travels to each worker once: through the
process pool's initializer when the sweep makes its own pool, through ``Client.scatter`` on a
Dask cluster; a thread pool shares it. One failing parameter set is a row with its error, not
the end of the sweep.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import math
import multiprocessing
import os
import signal
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from typing import TYPE_CHECKING, Any, final

import attrs

from ibkrfw._progress import check as check_progress
from ibkrfw._progress import make_bar
from ibkrfw.engine.engine import Engine
from ibkrfw.engine.result import RunResult
from ibkrfw.errors import ConfigError
from ibkrfw.optimize.journal import SweepJournal
from ibkrfw.optimize.stored import StoredBars
from ibkrfw.ports import Broker, DataFeed
from ibkrfw.risk.rule import RiskRule
from ibkrfw.strategy import Strategy

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes

__all__ = [
    "Backtest",
    "Runner",
    "SweepResult",
    "check_statistic",
    "run_one",
    "run_sweep",
    "statistic_names",
]

Objective = str | Callable[[RunResult], float]
Progress = Callable[[int, int], None]
REPORTED = ("Total return [%]", "Sharpe ratio", "Max drawdown [%]", "Trades")
"""The statistics every row of a sweep carries (the objective's column too, if it is one)."""


@functools.cache
def statistic_names() -> tuple[str, ...]:
    """The names of the rows of :attr:`RunResult.stats <ibkrfw.RunResult.stats>`, in order.

    They are the same for every run (the names are stable), so they are read from the
    statistics of an empty run: nothing is backtested.

    Example:
        >>> "Sharpe ratio" in statistic_names()
        True
    """
    import numpy as np

    one = np.array([0], dtype=np.int64)
    empty = RunResult(
        strategy_name="", parameters={}, starting_cash=1.0, timestamps_ns=one,
        equity=np.ones(1), cash=np.ones(1), orders=[], fills=[],
    )  # fmt: skip
    return tuple(str(name) for name in empty.stats.index)


def check_statistic(name: str, option: str = "objective") -> None:
    """Refuse ``name`` unless it is one of :func:`statistic_names`, suggesting the nearest.

    Args:
        name: The statistic's name, e.g. ``"Sharpe ratio"``.
        option: How the setting is named in the message (``"--objective"`` for the command).

    Raises:
        ConfigError: if no statistic has that name.
    """
    known = statistic_names()
    if name in known:
        return
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.5)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ConfigError(
        f"{option} {name!r}: no statistic {name!r}; {hint}the statistics: {', '.join(known)}"
    )


def _as_feeds(feeds: Iterable[DataFeed]) -> tuple[DataFeed, ...]:
    return tuple(feeds)


def _loaded(feeds: tuple[DataFeed, ...]) -> tuple[DataFeed, ...]:
    """The feeds, bars named by reference replaced by the bars (read once per process)."""
    return tuple(feed.load() if isinstance(feed, StoredBars) else feed for feed in feeds)


def _default_broker() -> Broker:
    from ibkrfw.sim.broker import SimBroker

    return SimBroker()


@final
@attrs.frozen
class Backtest:
    """Everything but the parameters: what a worker needs to run one backtest.

    Args:
        strategy: The strategy class (or any callable taking the parameters as keywords and
            returning a strategy); it must be importable by the workers (defined in a module,
            or in a script under ``if __name__ == "__main__":``).
        feeds: The data; reused for every run (feeds of arrays, such as
            :class:`~ibkrfw.sim.DataFrameFeed`, can be iterated again and again).
        broker: Builds a fresh broker for each run (``functools.partial(SimBroker, ...)``).
        risk_rules: Builds the risk rules for each run (rules may keep state), if any.
        objective: The statistic to rank by (a row of :attr:`RunResult.stats
            <ibkrfw.RunResult.stats>`) or a function of the result; its column in a sweep's
            results is named by :attr:`objective_name`.
        fixed: Parameters given to every run, under the ones searched.

    Raises:
        ConfigError: if ``objective`` names no statistic (the nearest name is suggested) or
            is neither a name nor a function.
    """

    strategy: Callable[..., Strategy]
    feeds: tuple[DataFeed, ...] = attrs.field(converter=_as_feeds)
    broker: Callable[[], Broker] = _default_broker
    risk_rules: Callable[[], Sequence[RiskRule]] | None = None
    objective: Objective = attrs.field(default="Sharpe ratio")
    fixed: Mapping[str, Any] = attrs.field(factory=dict)

    @objective.validator
    def _check_objective(self, attribute: object, value: object) -> None:
        if isinstance(value, str):
            check_statistic(value)
        elif not callable(value):
            raise ConfigError(
                f"objective must be a statistic's name or a function of the result, got {value!r}"
            )

    @property
    def objective_name(self) -> str:
        """The name of the objective's column (the statistic, or the function's name).

        A lambda or a nameless callable (a ``functools.partial``) gives ``"objective"``.
        """
        if not callable(self.objective):
            return self.objective
        name = getattr(self.objective, "__name__", "")
        return name if isinstance(name, str) and name.isidentifier() else "objective"

    def between(self, start_ns: int | None, end_ns: int | None) -> Backtest:
        """The same backtest on the bars from ``start_ns`` (included) to ``end_ns`` (excluded).

        Raises:
            ConfigError: if a feed cannot be cut by time (it has no ``between``).
        """
        cut = []
        for feed in _loaded(self.feeds):
            between = getattr(feed, "between", None)
            if between is None:
                raise ConfigError(
                    f"{type(feed).__name__} cannot be cut by time: use a DataFrameFeed or "
                    "CSVFeed for walk-forward analysis"
                )
            cut.append(between(start_ns, end_ns))
        return attrs.evolve(self, feeds=tuple(cut))

    def run(self, params: Mapping[str, Any]) -> RunResult:
        """Run the backtest with ``params`` (over the ``fixed`` ones)."""
        strategy = self.strategy(**{**self.fixed, **params})
        rules = self.risk_rules() if self.risk_rules is not None else ()
        return Engine(strategy, _loaded(self.feeds), self.broker(), risk_rules=rules).run()

    def score(self, result: RunResult) -> float:
        """The objective's value for ``result`` (NaN when it is not a finite number)."""
        if callable(self.objective):
            value = self.objective(result)
        else:
            stats = result.stats
            if self.objective not in stats.index:
                raise ConfigError(
                    f"no statistic {self.objective!r}; known: {', '.join(map(str, stats.index))}"
                )
            value = stats[self.objective]
        try:
            number = float(value)
        except (TypeError, ValueError):
            return math.nan
        return number if math.isfinite(number) else math.nan


_INSTALLED: Backtest | None = None  # the setup a worker process received once


def _install(setup: Backtest) -> None:
    global _INSTALLED
    _INSTALLED = setup
    # Ctrl-C reaches the whole process group: the parent stops the sweep and shuts the pool
    # down; a worker that took the signal too would print a traceback of its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


Window = tuple[int | None, int | None] | None


def run_one(
    index: int, params: Mapping[str, Any], setup: Backtest | None, window: Window = None
) -> dict[str, Any]:
    """Run one parameter set (on a time window of the data, if given); return its row.

    Never raises: an error becomes the row's ``error``.
    """
    job = setup if setup is not None else _INSTALLED
    row: dict[str, Any] = {"_index": index, **params}
    if job is None:  # pragma: no cover - a pool without the initializer
        row.update(objective=math.nan, error="RuntimeError: the worker has no backtest setup")
        return row
    column = job.objective_name
    try:
        if window is not None:
            job = job.between(*window)
        result = job.run(params)
        row[column] = job.score(result)
        stats = result.stats
        for name in REPORTED:
            if name != column:  # the objective's own column holds its score
                row[name] = stats.get(name, math.nan)
        row["error"] = ""
    except Exception as exc:  # one failing set must not end the sweep
        row[column] = math.nan
        last = traceback.extract_tb(exc.__traceback__)[-1:]
        where = f" (at {last[0].filename.rsplit(os.sep, 1)[-1]}:{last[0].lineno})" if last else ""
        row["error"] = f"{type(exc).__name__}: {exc}{where}"
    return row


def _is_dask(executor: Executor) -> bool:
    return type(executor).__module__.split(".")[0] == "distributed"


def _spawn() -> multiprocessing.context.SpawnContext:
    return multiprocessing.get_context("spawn")


class Runner:
    """Runs parameter sets of one setup on an executor; the setup is sent to workers once.

    Use it as a context manager; it closes the pool it made (not one it was given).
    """

    def __init__(
        self, setup: Backtest, executor: Executor | None = None, workers: int | None = None
    ) -> None:
        if workers is not None and (isinstance(workers, bool) or workers < 1):
            raise ConfigError(f"workers must be a positive int, got {workers!r}")
        self.setup = setup
        self._own: ProcessPoolExecutor | None = None
        self._executor: Executor | None = executor
        self._payload: object = setup  # what each task carries to find the setup
        if executor is None and (workers or os.cpu_count() or 1) > 1:
            self._own = ProcessPoolExecutor(
                max_workers=workers or os.cpu_count(),
                mp_context=_spawn(),
                initializer=_install,
                initargs=(setup,),
            )
            self._executor, self._payload = self._own, None
        elif executor is not None and _is_dask(executor):
            client = executor._client  # type: ignore[attr-defined]
            self._payload = client.scatter(setup, broadcast=True)  # once per worker

    @property
    def shipped(self) -> object:
        """What each task carries to find the setup.

        None when a pool made here installed it in each worker, a Dask future of the setup
        scattered to every worker, or the setup itself (run here, or on a thread pool).
        """
        return self._payload

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        # Stopped early (Ctrl-C, an error): the runs not started yet are dropped, only those
        # running are waited for.
        self.close(cancel=kind is not None)

    def close(self, *, cancel: bool = False) -> None:
        """Shut the pool down if this runner made it.

        Args:
            cancel: drop the runs not started yet instead of running them first.
        """
        if self._own is not None:
            self._own.shutdown(cancel_futures=cancel)
            self._own = None

    def run(
        self,
        sets: Sequence[Mapping[str, Any]],
        window: Window = None,
        progress: Progress | None = None,
        *,
        done: Mapping[int, Mapping[str, Any]] | None = None,
        record: Callable[[dict[str, Any]], object] | None = None,
    ) -> list[dict[str, Any]]:
        """Run every set (on ``window`` of the data); the rows in completion order.

        Args:
            sets: The parameter sets; a row's ``_index`` is its set's position here.
            window: The time window of the data to run on (None: all of it).
            progress: Called with (done, total) after each run (the ``done`` rows count).
            done: Rows already finished, by index (from a journal): their sets are not run
                again and their rows come first.
            record: Called with each new row as it finishes (a journal's ``record``).
        """
        rows: list[dict[str, Any]] = [dict(row) for row in (done or {}).values()]
        total = len(sets)
        todo = [(i, params) for i, params in enumerate(sets) if i not in (done or {})]
        if progress is not None and rows:
            progress(len(rows), total)

        def collect(row: dict[str, Any]) -> None:
            if record is not None:
                record(row)
            rows.append(row)
            if progress is not None:
                progress(len(rows), total)

        if self._executor is None:
            for i, params in todo:
                collect(run_one(i, params, self.setup, window))
            return rows
        futures: list[Future[dict[str, Any]]] = [
            self._executor.submit(run_one, i, dict(params), self._payload, window)  # type: ignore[arg-type]
            for i, params in todo
        ]
        for future in as_completed(futures):
            collect(future.result())
        return rows


def run_sweep(
    setup: Backtest,
    sets: Sequence[Mapping[str, Any]],
    *,
    executor: Executor | None = None,
    workers: int | None = None,
    progress: bool | Progress | None = False,
    maximize: bool = True,
    journal: str | os.PathLike[str] | SweepJournal | None = None,
) -> SweepResult:
    """Run ``setup`` once per parameter set and collect the results.

    Args:
        setup: The backtest without its parameters.
        sets: The parameter sets (from :func:`~ibkrfw.optimize.grid` or
            :func:`~ibkrfw.optimize.sample`).
        executor: Where to run: None for a process pool of ``workers`` made (and closed) here,
            any :class:`concurrent.futures.Executor` otherwise (a Dask cluster's
            ``client.get_executor()`` included).
        workers: The size of the pool made here (the number of CPUs by default; 1 runs
            everything in this process, without a pool).
        progress: True (or None) for a progress bar on stderr, moved as each run finishes, on
            the pool or the Dask cluster alike (a bar in a terminal, a widget in Jupyter with
            ipywidgets, a few plain lines in a log); False (the default) for none; or a
            function called with (done, total) after each run.
        maximize: Whether a larger objective is better.
        journal: A file (or a :class:`~ibkrfw.optimize.SweepJournal`) recording each
            finished set: the sets it already holds are not run again (the progress counts
            them as done), so a sweep stopped by a crash, a kill or Ctrl-C resumes where it
            stopped and ends with the table of one uninterrupted run. A journal of another
            sweep is refused.

    Returns:
        The results, one row per parameter set.

    Raises:
        ConfigError: if there is nothing to run, ``workers`` is not positive, ``progress``
            is none of the above, bars named by reference (:class:`StoredBars`) cannot be
            read (checked before any run), or ``journal`` records another sweep.
    """
    check_progress(progress, "run_sweep", callable_ok=True)
    if not sets:
        raise ConfigError("no parameter sets to run")
    _check_objective_name(setup, sets)
    for feed in setup.feeds:
        if isinstance(feed, StoredBars):
            feed.check()  # here, before any run: not once per task on the workers
    book = SweepJournal(journal) if isinstance(journal, str | os.PathLike) else journal
    done = book.start(setup, sets) if book is not None else {}
    try:
        with (
            Runner(setup, executor, workers) as runner,
            _reporting(progress, f"sweep of {len(sets)}", len(sets)) as report,
        ):
            rows = runner.run(
                sets, progress=report, done=done, record=None if book is None else book.record
            )
    finally:
        if book is not None:
            book.close()
    return SweepResult.from_rows(
        rows, list(sets[0]), maximize=maximize, objective=setup.objective_name
    )


def _check_objective_name(setup: Backtest, sets: Sequence[Mapping[str, Any]]) -> None:
    """Refuse an objective whose column would overwrite a parameter or the error column.

    Raises:
        ConfigError: if the objective's name is a parameter's name or ``"error"``.
    """
    name = setup.objective_name
    taken = set(sets[0]) | set(setup.fixed) | {"error"}
    if name in taken:
        raise ConfigError(
            f"the objective's column would be named {name!r}, which is taken by a parameter "
            "or the error column: give the objective function another name"
        )


@contextlib.contextmanager
def _reporting(
    progress: bool | Progress | None, desc: str, total: int
) -> Iterator[Progress | None]:
    """What reports a sweep's progress: the user's function, a progress bar, or nothing."""
    if progress is False:
        yield None
        return
    if callable(progress):
        yield progress
        return
    meter = make_bar(total=total, desc=desc, unit="run")

    def report(done: int, total: int) -> None:
        meter.update(done - meter.n)

    try:
        yield report
    finally:
        meter.close()


@final
class SweepResult:
    """The results of a sweep: one row per parameter set, best first.

    Attributes:
        frame: The parameters, the objective under its own name (``"Sharpe ratio"``, or the
            objective function's name), the other reported statistics and ``error`` (empty
            when the run succeeded), best objective first, failures last.
        parameters: The names of the parameters searched.
        maximize: Whether a larger objective is better.
        objective: The name of the objective's column in :attr:`frame`.
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        parameters: list[str],
        maximize: bool,
        objective: str = "objective",
    ) -> None:
        self.frame = frame
        self.parameters = parameters
        self.maximize = maximize
        self.objective = objective

    @classmethod
    def from_rows(
        cls,
        rows: Iterable[Mapping[str, Any]],
        parameters: list[str],
        *,
        maximize: bool,
        objective: str | None = None,
    ) -> SweepResult:
        """Build the result from the rows of the runs, in any order.

        Args:
            rows: The rows of :meth:`~ibkrfw.optimize.Runner.run`.
            parameters: The names of the parameters searched.
            maximize: Whether a larger objective is better.
            objective: The objective's column
                (:attr:`~ibkrfw.optimize.Backtest.objective_name`); if None, the one column
                that is neither a parameter, a reported statistic nor ``error``.

        Raises:
            ConfigError: if the rows have no such column, or ``objective`` is None and it
                cannot be told.
        """
        import pandas as pd

        frame = pd.DataFrame(list(rows)).sort_values("_index").set_index("_index")
        frame.index.name = "run"
        if objective is None:
            known = {*parameters, *REPORTED, "error"}
            others = [str(c) for c in frame.columns if c not in known]
            if len(others) != 1:
                raise ConfigError(
                    "cannot tell which column is the objective: pass "
                    "objective=setup.objective_name (the Backtest's)"
                )
            objective = others[0]
        if objective not in frame.columns:
            raise ConfigError(
                f"the rows have no column {objective!r} for the objective; columns: "
                f"{', '.join(map(str, frame.columns))}"
            )
        frame = frame.sort_values(
            objective, ascending=not maximize, na_position="last", kind="stable"
        )
        return cls(frame, parameters, maximize, objective)

    @property
    def failures(self) -> pd.DataFrame:
        """The parameter sets whose run failed, with the error."""
        return self.frame[self.frame["error"] != ""]

    @property
    def best(self) -> pd.Series:
        """The best row (the first).

        Raises:
            ConfigError: if every run failed or none has a finite objective.
        """
        good = self.frame[self.objective].notna()
        if not good.any():
            raise ConfigError("no run of the sweep has a finite objective")
        return self.frame[good].iloc[0]

    @property
    def best_params(self) -> dict[str, Any]:
        """The parameters of the best row, as Python values."""
        row = self.best
        return {name: _plain(row[name]) for name in self.parameters}

    @property
    def best_value(self) -> float:
        """The best objective."""
        return float(self.best[self.objective])

    def table(self, x: str, y: str) -> pd.DataFrame:
        """The objective for each pair of values of two parameters (mean over the others).

        Raises:
            ConfigError: if ``x`` or ``y`` is not a parameter of the sweep.
        """
        for name in (x, y):
            if name not in self.parameters:
                raise ConfigError(f"{name!r} is not a parameter of the sweep: {self.parameters}")
        return self.frame.pivot_table(
            index=y, columns=x, values=self.objective, aggfunc="mean", dropna=False
        )

    def heatmap(self, x: str, y: str, ax: Axes | None = None) -> Axes:
        """Draw :meth:`table` as a heatmap (see :func:`ibkrfw.reports.plot_parameter_heatmap`).

        The title names the objective and the two parameters and says whether higher or
        lower is better; the colour bar is labelled with the objective.

        Raises:
            ConfigError: if ``x`` or ``y`` is not a parameter of the sweep.
        """
        from ibkrfw.reports.plots import plot_parameter_heatmap

        return plot_parameter_heatmap(
            self.table(x, y), ax, metric=self.objective, maximize=self.maximize
        )


def _plain(value: Any) -> Any:
    """Return numpy scalars as Python values."""
    item = getattr(value, "item", None)
    return item() if callable(item) else value
