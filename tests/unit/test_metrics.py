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


# --- the rest of the metrics, each against numbers worked out by hand -----------------------


def test_sortino_by_hand() -> None:
    from ibkrfw.analysis import sortino_ratio

    rets = np.array([0.02, -0.01, 0.03, -0.02])
    # mean 0.005; downside: sqrt((0.01**2 + 0.02**2) / 4) = sqrt(0.000125) = 0.0111803...
    assert sortino_ratio(rets, 252.0) == pytest.approx(0.005 / 0.000125**0.5 * 252**0.5)
    assert math.isnan(sortino_ratio(np.array([0.01, 0.02]), 252.0))  # nothing below target


def test_drawdown_with_recovery_and_without() -> None:
    from ibkrfw.analysis import drawdown, longest_under_water, time_under_water

    curve = np.array([100.0, 120.0, 90.0, 110.0, 125.0, 100.0])
    dd = drawdown(curve)
    assert (dd.depth, dd.peak, dd.trough, dd.recovery) == (pytest.approx(-0.25), 1, 2, 4)
    # under water at 90, 110 and 100: 3 of 6 periods
    assert time_under_water(curve) == pytest.approx(0.5)
    # the stretch from the peak at 1 back to 125 at 4 (3 periods) beats 4 -> 5 (open, 1 period)
    assert longest_under_water(curve) == (1, 4)
    never = drawdown(np.array([100.0, 120.0, 90.0, 95.0]))
    assert (never.depth, never.recovery) == (pytest.approx(-0.25), -1)
    assert longest_under_water(np.array([100.0, 120.0, 90.0, 95.0])) == (1, 3)
    assert drawdown(np.array([1.0, 2.0, 3.0])) == (0.0, 0, 0, 0)
    assert math.isnan(drawdown(np.array([])).depth)


def test_calmar_is_cagr_over_the_drawdown() -> None:
    from ibkrfw.analysis import calmar_ratio

    assert calmar_ratio(0.12, -0.3) == pytest.approx(0.4)
    assert math.isnan(calmar_ratio(0.12, 0.0))  # no drawdown: undefined, not infinity


def test_trade_stats_by_hand() -> None:
    from ibkrfw.analysis import trade_stats

    stats = trade_stats(np.array([100.0, -50.0, 30.0, -20.0, 0.0]))
    assert stats.trades == 5
    assert stats.win_rate == pytest.approx(2 / 5)
    assert stats.profit_factor == pytest.approx(130 / 70)
    assert stats.expectancy == pytest.approx(60 / 5)
    assert (stats.average_win, stats.average_loss) == (65.0, -35.0)
    assert (stats.largest_win, stats.largest_loss) == (100.0, -50.0)
    all_losses = trade_stats(np.array([-10.0, -30.0]))
    assert all_losses.win_rate == 0.0 and all_losses.profit_factor == 0.0
    assert math.isnan(all_losses.average_win)
    no_losses = trade_stats(np.array([10.0]))
    assert math.isnan(no_losses.profit_factor)  # never infinity
    none = trade_stats(np.array([]))
    assert none.trades == 0 and math.isnan(none.win_rate) and math.isnan(none.expectancy)


def test_alpha_and_beta_by_hand() -> None:
    from ibkrfw.analysis import alpha_beta

    bench = np.array([0.01, -0.02, 0.03, 0.0])
    alpha, beta = alpha_beta(0.5 * bench - 0.002, bench, 252.0)
    assert beta == pytest.approx(0.5)
    assert alpha == pytest.approx(-0.002 * 252)
    assert all(math.isnan(x) for x in alpha_beta(bench, np.zeros(4), 252.0))  # flat benchmark
    with pytest.raises(ValueError, match="aligned"):
        alpha_beta(bench, bench[:3], 252.0)


def test_rolling_windows_by_hand() -> None:
    from ibkrfw.analysis import rolling_sharpe, rolling_volatility

    rets = np.array([0.01, 0.03, 0.02, 0.02])
    vol = rolling_volatility(rets, 2, 1.0)
    # windows (0.01, 0.03): sample std 0.0141421; (0.03, 0.02): 0.00707107; (0.02, 0.02): 0
    np.testing.assert_allclose(vol, [np.nan, 0.02**0.5 / 10, 0.005**0.5 / 10, 0.0], atol=1e-12)
    sharpe = rolling_sharpe(rets, 2, 4.0)
    assert math.isnan(sharpe[0]) and math.isnan(sharpe[3])  # not enough data; zero volatility
    assert sharpe[1] == pytest.approx(0.02 / (0.02**0.5 / 10) * 2)
    with pytest.raises(ValueError, match="at least 2"):
        rolling_sharpe(rets, 1, 252.0)
