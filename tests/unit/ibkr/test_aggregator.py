"""BarAggregator: IB's 5-second bars into larger ones, never a bar with a wrong open."""

from __future__ import annotations

import pytest

from ibkrfw import Bar, ConfigError, Stock
from ibkrfw.ibkr import BarAggregator

X = Stock("X")
S = 1_000_000_000


def five(ts_s: int, o: float, h: float, lo: float, c: float, v: float = 1.0) -> Bar:
    return Bar(X, ts_s * S, o, h, lo, c, v)


def test_a_minute_is_out_with_its_twelfth_bar() -> None:
    agg = BarAggregator(X, 60 * S)
    out = []
    for k in range(12):
        out += agg.add(five(k * 5, 10 + k, 11 + k, 9 + k, 10.5 + k, 2))
        if k < 11:
            assert out == []
    assert out == [Bar(X, 0, 10.0, 22.0, 9.0, 21.5, 24.0)]


def test_a_gap_hands_the_period_out_when_the_next_one_starts() -> None:
    agg = BarAggregator(X, 60 * S)
    for k in range(10):  # the last two bars of the minute never come
        assert agg.add(five(k * 5, 10, 11, 9, 10)) == []
    out = agg.add(five(60, 20, 21, 19, 20))
    assert [b.ts_ns for b in out] == [0]
    assert out[0].close == 10


def test_a_period_joined_late_is_dropped() -> None:
    agg = BarAggregator(X, 60 * S)
    out = []
    for k in range(3, 24):  # starts 15 s into the first minute
        out += agg.add(five(k * 5, k, k + 1, k - 1, k))
    assert [b.ts_ns for b in out] == [60 * S]
    assert out[0].open == 12  # the second minute, whole


def test_flush_returns_the_bar_in_progress() -> None:
    agg = BarAggregator(X, 60 * S)
    agg.add(five(0, 1, 2, 0.5, 1.5))
    assert agg.flush() == Bar(X, 0, 1.0, 2.0, 0.5, 1.5, 1.0)
    assert agg.flush() is None


@pytest.mark.parametrize("size_s", [3, 7, 62])
def test_sizes_that_are_not_multiples_of_five_seconds_are_refused(size_s: int) -> None:
    with pytest.raises(ConfigError, match="cannot be built"):
        BarAggregator(X, size_s * S)
