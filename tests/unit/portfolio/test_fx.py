from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from ibkrfw import ConfigError, DataError, Fill, Portfolio, Side, SimClock, Stock
from ibkrfw.portfolio import FxRates

DAY = pd.Timestamp("2024-01-02", tz="UTC").value
NS_DAY = 86_400 * 10**9
SAP = Stock("SAP", currency="EUR", exchange="IBIS")
AAPL = Stock("AAPL")
D = Decimal


def _eur(*rates: float) -> pd.Series:
    index = pd.date_range("2024-01-02", periods=len(rates), freq="1D", tz="UTC")
    return pd.Series(rates, index=index)


def test_a_rate_applies_from_its_time_until_the_next_and_never_before() -> None:
    fx = FxRates({"EUR": _eur(1.10, 1.20)})
    assert fx.rate("EUR", DAY) == 1.10
    assert fx.rate("EUR", DAY + NS_DAY - 1) == 1.10
    assert fx.rate("EUR", DAY + NS_DAY) == 1.20
    assert fx.rate("EUR", DAY + 100 * NS_DAY) == 1.20
    with pytest.raises(DataError, match="no EUR rate at or before 2024-01-01"):
        fx.rate("EUR", DAY - NS_DAY)
    assert fx.rate("USD", 0) == 1.0
    assert fx.currencies == {"USD", "EUR"}
    assert fx.first_ns("EUR") == DAY


def test_rates_at_many_times_give_nan_before_the_first_rate() -> None:
    fx = FxRates({"EUR": (np.array([10, 20]), np.array([1.1, 1.2]))})
    got = fx.rates_at("EUR", np.array([5, 10, 15, 20, 25], dtype=np.int64))
    assert np.isnan(got[0])
    assert got[1:].tolist() == [1.1, 1.1, 1.2, 1.2]
    assert fx.rates_at("USD", np.array([1, 2], dtype=np.int64)).tolist() == [1.0, 1.0]


def test_an_unknown_currency_is_a_data_error_that_says_what_to_add() -> None:
    with pytest.raises(DataError, match="no exchange rate from GBP to USD: add a GBP series"):
        FxRates({"EUR": _eur(1.1)}).rate("GBP", DAY)


@pytest.mark.parametrize(
    ("series", "error", "message"),
    [
        (_eur(1.1, float("nan")), DataError, r"rate nan at 2024-01-03 .* not a positive number"),
        (_eur(1.1, -1.0), DataError, "not a positive number"),
        (_eur(1.1, 0.0), DataError, "not a positive number"),
        (pd.Series([], index=pd.DatetimeIndex([], tz="UTC"), dtype=float), DataError, "empty"),
        (
            pd.Series([1.1, 1.2], index=pd.to_datetime(["2024-01-02", "2024-01-03"])),
            DataError,
            "naive timestamps",
        ),
        (_eur(1.1, 1.2).iloc[::-1], DataError, "strictly increasing"),
        ((np.array([1, 1]), np.array([1.1, 1.2])), DataError, "strictly increasing"),
        ([1.1, 1.2], ConfigError, "pandas Series"),
        ((np.array([1, 2]), np.array([1.1])), ConfigError, "one length"),
    ],
)
def test_bad_rate_series_are_refused_with_the_reason(
    series: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        FxRates({"EUR": series})  # type: ignore[dict-item]


def test_the_base_currency_has_no_series() -> None:
    with pytest.raises(ConfigError, match="USD is the base currency"):
        FxRates({"USD": _eur(1.0)})


def _fill(inst: Stock, side: Side, qty: int, price: str, fee: str = "0", ts: int = DAY) -> Fill:
    return Fill(1, inst, side, D(qty), D(price), D(fee), ts, f"e{ts}{side}")


def test_a_foreign_fill_moves_the_balance_of_its_currency_and_equity_converts_it() -> None:
    clock = SimClock(DAY)
    pf = Portfolio(10_000, fx=FxRates({"EUR": _eur(1.10, 1.20)}), clock=clock)
    pf.apply_fill(_fill(SAP, Side.BUY, 10, "100", fee="2"))
    assert pf.cash_balances == {"USD": D(10_000), "EUR": D(-1002)}
    assert pf.balance("EUR") == D(-1002)
    assert pf.cash == D(10_000) - D(1002) * D("1.1")
    assert pf.commission == D(2) * D("1.1")
    pf.mark(SAP, 110.0)
    assert pf.equity == pytest.approx(10_000 + (-1002 + 1100) * 1.10)
    clock.advance_to(DAY + NS_DAY)  # the euro rises: the position and the loan both move
    assert pf.equity == pytest.approx(10_000 + (-1002 + 1100) * 1.20)
    assert pf.value(pf.position(SAP)) == pytest.approx(1100 * 1.20)
    assert pf.market_value == pytest.approx(1320.0)
    assert pf.gross_exposure == pytest.approx(1320.0)
    assert pf.weight(SAP) == pytest.approx(1320.0 / pf.equity)
    pf.apply_fill(_fill(SAP, Side.SELL, 10, "110", ts=DAY + NS_DAY))
    assert pf.position(SAP).realized_pnl == D(100)  # in the instrument's currency
    assert pf.balance("EUR") == D(98)
    assert pf.equity == pytest.approx(10_000 + 98 * 1.20)


def test_a_fill_whose_rate_is_unknown_leaves_the_books_untouched() -> None:
    pf = Portfolio(10_000, fx=FxRates({"EUR": _eur(1.1)}), clock=SimClock(DAY - 1))
    with pytest.raises(DataError, match="no EUR rate"):
        pf.apply_fill(_fill(SAP, Side.BUY, 10, "100", ts=DAY - 1))
    assert pf.cash_balances == {"USD": D(10_000)}
    assert pf.fills == [] and pf.position(SAP).quantity == 0
    with pytest.raises(DataError, match="no EUR rate"):
        pf.adjust_cash(D(-5), "EUR")
    assert pf.cash_balances == {"USD": D(10_000)}


def test_without_rates_a_foreign_currency_cannot_be_valued() -> None:
    pf = Portfolio(1_000)
    assert pf.rate("USD") == 1.0
    with pytest.raises(DataError, match="the account has no FxRates"):
        pf.rate("EUR")


def test_adjustments_in_another_currency_are_counted_in_base() -> None:
    pf = Portfolio(1_000, fx=FxRates({"EUR": _eur(1.25)}), clock=SimClock(DAY))
    pf.adjust_cash(D(-4), "EUR")
    pf.adjust_cash(D(-1))
    assert pf.cash_balances == {"USD": D(999), "EUR": D(-4)}
    assert pf.adjustments == D(-6)
    assert pf.cash == D(994)


def test_portfolio_and_rates_must_agree_on_the_base_and_have_a_clock() -> None:
    fx = FxRates({"EUR": _eur(1.1)})
    with pytest.raises(ConfigError, match="needs a clock"):
        Portfolio(0, fx=fx)
    with pytest.raises(ConfigError, match="convert into USD, the account's currency is CHF"):
        Portfolio(0, "CHF", fx, SimClock())


def test_base_currency_instruments_keep_the_exact_decimal_cash() -> None:
    pf = Portfolio(1_000, fx=FxRates({"EUR": _eur(1.1)}), clock=SimClock(DAY))
    pf.apply_fill(_fill(AAPL, Side.BUY, 3, "10.01", fee="0.35"))
    assert pf.cash == D("969.62")
    assert pf.cash_balances == {"USD": D("969.62")}
