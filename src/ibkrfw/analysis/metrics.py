"""Performance metrics on plain arrays: the functions behind ``RunResult.stats``.

Every function takes numpy arrays and returns a float; edge cases (too few points, zero
volatility, no trades) give NaN, never an exception or a silent infinity.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

__all__ = [
    "annual_volatility",
    "cagr",
    "max_drawdown",
    "periods_per_year",
    "sharpe_ratio",
    "simple_returns",
    "total_return",
]

FloatArray = npt.NDArray[np.float64]
_NS_PER_YEAR = 365.25 * 86_400 * 1e9


def simple_returns(equity: FloatArray) -> FloatArray:
    """Return period-over-period simple returns of ``equity`` (one fewer element)."""
    equity = np.asarray(equity, dtype=np.float64)
    if len(equity) < 2:
        return np.empty(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return equity[1:] / equity[:-1] - 1.0


def periods_per_year(ts_ns: npt.NDArray[np.int64]) -> float:
    """Estimate how many bars make a year from the timestamps themselves.

    Counts the intervals observed per calendar year spanned, so it follows whatever session
    calendar the data has (252-ish for US daily bars, about 98,000 for US minute bars, more for
    24-hour markets). NaN with fewer than two timestamps.

    Example:
        >>> import numpy as np
        >>> days = np.arange(0, 366 * 86_400 * 10**9, 86_400 * 10**9)
        >>> round(periods_per_year(days), 2)
        365.25
    """
    if len(ts_ns) < 2:
        return math.nan
    span = float(ts_ns[-1] - ts_ns[0])
    return (len(ts_ns) - 1) / (span / _NS_PER_YEAR) if span > 0 else math.nan


def total_return(equity: FloatArray) -> float:
    """Return ``last / first - 1`` (NaN if empty or the first value is not positive)."""
    if len(equity) == 0 or not equity[0] > 0:
        return math.nan
    return float(equity[-1] / equity[0] - 1.0)


def cagr(equity: FloatArray, ts_ns: npt.NDArray[np.int64]) -> float:
    """Return the compound annual growth rate over the calendar time spanned."""
    if len(equity) < 2:
        return math.nan
    years = float(ts_ns[-1] - ts_ns[0]) / _NS_PER_YEAR
    growth = equity[-1] / equity[0] if equity[0] > 0 else math.nan
    if not years > 0 or not growth >= 0:
        return math.nan
    return float(growth ** (1.0 / years) - 1.0)


def annual_volatility(returns: FloatArray, periods: float) -> float:
    """Return the sample standard deviation of ``returns`` scaled to a year."""
    if len(returns) < 2 or not periods > 0:
        return math.nan
    return float(np.std(returns, ddof=1) * math.sqrt(periods))


def sharpe_ratio(returns: FloatArray, periods: float, risk_free: float = 0.0) -> float:
    """Return the annualised Sharpe ratio (``risk_free`` is an annual rate).

    NaN with fewer than two returns or zero volatility.

    Example:
        >>> import numpy as np
        >>> round(sharpe_ratio(np.array([0.01, -0.005, 0.02, 0.0]), 252.0), 4)
        8.949
    """
    if len(returns) < 2 or not periods > 0:
        return math.nan
    excess = returns - risk_free / periods
    std = float(np.std(excess, ddof=1))
    if not std > 1e-15:
        return math.nan
    return float(np.mean(excess) / std * math.sqrt(periods))


def max_drawdown(equity: FloatArray) -> tuple[float, int, int]:
    """Return the largest peak-to-trough fall and where it starts and ends.

    The fall is a negative fraction; the positions index ``equity``. ``(0.0, 0, 0)`` when equity
    never falls; ``(nan, -1, -1)`` when it is empty.

    Example:
        >>> import numpy as np
        >>> max_drawdown(np.array([100.0, 120.0, 90.0, 130.0]))
        (-0.25, 1, 2)
    """
    if len(equity) == 0:
        return math.nan, -1, -1
    peaks = np.maximum.accumulate(equity)
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(peaks > 0, equity / peaks - 1.0, 0.0)
    trough = int(np.argmin(dd))
    if dd[trough] >= 0:
        return 0.0, 0, 0
    peak = int(np.argmax(equity[: trough + 1]))
    return float(dd[trough]), peak, trough
