"""Two strategies on one account and one data stream: their own books, and the account's.

Run it with ``python examples/several_strategies.py``. A trend follower and a mean-reverter
trade the same sample instrument from one engine: their orders net at the broker, each keeps
its own positions, P&L and statistics, and the two add up to the account to the cent. The
test suite runs it and pins what it prints.
"""

from __future__ import annotations

from ibkrfw import Engine, Sleeve
from ibkrfw.data import sample_feed
from ibkrfw.risk import MaxPosition
from ibkrfw.sim import PerShareCommission, SimBroker
from ibkrfw.strategies import MeanReversion, MovingAverageCrossover


def main() -> None:
    """Run both strategies in one engine and print each one's results and the account's."""
    engine = Engine(
        [
            Sleeve(MovingAverageCrossover(), name="trend", capital=60_000),
            Sleeve(
                MeanReversion(), name="meanrev", risk_rules=[MaxPosition(quantity=300, shrink=True)]
            ),
        ],
        sample_feed(["ACME"]),
        SimBroker(cash=100_000, commission=PerShareCommission("0.005", minimum=1)),
    )
    result = engine.run()
    for name, part in result.strategies.items():
        stats = part.stats
        print(
            f"{name:8} capital {part.starting_cash:>9,.2f}  final equity "
            f"{stats['Final equity']:>10,.2f}  trades {int(stats['Trades']):3}  "
            f"commissions {stats['Commissions']:,.2f}"
        )
    print(f"account  final equity {result.stats['Final equity']:,.2f}")
    books = engine.portfolios
    together = round(sum(book.equity for book in books.values()), 2)
    adds_up = together == round(result.stats["Final equity"], 2)
    print(f"the strategies add up to the account: {adds_up}")
    meanrev = result.strategies["meanrev"].order_list
    largest = max(o.quantity for o in meanrev)
    print(f"meanrev: {len(meanrev)} orders, none above its own limit of 300: {largest <= 300}")


if __name__ == "__main__":
    main()
