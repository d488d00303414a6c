"""The indicator protocol the engine keeps updated, and the shared windowed sums."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

from ibkrfw.errors import ConfigError
from ibkrfw.model.data import Bar

__all__ = ["Indicator"]


def check_period(period: int, name: str = "period", least: int = 1) -> int:
    """Return ``period`` if it is an int of at least ``least``; raise ConfigError otherwise."""
    if isinstance(period, bool) or not isinstance(period, int) or period < least:
        raise ConfigError(f"{name} must be an int of at least {least}, got {period!r}")
    return period


class Indicator(ABC):
    """An incremental indicator: O(1) work per new value, NaN until it is ready.

    Every indicator of :mod:`ibkrfw.indicators` is one, with a vectorised twin over whole
    arrays that agrees with it. A strategy declares the indicators it uses
    (:meth:`Strategy.indicators <ibkrfw.Strategy.indicators>`); the engine then keeps a copy
    per instrument updated with each bar before ``on_bar`` runs, and a live run loads
    :attr:`warmup` past bars so that they are ready with the first live bar.

    Subclasses implement :meth:`update` and :meth:`fresh`; those that read more than the close
    (an ATR) override :meth:`update_bar`.
    """

    value: float
    """The latest value (NaN while warming up)."""

    @property
    @abstractmethod
    def warmup(self) -> int:
        """How many values it needs before its first value."""

    @property
    @abstractmethod
    def ready(self) -> bool:
        """Whether it has seen enough values for a value."""

    @abstractmethod
    def update(self, x: float) -> float:
        """Add ``x`` and return the new value (NaN while warming up)."""

    def update_bar(self, bar: Bar) -> float:
        """Add a bar (its close, unless the indicator reads more) and return the new value."""
        return self.update(bar.close)

    @abstractmethod
    def fresh(self) -> Indicator:
        """Return a new indicator with the same parameters and nothing seen."""


# WindowSums recomputes its sums when the sum of squares exceeds the centred sum by this
# factor: the rounding error of the difference is then near 1e-16 * 1e5, well inside the 1e-9
# at which the incremental and vectorised indicators agree.
_CANCELLATION = 1e5


class WindowSums:
    """Sum and sum of squares of the last ``n`` values, exact to rounding over long runs.

    Values are kept as deviations from an anchor (the window's mean at the last resync), and
    both sums are recomputed from the window once every ``n`` updates, so neither
    cancellation nor drift builds up. They are also recomputed when the variance is asked
    for while the window sits far from the anchor compared with its spread (after a jump in
    the values): the variance would then be the small difference of two large numbers.
    """

    __slots__ = ("_anchor", "_buf", "_i", "_left", "n", "sum", "sumsq")

    def __init__(self, n: int) -> None:
        self.n = n
        self._buf = [0.0] * n
        self._i = 0
        self._left = n
        self._anchor = 0.0
        self.sum = 0.0  # of (x - anchor)
        self.sumsq = 0.0

    @property
    def full(self) -> bool:
        return not self._left

    def push(self, x: float) -> None:
        buf, i = self._buf, self._i
        if self._left == self.n:  # the very first value anchors the sums
            self._anchor = x
        d = x - self._anchor
        old = buf[i] - self._anchor if not self._left else 0.0
        buf[i] = x
        self.sum += d - old
        self.sumsq += d * d - old * old
        i += 1
        if i == self.n:
            i = 0
            if not self._left or self._left == 1:
                self._resync()
        self._i = i
        if self._left:
            self._left -= 1

    def _resync(self) -> None:
        buf = self._buf
        self._anchor = math.fsum(buf) / self.n
        devs = [x - self._anchor for x in buf]
        self.sum = math.fsum(devs)
        self.sumsq = math.fsum(d * d for d in devs)

    def mean(self) -> float:
        return self._anchor + self.sum / self.n

    def variance(self, ddof: int = 0) -> float:
        """The window's variance (population for ``ddof`` 0), never below zero."""
        n = self.n
        centred = self.sumsq - self.sum * self.sum / n
        if centred * _CANCELLATION < self.sumsq and not self._left:
            self._resync()  # the difference lost too many digits: take it from the window
            centred = self.sumsq - self.sum * self.sum / n
        return max(centred, 0.0) / (n - ddof)
