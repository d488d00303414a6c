"""Layer 2: the portfolio ledger and its read-only view."""

from ibkrfw.portfolio.portfolio import Portfolio, PortfolioView, Trade, round_trips

__all__ = ["Portfolio", "PortfolioView", "Trade", "round_trips"]
