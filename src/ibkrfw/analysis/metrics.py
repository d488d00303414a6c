"""Performance metrics on plain arrays: the functions behind ``RunResult.stats``.

Every function takes numpy arrays and returns a float; edge cases (too few points, zero
volatility, no trades) give NaN, never an exception or a silent infinity.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

__all__ = [
    "Drawdown",
    "TradeStats",
    "alpha_beta",
    "annual_volatility",
    "cagr",
    "calmar_ratio",
    "drawdown",
    "longest_under_water",
    "max_drawdown",
    "periods_per_year",
    "rolling_sharpe",
    "rolling_volatility",
    "sharpe_ratio",
    "simple_returns",
    "sortino_ratio",
    "time_under_water",
    "total_return",
    "trade_stats",
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
    excess = returns - risk_free / periods if risk_free else returns  # no copy for none
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
    dd = np.maximum.accumulate(equity)  # the peaks, then in place the falls from them
    rising = dd > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(equity, dd, out=dd)
    dd -= 1.0
    dd[~rising] = 0.0
    trough = int(np.argmin(dd))
    if dd[trough] >= 0:
        return 0.0, 0, 0
    peak = int(np.argmax(equity[: trough + 1]))
    return float(dd[trough]), peak, trough


def sortino_ratio(returns: FloatArray, periods: float, target: float = 0.0) -> float:
    """Return the annualised Sortino ratio: mean excess return over downside deviation.

    The downside deviation is the root mean square of the returns below ``target`` (an annual
    rate, per period ``target / periods``), over every period, as Sortino defines it. NaN with
    fewer than two returns or no return below the target.

    Example:
        >>> import numpy as np
        >>> round(sortino_ratio(np.array([0.02, -0.01, 0.03, -0.02]), 252.0), 4)
        7.0993
    """
    if len(returns) < 2 or not periods > 0:
        return math.nan
    excess = returns - target / periods if target else returns  # no copy for none
    below = np.minimum(excess, 0.0)
    below *= below  # in place: one temporary the length of the returns
    downside = math.sqrt(float(np.mean(below)))
    del below
    if not downside > 1e-15:
        return math.nan
    return float(np.mean(excess) / downside * math.sqrt(periods))


def calmar_ratio(cagr_value: float, max_drawdown_value: float) -> float:
    """Return CAGR over the size of the largest drawdown (NaN without a drawdown).

    Example:
        >>> calmar_ratio(0.12, -0.3)
        0.4
    """
    if not max_drawdown_value < 0 or math.isnan(cagr_value):
        return math.nan
    return float(cagr_value / -max_drawdown_value)


class Drawdown(NamedTuple):
    """The largest drawdown of an equity curve, by position in it."""

    depth: float
    """The fall from the peak to the trough, a negative fraction (0.0 if equity never fell)."""
    peak: int
    """Where it started (the last peak before the trough)."""
    trough: int
    """Where it was deepest."""
    recovery: int
    """Where equity first got back to the peak, or -1 if it never did."""


def drawdown(equity: FloatArray) -> Drawdown:
    """Return the largest drawdown with its peak, trough and recovery.

    ``Drawdown(nan, -1, -1, -1)`` when equity is empty.

    Example:
        >>> import numpy as np
        >>> drawdown(np.array([100.0, 120.0, 90.0, 110.0, 125.0, 100.0]))
        Drawdown(depth=-0.25, peak=1, trough=2, recovery=4)
    """
    depth, peak, trough = max_drawdown(equity)
    if math.isnan(depth):
        return Drawdown(math.nan, -1, -1, -1)
    if depth == 0.0:
        return Drawdown(0.0, 0, 0, 0)
    back = np.nonzero(equity[trough:] >= equity[peak])[0]
    return Drawdown(depth, peak, trough, trough + int(back[0]) if len(back) else -1)


def time_under_water(equity: FloatArray) -> float:
    """Return the share of the periods that end below the running peak (0 to 1).

    Example:
        >>> import numpy as np
        >>> time_under_water(np.array([100.0, 90.0, 95.0, 100.0, 110.0]))
        0.4
    """
    if len(equity) == 0:
        return math.nan
    peaks = np.maximum.accumulate(equity)
    return float(np.mean(equity < peaks))


def longest_under_water(equity: FloatArray) -> tuple[int, int]:
    """Return where the longest stretch below a peak starts and ends (a peak and the recovery).

    The end is the first position back at the peak, or the last position if it never got back.
    ``(0, 0)`` when equity never fell; ``(-1, -1)`` when it is empty.
    """
    if len(equity) == 0:
        return -1, -1
    peaks = np.maximum.accumulate(equity)
    below = equity < peaks
    best = (0, 0)
    start = -1
    for i, under in enumerate(below):
        if under and start < 0:
            start = i - 1  # the peak it fell from
        elif not under and start >= 0:
            if i - start > best[1] - best[0]:
                best = (start, i)
            start = -1
    if start >= 0 and len(equity) - 1 - start > best[1] - best[0]:
        best = (start, len(equity) - 1)
    return best


class TradeStats(NamedTuple):
    """Statistics of the trades' profits (in money)."""

    trades: int
    win_rate: float
    """Share of trades with a profit (0 to 1); NaN without trades."""
    profit_factor: float
    """Gross profit over gross loss; NaN without a losing trade (never infinity)."""
    expectancy: float
    """The mean profit per trade; NaN without trades."""
    average_win: float
    average_loss: float
    """The mean loss of the losing trades (negative); NaN without one."""
    largest_win: float
    largest_loss: float


