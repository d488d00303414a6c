"""Performance analytics (metrics now; reports and plots come with later releases)."""

from ibkrfw.analysis.metrics import (
    annual_volatility,
    cagr,
    max_drawdown,
    periods_per_year,
    sharpe_ratio,
    simple_returns,
    total_return,
)

__all__ = [
    "annual_volatility",
    "cagr",
    "max_drawdown",
    "periods_per_year",
    "sharpe_ratio",
    "simple_returns",
    "total_return",
]
