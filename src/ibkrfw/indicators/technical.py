"""Oscillators, bands and volatility: each incremental (O(1) per value) and vectorised.

The two forms of each indicator agree to 1e-9 on the same data (tested on long random walks).
Incremental ones return NaN until :attr:`~ibkrfw.indicators.Indicator.ready`; vectorised
ones put NaN in the same places.
"""

from __future__ import annotations

import math
from collections import deque
from typing import NamedTuple, final

import numpy as np
import numpy.typing as npt

from ibkrfw.errors import ConfigError
from ibkrfw.indicators.core import Indicator, WindowSums, check_period
from ibkrfw.indicators.moving import EMA, ema
from ibkrfw.model.data import Bar

__all__ = [
    "ATR",
    "Bands",
    "BollingerBands",
    "MACD",
    "MACDLines",
    "RSI",
    "RateOfChange",
    "RollingVolatility",
    "WMA",
    "ZScore",
    "atr",
    "bollinger",
    "macd",
    "rate_of_change",
    "rsi",
    "volatility",
    "wma",
    "zscore",
]

FloatArray = npt.NDArray[np.float64]
_NAN = math.nan


def _array(values: FloatArray) -> FloatArray:
    return np.asarray(values, dtype=np.float64)


def _windows(x: FloatArray, n: int) -> FloatArray:
    return np.lib.stride_tricks.sliding_window_view(x, n)


# --- weighted moving average --------------------------------------------------------------
@final
class WMA(Indicator):
    """Linearly weighted moving average: the newest value weighs ``period``, the oldest 1.

    Example:
        >>> w = WMA(3)
        >>> [w.update(x) for x in (1.0, 2.0, 4.0)][-1]  # (1*1 + 2*2 + 3*4) / 6
        2.8333333333333335
    """

    __slots__ = ("_buf", "_denominator", "_i", "_left", "_sum", "_weighted", "period", "value")

    def __init__(self, period: int) -> None:
        self.period = check_period(period)
        self._buf = [0.0] * period
        self._i = 0
        self._left = period
        self._sum = 0.0  # plain sum of the window
        self._weighted = 0.0  # sum of weight * value
        self._denominator = period * (period + 1) / 2
        self.value = _NAN

    @property
    def warmup(self) -> int:
        """``period`` values."""
        return self.period

    @property
    def ready(self) -> bool:
        """Whether ``period`` values have been seen."""
        return not self._left

    def fresh(self) -> WMA:
        """A new WMA of the same period."""
        return WMA(self.period)

    def update(self, x: float) -> float:
        """Add ``x`` and return the new average (NaN while warming up)."""
        n, buf, i = self.period, self._buf, self._i
        if self._left:
            buf[i] = x
            self._weighted += (n - self._left + 1) * x
            self._sum += x
            self._left -= 1
        else:
            old = buf[i]
            # every weight drops by one (the oldest, of weight 1, leaves), x comes in at n
            self._weighted += n * x - self._sum
            self._sum += x - old
            buf[i] = x
        i += 1
        if i == n:
            i = 0
            if not self._left:  # exact resync once per window, oldest first
                ordered = buf
                self._sum = math.fsum(ordered)
                self._weighted = math.fsum((k + 1) * v for k, v in enumerate(ordered))
        self._i = i
        if self._left:
            return _NAN
        self.value = self._weighted / self._denominator
        return self.value


def wma(values: FloatArray, period: int) -> FloatArray:
    """Return the weighted moving average of ``values`` (NaN for the first ``period - 1``)."""
    check_period(period)
    x = _array(values)
    out = np.full(len(x), _NAN)
    if len(x) >= period:
        weights = np.arange(1, period + 1, dtype=np.float64)
        out[period - 1 :] = _windows(x, period) @ weights / weights.sum()
    return out


