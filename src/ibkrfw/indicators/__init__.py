"""Technical indicators: incremental for strategies, vectorised for research."""

from ibkrfw.indicators.moving import EMA, SMA, ema, sma

__all__ = ["EMA", "SMA", "ema", "sma"]
