"""Five instruments held at target weights, rebalanced monthly, behind a drawdown kill switch.

Run it with ``python examples/multi_asset_rebalance.py [--plot correlation.png]``. It
backtests the ready :class:`~ibkrfw.strategies.TargetWeights` strategy on the five shipped
sample stocks with:

* a monthly rebalance (trades inside a 2-point band or under 1,000 left alone, whole shares,
  sells before buys, buys within the cash);
* a pre-trade limit of 35 % of equity per instrument, shrinking orders that would pass it;
* a drawdown kill switch: 15 % below the peak, every position is closed and trading stops
  (and, for comparison, the same run without it);

then prints the statistics, the exposure by sector at the end, the correlation of the five
instruments and how much the mix diversifies. The test suite runs it.
"""

from __future__ import annotations

import argparse

from ibkrfw import Engine, RunResult
from ibkrfw.analysis import correlation_matrix, diversification_ratio, returns_of
from ibkrfw.data import SAMPLE_SYMBOLS, sample_feed
from ibkrfw.risk import MaxDrawdownKillSwitch, MaxPosition
from ibkrfw.sim import IBKRFixedCommission, SimBroker
from ibkrfw.strategies import TargetWeights

WEIGHTS = {"ACME": 0.30, "BOLT": 0.25, "CRUX": 0.20, "DUNE": 0.15, "ECHO": 0.10}
SECTORS = {"ACME": "industrials", "BOLT": "industrials", "CRUX": "tech", "DUNE": "energy",
           "ECHO": "tech"}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plot", help="save the correlation heatmap to this PNG file")
    parser.add_argument("--max-drawdown", type=float, default=0.15)
    args = parser.parse_args(argv)

    strategy, result = backtest(args.max_drawdown)
    stats = result.stats
    rows = ["Start", "End", "Total return [%]", "CAGR [%]", "Sharpe ratio", "Max drawdown [%]"]
    print(stats[[*rows, "Commissions", "Halts"]].to_string())
    print(f"\n{len(result.fill_list)} fills over {len(strategy.rebalances)} rebalance(s)")
    for halt in result.halts:
        print(f"halted on {halt.timestamp:%Y-%m-%d} by {halt.rule}: {halt.reason}")
    _, unguarded = backtest(None)
    print(
        "without the kill switch: total return {:.1f} %, max drawdown {:.1f} %".format(
            unguarded.stats["Total return [%]"], unguarded.stats["Max drawdown [%]"]
        )
    )

    held = result.positions.iloc[-1]
    values = held * result.closes.ffill().iloc[-1]
    target = {}
    for symbol, weight in WEIGHTS.items():
        target[SECTORS[symbol]] = target.get(SECTORS[symbol], 0.0) + weight
    print("\ntarget weight by sector: " + ", ".join(f"{k} {v:.0%}" for k, v in target.items()))
    print(f"held at the end: {values.abs().sum():,.0f} in positions")

    returns = returns_of(result.closes)
    matrix = correlation_matrix(returns).rename(index=_symbol, columns=_symbol)
    print("\ncorrelation of daily returns:")
    print(matrix.round(2).to_string())
    ratio = diversification_ratio(WEIGHTS, returns.rename(columns=_symbol))
    print(f"\ndiversification ratio of the target mix: {ratio:.2f}")

    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure

        from ibkrfw.reports import plot_correlation

        figure = Figure(figsize=(6, 5), layout="constrained")
        plot_correlation(matrix, figure.add_subplot(), title="Daily returns, correlation")
        figure.savefig(args.plot, dpi=110)
        print(f"heatmap written to {args.plot}")


def backtest(max_drawdown: float | None) -> tuple[TargetWeights, RunResult]:
    """Run the portfolio, with a kill switch at ``max_drawdown`` (none if None)."""
    strategy = TargetWeights(
        WEIGHTS, every="monthly", drift_band=0.02, min_trade_value=1_000, cash_buffer=0.01
    )
    monitors = [] if max_drawdown is None else [MaxDrawdownKillSwitch(max_drawdown)]
    engine = Engine(
        strategy,
        sample_feed(SAMPLE_SYMBOLS),
        SimBroker(cash=1_000_000, commission=IBKRFixedCommission()),
        risk_rules=[MaxPosition(percent_of_equity=0.35, shrink=True)],
        risk_monitors=monitors,
    )
    return strategy, engine.run()


def _symbol(instrument_id: str) -> str:
    return instrument_id.split(".")[0]


if __name__ == "__main__":
    main()
