from __future__ import annotations

import math

import numpy as np
import pytest

from ibkrfw.analysis import (
    annual_volatility,
    cagr,
    max_drawdown,
    periods_per_year,
    sharpe_ratio,
    simple_returns,
    total_return,
)

DAY = 86_400 * 10**9


def test_hand_computed_values() -> None:
    equity = np.array([100.0, 110.0, 99.0, 121.0])
    np.testing.assert_allclose(simple_returns(equity), [0.1, -0.1, 121 / 99 - 1])
    assert total_return(equity) == pytest.approx(0.21)
    assert max_drawdown(equity) == (pytest.approx(-0.1), 1, 2)
    rets = np.array([0.01, -0.005, 0.02, 0.0])
    # mean 0.00625, sample std 0.0110868, * sqrt(252)
    assert sharpe_ratio(rets, 252.0) == pytest.approx(0.00625 / 0.011086778913041726 * 252**0.5)
    assert annual_volatility(rets, 252.0) == pytest.approx(0.011086778913041726 * 252**0.5)


def test_cagr_over_exactly_two_years_of_days() -> None:
    ts = np.array([0, int(2 * 365.25 * DAY)], dtype=np.int64)
    assert cagr(np.array([100.0, 121.0]), ts) == pytest.approx(0.1)


def test_periods_per_year_follows_the_data() -> None:
    weekdays = np.array([d * DAY for d in range(3650) if d % 7 < 5], dtype=np.int64)
    assert periods_per_year(weekdays) == pytest.approx(260.9, abs=0.2)


@pytest.mark.parametrize("equity", [np.array([]), np.array([100.0])])
def test_edge_cases_give_nan_not_errors(equity: np.ndarray) -> None:  # type: ignore[type-arg]
    ts = np.arange(len(equity), dtype=np.int64)
    rets = simple_returns(equity)
    assert len(rets) == max(len(equity) - 1, 0)
    assert math.isnan(sharpe_ratio(rets, 252.0))
    assert math.isnan(cagr(equity, ts))
    assert math.isnan(periods_per_year(ts))


def test_flat_equity_has_nan_sharpe_and_no_drawdown() -> None:
    flat = np.full(10, 100.0)
    rets = simple_returns(flat)
    assert math.isnan(sharpe_ratio(rets, 252.0))
    assert annual_volatility(rets, 252.0) == 0.0
    assert max_drawdown(flat) == (0.0, 0, 0)


def test_drawdown_peak_and_trough_positions() -> None:
    dd, peak, trough = max_drawdown(np.array([1.0, 3.0, 2.0, 4.0, 1.0, 5.0]))
    assert (dd, peak, trough) == (pytest.approx(-0.75), 3, 4)