# --- RSI ----------------------------------------------------------------------------------
@final
class RSI(Indicator):
    """Wilder's relative strength index, 0 to 100.

    The first average gain and loss are the plain means of the first ``period`` changes;
    after that each is smoothed as ``(previous * (period - 1) + new) / period``. 100 when
    there were only gains, 0 when only losses, 50 when the price did not move.

    Example:
        >>> r = RSI(2)
        >>> [r.update(x) for x in (10.0, 11.0, 10.5, 11.5)]
        [nan, nan, 66.66666666666666, 85.71428571428571]
    """

    __slots__ = ("_gain", "_last", "_loss", "_n", "period", "value")

    def __init__(self, period: int = 14) -> None:
        self.period = check_period(period)
        self._n = 0
        self._last = _NAN
        self._gain = 0.0
        self._loss = 0.0
        self.value = _NAN

    @property
    def warmup(self) -> int:
        """``period + 1`` values (``period`` changes)."""
        return self.period + 1

    @property
    def ready(self) -> bool:
        """Whether ``period`` changes have been seen."""
        return self._n > self.period

    def fresh(self) -> RSI:
        """A new RSI of the same period."""
        return RSI(self.period)

    def update(self, x: float) -> float:
        """Add ``x`` and return the new RSI (NaN while warming up)."""
        last, self._last = self._last, x
        self._n += 1
        if self._n == 1:
            return _NAN
        change = x - last
        gain, loss = (change, 0.0) if change > 0 else (0.0, -change)
        p = self.period
        if self._n <= p + 1:
            self._gain += gain
            self._loss += loss
            if self._n < p + 1:
                return _NAN
            self._gain /= p
            self._loss /= p
        else:
            self._gain = (self._gain * (p - 1) + gain) / p
            self._loss = (self._loss * (p - 1) + loss) / p
        self.value = _rsi(self._gain, self._loss)
        return self.value


def _rsi(gain: float, loss: float) -> float:
    if loss == 0.0:
        return 50.0 if gain == 0.0 else 100.0
    return 100.0 - 100.0 / (1.0 + gain / loss)


def rsi(values: FloatArray, period: int = 14) -> FloatArray:
    """Return Wilder's RSI of ``values``, as :class:`RSI` (NaN for the first ``period``)."""
    check_period(period)
    x = _array(values)
    out = np.full(len(x), _NAN)
    if len(x) <= period:
        return out
    changes = np.diff(x)
    gains, losses = np.maximum(changes, 0.0), np.maximum(-changes, 0.0)
    gain, loss = float(gains[:period].sum() / period), float(losses[:period].sum() / period)
    out[period] = _rsi(gain, loss)
    for i in range(period, len(changes)):
        gain = (gain * (period - 1) + float(gains[i])) / period
        loss = (loss * (period - 1) + float(losses[i])) / period
        out[i + 1] = _rsi(gain, loss)
    return out


# --- Bollinger bands and z-score ----------------------------------------------------------
class Bands(NamedTuple):
    """Bollinger bands: the middle (moving average) and the bands ``k`` deviations away."""

    middle: FloatArray
    upper: FloatArray
    lower: FloatArray


@final
class BollingerBands(Indicator):
    """Bollinger bands: a simple moving average and ``k`` population standard deviations.

    ``value`` is the middle line; ``upper`` and ``lower`` the bands.

    Example:
        >>> b = BollingerBands(3, k=2.0)
        >>> for x in (1.0, 2.0, 3.0):
        ...     _ = b.update(x)
        >>> round(b.value, 4), round(b.upper, 4), round(b.lower, 4)
        (2.0, 3.633, 0.367)
    """

    __slots__ = ("_sums", "k", "lower", "period", "upper", "value")

    def __init__(self, period: int = 20, k: float = 2.0) -> None:
        self.period = check_period(period, least=2)
        if not (isinstance(k, int | float) and k > 0 and math.isfinite(k)):
            raise ConfigError(f"k must be a positive number, got {k!r}")
        self.k = float(k)
        self._sums = WindowSums(period)
        self.value = self.upper = self.lower = _NAN

    @property
    def warmup(self) -> int:
        """``period`` values."""
        return self.period

    @property
    def ready(self) -> bool:
        """Whether ``period`` values have been seen."""
        return self._sums.full

    def fresh(self) -> BollingerBands:
        """New bands with the same settings."""
        return BollingerBands(self.period, self.k)

    def update(self, x: float) -> float:
        """Add ``x`` and return the middle line (the bands are ``upper`` and ``lower``)."""
        sums = self._sums
        sums.push(x)
        if not sums.full:
            return _NAN
        mean = sums.mean()
        spread = self.k * math.sqrt(sums.variance())
        self.value, self.upper, self.lower = mean, mean + spread, mean - spread
        return mean


