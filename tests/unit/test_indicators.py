from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ibkrfw import ConfigError
from ibkrfw.indicators import EMA, SMA, ema, sma


@given(
    st.lists(st.floats(1.0, 1e4, allow_nan=False), min_size=1, max_size=300),
    st.integers(1, 40),
)
def test_incremental_and_vectorised_agree(values: list[float], period: int) -> None:
    for incremental, vectorised in ((SMA, sma), (EMA, ema)):
        ind = incremental(period)
        got = np.array([ind.update(v) for v in values])
        want = vectorised(np.array(values), period)
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9, equal_nan=True)
        assert ind.ready == (len(values) >= period)


def test_sma_stays_exact_over_a_million_updates() -> None:
    rng = np.random.default_rng(0)
    values = 100 + np.cumsum(rng.standard_normal(1_000_000))
    ind = SMA(30)
    for v in values.tolist():
        ind.update(v)
    assert ind.value == pytest.approx(values[-30:].mean(), rel=1e-12)


def test_warm_up_returns_nan() -> None:
    ind = SMA(3)
    assert math.isnan(ind.update(1.0)) and math.isnan(ind.update(2.0))
    assert ind.update(3.0) == 2.0


@pytest.mark.parametrize("period", [0, -1, 2.5, True])
def test_bad_periods(period: object) -> None:
    with pytest.raises(ConfigError):
        SMA(period)  # type: ignore[arg-type]
