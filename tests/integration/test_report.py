"""Plots, the HTML report (rendered in headless Chromium), comparisons and `ibkrfw report`."""

from __future__ import annotations

import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest

from ibkrfw import Engine, RunResult
from ibkrfw.data import load_sample, sample_feed
from ibkrfw.reports import compare, plots, render_report
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
    assert text.count('src="data:image/png;base64,') == 5  # three, then one per instrument
    assert f"ibkrfw {__import__('ibkrfw').__version__}" in text
    common = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(
        [*common, "--dump-dom", path.as_uri()], capture_output=True, text=True, timeout=120
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "<h2>Statistics</h2>" in dom.stdout and "<h2>Trades</h2>" in dom.stdout
    assert dom.stdout.count("<img") == 5
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


class _Page(HTMLParser):
    """The images' alt texts, the table headers and the trade table's cells of a report."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.alts: list[str | None] = []
        self.headers: list[str] = []
        self.rows: list[list[str]] = []
        self._cell: list[str] | None = None
        self._in_thead = self._in_tbody = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.alts.append(dict(attrs).get("alt"))
        elif tag in ("thead", "tbody"):
            self._in_thead, self._in_tbody = tag == "thead", tag == "tbody"
        elif tag == "tr" and self._in_tbody:
            self.rows.append([])
        elif tag in ("th", "td"):
            self._cell = []

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("th", "td") and self._cell is not None:
            text = "".join(self._cell)
            if tag == "th" and self._in_thead:
                self.headers.append(text)
            elif tag == "td" and self._in_tbody:
                self.rows[-1].append(text)
            self._cell = None
        elif tag in ("thead", "tbody"):
            self._in_thead = self._in_tbody = False


TRADE_HEADERS = [
    "#", "Instrument", "Side", "Quantity", "Entry time", "Exit time", "Entry price",
    "Exit price", "Commission", "P&L", "Return %", "MAE %", "MFE %",
]  # fmt: skip


def test_the_report_charts_each_instrument_and_describes_every_image(result: RunResult) -> None:
    page = _Page(render_report(result, benchmark=benchmark()))
    assert len(page.alts) == 5
    assert all(page.alts), page.alts  # no image without a description
    equity, returns, sharpe, acme, bolt = page.alts
    assert equity == (
        "Equity curve of MovingAverageCrossover on ACME and BOLT, 2015-01-02 to 2024-12-31 "
        "against CRUX, with its drawdown in percent below"
    )
    assert returns is not None and returns.startswith("Monthly returns in percent")
    assert sharpe is not None and sharpe.startswith("Rolling Sharpe ratio")
    for alt, symbol in ((acme, "ACME"), (bolt, "BOLT")):
        assert alt is not None and alt.startswith(f"Closes of {symbol} with the buys (")


def test_the_trade_table_has_readable_headers_and_one_format_per_column(
    result: RunResult,
) -> None:
    text = render_report(result)
    page = _Page(text)
    assert page.headers == TRADE_HEADERS
    assert "Times in America/New_York, money in USD." in text
    trades = result.trades
    assert len(page.rows) == len(trades)
    money = re.compile(r"^-?\d{1,3}(,\d{3})*\.\d\d$")
    percent = re.compile(r"^-?\d[\d,]*\.\d\d %$")
    for cells, (_, trade) in zip(page.rows, trades.iterrows(), strict=True):
        row = dict(zip(TRADE_HEADERS, cells, strict=True))
        assert money.match(row["Commission"]) and money.match(row["P&L"]), row
        assert all(percent.match(row[h]) for h in ("Return %", "MAE %", "MFE %")), row
        # times in New York: the daily bars' 04:00 or 05:00 UTC is that day's midnight there
        local = trade["entry_time"].tz_convert("America/New_York")
        assert row["Entry time"] == local.strftime("%Y-%m-%d")
        assert row["Quantity"] == f"{trade['quantity']:,}"


def test_a_zero_commission_has_two_decimals_like_the_money_beside_it() -> None:
    free = Engine(MovingAverageCrossover(), sample_feed(["ACME"]), SimBroker()).run()
    page = _Page(render_report(free))
    column = TRADE_HEADERS.index("Commission")
    assert page.rows and {row[column] for row in page.rows} == {"0.00"}


def test_a_report_of_many_instruments_charts_twelve_and_says_so() -> None:
    from ibkrfw import Stock
    from ibkrfw.sim import DataFrameFeed
    from ibkrfw.testing import ScriptedStrategy

    frame = load_sample()
    bars = frame[frame["symbol"] == "ACME"].set_index("timestamp").iloc[:60]
    feeds = {
        Stock(f"S{i:02d}"): bars[["open", "high", "low", "close", "volume"]] for i in range(13)
    }
    # bars of one time stamp arrive in the feeds' order: the 13th bar seen is S12's first, and
    # S12, the last instrument and the only one traded, must be among the charts
    buy = ScriptedStrategy({12: lambda ctx, bar: ctx.buy(bar.instrument, 10)})
    run = Engine(buy, DataFrameFeed(feeds), SimBroker()).run()
    text = render_report(run)
    page = _Page(text)
    charts = page.alts[3:]
    assert len(charts) == 12
    assert any(
        alt is not None and alt.startswith("Closes of S12 with the buys (1)") for alt in charts
    )
    assert "The 12 instruments with the most fills, of 13" in text


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
