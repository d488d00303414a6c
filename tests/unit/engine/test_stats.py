"""RunResult.stats on runs worked out by hand, the metrics' relations, and the edge cases."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ibkrfw import Engine, Stock
from ibkrfw.sim import DataFrameFeed, SimBroker
from ibkrfw.testing import ScriptedStrategy, bars_frame

ACME = Stock("ACME")
# open, high, low, close; daily bars from 2024-01-02
ROWS = [(100, 100, 100, 100), (100, 110, 100, 110), (110, 110, 90, 90), (90, 100, 90, 95),
        (95, 120, 95, 120), (120, 120, 100, 100)]  # fmt: skip


def run(actions: dict[int, object], rows: list[tuple[float, ...]] = ROWS, cash: float = 1000):
    feed = DataFrameFeed(bars_frame(rows), ACME)  # type: ignore[arg-type]
    return Engine(ScriptedStrategy(actions), feed, SimBroker(cash)).run()  # type: ignore[arg-type]


def test_a_run_by_hand() -> None:
    # buy 10 at bar 1's open (100) on bar 0; sell 10 at bar 5's open (120) on bar 4
    result = run({0: lambda c, b: c.buy(ACME, 10), 4: lambda c, b: c.sell(ACME, 10)})
    stats = result.stats
    # equity at each close: 1000, 1100, 900, 950, 1200, 1200 (sold at 120, the open of bar 5)
    assert list(result.equity["equity"]) == [1000, 1100, 900, 950, 1200, 1200]
    assert stats["Total return [%]"] == pytest.approx(20.0)
    assert stats["Max drawdown [%]"] == pytest.approx((900 / 1100 - 1) * 100)
    index = result.equity.index
    assert stats["Max drawdown start"] == index[1]
    assert stats["Max drawdown trough"] == index[2]
    assert stats["Max drawdown recovery"] == index[4]
    assert stats["Max drawdown duration"] == index[4] - index[1]
    # under water at bars 2 and 3: 2 of 6
    assert stats["Time under water [%]"] == pytest.approx(100 * 2 / 6)
    # a position is held at the closes of bars 1 to 4: 4 of 6
    assert stats["Exposure [%]"] == pytest.approx(100 * 4 / 6)
    assert stats["Trades"] == 1 and stats["Win rate [%]"] == 100.0
    assert stats["Expectancy"] == pytest.approx(200.0)
    assert stats["Largest win"] == pytest.approx(200.0)
    assert math.isnan(stats["Average loss"]) and math.isnan(stats["Profit factor"])
    # traded 1000 + 1200 over a mean equity of 1058.33, over 5 days of a 365.25-day year
    years = 5 / 365.25
    assert stats["Turnover (annual)"] == pytest.approx(
        2200 / np.mean(result.equity["equity"]) / years
    )
    assert stats["Trades per year"] == pytest.approx(1 / years)
    assert stats["Annualisation"] == "observed bars per year"


def test_the_metrics_agree_with_each_other() -> None:
    result = run({0: lambda c, b: c.buy(ACME, 10), 4: lambda c, b: c.sell(ACME, 10)})
    stats = result.stats
    assert stats["Calmar ratio"] == pytest.approx(stats["CAGR [%]"] / -stats["Max drawdown [%]"])
    rets = result.equity["equity"].pct_change().dropna().to_numpy()
    periods = stats["Periods per year"]
    assert stats["Sharpe ratio"] == pytest.approx(rets.mean() / rets.std(ddof=1) * periods**0.5)
    assert stats["Annual volatility [%]"] == pytest.approx(rets.std(ddof=1) * periods**0.5 * 100)
    given = result.statistics(periods_per_year=252)
    assert given["Annualisation"] == "given" and given["Periods per year"] == 252
    assert given["Sharpe ratio"] == pytest.approx(rets.mean() / rets.std(ddof=1) * 252**0.5)


def test_against_a_benchmark() -> None:
    result = run({0: lambda c, b: c.buy(ACME, 10), 4: lambda c, b: c.sell(ACME, 10)})
    closes = bars_frame(ROWS)["close"]
    stats = result.statistics(benchmark=closes)
    assert stats["Benchmark return [%]"] == pytest.approx(0.0)  # 100 to 100
    rets = result.equity["equity"].pct_change().dropna().to_numpy()
    bench = closes.pct_change().dropna().to_numpy()
    beta = np.cov(rets, bench, ddof=1)[0, 1] / np.var(bench, ddof=1)
    assert stats["Beta"] == pytest.approx(beta)
    assert stats["Alpha [%]"] == pytest.approx(
        (rets.mean() - beta * bench.mean()) * stats["Periods per year"] * 100
    )
    with pytest.raises(ValueError, match="time-zone-aware"):
        result.statistics(benchmark=pd.Series([1.0, 2.0]))


@pytest.mark.parametrize(
    ("name", "actions", "rows"),
    [
        ("no trades", {}, ROWS),
        ("one bar", {}, ROWS[:1]),
        ("all flat", {0: lambda c, b: c.buy(ACME, 1)}, [(100, 100, 100, 100)] * 5),
        (
            "all losses",
            {
                0: lambda c, b: c.buy(ACME, 5),
                1: lambda c, b: c.sell(ACME, 5),
                2: lambda c, b: c.buy(ACME, 5),
                3: lambda c, b: c.sell(ACME, 5),
            },
            [
                (100, 100, 90, 100),
                (100, 100, 90, 90),
                (100, 100, 90, 100),
                (100, 100, 90, 90),
                (80, 80, 80, 80),
            ],
        ),
    ],
)
def test_edge_cases_have_defined_values(name: str, actions: dict[int, object], rows: list) -> None:  # type: ignore[type-arg]
    stats = run(actions, rows).stats
    for key, value in stats.items():
        if isinstance(value, float):
            assert not math.isinf(value), f"{name}: {key} is infinite"
    if name == "all losses":
        assert stats["Win rate [%]"] == 0.0 and stats["Profit factor"] == 0.0
        assert stats["Largest loss"] < 0 and math.isnan(stats["Largest win"])
    if name in ("no trades", "one bar"):
        assert stats["Trades"] == 0 and math.isnan(stats["Expectancy"])
    if name == "all flat":
        assert math.isnan(stats["Sharpe ratio"]) and stats["Max drawdown [%]"] == 0.0
        assert stats["Exposure [%]"] == pytest.approx(100 * 4 / 5)


def test_slippage_paid_is_recorded_and_summed() -> None:
    from decimal import Decimal

    from ibkrfw.sim import FixedBpsSlippage

    feed = DataFrameFeed(bars_frame(ROWS), ACME)
    script = ScriptedStrategy({0: lambda c, b: c.buy(ACME, 10), 4: lambda c, b: c.sell(ACME, 10)})
    result = Engine(script, feed, SimBroker(1000, slippage=FixedBpsSlippage(10))).run()
    # 10 bps: the buy at bar 1's open of 100 pays 100.10, the sale at bar 5's 120 gets 119.88
    assert [f.price for f in result.fill_list] == [Decimal("100.10"), Decimal("119.88")]
    assert [f.slippage for f in result.fill_list] == [Decimal("1.00"), Decimal("1.20")]
    assert result.stats["Slippage"] == pytest.approx(2.2)
    assert list(result.fills["slippage"]) == [Decimal("1.00"), Decimal("1.20")]


def test_positions_over_time() -> None:
    result = run({0: lambda c, b: c.buy(ACME, 10), 2: lambda c, b: c.sell(ACME, 4),
                  4: lambda c, b: c.sell(ACME, 6)})  # fmt: skip
    # fills at the opens of bars 1, 3 and 5
    assert list(result.positions["ACME.SMART"]) == [0, 10, 10, 6, 6, 0]
    assert list(result.positions.index) == list(result.equity.index)
    flat = run({})
    assert list(flat.positions["ACME.SMART"]) == [0.0] * len(ROWS)
