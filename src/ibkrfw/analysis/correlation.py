"""How instruments move together: correlation matrices and the diversification ratio.

All functions take a DataFrame of returns, one column per instrument (get one from prices
with :func:`returns_of`, and prices of a run from :attr:`RunResult.closes
<ibkrfw.RunResult.closes>`). The heatmap is :func:`ibkrfw.reports.plot_correlation`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from ibkrfw.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "correlation_matrix",
    "diversification_ratio",
    "returns_of",
    "rolling_correlation",
]


def returns_of(prices: pd.DataFrame) -> pd.DataFrame:
    """Simple returns of each column of ``prices`` from one row to the next.

    The first row, and rows where a price is missing on either side, are NaN.

    Example:
        >>> import pandas as pd
        >>> returns_of(pd.DataFrame({"A": [100.0, 110.0, 99.0]}))["A"].round(4).tolist()
        [nan, 0.1, -0.1]
    """
    return prices / prices.shift(1) - 1.0


def correlation_matrix(returns: pd.DataFrame, *, min_periods: int = 2) -> pd.DataFrame:
    """The Pearson correlation of every pair of columns, over the rows both have.

    Example:
        >>> import pandas as pd
        >>> r = pd.DataFrame({"A": [0.01, -0.02, 0.03], "B": [0.02, -0.04, 0.06]})
        >>> correlation_matrix(r).loc["A", "B"].round(6)
        np.float64(1.0)
    """
    return returns.corr(min_periods=min_periods)


def rolling_correlation(returns: pd.DataFrame, window: int) -> pd.DataFrame:
    """The correlation matrix over each trailing ``window`` of rows.

    Returns:
        The matrices stacked in one frame, indexed by time and instrument, with a column per
        instrument. ``frame.loc[t]`` is the matrix at ``t``, NaN until ``window`` rows are in.

    Raises:
        ConfigError: if ``window`` is not an int of at least 2.
    """
    if isinstance(window, bool) or not isinstance(window, int) or window < 2:
        raise ConfigError(f"window must be an int of at least 2, got {window!r}")
    return returns.rolling(window, min_periods=window).corr()


def diversification_ratio(weights: Mapping[str, float] | pd.Series, returns: pd.DataFrame) -> float:
    """The weighted average volatility of the holdings over the volatility of the portfolio.

    ``sum(|w_i| * sigma_i) / sigma_p``: 1 when everything moves together (nothing is
    diversified), up to the square root of the number of holdings for equal weights of
    uncorrelated instruments. NaN when the portfolio does not move.

    Args:
        weights: The weight of each column of ``returns`` held (missing columns: 0).
        returns: Returns of the instruments, one column each.

    Raises:
        ConfigError: if a weight names no column of ``returns``.

    Example:
        >>> import numpy as np, pandas as pd
        >>> rng = np.random.default_rng(0)
        >>> r = pd.DataFrame(rng.normal(0, 0.01, (20_000, 4)), columns=list("ABCD"))
        >>> round(diversification_ratio(dict.fromkeys("ABCD", 0.25), r), 1)  # sqrt(4)
        2.0
    """
    import pandas as pd

    w = pd.Series(dict(weights), dtype="float64")
    unknown = sorted(set(w.index) - set(returns.columns))
    if unknown:
        raise ConfigError(f"weights name {unknown}, which are not columns of the returns")
    w = w.reindex(returns.columns, fill_value=0.0)
    cov = returns.dropna().cov().to_numpy()
    vector = w.to_numpy()
    portfolio = float(np.sqrt(vector @ cov @ vector))
    if not portfolio > 0:
        return math.nan
    return float(np.abs(vector) @ np.sqrt(np.diag(cov))) / portfolio
