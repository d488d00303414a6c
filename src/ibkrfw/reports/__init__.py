"""Plots and reports of runs: matplotlib figures and one-file HTML reports.

matplotlib is imported only when something is drawn, never by ``import ibkrfw``.
"""

from ibkrfw.reports.html import compare, render_report, write_report
from ibkrfw.reports.plots import (
    monthly_returns,
    plot_comparison,
    plot_correlation,
    plot_drawdown,
    plot_equity,
    plot_in_and_out_of_sample,
    plot_monthly_returns,
    plot_parameter_heatmap,
    plot_returns_distribution,
    plot_rolling_sharpe,
    plot_trades,
    tearsheet,
)

__all__ = [
    "compare",
    "monthly_returns",
    "plot_comparison",
    "plot_correlation",
    "plot_drawdown",
    "plot_equity",
    "plot_in_and_out_of_sample",
    "plot_monthly_returns",
    "plot_parameter_heatmap",
    "plot_returns_distribution",
    "plot_rolling_sharpe",
    "plot_trades",
    "render_report",
    "tearsheet",
    "write_report",
]
