"""Layer 3: the engine loop and its result."""

from ibkrfw.engine.engine import Engine
from ibkrfw.engine.result import RunResult

__all__ = ["Engine", "RunResult"]
