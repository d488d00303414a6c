"""Runs with instruments priced in another currency than the account's."""

from __future__ import annotations

from decimal import Decimal

import pandas as pd
import pytest

from ibkrfw import Bar, ConfigError, Context, DataError, Engine, FxRates, Stock
from ibkrfw.sim import DataFrameFeed, SimBroker
from ibkrfw.testing import ScriptedStrategy, bars_frame

SAP = Stock("SAP", currency="EUR", exchange="IBIS")
AAPL = Stock("AAPL")
D = Decimal

# open, high, low, close (EUR)
SAP_ROWS = [(100, 100, 100, 100), (100, 111, 99, 110), (115, 121, 114, 120), (120, 120, 120, 120)]
EURUSD = [1.10, 1.20, 1.00, 1.00]


def _fx(rates: list[float] = EURUSD, start: str = "2024-01-02") -> FxRates:
    index = pd.date_range(start, periods=len(rates), freq="1D", tz="UTC")
    return FxRates({"EUR": pd.Series(rates, index=index)})


def _run(actions: dict, fx: FxRates | None = None, **broker_kw: object):  # type: ignore[no-untyped-def, type-arg]
    script = ScriptedStrategy(actions)
    feed = DataFrameFeed(bars_frame(SAP_ROWS), SAP)
    broker = SimBroker(10_000, fx=fx if fx is not None else _fx(), **broker_kw)  # type: ignore[arg-type]
    return script, Engine(script, feed, broker).run()


def test_a_euro_stock_in_a_dollar_account_by_hand() -> None:
    seen: list[tuple[float, Decimal]] = []

    def record(ctx: Context, bar: Bar) -> None:
        seen.append((ctx.portfolio.equity, ctx.portfolio.cash))

    _, result = _run(
        {
            0: lambda ctx, bar: ctx.buy(SAP, 10),  # fills at bar 1's open: 100 EUR
            1: record,
            2: lambda ctx, bar: (record(ctx, bar), ctx.sell(SAP, 10)),  # fills at 120 EUR
            3: record,
        }
    )
    # Bar 1: EUR balance -1000, 10 SAP at 110 EUR, EURUSD 1.20 -> 10000 + 100 * 1.2
    # Bar 2: 10 SAP at 120 EUR, EURUSD 1.00 -> 10000 + 200 * 1.0
    # Bar 3: sold at 120: EUR balance +200 at 1.00
    assert result.equity["equity"].tolist() == pytest.approx([10_000, 10_120, 10_200, 10_200])
    assert result.equity["cash"].tolist() == pytest.approx([10_000, 8_800, 9_000, 10_200])
    assert [e for e, _ in seen] == pytest.approx([10_120, 10_200, 10_200])
    assert [c for _, c in seen] == [D(8800), D(9000), D(10200)]
    (trade,) = result.trade_list
    assert trade.pnl == D(200)  # in EUR
    assert result.trades["currency"].tolist() == ["EUR"]
    assert result.fills["currency"].tolist() == ["EUR", "EUR"]
    assert result.stats["Final equity"] == pytest.approx(10_200)
    assert result.base_currency == "USD"


def test_profits_and_commissions_are_counted_in_base_at_their_time() -> None:
    from ibkrfw.sim import PerShareCommission

    _, result = _run(
        {0: lambda ctx, bar: ctx.buy(SAP, 10), 1: lambda ctx, bar: ctx.sell(SAP, 10)},
        commission=PerShareCommission("0.5"),
    )
    # Buy at bar 1 (EURUSD 1.20): 5 EUR = 6 USD. Sell at bar 2 (1.00): 5 EUR = 5 USD.
    assert result.stats["Commissions"] == pytest.approx(11.0)
    (trade,) = result.trade_list
    assert trade.pnl == D(150 - 10)  # sold at 115 EUR
    assert result.stats["Profit factor"] != result.stats["Profit factor"]  # no losing trade
    # The trade's 140 EUR profit closed at EURUSD 1.00; the equity also carries the FX move
    # on the 1,005 EUR borrowed to buy it.
    assert result.stats["Final equity"] == pytest.approx(10_000 + (-1005 + 1145) * 1.0)


