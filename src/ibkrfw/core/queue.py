"""The engine's thread-safe event queue, and the inbox of a live run."""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections import deque
from typing import Any, final

import attrs

from ibkrfw.errors import ConfigError
from ibkrfw.model.events import Event, QuoteReceived, TickReceived
from ibkrfw.model.instruments import Instrument

__all__ = ["EventQueue", "Inbox", "LoadStats", "set_arrival_ns"]


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


_ARRIVAL = threading.local()  # the arrival of the message a producer thread is translating


def set_arrival_ns(ns: int) -> None:
    """Say when the message this thread is now translating arrived (``time.monotonic_ns()``).

    A live adapter calls it on its network thread before it translates a message into events,
    and with 0 once done: every event the thread puts on an :class:`Inbox` meanwhile carries
    that time, so the engine measures the lag from the socket read, not from the translation.
    Without it an event's arrival is the moment it was put.
    """
    _ARRIVAL.ns = ns


def _pct(ordered: list[int], share: float) -> float:
    """The ``share`` percentile of ``ordered`` (nearest rank), in seconds."""
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)] / 1e9


@final
@attrs.frozen
class LoadStats:
    """How far behind a live run is, from :meth:`Inbox.stats`.

    The lag of an event runs from its arrival (the socket read, for IB's messages) to the
    moment the engine finished with it (the strategy's handler returned). The percentiles
    and maximum cover the events handled in the last ``window_s`` seconds; ``waiting_s``
    is the age of the oldest event still waiting, which grows at once when the strategy
    stalls, before any lagging event is handled.
    """

    depth: int
    """Events waiting in the inbox now."""
    high_water: int
    """The most events that ever waited at once."""
    bound: int
    """The depth past which the inbox warns (nothing is dropped)."""
    handled: int
    """Events taken off the inbox and handled since the start."""
    conflated: int
    """Quotes and trades removed from the inbox by a newer one of the same instrument."""
    lag_p50_s: float
    """The median lag over the window (0 when nothing was handled in it)."""
    lag_p99_s: float
    """The 99th percentile of the lag over the window."""
    lag_max_s: float
    """The largest lag over the window."""
    waiting_s: float
    """How long the oldest event waiting has waited (0 when none waits)."""
    window_s: float
    """The span the lag figures cover."""

    @property
    def behind_s(self) -> float:
        """The worse of ``lag_p99_s`` and ``waiting_s``: how far behind the run is."""
        return max(self.lag_p99_s, self.waiting_s)

    def to_dict(self) -> dict[str, float | int]:
        """As JSON-ready values (seconds rounded to the millisecond)."""
        return {
            "depth": self.depth,
            "high_water": self.high_water,
            "bound": self.bound,
            "handled": self.handled,
            "conflated": self.conflated,
            "lag_p50_s": round(self.lag_p50_s, 3),
            "lag_p99_s": round(self.lag_p99_s, 3),
            "lag_max_s": round(self.lag_max_s, 3),
            "waiting_s": round(self.waiting_s, 3),
            "window_s": self.window_s,
        }


_CONFLATED = (QuoteReceived, TickReceived)


