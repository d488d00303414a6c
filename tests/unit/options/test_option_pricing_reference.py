"""ibkrfw.options against published values and against QuantLib's analytic European engine.

The published values are the worked examples of E. G. Haug, *The Complete Guide to Option
Pricing Formulas* (2nd ed., 2007), chapters 1 and 2, printed to 4 decimals. The grid compares
prices and every greek with QuantLib (``AnalyticEuropeanEngine`` on a Black-Scholes-Merton
process for options on a spot, on a Black process for options on futures) to 1e-8, relative
where a value is above 1.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import QuantLib as ql  # noqa: N813 (the name QuantLib's own examples use); in the test extra

from ibkrfw.options import (
    black76,
    black76_greeks,
    black_scholes,
    black_scholes_greeks,
    implied_vol_black76,
    implied_vol_black_scholes,
)

TOL = 1e-8


def close(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Agreement to TOL: absolute below 1, relative above."""
    return np.abs(got - want) <= TOL * np.maximum(1.0, np.abs(want))


# ---------------------------------------------------------------------------- Haug's examples

# (right, spot, strike, T, r, q, vol, value): generalised Black-Scholes, b = r - q
HAUG_BS_PRICES = [
    ("C", 60.0, 65.0, 0.25, 0.08, 0.0, 0.30, 2.1334),  # Black-Scholes, section 1.1.1
    ("P", 100.0, 95.0, 0.5, 0.10, 0.05, 0.20, 2.4648),  # Merton 73, section 1.1.2
    ("C", 1.56, 1.60, 0.5, 0.06, 0.08, 0.12, 0.0291),  # Garman-Kohlhagen, section 1.1.6
]


@pytest.mark.parametrize(("right", "s", "k", "t", "r", "q", "v", "value"), HAUG_BS_PRICES)
def test_black_scholes_haug_examples_match_to_4_decimals(
    right: str, s: float, k: float, t: float, r: float, q: float, v: float, value: float
) -> None:
    price = black_scholes(right, spot=s, strike=k, time_years=t, rate=r, vol=v, dividend_yield=q)
    assert round(float(price), 4) == value


def test_black76_haug_example_call_and_put_are_1_7011() -> None:
    price = black76(["C", "P"], forward=19, strike=19, time_years=0.75, rate=0.10, vol=0.28)
    assert [round(float(p), 4) for p in price] == [1.7011, 1.7011]


def test_greeks_haug_examples_match_to_4_decimals() -> None:
    # section 2.1.1: delta of options on a futures price (b = 0)
    g = black76_greeks(["C", "P"], forward=105, strike=100, time_years=0.5, rate=0.10, vol=0.36)
    assert np.round(g.delta, 4).tolist() == [0.5946, -0.3566]
    # section 2.3.1: gamma
    g = black_scholes_greeks("C", spot=55, strike=60, time_years=0.75, rate=0.10, vol=0.30)
    assert round(float(g.gamma), 4) == 0.0278
    # section 2.5.1: theta of a put on an index (b = 0.02)
    g = black_scholes_greeks(
        "P", spot=430, strike=405, time_years=0.0833, rate=0.07, vol=0.20, dividend_yield=0.05
    )
    assert round(float(g.theta), 4) == -31.1924
    # section 2.6.1: rho of a call
    g = black_scholes_greeks("C", spot=72, strike=75, time_years=1.0, rate=0.09, vol=0.19)
    assert round(float(g.rho), 4) == 38.7325


# ---------------------------------------------------------------------------- QuantLib's grid

SPOTS = [25.0, 100.0, 1800.0]
MONEYNESS = [0.6, 0.9, 1.0, 1.1, 1.5]  # strike / spot
VOLS = [0.05, 0.2, 0.45, 1.2]
DAYS = [1, 30, 182, 730]  # T = days / 365, QuantLib's Actual/365 (Fixed)
RATES = [-0.005, 0.0, 0.05]
YIELDS = [0.0, 0.03]
RIGHTS = ["C", "P"]
GREEKS = ["delta", "gamma", "vega", "theta", "rho"]


def quantlib_grid(*, futures: bool) -> dict[str, np.ndarray]:
    """Every grid point priced by QuantLib: inputs and NPV, delta, gamma, vega, theta, rho."""
    today = ql.Date(15, 1, 2025)
    ql.Settings.instance().evaluationDate = today
    day_count = ql.Actual365Fixed()
    spot, rate, dividend, vol = (ql.SimpleQuote(0.0) for _ in range(4))
    rates = ql.YieldTermStructureHandle(ql.FlatForward(today, ql.QuoteHandle(rate), day_count))
    vols = ql.BlackVolTermStructureHandle(
        ql.BlackConstantVol(today, ql.NullCalendar(), ql.QuoteHandle(vol), day_count)
    )
    if futures:
        process = ql.BlackProcess(ql.QuoteHandle(spot), rates, vols)
    else:
        dividends = ql.YieldTermStructureHandle(
            ql.FlatForward(today, ql.QuoteHandle(dividend), day_count)
        )
        process = ql.BlackScholesMertonProcess(ql.QuoteHandle(spot), dividends, rates, vols)
    engine = ql.AnalyticEuropeanEngine(process)
    yields = [0.0] if futures else YIELDS
    keys = ("right", "s", "k", "t", "r", "q", "v", "price", *GREEKS)
    rows: dict[str, list[float | str]] = {key: [] for key in keys}
    for right, m, days in itertools.product(RIGHTS, MONEYNESS, DAYS):
        kind = ql.Option.Call if right == "C" else ql.Option.Put
        for s in SPOTS:
            option = ql.EuropeanOption(
                ql.PlainVanillaPayoff(kind, s * m), ql.EuropeanExercise(today + days)
            )
            option.setPricingEngine(engine)
            for r, q, v in itertools.product(RATES, yields, VOLS):
                spot.setValue(s)
                rate.setValue(r)
                dividend.setValue(q)
                vol.setValue(v)
                # a Black process discounts the forward's drift at the rate too: rho with the
                # futures price fixed is QuantLib's rho plus its dividend rho
                rho = option.rho() + (option.dividendRho() if futures else 0.0)
                values = (right, s, s * m, days / 365.0, r, q, v, option.NPV(), option.delta())
                values += (option.gamma(), option.vega(), option.theta(), rho)
                for key, value in zip(rows, values, strict=True):
                    rows[key].append(value)
    return {key: np.asarray(value) for key, value in rows.items()}


