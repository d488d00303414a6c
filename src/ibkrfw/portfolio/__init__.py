"""Layer 2: the portfolio ledger, its read-only view, and exchange rates."""

from ibkrfw.portfolio.fx import FxRates
from ibkrfw.portfolio.portfolio import Portfolio, PortfolioView, Trade, round_trips

__all__ = ["FxRates", "Portfolio", "PortfolioView", "Trade", "round_trips"]
