"""The ready strategies on hand-made prices where the right trades are known."""

from __future__ import annotations

import pandas as pd
import pytest

from ibkrfw import ConfigError, Engine, Stock
from ibkrfw.sim import DataFrameFeed, SimBroker
from ibkrfw.strategies import CrossSectionalMomentum, MeanReversion, TimeSeriesMomentum
from ibkrfw.testing import bars_frame

A, B, C = Stock("A"), Stock("B"), Stock("C")


def frame(closes: list[float]) -> pd.DataFrame:
    return bars_frame([(c, c, c, c) for c in closes], start="2024-01-02 15:00")


def trades(strategy, data: dict[Stock, list[float]]):
    feeds = [DataFrameFeed(frame(v), inst) for inst, v in data.items()]
    result = Engine(strategy, feeds, SimBroker(100_000)).run()
    day = lambda ts: (pd.Timestamp(ts, tz="UTC") - pd.Timestamp("2024-01-02 15:00", tz="UTC")).days  # noqa: E731
    return [
        (f.instrument.symbol, f.side.value, day(f.ts_ns), f.order_id) for f in result.fill_list
    ], result


# 20 bars swinging 100/102 (mean 101, deviation 1), a plunge to 96 (z far below -2),
# a recovery to 101 (back at the mean), then the swing again.
SWING = [100.0, 102.0] * 10
REVERT = SWING + [96.0, 97.0, 101.0] + [100.0, 102.0] * 5


def test_mean_reversion_buys_the_plunge_and_sells_at_the_mean() -> None:
    fills, _ = trades(MeanReversion(period=20, entry=2.0, exit=0.0, long_only=True), {A: REVERT})
    # signal on bar 20 (96), bought at bar 21's open; back at the mean on bar 22, sold at 23
    assert [(s, side, d) for s, side, d, _ in fills] == [("A", "BUY", 21), ("A", "SELL", 23)]


def test_bollinger_signal_trades_as_the_zscore_with_the_same_settings() -> None:
    z, _ = trades(MeanReversion(period=20, entry=2.0), {A: REVERT})
    b, _ = trades(MeanReversion(period=20, entry=2.0, signal="bollinger"), {A: REVERT})
    assert [f[:3] for f in z] == [f[:3] for f in b]


def test_holding_time_limit_and_the_short_side() -> None:
    stuck = [*SWING] + [96.0] * 8  # never comes back
    fills, result = trades(MeanReversion(period=20, entry=2.0, max_bars=3), {A: stuck})
    # filled on bar 21; held three bars on bar 24, so sold at bar 25's open
    assert [(side, d) for _, side, d, _ in fills] == [("BUY", 21), ("SELL", 25)]
    assert [o.request.tag for o in result.order_list] == ["entry", "time-exit"]
    spike = [*SWING, 106.0, 105.0, 101.0, 100.0]
    fills, _ = trades(MeanReversion(period=20, entry=2.0), {A: spike})
    assert [(side, d) for _, side, d, _ in fills] == [("SELL", 21), ("BUY", 23)]
    fills, _ = trades(MeanReversion(period=20, entry=2.0, long_only=True), {A: spike})
    assert fills == []


def test_time_series_momentum_follows_the_trend() -> None:
    up = [100.0 + i for i in range(15)]
    down = [114.0 - 2 * i for i in range(1, 12)]
    fills, _ = trades(TimeSeriesMomentum(lookback=5), {A: up + down})
    # 5-bar return positive from bar 5 on (bought at 6, once); negative from bar 16 (110
    # against 111 five bars before): sold at 17
    assert [(side, d) for _, side, d, _ in fills] == [("BUY", 6), ("SELL", 17)]


def test_cross_sectional_momentum_rotates_into_the_leaders() -> None:
    n = 70  # 2 Jan to 11 Mar: rebalances on 2 Jan (too early), 1 Feb and 1 Mar
    a = [100.0 * 1.004**i for i in range(n)]  # steady riser
    b = [100.0 * 1.002**i for i in range(n)]
    c = [100.0 * (1.006**i if i < 45 else 1.006**45 * 0.99 ** (i - 45)) for i in range(n)]
    strategy = CrossSectionalMomentum(lookback=20, top=2, every="monthly")
    fills, _ = trades(strategy, {A: a, B: b, C: c})
    assert [h for _, h in strategy.holdings] == [("C.SMART", "A.SMART"), ("A.SMART", "B.SMART")]
    # 1 Feb (day 30): buy A and C; 1 Mar (day 59): sell C, buy B (A already held)
    assert [(s, side, d) for s, side, d, _ in fills if side == "BUY" or s == "C"][:2] == [
        ("A", "BUY", 31), ("C", "BUY", 31),
    ]  # fmt: skip
    assert ("C", "SELL", 60) in [(s, side, d) for s, side, d, _ in fills]
    assert ("B", "BUY", 60) in [(s, side, d) for s, side, d, _ in fills]


@pytest.mark.parametrize(
    "make",
    [
        lambda: MeanReversion(entry=1.0, exit=1.5),
        lambda: MeanReversion(period=1),
        lambda: MeanReversion(signal="rsi"),  # type: ignore[arg-type]
        lambda: MeanReversion(max_bars=0),
        lambda: TimeSeriesMomentum(lookback=0),
        lambda: TimeSeriesMomentum(threshold=-0.1),
        lambda: CrossSectionalMomentum(exposure=1.5),
        lambda: CrossSectionalMomentum(every="hourly"),  # type: ignore[arg-type]
    ],
)
def test_parameters_are_validated(make) -> None:
    with pytest.raises(ConfigError):
        make()
