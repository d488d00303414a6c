"""Options in a backtest: the multiplier everywhere, and expiry (exercise, assignment, worthless).

Invariants throughout: each position equals the sum of its fills; the cash moved by exactly
what the fills say (premium times the multiplier, the strike times the delivered shares,
commissions); the final equity is the cash plus the positions at their last price.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pandas as pd
import pytest
from typing_extensions import override

from ibkrfw import (
    Context,
    Engine,
    Event,
    Option,
    OptionSettled,
    OrderRequest,
    Side,
    Stock,
    Strategy,
)
from ibkrfw.model.data import Bar
from ibkrfw.risk import Protection, StopLoss
from ibkrfw.sim import DataFrameFeed, IBKRFixedCommission, SimBroker
from ibkrfw.testing import bars_frame

AAPL = Stock("AAPL")
CALL = Option("AAPL", expiry="20240105", strike=100, right="C")
PUT = Option("AAPL", expiry="20240105", strike=100, right="P")
START = "2024-01-02"  # daily bars at midnight New York time: Jan 2 to Jan 9
NY = "America/New_York"


def frames(stock_closes: list[float], option_closes: dict[Option, list[float]]) -> Any:
    def rows(closes: list[float]) -> list[tuple[float, float, float, float]]:
        return [(c, c + 0.5, max(c - 0.5, 0.01), c) for c in closes]

    data = {AAPL: bars_frame(rows(stock_closes), start=START, tz=NY)}
    for option, closes in option_closes.items():
        data[option] = bars_frame(rows(closes), start=START, tz=NY)
    return data


class Script(Strategy):
    """Runs ``actions`` on the first bar of given days (0 = the first day), records events."""

    def __init__(self, actions: dict[int, Callable[[Context], object]]) -> None:
        self.actions = actions
        self.days: list[int] = []
        self.settled: list[OptionSettled] = []

    @override
    def on_bar(self, ctx: Context, bar: Bar) -> None:
        if bar.ts_ns in self.days:
            return
        self.days.append(bar.ts_ns)
        action = self.actions.get(len(self.days) - 1)
        if action is not None:
            action(ctx)

    @override
    def on_event(self, ctx: Context, event: Event) -> None:
        if isinstance(event, OptionSettled):
            self.settled.append(event)


def run(data: Any, actions: dict[int, Callable[[Context], object]], **kw: Any) -> Any:
    strategy = Script(actions)
    broker = SimBroker(1_000_000, commission=IBKRFixedCommission())
    result = Engine(strategy, DataFrameFeed(data), broker, **kw).run()
    return result, strategy


def check_books(result: Any, cash: float = 1_000_000) -> None:
    """Positions equal the sum of fills; cash and equity reconcile with the fills."""
    held: dict[Any, Decimal] = {}
    moved = Decimal(0)
    for fill in result.fill_list:
        held[fill.instrument] = held.get(fill.instrument, Decimal(0)) + fill.signed_quantity
        moved -= fill.signed_quantity * fill.price * fill.instrument.multiplier + fill.commission
    positions = result.positions.iloc[-1]
    for inst, quantity in held.items():
        assert positions.get(inst.id, 0) == pytest.approx(float(quantity)), inst.id
    assert result.equity["cash"].iloc[-1] == pytest.approx(cash + float(moved), abs=1e-6)


def buy(inst: Any, quantity: int, side: str = "BUY", **kw: Any) -> Any:
    return lambda ctx: ctx.submit(OrderRequest(inst, Side(side), quantity, **kw))


def test_a_long_call_in_the_money_is_exercised_into_the_stock() -> None:
    # AAPL closes at 105 on the expiry day (Jan 5): the 100 call is 5 in the money
    data = frames([99, 100, 103, 105, 104, 106], {CALL: [1.5, 2.0, 3.5, 5.0, 4.0, 6.0]})
    result, strategy = run(data, {0: buy(CALL, 2)})  # fills at the next open, 2.00
    [settled] = strategy.settled
    assert (settled.action, settled.quantity, settled.underlying_price) == ("exercised", 2, 105)
    assert "2 AAPL.20240105.C100.SMART was exercised at expiry, 5.00 in the money" in (
        settled.reason
    )
    option_fill, stock_fill = settled.fills
    assert (option_fill.side, option_fill.quantity, option_fill.price) == (Side.SELL, 2, 0)
    assert (stock_fill.instrument, stock_fill.side, stock_fill.quantity, stock_fill.price) == (
        AAPL, Side.BUY, Decimal(200), Decimal(100),
    )  # fmt: skip
    assert pd.Timestamp(settled.ts_ns, unit="ns", tz="UTC") == pd.Timestamp("2024-01-06", tz=NY)
    check_books(result)
    premium = 2 * 100 * 2.0 + 1.30  # two contracts at 2.00, and IB's 0.65 a contract
    assert result.equity["cash"].iloc[-1] == pytest.approx(1_000_000 - premium - 20_000)
    # the option's round trip lost its premium; the stock is held from the strike
    [trade] = [t for t in result.trade_list if t.instrument == CALL]
    assert float(trade.pnl) == pytest.approx(-400.0 - 1.30)
    assert result.positions.iloc[-1][AAPL.id] == 200


def test_a_short_put_in_the_money_is_assigned() -> None:
    data = frames([101, 100, 98, 96, 97, 95], {PUT: [1.0, 1.2, 2.5, 4.0, 3.0, 5.0]})
    result, strategy = run(data, {0: buy(PUT, 3, "SELL")})
    [settled] = strategy.settled
    assert (settled.action, settled.quantity) == ("assigned", -3)
    option_fill, stock_fill = settled.fills
    assert (option_fill.side, stock_fill.side, stock_fill.quantity) == (
        Side.BUY, Side.BUY, Decimal(300),
    )  # fmt: skip
    check_books(result)
    assert result.positions.iloc[-1][PUT.id] == 0


def test_an_option_out_of_the_money_expires_worthless_and_its_orders_are_cancelled() -> None:
    data = frames([99, 98, 97, 96, 97, 98], {CALL: [0.5, 0.4, 0.2, 0.05, 0.01, 0.01]})
    sell_high = buy(CALL, 2, "SELL", order_type="LMT", limit_price="5.00", tif="GTC")
    result, strategy = run(data, {0: buy(CALL, 2), 2: sell_high})
    [settled] = strategy.settled
    assert (settled.action, len(settled.fills)) == ("expired", 1)
    assert "expired worthless, out of the money on the underlying's last price 96" in (
        settled.reason
    )
    [limit] = [o for o in result.order_list if o.request.limit_price is not None]
    assert (limit.status.value, limit.reason) == (
        "CANCELLED",
        "the option AAPL.20240105.C100.SMART expired",
    )
    check_books(result)
    assert AAPL.id not in result.positions.columns or result.positions.iloc[-1][AAPL.id] == 0


def test_a_cash_settled_index_option_pays_its_intrinsic_value() -> None:
    spx = Option("SPX", expiry="20240105", strike=4700, right="C", settlement="cash")
    data = {spx: bars_frame([(c, c + 1, c - 1, c) for c in (40, 45, 60, 80, 75, 90)],
                            start=START, tz=NY)}  # fmt: skip
    result, strategy = run(data, {0: buy(spx, 1)})
    [settled] = strategy.settled
    # no SPX price in the feed: the option's own last price (80) stands in
    assert "no price of SPX was seen" in settled.reason
    [fill] = settled.fills
    assert (settled.action, fill.side, fill.price) == ("exercised", Side.SELL, Decimal(80))
    check_books(result)
    assert result.equity["cash"].iloc[-1] == pytest.approx(1_000_000 - 4500 - 1.00 + 8000)


def test_the_delivered_stock_is_protected_like_any_position() -> None:
    """Protection meets expiry: the shares an exercise delivers get their stop-loss."""
    data = frames([99, 100, 103, 105, 104, 90], {CALL: [1.5, 2.0, 3.5, 5.0, 4.0, 6.0]})
    result, strategy = run(data, {0: buy(CALL, 2)}, protection=Protection(StopLoss.percent(0.05)))
    assert strategy.settled[0].action == "exercised"
    stops = [o for o in result.order_list if o.instrument == AAPL and o.request.side is Side.SELL]
    assert stops and stops[0].request.quantity == 200
    check_books(result)


def test_commissions_and_values_count_the_multiplier() -> None:
    data = frames([99, 100, 101, 102, 101, 100], {CALL: [1.5, 2.0, 2.5, 3.0, 2.0, 1.0]})
    result, _ = run(data, {0: buy(CALL, 10), 1: buy(CALL, 10, "SELL")})
    buy_fill, sell_fill = result.fill_list
    assert (buy_fill.commission, sell_fill.commission) == (Decimal("6.50"), Decimal("6.50"))
    assert float(result.trade_list[0].pnl) == pytest.approx((2.5 - 2.0) * 1000 - 13.0)
    check_books(result)


# --- the option exposure limit, where options meet the risk rules -----------------------------
def denials(result: Any) -> list[str]:
    return [o.reason for o in result.order_list if o.status.value == "DENIED"]


LONG = Option("AAPL", expiry="20240119", strike=100, right="C")  # two weeks out at the start


def test_delta_counts_the_underlying_and_the_multiplier() -> None:
    """100 shares and two near-the-money calls (about 2 x 100 x 0.55): over 200 of delta."""
    from ibkrfw.risk import OptionExposureLimit

    data = frames([100] * 6, {LONG: [2.5] * 6})
    rule = OptionExposureLimit(max_delta=200)
    result, _ = run(
        data, {0: buy(AAPL, 100), 1: buy(LONG, 2), 2: buy(LONG, 1, "SELL")}, risk_rules=[rule]
    )
    [why] = denials(result)
    assert why.startswith("AAPL's delta would be 2") and "over the limit of 200.0" in why
    # the sale of a call (no call held: it opens a short) lowers the delta: it passes
    sold = [f for f in result.fill_list if f.instrument == LONG]
    assert [(f.side, f.quantity) for f in sold] == [(Side.SELL, 1)]
    check_books(result)


def test_notional_and_a_missing_volatility_are_denied_with_the_reason() -> None:
    from ibkrfw.risk import OptionExposureLimit

    data = frames([100] * 6, {LONG: [2.5] * 6})
    by_notional = OptionExposureLimit(max_notional=15_000)
    result, _ = run(data, {0: buy(LONG, 1), 1: buy(LONG, 1)}, risk_rules=[by_notional])
    assert denials(result) == [
        "AAPL's options notional would be 20,000.00, over the limit of 15,000.00"
    ]
    # on the first day the call has no price yet (its bar comes after the stock's), and no
    # volatility to fall back on: no delta, so no order
    result, _ = run(data, {0: buy(LONG, 1)}, risk_rules=[OptionExposureLimit(max_delta=500)])
    [why] = denials(result)
    assert "no volatility for AAPL.20240119.C100.SMART: its price is unknown" in why
    assert "OptionExposureLimit(volatility=...)" in why
    result, _ = run(
        data, {0: buy(LONG, 1)}, risk_rules=[OptionExposureLimit(max_delta=500, volatility=0.3)]
    )
    assert not denials(result)


def test_a_delta_source_comes_first_and_wrong_settings_are_refused() -> None:
    from ibkrfw import ConfigError
    from ibkrfw.risk import OptionExposureLimit

    data = frames([100] * 6, {LONG: [2.5] * 6})
    rule = OptionExposureLimit(max_delta=150, delta=lambda option, portfolio, ts: 0.9)
    result, _ = run(data, {0: buy(LONG, 2)}, risk_rules=[rule])
    assert denials(result) == [
        "AAPL's delta would be 180.0 units of the underlying, over the limit of 150.0"
    ]
    with pytest.raises(ConfigError, match="needs max_delta"):
        OptionExposureLimit()
    with pytest.raises(ConfigError, match="max_delta=-1"):
        OptionExposureLimit(max_delta=-1)
    with pytest.raises(ConfigError, match="volatility=0"):
        OptionExposureLimit(max_delta=1, volatility=0)


# --- the ready covered-call strategy ------------------------------------------------------------
def covered_call_run(closes: list[float], **kw: Any) -> Any:
    from ibkrfw.options import synthetic_option_bars
    from ibkrfw.strategies import CoveredCall

    index = pd.bdate_range("2024-01-02", periods=len(closes), tz=NY)
    stock = pd.DataFrame(
        {"open": closes, "high": [c + 0.5 for c in closes], "low": [c - 0.5 for c in closes],
         "close": closes, "volume": 1e6},
        index=index,
    )  # fmt: skip
    calls = [
        Option("AAPL", expiry=expiry, strike=strike, right="C")
        for expiry in ("20240216", "20240315", "20240419")
        for strike in (95, 100, 105, 110, 115, 120)
    ]
    data = {AAPL: stock}
    for call in calls:
        bars = synthetic_option_bars(stock, call, volatility=0.3)
        if len(bars):
            data[call] = bars
    strategy = CoveredCall(AAPL, calls, volatility=0.3, **kw)
    broker = SimBroker(1_000_000, commission=IBKRFixedCommission())
    result = Engine(strategy, DataFrameFeed(data), broker).run()
    return strategy, result


def test_a_covered_call_left_to_expire_in_the_money_is_assigned_and_the_shares_bought_again() -> (
    None
):
    rising = [100 + 0.2 * i for i in range(60)]  # the February 105 call ends 1.6 in the money
    strategy, result = covered_call_run(rising, roll_days=0, roll_delta=0.99)
    assert strategy.written and any(e.action == "assigned" for e in strategy.settled)
    assigned = next(e for e in strategy.settled if e.action == "assigned")
    assert assigned.fills[1].side is Side.SELL and assigned.fills[1].quantity == 100
    # the shares are bought back after the assignment: held again at the end
    assert result.positions.iloc[-1][AAPL.id] == 100
    # never more calls written than the shares cover
    check_books(result)
    for _, row in result.positions.iterrows():
        short = -sum(row.get(c.id, 0) for c in {w[1] for w in strategy.written})
        assert short <= 1


def test_a_covered_call_rolls_before_expiry_and_on_a_high_delta() -> None:
    strategy, result = covered_call_run([100 + 0.6 * i for i in range(60)])
    whys = [why for _, _, why in strategy.rolled]
    assert any(why.startswith("delta") for why in whys), whys
    assert not [e for e in strategy.settled if e.action == "assigned"]
    check_books(result)


def test_the_covered_call_settings_are_checked() -> None:
    from ibkrfw import ConfigError
    from ibkrfw.strategies import CoveredCall

    with pytest.raises(ConfigError, match="give a delta between 0 and 1"):
        CoveredCall(AAPL, target_delta=1.5)
    with pytest.raises(ConfigError, match="min_days=40 is past max_days=30"):
        CoveredCall(AAPL, min_days=40, max_days=30)
    with pytest.raises(ConfigError, match="is not a call"):
        CoveredCall(AAPL, [PUT])
    with pytest.raises(ConfigError, match="roll_days=25 would roll a call as soon as"):
        CoveredCall(AAPL, roll_days=25)


@pytest.mark.parametrize("kind", ["sqlite", "parquet"])
def test_option_bars_go_through_the_store_into_a_backtest(kind: str, tmp_path: Any) -> None:
    """An option's bars stored, read back as the same instrument, and traded from the store."""
    from ibkrfw.data import ParquetBarStore, SQLiteBarStore

    data = frames([99, 100, 103, 105, 104, 106], {CALL: [1.5, 2.0, 3.5, 5.0, 4.0, 6.0]})
    store = (
        SQLiteBarStore(tmp_path / "bars.sqlite")
        if kind == "sqlite"
        else ParquetBarStore(tmp_path / "bars")
    )
    with store:
        for inst, frame in data.items():
            store.write(inst, "1d", frame)
        assert store.instrument(CALL.id) == CALL
        feed = store.feed([AAPL.id, CALL.id], "1d")
        strategy = Script({0: buy(CALL, 2)})
        result = Engine(
            strategy, feed, SimBroker(1_000_000, commission=IBKRFixedCommission())
        ).run()
    assert strategy.settled[0].action == "exercised"
    check_books(result)


