"""Ready-made strategies (each is also an example of how to write one)."""

from ibkrfw.strategies.ma_crossover import MovingAverageCrossover

__all__ = ["MovingAverageCrossover"]
