"""The engine's thread-safe event queue."""

from __future__ import annotations

import threading
from collections import deque
from typing import final

from ibkrfw.model.events import Event

__all__ = ["EventQueue"]


@final
class EventQueue(deque[Event]):
    """A FIFO of events that other threads may feed while the engine drains it.

    Producers (a broker's network thread, a live feed) call :meth:`put`; the engine's thread
    calls :meth:`get` or pops directly. It is a :class:`collections.deque`, whose ``append`` and
    ``popleft`` are atomic, with a condition variable so the engine can sleep until an event
    arrives; ``bool(queue)`` is a cheap C-level emptiness check on the hot path.
    """

    def __init__(self) -> None:
        super().__init__()
        self._ready = threading.Condition(threading.Lock())
        self._waiting = False

    def put(self, event: Event) -> None:
        """Append ``event`` and wake a waiting consumer. Safe from any thread.

        Takes the lock only when a consumer is waiting; the consumer raises its flag under the
        lock *before* it checks for emptiness, so no wake-up is ever missed.
        """
        self.append(event)
        if self._waiting:
            with self._ready:
                self._ready.notify()

    def get(self, timeout_s: float | None = None) -> Event | None:
        """Remove and return the oldest event, waiting up to ``timeout_s`` for one.

        Returns:
            The event, or ``None`` if none arrived in time.
        """
        with self._ready:
            self._waiting = True
            try:
                if not self and not self._ready.wait_for(self.__len__, timeout_s):
                    return None
            finally:
                self._waiting = False
            return self.popleft()