@final
class Inbox:
    """The queue between a live run's network threads and the engine, bounded by policy.

    What waits, and what happens past the bound:

    * quotes (:class:`~ibkrfw.QuoteReceived`) and trades (:class:`~ibkrfw.TickReceived`) are
      *conflated* per instrument once ``conflate_from`` events wait: a newer quote then
      removes the one of its instrument still waiting and joins the end of the line, where
      it arrived, and :attr:`LoadStats.conflated` counts the ones removed. However fast IB
      sends them, the quotes and trades waiting stay under ``conflate_from`` plus one quote
      and one trade per instrument; a strategy that keeps up sees every one;
    * nothing is ever handed out ahead of an event that arrived before it: what :meth:`get`
      returns is the arrivals in their order, less the conflated quotes. A quote that came
      after a fill or a bar is never seen before that fill or bar;
    * everything else (bars, order and execution events, connection changes, timers) is
      never dropped nor merged. These are few (IB sends a real-time bar every five seconds
      per instrument); if more than ``bound`` ever wait at once, the inbox logs a WARNING
      (once, until the depth is back under half the bound) and keeps them all.

    Producers call :meth:`put` from any thread; the engine's thread calls :meth:`get`, then
    :meth:`handled` once it has finished with the event, which records its lag.

    Args:
        bound: The depth past which a warning is logged.
        conflate_from: The depth from which quotes and trades are conflated.
        window_s: The span of the lag percentiles (see :class:`LoadStats`).
        logger: Where the warning goes (``ibkrfw.engine`` by default).

    Raises:
        ConfigError: if ``bound`` or ``conflate_from`` is not a positive integer, or
            ``window_s`` not a positive number of seconds.

    Example:
        >>> from ibkrfw import Quote, Stock
        >>> from ibkrfw.model.events import QuoteReceived
        >>> inbox = Inbox(conflate_from=1)
        >>> for bid in (10.0, 10.1, 10.2):
        ...     inbox.put(QuoteReceived(ts_ns=0, quote=Quote(Stock("X"), 0, bid, bid + 0.1, 1, 1)))
        >>> len(inbox), inbox.get(0).quote.bid, inbox.stats().conflated
        (1, 10.2, 2)
    """

    def __init__(
        self,
        bound: int = 10_000,
        *,
        conflate_from: int = 1_000,
        window_s: float = 10.0,
        logger: logging.Logger | None = None,
    ) -> None:
        for name, value, default, what in (
            ("bound", bound, 10_000, "past which to warn"),
            ("conflate_from", conflate_from, 1_000, "from which quotes are conflated"),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(
                    f"Inbox({name}={value!r}): give the number of waiting events {what}, a "
                    f"whole number of at least 1 ({default} by default)"
                )
        if isinstance(window_s, bool) or not (
            isinstance(window_s, int | float) and 0 < window_s < math.inf
        ):
            raise ConfigError(
                f"Inbox(window_s={window_s!r}): give the seconds the lag figures cover, a "
                "positive number (10 by default)"
            )
        self.bound = bound
        self.conflate_from = conflate_from
        self.window_s = float(window_s)
        self._log = logger or logging.getLogger("ibkrfw.engine")
        # [arrival_ns, event, conflation key], in arrival order; a conflated quote's entry
        # stays in line as a tombstone (event None) until it reaches the front
        self._items: deque[list[Any]] = deque()
        self._gone = 0  # tombstones in _items
        # the entry of each instrument's quote (and trade) still waiting
        self._waiting: dict[tuple[type, Instrument], list[Any]] = {}
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._over = False
        self._high = 0
        self._conflated = 0
        self._handled = 0
        self._arrival_ns = 0  # of the event get() returned last
        self._lags: deque[tuple[int, int]] = deque(maxlen=4096)  # (handled at, lag), ns

    def __len__(self) -> int:
        return len(self._items) - self._gone

    def __bool__(self) -> bool:
        return len(self._items) > self._gone

    def put(self, event: Event) -> None:
        """Add ``event`` (conflating a quote or trade with one of its instrument waiting)."""
        arrival = getattr(_ARRIVAL, "ns", 0) or time.monotonic_ns()
        kind = type(event)
        key: tuple[type, Instrument] | None = None
        if kind in _CONFLATED:
            data = event.quote if kind is QuoteReceived else event.tick  # type: ignore[attr-defined]
            key = (kind, data.instrument)
        with self._lock:
            items = self._items
            entry = [arrival, event, key]
            if key is not None:
                old = self._waiting.get(key)
                if old is not None and len(items) - self._gone >= self.conflate_from:
                    # the one waiting leaves the line; the new one joins its end, so nothing
                    # that arrived before it is handed out after it
                    old[1] = None
                    self._gone += 1
                    self._conflated += 1
                    items.append(entry)
                    self._waiting[key] = entry
                    if self._gone > len(items) - self._gone + 64:
                        self._compact()
                    return
                self._waiting[key] = entry
            items.append(entry)
            depth = len(items) - self._gone
            if depth > self._high:
                self._high = depth
            if depth > self.bound and not self._over:
                self._over = True
                self._log.warning(
                    "the engine's inbox holds %d events, past its bound of %d: the strategy "
                    "or the engine is not keeping up; nothing is dropped (quotes and trades "
                    "are conflated per instrument, bars and order events all wait)",
                    depth,
                    self.bound,
                )
            self._ready.notify()

    def get(self, timeout_s: float | None = None) -> Event | None:
        """Remove and return the oldest event, waiting up to ``timeout_s`` for one.

        Returns:
            The event, or ``None`` if none arrived in time.
        """
        with self._lock:
            items = self._items
            if len(items) <= self._gone and not self._ready.wait_for(self.__len__, timeout_s):
                return None
            entry = items.popleft()
            while entry[1] is None:  # a conflated quote's place: the newest waits further on
                self._gone -= 1
                entry = items.popleft()
            arrival, event, key = entry
            if key is not None and self._waiting.get(key) is entry:
                del self._waiting[key]
            depth = len(items) - self._gone
            if self._over and depth <= self.bound // 2:
                self._over = False
                self._log.info(
                    "the engine's inbox is back to %d events (bound %d)", depth, self.bound
                )
        self._arrival_ns = arrival
        return event  # type: ignore[no-any-return]

    def _compact(self) -> None:
        """Drop the tombstones from the line (under the lock): amortised O(1) per put.

        In place: a :meth:`get` waiting on the condition holds the same deque.
        """
        items = self._items
        live = [entry for entry in items if entry[1] is not None]
        items.clear()
        items.extend(live)
        self._gone = 0

    @property
    def arrival_ns(self) -> int:
        """When the event :meth:`get` returned last arrived (``time.monotonic_ns()``)."""
        return self._arrival_ns

    def handled(self, arrival_ns: int) -> None:
        """Record that an event that arrived at ``arrival_ns`` has been handled now."""
        now = time.monotonic_ns()
        self._handled += 1
        self._lags.append((now, now - arrival_ns))

    def stats(self) -> LoadStats:
        """The depth, the conflation count and the lag figures, as of now."""
        now = time.monotonic_ns()
        since = now - int(self.window_s * 1e9)
        recent = sorted(lag for at, lag in list(self._lags) if at >= since)
        with self._lock:
            items = self._items
            depth = len(items) - self._gone
            oldest = min(
                (e[0] for e in itertools.islice(items, 0, 64) if e[1] is not None), default=now
            )
        return LoadStats(
            depth=depth,
            high_water=self._high,
            bound=self.bound,
            handled=self._handled,
            conflated=self._conflated,
            lag_p50_s=_pct(recent, 0.5) if recent else 0.0,
            lag_p99_s=_pct(recent, 0.99) if recent else 0.0,
            lag_max_s=recent[-1] / 1e9 if recent else 0.0,
            waiting_s=max(0, now - oldest) / 1e9,
            window_s=self.window_s,
        )
