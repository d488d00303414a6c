"""ibkrfw.options as a user calls it: shapes, limits, refusals and implied volatility's NaNs."""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pytest

from ibkrfw import ConfigError
from ibkrfw.options import (
    Greeks,
    ImpliedVolError,
    black76,
    black76_greeks,
    black_scholes,
    black_scholes_greeks,
    implied_vol_black76,
    implied_vol_black_scholes,
)
from ibkrfw.options._normal import erfc, norm_cdf

BS = {"spot": 100.0, "strike": 100.0, "time_years": 0.5, "rate": 0.05, "vol": 0.2}
B76 = {"forward": 100.0, "strike": 100.0, "time_years": 0.5, "rate": 0.05, "vol": 0.2}


# ---------------------------------------------------------------------------- the normal CDF


def test_erfc_matches_math_erfc_to_2e_15_relative_from_minus_6_to_26() -> None:
    x = np.linspace(-6.0, 26.5, 200_001)
    want = np.array([math.erfc(v) for v in x])
    got = erfc(x)
    positive = want > 0  # math.erfc reaches subnormals past 26.5; ours too, less exactly
    assert (np.abs(got - want)[positive] <= 2e-15 * want[positive]).all()


def test_norm_cdf_keeps_relative_accuracy_far_in_the_tail() -> None:
    x = np.array([-37.0, -20.0, -8.0, 0.0, 8.0, np.inf, -np.inf])
    want = np.array([0.5 * math.erfc(-v / math.sqrt(2.0)) for v in x])
    got = norm_cdf(x)
    assert got[0] > 0 and abs(got[0] / want[0] - 1) < 1e-12
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)  # x/sqrt(2) rounds


# ---------------------------------------------------------------------------- shapes and types


def test_prices_of_scalars_are_0_d_float64_arrays() -> None:
    price = black_scholes("C", **BS)
    assert isinstance(price, np.ndarray) and price.shape == () and price.dtype == np.float64
    greeks = black76_greeks("P", **B76)
    for name in ("delta", "gamma", "vega", "theta", "rho"):
        value = getattr(greeks, name)
        assert isinstance(value, np.ndarray) and value.shape == (), name


def test_prices_broadcast_a_column_of_strikes_against_a_row_of_vols() -> None:
    strikes = np.array([[90.0], [100.0], [110.0]])
    vols = np.array([0.1, 0.2, 0.3, 0.4])
    args = BS | {"strike": strikes, "vol": vols}
    prices = black_scholes("C", **args)
    assert prices.shape == (3, 4)
    assert (np.diff(prices, axis=0) < 0).all()  # a call is worth less at a higher strike
    assert (np.diff(prices, axis=1) > 0).all()  # and more at a higher volatility
    assert black_scholes_greeks("C", **args).gamma.shape == (3, 4)
    del args["vol"]
    assert implied_vol_black_scholes("C", price=prices, **args).shape == (3, 4)


def test_a_chain_mixes_calls_and_puts_in_one_array_of_rights() -> None:
    rights = np.array(["C", "P", "CALL", "PUT"])
    prices = black_scholes(rights, **BS)
    assert prices[0] == prices[2] and prices[1] == prices[3] and prices[0] > prices[1]


def test_decimal_prices_from_the_ledger_are_accepted() -> None:
    price = black_scholes("C", **(BS | {"spot": Decimal("100.25"), "strike": [Decimal("100")]}))
    assert price.shape == (1,) and price[0] == black_scholes("C", **(BS | {"spot": 100.25}))


# ---------------------------------------------------------------------------- the limits


