"""Each pre-trade limit in a backtest that breaches it: the denial, and nothing sent past it."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pandas as pd
import pytest

from ibkrfw import (
    ConfigError,
    Engine,
    OrderDenied,
    OrderRequest,
    OrderType,
    Portfolio,
    RiskRule,
    Side,
    Stock,
)
from ibkrfw.risk import (
    ExposureLimit,
    MaxOrderNotional,
    MaxPosition,
    OrderRateLimit,
    RestrictedList,
    TradingHours,
)
from ibkrfw.sim import DataFrameFeed, SimBroker
from ibkrfw.testing import RecordingBroker, ScriptedStrategy, bars_frame

ACME, BOLT = Stock("ACME"), Stock("BOLT")
ROWS = [(100, 101, 99, 100)] * 8  # a flat market at 100


Action = Callable[[Any, Any], object]


def run(actions: dict[int, Action], rule: RiskRule, *, both: bool = False, freq: str = "1D"):
    frame = bars_frame(ROWS, freq=freq, start="2024-01-02 14:30")
    feeds = [DataFrameFeed(frame, ACME)] + ([DataFrameFeed(frame, BOLT)] if both else [])
    broker = RecordingBroker(SimBroker(100_000))
    strategy = ScriptedStrategy(actions)
    result = Engine(strategy, feeds, broker, risk_rules=[rule]).run()
    denials = [e for _, e in strategy.events if isinstance(e, OrderDenied)]
    return result, broker, denials


def buy(quantity: int, inst: Stock = ACME) -> Action:
    return lambda ctx, bar: ctx.buy(inst, quantity) if bar.instrument == inst else None


def test_max_position_by_quantity_lets_the_reduction_through() -> None:
    _, broker, denials = run(
        {0: buy(60), 1: buy(60), 2: lambda ctx, bar: ctx.sell(ACME, 30)}, MaxPosition(quantity=100)
    )
    assert [o.request.quantity for o in broker.submitted] == [60, 30]  # the second buy never left
    assert [d.rule for d in denials] == ["MaxPosition"]
    assert "would be 120, over the limit of 100" in denials[0].reason


def test_max_position_by_share_of_equity() -> None:
    _, broker, denials = run({0: buy(300), 1: buy(100)}, MaxPosition(percent_of_equity=0.35))
    # 300 at 100 is 30 % of 100,000; 400 would be 40 %
    assert [o.request.quantity for o in broker.submitted] == [300]
    assert "40.0% of equity, over the limit of 35.0%" in denials[0].reason


def test_max_order_notional() -> None:
    _, broker, denials = run({0: buy(40), 1: buy(60)}, MaxOrderNotional(5_000))
    assert [o.request.quantity for o in broker.submitted] == [40]
    assert "worth 6,000.00, over the limit of 5,000.00" in denials[0].reason


def test_gross_and_net_exposure_and_leverage() -> None:
    gross = ExposureLimit(max_gross=15_000)
    _, broker, denials = run({0: buy(100), 1: buy(100, BOLT)}, gross, both=True)
    assert [o.instrument for o in broker.submitted] == [ACME]
    assert "gross exposure would be 20,000.00" in denials[0].reason
    # long ACME and short BOLT: the net stays 0, so a net limit lets the hedge through
    hedge = {0: buy(100), 1: lambda c, b: c.sell(BOLT, 100) if b.instrument == BOLT else None}
    _, broker, denials = run(hedge, ExposureLimit(max_net=15_000), both=True)
    assert len(broker.submitted) == 2 and denials == []
    _, broker, denials = run({0: buy(1_500)}, ExposureLimit(max_leverage=1.0))
    assert broker.submitted == [] and "leverage would be 1.50" in denials[0].reason


def test_restricted_list_allows_getting_out() -> None:
    rule = RestrictedList(symbols=["acme"], reason="earnings blackout")
    _, broker, denials = run({0: buy(10)}, rule)
    assert broker.submitted == [] and "restricted list (earnings blackout)" in denials[0].reason
    # held before the restriction: selling is allowed
    rule_after = RestrictedList([ACME])
    _, broker, denials = run({0: buy(10)}, MaxPosition(quantity=100))
    assert len(broker.submitted) == 1
    decision = rule_after.check(OrderRequest(ACME, Side.SELL, 5), _Holding(10), 0)
    assert decision.approved


class _Holding:
    """A portfolio view holding ``quantity`` of ACME, no orders (enough for RestrictedList)."""

    def __init__(self, quantity: int) -> None:
        self.held = Decimal(quantity)

    def quantity(self, instrument: Stock) -> Decimal:
        return self.held

    def working(self, instrument: Stock) -> tuple[Decimal, Decimal]:
        return Decimal(0), Decimal(0)


def test_trading_hours_in_the_exchange_zone() -> None:
    # minute bars from 14:30 UTC = 09:30 New York; the window opens at 09:35
    rule = TradingHours("09:35", "16:00", "America/New_York")
    _, broker, denials = run({0: buy(1), 6: buy(1)}, rule, freq="1min")
    assert len(broker.submitted) == 1  # 09:30 refused, 09:36 allowed
    assert "outside the trading window 09:35-16:00" in denials[0].reason
    assert "(it is Tue 09:30 there)" in denials[0].reason
    ts = int(pd.Timestamp("2024-01-06 15:00", tz="America/New_York").value)  # a Saturday
    assert not rule.check(OrderRequest(ACME, Side.BUY, 1), Portfolio(), ts).approved
    overnight = TradingHours("18:00", "02:00", "UTC")
    ts_night = int(pd.Timestamp("2024-01-02 23:00", tz="UTC").value)
    assert overnight.check(OrderRequest(ACME, Side.BUY, 1), None, ts_night).approved  # type: ignore[arg-type]


def test_order_rate_limit() -> None:
    many = {0: lambda ctx, bar: [ctx.buy(ACME, 1) for _ in range(5)]}
    _, broker, denials = run(many, OrderRateLimit(3, 60))
    assert len(broker.submitted) == 3 and len(denials) == 2
    assert "3 orders within 60 s already" in denials[0].reason


def test_limit_orders_are_valued_at_their_limit_and_no_price_is_a_denial() -> None:
    rule = MaxOrderNotional(1_000)
    request = OrderRequest(ACME, Side.BUY, 10, OrderType.LIMIT, limit_price=Decimal("150"))

    class NoPrice(_Holding):
        base_currency = "USD"

        def __init__(self) -> None:
            super().__init__(0)

        def price(self, instrument: Stock) -> float:
            return float("nan")

    assert "worth 1,500.00" in rule.check(request, NoPrice(), 0).reason  # type: ignore[arg-type]
    market = OrderRequest(ACME, Side.BUY, 1)
    assert "no price of ACME.SMART yet" in rule.check(market, NoPrice(), 0).reason  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "make",
    [
        lambda: MaxPosition(),
        lambda: MaxPosition(quantity=0),
        lambda: MaxOrderNotional(-1),
        lambda: ExposureLimit(),
        lambda: TradingHours("9:60", "16:00"),
        lambda: TradingHours("10:00", "10:00"),
        lambda: TradingHours("09:30", "16:00", "Mars/Olympus"),
        lambda: OrderRateLimit(0, 1),
    ],
)
def test_bad_limits_are_refused(make: Callable[[], object]) -> None:
    with pytest.raises(ConfigError):
        make()


def test_orders_sent_before_any_fill_count_together() -> None:
    twice = {0: lambda ctx, bar: [ctx.buy(ACME, 60), ctx.buy(ACME, 60)]}
    _, broker, denials = run(twice, MaxPosition(quantity=100))
    assert [o.request.quantity for o in broker.submitted] == [60]
    assert "would be 120" in denials[0].reason


def test_a_brackets_exits_do_not_count_as_a_short() -> None:
    def bracket(ctx: Any, bar: Any) -> None:
        ctx.bracket(ACME, "BUY", 100, take_profit=Decimal(110), stop_loss=Decimal(90))

    _, broker, denials = run({0: bracket}, MaxPosition(quantity=100))
    assert denials == [] and len(broker.submitted) == 3
    gross = ExposureLimit(max_gross=10_000)  # 100 at 100: exactly the limit
    _, broker, denials = run({0: bracket}, gross)
    assert denials == [] and len(broker.submitted) == 3


def test_margin_check_at_reg_t() -> None:
    from ibkrfw.risk import MarginCheck

    # 100,000 of equity covers 200,000 of gross exposure at 50 %
    _, broker, denials = run({0: buy(1_500), 1: buy(600)}, MarginCheck(0.5))
    assert [o.request.quantity for o in broker.submitted] == [1_500]
    assert "initial margin of 105,000.00 (50% of a gross exposure of 210,000.00)" in (
        denials[0].reason
    )
