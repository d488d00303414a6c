"""Per-instrument bar history, exposed to strategies as numpy views."""

from __future__ import annotations

from typing import NamedTuple, final

import numpy as np
import numpy.typing as npt

from ibkrfw.core.clock import Clock
from ibkrfw.model.data import Bar

__all__ = ["BarArrays", "BarHistory", "History"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class BarArrays(NamedTuple):
    """Bars of one instrument as columns: oldest first, one row per bar."""

    ts_ns: IntArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray


@final
class History:
    """The last bars of one instrument, as read-only numpy views, oldest first.

    Columns are sliced only when read, so asking for one column costs one slice.

    Example:
        >>> import numpy as np
        >>> from ibkrfw import Stock
        >>> h = BarHistory.empty()
        >>> for i in range(5):
        ...     h.push(Bar(Stock("X"), i, 1.0, 2.0, 0.5, float(i), 0.0))
        >>> h.last(3).close
        array([2., 3., 4.])
    """

    __slots__ = ("_arrays", "_start", "_stop")

    def __init__(self, arrays: BarArrays, start: int, stop: int) -> None:
        self._arrays = arrays
        self._start = start
        self._stop = stop

    def __len__(self) -> int:
        return self._stop - self._start

    @property
    def ts_ns(self) -> IntArray:
        """Bar open times, UTC epoch nanoseconds."""
        return self._arrays.ts_ns[self._start : self._stop]

    @property
    def open(self) -> FloatArray:
        """Open prices."""
        return self._arrays.open[self._start : self._stop]

    @property
    def high(self) -> FloatArray:
        """High prices."""
        return self._arrays.high[self._start : self._stop]

    @property
    def low(self) -> FloatArray:
        """Low prices."""
        return self._arrays.low[self._start : self._stop]

    @property
    def close(self) -> FloatArray:
        """Close prices."""
        return self._arrays.close[self._start : self._stop]

    @property
    def volume(self) -> FloatArray:
        """Volumes."""
        return self._arrays.volume[self._start : self._stop]


def _readonly(arrays: BarArrays) -> BarArrays:
    ts = arrays.ts_ns.view()
    floats = [c.view() for c in arrays[1:]]
    for view in (ts, *floats):
        view.flags.writeable = False
    return BarArrays(ts, *floats)


@final
class BarHistory:
    """The bars of one instrument seen so far in a run.

    Either *preloaded* with a historical feed's own columns, revealing every bar whose time is
    at or before the clock's (nothing is done per bar), or *growing*: each :meth:`push` writes
    the bar into amortised-doubling arrays, for live feeds.
    """

    __slots__ = ("_arrays", "_cap", "_clock", "_n", "_view")

    def __init__(self, arrays: BarArrays, clock: Clock | None) -> None:
        self._arrays = arrays
        self._view = _readonly(arrays)
        self._n = 0
        self._cap = len(arrays.ts_ns)
        self._clock = clock

    @classmethod
    def preloaded(cls, arrays: BarArrays, clock: Clock) -> BarHistory:
        """Wrap a historical feed's columns; bars become visible as ``clock`` reaches them."""
        return cls(arrays, clock)

    @classmethod
    def empty(cls, capacity: int = 1024) -> BarHistory:
        """Start an empty, growing history."""
        floats: list[FloatArray] = [np.empty(capacity, dtype=np.float64) for _ in range(5)]
        return cls(BarArrays(np.empty(capacity, dtype=np.int64), *floats), None)

    @property
    def is_preloaded(self) -> bool:
        """Whether the history reveals preloaded columns (and needs no :meth:`push`)."""
        return self._clock is not None

    def __len__(self) -> int:
        if self._clock is not None:
            return int(np.searchsorted(self._arrays.ts_ns, self._clock.now_ns(), side="right"))
        return self._n

    def push(self, bar: Bar) -> None:
        """Record ``bar`` as the latest bar of a growing history."""
        n = self._n
        if n == self._cap:
            self._grow()
        a = self._arrays
        a.ts_ns[n] = bar.ts_ns
        a.open[n] = bar.open
        a.high[n] = bar.high
        a.low[n] = bar.low
        a.close[n] = bar.close
        a.volume[n] = bar.volume
        self._n = n + 1

    def _grow(self) -> None:
        cap = max(2 * self._cap, 16)
        n = self._n
        ts = np.empty(cap, dtype=np.int64)
        ts[:n] = self._arrays.ts_ns[:n]
        floats = []
        for column in self._arrays[1:]:
            bigger = np.empty(cap, dtype=np.float64)
            bigger[:n] = column[:n]
            floats.append(bigger)
        self._arrays = BarArrays(ts, *floats)
        self._view = _readonly(self._arrays)
        self._cap = cap

    def last(self, n: int | None = None) -> History:
        """Return a view of the last ``n`` bars (all of them if ``n`` is None or larger)."""
        stop = len(self)
        start = 0 if n is None or n >= stop else stop - n
        return History(self._view, start, stop)
