"""A trend follower on a continuous future: signals from the back-adjusted series, orders in
the real months, rolled five days before each last trading day.

Run it with ``python examples/futures_trend.py [--months 8]``. The bars are synthetic and
deterministic (:func:`~ibkrfw.data.synthetic_future_bars`): quarterly ES months expiring on
the third Friday of March, June, September and December, each 15 points above the one
before. The ready :class:`~ibkrfw.strategies.FuturesTrend` strategy:

* reads the closes of the months it held, back-adjusted by difference
  (:meth:`FutureRoller.closes <ibkrfw.strategies.FutureRoller.closes>`);
* holds one contract long while the 20-bar average of those closes is above the 60-bar one,
  one short below;
* trades the month its :class:`~ibkrfw.strategies.FutureRoller` says is current, and rolls
  the position (one closing and one opening order, sent together or not at all) by
  :class:`~ibkrfw.data.DaysBeforeExpiry` (5);

with IB's commissions for futures. It prints each roll, the run's figures and what is held
at the end. The test suite runs it.
"""

from __future__ import annotations

import argparse
import datetime as dt
from collections import Counter

from ibkrfw import Engine, RunResult
from ibkrfw.data import synthetic_future_bars
from ibkrfw.sim import DataFrameFeed, IBKRFixedCommission, SimBroker
from ibkrfw.strategies import FuturesTrend


def quarterly_expiries(first: dt.date, count: int) -> tuple[str, ...]:
    """The third Fridays of ``count`` quarter months (Mar, Jun, Sep, Dec) after ``first``."""
    found: list[str] = []
    year, month = first.year, first.month
    while len(found) < count:
        if month % 3 == 0:
            day = dt.date(year, month, 1)
            day += dt.timedelta(days=(4 - day.weekday()) % 7 + 14)
            if day > first:
                found.append(f"{day:%Y%m%d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return tuple(found)


def backtest(months: int) -> tuple[FuturesTrend, RunResult]:
    chain = synthetic_future_bars(
        "ES", quarterly_expiries(dt.date(2026, 9, 1), months), start="2026-09-01"
    )
    strategy = FuturesTrend(list(chain), fast=20, slow=60, roll_days=5)
    broker = SimBroker(200_000, commission=IBKRFixedCommission())
    result = Engine(strategy, DataFrameFeed(chain), broker).run()
    return strategy, result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--months", type=int, default=8, help="contract months (2 to 20)")
    args = parser.parse_args(argv)
    if not 2 <= args.months <= 20:
        parser.error(f"--months {args.months}: give 2 to 20 contract months")
    strategy, result = backtest(args.months)
    rolls = strategy.roller.rolls
    statuses = Counter(r.status for r in rolls)
    print(f"{len(strategy.contracts)} months, {len(rolls)} rolls: "
          + ", ".join(f"{n} {status}" for status, n in statuses.items()))  # fmt: skip
    for roll in rolls:
        print(f"  {roll.timestamp:%Y-%m-%d} {roll.from_contract.local_symbol} -> "
              f"{roll.to_contract.local_symbol}: {roll.status}, {roll.quantity:+} contract(s), "
              f"price difference {roll.price_difference}")  # fmt: skip
    stats = result.stats
    print(f"{int(stats['Trades'])} trades, final equity {stats['Final equity']:,.2f}, "
          f"total return {stats['Total return [%]']:.1f} %, "
          f"max drawdown {stats['Max drawdown [%]']:.1f} %, "
          f"commissions {float(stats['Commissions']):,.2f}")  # fmt: skip
    last = result.positions.iloc[-1]
    held = {name: int(q) for name, q in last.items() if q}
    print(f"held at the end: {held}")


if __name__ == "__main__":
    main()
