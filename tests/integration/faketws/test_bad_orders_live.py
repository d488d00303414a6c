"""A live run against the fake TWS survives every malformed order the strategy makes (issue 20).

Before: a NaN limit price ended the run (``EngineError: the live run failed: OrderError``),
and so did a NaN in a modification or a trail of 1e308 (``decimal.InvalidOperation``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from decimal import Decimal

import pytest

from ibkrfw import Context, OrderDenied, OrderModifyRejected, OrderStatus
from ibkrfw.model import Bar
from ibkrfw.testing import FakeTWS, LiveSession, ScriptedStrategy

_PLACE_ORDER = 3  # IB's message id of placeOrder
NAN = float("nan")

# One malformed order a bar, as a strategy gone wrong might make them, then a good one.
STEPS: list[tuple[Callable[[Context, Bar], object], str]] = [
    (lambda c, b: c.buy(b.instrument, 1, limit_price=NAN), "limit_price must be finite, got nan"),
    (lambda c, b: c.buy(b.instrument, 10**30), "quantity 1000000000000000000000000000000 is"),
    (lambda c, b: c.buy(b.instrument, "ten"), "quantity must be a number, got the string 'ten'"),
    (lambda c, b: c.sell(b.instrument, None), "quantity must be a Decimal, int, float or str"),
    (lambda c, b: c.sell(b.instrument, 1, trail_amount=1e308), "the trail 1E+308 is beyond"),
    (lambda c, b: c.buy(b.instrument, 1, limit_price=-3), "limit price must be positive, got -3"),
    (lambda c, b: c.buy(b.instrument, 1, tif="SOON"), "tif must be one of"),
    (lambda c, b: c.order_target_percent(b.instrument, None), "percent must be a number"),
    (lambda c, b: c.order_target_quantity(b.instrument, 10**30), "is beyond what any account"),
    (
        lambda c, b: c.bracket(b.instrument, "BUY", 1, take_profit=1, stop_loss=NAN),
        "stop_loss must be finite, got nan",
    ),
]


def test_malformed_orders_are_denied_live_and_the_run_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    actions: dict[int, Callable[[Context, Bar], object]] = {
        i: action for i, (action, _) in enumerate(STEPS)
    }
    good = len(STEPS)
    actions[good] = lambda c, b: c.buy(b.instrument, 2, limit_price=1, tif="GTC")  # rests
    actions[good + 1] = lambda c, b: c.modify(c.open_orders()[0], limit_price=NAN)
    actions[good + 2] = lambda c, b: c.buy(b.instrument, 3)  # fills
    strategy = ScriptedStrategy(actions)
    with (
        caplog.at_level(logging.WARNING, logger="ibkrfw.engine"),
        FakeTWS.from_sample(["ACME"]) as tws,
        LiveSession(strategy, tws) as session,
    ):
        session.step(good + 5)
        result = session.stop(cancel_orders=True)
        placed = tws.messages("in", client_id=1, msg_id=_PLACE_ORDER)
    assert len(strategy.bars) == good + 5  # every bar reached the strategy
    denied = [e for _, e in strategy.events if isinstance(e, OrderDenied)]
    reasons = [e.reason for e in denied]
    for _, words in STEPS:
        assert any(words in r for r in reasons), (words, reasons)
    assert all(e.rule in ("validation", "sizing") for e in denied)
    warned = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert all(words in warned for _, words in STEPS)
    refused = [e for _, e in strategy.events if isinstance(e, OrderModifyRejected)]
    assert len(refused) == 1 and "limit_price must be finite, got nan" in refused[0].reason
    # only the two good orders reached TWS (the limit once, unchanged), and the market filled
    assert len(placed) == 2
    assert [f.quantity for f in strategy.fills] == [Decimal(3)]
    assert [o.status for o in result.order_list if o.status is not OrderStatus.DENIED] == [
        OrderStatus.CANCELLED,
        OrderStatus.FILLED,
    ]
