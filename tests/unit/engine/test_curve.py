from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from ibkrfw.engine.curve import _step, equity_curve

I64 = np.int64


def test_step_carries_the_last_change_forward() -> None:
    at = np.array([10, 20, 30, 40], dtype=I64)
    changes = np.array([5, 20, 20, 35, 99], dtype=I64)  # before, two at one time, between, after
    values = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert _step(at, changes, values, -1.0).tolist() == [1.0, 3.0, 3.0, 4.0]
    assert _step(at, np.empty(0, dtype=I64), np.empty(0), 7.0).tolist() == [7.0] * 4
    assert _step(at, np.array([25], dtype=I64), np.array([9.0]), 0.0).tolist() == [0, 0, 9, 9]


@given(
    at=st.lists(st.integers(0, 50), max_size=30).map(sorted),
    changes=st.lists(
        st.tuples(st.integers(-5, 55), st.floats(allow_nan=True, allow_infinity=True)),
        max_size=30,
    ).map(sorted),
    before=st.sampled_from([0.0, -0.0, 7.5, float("nan")]),
)
def test_step_is_the_last_change_at_or_before_each_time(
    at: list[int], changes: list[tuple[int, float]], before: float
) -> None:
    change_ts = np.array([t for t, _ in changes], dtype=I64)
    values = np.array([v for _, v in changes], dtype=np.float64)
    got = _step(np.array(at, dtype=I64), change_ts, values, before)
    want = [before] * len(at)
    for i, t in enumerate(at):
        for c, v in changes:  # in order: the last change at or before t wins
            if c <= t:
                want[i] = v
    assert got.dtype == np.float64
    assert got.tobytes() == np.array(want, dtype=np.float64).tobytes()


def test_two_lanes_with_different_times_are_marked_at_their_latest_close() -> None:
    a = (np.array([1, 3], dtype=I64), np.array([10.0, 12.0]))
    b = (np.array([2, 3, 4], dtype=I64), np.array([100.0, 110.0, 120.0]))
    fills = (
        np.array([2, 3], dtype=I64),  # buy 1 of lane 0 at t=2, 2 of lane 1 at t=3
        np.array([0, 1], dtype=I64),
        np.array([990.0, 770.0]),
        np.array([1.0, 2.0]),
    )
    ts, cash, equity = equity_curve([a, b], *fills, starting_cash=1000.0)
    assert ts.tolist() == [1, 2, 3, 4]
    assert cash.tolist() == [1000.0, 990.0, 770.0, 770.0]
    # t=2: lane 0 marked at its t=1 close (10); t=4: lane 0 still at its t=3 close (12)
    assert equity.tolist() == [1000.0, 1000.0, 770 + 12 + 220, 770 + 12 + 240]


def test_out_of_order_fills_are_sorted_by_time() -> None:
    closes = [(np.array([1, 2, 3], dtype=I64), np.array([1.0, 1.0, 1.0]))]
    late_first = (
        np.array([3, 2], dtype=I64),
        np.array([0, 0], dtype=I64),
        np.array([50.0, 80.0]),
        np.array([50.0, 20.0]),
    )
    _, cash, _ = equity_curve(closes, *late_first, starting_cash=100.0)
    assert cash.tolist() == [100.0, 80.0, 50.0]


def test_no_bars_no_curve() -> None:
    ts, cash, equity = equity_curve(
        [], np.empty(0, dtype=I64), np.empty(0, dtype=I64), np.empty(0), np.empty(0), 5.0
    )
    assert len(ts) == len(cash) == len(equity) == 0