@pytest.fixture(scope="module")
def bs_grid() -> dict[str, np.ndarray]:
    return quantlib_grid(futures=False)


@pytest.fixture(scope="module")
def black_grid() -> dict[str, np.ndarray]:
    return quantlib_grid(futures=True)


def assert_agree(name: str, got: np.ndarray, want: np.ndarray, grid: dict[str, np.ndarray]) -> None:
    ok = close(got, want)
    if not ok.all():
        i = int(np.argmin(ok))
        point = {key: grid[key][i] for key in ("right", "s", "k", "t", "r", "q", "v")}
        raise AssertionError(
            f"{name}: {(~ok).sum()} of {ok.size} differ from QuantLib, e.g. at {point}: "
            f"{got[i]!r} vs {want[i]!r}"
        )


def test_black_scholes_prices_and_greeks_agree_with_quantlib_to_1e_8(
    bs_grid: dict[str, np.ndarray],
) -> None:
    g = bs_grid
    args = {"spot": g["s"], "strike": g["k"], "time_years": g["t"], "rate": g["r"]}
    args |= {"vol": g["v"], "dividend_yield": g["q"]}
    assert g["price"].size == 2 * 5 * 4 * 3 * 3 * 2 * 4  # 2880 options
    assert_agree("price", black_scholes(g["right"], **args), g["price"], g)
    greeks = black_scholes_greeks(g["right"], **args)
    for name in GREEKS:
        assert_agree(name, getattr(greeks, name), g[name], g)


def test_black76_prices_and_greeks_agree_with_quantlib_to_1e_8(
    black_grid: dict[str, np.ndarray],
) -> None:
    g = black_grid
    args = {"forward": g["s"], "strike": g["k"], "time_years": g["t"], "rate": g["r"]}
    assert_agree("price", black76(g["right"], vol=g["v"], **args), g["price"], g)
    greeks = black76_greeks(g["right"], vol=g["v"], **args)
    for name in GREEKS:
        assert_agree(name, getattr(greeks, name), g[name], g)


def test_quantlib_per_day_and_per_point_conventions_match_greeks_properties() -> None:
    today = ql.Date(15, 1, 2025)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    process = ql.BlackScholesMertonProcess(
        ql.QuoteHandle(ql.SimpleQuote(100.0)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, 0.01, dc)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, 0.04, dc)),
        ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), 0.25, dc)),
    )
    option = ql.EuropeanOption(
        ql.PlainVanillaPayoff(ql.Option.Call, 105.0), ql.EuropeanExercise(today + 73)
    )
    option.setPricingEngine(ql.AnalyticEuropeanEngine(process))
    g = black_scholes_greeks(
        "C", spot=100, strike=105, time_years=0.2, rate=0.04, vol=0.25, dividend_yield=0.01
    )
    assert abs(float(g.theta_per_day) - option.thetaPerDay()) <= TOL
    assert abs(float(g.vega_pct) - option.vega() / 100) <= TOL


def test_implied_vol_round_trips_the_quantlib_grid(
    bs_grid: dict[str, np.ndarray], black_grid: dict[str, np.ndarray]
) -> None:
    """price -> implied vol -> price returns QuantLib's price to 1e-10, relative above 1.

    Where the option has time value worth solving for (vega above 1e-6 and a price that is
    not the intrinsic value to within rounding), the volatility itself comes back too.
    """
    for grid, futures in ((bs_grid, False), (black_grid, True)):
        quoted = grid["price"] > 0  # a day from expiry, far from the money, a price is 0.0
        assert quoted.mean() > 0.9
        g = {key: values[quoted] for key, values in grid.items()}
        base = {"strike": g["k"], "time_years": g["t"], "rate": g["r"]}
        if futures:
            base["forward"] = g["s"]
            iv = implied_vol_black76(g["right"], price=g["price"], **base)
            again = black76(g["right"], vol=np.nan_to_num(iv), **base)
        else:
            base |= {"spot": g["s"], "dividend_yield": g["q"]}
            iv = implied_vol_black_scholes(g["right"], price=g["price"], **base)
            again = black_scholes(g["right"], vol=np.nan_to_num(iv), **base)
        solved = np.isfinite(iv)
        # NaN only where the price is the discounted intrinsic value to within rounding
        forward = g["s"] * (1.0 if futures else np.exp((g["r"] - g["q"]) * g["t"]))
        sign = np.where(g["right"] == "C", 1.0, -1.0)
        lower = np.exp(-g["r"] * g["t"]) * np.maximum(sign * (forward - g["k"]), 0.0)
        gap = np.abs(g["price"] - lower)[~solved]
        assert (gap <= 1e-12 * np.maximum(forward, g["k"])[~solved]).all(), gap.max()
        assert solved.mean() > 0.85
        err = np.abs(again[solved] - g["price"][solved])
        assert (err <= 1e-10 * np.maximum(1.0, g["price"][solved])).all(), err.max()
        informative = solved & (g["vega"] > 1e-6 * g["s"])
        assert np.allclose(iv[informative], g["v"][informative], rtol=1e-6, atol=0)
