"""build_request: a strategy's values to a request, or a stand-in and the reason (issue 20)."""

from __future__ import annotations

from decimal import Decimal

import attrs
import numpy as np
import pytest

from ibkrfw import OrderError, OrderRequest, OrderType, Side, Stock, TimeInForce
from ibkrfw.model._decimal import to_decimal
from ibkrfw.model.orders import _FIELD_CHECKS, build_request, check_request

ACME = Stock("ACME")


def test_well_formed_values_build_the_request() -> None:
    request, why = build_request(ACME, "sell", np.int64(5), {"limit_price": np.float64(10.5)})
    assert why is None
    assert request == OrderRequest(ACME, Side.SELL, 5, OrderType.MARKET, limit_price="10.5")


def test_every_malformed_field_is_named_and_the_rest_is_kept() -> None:
    options = {"order_type": "LMT", "limit_price": float("nan"), "tif": "SOON", "tag": "mine"}
    request, why = build_request(ACME, "HOLD", None, options)
    assert why == (
        "the order cannot be built: side must be 'BUY' or 'SELL', got 'HOLD'; quantity must be "
        "a Decimal, int, float or str, got NoneType; limit_price must be finite, got nan; tif "
        "must be one of DAY, GTC, IOC, GTD, OPG, got 'SOON'"
    )
    assert (request.side, request.quantity, request.order_type) == (Side.BUY, 0, OrderType.LIMIT)
    assert (request.limit_price, request.tif, request.tag) == (None, TimeInForce.DAY, "mine")


def test_what_cannot_stand_in_is_still_raised() -> None:
    with pytest.raises(OrderError, match="instrument must be an Instrument, got str"):
        build_request("ACME", "BUY", float("nan"))  # type: ignore[arg-type]
    with pytest.raises(OrderError, match=r"unknown order fields \['limt_price'\]"):
        build_request(ACME, "BUY", 1, {"limt_price": 1})


def test_every_field_but_the_instrument_is_checked_on_its_own() -> None:
    assert set(_FIELD_CHECKS) == {f.name for f in attrs.fields(OrderRequest)} - {"instrument"}


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("tag", 5, "tag must be a str, got int 5"),
        ("oca_group", None, "oca_group must be a str, got NoneType None"),
        ("parent_id", "1", "parent_id must be an order id (int) or None, got str '1'"),
        ("parent_id", True, "parent_id must be an order id (int) or None, got bool True"),
    ],
)
def test_text_and_ids_are_typed(field: str, value: object, words: str) -> None:
    with pytest.raises(OrderError, match=words.replace("(", r"\(").replace(")", r"\)")):
        OrderRequest(ACME, "BUY", 1, **{field: value})  # type: ignore[arg-type]


def test_numbers_beyond_decimals_context_are_denied_not_raised() -> None:
    inst = Stock("TINY", lot_size=Decimal("1E-25"))
    request = OrderRequest(inst, "BUY", Decimal("999999999999"))
    assert "cannot be checked exactly" in (check_request(request) or "")


def test_narrow_numpy_floats_read_as_their_own_shortest_repr() -> None:
    assert to_decimal(np.float32(100.01)) == Decimal("100.01")
    assert to_decimal(np.float16(0.5)) == Decimal("0.5")
    assert to_decimal(np.float64(0.1)) == Decimal("0.1")
