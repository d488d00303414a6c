"""Options as instruments: their delta from market prices, and synthetic bars for research.

These join :mod:`ibkrfw.options.pricing` to :class:`~ibkrfw.Option`: time to expiry from the
option's expiry (16:00 in its time zone, :attr:`Option.expiry_ns <ibkrfw.Option.expiry_ns>`),
the right and strike from the contract.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ibkrfw.errors import ConfigError
from ibkrfw.model.instruments import Option
from ibkrfw.options.pricing import black_scholes, black_scholes_greeks, implied_vol_black_scholes

__all__ = ["YEAR_NS", "option_delta", "synthetic_option_bars", "years_to_expiry"]

YEAR_NS = 365 * 86_400 * 1_000_000_000
"""The nanoseconds in a year of 365 calendar days, the unit of ``time_years``."""


def years_to_expiry(option: Option, ts_ns: int) -> float:
    """The time from ``ts_ns`` to the option's expiry, in years of 365 days (0 after it)."""
    return max(option.expiry_ns - ts_ns, 0) / YEAR_NS


def option_delta(
    option: Option,
    *,
    spot: float,
    ts_ns: int,
    price: float | None = None,
    volatility: float | None = None,
    rate: float = 0.0,
) -> float | None:
    """One unit's Black-Scholes delta of ``option`` at ``ts_ns``, or None if it has none.

    The volatility is the one the option's ``price`` implies; where that cannot be found (no
    price, or a price with no time value to solve for) ``volatility`` stands in, and without
    it there is no delta. At or after expiry, the delta is 1 (a call) or -1 (a put) in the
    money and 0 out of it.

    Args:
        option: The option.
        spot: The underlying's price.
        ts_ns: When (UTC epoch nanoseconds).
        price: The option's price per unit, if known.
        volatility: The volatility to fall back on.
        rate: The risk-free rate.

    Example:
        >>> call = Option("ACME", expiry="20260116", strike=100, right="C")
        >>> import pandas as pd
        >>> now = pd.Timestamp("2025-12-17 16:00", tz="America/New_York").value
        >>> round(option_delta(call, spot=100.0, ts_ns=now, volatility=0.3), 4)
        0.5172
    """
    years = years_to_expiry(option, ts_ns)
    if not (spot > 0 and math.isfinite(spot)):
        return None
    if years <= 0:
        if option.intrinsic_value(spot) <= 0:
            return 0.0
        return 1.0 if option.is_call else -1.0
    strike = float(option.strike)
    vol = math.nan
    if price is not None and price > 0 and math.isfinite(price):
        vol = float(
            implied_vol_black_scholes(
                option.right, price=price, spot=spot, strike=strike, time_years=years, rate=rate
            )
        )
    if not vol > 0:
        if volatility is None:
            return None
        vol = volatility
    greeks = black_scholes_greeks(
        option.right, spot=spot, strike=strike, time_years=years, rate=rate, vol=vol
    )
    return float(greeks.delta)


def synthetic_option_bars(
    underlying: pd.DataFrame,
    option: Option,
    *,
    volatility: float,
    rate: float = 0.0,
    volume: float = 1_000.0,
    listed_days: int | None = None,
) -> pd.DataFrame:
    """Daily bars of an option priced with Black-Scholes from its underlying's bars.

    For research and tests where no option history is at hand: each bar's open, high, low and
    close are the option's price at the underlying's (a call is highest where the underlying
    is, a put where it is lowest), at a constant ``volatility``, up to the option's expiry.
    A real option's prices also move with its implied volatility, and its spread is wide:
    results on synthetic bars are a first look, not a forecast.

    Args:
        underlying: The underlying's bars (``open``, ``high``, ``low``, ``close``, a tz-aware
            index), as the feeds take them.
        option: The option to price.
        volatility: The annualised volatility (0.25 for 25 %).
        rate: The risk-free rate.
        volume: Each bar's volume.
        listed_days: Only the bars within this many calendar days of expiry (an option is
            listed for a limited time); all the bars up to expiry by default.

    Returns:
        The option's bars, rounded to its tick (at least one tick), on the underlying's index
        up to its expiry.

    Raises:
        ConfigError: if the frame lacks a column or a tz-aware index, or ``volatility`` is not
            a positive number.
    """
    missing = [c for c in ("open", "high", "low", "close") if c not in underlying.columns]
    if missing:
        raise ConfigError(
            f"synthetic_option_bars: the underlying's bars lack {missing}; give a frame with "
            "open, high, low and close columns"
        )
    index = underlying.index
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        raise ConfigError(
            "synthetic_option_bars: the underlying's bars need a tz-aware DatetimeIndex"
        )
    if isinstance(volatility, bool) or not (
        isinstance(volatility, int | float) and math.isfinite(volatility) and volatility > 0
    ):
        raise ConfigError(
            f"synthetic_option_bars(volatility={volatility!r}): give a positive annualised "
            "volatility, e.g. 0.25"
        )
    ns = index.as_unit("ns").asi8  # whatever unit the index keeps (pandas may use us)
    keep = ns < option.expiry_ns
    if listed_days is not None:
        keep &= ns >= option.expiry_ns - listed_days * 86_400 * 1_000_000_000
    frame = underlying.loc[keep]
    years = np.maximum(option.expiry_ns - ns[keep], 0) / YEAR_NS
    strike = float(option.strike)

    def price(column: str) -> np.ndarray:
        spot = frame[column].to_numpy(dtype=np.float64)
        return np.asarray(
            black_scholes(
                option.right, spot=spot, strike=strike, time_years=years, rate=rate,
                vol=volatility,
            ),
            dtype=np.float64,
        )  # fmt: skip

    tick = float(option.tick_size)
    high_from, low_from = ("high", "low") if option.is_call else ("low", "high")
    columns: Sequence[tuple[str, np.ndarray]] = (
        ("open", price("open")),
        ("high", price(high_from)),
        ("low", price(low_from)),
        ("close", price("close")),
    )
    out = pd.DataFrame(
        {name: np.maximum(np.round(values / tick) * tick, tick) for name, values in columns},
        index=frame.index,
    )
    out["high"] = out[["open", "high", "low", "close"]].max(axis=1)
    out["low"] = out[["open", "high", "low", "close"]].min(axis=1)
    out["volume"] = float(volume)
    return out
