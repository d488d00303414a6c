"""Covered calls on ACME: 100 shares, a 30-delta call written 20 to 50 days out, rolled.

Run it with ``python examples/covered_call.py [--years 2]``. The shipped sample data has
no options, so their bars are priced with Black-Scholes from ACME's own (at a constant
25 % volatility: :func:`~ibkrfw.options.synthetic_option_bars`) for a monthly chain (third
Fridays; strikes every 2.50 from 80 % to 125 % of the price when each expiry is listed, 60
days before). The ready :class:`~ibkrfw.strategies.CoveredCall` strategy then:

* buys 100 shares, and buys them again after an assignment takes them;
* writes the call nearest 0.30 delta among those 20 to 50 days from expiry;
* rolls it (buys it back, writes the next) 5 days before expiry, or once its delta reaches
  0.80;

with IB's commissions (0.65 a contract, 0.005 a share) and an
:class:`~ibkrfw.risk.OptionExposureLimit` of 100 units of delta.
It prints what happened and compares with holding the shares alone. The test suite runs it.
"""

from __future__ import annotations

import argparse
import datetime as dt

import pandas as pd

from ibkrfw import Context, Engine, Option, RunResult, Stock, Strategy
from ibkrfw.data import load_sample
from ibkrfw.model.data import Bar
from ibkrfw.options import synthetic_option_bars
from ibkrfw.risk import OptionExposureLimit
from ibkrfw.sim import DataFrameFeed, IBKRFixedCommission, SimBroker
from ibkrfw.strategies import CoveredCall

ACME = Stock("ACME")
VOLATILITY = 0.25


def third_fridays(first: dt.date, last: dt.date) -> list[dt.date]:
    """The third Friday of each month from ``first``'s to ``last``'s."""
    found = []
    year, month = first.year, first.month
    while (year, month) <= (last.year, last.month):
        day = dt.date(year, month, 1)
        day += dt.timedelta(days=(4 - day.weekday()) % 7 + 14)
        found.append(day)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return found


def chain_bars(stock: pd.DataFrame) -> dict[Option, pd.DataFrame]:
    """A monthly chain of calls over ``stock``'s dates, with Black-Scholes bars."""
    dates = stock.index.tz_convert("America/New_York").date
    data: dict[Option, pd.DataFrame] = {}
    for expiry in third_fridays(dates[0], dates[-1]):
        listed = max(dates[0], expiry - dt.timedelta(days=60))
        price = float(stock["close"][dates >= listed].iloc[0])
        low, high = round(price * 0.8 / 2.5) * 2.5, round(price * 1.25 / 2.5) * 2.5
        strike = low
        while strike <= high:
            call = Option("ACME", expiry=f"{expiry:%Y%m%d}", strike=strike, right="C")
            bars = synthetic_option_bars(stock, call, volatility=VOLATILITY, listed_days=60)
            if len(bars):
                data[call] = bars
            strike += 2.5
    return data


class HoldShares(Strategy):
    """The comparison: the same 100 shares, no calls."""

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        if not ctx.position(ACME).quantity and not ctx.open_orders():
            ctx.buy(ACME, 100)


def backtest(years: int) -> tuple[CoveredCall, RunResult, RunResult]:
    frame = load_sample()
    stock = frame[frame["symbol"] == "ACME"].set_index("timestamp")
    stock = stock[stock.index < stock.index[0] + pd.DateOffset(years=years)]
    calls = chain_bars(stock)
    strategy = CoveredCall(ACME, list(calls), volatility=VOLATILITY)
    broker = SimBroker(100_000, commission=IBKRFixedCommission())
    feed = DataFrameFeed({ACME: stock, **calls})
    limit = OptionExposureLimit(max_delta=100, volatility=VOLATILITY)
    result = Engine(strategy, feed, broker, risk_rules=[limit]).run()
    held = Engine(
        HoldShares(),
        DataFrameFeed({ACME: stock}),
        SimBroker(100_000, commission=IBKRFixedCommission()),
    ).run()
    return strategy, result, held


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--years", type=int, default=2, help="years of sample data (1 to 10)")
    args = parser.parse_args(argv)
    if not 1 <= args.years <= 10:
        parser.error(f"--years {args.years}: the sample data has 1 to 10 years")
    strategy, result, held = backtest(args.years)
    option_fills = [f for f in result.fill_list if isinstance(f.instrument, Option)]
    premium = sum(
        float(f.signed_quantity * f.price * f.instrument.multiplier) for f in option_fills
    )
    denied = [o for o in result.order_list if o.status.value == "DENIED"]
    assigned = [e for e in strategy.settled if e.action == "assigned"]
    expired = [e for e in strategy.settled if e.action == "expired"]
    print(f"{len(strategy.written)} calls written, {len(strategy.rolled)} rolled, "
          f"{len(assigned)} assigned, {len(expired)} expired worthless")  # fmt: skip
    print(f"net premium {-premium:,.2f}, commissions {float(result.stats['Commissions']):,.2f}, "
          f"{len(denied)} order(s) denied by the delta limit")  # fmt: skip
    for when, call, why in strategy.rolled[:3]:
        print(f"  rolled {call.id} on {pd.Timestamp(when, tz='UTC'):%Y-%m-%d}: {why}")
    ours, theirs = result.stats, held.stats
    print(f"covered calls: total return {ours['Total return [%]']:.1f} %, "
          f"max drawdown {ours['Max drawdown [%]']:.1f} %")  # fmt: skip
    print(f"shares alone:  total return {theirs['Total return [%]']:.1f} %, "
          f"max drawdown {theirs['Max drawdown [%]']:.1f} %")  # fmt: skip


if __name__ == "__main__":
    main()
