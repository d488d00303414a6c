from __future__ import annotations

import math
from decimal import Decimal

import pytest

from ibkrfw import Bar, ConfigError, Order, OrderRequest, OrderStatus, Quote, Side, SimClock, Stock
from ibkrfw.model import OrderFilled
from ibkrfw.sim import (
    FixedBpsSlippage,
    HalfSpreadSlippage,
    SimBroker,
    SquareRootImpactSlippage,
)

X = Stock("X")
BAR = Bar(X, 10, 100.0, 101.0, 99.0, 100.5, 10_000.0)


def test_fixed_bps_moves_against_the_trader() -> None:
    model = FixedBpsSlippage(10)
    assert model.adjust(Side.BUY, 100.0, 1, BAR, None) == pytest.approx(100.1)
    assert model.adjust(Side.SELL, 100.0, 1, BAR, None) == pytest.approx(99.9)


def test_half_spread_uses_the_quote_when_there_is_one() -> None:
    model = HalfSpreadSlippage(spread_bps=20)
    assert model.adjust(Side.BUY, 100.0, 1, BAR, None) == pytest.approx(100.1)
    quote = Quote(X, 5, 99.96, 100.04, 100.0, 100.0)
    assert model.adjust(Side.SELL, 100.0, 1, BAR, quote) == pytest.approx(99.96)


def test_square_root_impact_scales_with_participation_and_volatility() -> None:
    fixed = SquareRootImpactSlippage(1.0, volatility=0.02)
    # 2 % * sqrt(400 / 10,000) = 0.4 %
    assert fixed.adjust(Side.BUY, 100.0, 400, BAR, None) == pytest.approx(100.4)
    estimated = SquareRootImpactSlippage(1.0)
    sigma = math.log(101 / 99) / (2 * math.sqrt(math.log(2)))
    assert estimated.adjust(Side.SELL, 100.0, 100, BAR, None) == pytest.approx(
        100 * (1 - sigma * 0.1)
    )
    unknown = BAR._replace(volume=float("nan"))
    assert estimated.adjust(Side.BUY, 100.0, 100, unknown, None) == 100.0


@pytest.mark.parametrize(
    "build",
    [
        lambda: FixedBpsSlippage(-1),
        lambda: HalfSpreadSlippage(float("nan")),
        lambda: SquareRootImpactSlippage(volatility=-0.1),
    ],
)
def test_bad_parameters(build: object) -> None:
    with pytest.raises(ConfigError):
        build()  # type: ignore[operator]


def test_broker_uses_the_latest_quote_for_the_spread() -> None:
    events: list[object] = []
    broker = SimBroker(slippage=HalfSpreadSlippage(spread_bps=0))
    clock = SimClock(5)
    broker.start(clock, events.append)
    broker.on_quote(Quote(X, 5, 99.9, 100.1, 1.0, 1.0))
    request = OrderRequest.market(X, "BUY", 10)
    broker.submit(Order(1, request, OrderStatus.PENDING_SUBMIT, 5, 5))
    clock.advance_to(10)
    broker.on_bar(BAR)
    (fill,) = [e.fill for e in events if isinstance(e, OrderFilled)]
    assert fill.price == Decimal("100.10")  # the open plus half the quoted spread
