"""The connection's state, driven by IB's codes: pure logic, no sockets.

:class:`ConnectionMonitor` turns what the client sees (the socket up or down, the API ready,
IB's connectivity and farm codes) into a state and the actions the adapter must take; the
table is ``ibkr-facts.md`` section 4.3. :class:`Backoff` spaces reconnection attempts.
"""

from __future__ import annotations

import enum
import random
import threading
from typing import final

import attrs

from ibkrfw.errors import ConfigError

__all__ = [
    "Action",
    "Backoff",
    "ConnectionMonitor",
    "ConnectionState",
    "Farm",
    "FarmStatus",
    "Transition",
]


class ConnectionState(enum.StrEnum):
    """Where the connection to IB stands."""

    DISCONNECTED = "disconnected"
    """No socket to TWS or the Gateway."""
    CONNECTING = "connecting"
    """The socket is up; waiting for ``nextValidId`` and ``managedAccounts``."""
    CONNECTED = "connected"
    """Ready, so orders and requests may be sent."""
    IB_UNREACHABLE = "ib_unreachable"
    """TWS is up but has lost IB's servers (1100, 2110), so orders are held."""


class Action(enum.StrEnum):
    """What the adapter must do after a transition."""

    RECONNECT = "reconnect"
    """Open the socket again, after the backoff delay."""
    HOLD_ORDERS = "hold_orders"
    """Keep new orders back until the connection is restored."""
    RELEASE_ORDERS = "release_orders"
    """Orders may be sent again."""
    RESUBSCRIBE = "resubscribe"
    """Subscribe to all market data again, which was lost (1101)."""
    RECONCILE = "reconcile"
    """Fetch executions, open orders and positions, and compare them with the journal."""
    PAUSE_HISTORY = "pause_history"
    """Hold history requests while the historical-data farm is down (2105)."""
    RESUME_HISTORY = "resume_history"
    """Send history requests again, the historical-data farm being back (2106)."""


class Farm(enum.StrEnum):
    """IB's data farms, whose state arrives as notices (codes 2103-2108, 2157, 2158)."""

    MARKET_DATA = "market_data"
    HISTORICAL = "historical"
    SECURITY_DEFINITION = "security_definition"


@final
@attrs.frozen
class Transition:
    """One change the monitor made: the states before and after, what to do, and why."""

    before: ConnectionState
    after: ConnectionState
    actions: tuple[Action, ...]
    reason: str


@final
@attrs.frozen
class FarmStatus:
    """The last notice IB sent about one of its data farms.

    Args:
        name: The farm, as IB names it in the notice (``"usfarm"``, ``"ushmds"``...).
        kind: Which kind of farm it is.
        ok: Whether the notice said it works (2104, 2106, 2158; and 2107 or 2108, a farm
            inactive but available on demand), or not (2103, 2105, 2157).
        code: IB's code of that notice.
    """

    name: str
    kind: Farm
    ok: bool
    code: int


_FARM_CODES = {
    2103: (Farm.MARKET_DATA, False),
    2104: (Farm.MARKET_DATA, True),
    2105: (Farm.HISTORICAL, False),
    2106: (Farm.HISTORICAL, True),
    2157: (Farm.SECURITY_DEFINITION, False),
    2158: (Farm.SECURITY_DEFINITION, True),
}
# Inactive but available on demand: a farm idle, not broken (ibkr-facts.md 4.3)
_IDLE_FARM_CODES = {2107: Farm.HISTORICAL, 2108: Farm.MARKET_DATA}
_MEANINGS = {
    1100: "connectivity between IB and TWS lost",
    2110: "connectivity between TWS and IB's servers broken",
}
_INFORMATION = frozenset((2107, 2108, 2119, 2150, 2168, 2169))
_WARNINGS = frozenset((399, 10167))  # about one order or request, which stands


