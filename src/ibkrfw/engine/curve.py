"""The equity curve, computed once at the end of a run instead of on every bar."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from ibkrfw.errors import ConfigError
from ibkrfw.portfolio.fx import FxRates

__all__ = ["equity_curve"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def _step(at: IntArray, change_ts: IntArray, values: FloatArray, before: float) -> FloatArray:
    """Value of a step function (``values`` from ``change_ts`` on) at each time in ``at``.

    Both arrays are sorted. The changes, usually few, are placed on ``at`` by binary search
    and each value is repeated until the next change: one array of ``len(at)`` is allocated.
    """
    if not len(change_ts):
        return np.full(len(at), before)
    pos = np.searchsorted(at, change_ts, side="left")  # first time each change applies
    last = np.ones(len(pos), dtype=bool)
    last[:-1] = pos[1:] != pos[:-1]  # of several changes landing on one time, the last wins
    keep = last & (pos < len(at))
    starts = pos[keep]  # strictly increasing
    runs = np.diff(starts, prepend=0, append=len(at))  # before the first change, then each
    return np.repeat(np.concatenate(([before], values[keep])), runs)


def equity_curve(
    closes: Sequence[tuple[IntArray, FloatArray]],
    fill_ts: IntArray,
    fill_lane: IntArray,
    fill_cash: FloatArray,
    fill_exposure: FloatArray,
    starting_cash: float,
    *,
    fill_currency: IntArray | None = None,
    lane_currency: Sequence[int] = (),
    currencies: Sequence[str] = (),
    fx: FxRates | None = None,
) -> tuple[IntArray, FloatArray, FloatArray]:
    """Return the timestamps, cash and equity of a run, one row per distinct bar time.

    Cash and positions change only at fills, so they are recorded there as step functions;
    each instrument is marked at the close of its latest bar at or before each time. With
    several currencies, each balance and each position is converted at the rate in force at
    each time.

    Args:
        closes: Per instrument ("lane"), the bar times seen and their closes.
        fill_ts: Time of each fill (in the order booked; sorted stably here if needed).
        fill_lane: The lane index of each fill's instrument; -1 for a change of cash alone.
        fill_cash: The balance of the fill's currency after each fill.
        fill_exposure: Quantity times multiplier held in that lane after each fill.
        starting_cash: Cash before the first fill, in the base currency.
        fill_currency: The index in ``currencies`` of each fill's currency; all the base
            currency (index 0) if None.
        lane_currency: The index in ``currencies`` of each lane's currency (all 0 if empty).
        currencies: The currencies of the run, the base currency first.
        fx: The exchange rates, needed when ``currencies`` has more than the base.

    Example:
        >>> ts = np.array([1, 2, 3], dtype=np.int64)
        >>> closes = [(ts, np.array([10.0, 11.0, 12.0]))]
        >>> fills = (np.array([2]), np.array([0]), np.array([-900.0]), np.array([100.0]))
        >>> equity_curve(closes, *fills, starting_cash=100.0)[2].tolist()
        [100.0, 200.0, 300.0]
    """
    if not closes:
        empty = np.empty(0)
        return np.empty(0, dtype=np.int64), empty, empty
    if fill_currency is None:
        fill_currency = np.zeros(len(fill_ts), dtype=np.int64)
    if len(fill_ts) > 1 and bool(np.any(fill_ts[1:] < fill_ts[:-1])):
        order = np.argsort(fill_ts, kind="stable")  # live executions can arrive out of order
        fill_ts, fill_lane, fill_currency = fill_ts[order], fill_lane[order], fill_currency[order]
        fill_cash, fill_exposure = fill_cash[order], fill_exposure[order]
    stamps = [ts for ts, _ in closes]
    grid = stamps[0] if len(stamps) == 1 else np.unique(np.concatenate(stamps))
    rates = [np.ones(len(grid))]
    for currency in currencies[1:]:
        if fx is None:
            raise ConfigError("an equity curve in several currencies needs exchange rates")
        rates.append(fx.rates_at(currency, grid))
    if len(rates) == 1:
        cash = _step(grid, fill_ts, fill_cash, starting_cash)
    else:
        cash = np.zeros(len(grid))
        for k, rate in enumerate(rates):
            mine = fill_currency == k
            balance = _step(grid, fill_ts[mine], fill_cash[mine], starting_cash if k == 0 else 0.0)
            cash += balance if k == 0 else np.where(balance != 0.0, balance * rate, 0.0)
    equity = cash.copy()
    for lane, (ts, close) in enumerate(closes):
        mine = fill_lane == lane
        if not mine.any():
            continue
        held = _step(grid, fill_ts[mine], fill_exposure[mine], 0.0)
        mark = close if len(ts) == len(grid) else _step(grid, ts, close, np.nan)
        k = lane_currency[lane] if lane_currency else 0
        if k:
            mark = mark * rates[k]
        flat = held == 0.0
        held *= mark  # in place: the value held, a NaN mark counting nothing while flat
        held[flat] = 0.0
        equity += held
    return grid, cash, equity
