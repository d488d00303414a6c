"""Malformed orders are denied with the reason and the run goes on (issue 20), in a backtest."""

from __future__ import annotations

import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import numpy as np
import pytest

from ibkrfw import (
    Context,
    Engine,
    OrderDenied,
    OrderError,
    OrderModifyRejected,
    OrderRequest,
    OrderStatus,
    Stock,
)
from ibkrfw.model import Bar
from ibkrfw.sim import DataFrameFeed, SimBroker
from ibkrfw.testing import ScriptedStrategy, bars_frame

ACME = Stock("ACME")
ROWS = [(100.0, 101.0, 99.0, 100.0)] * 6
NAN, INF = float("nan"), float("inf")
Action = Callable[[Context], object]

# (what the strategy does, words the reason must hold: the field and the value)
MALFORMED: list[tuple[str, Action, str]] = [
    ("nan quantity", lambda c: c.buy(ACME, NAN), "quantity must be finite, got nan"),
    ("inf quantity", lambda c: c.sell(ACME, INF), "quantity must be finite, got inf"),
    ("zero quantity", lambda c: c.buy(ACME, 0), "quantity must be positive, got 0"),
    ("negative quantity", lambda c: c.buy(ACME, -5), "quantity must be positive, got -5"),
    ("10**30", lambda c: c.buy(ACME, 10**30), "quantity 1000000000000000000000000000000 is"),
    ("fractional shares", lambda c: c.buy(ACME, 1.5), "quantity 1.5 is not a multiple of the lot"),
    ("str quantity", lambda c: c.buy(ACME, "ten"), "quantity must be a number, got the string"),
    ("None quantity", lambda c: c.buy(ACME, None), "quantity must be a Decimal, int, float or"),
    ("nan limit", lambda c: c.buy(ACME, 1, limit_price=NAN), "limit_price must be finite, got nan"),
    ("inf limit", lambda c: c.buy(ACME, 1, limit_price=INF), "limit_price must be finite, got inf"),
    ("zero limit", lambda c: c.buy(ACME, 1, limit_price=0), "limit price must be positive, got 0"),
    ("negative limit", lambda c: c.buy(ACME, 1, limit_price=-1), "limit price must be positive"),
    ("1e308 limit", lambda c: c.buy(ACME, 1, limit_price=1e308), "limit price 1E+308 is beyond"),
    ("1e-320 limit", lambda c: c.buy(ACME, 1, limit_price=1e-320), "limit price 1E-320 is not a"),
    ("off-tick limit", lambda c: c.buy(ACME, 1, limit_price=99.123), "99.123 is not a multiple"),
    ("str limit", lambda c: c.buy(ACME, 1, limit_price="abc"), "limit_price must be a number"),
    ("nan stop", lambda c: c.sell(ACME, 1, stop_price=NAN), "stop_price must be finite, got nan"),
    ("nan trail", lambda c: c.sell(ACME, 1, trail_amount=NAN), "trail_amount must be finite"),
    ("1e308 trail", lambda c: c.sell(ACME, 1, trail_amount=1e308), "the trail 1E+308 is beyond"),
    ("inf trail %", lambda c: c.sell(ACME, 1, trail_percent=INF), "trail_percent must be finite"),
    ("unknown tif", lambda c: c.buy(ACME, 1, tif="FOO"), "tif must be one of DAY, GTC, IOC, GTD"),
    ("None tif", lambda c: c.buy(ACME, 1, tif=None), "tif must be one of DAY, GTC, IOC, GTD, OPG"),
    ("unknown type", lambda c: c.buy(ACME, 1, order_type="XYZ"), "order_type must be one of"),
    ("int tag", lambda c: c.buy(ACME, 1, tag=5), "tag must be a str, got int 5"),
    ("str parent", lambda c: c.buy(ACME, 1, parent_id="x"), "parent_id must be an order id"),
    ("str expiry", lambda c: c.buy(ACME, 1, tif="GTD", good_till_ns="x"), "good_till_ns must be"),
    ("target nan", lambda c: c.order_target_quantity(ACME, NAN), "the target nan is not a finite"),
    (
        "target str",
        lambda c: c.order_target_quantity(ACME, "5"),
        "target must be a number, got str",
    ),
    ("target None", lambda c: c.order_target_value(ACME, None), "value must be a number, got None"),
    ("target 10**30", lambda c: c.order_target_quantity(ACME, 10**30), "is beyond what any"),
    ("target 10**400", lambda c: c.order_target_quantity(ACME, 10**400), "1.000E+400 is not a"),
    ("percent 1e200", lambda c: c.order_target_percent(ACME, 1e200), "is beyond what any account"),
    ("percent huge", lambda c: c.order_target_percent(ACME, Decimal("1E+5000")), "is not a finite"),
    ("value 1e300", lambda c: c.order_target_value(ACME, 1e300), "is beyond what any account"),
    (
        "target, bad option",
        lambda c: c.order_target_quantity(ACME, 10, limit_price=NAN),
        "limit_price must be finite, got nan",
    ),
    (
        "bracket nan exit",
        lambda c: c.bracket(ACME, "BUY", 1, take_profit=NAN, stop_loss=90),
        "take_profit must be finite, got nan",
    ),
    (
        "bracket inverted",
        lambda c: c.bracket(ACME, "BUY", 1, take_profit=90, stop_loss=110),
        "needs its take-profit above its stop-loss, got take_profit=90 and stop_loss=110",
    ),
    (
        "bracket side",
        lambda c: c.bracket(ACME, "HOLD", 1, take_profit=110, stop_loss=90),
        "side must be 'BUY' or 'SELL', got 'HOLD'",
    ),
    (
        "bracket None quantity",
        lambda c: c.bracket(ACME, "BUY", None, take_profit=110, stop_loss=90),
        "quantity must be a Decimal, int, float or str, got NoneType",
    ),
]


