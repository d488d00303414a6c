"""A risk rule of your own: at most N instruments held at once, with a test of it.

Run it with ``python examples/custom_risk_rule.py``. The crossover strategy trades all five
sample stocks; the rule lets it hold at most two at a time. Orders that would open a third
position are denied (the strategy sees an ``OrderDenied`` naming the rule), orders that add
to or close a held position always pass, and nothing past the limit reaches the broker.
"""

from __future__ import annotations

from ibkrfw import Engine, OrderRequest, PortfolioView, RiskDecision, RiskRule
from ibkrfw.data import SAMPLE_SYMBOLS, sample_feed
from ibkrfw.sim import SimBroker
from ibkrfw.strategies import MovingAverageCrossover
from ibkrfw.testing import RecordingBroker


class MaxOpenPositions(RiskRule):
    """Deny an order that would open a position when ``limit`` are open (or on their way)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def check(self, request: OrderRequest, portfolio: PortfolioView, ts_ns: int) -> RiskDecision:
        inst = request.instrument
        if portfolio.quantity(inst) or inst in portfolio.working_instruments():
            return RiskDecision.approve()  # adding to, or getting out of, what is held
        busy = set(portfolio.positions) | portfolio.working_instruments()
        if len(busy) >= self.limit:
            held = ", ".join(sorted(i.symbol for i in busy))
            return RiskDecision.deny(f"{len(busy)} positions open already ({held})")
        return RiskDecision.approve()


def main() -> None:
    broker = RecordingBroker(SimBroker(100_000))
    engine = Engine(
        MovingAverageCrossover(fast=10, slow=50, weight=0.3),
        sample_feed(SAMPLE_SYMBOLS),
        broker,
        risk_rules=[MaxOpenPositions(2)],
    )
    result = engine.run()
    orders = result.orders
    denied = orders[orders["status"] == "DENIED"]
    print(f"{len(orders)} orders, {len(denied)} denied by MaxOpenPositions, "
          f"{len(broker.submitted)} sent to the broker")  # fmt: skip
    print("first denial:", denied["reason"].iloc[0])
    most = int((result.positions != 0).sum(axis=1).max())
    print(f"most positions held at once: {most}")
    assert most <= 2


if __name__ == "__main__":
    main()
