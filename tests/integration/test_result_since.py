"""RunResult.since: the statistics of a later span of a run, and walk-forward's use of it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ibkrfw import Engine, RunResult
from ibkrfw.analysis import metrics
from ibkrfw.data import sample_feed
from ibkrfw.optimize import Backtest, grid, walk_forward
from ibkrfw.sim import IBKRFixedCommission, SimBroker
from ibkrfw.strategies import MovingAverageCrossover


@pytest.fixture(scope="module")
def result() -> RunResult:
    return Engine(
        MovingAverageCrossover(fast=5, slow=20),
        sample_feed(["ACME", "BOLT"]),
        SimBroker(cash=50_000, commission=IBKRFixedCommission()),
    ).run()


def _a_time_inside_a_trade(result: RunResult) -> int:
    """A bar time two bars after the entry of a trade that lasted more than five days."""
    trades = result.trades
    long_ones = trades[trades["duration"] > pd.Timedelta(days=5)]
    entry = long_ones["entry_time"].iloc[len(long_ones) // 3].value
    stamps = result.equity.index.asi8
    return int(stamps[int(np.searchsorted(stamps, entry)) + 2])


def test_since_counts_the_span_only_from_the_equity_it_opens_with(result: RunResult) -> None:
    start = _a_time_inside_a_trade(result)
    late = result.since(start)
    equity = result.equity
    row = int(np.searchsorted(equity.index.asi8, start)) - 1  # the last row before the span
    opening = float(equity["equity"].iloc[row])
    stats = late.stats
    assert stats["Start"] == equity.index[row]
    assert stats["Bars"] == len(equity) - row
    assert stats["Initial equity"] == opening
    final = float(equity["equity"].iloc[-1])
    assert stats["Total return [%]"] == pytest.approx((final / opening - 1) * 100)
    returns = metrics.simple_returns(equity["equity"].to_numpy()[row:])
    periods = stats["Periods per year"]
    assert stats["Sharpe ratio"] == pytest.approx(metrics.sharpe_ratio(returns, periods, 0.0))
    # the span's fills and costs only; the earlier fills are kept apart
    assert all(f.ts_ns >= start for f in late.fill_list)
    assert late.earlier_fills + late.fill_list == result.fill_list
    spent = sum(float(f.commission) for f in result.fill_list if f.ts_ns >= start)
    assert stats["Commissions"] == pytest.approx(spent)
    # the trade open when the span began is a trade of the span, entry price and all
    crossing = [t for t in late.trade_list if t.entry_ns < start]
    assert len(crossing) == 1
    assert crossing[0] in result.trade_list
    assert late.trade_list == [t for t in result.trade_list if t.exit_ns >= start]
    # positions are carried in, not restarted from zero
    pd.testing.assert_frame_equal(late.positions, result.positions.iloc[row:])
    assert (late.positions.iloc[0] != 0).any()


def test_since_the_first_bar_is_the_whole_run(result: RunResult) -> None:
    whole = result.since(int(result.equity.index[0].value))
    pd.testing.assert_series_equal(whole.stats, result.stats)
    assert whole.earlier_fills == []


def test_a_result_seen_from_a_later_time_saves_and_loads(result: RunResult, tmp_path: Path) -> None:
    late = result.since(_a_time_inside_a_trade(result))
    late.save(tmp_path / "late.ibkrfw")
    loaded = RunResult.load(tmp_path / "late.ibkrfw")
    pd.testing.assert_series_equal(loaded.stats, late.stats)
    pd.testing.assert_frame_equal(loaded.trades, late.trades)
    pd.testing.assert_frame_equal(loaded.positions, late.positions)


def test_walk_forward_scores_the_span_without_the_lead_in() -> None:
    feed = sample_feed(["ACME"])
    setup = Backtest(MovingAverageCrossover, [feed], objective="Bars")
    wf = walk_forward(setup, grid({"fast": [5], "slow": [50]}), train="1095D", test="365D",
                      workers=1)  # fmt: skip
    stamps = feed.history_arrays(next(iter(feed.instruments))).ts_ns
    for _, row in wf.frame.iterrows():
        start, end = row["test_start"].value, row["test_end"].value
        in_span = int(np.sum((stamps >= start) & (stamps < end)))
        # the span's bars and the opening row before them; not the 50-bar lead-in
        assert row["out_of_sample"] == in_span + 1
        # and the return is the span's: the run over span and lead-in, seen from the span
        lead = int(stamps[np.searchsorted(stamps, start) - 50])
        run = setup.between(lead, end).run({"fast": 5, "slow": 50})
        assert row["out_of_sample_return"] == pytest.approx(
            run.since(start).stats["Total return [%]"]
        )