def test_order_target_value_converts_the_value_into_the_instruments_currency() -> None:
    script, _ = _run({0: lambda ctx, bar: ctx.order_target_value(SAP, 2_200)})
    # 2,200 USD at EURUSD 1.10 is 2,000 EUR: 20 shares at 100 EUR.
    assert [f.quantity for f in script.fills] == [D(20)]


def test_a_foreign_instrument_without_rates_is_refused_when_the_run_starts() -> None:
    feed = DataFrameFeed(bars_frame(SAP_ROWS), SAP)
    with pytest.raises(ConfigError, match=r"SAP\.IBIS is priced in EUR and the account in USD"):
        Engine(ScriptedStrategy(), feed, SimBroker(10_000)).run()


def test_a_fill_before_the_first_rate_stops_the_run_with_a_data_error() -> None:
    with pytest.raises(DataError, match="no EUR rate at or before 2024-01-03"):
        _run({0: lambda ctx, bar: ctx.buy(SAP, 1)}, fx=_fx([1.0], start="2024-01-04"))


def test_sizing_before_the_first_rate_is_denied_with_the_reason() -> None:
    script, result = _run(
        {0: lambda ctx, bar: ctx.order_target_value(SAP, 1_000)}, fx=_fx([1.0], start="2024-01-05")
    )
    (denial,) = [e for _, e in script.events]
    assert denial.rule == "sizing"
    assert "no EUR rate at or before" in denial.reason
    assert result.order_list[0].status.name == "DENIED"


def test_a_cash_account_converts_what_a_foreign_order_costs() -> None:
    script, _ = _run({0: lambda ctx, bar: ctx.buy(SAP, 95)}, account="cash")
    (refusal,) = [e for _, e in script.events if type(e).__name__ == "OrderDenied"]
    # 95 x 100 EUR at EURUSD 1.10 is 10,450 USD.
    assert refusal.reason == (
        "insufficient cash: the order needs 10,450.00 USD, the account has 10,000.00 USD"
    )


def test_a_margin_check_counts_foreign_exposure_in_base() -> None:
    script, _ = _run({0: lambda ctx, bar: ctx.buy(SAP, 190)})
    (refusal,) = [e for _, e in script.events if type(e).__name__ == "OrderDenied"]
    # 190 x 100 EUR at EURUSD 1.10 is 20,900 USD of exposure, which needs 10,450 of margin
    # at 50 %; the account has 10,000. In euros (19,000: 9,500) it would have passed.
    assert "would need 10,450.00 USD of initial margin" in refusal.reason
    assert "the equity is 10,000.00 USD" in refusal.reason


def test_borrow_fees_of_a_foreign_short_are_charged_in_its_currency() -> None:
    _, result = _run({0: lambda ctx, bar: ctx.sell(SAP, 100)}, borrow_rate=0.036)
    assert result.cash_adjustments, "a short held overnight pays a borrow fee"
    assert {a.currency for a in result.cash_adjustments} == {"EUR"}
    fees = [(a.ts_ns, a.amount) for a in result.cash_adjustments]
    fx = _fx()
    expected = sum(float(amount) * fx.rate("EUR", ts) for ts, amount in fees)
    assert result.stats["Cash adjustments"] == pytest.approx(expected)
    assert result.stats["Cash adjustments"] < 0


def test_two_currencies_in_one_run_mark_each_at_its_own_rate() -> None:
    script = ScriptedStrategy({0: lambda ctx, bar: (ctx.buy(SAP, 10), ctx.buy(AAPL, 10))})
    feeds = [
        DataFrameFeed(bars_frame(SAP_ROWS), SAP),
        DataFrameFeed(bars_frame([(50, 50, 50, 50)] * 4), AAPL),
    ]
    result = Engine(script, feeds, SimBroker(10_000, fx=_fx())).run()
    # Bar 1: USD 10000 - 500 + 10 x 50; EUR -1000 + 10 x 110 at 1.20.
    assert result.equity["equity"].tolist() == pytest.approx([10_000, 10_120, 10_200, 10_200])
