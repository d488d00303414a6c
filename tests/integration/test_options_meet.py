"""Options where features meet: expiry and working orders, cash accounts, results on disk.

Found by the issue-23 review; each test pins a case a user met. The books reconcile
throughout (each position is the sum of its fills; the cash moved by what the fills say).
"""

from __future__ import annotations

from .test_options_backtest import CALL, buy, check_books, frames, run


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
