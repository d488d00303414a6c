"""The simulation adapter: SimBroker, commission models and historical feeds."""

from ibkrfw.sim.broker import SimBroker
from ibkrfw.sim.commission import (
    IBKR_US_STOCK_FEES,
    CommissionModel,
    IBKRFixedCommission,
    IBKRTieredCommission,
    OrderSoFar,
    PercentCommission,
    PerShareCommission,
    USStockFees,
    ZeroCommission,
)
from ibkrfw.sim.feeds import CSVFeed, DataFrameFeed, frame_to_arrays

__all__ = [
    "CSVFeed",
    "CommissionModel",
    "DataFrameFeed",
    "IBKRFixedCommission",
    "IBKRTieredCommission",
    "IBKR_US_STOCK_FEES",
    "OrderSoFar",
    "PerShareCommission",
    "PercentCommission",
    "SimBroker",
    "USStockFees",
    "ZeroCommission",
    "frame_to_arrays",
]
