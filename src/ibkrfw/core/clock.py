"""Clocks: the engine's only source of time.

Core code never calls :func:`time.time` or :func:`datetime.datetime.now`; it asks the clock it
was given. :class:`SimClock` is moved by the engine from event to event in a backtest (and by
tests, like trio's ``MockClock``); :class:`LiveClock` reads the system clock.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, final

from typing_extensions import override

from ibkrfw.errors import EngineError
from ibkrfw.model._time import to_timestamp

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Clock", "LiveClock", "SimClock"]


class Clock(ABC):
    """Tell the current time in UTC epoch nanoseconds."""

    @abstractmethod
    def now_ns(self) -> int:
        """Return the current time, UTC epoch nanoseconds."""

    @abstractmethod
    def advance_to(self, ts_ns: int) -> None:
        """Move to ``ts_ns``, the time of the event about to be dispatched.

        A simulated clock jumps there; a live clock ignores it, as real time moves by itself.
        """

    def now(self) -> pd.Timestamp:
        """Return the current time as a UTC :class:`pandas.Timestamp`."""
        return to_timestamp(self.now_ns())


@final
class SimClock(Clock):
    """A clock that only moves when told to, never backwards.

    Args:
        start_ns: The initial time, UTC epoch nanoseconds.

    Example:
        >>> clock = SimClock(0)
        >>> clock.advance_to(5)
        >>> clock.now_ns()
        5
    """

    __slots__ = ("_now",)

    def __init__(self, start_ns: int = 0) -> None:
        self._now = start_ns

    @override
    def now_ns(self) -> int:
        return self._now

    @override
    def advance_to(self, ts_ns: int) -> None:
        """Jump to ``ts_ns``.

        Raises:
            EngineError: if ``ts_ns`` is earlier than the current time.
        """
        if ts_ns < self._now:
            raise EngineError(
                f"time cannot go backwards: the clock is at {self._now} ns and was asked to move "
                f"to {ts_ns} ns; events must be dispatched in time order"
            )
        self._now = ts_ns


@final
class LiveClock(Clock):
    """The system's real-time clock (UTC)."""

    __slots__ = ()

    @override
    def now_ns(self) -> int:
        return time.time_ns()

    @override
    def advance_to(self, ts_ns: int) -> None:
        """Do nothing: real time moves by itself."""