def test_at_expiry_the_price_is_the_intrinsic_value_and_greeks_are_defined() -> None:
    strikes = np.array([90.0, 100.0, 110.0])
    args = BS | {"strike": strikes, "time_years": 0.0}
    np.testing.assert_array_equal(black_scholes("C", **args), [10.0, 0.0, 0.0])
    np.testing.assert_array_equal(black_scholes("P", **args), [0.0, 0.0, 10.0])
    calls = black_scholes_greeks("C", **args)
    puts = black_scholes_greeks("P", **args)
    np.testing.assert_array_equal(calls.delta, [1.0, 0.5, 0.0])
    np.testing.assert_array_equal(puts.delta, [0.0, -0.5, -1.0])
    for greeks in (calls, puts):
        for values in (greeks.gamma, greeks.vega, greeks.rho):
            np.testing.assert_array_equal(values, 0.0)
        assert np.isfinite(greeks.theta).all()
    futures = black76_greeks("C", **(B76 | {"strike": strikes, "time_years": 0.0}))
    np.testing.assert_array_equal(futures.delta, [1.0, 0.5, 0.0])
    np.testing.assert_array_equal(
        black76("C", **(B76 | {"strike": strikes, "time_years": 0})), [10, 0, 0]
    )


def test_without_volatility_the_price_is_the_discounted_intrinsic_value_of_the_forward() -> None:
    args = BS | {"strike": np.array([90.0, 110.0]), "vol": 0.0, "dividend_yield": 0.01}
    forward = 100.0 * math.exp((0.05 - 0.01) * 0.5)
    want = math.exp(-0.05 * 0.5) * max(forward - 90.0, 0.0)
    np.testing.assert_allclose(black_scholes("C", **args), [want, 0.0], rtol=1e-14)
    greeks = black_scholes_greeks("C", **args)
    np.testing.assert_allclose(greeks.delta, [math.exp(-0.01 * 0.5), 0.0], rtol=1e-14)
    np.testing.assert_array_equal(greeks.gamma, 0.0)


def test_greeks_convert_to_per_point_and_per_day() -> None:
    greeks = black_scholes_greeks("C", **BS)
    assert isinstance(greeks, Greeks)
    assert greeks.vega_pct == greeks.vega / 100
    assert greeks.theta_per_day == greeks.theta / 365
    assert greeks.rho_pct == greeks.rho / 100


def test_greeks_match_finite_differences_of_the_price() -> None:
    """Each greek is the derivative it says, in the units it says (a check beside QuantLib's)."""
    args = BS | {"dividend_yield": 0.02}
    greeks = black_scholes_greeks("P", **args)

    def bump(name: str, h: float) -> float:
        up = black_scholes("P", **(args | {name: args[name] + h}))
        down = black_scholes("P", **(args | {name: args[name] - h}))
        return float(up - down) / (2 * h)

    assert abs(bump("spot", 1e-3) - greeks.delta) < 1e-7
    assert abs(bump("vol", 1e-5) - greeks.vega) < 1e-5
    assert abs(-bump("time_years", 1e-6) - greeks.theta) < 1e-5
    assert abs(bump("rate", 1e-6) - greeks.rho) < 1e-5


# ---------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"spot": 0.0}, ["black_scholes: spot is 0.0", "above 0", "underlying's price"]),
        ({"strike": [100.0, -5.0]}, ["strike[1] is -5.0", "above 0", "strike price"]),
        ({"time_years": -0.1}, ["time_years is -0.1", "0 or more", "days / 365"]),
        ({"vol": [[0.2, -0.2]]}, ["vol[0, 1] is -0.2", "0 or more", "0.2 for 20 %"]),
        ({"rate": math.nan}, ["rate is nan", "finite", "0.05 for 5 %"]),
        ({"dividend_yield": math.inf}, ["dividend_yield is inf", "finite"]),
        ({"spot": "100"}, ["spot must be a number", "'100'"]),
        ({"vol": True}, ["vol must be a number", "True"]),
        ({"strike": [100, "110"]}, ["strike must be a number", "<U"]),
        (
            {"strike": [1.0, 2.0, 3.0], "vol": [0.1, 0.2]},
            ["do not broadcast", "strike (3,)", "vol (2,)"],
        ),
    ],
)
def test_bad_inputs_raise_config_error_naming_argument_value_and_fix(
    changes: dict[str, object], words: list[str]
) -> None:
    with pytest.raises(ConfigError) as caught:
        black_scholes("C", **(BS | changes))  # type: ignore[arg-type]
    assert isinstance(caught.value, ValueError)
    for word in words:
        assert word in str(caught.value)


