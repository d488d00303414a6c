"""Indicators a strategy declares: one per instrument, updated before on_bar, warm-up known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ibkrfw import Bar, ConfigError, Context, Engine, Stock, Strategy
from ibkrfw.indicators import ATR, RSI, SMA, atr, rsi, sma
from ibkrfw.sim import DataFrameFeed, SimBroker
from ibkrfw.testing import bars_frame

A, B = Stock("A"), Stock("B")


def frame(closes: list[float]):
    return bars_frame([(c, c + 1, c - 1, c) for c in closes])


class Recorder(Strategy):
    def __init__(self) -> None:
        self.values: dict[Stock, list[tuple[float, float, float]]] = {A: [], B: []}

    def indicators(self):  # type: ignore[no-untyped-def]
        return {"sma": SMA(3), "rsi": RSI(4), "atr": ATR(2)}

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        inst = bar.instrument
        self.values[inst].append(
            tuple(ctx.indicator(inst, n).value for n in ("sma", "rsi", "atr"))  # type: ignore[arg-type]
        )


def test_each_instrument_has_its_own_indicators_updated_before_on_bar() -> None:
    a = [10.0, 11.0, 12.0, 11.5, 13.0, 12.0, 14.0]
    b = [50.0, 49.0, 48.0, 47.0, 49.0, 50.0, 51.0]
    strategy = Recorder()
    assert strategy.warmup_bars == 5  # RSI(4) needs five closes
    feeds = [DataFrameFeed(frame(a), A), DataFrameFeed(frame(b), B)]
    Engine(strategy, feeds, SimBroker()).run()
    for inst, closes in ((A, a), (B, b)):
        x = np.array(closes)
        got = np.array(strategy.values[inst])
        np.testing.assert_allclose(got[:, 0], sma(x, 3), equal_nan=True)
        np.testing.assert_allclose(got[:, 1], rsi(x, 4), equal_nan=True)
        np.testing.assert_allclose(got[:, 2], atr(x + 1, x - 1, x, 2), equal_nan=True)
    assert math.isnan(strategy.values[A][1][0]) and strategy.values[A][2][0] == 11.0


def test_unknown_names_and_non_indicators_are_clear_errors() -> None:
    class Asks(Strategy):
        def indicators(self):  # type: ignore[no-untyped-def]
            return {"sma": SMA(3)}

        def on_bar(self, ctx: Context, bar: Bar) -> None:
            ctx.indicator(bar.instrument, "ema")

    feed = DataFrameFeed(frame([10.0, 20.0]), A)
    with pytest.raises(ConfigError, match=r"no indicator 'ema': the strategy declares \['sma'\]"):
        Engine(Asks(), feed, SimBroker()).run()

    class Wrong(Strategy):
        def indicators(self):  # type: ignore[no-untyped-def]
            return {"x": 3}

    with pytest.raises(ConfigError, match="indicator 'x' is a int"):
        Engine(Wrong(), DataFrameFeed(frame([10.0, 20.0]), A), SimBroker()).run()
