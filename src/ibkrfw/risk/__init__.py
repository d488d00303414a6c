"""Layer 2: risk rules shared by backtest and live trading."""

from ibkrfw.risk.limits import (
    ExposureLimit,
    MaxOrderNotional,
    MaxPosition,
    OrderRateLimit,
    RestrictedList,
    TradingHours,
)
from ibkrfw.risk.rule import MaxOrderQuantity, RiskDecision, RiskRule

__all__ = [
    "ExposureLimit",
    "MaxOrderNotional",
    "MaxOrderQuantity",
    "MaxPosition",
    "OrderRateLimit",
    "RestrictedList",
    "RiskDecision",
    "RiskRule",
    "TradingHours",
]