@pytest.mark.parametrize("right", ["c", "call", "Call", "X", ""])
def test_a_right_that_is_not_ibs_spelling_is_refused(right: str) -> None:
    with pytest.raises(ConfigError, match=r"right is '.*'; a right is 'C' or 'P' as IB spells it"):
        black76(right, **B76)


def test_a_bad_right_in_an_array_is_named_by_its_place() -> None:
    with pytest.raises(ConfigError, match=r"right\[2\] is 'p'"):
        black_scholes_greeks(["C", "P", "p"], **BS)
    with pytest.raises(ConfigError, match=r"right\[1\] is '1'"):
        black_scholes(["C", 1], **BS)  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="right must be a string or an array of strings"):
        black_scholes(np.array([1, 0]), **BS)  # type: ignore[arg-type]


@pytest.mark.parametrize("price", [0.0, -1.0, math.nan])
def test_implied_vol_refuses_prices_that_are_not_positive_numbers(price: float) -> None:
    args = {k: v for k, v in BS.items() if k != "vol"}
    with pytest.raises(ConfigError, match=r"price\[1\] is .*above 0.*drop missing quotes"):
        implied_vol_black_scholes("C", price=[5.0, price], **args)


# ---------------------------------------------------------------------------- implied volatility


def test_implied_vol_is_nan_where_no_volatility_gives_the_price_and_solves_the_rest() -> None:
    args = {k: v for k, v in B76.items() if k != "vol"}
    good = float(black76("C", **B76))
    lower = 0.0  # at the money: no intrinsic value; upper: the discounted forward
    upper = 100.0 * math.exp(-0.05 * 0.5)
    prices = [good, upper, upper * 1.5, good]
    vols = implied_vol_black76("C", price=prices, **args)
    assert abs(vols[0] - 0.2) < 1e-12 and abs(vols[3] - 0.2) < 1e-12
    assert np.isnan(vols[1]) and np.isnan(vols[2])
    assert lower < good


def test_implied_vol_strict_names_the_price_the_bound_and_the_reason() -> None:
    args = {"spot": 100.0, "strike": 80.0, "time_years": 1.0, "rate": 0.0}
    with pytest.raises(ImpliedVolError) as caught:
        implied_vol_black_scholes("C", price=[25.0, 15.0], strict=True, **args)
    err = caught.value
    assert isinstance(err, ConfigError) and isinstance(err, ValueError)
    assert (err.index, err.price, err.reason, err.bound) == ((1,), 15.0, "below lower bound", 20.0)
    assert "price[1] is 15.0, below the no-arbitrage lower bound 20.0" in str(err)
    assert "without strict=True it is NaN" in str(err)
    with pytest.raises(ImpliedVolError, match=r"at or above the no-arbitrage upper bound 100\.0"):
        implied_vol_black_scholes("C", price=100.0, strict=True, **args)
    with pytest.raises(ImpliedVolError, match=r"upper bound 80\.0") as caught:
        implied_vol_black_scholes("P", price=90.0, strict=True, **args)
    assert caught.value.reason == "above upper bound" and caught.value.index == ()
    with pytest.raises(ImpliedVolError, match="expired option") as caught:
        implied_vol_black_scholes("C", price=20.0, strict=True, **(args | {"time_years": 0}))
    assert caught.value.reason == "expired" and caught.value.bound is None
    with pytest.raises(ImpliedVolError, match="holds no volatility") as caught:
        implied_vol_black_scholes("C", price=20.0, strict=True, **args)
    assert caught.value.reason == "no time value"
    assert np.isnan(implied_vol_black_scholes("C", price=20.0, **args))


def test_implied_vol_solves_far_from_the_money_and_near_the_upper_bound() -> None:
    strikes = np.array([20.0, 50.0, 100.0, 200.0, 500.0])
    vols = np.array([0.5, 0.3, 0.01, 3.0, 1.0])
    args = {"spot": 100.0, "strike": strikes, "time_years": 2.0, "rate": 0.03}
    args |= {"dividend_yield": 0.01}
    for right in ("C", "P"):
        prices = black_scholes(right, vol=vols, **args)
        found = implied_vol_black_scholes(right, price=prices, **args)
        again = black_scholes(right, vol=found, **args)
        np.testing.assert_allclose(again, prices, rtol=1e-12, atol=0)
