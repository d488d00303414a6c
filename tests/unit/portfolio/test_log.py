from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ibkrfw import Fill, Future, Side, Stock
from ibkrfw.portfolio._log import DecimalLog, FillLog


class _MyDecimal(Decimal):
    pass


_INSTRUMENTS = [Stock("AAPL"), Stock("AAPL"), Stock("MSFT"), Future("ES", expiry="202612")]
_decimals = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True),
    st.decimals(min_value=-(10**6), max_value=10**6, places=2),
    st.sampled_from([Decimal(0), Decimal("-0"), Decimal("0.00"), Decimal("1E+3"), Decimal("sNaN")]),
    st.decimals(allow_nan=False, allow_infinity=False).map(_MyDecimal),
)
_ints = st.one_of(st.integers(-(2**63), 2**63 - 1), st.integers(), st.booleans())
_fills = st.builds(
    Fill,
    _ints,
    st.sampled_from(_INSTRUMENTS),
    st.sampled_from(Side),
    _decimals,
    _decimals,
    _decimals,
    _ints,
    st.one_of(st.text(), st.just("\ud800"), st.just("SIM-1-1")),
    _decimals,
)


def _same(a: object, b: object) -> bool:
    """Equal, of the same type and, for Decimals, of the same form (sign, digits, exponent)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, Decimal):
        return str(a) == str(b)
    return a == b


def _identical(a: Fill, b: Fill) -> bool:
    fields = ("order_id", "quantity", "price", "commission", "ts_ns", "fill_id", "slippage")
    return (
        type(b) is Fill
        and a.instrument is b.instrument
        and a.side is b.side
        and all(_same(getattr(a, f), getattr(b, f)) for f in fields)
    )


@given(st.lists(_fills, max_size=40))
def test_fill_log_returns_exactly_the_fills_appended(fills: list[Fill]) -> None:
    log = FillLog()
    for fill in fills:
        log.append(fill)
    assert len(log) == len(fills)
    assert all(_identical(a, b) for a, b in zip(fills, list(log), strict=True))
    assert all(_identical(fills[i], log[i]) for i in range(len(fills)))
    assert all(_identical(fills[-i], log[-i]) for i in range(1, len(fills) + 1))
    assert all(_identical(a, b) for a, b in zip(fills[1::3], log[1::3], strict=True))


@given(st.lists(_decimals, max_size=40))
def test_decimal_log_returns_exactly_the_decimals_appended(values: list[Decimal]) -> None:
    log = DecimalLog()
    for value in values:
        log.append(value)
    assert len(log) == len(values)
    assert all(_same(a, b) for a, b in zip(values, list(log), strict=True))
    assert all(_same(values[i], log[i]) for i in range(-len(values), len(values)))
    assert all(_same(a, b) for a, b in zip(values[::2], log[::2], strict=True))


def test_fill_log_shares_the_equal_decimals_it_holds() -> None:
    log = FillLog()
    aapl = Stock("AAPL")
    for i in range(3):
        price = Decimal("101.37")  # a new object each time, as a broker makes them
        log.append(Fill(i, aapl, Side.BUY, Decimal(100), price, Decimal(0), i, f"e{i}"))
    first, *rest = log
    assert all(f.price is first.price and f.quantity is first.quantity for f in rest)
    assert [f.fill_id for f in log] == ["e0", "e1", "e2"]


def test_logs_refuse_an_index_out_of_range() -> None:
    fills, values = FillLog(), DecimalLog()
    with pytest.raises(IndexError):
        fills[0]
    values.append(Decimal(1))
    with pytest.raises(IndexError):
        values[-2]


@pytest.mark.parametrize("clone", [copy.deepcopy, lambda x: pickle.loads(pickle.dumps(x))])
def test_a_copied_log_holds_the_same_fills_and_keeps_appending_exactly(
    clone: Callable[[FillLog], FillLog],
) -> None:
    aapl, other = Stock("AAPL"), Stock("AAPL")
    log = FillLog()
    log.append(Fill(1, aapl, Side.BUY, Decimal(1), Decimal("2.50"), Decimal(0), 3, "a"))
    twin = clone(log)
    assert list(twin) == list(log)
    # new objects, some possibly at the ids the originals had: each comes back as itself
    fill = Fill(2, other, Side.SELL, Decimal(1), Decimal("2.5"), Decimal(0), 4, "b")
    twin.append(fill)
    assert _identical(fill, twin[1]) and twin[0].instrument is not other
    assert str(twin[0].price) == "2.50"


def test_an_empty_decimal_log_survives_a_copy() -> None:
    log = pickle.loads(pickle.dumps(DecimalLog()))
    log.append(Decimal("1.0"))
    assert str(copy.deepcopy(log)[0]) == "1.0"
