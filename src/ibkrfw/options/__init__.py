"""Options: local pricing for backtests and checks.

Black-Scholes-Merton (options on a spot, with a continuous dividend yield) and Black-76
(options on futures) prices, greeks and implied volatility, vectorised over numpy arrays.
See :doc:`/concepts/options`.
"""

from ibkrfw.options.market import (
    YEAR_NS,
    option_delta,
    synthetic_option_bars,
    years_to_expiry,
)
from ibkrfw.options.pricing import (
    Greeks,
    ImpliedVolError,
    Numbers,
    Rights,
    black76,
    black76_greeks,
    black_scholes,
    black_scholes_greeks,
    implied_vol_black76,
    implied_vol_black_scholes,
)

__all__ = [
    "Greeks",
    "ImpliedVolError",
    "Numbers",
    "Rights",
    "YEAR_NS",
    "black76",
    "black76_greeks",
    "black_scholes",
    "black_scholes_greeks",
    "implied_vol_black76",
    "implied_vol_black_scholes",
    "option_delta",
    "synthetic_option_bars",
    "years_to_expiry",
]
