"""Layer 2: the ledgers (average cost, tax lots), their read-only view, rates, rebalancing."""

from ibkrfw.portfolio.fx import FxRates
from ibkrfw.portfolio.lots import ClosedLot, Lot, LotMethod, TaxLotPortfolio
from ibkrfw.portfolio.portfolio import (
    DelegatingLedger,
    Holding,
    Ledger,
    Portfolio,
    PortfolioView,
    Trade,
    round_trips,
)
from ibkrfw.portfolio.rebalance import RebalancePlan, Schedule, drift, plan_rebalance

__all__ = [
    "ClosedLot",
    "DelegatingLedger",
    "FxRates",
    "Holding",
    "Ledger",
    "Lot",
    "LotMethod",
    "Portfolio",
    "PortfolioView",
    "RebalancePlan",
    "Schedule",
    "TaxLotPortfolio",
    "Trade",
    "drift",
    "plan_rebalance",
    "round_trips",
]
