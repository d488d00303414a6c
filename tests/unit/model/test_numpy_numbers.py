"""NumPy scalars, which history arrays and DataFrames hand out, are numbers like any other."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import attrs
import numpy as np
import pytest

from ibkrfw import (
    Bar,
    Context,
    DataFeed,
    Engine,
    Instrument,
    OrderError,
    OrderRequest,
    Stock,
    Strategy,
)
from ibkrfw.model._decimal import to_decimal
from ibkrfw.sim import SimBroker
from ibkrfw.testing import bars_frame


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (np.float64(0.1), Decimal("0.1")),
        (np.float64(101.25), Decimal("101.25")),
        (np.int64(300), Decimal(300)),
        (np.int32(-5), Decimal(-5)),
        (np.float32(0.5), Decimal("0.5")),
    ],
)
def test_numpy_scalars_convert_like_python_numbers(value: object, expected: Decimal) -> None:
    assert to_decimal(value) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [np.float64("nan"), np.float64("inf"), np.bool_(True)])
def test_bad_numpy_scalars_are_order_errors(value: object) -> None:
    with pytest.raises(OrderError):
        to_decimal(value)  # type: ignore[arg-type]


def test_instrument_rounding_takes_numpy_scalars() -> None:
    acme = Stock("ACME")
    assert acme.round_price(np.float64(100.004)) == Decimal("100.00")
    assert acme.round_quantity(np.float64(12.7)) == Decimal(12)
    request = OrderRequest(acme, "BUY", np.int64(10), limit_price=np.float64(99.5))  # type: ignore[arg-type]
    assert (request.quantity, request.limit_price) == (Decimal(10), Decimal("99.5"))


class _ListFeed(DataFeed):
    def __init__(self, instrument: Instrument, bars: list[Bar]) -> None:
        self._instrument, self._bars = instrument, bars

    @property
    def instruments(self) -> tuple[Instrument, ...]:
        return (self._instrument,)

    def __iter__(self) -> Iterator[Bar]:
        return iter(self._bars)


@attrs.define
class _LimitAtLastClose(Strategy):
    """Buy with a limit read straight from the history array (an np.float64)."""

    sent: bool = False

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        if not self.sent:
            closes = ctx.history(bar.instrument, 1).close
            ctx.buy(bar.instrument, np.int64(10), limit_price=closes[-1])  # type: ignore[arg-type]
            self.sent = True


def test_a_backtest_fed_numpy_values_fills() -> None:
    acme = Stock("ACME")
    frame = bars_frame([(100, 101, 99, 100), (100, 101, 99.5, 100.5), (100, 101, 99, 100)])
    bars = [  # a hand-built feed whose bars hold NumPy scalars, as iterrows gives them
        Bar(acme, ts, row.open, row.high, row.low, row.close, row.volume)
        for ts, row in zip(frame.index.asi8.tolist(), frame.itertuples(), strict=True)
    ]
    result = Engine(_LimitAtLastClose(), _ListFeed(acme, bars), SimBroker(10_000)).run()
    assert list(result.fills["price"]) == [100.0]
    assert list(result.fills["quantity"]) == [10.0]
