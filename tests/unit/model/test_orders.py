from __future__ import annotations

from decimal import Decimal

import pytest

from ibkrfw import OrderError, OrderRequest, OrderStatus, OrderType, Side, Stock, TimeInForce
from ibkrfw.model import check_request

AAPL = Stock("AAPL")


def test_request_converts_strings_and_numbers() -> None:
    req = OrderRequest(AAPL, "buy", 10, "LMT", limit_price=189.5, tif="gtc")
    assert req.side is Side.BUY
    assert req.quantity == Decimal(10)
    assert req.order_type is OrderType.LIMIT
    assert req.limit_price == Decimal("189.5")
    assert req.tif is TimeInForce.GTC
    assert req.signed_quantity == 10


def test_sell_has_negative_signed_quantity() -> None:
    assert OrderRequest.market(AAPL, Side.SELL, 5).signed_quantity == -5


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"side": "HOLD"}, "side"),
        ({"quantity": float("nan")}, "finite"),
        ({"quantity": "ten"}, "number"),
        ({"quantity": True}, "bool"),
        ({"order_type": "MOC?"}, "order_type"),
        ({"tif": "FOREVER"}, "tif"),
        ({"instrument": "AAPL"}, "Instrument"),
    ],
)
def test_malformed_requests_raise_order_error(kwargs: dict[str, object], match: str) -> None:
    base: dict[str, object] = {"instrument": AAPL, "side": "BUY", "quantity": 1}
    base.update(kwargs)
    with pytest.raises(OrderError, match=match):
        OrderRequest(**base)  # type: ignore[arg-type]


def test_order_error_is_also_a_value_error() -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the builtin mixin is the point
        OrderRequest(AAPL, "BUY", "x")


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (OrderRequest.market(AAPL, "BUY", 0), "quantity must be positive"),
        (OrderRequest.market(AAPL, "BUY", -3), "quantity must be positive"),
        (OrderRequest.market(Stock("X", lot_size=100), "BUY", 150), "lot size"),
        (OrderRequest(AAPL, "BUY", 1, OrderType.LIMIT), "needs a limit price"),
        (OrderRequest(AAPL, "BUY", 1, OrderType.STOP), "needs a stop price"),
        (OrderRequest(AAPL, "BUY", 1, OrderType.MARKET, limit_price=10), "takes no limit price"),
        (OrderRequest.limit(AAPL, "BUY", 1, "10.005"), "tick size"),
        (OrderRequest.limit(AAPL, "BUY", 1, 0), "must be positive"),
        (OrderRequest.market(AAPL, "BUY", 1, tif="GTD"), "good_till_ns"),
        (OrderRequest(AAPL, "SELL", 1, "TRAIL", stop_price=90), "exactly one of trail_amount"),
        (
            OrderRequest(AAPL, "SELL", 1, "TRAIL", stop_price=90, trail_amount=1, trail_percent=2),
            "exactly one of trail_amount",
        ),
        (OrderRequest(AAPL, "SELL", 1, "TRAIL", stop_price=90, trail_percent=100), "below 100"),
        (OrderRequest(AAPL, "SELL", 1, "TRAIL", stop_price=90, trail_amount=-1), "positive"),
        (OrderRequest(AAPL, "SELL", 1, "TRAIL", trail_amount=1), "needs a stop price"),
        (OrderRequest.market(AAPL, "SELL", 1, trail_amount=1), "takes no trail_amount"),
    ],
)
def test_check_request_names_the_problem(request_: OrderRequest, reason: str) -> None:
    problem = check_request(request_)
    assert problem is not None
    assert reason in problem


def test_check_request_accepts_valid_requests() -> None:
    assert check_request(OrderRequest.limit(AAPL, "BUY", 100, "189.50")) is None
    assert check_request(OrderRequest.stop(AAPL, "SELL", 1, 180)) is None
    req = OrderRequest(AAPL, "BUY", 1, OrderType.STOP_LIMIT, limit_price=11, stop_price=10)
    assert check_request(req) is None


def test_terminal_statuses() -> None:
    terminal = {s for s in OrderStatus if s.is_terminal}
    assert terminal == {
        OrderStatus.FILLED,
        OrderStatus.CANCELLED,
        OrderStatus.REJECTED,
        OrderStatus.DENIED,
        OrderStatus.EXPIRED,
    }


def test_trusted_market_request_equals_the_checked_one() -> None:
    import attrs

    fast = OrderRequest._trusted_market(AAPL, Side.SELL, Decimal(7))
    slow = OrderRequest(AAPL, "SELL", 7)
    assert fast == slow
    assert [f.name for f in attrs.fields(OrderRequest)] == [
        "instrument",
        "side",
        "quantity",
        "order_type",
        "limit_price",
        "stop_price",
        "tif",
        "good_till_ns",
        "tag",
        "trail_amount",
        "trail_percent",
        "parent_id",
        "oca_group",
        "algo",
        "strategy",
    ]  # a new field must be added to _trusted_market too
