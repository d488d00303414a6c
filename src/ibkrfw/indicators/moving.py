"""Moving averages, incremental (O(1) per update) and vectorised (whole arrays)."""

from __future__ import annotations

import math
from typing import final

import numpy as np
import numpy.typing as npt

from ibkrfw.errors import ConfigError
from ibkrfw.indicators.core import Indicator

__all__ = ["EMA", "SMA", "ema", "sma"]

FloatArray = npt.NDArray[np.float64]


def _check_period(period: int) -> int:
    if isinstance(period, bool) or not isinstance(period, int) or period < 1:
        raise ConfigError(f"period must be a positive int, got {period!r}")
    return period


@final
class SMA(Indicator):
    """Simple moving average, updated one value at a time in O(1).

    ``value`` is NaN until ``period`` values have been seen (``ready`` says when).
    The running sum is recomputed exactly once per ``period`` updates, so rounding errors never
    accumulate over long runs.

    Args:
        period: Number of values averaged.

    Raises:
        ConfigError: if ``period`` is not a positive int.

    Example:
        >>> sma = SMA(3)
        >>> [sma.update(x) for x in (1.0, 2.0, 3.0, 4.0)]
        [nan, nan, 2.0, 3.0]
    """

    __slots__ = ("_buf", "_i", "_left", "_sum", "period", "value")

    def __init__(self, period: int) -> None:
        self.period = _check_period(period)
        self._buf = [0.0] * period
        self._i = 0
        self._left = period  # values still needed before the average is ready
        self._sum = 0.0
        self.value = math.nan

    @property
    def warmup(self) -> int:
        """``period`` values."""
        return self.period

    @property
    def ready(self) -> bool:
        """Whether ``period`` values have been seen."""
        return not self._left

    def fresh(self) -> SMA:
        """A new SMA of the same period."""
        return SMA(self.period)

    def update(self, x: float) -> float:
        """Add ``x`` and return the new average (NaN while warming up)."""
        buf = self._buf
        i = self._i
        self._sum += x - buf[i]
        buf[i] = x
        i += 1
        if i == self.period:
            i = 0
            self._sum = math.fsum(buf)  # exact resync once per window
        self._i = i
        if self._left:
            self._left -= 1
            if self._left:
                return math.nan
        value = self.value = self._sum / self.period
        return value


@final
class EMA(Indicator):
    """Exponential moving average, updated one value at a time in O(1).

    Uses ``alpha = 2 / (period + 1)`` and is seeded with the simple average of the first
    ``period`` values (NaN before that).

    Example:
        >>> ema = EMA(2)
        >>> [round(ema.update(x), 4) for x in (1.0, 3.0, 6.0)]
        [nan, 2.0, 4.6667]
    """

    __slots__ = ("_alpha", "_n", "_seed", "period", "value")

    def __init__(self, period: int) -> None:
        self.period = _check_period(period)
        self._alpha = 2.0 / (period + 1)
        self._n = 0
        self._seed = 0.0
        self.value = math.nan

    @property
    def warmup(self) -> int:
        """``period`` values."""
        return self.period

    @property
    def ready(self) -> bool:
        """Whether ``period`` values have been seen."""
        return self._n >= self.period

    def fresh(self) -> EMA:
        """A new EMA of the same period."""
        return EMA(self.period)

    def update(self, x: float) -> float:
        """Add ``x`` and return the new average (NaN while warming up)."""
        if self._n >= self.period:
            value = self.value = self.value + self._alpha * (x - self.value)
            return value
        self._n += 1
        self._seed += x
        if self._n == self.period:
            self.value = self._seed / self.period
        return self.value


def sma(values: FloatArray, period: int) -> FloatArray:
    """Return the simple moving average of ``values`` (NaN for the first ``period - 1``)."""
    _check_period(period)
    x = np.asarray(values, dtype=np.float64)
    out = np.full(len(x), np.nan)
    if len(x) >= period:
        windows = np.lib.stride_tricks.sliding_window_view(x, period)
        out[period - 1 :] = windows.mean(axis=1)
    return out


def ema(values: FloatArray, period: int) -> FloatArray:
    """Return the exponential moving average of ``values``, seeded like :class:`EMA`."""
    _check_period(period)
    x = np.asarray(values, dtype=np.float64)
    out = np.full(len(x), np.nan)
    if len(x) < period:
        return out
    alpha = 2.0 / (period + 1)
    value = float(x[:period].mean())
    out[period - 1] = value
    for i in range(period, len(x)):
        value = value + alpha * (float(x[i]) - value)
        out[i] = value
    return out
