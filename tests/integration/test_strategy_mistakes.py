"""Cancels, changes and timers the strategy gets wrong never end a run (issue 20).

Before: ``ctx.cancel(99999)``, ``ctx.cancel(None)``, ``ctx.modify(order)`` with nothing to
change and ``ctx.schedule("t", at_ns=nan)`` raised ConfigError, which ended a live run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from typing_extensions import override

from ibkrfw import (
    ConfigError,
    Context,
    Engine,
    Event,
    OrderCancelRejected,
    OrderModifyRejected,
    OrderStatus,
    Stock,
)
from ibkrfw.model import Bar
from ibkrfw.sim import DataFrameFeed, SimBroker
from ibkrfw.testing import ScriptedStrategy, bars_frame

ACME = Stock("ACME")
ROWS = [(100.0, 101.0, 99.0, 100.0)] * 4
NAN = float("nan")


class Recording(ScriptedStrategy):
    """A scripted strategy that also keeps what arrives in ``on_event``."""

    def __init__(self, actions: dict[int, Callable[[Context, Bar], object]]) -> None:
        super().__init__(actions)
        self.other: list[Event] = []

    @override
    def on_event(self, ctx: Context, event: Event) -> None:
        self.other.append(event)


def run(actions: dict[int, Callable[[Context, Bar], object]]) -> Recording:
    strategy = Recording(actions)
    Engine(strategy, DataFrameFeed(bars_frame(ROWS), ACME), SimBroker()).run()
    assert len(strategy.bars) == len(ROWS)  # the run went on to its end
    return strategy


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        (99999, "no order has the id 99999"),
        (np.int64(99999), "no order has the id 99999"),
        (None, "cancel takes an Order or an order id (int), got NoneType None"),
        (NAN, "cancel takes an Order or an order id (int), got float nan"),
        ("abc", "cancel takes an Order or an order id (int), got str 'abc'"),
        (True, "cancel takes an Order or an order id (int), got bool True"),
    ],
)
def test_context_cancel_of_no_order_is_an_order_cancel_rejected_not_an_error(
    given: object, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="ibkrfw"):
        strategy = run({0: lambda c, b: c.cancel(given)})  # type: ignore[arg-type]
    assert strategy.other == [OrderCancelRejected(ts_ns=strategy.bars[0].ts_ns, order_id=-1,
                                                  reason=reason)]  # fmt: skip
    assert strategy.events == []  # no order to show in on_order
    assert [r.getMessage() for r in caplog.records] == [f"cancel refused: {reason}"]


def test_context_cancel_of_a_finished_order_still_reaches_on_order() -> None:
    strategy = run({0: lambda c, b: c.buy(ACME, 1), 2: lambda c, b: c.cancel(1)})
    (rejected,) = [e for _, e in strategy.events if isinstance(e, OrderCancelRejected)]
    assert rejected.order_id == 1 and "is not working" in rejected.reason
    assert strategy.other == []


@pytest.mark.parametrize(
    ("action", "reason", "in_on_order"),
    [
        (lambda c: c.modify(424242, quantity=1), "no order has the id 424242", False),
        (lambda c: c.modify(None, quantity=1), "modify takes an Order or an order id", False),
        (lambda c: c.modify(NAN, limit_price=1), "got float nan", False),
        (lambda c: c.modify(1), "modify needs at least one of quantity, limit_price", True),
        (lambda c: c.modify(1, limit_price=None), "got none", True),
    ],
)  # fmt: skip
def test_context_modify_that_cannot_be_made_is_an_order_modify_rejected_not_an_error(
    action: Callable[[Context], object], reason: str, in_on_order: bool
) -> None:
    strategy = run({0: lambda c, b: c.buy(ACME, 1, limit_price=50), 1: lambda c, b: action(c)})
    if in_on_order:
        (rejected,) = [e for _, e in strategy.events if isinstance(e, OrderModifyRejected)]
        assert rejected.order_id == 1 and strategy.other == []
    else:
        (rejected,) = strategy.other
        assert isinstance(rejected, OrderModifyRejected) and rejected.order_id == -1
    assert reason in rejected.reason


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"at_ns": NAN}, "at_ns must be an int of nanoseconds, got float nan"),
        ({"at_ns": float("inf")}, "at_ns must be an int of nanoseconds, got float inf"),
        ({"at_ns": 1e18}, "at_ns must be an int of nanoseconds, got float 1e+18"),
        ({"at_ns": "soon"}, "at_ns must be an int of nanoseconds, got str 'soon'"),
        ({"every_ns": "x"}, "every_ns must be an int of nanoseconds, got str 'x'"),
        ({"every_ns": None}, "every_ns must be an int of nanoseconds, got NoneType None"),
        ({"every_ns": -5}, "every_ns must be 0 (once) or positive, got -5"),
        ({}, "schedule needs at_ns or a positive every_ns"),
        ({"at_ns": 0}, "it is due at 0 ns, before now"),
    ],
)
def test_context_schedule_that_cannot_be_set_warns_sets_nothing_and_returns_false(
    kwargs: dict[str, Any], reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    answers: list[object] = []
    with caplog.at_level(logging.WARNING, logger="ibkrfw"):
        strategy = run({0: lambda c, b: answers.append(c.schedule("t", **kwargs))})
    assert answers == [False]
    assert strategy.timers == []
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert record.getMessage().startswith(f"timer 't' not set: {reason}")


def test_context_schedule_a_good_timer_returns_true_and_a_refused_one_keeps_it() -> None:
    answers: list[object] = []
    step = 60 * 10**9

    def schedule(c: Context, b: Bar) -> None:
        answers.append(c.schedule("t", at_ns=c.now_ns + step))
        answers.append(c.schedule("t", at_ns=NAN))  # refused: the first stays

    strategy = run({0: schedule})
    assert answers == [True, False]
    assert [t.name for t in strategy.timers] == ["t"]


@pytest.mark.parametrize(
    ("action", "match"),
    [
        (lambda c: c.history(ACME, NAN), r"history takes n as a number of bars .* got float nan"),
        (lambda c: c.history(ACME, -1), r"an int >= 0\) or None for all, got int -1"),
        (lambda c: c.history("ACME", 2), r"no feed delivers 'ACME'; known: ACME\.SMART"),
        (lambda c: c.history(Stock("ZZZ"), 2), r"no feed delivers ZZZ\.SMART"),
    ],
)  # fmt: skip
def test_context_history_misread_is_a_config_error_as_documented(
    action: Callable[[Context], object], match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        run({0: lambda c, b: action(c)})


def test_context_history_takes_numpy_ints() -> None:
    sizes: list[int] = []
    run({2: lambda c, b: sizes.append(len(c.history(ACME, np.int64(2)).close))})
    assert sizes == [2]


def test_denial_log_shows_no_stand_in_quantity_or_odd_hint(
    caplog: pytest.LogCaptureFixture,
) -> None:
    actions = {
        0: lambda c, b: c.sell(ACME, NAN),
        1: lambda c, b: c.order_target_quantity(ACME, "x"),
        2: lambda c, b: c.order_target_percent(ACME, "0.5"),
    }
    with caplog.at_level(logging.WARNING, logger="ibkrfw"):
        strategy = run(actions)  # type: ignore[arg-type]
    assert [r.getMessage() for r in caplog.records] == [
        "order 1 (SELL ACME.SMART) denied by validation: the order cannot be built: quantity "
        "must be finite, got nan",
        "order 2 (ACME.SMART) denied by sizing: the target must be a number, got str 'x'",
        "order 3 (ACME.SMART) denied by sizing: the percent must be a number, got str '0.5' "
        "(did you mean 0.5?)",
    ]
    assert all(o.status is OrderStatus.DENIED for o, _ in strategy.events)