def test_a_notional_limit_denies_what_it_cannot_value() -> None:
    """No price of the underlying: the notional is unknown, so the order is denied, saying
    why (a NaN notional used to pass every limit)."""
    from ibkrfw.risk import OptionExposureLimit

    data = frames([100] * 6, {LONG: [2.5] * 6})
    del data[AAPL]  # the run never sees the underlying's price
    result, _ = run(data, {1: buy(LONG, 1)}, risk_rules=[OptionExposureLimit(max_notional=1e9)])
    [why] = denials(result)
    assert "no price of AAPL.SMART, the underlying of AAPL.20240119.C100.SMART" in why


def test_several_strategies_each_settle_their_own_options_at_expiry() -> None:
    # The account nets 3 long calls and 1 short call into 2 long, exercised into 200 shares.
    # Each strategy's books settle what it held: the long one gets 300 shares at the strike,
    # the short one is assigned and delivers 100; together they are the account, to the cent.
    data = frames([99, 100, 103, 105, 104, 106], {CALL: [1.5, 2.0, 3.5, 5.0, 4.0, 6.0]})
    long, short = Script({0: buy(CALL, 3)}), Script({0: buy(CALL, 1, "SELL")})
    idle = Script({})  # held none: told of none
    broker = SimBroker(1_000_000, commission=IBKRFixedCommission())
    engine = Engine({"long": long, "short": short, "idle": idle}, DataFrameFeed(data), broker)
    result = engine.run()
    # each strategy is told of its own settlement: its quantity, its side, its fills
    [settled] = long.settled
    assert (settled.action, settled.quantity) == ("exercised", 3)
    assert [(f.side, f.quantity) for f in settled.fills] == [(Side.SELL, 3), (Side.BUY, 300)]
    [assigned] = short.settled
    assert (assigned.action, assigned.quantity) == ("assigned", -1)
    assert [(f.side, f.quantity) for f in assigned.fills] == [(Side.BUY, 1), (Side.SELL, 100)]
    assert "this strategy held -1 of the account's 2" in assigned.reason
    books = engine.portfolios
    assert books["long"].quantity(AAPL) == 300 and books["long"].quantity(CALL) == 0
    assert books["short"].quantity(AAPL) == -100 and books["short"].quantity(CALL) == 0
    account = engine.portfolio
    assert account is not None and account.quantity(AAPL) == 200
    assert sum((b.cash for b in books.values()), Decimal(0)) == account.cash
    assert round(sum(b.equity for b in books.values()), 2) == round(account.equity, 2)
    # the short call lost its intrinsic value less its premium: assigned at 100, AAPL at 105
    short_part = result.strategies["short"]
    assert short_part.positions.iloc[-1][AAPL.id] == -100
    check_books(result)
    assert idle.settled == []
