"""Properties every option price must have, on inputs hypothesis draws (see tests/conftest.py).

Put-call parity, the no-arbitrage bounds, monotonicity in volatility and strike, and the
implied volatility's round trip, for Black-Scholes-Merton and Black-76.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from ibkrfw.options import (
    black76,
    black_scholes,
    black_scholes_greeks,
    implied_vol_black76,
    implied_vol_black_scholes,
)

spots = st.floats(0.5, 5_000.0)
moneyness = st.floats(0.4, 2.5)  # strike / spot
years = st.floats(1 / 365, 5.0)
rates = st.floats(-0.02, 0.12)
yields = st.floats(0.0, 0.08)
vols = st.floats(0.01, 2.0)
rights = st.sampled_from(["C", "P"])


@given(spots, moneyness, years, rates, yields, vols)
def test_put_call_parity_holds(s: float, m: float, t: float, r: float, q: float, v: float) -> None:
    args = {"spot": s, "strike": s * m, "time_years": t, "rate": r, "vol": v}
    call, put = black_scholes(["C", "P"], dividend_yield=q, **args)
    parity = s * math.exp(-q * t) - s * m * math.exp(-r * t)
    assert abs((call - put) - parity) <= 1e-12 * s * max(1.0, m)
    f_call, f_put = black76(["C", "P"], **(args | {"forward": args.pop("spot")}))
    assert abs((f_call - f_put) - math.exp(-r * t) * (s - s * m)) <= 1e-12 * s * max(1.0, m)


@given(rights, spots, moneyness, years, rates, yields, vols)
def test_prices_stay_within_the_no_arbitrage_bounds(
    right: str, s: float, m: float, t: float, r: float, q: float, v: float
) -> None:
    k = s * m
    price = float(
        black_scholes(right, spot=s, strike=k, time_years=t, rate=r, vol=v, dividend_yield=q)
    )
    forward, discount = s * math.exp((r - q) * t), math.exp(-r * t)
    sign = 1.0 if right == "C" else -1.0
    lower = discount * max(sign * (forward - k), 0.0)
    upper = discount * (forward if right == "C" else k)
    slack = 1e-12 * max(forward, k)
    assert lower - slack <= price <= upper + slack


@given(rights, spots, moneyness, years, rates, yields, st.lists(vols, min_size=2, max_size=8))
def test_price_rises_with_volatility_and_vega_is_never_negative(
    right: str, s: float, m: float, t: float, r: float, q: float, sigmas: list[float]
) -> None:
    v = np.sort(np.asarray(sigmas))
    args = {"spot": s, "strike": s * m, "time_years": t, "rate": r, "dividend_yield": q}
    prices = black_scholes(right, vol=v, **args)
    assert (np.diff(prices) >= -1e-12 * s * max(1.0, m)).all()
    assert (black_scholes_greeks(right, vol=v, **args).vega >= 0).all()


@given(spots, st.lists(moneyness, min_size=2, max_size=8), years, rates, yields, vols)
def test_calls_fall_and_puts_rise_with_the_strike(
    s: float, ms: list[float], t: float, r: float, q: float, v: float
) -> None:
    strikes = s * np.sort(np.asarray(ms))
    args = {"spot": s, "strike": strikes, "time_years": t, "rate": r, "vol": v}
    slack = 1e-12 * s * max(ms)
    assert (np.diff(black_scholes("C", dividend_yield=q, **args)) <= slack).all()
    assert (np.diff(black_scholes("P", dividend_yield=q, **args)) >= -slack).all()


@given(rights, spots, moneyness, years, rates, yields, vols)
def test_implied_vol_round_trips_price_to_volatility_to_price(
    right: str, s: float, m: float, t: float, r: float, q: float, v: float
) -> None:
    args = {"spot": s, "strike": s * m, "time_years": t, "rate": r, "dividend_yield": q}
    price = float(black_scholes(right, vol=v, **args))
    if price <= 0:  # far out of the money, close to expiry: nothing to solve
        return
    iv = float(implied_vol_black_scholes(right, price=price, **args))
    if math.isnan(iv):  # only for a price that is the intrinsic value to within rounding
        forward, discount = s * math.exp((r - q) * t), math.exp(-r * t)
        sign = 1.0 if right == "C" else -1.0
        time_value = price - discount * max(sign * (forward - s * m), 0.0)
        assert abs(time_value) <= 1e-13 * max(forward, s * m)
        return
    again = float(black_scholes(right, vol=iv, **args))
    assert abs(again - price) <= 1e-10 * max(1.0, price)


@given(rights, spots, moneyness, years, rates, vols)
def test_black76_implied_vol_round_trips_and_recovers_the_volatility(
    right: str, f: float, m: float, t: float, r: float, v: float
) -> None:
    # out of the money: the whole price is time value, so the volatility itself comes back
    right = "C" if m >= 1 else "P"
    args = {"forward": f, "strike": f * m, "time_years": t, "rate": r}
    price = float(black76(right, vol=v, **args))
    if price < 1e-250 * f:  # so far from the money the price underflows
        return
    iv = float(implied_vol_black76(right, price=price, **args))
    assert abs(float(black76(right, vol=iv, **args)) - price) <= 1e-10 * max(1.0, price)
    assert abs(iv - v) <= 1e-7 * v
