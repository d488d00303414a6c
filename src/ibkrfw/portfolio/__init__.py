"""Layer 2: the portfolio ledger, its read-only view, exchange rates and rebalancing."""

from ibkrfw.portfolio.fx import FxRates
from ibkrfw.portfolio.portfolio import Portfolio, PortfolioView, Trade, round_trips
from ibkrfw.portfolio.rebalance import RebalancePlan, Schedule, drift, plan_rebalance

__all__ = [
    "FxRates",
    "Portfolio",
    "PortfolioView",
    "RebalancePlan",
    "Schedule",
    "Trade",
    "drift",
    "plan_rebalance",
    "round_trips",
]
