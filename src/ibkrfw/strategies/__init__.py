"""Ready-made strategies (each is also an example of how to write one)."""

from ibkrfw.strategies.covered_call import CoveredCall
from ibkrfw.strategies.futures import FutureRoller, FuturesTrend, RollAttempt
from ibkrfw.strategies.ma_crossover import MovingAverageCrossover
from ibkrfw.strategies.mean_reversion import MeanReversion
from ibkrfw.strategies.momentum import CrossSectionalMomentum, TimeSeriesMomentum
from ibkrfw.strategies.target_weights import TargetWeights

__all__ = [
    "CoveredCall",
    "CrossSectionalMomentum",
    "FutureRoller",
    "FuturesTrend",
    "MeanReversion",
    "MovingAverageCrossover",
    "RollAttempt",
    "TargetWeights",
    "TimeSeriesMomentum",
]
