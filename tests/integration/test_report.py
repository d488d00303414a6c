"""Plots, the HTML report (rendered in headless Chromium), comparisons and `ibkrfw report`."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest

from ibkrfw import Engine, RunResult
from ibkrfw.data import load_sample, sample_feed
from ibkrfw.reports import compare, plots
from ibkrfw.sim import IBKRFixedCommission, SimBroker
from ibkrfw.strategies import MovingAverageCrossover

matplotlib.use("Agg")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
]  # fmt: skip


@pytest.fixture(scope="module")
def result() -> RunResult:
    return Engine(
        MovingAverageCrossover(),
        sample_feed(["ACME", "BOLT"]),
        SimBroker(cash=100_000, commission=IBKRFixedCommission()),
    ).run()


def benchmark() -> pd.Series:
    frame = load_sample()
    return frame[frame["symbol"] == "CRUX"].set_index("timestamp")["close"].rename("CRUX")


def test_each_plot_draws_on_the_axes_it_is_given(result: RunResult) -> None:
    from matplotlib.figure import Figure

    figure = Figure()
    axes = figure.subplots(3, 2).ravel()
    assert plots.plot_equity(result, axes[0], benchmark=benchmark()) is axes[0]
    assert len(axes[0].lines) == 2  # equity and the benchmark
    assert plots.plot_drawdown(result, axes[1]) is axes[1]
    assert plots.plot_monthly_returns(result, axes[2]) is axes[2]
    assert plots.plot_returns_distribution(result, axes[3]) is axes[3]
    assert plots.plot_rolling_sharpe(result, axes[4]) is axes[4]
    assert plots.plot_trades(result, None, axes[5]) is axes[5]
    assert len(axes[5].collections) == 2  # buys and sells


def test_monthly_returns_by_hand() -> None:
    from ibkrfw import Stock
    from ibkrfw.sim import DataFrameFeed
    from ibkrfw.testing import ScriptedStrategy

    index = pd.DatetimeIndex(["2024-01-30", "2024-01-31", "2024-02-28", "2024-02-29"], tz="UTC")
    frame = pd.DataFrame(
        {"open": [100, 100, 110, 99], "high": [100, 100, 110, 99], "low": [100, 100, 110, 99],
         "close": [100, 100, 110, 99], "volume": 1000.0},
        index=index,
    )  # fmt: skip
    buy = ScriptedStrategy({0: lambda ctx, bar: ctx.buy(bar.instrument, 10)})
    run = Engine(buy, DataFrameFeed(frame, Stock("X")), SimBroker(1000)).run()
    table = plots.monthly_returns(run)
    # equity: 1000, 1000 (bought 10 at 100), 1100, 990 -> January 0 %, February -1 %
    assert table.loc[2024, 1] == pytest.approx(0.0)
    assert table.loc[2024, 2] == pytest.approx(-1.0)
    assert table.loc[2024, 3:].isna().all()


def test_compare_puts_runs_side_by_side(result: RunResult) -> None:
    other = Engine(
        MovingAverageCrossover(fast=5, slow=50), sample_feed(["ACME", "BOLT"]), SimBroker()
    ).run()
    table = compare([result, other], ["10/30", "5/50"])
    assert list(table.columns) == ["10/30", "5/50"]
    assert table.loc["Trades", "10/30"] == result.stats["Trades"]
    assert table.loc["Sharpe ratio", "5/50"] == other.stats["Sharpe ratio"]
    ax = plots.plot_comparison([result, other], labels=["10/30", "5/50"])
    assert [line.get_label() for line in ax.lines] == ["10/30", "5/50"]


def test_the_report_is_self_contained_and_renders_in_chromium(
    result: RunResult, tmp_path: Path, chromium: str
) -> None:
    path = tmp_path / "report.html"
    result.report(path, benchmark=benchmark())
    text = path.read_text(encoding="utf-8")
    assert "<script" not in text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)  # nothing fetched
    assert text.count('src="data:image/png;base64,') == 3
    assert f"ibkrfw {__import__('ibkrfw').__version__}" in text
    common = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(
        [*common, "--dump-dom", path.as_uri()], capture_output=True, text=True, timeout=120
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "<h2>Statistics</h2>" in dom.stdout and "<h2>Trades</h2>" in dom.stdout
    assert dom.stdout.count("<img") == 3
    shot = tmp_path / "report.png"
    done = subprocess.run(
        [*common, "--window-size=1280,2400", "--hide-scrollbars", f"--screenshot={shot}",
         path.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    from PIL import Image

    image = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert image.shape == (2400, 1280)
    assert image.std() > 20  # not a blank page: text, plots and tables were drawn


def test_the_report_command_from_a_saved_run(result: RunResult, tmp_path: Path) -> None:
    from ibkrfw.cli import main

    saved = tmp_path / "run.ibkrfw"
    result.save(saved)
    out = tmp_path / "report.html"
    assert main(["report", str(saved), "-o", str(out)]) == 0
    assert "MovingAverageCrossover" in out.read_text(encoding="utf-8")


def test_backtest_can_save_and_report(tmp_path: Path) -> None:
    from ibkrfw.cli import main

    saved, report = tmp_path / "run.ibkrfw", tmp_path / "report.html"
    code = main(["backtest", "--symbols", "ACME", "--save", str(saved), "--report", str(report)])
    assert code == 0
    assert RunResult.load(saved).stats["Trades"] > 0
    assert report.exists()
