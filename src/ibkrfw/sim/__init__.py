"""The simulation adapter: SimBroker, commission models and historical feeds."""

from ibkrfw.sim.broker import SimBroker
from ibkrfw.sim.commission import (
    IBKR_US_STOCK_FEES,
    CommissionModel,
    IBKRFixedCommission,
    IBKROptionCommission,
    IBKRTieredCommission,
    OrderSoFar,
    PercentCommission,
    PerShareCommission,
    USStockFees,
    ZeroCommission,
)
from ibkrfw.sim.depth import DepthFeed, DepthSource, depth_updates_from_frame
from ibkrfw.sim.feeds import CSVFeed, DataFrameFeed, frame_to_arrays
from ibkrfw.sim.slippage import (
    FixedBpsSlippage,
    HalfSpreadSlippage,
    SlippageModel,
    SquareRootImpactSlippage,
)

__all__ = [
    "CSVFeed",
    "CommissionModel",
    "DataFrameFeed",
    "DepthFeed",
    "DepthSource",
    "FixedBpsSlippage",
    "HalfSpreadSlippage",
    "IBKRFixedCommission",
    "IBKROptionCommission",
    "IBKRTieredCommission",
    "IBKR_US_STOCK_FEES",
    "OrderSoFar",
    "PerShareCommission",
    "PercentCommission",
    "SimBroker",
    "SlippageModel",
    "SquareRootImpactSlippage",
    "USStockFees",
    "ZeroCommission",
    "depth_updates_from_frame",
    "frame_to_arrays",
]