def _run(action: Action) -> tuple[ScriptedStrategy, Any]:
    """Do ``action`` on the first bar and buy 1 on the third: the run must carry on."""
    script = ScriptedStrategy({0: lambda c, b: action(c), 2: lambda c, b: c.buy(ACME, 1)})
    result = Engine(script, DataFrameFeed(bars_frame(ROWS), ACME), SimBroker(cash=100_000)).run()
    return script, result


@pytest.mark.parametrize(
    ("action", "reason"), [pytest.param(a, r, id=name) for name, a, r in MALFORMED]
)
def test_malformed_orders_are_denied_with_the_field_and_value(
    action: Action, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="ibkrfw.engine"):
        script, result = _run(action)
    assert len(script.bars) == len(ROWS)  # the run went on
    denied = [(o, e) for o, e in script.events if isinstance(e, OrderDenied)]
    assert denied, script.event_types()
    order, event = denied[0]
    assert reason in event.reason
    assert order.status is OrderStatus.DENIED
    assert event.rule in ("validation", "sizing")
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any(reason in r.getMessage() for r in warned)
    # nothing of the malformed order was traded; the good order after it filled
    assert [f.quantity for f in script.fills] == [Decimal(1)]
    assert result.positions[ACME.id].iloc[-1] == 1


@pytest.mark.parametrize(
    "action",
    [
        lambda c: c.buy(ACME, np.int64(3)),
        lambda c: c.buy(ACME, np.float64(3.0)),
        lambda c: c.buy(ACME, np.float32(3.0), limit_price=np.float32(100.01)),
        lambda c: c.buy(ACME, 3, limit_price=np.float64(100.5)),
        lambda c: c.order_target_quantity(ACME, np.int64(3)),
        lambda c: c.order_target_value(ACME, np.float64(300.0)),
        lambda c: c.order_target_percent(ACME, np.float32(0.003)),
    ],
    ids=["int64", "float64", "float32 limit", "float64 limit", "target", "value", "percent"],
)
def test_numpy_scalars_are_numbers_like_any_other(action: Action) -> None:
    script = ScriptedStrategy({0: lambda c, b: action(c)})
    Engine(script, DataFrameFeed(bars_frame(ROWS), ACME), SimBroker(cash=100_000)).run()
    assert "OrderDenied" not in script.event_types()
    assert sum(f.quantity for f in script.fills) == 3


