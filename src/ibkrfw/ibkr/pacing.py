"""IB's request limits, enforced before a request is sent: pure logic on a clock you give.

Neither class sleeps or reads the time itself: each is asked when a request may go, given the
current time, and told when it went. That keeps them exact under test and usable from any
thread (both are locked).
"""

from __future__ import annotations

import threading
from collections import deque
from typing import NamedTuple, final

from ibkrfw.errors import ConfigError

__all__ = ["HistoryPacer", "HistoryRequest", "MessageRate"]

_EPSILON = 1e-6  # seconds


class HistoryRequest(NamedTuple):
    """What IB's historical-data pacing rules compare.

    Args:
        contract: The contract's identity (conId, or symbol and exchange).
        exchange: The exchange asked for.
        what_to_show: ``TRADES``, ``MIDPOINT``, ``BID_ASK``...
        bar_size: IB's ``barSizeSetting``.
        end: IB's ``endDateTime``.
        duration: IB's ``durationStr``.
    """

    contract: str
    exchange: str
    what_to_show: str
    bar_size: str
    end: str
    duration: str


@final
class HistoryPacer:
    """IB's historical-data pacing rules (limits from ``ibkr-facts.md`` 4.1, configurable).

    A request may go when none of these would be broken by it:

    * an identical request within ``identical_s`` seconds (15);
    * ``same_contract_max`` or more requests (6) for one contract, exchange and tick type within
      ``same_contract_s`` seconds (2);
    * more than ``window_max`` requests (60) within ``window_s`` seconds (600);
    * more than ``open_max`` requests (50) open at once.

    ``BID_ASK`` requests count twice towards the counts. Times are seconds on any monotonic
    clock.

    Example:
        >>> pacer = HistoryPacer()
        >>> req = HistoryRequest("265598", "SMART", "TRADES", "1 min", "", "1 D")
        >>> pacer.delay(req, now=0.0)
        0.0
        >>> pacer.sent(req, now=0.0)
        >>> round(pacer.delay(req, now=1.0), 3)  # the identical request: 15 s after the first
        14.0
    """

    def __init__(
        self,
        *,
        identical_s: float = 15.0,
        same_contract_max: int = 6,
        same_contract_s: float = 2.0,
        window_max: int = 60,
        window_s: float = 600.0,
        open_max: int = 50,
    ) -> None:
        if (
            min(identical_s, same_contract_s, window_s) <= 0
            or min(same_contract_max, window_max, open_max) < 1
        ):
            raise ConfigError("pacing limits must be positive")
        self.identical_s = identical_s
        self.same_contract_max = same_contract_max
        self.same_contract_s = same_contract_s
        self.window_max = window_max
        self.window_s = window_s
        self.open_max = open_max
        self._sent: deque[tuple[float, HistoryRequest, int]] = deque()  # time, request, weight
        self._open = 0
        self._lock = threading.Lock()

    @staticmethod
    def weight(request: HistoryRequest) -> int:
        """How much ``request`` counts: 2 for ``BID_ASK``, else 1."""
        return 2 if request.what_to_show.upper() == "BID_ASK" else 1

    def _forget(self, now: float) -> None:
        horizon = max(self.identical_s, self.same_contract_s, self.window_s)
        while self._sent and now - self._sent[0][0] >= horizon:
            self._sent.popleft()

    def delay(self, request: HistoryRequest, now: float) -> float:
        """Seconds to wait from ``now`` before ``request`` may be sent (0 if it may go now).

        While too many requests are open, the answer is ``inf``: wait for one to finish
        (:meth:`finished`).
        """
        with self._lock:
            self._forget(now)
            if self._open >= self.open_max:
                return float("inf")
            weight = self.weight(request)
            wait = 0.0
            for at, other, _ in self._sent:
                if other == request:
                    wait = max(wait, at + self.identical_s - now)
            wait = max(
                wait,
                self._count_wait(
                    now,
                    weight,
                    self.same_contract_max - 1,
                    self.same_contract_s,
                    _same_series(request),
                ),
            )
            wait = max(wait, self._count_wait(now, weight, self.window_max, self.window_s, None))
            # A hair more, so that ``now + wait`` is past every boundary despite float rounding.
            return wait + _EPSILON if wait > 0 else 0.0

    def _count_wait(
        self,
        now: float,
        weight: int,
        allowed: int,
        span: float,
        key: tuple[str, str, str] | None,
    ) -> float:
        """How long until the weighted count within ``span`` leaves room for ``weight`` more."""
        recent = [
            (at, w)
            for at, other, w in self._sent
            if now - at < span and (key is None or _same_series(other) == key)
        ]
        total = sum(w for _, w in recent)
        if total + weight <= allowed:
            return 0.0
        excess = total + weight - allowed
        for at, w in recent:  # oldest first: wait until enough of them leave the window
            excess -= w
            if excess <= 0:
                return at + span - now
        return span

    def sent(self, request: HistoryRequest, now: float) -> None:
        """Record that ``request`` was sent at ``now``; it stays open until :meth:`finished`."""
        with self._lock:
            self._sent.append((now, request, self.weight(request)))
            self._open += 1

    def finished(self) -> None:
        """Record that an open request was answered, failed or timed out."""
        with self._lock:
            self._open = max(0, self._open - 1)


def _same_series(request: HistoryRequest) -> tuple[str, str, str]:
    return request.contract, request.exchange, request.what_to_show.upper()


@final
class MessageRate:
    """At most ``per_second`` outgoing messages in any one-second window (IB's cap is 50).

    Example:
        >>> rate = MessageRate(2)
        >>> [rate.delay(now=0.0) for _ in range(1)], rate.sent(0.0), rate.sent(0.1)
        ([0.0], None, None)
        >>> round(rate.delay(now=0.5), 3)
        0.5
    """

    def __init__(self, per_second: float = 45.0) -> None:
        if not 0 < per_second <= 50:
            raise ConfigError(f"IB allows at most 50 messages a second; got {per_second!r}")
        self.limit = int(per_second)
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def delay(self, now: float) -> float:
        """Seconds to wait from ``now`` before another message may go."""
        with self._lock:
            while self._times and now - self._times[0] >= 1.0:
                self._times.popleft()
            if len(self._times) < self.limit:
                return 0.0
            return self._times[len(self._times) - self.limit] + 1.0 - now + _EPSILON

    def sent(self, now: float) -> None:
        """Record a message sent at ``now``."""
        with self._lock:
            self._times.append(now)
