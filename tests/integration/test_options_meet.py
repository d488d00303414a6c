"""Options where features meet: expiry and working orders, cash accounts, results on disk.

Found by the issue-23 review; each test pins a case a user met. The books reconcile
throughout (each position is the sum of its fills; the cash moved by what the fills say).
"""

from __future__ import annotations

from typing import Any

import pytest

from ibkrfw import Engine, OrderRequest, Side
from ibkrfw.sim import DataFrameFeed, IBKRFixedCommission, SimBroker

from .test_options_backtest import AAPL, CALL, Script, buy, check_books, frames, run


def test_an_order_left_working_on_an_option_is_cancelled_at_expiry_not_filled_after() -> None:
    """Bought on the expiry day's bar, the market order would fill at the next open: too late."""
    data = frames([99, 100, 103, 105, 104, 106], {CALL: [1.5, 2.0, 3.5, 5.0, 4.0, 6.0]})
    result, strategy = run(data, {3: buy(CALL, 1)})  # Jan 5, the expiry day, before 16:00
    assert [f for f in result.fill_list if f.instrument == CALL] == []
    [order] = result.order_list
    assert (order.status.value, order.reason) == (
        "CANCELLED",
        "the option AAPL.20240105.C100.SMART expired",
    )
    assert strategy.settled == []
    check_books(result)


def test_an_order_on_an_option_already_expired_is_rejected_saying_so() -> None:
    data = frames([99, 100, 103, 105, 104, 106], {CALL: [1.5, 2.0, 3.5, 5.0, 4.0, 6.0]})
    result, _ = run(data, {4: buy(CALL, 1, "SELL")})  # Jan 6: the Jan 5 call is gone
    [order] = result.order_list
    assert order.status.value == "REJECTED"
    assert order.reason is not None
    assert "AAPL.20240105.C100.SMART expired at 16:00 on 2024-01-05 (America/New_York)" in (
        order.reason
    )
    assert result.fill_list == []
    check_books(result)


# --- a cash account writes covered calls, as IB's do ----------------------------------------
def cash_run(data: Any, actions: dict[int, Any]) -> Any:
    strategy = Script(actions)
    broker = SimBroker(1_000_000, commission=IBKRFixedCommission(), account="cash")
    return Engine(strategy, DataFrameFeed(data), broker).run(), strategy


def test_a_cash_account_writes_a_call_covered_by_the_shares_held() -> None:
    data = frames([99, 100, 103, 105, 104, 106], {CALL: [1.5, 2.0, 3.5, 5.0, 4.0, 6.0]})
    result, strategy = cash_run(data, {0: buy(AAPL, 200), 1: buy(CALL, 2, "SELL")})
    assert [o.status.value for o in result.order_list] == ["FILLED", "FILLED"]
    [settled] = strategy.settled  # 5 in the money at expiry: assigned, the shares delivered
    assert (settled.action, settled.fills[1].quantity) == ("assigned", 200)
    check_books(result)
    assert result.positions.iloc[-1][AAPL.id] == 0


def test_a_cash_account_refuses_a_call_the_shares_do_not_cover_saying_how_many_it_needs() -> None:
    data = frames([99, 100, 103, 105, 104, 106], {CALL: [1.5, 2.0, 3.5, 5.0, 4.0, 6.0]})
    result, _ = cash_run(data, {0: buy(AAPL, 150), 1: buy(CALL, 2, "SELL"), 2: buy(CALL, 3)})
    written = result.order_list[1]
    assert written.status.value == "DENIED"
    assert written.reason == (
        "a cash account writes only covered calls: 2 AAPL.20240105.C100.SMART written would "
        "need 200 shares of AAPL, and 150 are held"
    )
    check_books(result)


def test_a_cash_account_keeps_the_shares_that_cover_its_calls() -> None:
    data = frames([99, 100, 103, 105, 104, 106], {CALL: [1.5, 2.0, 3.5, 5.0, 4.0, 6.0]})
    actions = {0: buy(AAPL, 200), 1: buy(CALL, 1, "SELL"), 2: buy(AAPL, 150, "SELL")}
    result, _ = cash_run(data, actions)
    sold = result.order_list[2]
    assert (sold.status.value, sold.reason) == (
        "DENIED",
        "a cash account keeps the shares that cover its written calls: selling 150 of "
        "AAPL.SMART would leave 50, and the calls need 100",
    )
    check_books(result)