def bollinger(values: FloatArray, period: int = 20, k: float = 2.0) -> Bands:
    """Return the Bollinger bands of ``values``, as :class:`BollingerBands`."""
    check_period(period, least=2)
    x = _array(values)
    middle, upper, lower = (np.full(len(x), _NAN) for _ in range(3))
    if len(x) >= period:
        w = _windows(x, period)
        mean = w.mean(axis=1)
        spread = k * w.std(axis=1)
        middle[period - 1 :], upper[period - 1 :], lower[period - 1 :] = (
            mean, mean + spread, mean - spread,
        )  # fmt: skip
    return Bands(middle, upper, lower)


@final
class ZScore(Indicator):
    """How many population standard deviations the value is from its moving average.

    0 when the window did not move at all.

    Example:
        >>> z = ZScore(3)
        >>> [round(z.update(x), 4) for x in (1.0, 2.0, 6.0)][-1]
        1.3887
    """

    __slots__ = ("_sums", "period", "value")

    def __init__(self, period: int = 20) -> None:
        self.period = check_period(period, least=2)
        self._sums = WindowSums(period)
        self.value = _NAN

    @property
    def warmup(self) -> int:
        """``period`` values."""
        return self.period

    @property
    def ready(self) -> bool:
        """Whether ``period`` values have been seen."""
        return self._sums.full

    def fresh(self) -> ZScore:
        """A new z-score of the same period."""
        return ZScore(self.period)

    def update(self, x: float) -> float:
        """Add ``x`` and return its z-score (NaN while warming up)."""
        sums = self._sums
        sums.push(x)
        if not sums.full:
            return _NAN
        std = math.sqrt(sums.variance())
        self.value = (x - sums.mean()) / std if std > 1e-12 * max(abs(x), 1.0) else 0.0
        return self.value


