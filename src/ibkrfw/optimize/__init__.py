"""Parameter search and walk-forward analysis, on any ``concurrent.futures`` executor.

Describe the backtest once (:class:`Backtest`), then search a grid (:func:`grid_search`) or
random draws (:func:`random_search`), or walk forward (:func:`walk_forward`). Runs go to a
process pool by default, or to any executor (a Dask cluster's ``client.get_executor()``
included); the data is sent to each worker once, or named by reference
(:class:`StoredBars`) for each worker to read itself. A :class:`SweepJournal` records each
finished set, so that a stopped sweep resumes where it stopped.
"""

from ibkrfw.optimize.journal import SweepJournal
from ibkrfw.optimize.search import grid_search, random_search
from ibkrfw.optimize.space import IntUniform, LogUniform, Uniform, grid, sample
from ibkrfw.optimize.stored import StoredBars
from ibkrfw.optimize.sweep import (
    Backtest,
    Runner,
    SweepResult,
    check_statistic,
    run_sweep,
    statistic_names,
)
from ibkrfw.optimize.walkforward import (
    WalkForwardResult,
    Window,
    check_lengths,
    walk_forward,
    windows,
)

__all__ = [
    "Backtest",
    "IntUniform",
    "LogUniform",
    "Runner",
    "StoredBars",
    "SweepJournal",
    "SweepResult",
    "Uniform",
    "WalkForwardResult",
    "Window",
    "check_statistic",
    "check_lengths",
    "grid",
    "grid_search",
    "random_search",
    "run_sweep",
    "sample",
    "statistic_names",
    "walk_forward",
    "windows",
]
