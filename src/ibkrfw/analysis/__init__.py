"""Performance metrics on arrays, behind ``RunResult.stats``.

Plots and reports of runs are in :mod:`ibkrfw.reports`.
"""

from ibkrfw.analysis.correlation import (
    correlation_matrix,
    diversification_ratio,
    returns_of,
    rolling_correlation,
)
from ibkrfw.analysis.formatting import format_stats
from ibkrfw.analysis.metrics import (
    Drawdown,
    TradeStats,
    alpha_beta,
    annual_volatility,
    cagr,
    calmar_ratio,
    drawdown,
    longest_under_water,
    max_drawdown,
    periods_per_year,
    rolling_sharpe,
    rolling_volatility,
    sharpe_ratio,
    simple_returns,
    sortino_ratio,
    time_under_water,
    total_return,
    trade_stats,
)

__all__ = [
    "Drawdown",
    "TradeStats",
    "alpha_beta",
    "annual_volatility",
    "cagr",
    "calmar_ratio",
    "correlation_matrix",
    "diversification_ratio",
    "drawdown",
    "format_stats",
    "longest_under_water",
    "max_drawdown",
    "periods_per_year",
    "returns_of",
    "rolling_correlation",
    "rolling_sharpe",
    "rolling_volatility",
    "sharpe_ratio",
    "simple_returns",
    "sortino_ratio",
    "time_under_water",
    "total_return",
    "trade_stats",
]