def zscore(values: FloatArray, period: int = 20) -> FloatArray:
    """Return the rolling z-score of ``values``, as :class:`ZScore`."""
    check_period(period, least=2)
    x = _array(values)
    out = np.full(len(x), _NAN)
    if len(x) >= period:
        w = _windows(x, period)
        mean, std = w.mean(axis=1), w.std(axis=1)
        last = x[period - 1 :]
        flat = std <= 1e-12 * np.maximum(np.abs(last), 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[period - 1 :] = np.where(flat, 0.0, (last - mean) / std)
    return out


# --- rate of change and volatility --------------------------------------------------------
@final
class RateOfChange(Indicator):
    """Momentum as the return over ``period`` values: ``x / x[period ago] - 1``.

    Example:
        >>> m = RateOfChange(2)
        >>> [m.update(x) for x in (100.0, 105.0, 110.0)]
        [nan, nan, 0.10000000000000009]
    """

    __slots__ = ("_past", "period", "value")

    def __init__(self, period: int = 20) -> None:
        self.period = check_period(period)
        self._past: deque[float] = deque(maxlen=period + 1)
        self.value = _NAN

    @property
    def warmup(self) -> int:
        """``period + 1`` values."""
        return self.period + 1

    @property
    def ready(self) -> bool:
        """Whether ``period + 1`` values have been seen."""
        return len(self._past) > self.period

    def fresh(self) -> RateOfChange:
        """A new rate of change of the same period."""
        return RateOfChange(self.period)

    def update(self, x: float) -> float:
        """Add ``x`` and return the return over ``period`` values (NaN while warming up)."""
        past = self._past
        past.append(x)
        if len(past) <= self.period:
            return _NAN
        self.value = x / past[0] - 1.0 if past[0] else _NAN
        return self.value


def rate_of_change(values: FloatArray, period: int = 20) -> FloatArray:
    """Return the return of ``values`` over ``period`` values, as :class:`RateOfChange`."""
    check_period(period)
    x = _array(values)
    out = np.full(len(x), _NAN)
    if len(x) > period:
        with np.errstate(divide="ignore", invalid="ignore"):
            out[period:] = np.where(x[:-period] != 0, x[period:] / x[:-period] - 1.0, _NAN)
    return out


@final
class RollingVolatility(Indicator):
    """The sample standard deviation of the last ``period`` simple returns, annualised.

    Args:
        period: How many returns (``period + 1`` values).
        periods_per_year: Multiply by its square root to annualise (1: not annualised).

    Example:
        >>> v = RollingVolatility(2)
        >>> [round(v.update(x), 6) for x in (100.0, 101.0, 100.0)][-1]
        0.014072
    """

    __slots__ = ("_last", "_scale", "_sums", "period", "periods_per_year", "value")

    def __init__(self, period: int = 20, periods_per_year: float = 1.0) -> None:
        self.period = check_period(period, least=2)
        if not (isinstance(periods_per_year, int | float) and periods_per_year > 0):
            raise ConfigError(f"periods_per_year must be positive, got {periods_per_year!r}")
        self.periods_per_year = float(periods_per_year)
        self._scale = math.sqrt(periods_per_year)
        self._sums = WindowSums(period)
        self._last = _NAN
        self.value = _NAN

    @property
    def warmup(self) -> int:
        """``period + 1`` values."""
        return self.period + 1

    @property
    def ready(self) -> bool:
        """Whether ``period`` returns have been seen."""
        return self._sums.full

    def fresh(self) -> RollingVolatility:
        """A new volatility with the same settings."""
        return RollingVolatility(self.period, self.periods_per_year)

    def update(self, x: float) -> float:
        """Add ``x`` and return the volatility of the last returns (NaN while warming up)."""
        last, self._last = self._last, x
        if last != last or not last:  # the first value, or a zero price: no return
            return _NAN if not self._sums.full else self.value
        sums = self._sums
        sums.push(x / last - 1.0)
        if not sums.full:
            return _NAN
        self.value = math.sqrt(sums.variance(ddof=1)) * self._scale
        return self.value


def volatility(values: FloatArray, period: int = 20, periods_per_year: float = 1.0) -> FloatArray:
    """Return the rolling volatility of ``values``' returns, as :class:`RollingVolatility`."""
    check_period(period, least=2)
    x = _array(values)
    out = np.full(len(x), _NAN)
    if len(x) > period:
        returns = x[1:] / x[:-1] - 1.0
        out[period:] = _windows(returns, period).std(axis=1, ddof=1) * math.sqrt(periods_per_year)
    return out


# --- ATR ----------------------------------------------------------------------------------
@final
class ATR(Indicator):
    """Wilder's average true range: reads each bar's high, low and close.

    The true range is the largest of high minus low and the distances from the previous
    close to the high and the low (high minus low for the first bar). The first ATR is the
    mean of the first ``period`` true ranges, then ``(previous * (period - 1) + tr) / period``.
    :meth:`update` takes a close alone (a true range of 0 for a bar without a range).
    The ATR stops and targets of the risk package (``StopLoss.atr``, ``TakeProfit.atr``) use
    this same average, of the instrument's bars when the order is placed
    (:func:`~ibkrfw.risk.protect.average_true_range`), so they agree with it to 1e-9.

    Example:
        >>> from ibkrfw import Bar, Stock
        >>> a = ATR(2)
        >>> rows = [(11, 9, 10), (12, 10, 11), (14, 11, 13)]
        >>> [a.update_bar(Bar(Stock("X"), i, c, h, lo, c, 0)) for i, (h, lo, c) in enumerate(rows)]
        [nan, 2.0, 2.5]
    """

    __slots__ = ("_close", "_n", "_sum", "period", "value")

    def __init__(self, period: int = 14) -> None:
        self.period = check_period(period)
        self._close = _NAN
        self._n = 0
        self._sum = 0.0
        self.value = _NAN

    @property
    def warmup(self) -> int:
        """``period`` bars."""
        return self.period

    @property
    def ready(self) -> bool:
        """Whether ``period`` bars have been seen."""
        return self._n >= self.period

    def fresh(self) -> ATR:
        """A new ATR of the same period."""
        return ATR(self.period)

    def update(self, x: float) -> float:
        """Add a close with no range of its own."""
        return self.add(x, x, x)

    def update_bar(self, bar: Bar) -> float:
        """Add a bar's high, low and close."""
        return self.add(bar.high, bar.low, bar.close)

    def add(self, high: float, low: float, close: float) -> float:
        """Add one bar's high, low and close; return the new ATR (NaN while warming up)."""
        previous, self._close = self._close, close
        tr = high - low
        if previous == previous:
            tr = max(tr, abs(high - previous), abs(low - previous))
        self._n += 1
        p = self.period
        if self._n < p:
            self._sum += tr
            return _NAN
        if self._n == p:
            self.value = (self._sum + tr) / p
        else:
            self.value = (self.value * (p - 1) + tr) / p
        return self.value


def atr(high: FloatArray, low: FloatArray, close: FloatArray, period: int = 14) -> FloatArray:
    """Return Wilder's average true range, as :class:`ATR` (NaN for the first ``period - 1``)."""
    check_period(period)
    h, lo, c = _array(high), _array(low), _array(close)
    out = np.full(len(c), _NAN)
    if len(c) < period:
        return out
    tr = h - lo
    if len(c) > 1:
        previous = c[:-1]
        tr[1:] = np.maximum(tr[1:], np.maximum(np.abs(h[1:] - previous), np.abs(lo[1:] - previous)))
    value = float(tr[:period].sum() / period)
    out[period - 1] = value
    for i in range(period, len(c)):
        value = (value * (period - 1) + float(tr[i])) / period
        out[i] = value
    return out


# --- MACD ---------------------------------------------------------------------------------
class MACDLines(NamedTuple):
    """MACD's three lines: the MACD, its signal line and their difference."""

    macd: FloatArray
    signal: FloatArray
    histogram: FloatArray


@final
class MACD(Indicator):
    """Moving average convergence divergence: ``EMA(fast) - EMA(slow)`` and its signal line.

    ``value`` is the MACD line, ``signal`` its ``signal``-period EMA (started with the first
    MACD value) and ``histogram`` the difference. Each EMA is seeded with the
    simple average of its first values, as :class:`~ibkrfw.indicators.EMA`.
    """

    __slots__ = ("_fast", "_signal", "_slow", "fast", "histogram", "signal", "slow", "value")

    def __init__(self, fast: int = 12, slow: int = 26, signal: int = 9) -> None:
        check_period(fast, "fast")
        check_period(slow, "slow")
        check_period(signal, "signal")
        if fast >= slow:
            raise ConfigError(f"fast ({fast}) must be smaller than slow ({slow})")
        self.fast, self.slow = fast, slow
        self._fast, self._slow, self._signal = EMA(fast), EMA(slow), EMA(signal)
        self.value = self.signal = self.histogram = _NAN

    @property
    def warmup(self) -> int:
        """``slow + signal - 1`` values (the signal line's first value)."""
        return self.slow + self._signal.period - 1

    @property
    def ready(self) -> bool:
        """Whether the signal line has a value."""
        return self._signal.ready

    def fresh(self) -> MACD:
        """A new MACD with the same periods."""
        return MACD(self.fast, self.slow, self._signal.period)

    def update(self, x: float) -> float:
        """Add ``x`` and return the MACD line (NaN until the slow EMA is ready)."""
        fast, slow = self._fast.update(x), self._slow.update(x)
        if slow != slow:
            return _NAN
        line = self.value = fast - slow
        signal = self.signal = self._signal.update(line)
        self.histogram = line - signal
        return line


def macd(values: FloatArray, fast: int = 12, slow: int = 26, signal: int = 9) -> MACDLines:
    """Return the MACD, signal and histogram of ``values``, as :class:`MACD`."""
    if fast >= slow:
        raise ConfigError(f"fast ({fast}) must be smaller than slow ({slow})")
    x = _array(values)
    line = ema(x, fast) - ema(x, slow)
    sig = np.full(len(x), _NAN)
    start = slow - 1
    if len(x) > start:
        sig[start:] = ema(line[start:], signal)
    return MACDLines(line, sig, line - sig)
