"""Named one-shot and repeating timers, ordered by due time."""

from __future__ import annotations

import heapq
from typing import final

from ibkrfw.errors import ConfigError

__all__ = ["Timers"]

NEVER = 2**63 - 1
"""A due time later than any real one."""


@final
class Timers:
    """A heap of named timers; the engine fires them through the clock it runs on."""

    __slots__ = ("_heap", "_live", "_seq", "next_due_ns")

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, str, int]] = []
        self._live: dict[str, int] = {}  # name -> sequence of its current schedule
        self._seq = 0
        self.next_due_ns = NEVER
        """No timer is due before this time (UTC ns); a plain attribute for the hot path.
        It may be earlier than the real next timer after a cancellation, never later."""

    def _refresh(self) -> None:
        heap = self._heap
        while heap and self._live.get(heap[0][2]) != heap[0][1]:
            heapq.heappop(heap)  # drop cancelled or rescheduled entries lazily
        self.next_due_ns = heap[0][0] if heap else NEVER

    def add(self, name: str, due_ns: int, every_ns: int = 0) -> None:
        """Schedule ``name`` at ``due_ns``, then every ``every_ns`` if that is positive.

        Scheduling a name again replaces its earlier schedule.

        Raises:
            ConfigError: if ``every_ns`` is negative.
        """
        if every_ns < 0:
            raise ConfigError(f"every_ns must be positive or 0 (one-shot), got {every_ns}")
        self._seq += 1
        self._live[name] = self._seq
        heapq.heappush(self._heap, (due_ns, self._seq, name, every_ns))
        self.next_due_ns = min(self.next_due_ns, due_ns)

    def cancel(self, name: str) -> bool:
        """Cancel timer ``name``; return whether it was scheduled."""
        return self._live.pop(name, None) is not None

    def pop_due(self, now_ns: int) -> tuple[str, int] | None:
        """Remove and return ``(name, due_ns)`` of the earliest timer due at ``now_ns``.

        A repeating timer is rescheduled at its next due time.
        """
        self._refresh()
        if self.next_due_ns > now_ns:
            return None
        due, _, name, every = heapq.heappop(self._heap)
        if every:
            self._seq += 1
            self._live[name] = self._seq
            heapq.heappush(self._heap, (due + every, self._seq, name, every))
        else:
            del self._live[name]
        self._refresh()
        return name, due