def trade_stats(pnl: FloatArray) -> TradeStats:
    """Return win rate, profit factor, expectancy, average and largest win and loss.

    A trade that made exactly nothing counts as neither a win nor a loss (it still counts
    in the win rate's denominator and the expectancy).

    Example:
        >>> import numpy as np
        >>> stats = trade_stats(np.array([100.0, -50.0, 30.0, -20.0]))
        >>> stats.win_rate, round(stats.profit_factor, 4), stats.expectancy
        (0.5, 1.8571, 15.0)
        >>> stats.average_win, stats.average_loss, stats.largest_win, stats.largest_loss
        (65.0, -35.0, 100.0, -50.0)
    """
    pnl = np.asarray(pnl, dtype=np.float64)
    nan = math.nan
    if len(pnl) == 0:
        return TradeStats(0, nan, nan, nan, nan, nan, nan, nan)
    wins, losses = pnl[pnl > 0], pnl[pnl < 0]
    gross_loss = -float(losses.sum())
    return TradeStats(
        trades=len(pnl),
        win_rate=float(len(wins) / len(pnl)),
        profit_factor=float(wins.sum()) / gross_loss if gross_loss > 0 else nan,
        expectancy=float(pnl.mean()),
        average_win=float(wins.mean()) if len(wins) else nan,
        average_loss=float(losses.mean()) if len(losses) else nan,
        largest_win=float(wins.max()) if len(wins) else nan,
        largest_loss=float(losses.min()) if len(losses) else nan,
    )


def alpha_beta(returns: FloatArray, benchmark: FloatArray, periods: float) -> tuple[float, float]:
    """Return the annualised alpha and the beta of ``returns`` against ``benchmark``.

    Both series are per period and aligned. Beta is the slope of an ordinary least squares
    fit; alpha its intercept times ``periods`` (a simple annualisation). NaN for both with
    fewer than two periods or a flat benchmark.

    Example:
        >>> import numpy as np
        >>> bench = np.array([0.01, -0.02, 0.03, 0.0])
        >>> alpha, beta = alpha_beta(2 * bench + 0.001, bench, 252.0)
        >>> round(alpha, 6), round(beta, 6)
        (0.252, 2.0)
    """
    returns = np.asarray(returns, dtype=np.float64)
    benchmark = np.asarray(benchmark, dtype=np.float64)
    if len(returns) != len(benchmark):
        raise ValueError(
            f"returns and benchmark must be aligned: {len(returns)} and {len(benchmark)} periods"
        )
    keep = np.isfinite(returns) & np.isfinite(benchmark)
    returns, benchmark = returns[keep], benchmark[keep]
    if len(returns) < 2:
        return math.nan, math.nan
    var = float(np.var(benchmark, ddof=1))
    if not var > 1e-30:
        return math.nan, math.nan
    beta = float(np.cov(returns, benchmark, ddof=1)[0, 1] / var)
    alpha = float(np.mean(returns) - beta * np.mean(benchmark)) * periods
    return alpha, beta


def rolling_volatility(returns: FloatArray, window: int, periods: float) -> FloatArray:
    """Return the annualised volatility over each trailing ``window`` of returns.

    The first ``window - 1`` values are NaN (not enough returns yet).

    Raises:
        ValueError: if ``window`` is below 2.
    """
    means, stds = _rolling_moments(returns, window)
    del means
    return stds * math.sqrt(periods)


def rolling_sharpe(returns: FloatArray, window: int, periods: float) -> FloatArray:
    """Return the annualised Sharpe ratio over each trailing ``window`` of returns.

    NaN until ``window`` returns are there, and where a window's volatility is zero.

    Raises:
        ValueError: if ``window`` is below 2.
    """
    means, stds = _rolling_moments(returns, window)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(stds > 1e-15, means / stds, np.nan)
    return out * math.sqrt(periods)


def _rolling_moments(returns: FloatArray, window: int) -> tuple[FloatArray, FloatArray]:
    if window < 2:
        raise ValueError(f"a rolling window needs at least 2 returns, got {window}")
    returns = np.asarray(returns, dtype=np.float64)
    n = len(returns)
    means = np.full(n, np.nan)
    stds = np.full(n, np.nan)
    if n < window:
        return means, stds
    views = np.lib.stride_tricks.sliding_window_view(returns, window)
    means[window - 1 :] = views.mean(axis=1)
    stds[window - 1 :] = views.std(axis=1, ddof=1)
    return means, stds
