"""Risk where it meets a live run: a halt's flatten through IB's protocol, against the fake TWS."""

from __future__ import annotations

from decimal import Decimal

from ibkrfw import OrderDenied, Side, Stock
from ibkrfw.risk import (
    DailyLossLimit,
    MaxOrderQuantity,
    Protection,
    StopLoss,
    TakeProfit,
    TradingHours,
)
from ibkrfw.testing import FakeTWS, LiveSession, ScriptedStrategy, bars_frame

ACME = Stock("ACME")
PLACE_ORDER = 3


def test_a_live_halt_flattens_outside_hours_a_position_larger_than_the_order_limit() -> None:
    # As the backtest's (test_risk_reductions), live: hourly bars from 09:30 New York, 200
    # bought in two orders of 100 with protective exits at IB; the fall at 15:30 trips the
    # limit outside the strategy's hours. The flatten is sent while IB has not yet answered
    # the exits' cancellations: it must reach IB all the same, as one sale of 200.
    rows = [(100, 101, 99, 100)] * 6 + [(100, 100, 90, 90), (90, 91, 89, 90), (90, 91, 89, 90)]
    frame = bars_frame(rows, start="2024-01-02 14:30", freq="1h")
    buy = lambda ctx, bar: ctx.buy(ACME, 100)  # noqa: E731
    strategy = ScriptedStrategy({0: buy, 1: buy})
    with FakeTWS(data={ACME: frame}) as tws:
        session = LiveSession(
            strategy, tws,
            risk_rules=[MaxOrderQuantity(100), TradingHours("09:30", "15:00")],
            risk_monitors=[DailyLossLimit(1_000, flatten=True)],
            protection=Protection(StopLoss.fixed(30), TakeProfit.fixed(30)),
        )  # fmt: skip
        with session:
            session.step(len(rows))
            result = session.stop()
        sales = [
            r for r in tws.messages("in", msg_id=PLACE_ORDER)
            if any(str(f).endswith(":flatten") for f in r.fields)
        ]  # fmt: skip
        with tws.market.lock:
            left = tws.market.orders.active()
    assert len(sales) == 1
    assert [h.rule for h in result.halts] == ["DailyLossLimit"] and result.halts[0].flatten
    assert [e for _, e in strategy.events if isinstance(e, OrderDenied)] == []
    fills = [(f.side, f.quantity) for f in result.fill_list]
    assert fills == [(Side.BUY, Decimal(100)), (Side.BUY, Decimal(100)), (Side.SELL, Decimal(200))]
    assert left == []  # the exits cancelled at IB, nothing working
