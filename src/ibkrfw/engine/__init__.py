"""Layer 3: the engine loop and its result."""

from ibkrfw.engine.engine import Engine, EngineObserver, TradingState
from ibkrfw.engine.result import RunResult
from ibkrfw.engine.sleeves import Sleeve

__all__ = ["Engine", "EngineObserver", "RunResult", "Sleeve", "TradingState"]
