"""Layer 2: risk rules shared by backtest and live trading."""

from ibkrfw.risk.rule import MaxOrderQuantity, RiskDecision, RiskRule

__all__ = ["MaxOrderQuantity", "RiskDecision", "RiskRule"]
