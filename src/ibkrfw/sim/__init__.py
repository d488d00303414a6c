"""The simulation adapter: SimBroker, commission models and historical feeds."""

from ibkrfw.sim.broker import SimBroker
from ibkrfw.sim.commission import (
    CommissionModel,
    PercentCommission,
    PerShareCommission,
    ZeroCommission,
)
from ibkrfw.sim.feeds import CSVFeed, DataFrameFeed, frame_to_arrays

__all__ = [
    "CSVFeed",
    "CommissionModel",
    "DataFrameFeed",
    "PerShareCommission",
    "PercentCommission",
    "SimBroker",
    "ZeroCommission",
    "frame_to_arrays",
]
