"""A live run against the fake TWS survives cancels, changes and timers gone wrong (issue 20).

Before: ``ctx.cancel(99999)`` raised ConfigError in the strategy's handler, and the live run
ended (``EngineError: the live run failed``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from typing_extensions import override

from ibkrfw import Context, Event, OrderCancelRejected, OrderModifyRejected
from ibkrfw.model import Bar
from ibkrfw.testing import FakeTWS, LiveSession, ScriptedStrategy

NAN = float("nan")
TAKES = "takes an Order or an order id (int)"


class Recording(ScriptedStrategy):
    """A scripted strategy that also keeps what arrives in ``on_event``."""

    def __init__(self, actions: dict[int, Callable[[Context, Bar], object]]) -> None:
        super().__init__(actions)
        self.other: list[Event] = []

    @override
    def on_event(self, ctx: Context, event: Event) -> None:
        self.other.append(event)


def test_cancel_modify_and_schedule_of_nothing_are_refused_live_and_the_run_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    answers: list[object] = []
    strategy = Recording({
        0: lambda c, b: c.cancel(99999),
        1: lambda c, b: c.cancel(None),
        2: lambda c, b: c.modify(NAN, quantity=1),
        3: lambda c, b: answers.append(c.schedule("t", at_ns=NAN)),
        4: lambda c, b: c.buy(b.instrument, 1),
    })  # fmt: skip
    with (
        caplog.at_level(logging.WARNING, logger="ibkrfw"),
        FakeTWS.from_sample(["ACME"]) as tws,
        LiveSession(strategy, tws) as session,
    ):
        session.step(7)
        session.stop()
    assert len(strategy.bars) == 7  # every bar reached the strategy
    refused = [
        e for e in strategy.other if isinstance(e, OrderCancelRejected | OrderModifyRejected)
    ]
    assert [(type(e).__name__, e.order_id, e.reason) for e in refused] == [
        ("OrderCancelRejected", -1, "no order has the id 99999"),
        ("OrderCancelRejected", -1, f"cancel {TAKES}, got NoneType None"),
        ("OrderModifyRejected", -1, f"modify {TAKES}, got float nan"),
    ]  # fmt: skip
    assert answers == [False]
    assert len(strategy.fills) == 1  # and it still trades
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "cancel refused: no order has the id 99999" in warned
    assert any(m.startswith("timer 't' not set: at_ns must be an int") for m in warned)
