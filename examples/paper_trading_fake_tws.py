"""Paper-trade a strategy against the fake TWS, through the official ibapi client, and check it
makes the same trades as its backtest.

Run it with ``python examples/paper_trading_fake_tws.py`` (needs ``pip install "ibkrfw[ibkr]"``).
The fake TWS (a real socket server on 127.0.0.1) replays the sample bars; the strategy runs on
the live engine with ``IBKRBroker`` and ``IBKRDataFeed``, exactly as it would against TWS,
with a monitor collecting its health. Against real TWS you would use ``ibkrfw run`` (see the
backtest-to-live tutorial). The test suite runs it.
"""

from __future__ import annotations

from ibkrfw import Engine
from ibkrfw.data import sample_feed
from ibkrfw.monitoring import LiveMonitor
from ibkrfw.sim import IBKRFixedCommission, SimBroker
from ibkrfw.strategies import MovingAverageCrossover
from ibkrfw.testing import FakeTWS, LiveSession


def main() -> None:
    strategy = MovingAverageCrossover(fast=10, slow=30)
    commission = IBKRFixedCommission()
    monitor = LiveMonitor(stale_after_s=10 * 86_400)  # daily sample bars
    with (
        FakeTWS.from_sample(["ACME"], commission=commission) as tws,
        LiveSession(strategy, tws, observers=[monitor]) as session,
    ):
        session.step(600)  # replay 600 daily bars, one time stamp at a time
        health = monitor.health()
        paper = session.stop()
    backtest = Engine(
        MovingAverageCrossover(fast=10, slow=30),
        sample_feed(["ACME"]).between(None, paper.equity.index[-1].value + 1),
        SimBroker(cash=1_000_000, commission=commission),
    ).run()
    columns = ["side", "quantity", "price", "commission"]
    same = paper.fills[columns].equals(backtest.fills[columns])
    print(
        f"paper: {len(paper.fill_list)} fills, final equity {paper.equity['equity'].iloc[-1]:,.2f}"
    )
    print(f"backtest: {len(backtest.fill_list)} fills, final equity "
          f"{backtest.equity['equity'].iloc[-1]:,.2f}")  # fmt: skip
    # degraded: the run's drawdown is past the monitor's alert level (10 % by default)
    print(f"same fills: {same}; health while running: {health.status}")
    print("  " + "; ".join(health.reasons))


if __name__ == "__main__":
    main()
