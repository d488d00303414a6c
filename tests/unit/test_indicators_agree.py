"""Every indicator's two forms agree to 1e-9, warm up where they say, and stay exact."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ibkrfw import Bar, ConfigError, Stock
from ibkrfw.indicators import (
    ATR,
    MACD,
    RSI,
    WMA,
    BollingerBands,
    Indicator,
    RateOfChange,
    RollingVolatility,
    ZScore,
    atr,
    bollinger,
    macd,
    rate_of_change,
    rsi,
    volatility,
    wma,
    zscore,
)

X = Stock("X")


def walk(n: int, seed: int = 1, start: float = 100.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return start * np.exp(np.cumsum(rng.normal(0, 0.01, n)))


def incremental(ind: Indicator, values: np.ndarray, attribute: str = "value") -> np.ndarray:
    out = []
    for v in values.tolist():
        ind.update(v)
        out.append(getattr(ind, attribute))
    return np.array(out)


# (make the incremental one, the vectorised values, which attribute)
CASES: dict[str, tuple[Callable[[], Indicator], Callable[[np.ndarray], np.ndarray], str]] = {
    "wma": (lambda: WMA(17), lambda x: wma(x, 17), "value"),
    "rsi": (lambda: RSI(14), lambda x: rsi(x, 14), "value"),
    "bollinger middle": (
        lambda: BollingerBands(20, 2),
        lambda x: bollinger(x, 20, 2).middle,
        "value",
    ),
    "bollinger upper": (
        lambda: BollingerBands(20, 2),
        lambda x: bollinger(x, 20, 2).upper,
        "upper",
    ),
    "bollinger lower": (
        lambda: BollingerBands(20, 2.5),
        lambda x: bollinger(x, 20, 2.5).lower,
        "lower",
    ),
    "zscore": (lambda: ZScore(30), lambda x: zscore(x, 30), "value"),
    "roc": (lambda: RateOfChange(10), lambda x: rate_of_change(x, 10), "value"),
    "volatility": (
        lambda: RollingVolatility(21, 252),
        lambda x: volatility(x, 21, 252),
        "value",
    ),
    "macd": (lambda: MACD(12, 26, 9), lambda x: macd(x).macd, "value"),
    "macd signal": (lambda: MACD(12, 26, 9), lambda x: macd(x).signal, "signal"),
    "macd histogram": (
        lambda: MACD(5, 13, 4),
        lambda x: macd(x, 5, 13, 4).histogram,
        "histogram",
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_two_forms_agree_on_a_long_walk(name: str) -> None:
    make, vectorised, attribute = CASES[name]
    values = walk(20_000)
    got = incremental(make(), values, attribute)
    want = vectorised(values)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9, equal_nan=True)
    # NaN exactly during the warm-up, and the warm-up is what the indicator says
    ind = make()
    first = int(np.argmax(~np.isnan(want)))
    if name == "macd":  # the MACD line comes before the signal line the warm-up waits for
        assert first == 26 - 1 and ind.warmup == 26 + 9 - 1
    else:
        assert first == ind.warmup - 1
    assert np.isnan(want[:first]).all()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(1.0, 1e4, allow_nan=False), min_size=1, max_size=200),
    st.integers(2, 30),
)
@example(values=[6956.991858707572, 1.0, 1.75], period=2)  # a jump: the sums cancelled
@example(values=[100.0] * 30 + [5000.0 + 0.01 * k for k in range(40)], period=20)
def test_agreement_on_any_data(values: list[float], period: int) -> None:
    x = np.array(values)
    pairs = [
        (WMA(period), wma(x, period), "value"),
        (RSI(period), rsi(x, period), "value"),
        (ZScore(period), zscore(x, period), "value"),
        (BollingerBands(period), bollinger(x, period).upper, "upper"),
        (RateOfChange(period), rate_of_change(x, period), "value"),
        (RollingVolatility(period), volatility(x, period), "value"),
    ]
    for ind, want, attribute in pairs:
        got = incremental(ind, x, attribute)
        scale = max(1.0, float(np.nanmax(np.abs(want)))) if np.isfinite(want).any() else 1.0
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * scale, equal_nan=True)


def test_atr_reads_bars_and_agrees() -> None:
    close = walk(5_000, seed=4)
    rng = np.random.default_rng(5)
    high = close * (1 + rng.uniform(0, 0.02, len(close)))
    low = close * (1 - rng.uniform(0, 0.02, len(close)))
    ind = ATR(14)
    got = [
        ind.update_bar(Bar(X, i, c, h, lo, c, 0.0))
        for i, (h, lo, c) in enumerate(zip(high, low, close, strict=True))
    ]
    np.testing.assert_allclose(got, atr(high, low, close, 14), rtol=1e-9, equal_nan=True)
    assert ind.warmup == 14 and ind.ready


def test_known_values() -> None:
    # RSI: changes +1, -0.5, +1 over period 2: 0.5/0.25 -> 66.67; then 0.75/0.125 -> 85.71
    assert rsi(np.array([10.0, 11.0, 10.5, 11.5]), 2)[2:].round(4).tolist() == [66.6667, 85.7143]
    assert rsi(np.array([1.0, 2.0, 3.0]), 2)[-1] == 100.0
    assert rsi(np.array([3.0, 2.0, 1.0]), 2)[-1] == 0.0
    assert rsi(np.array([5.0, 5.0, 5.0]), 2)[-1] == 50.0
    assert zscore(np.array([5.0, 5.0, 5.0]), 3)[-1] == 0.0  # nothing moved
    assert wma(np.array([1.0, 2.0, 4.0]), 3)[-1] == pytest.approx(17 / 6)
    assert rate_of_change(np.array([100.0, 50.0, 110.0]), 2)[-1] == pytest.approx(0.1)


def test_exact_over_a_million_updates() -> None:
    values = walk(1_000_000, seed=9, start=1_000.0)
    bands, z = BollingerBands(50), ZScore(50)
    for v in values.tolist():
        bands.update(v)
        z.update(v)
    tail = values[-50:]
    assert bands.upper == pytest.approx(tail.mean() + 2 * tail.std(), rel=1e-12)
    assert z.value == pytest.approx((tail[-1] - tail.mean()) / tail.std(), rel=1e-9)


def test_fresh_copies_start_over() -> None:
    for ind in (WMA(3), RSI(3), BollingerBands(3), ZScore(3), RateOfChange(3),
                RollingVolatility(3), ATR(3), MACD(2, 3, 2)):  # fmt: skip
        for v in (1.0, 2.0, 3.0, 4.0, 5.0, 6.0):
            ind.update(v)
        twin = ind.fresh()
        assert type(twin) is type(ind) and not twin.ready and ind.ready
        assert twin.warmup == ind.warmup


@pytest.mark.parametrize(
    "make",
    [
        lambda: WMA(0),
        lambda: RSI(-1),
        lambda: BollingerBands(1),
        lambda: BollingerBands(5, k=0),
        lambda: ZScore(1),
        lambda: RollingVolatility(1),
        lambda: RollingVolatility(5, periods_per_year=0),
        lambda: MACD(26, 12),
        lambda: ATR(True),
    ],
)
def test_bad_settings(make: Callable[[], object]) -> None:
    with pytest.raises(ConfigError):
        make()