def test_a_bracket_refused_for_a_malformed_value_sends_none_of_its_orders() -> None:
    script, result = _run(lambda c: c.bracket(ACME, "BUY", 1, take_profit=NAN, stop_loss=90))
    statuses = [o.status for o in result.order_list]
    assert statuses[:3] == [OrderStatus.DENIED] * 3
    assert [type(e).__name__ for _, e in script.events][:3] == ["OrderDenied"] * 3


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"limit_price": NAN}, "limit_price must be finite, got nan"),
        ({"quantity": "many"}, "quantity must be a number, got the string 'many'"),
        ({"tif": "SOON"}, "tif must be one of"),
        ({"quantity": 10**30}, "quantity 1000000000000000000000000000000 is beyond"),
    ],
)
def test_a_malformed_change_is_refused_and_the_order_works_on(
    change: dict[str, object], reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    def place(ctx: Context, bar: Bar) -> None:
        ctx.buy(ACME, 1, limit_price=95, tif="GTC")

    def change_it(ctx: Context, bar: Bar) -> None:
        ctx.modify(1, **change)  # type: ignore[arg-type]

    script = ScriptedStrategy({0: place, 1: change_it})
    with caplog.at_level(logging.WARNING, logger="ibkrfw.engine"):
        result = Engine(script, DataFrameFeed(bars_frame(ROWS), ACME), SimBroker()).run()
    refused = [e for _, e in script.events if isinstance(e, OrderModifyRejected)]
    assert len(refused) == 1 and reason in refused[0].reason
    assert len(script.bars) == len(ROWS)
    order = result.order_list[0]
    assert order.status is OrderStatus.SUBMITTED and order.request.limit_price == 95


def test_an_order_request_built_by_hand_is_still_checked_when_built() -> None:
    # A constructor raises for a malformed value, as any does; the order methods deny instead.
    with pytest.raises(OrderError, match="limit_price must be finite, got nan"):
        OrderRequest.limit(ACME, "BUY", 1, NAN)
    script = ScriptedStrategy({0: lambda c, b: c.submit("BUY 1 ACME")})  # type: ignore[arg-type]
    with pytest.raises(OrderError, match="submit takes an OrderRequest, got str"):
        Engine(script, DataFrameFeed(bars_frame(ROWS), ACME), SimBroker()).run()


def test_a_fault_of_the_framework_still_stops_the_run() -> None:
    class BrokenBroker(SimBroker):  # type: ignore[misc]  # final: a bug planted on purpose
        def submit(self, order: Any) -> None:
            raise RuntimeError("a bug in the broker")

    script = ScriptedStrategy({0: lambda c, b: c.buy(ACME, 1)})
    with pytest.raises(RuntimeError, match="a bug in the broker"):
        Engine(script, DataFrameFeed(bars_frame(ROWS), ACME), BrokenBroker()).run()
    assert len(script.bars) == 1


@pytest.mark.parametrize("quantity", [1, Decimal(1)], ids=["int", "Decimal"])
def test_an_order_for_what_is_not_an_instrument_raises_a_typed_error(quantity: object) -> None:
    # The fast path of a plain market order (a whole number of units) checks it too.
    script = ScriptedStrategy({0: lambda c, b: c.buy("ACME", quantity)})  # type: ignore[arg-type]
    with pytest.raises(OrderError, match="instrument must be an Instrument, got str"):
        Engine(script, DataFrameFeed(bars_frame(ROWS), ACME), SimBroker()).run()


def test_an_int_quantity_makes_the_same_order_as_its_decimal() -> None:
    script = ScriptedStrategy(
        {0: lambda c, b: c.buy(ACME, 3), 1: lambda c, b: c.sell(ACME, Decimal(3))}
    )
    result = Engine(script, DataFrameFeed(bars_frame(ROWS), ACME), SimBroker()).run()
    first, second = result.order_list
    assert first.request == OrderRequest(ACME, "BUY", 3)
    assert second.request == OrderRequest(ACME, "SELL", Decimal(3))
    assert type(first.request.quantity) is Decimal
