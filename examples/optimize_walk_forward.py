"""Search the moving-average crossover's parameters, then check them with a walk-forward.

Run it with ``python examples/optimize_walk_forward.py``. A grid search ranks 12 parameter sets
on two sample stocks (on a 2-process pool); the walk-forward analysis then optimises over
three years at a time and trades the winner on the following year, and prints how much of the
in-sample result survives out of sample. The test suite runs it.
"""

from __future__ import annotations

from ibkrfw.data import sample_feed
from ibkrfw.optimize import Backtest, grid, grid_search, walk_forward
from ibkrfw.strategies import MovingAverageCrossover

SPACE = {"fast": [5, 10, 20, 40], "slow": [50, 100, 200]}


def main() -> None:
    feed = sample_feed(["ACME", "BOLT"])
    sweep = grid_search(MovingAverageCrossover, SPACE, feed, objective="Sharpe ratio", workers=2)
    columns = ["fast", "slow", "Sharpe ratio", "Total return [%]", "Max drawdown [%]", "Trades"]
    print(sweep.frame[columns].head(5).round(3).to_string())
    print(f"best in sample: {sweep.best_params} (Sharpe {sweep.best_value:.3f})")

    setup = Backtest(MovingAverageCrossover, [feed], objective="Sharpe ratio")
    wf = walk_forward(setup, grid(SPACE), train="1095D", test="365D", workers=2)
    shown = wf.frame[["test_start", "fast", "slow", "in_sample", "out_of_sample"]]
    print(shown.assign(test_start=shown["test_start"].dt.strftime("%Y-%m-%d")).round(3).to_string())
    summary = wf.summary
    print(
        f"walk-forward: in sample {summary['in-sample (mean)']:.3f}, out of sample "
        f"{summary['out-of-sample (mean)']:.3f}, efficiency {summary['efficiency']:.2f}"
    )


if __name__ == "__main__":
    main()
