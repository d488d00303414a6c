"""Layer 2: risk rules shared by backtest and live trading."""

from ibkrfw.risk.limits import (
    ExposureLimit,
    MarginCheck,
    MaxOrderNotional,
    MaxPosition,
    OrderRateLimit,
    RestrictedList,
    TradingHours,
)
from ibkrfw.risk.monitor import (
    CircuitBreaker,
    DailyLossLimit,
    Halt,
    MaintenanceMargin,
    MaxDrawdownKillSwitch,
    RiskMonitor,
)
from ibkrfw.risk.rule import MaxOrderQuantity, RiskDecision, RiskRule

__all__ = [
    "CircuitBreaker",
    "DailyLossLimit",
    "ExposureLimit",
    "Halt",
    "MaintenanceMargin",
    "MarginCheck",
    "MaxDrawdownKillSwitch",
    "MaxOrderNotional",
    "MaxOrderQuantity",
    "MaxPosition",
    "OrderRateLimit",
    "RestrictedList",
    "RiskDecision",
    "RiskMonitor",
    "RiskRule",
    "TradingHours",
]
