from __future__ import annotations

import pytest

from ibkrfw import ConfigError
from ibkrfw.ibkr.connection import Action, Backoff, ConnectionMonitor, ConnectionState, Farm

S = ConnectionState


def _ready() -> ConnectionMonitor:
    monitor = ConnectionMonitor()
    monitor.socket_connected()
    monitor.api_ready()
    return monitor


def test_a_session_from_connect_to_a_nightly_reset() -> None:
    monitor = ConnectionMonitor()
    assert monitor.state is S.DISCONNECTED
    assert monitor.socket_connected().after is S.CONNECTING  # type: ignore[union-attr]
    ready = monitor.api_ready()
    assert ready is not None and ready.after is S.CONNECTED
    lost = monitor.on_code(1100)
    assert lost is not None
    assert (lost.before, lost.after, lost.actions) == (
        S.CONNECTED,
        S.IB_UNREACHABLE,
        (Action.HOLD_ORDERS,),
    )
    back = monitor.on_code(1101)
    assert back is not None and back.after is S.CONNECTED
    assert back.actions == (Action.RESUBSCRIBE, Action.RECONCILE, Action.RELEASE_ORDERS)
    monitor.on_code(1100)
    kept = monitor.on_code(1102)
    assert kept is not None and kept.actions == (Action.RECONCILE, Action.RELEASE_ORDERS)
    assert "data kept" in kept.reason


def test_farm_messages_never_tear_down() -> None:
    monitor = _ready()
    assert monitor.on_code(2104) is None
    assert monitor.farms[Farm.MARKET_DATA]
    assert monitor.on_code(2103) is None
    assert not monitor.farms[Farm.MARKET_DATA]
    pause = monitor.on_code(2105)
    assert pause is not None and pause.actions == (Action.PAUSE_HISTORY,)
    resume = monitor.on_code(2106)
    assert resume is not None and resume.actions == (Action.RESUME_HISTORY,)
    assert monitor.on_code(2106) is None  # no change, nothing to do
    for code in (2107, 2108, 2157, 2158):
        monitor.on_code(code)
    assert monitor.state is S.CONNECTED
    assert ConnectionMonitor.is_notice(2158) and not ConnectionMonitor.is_notice(1100)


@pytest.mark.parametrize("code", [326, 502, 504, 1300])
def test_codes_that_mean_reconnect(code: int) -> None:
    transition = _ready().on_code(code)
    assert transition is not None and transition.after is S.DISCONNECTED
    assert transition.actions == (Action.HOLD_ORDERS, Action.RECONNECT)


def test_a_lost_socket_holds_orders_and_reconnects() -> None:
    transition = _ready().socket_lost("TWS restarted")
    assert transition is not None
    assert (transition.after, transition.actions, transition.reason) == (
        S.DISCONNECTED, (Action.HOLD_ORDERS, Action.RECONNECT), "TWS restarted",
    )  # fmt: skip


def test_backoff_grows_to_its_cap_with_jitter_and_resets() -> None:
    backoff = Backoff(base=1, cap=30, seed=7)
    delays = [backoff.next() for _ in range(8)]
    ceilings = [1, 2, 4, 8, 16, 30, 30, 30]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert len(set(delays)) == len(delays)  # jittered
    backoff.reset()
    assert backoff.next() <= 1
    for _ in range(2000):  # no overflow however long it keeps failing
        assert backoff.next() <= 30
    with pytest.raises(ConfigError):
        Backoff(base=5, cap=1)
