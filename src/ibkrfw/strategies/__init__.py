"""Ready-made strategies (each is also an example of how to write one)."""

from ibkrfw.strategies.ma_crossover import MovingAverageCrossover
from ibkrfw.strategies.target_weights import TargetWeights

__all__ = ["MovingAverageCrossover", "TargetWeights"]