@final
class ConnectionMonitor:
    """The connection state machine of ``ibkr-facts.md`` 4.3.

    Farm messages never tear the connection down: they only update ``farms``, each farm's
    last known state (None before any notice), and pause or resume history requests for the
    HMDS farm. Each method returns the
    :class:`Transition` it made, or ``None`` when nothing changed.

    Example:
        >>> monitor = ConnectionMonitor()
        >>> monitor.socket_connected().after
        <ConnectionState.CONNECTING: 'connecting'>
        >>> monitor.api_ready().actions
        (<Action.RELEASE_ORDERS: 'release_orders'>, <Action.RECONCILE: 'reconcile'>)
        >>> [str(a) for a in monitor.on_code(1101).actions]
        ['resubscribe', 'reconcile', 'release_orders']
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.state = ConnectionState.DISCONNECTED
        self.farms: dict[Farm, bool | None] = dict.fromkeys(Farm)  # None: not heard of yet
        self.farm_status: dict[str, FarmStatus] = {}
        """Each farm IB sent a notice about, by its name, with that last notice."""

    def _move(
        self, after: ConnectionState, actions: tuple[Action, ...], reason: str
    ) -> Transition | None:
        before = self.state
        if before is after and not actions:
            return None
        self.state = after
        return Transition(before, after, actions, reason)

    def socket_connected(self) -> Transition | None:
        """The socket to TWS is open and the handshake done."""
        with self._lock:
            return self._move(ConnectionState.CONNECTING, (), "socket connected")

    def api_ready(self) -> Transition | None:
        """``nextValidId`` and ``managedAccounts`` have arrived.

        Trading may start once the state is reconciled.
        """
        with self._lock:
            return self._move(
                ConnectionState.CONNECTED,
                (Action.RELEASE_ORDERS, Action.RECONCILE),
                "API ready",
            )

    def socket_lost(self, reason: str = "socket closed") -> Transition | None:
        """The socket closed (TWS restarted, the network failed, or 1300)."""
        with self._lock:
            return self._move(
                ConnectionState.DISCONNECTED, (Action.HOLD_ORDERS, Action.RECONNECT), reason
            )

    def on_code(self, code: int, text: str = "") -> Transition | None:
        """Take an error or notice code that is not about one request.

        Args:
            code: IB's code.
            text: IB's message, which names the farm of a farm notice
                (``"Market data farm connection is OK:usfarm"``).
        """
        with self._lock:
            idle = _IDLE_FARM_CODES.get(code)
            farm = _FARM_CODES.get(code) or (None if idle is None else (idle, True))
            if farm is not None:
                kind, up = farm
                label = _farm_name(text) or kind.value
                self.farm_status[label] = FarmStatus(label, kind, up, code)
            if farm is not None and idle is None:
                name, ok = farm
                was = self.farms[name]
                self.farms[name] = ok
                if name is Farm.HISTORICAL and was != ok:
                    action = Action.RESUME_HISTORY if ok else Action.PAUSE_HISTORY
                    return Transition(self.state, self.state, (action,), f"code {code}")
                return None
            if code in (1100, 2110):
                return self._move(
                    ConnectionState.IB_UNREACHABLE,
                    (Action.HOLD_ORDERS,),
                    f"code {code}: {_MEANINGS[code]}",
                )
            if code == 1101:
                return self._move(
                    ConnectionState.CONNECTED,
                    (Action.RESUBSCRIBE, Action.RECONCILE, Action.RELEASE_ORDERS),
                    "code 1101: connectivity restored, market data lost",
                )
            if code == 1102:
                return self._move(
                    ConnectionState.CONNECTED,
                    (Action.RECONCILE, Action.RELEASE_ORDERS),
                    "code 1102: connectivity restored, market data kept",
                )
            if code in (326, 502, 504, 1300):
                reasons = {
                    326: "client id in use",
                    502: "cannot connect",
                    504: "not connected",
                    1300: "socket port changed",
                }
                return self._move(
                    ConnectionState.DISCONNECTED,
                    (Action.HOLD_ORDERS, Action.RECONNECT),
                    f"code {code}: {reasons[code]}",
                )
            return None  # 2107/2108 and other notices: nothing to do

    @staticmethod
    def is_notice(code: int) -> bool:
        """Tell whether a code is information (2100-2199), never a failure."""
        return 2100 <= code <= 2199 or code in _INFORMATION

    @staticmethod
    def is_warning(code: int) -> bool:
        """Tell whether a code about an order or request leaves it standing.

        Notices, 399 (an order message) and 10167 (delayed data displayed) do.
        """
        return ConnectionMonitor.is_notice(code) or code in _WARNINGS


def _farm_name(text: str) -> str:
    """The farm a notice names: what follows its last colon (or, for 2107/2108, full stop)."""
    for mark in (":", "."):
        if mark in text:
            return text.rsplit(mark, 1)[1].strip()
    return ""


@final
class Backoff:
    """Exponential backoff with jitter between reconnection attempts.

    The n-th delay is drawn uniformly between half and all of ``min(cap, base * 2**n)``, so
    clients reconnecting together spread out.

    Args:
        base: The first delay's ceiling, in seconds.
        cap: The largest delay, in seconds.
        seed: Seed of the random generator, for reproducible tests.

    Example:
        >>> backoff = Backoff(base=1, cap=8, seed=1)
        >>> [0.5 <= d <= c for d, c in zip([backoff.next() for _ in range(5)], [1, 2, 4, 8, 8])]
        [True, True, True, True, True]
    """

    def __init__(self, *, base: float = 1.0, cap: float = 60.0, seed: int | None = None) -> None:
        if not 0 < base <= cap:
            raise ConfigError(f"backoff needs 0 < base <= cap, got {base!r} and {cap!r}")
        self.base = base
        self.cap = cap
        self._rng = random.Random(seed)
        self.attempts = 0

    def next(self) -> float:
        """The delay before the next attempt, in seconds."""
        ceiling = min(self.cap, self.base * 2 ** min(self.attempts, 60))
        self.attempts += 1
        return self._rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        """Start again from the base delay (after a successful connection)."""
        self.attempts = 0