def test_an_underlying_listed_otherwise_is_named_in_the_denial_with_the_fix() -> None:
    """The stock with a primary exchange is not the option's default underlying: say so."""
    from ibkrfw import Stock
    from ibkrfw.risk import OptionExposureLimit
    from ibkrfw.testing import bars_frame

    from .test_options_backtest import LONG, NY, START

    nasdaq = Stock("AAPL", primary_exchange="NASDAQ")
    data = {
        nasdaq: bars_frame([(100, 100.5, 99.5, 100)] * 6, start=START, tz=NY),
        LONG: bars_frame([(2.5, 3.0, 2.0, 2.5)] * 6, start=START, tz=NY),
    }
    result, _ = run(data, {1: buy(LONG, 1)}, risk_rules=[OptionExposureLimit(max_delta=500)])
    [order] = result.order_list
    assert order.reason is not None
    assert "OptionExposureLimit(underlyings={'AAPL': ...})" in order.reason
    rule = OptionExposureLimit(max_delta=500, underlyings={"AAPL": nasdaq})
    result, _ = run(data, {1: buy(LONG, 1)}, risk_rules=[rule])
    assert [o.status.value for o in result.order_list] == ["FILLED"]


def test_two_classes_of_one_expiry_and_strike_trade_in_one_run() -> None:
    """SPX and SPXW both list the third Friday: two contracts, two ids, two positions."""
    from ibkrfw import Option
    from ibkrfw.testing import bars_frame

    from .test_options_backtest import NY, START

    monthly = Option("SPX", expiry="20240119", strike=4700, right="C", settlement="cash")
    weekly = Option(
        "SPX", expiry="20240119", strike=4700, right="C", settlement="cash", trading_class="SPXW"
    )
    assert monthly.id != weekly.id
    assert weekly.id == "SPX.20240119.C4700.SPXW.SMART"
    rows = [(40.0, 41.0, 39.0, 40.0)] * 6
    data = {o: bars_frame(rows, start=START, tz=NY) for o in (monthly, weekly)}
    result, _ = run(data, {1: buy(monthly, 1), 2: buy(weekly, 2, "SELL")})
    last = result.positions.iloc[-1]
    assert (last[monthly.id], last[weekly.id]) == (1, -2)
    check_books(result)


def test_a_cash_account_rolls_a_call_only_once_the_buy_back_filled() -> None:
    """A buy-back still working covers nothing: IB's cash account would be short the call."""
    from .test_options_backtest import LONG

    data = frames([99, 100, 101, 100, 99, 100], {CALL: [1.5] * 6, LONG: [2.5] * 6})

    def roll(ctx: Any) -> None:
        ctx.submit(OrderRequest(CALL, Side.BUY, 1, order_type="LMT", limit_price="0.50"))
        ctx.submit(OrderRequest(LONG, Side.SELL, 1))

    result, _ = cash_run(data, {0: buy(AAPL, 100), 1: buy(CALL, 1, "SELL"), 2: roll})
    written = result.order_list[-1]
    assert written.status.value == "DENIED"
    assert written.reason is not None
    assert written.reason.endswith(
        "need 200 shares of AAPL, and 100 are held; a call being bought back covers nothing "
        "until it is filled"
    )
    check_books(result)


def test_an_index_option_written_by_hand_is_cash_settled_as_ib_reads_it() -> None:
    """Option("SPX", ...) must be the key IB's SPX contract reads back as, and never deliver."""
    from ibkrfw import ConfigError, Option
    from ibkrfw.ibkr.translate import from_ib_contract, to_ib_contract
    from ibkrfw.testing import bars_frame

    from .test_options_backtest import NY, START

    spx = Option("SPX", expiry="20240105", strike=4700, right="C")
    weekly = Option("SPX", expiry="20240105", strike=4700, right="C", trading_class="SPXW")
    assert (spx.settlement, weekly.settlement) == ("cash", "cash")
    assert from_ib_contract(to_ib_contract(spx)) == spx
    assert Option("AAPL", expiry="20240105", strike=100, right="C").settlement == "physical"
    with pytest.raises(ConfigError, match="SPX options are cash-settled"):
        Option("SPX", expiry="20240105", strike=4700, right="C", settlement="physical")
    data = {spx: bars_frame([(c, c + 1, c - 1, c) for c in (40, 45, 60, 80, 75, 90)],
                            start=START, tz=NY)}  # fmt: skip
    result, strategy = run(data, {0: buy(spx, 1)})
    [settled] = strategy.settled
    assert [f.instrument for f in settled.fills] == [spx]  # closed at its value, no shares
    check_books(result)
