from __future__ import annotations

import pandas as pd
import pytest

from ibkrfw import ConfigError
from ibkrfw.data import SAMPLE_SYMBOLS, generate_bars, load_sample, sample_feed
from ibkrfw.sim import frame_to_arrays


def test_shipped_daily_sample_is_exactly_what_the_generator_makes() -> None:
    shipped = load_sample("daily")
    fresh = generate_bars(freq="1D", start="2015-01-02", end="2024-12-31", seed=7)
    pd.testing.assert_frame_equal(shipped, fresh, check_dtype=False, atol=0.0, rtol=0.0)


def test_generator_is_deterministic_and_seeded() -> None:
    a = generate_bars(["A", "B"], periods=500, seed=3)
    b = generate_bars(["A", "B"], periods=500, seed=3)
    c = generate_bars(["A", "B"], periods=500, seed=4)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)


@pytest.mark.parametrize("freq", ["1D", "1min"])
def test_generated_bars_pass_validation(freq: str) -> None:
    frame = generate_bars(periods=2000, freq=freq, seed=1)
    for symbol in SAMPLE_SYMBOLS:
        rows = frame[frame["symbol"] == symbol].set_index("timestamp")
        frame_to_arrays(rows)  # raises DataError on any bad bar


def test_minute_bars_stay_in_the_us_session() -> None:
    frame = generate_bars(["A"], periods=1000, freq="1min")
    local = frame["timestamp"].dt.tz_convert("America/New_York")
    minutes = local.dt.hour * 60 + local.dt.minute
    assert minutes.min() == 9 * 60 + 30 and minutes.max() == 15 * 60 + 59
    assert (local.dt.day_of_week < 5).all()


def test_returns_are_correlated_as_asked() -> None:
    frame = generate_bars(["A", "B"], periods=5000, seed=2, correlation=0.6)
    closes = frame.pivot(index="timestamp", columns="symbol", values="close")
    corr = closes.pct_change().corr().loc["A", "B"]
    assert corr == pytest.approx(0.6, abs=0.05)


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="exactly one"):
        generate_bars()
    with pytest.raises(ConfigError, match="freq"):
        generate_bars(periods=3, freq="1h")
    with pytest.raises(ConfigError, match="unknown sample symbols"):
        sample_feed(["NOPE"])
    with pytest.raises(ConfigError, match="unknown sample"):
        load_sample("weekly")
