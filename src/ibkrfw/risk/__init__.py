"""Layer 2: risk rules shared by backtest and live trading."""

from ibkrfw.risk.account import IB_INITIAL_MARGIN, BuyingPower, margin_rates
from ibkrfw.risk.limits import (
    ExposureLimit,
    MarginCheck,
    MaxOrderNotional,
    MaxPosition,
    OrderRateLimit,
    RestrictedList,
    TradingHours,
)
from ibkrfw.risk.market import CorrelationLimit, StaleDataGuard
from ibkrfw.risk.monitor import (
    CircuitBreaker,
    DailyLossLimit,
    Halt,
    MaintenanceMargin,
    MaxDrawdownKillSwitch,
    RiskMonitor,
)
from ibkrfw.risk.options import OptionExposureLimit
from ibkrfw.risk.protect import Protection, StopLoss, TakeProfit, waits_to_exit
from ibkrfw.risk.ramp import CapitalRamp, RampStep
from ibkrfw.risk.rule import LimitUsage, MaxOrderQuantity, RiskDecision, RiskRule, only_reduces

__all__ = [
    "BuyingPower",
    "CapitalRamp",
    "CircuitBreaker",
    "CorrelationLimit",
    "DailyLossLimit",
    "ExposureLimit",
    "Halt",
    "IB_INITIAL_MARGIN",
    "LimitUsage",
    "MaintenanceMargin",
    "MarginCheck",
    "MaxDrawdownKillSwitch",
    "MaxOrderNotional",
    "MaxOrderQuantity",
    "MaxPosition",
    "OptionExposureLimit",
    "OrderRateLimit",
    "Protection",
    "RampStep",
    "RestrictedList",
    "RiskDecision",
    "RiskMonitor",
    "RiskRule",
    "StaleDataGuard",
    "StopLoss",
    "TakeProfit",
    "TradingHours",
    "margin_rates",
    "only_reduces",
    "waits_to_exit",
]
