"""The short forms: a grid or random search from a strategy, a space and the data."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from typing import Any

from ibkrfw.optimize.space import Range, grid, sample
from ibkrfw.optimize.sweep import (
    Backtest,
    Objective,
    Progress,
    SweepResult,
    _default_broker,
    run_sweep,
)
from ibkrfw.ports import Broker, DataFeed
from ibkrfw.risk.rule import RiskRule
from ibkrfw.strategy import Strategy

__all__ = ["grid_search", "random_search"]


def _feeds(feeds: DataFeed | Sequence[DataFeed]) -> tuple[DataFeed, ...]:
    return (feeds,) if isinstance(feeds, DataFeed) else tuple(feeds)


def grid_search(
    strategy: Callable[..., Strategy],
    space: Mapping[str, Sequence[Any] | range],
    feeds: DataFeed | Sequence[DataFeed],
    *,
    objective: Objective = "Sharpe ratio",
    maximize: bool = True,
    broker: Callable[[], Broker] = _default_broker,
    risk_rules: Callable[[], Sequence[RiskRule]] | None = None,
    fixed: Mapping[str, Any] | None = None,
    executor: Executor | None = None,
    workers: int | None = None,
    progress: bool | Progress = False,
) -> SweepResult:
    """Backtest every combination of ``space`` and rank them by ``objective``.

    Example:
        >>> from ibkrfw.data import sample_feed
        >>> from ibkrfw.strategies import MovingAverageCrossover
        >>> result = grid_search(MovingAverageCrossover, {"fast": [5, 10], "slow": [30, 60]},
        ...                      sample_feed(["ACME"]), workers=1)
        >>> sorted(result.best_params), len(result.frame)
        (['fast', 'slow'], 4)

    See :class:`~ibkrfw.optimize.Backtest` for the arguments that describe the backtest and
    :func:`~ibkrfw.optimize.run_sweep` for the others.
    """
    setup = Backtest(strategy, _feeds(feeds), broker, risk_rules, objective, dict(fixed or {}))
    return run_sweep(
        setup, grid(space), executor=executor, workers=workers, progress=progress,
        maximize=maximize,
    )  # fmt: skip


def random_search(
    strategy: Callable[..., Strategy],
    space: Mapping[str, Sequence[Any] | range | Range],
    feeds: DataFeed | Sequence[DataFeed],
    n: int,
    *,
    seed: int | None = None,
    objective: Objective = "Sharpe ratio",
    maximize: bool = True,
    broker: Callable[[], Broker] = _default_broker,
    risk_rules: Callable[[], Sequence[RiskRule]] | None = None,
    fixed: Mapping[str, Any] | None = None,
    executor: Executor | None = None,
    workers: int | None = None,
    progress: bool | Progress = False,
) -> SweepResult:
    """Backtest ``n`` random draws from ``space`` (the same ``seed``, the same draws).

    Ranges (:class:`~ibkrfw.optimize.Uniform`, :class:`~ibkrfw.optimize.IntUniform`,
    :class:`~ibkrfw.optimize.LogUniform`) are drawn from; lists are chosen from.
    """
    setup = Backtest(strategy, _feeds(feeds), broker, risk_rules, objective, dict(fixed or {}))
    return run_sweep(
        setup, sample(space, n, seed=seed), executor=executor, workers=workers,
        progress=progress, maximize=maximize,
    )  # fmt: skip
