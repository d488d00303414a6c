"""Technical indicators: incremental (O(1) per bar) for strategies, vectorised for research.

Each indicator comes in both forms, which agree to 1e-9 on the same data: a class with
``update`` (and ``ready``, ``warmup``) and a function over whole numpy arrays.
"""

from ibkrfw.indicators.core import Indicator
from ibkrfw.indicators.moving import EMA, SMA, ema, sma
from ibkrfw.indicators.technical import (
    ATR,
    MACD,
    RSI,
    WMA,
    Bands,
    BollingerBands,
    MACDLines,
    RateOfChange,
    RollingVolatility,
    ZScore,
    atr,
    bollinger,
    macd,
    rate_of_change,
    rsi,
    volatility,
    wma,
    zscore,
)

__all__ = [
    "ATR",
    "Bands",
    "BollingerBands",
    "EMA",
    "Indicator",
    "MACD",
    "MACDLines",
    "RSI",
    "RateOfChange",
    "RollingVolatility",
    "SMA",
    "WMA",
    "ZScore",
    "atr",
    "bollinger",
    "ema",
    "macd",
    "rate_of_change",
    "rsi",
    "sma",
    "volatility",
    "wma",
    "zscore",
]
