from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
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


def _digest(frame: pd.DataFrame) -> str:
    h = hashlib.sha256()
    h.update(repr(list(frame.columns)).encode())
    h.update(repr([str(d) for d in frame.dtypes]).encode())
    h.update(frame["timestamp"].dt.tz_convert("UTC").array.asi8.tobytes())
    h.update(str(frame["timestamp"].dt.tz).encode())
    h.update("|".join(frame["symbol"]).encode())
    for column in ["open", "high", "low", "close", "volume"]:
        values = frame[column].to_numpy()
        assert values.dtype == np.float64
        h.update(values.tobytes())
    h.update(repr(frame.index).encode())
    return h.hexdigest()


# Digests of the generator's output before it was rewritten to save memory (issue 25): the
# same draws in the same order and the same arithmetic give the same bits.
_PINNED: list[tuple[dict[str, Any], str]] = [
    ({"periods": 300}, "635ce36d97470781ab4d8280c487d91f01aa5d5be188b1d6611c36aabc455a0f"),
    (
        {"symbols": ["SYN"], "freq": "1min", "periods": 1000, "seed": 1},
        "9c07c1ccb2dcb69ed86c669a84092da189e03eef972bbaabea2a86bfcee9b594",
    ),
    (
        {
            "symbols": ["A", "B", "C"],
            "freq": "1min",
            "periods": 2345,
            "seed": 3,
            "correlation": 0.2,
        },
        "a17ab7e7ad8e1296ba929d2239a29c00db37579dac164058d717419feb115dd5",
    ),
    (
        {
            "symbols": ["X", "Y"],
            "freq": "1D",
            "start": "2018-03-05",
            "end": "2019-06-28",
            "seed": 11,
            "correlation": 1.0,
            "annual_vol": 0.4,
            "annual_drift": -0.02,
            "start_price": 37.5,
        },
        "c6b4eb3c640fa0f47e63ae31f13a56a9535dab3aff33015b49a609f1cb018d63",
    ),
    (
        {"symbols": ["Q"], "freq": "1D", "periods": 1, "seed": 0, "correlation": 0.0},
        "bdd5fec7c6b3ae22c0a91bdca9474a4a04d79fa6460679258afe67e87b503d8a",
    ),
    (
        {
            "symbols": ["P", "R", "S", "T"],
            "freq": "1min",
            "start": "2021-12-30",
            "periods": 391,
            "seed": 99,
        },
        "9aea748576756b978220b122e77deba6ee4967aae2a70011a96eba7c76f81af3",
    ),
    (  # several chunks of draws
        {"symbols": ["A", "B"], "freq": "1min", "periods": 70_001, "seed": 8, "correlation": 0.9},
        "1b722cea53fdceb43da62eb12ff8067e03333f7d08d9548c67e4a88b5eb54c1f",
    ),
]


@pytest.mark.parametrize(("kwargs", "digest"), _PINNED)
def test_generator_output_is_bit_identical_to_the_pinned_digests(
    kwargs: dict[str, Any], digest: str
) -> None:
    assert _digest(generate_bars(**kwargs)) == digest


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
