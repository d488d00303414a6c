"""TargetWeights on hand-made prices, where the right trades are known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ibkrfw import ConfigError, Engine, Stock
from ibkrfw.analysis import (
    correlation_matrix,
    diversification_ratio,
    returns_of,
    rolling_correlation,
)
from ibkrfw.risk import MaxDrawdownKillSwitch
from ibkrfw.sim import DataFrameFeed, SimBroker
from ibkrfw.strategies import TargetWeights
from ibkrfw.testing import RecordingBroker, bars_frame

A, B = Stock("A"), Stock("B")


def frame(closes: list[float], start: str = "2024-01-02 15:00") -> pd.DataFrame:
    return bars_frame([(c, c, c, c) for c in closes], start=start, freq="1D")


def run(strategy: TargetWeights, a: list[float], b: list[float], **kw):
    broker = RecordingBroker(SimBroker(10_000))
    feeds = [DataFrameFeed(frame(a), A), DataFrameFeed(frame(b), B)]
    return Engine(strategy, feeds, broker, **kw).run(), broker


def sent(broker: RecordingBroker) -> list[tuple[str, str, int]]:
    return [(o.instrument.symbol, o.side.value, int(o.request.quantity)) for o in broker.submitted]


def test_monthly_rebalance_sells_the_winner_and_buys_the_loser() -> None:
    # 62 daily bars from 2 January: A doubles on 1 February (a new month), B stays at 10
    a = [10.0] * 30 + [20.0] * 32
    b = [10.0] * 62
    strategy = TargetWeights({"A": 0.5, "B": 0.5}, every="monthly", cash_buffer=0.0)
    result, broker = run(strategy, a, b)
    # 2 Jan: 500 of each. 1 Feb, at 20 and 10: equity 15,000, so A 375 and B 750
    assert sent(broker) == [("A", "BUY", 500), ("B", "BUY", 500), ("A", "SELL", 125),
                            ("B", "BUY", 250)]  # fmt: skip
    assert [pd.Timestamp(t, tz="UTC").strftime("%m-%d") for t in strategy.rebalances] == [
        "01-02", "02-01",
    ]  # fmt: skip
    assert result.positions.iloc[-1].tolist() == [375.0, 750.0]


def test_drift_trigger_without_a_schedule() -> None:
    a = [10.0] * 5 + [11.0] * 5 + [13.0] * 5
    b = [10.0] * 15
    strategy = TargetWeights(None, every=None, drift_trigger=0.05, cash_buffer=0.0)
    _, broker = run(strategy, a, b)
    # at 11: A is 52.4 % (drift 2.4 points, left alone); at 13: 56.5 %, rebalanced
    assert len(strategy.rebalances) == 2
    assert sent(broker)[2:] == [("A", "SELL", 58), ("B", "BUY", 75)]


def test_a_halt_pauses_rebalancing() -> None:
    a = [10.0] * 20 + [5.0] * 45
    b = [10.0] * 20 + [5.0] * 45
    strategy = TargetWeights(every="weekly", cash_buffer=0.0)
    result, broker = run(strategy, a, b, risk_monitors=[MaxDrawdownKillSwitch(0.3)])
    assert len(result.halts) == 1
    assert [o.request.tag for o in broker.submitted] == ["rebalance"] * 2 + ["flatten"] * 2
    assert len(strategy.rebalances) == 1  # nothing asked for after the halt


def test_bad_parameters() -> None:
    with pytest.raises(ConfigError, match=r"add up to 1\.2"):
        TargetWeights({"A": 0.6, "B": -0.6})
    with pytest.raises(ConfigError, match="schedule"):
        TargetWeights(every=None)
    with pytest.raises(ConfigError):
        TargetWeights(drift_band=-1)
    with pytest.raises(ConfigError, match=r"weights name \['C'\]"):
        run(TargetWeights({"C": 1.0}), [10.0] * 3, [10.0] * 3)


def test_correlation_tools_on_known_series() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(0, 0.01, 500)
    returns = pd.DataFrame({"X": x, "Y": 2 * x, "Z": -x})
    matrix = correlation_matrix(returns)
    assert matrix.loc["X", "Y"] == pytest.approx(1.0) and matrix.loc["X", "Z"] == pytest.approx(-1)
    rolling = rolling_correlation(returns, 20)
    assert rolling.loc[19].loc["X", "Z"] == pytest.approx(-1.0)
    assert rolling.loc[18].isna().all().all()
    # all moving together: no diversification; a perfect hedge: the portfolio does not move
    assert diversification_ratio({"X": 0.5, "Y": 0.5}, returns) == pytest.approx(1.0)
    assert diversification_ratio({"X": 0.5, "Z": 0.5}, returns) != diversification_ratio(
        {"X": 0.5, "Z": 0.5}, returns
    )  # NaN
    with pytest.raises(ConfigError):
        diversification_ratio({"Q": 1.0}, returns)
    with pytest.raises(ConfigError):
        rolling_correlation(returns, 1)
    prices = pd.DataFrame({"P": [10.0, 11.0, np.nan, 12.1]})
    assert returns_of(prices)["P"].round(2).tolist()[1] == 0.1


def test_run_closes_and_the_heatmap() -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from ibkrfw.reports import plot_correlation

    result, _ = run(TargetWeights(), [10.0, 11.0, 10.5, 12.0], [5.0, 5.5, 5.0, 6.0])
    assert list(result.closes.columns) == ["A.SMART", "B.SMART"]
    assert result.closes["A.SMART"].tolist() == [10.0, 11.0, 10.5, 12.0]
    ax = Figure().add_subplot()
    plot_correlation(correlation_matrix(returns_of(result.closes)), ax)
    assert [t.get_text() for t in ax.texts] == ["1.00", "0.99", "0.99", "1.00"]
