"""Plots of a run (matplotlib, imported only here): each draws on an ``Axes`` it is given.

Every function takes a :class:`~ibkrfw.RunResult` and, optionally, the ``Axes`` to draw on
(a new figure's otherwise), and returns the ``Axes``. :func:`tearsheet` puts them together;
``RunResult.plot()`` shows it.

Example:
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from ibkrfw import Engine
    >>> from ibkrfw.data import sample_feed
    >>> from ibkrfw.sim import SimBroker
    >>> from ibkrfw.strategies import MovingAverageCrossover
    >>> result = Engine(MovingAverageCrossover(), sample_feed(["ACME"]), SimBroker()).run()
    >>> figure = tearsheet(result)
    >>> len(figure.axes)
    6
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ibkrfw.analysis import metrics
from ibkrfw.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ibkrfw.engine.result import RunResult
    from ibkrfw.model.instruments import Instrument

__all__ = [
    "plot_comparison",
    "plot_correlation",
    "plot_drawdown",
    "plot_equity",
    "plot_in_and_out_of_sample",
    "plot_monthly_returns",
    "plot_parameter_heatmap",
    "plot_returns_distribution",
    "plot_rolling_sharpe",
    "plot_trades",
    "tearsheet",
]

GREEN, RED, BLUE, GREY = "#1a9850", "#d73027", "#2c6fbb", "#7f7f7f"


def _axes(ax: Axes | None) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.figure(figsize=(9, 4)).add_subplot()


def _style(ax: Axes, title: str, ylabel: str = "") -> None:
    ax.set_title(title, loc="left", fontsize=11, fontweight="bold")
    if ylabel:
        ax.set_ylabel(ylabel)
    ax.grid(True, color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)


def _dates(ax: Axes) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(maxticks=8)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(
        mdates.ConciseDateFormatter(locator)  # type: ignore[no-untyped-call]
    )


def _naive(index: pd.Index) -> pd.DatetimeIndex:
    """UTC times without their zone, which matplotlib's date axis takes as they are."""
    import pandas as pd

    return pd.DatetimeIndex(index).tz_convert("UTC").tz_localize(None)


def _ink(rgba: Sequence[float] | np.ndarray[Any, Any]) -> str:
    """Black or white, whichever reads better on a cell of colour ``rgba``.

    The cell's relative luminance (WCAG 2) decides: above 0.179 black text has the higher
    contrast, below it white.
    """

    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    red, green, blue = (linear(float(c)) for c in rgba[:3])
    luminance = 0.2126 * red + 0.7152 * green + 0.0722 * blue
    return "black" if luminance > 0.179 else "white"


def plot_equity(
    result: RunResult, ax: Axes | None = None, *, benchmark: pd.Series | None = None
) -> Axes:
    """Equity over time, and a benchmark's prices scaled to the same start if given."""
    ax = _axes(ax)
    equity = result.equity["equity"]
    ax.plot(_naive(equity.index), equity.to_numpy(), color=BLUE, linewidth=1.4, label="Equity")
    if benchmark is not None and len(equity):
        prices = benchmark.sort_index().astype("float64")
        aligned = prices.reindex(equity.index, method="ffill")
        first = aligned.dropna()
        if len(first):
            scaled = aligned / first.iloc[0] * equity.iloc[0]
            ax.plot(_naive(equity.index), scaled.to_numpy(), color=GREY, linewidth=1.0,
                    label=str(benchmark.name or "Benchmark"))  # fmt: skip
        ax.legend(frameon=False, loc="best")
    _style(ax, "Equity", result.base_currency)
    _dates(ax)
    ax.yaxis.set_major_formatter(_thousands())
    return ax


def _thousands() -> Any:
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda v, _: f"{v:,.0f}")


def plot_drawdown(result: RunResult, ax: Axes | None = None) -> Axes:
    """The fall below the running peak, in percent (the underwater curve)."""
    ax = _axes(ax)
    equity = result.equity["equity"]
    values = equity.to_numpy()
    peaks = np.maximum.accumulate(values) if len(values) else values
    with np.errstate(divide="ignore", invalid="ignore"):
        under = np.where(peaks > 0, values / peaks - 1.0, 0.0) * 100
    x = _naive(equity.index)
    ax.fill_between(x, under, 0, color=RED, alpha=0.35, linewidth=0)
    ax.plot(x, under, color=RED, linewidth=0.8)
    depth = float(under.min()) if len(under) else 0.0
    ax.set_ylim(min(depth * 1.1, -1.0), 0.5)
    _style(ax, f"Drawdown (largest {depth:.1f} %)", "%")
    _dates(ax)
    return ax


def monthly_returns(result: RunResult) -> pd.DataFrame:
    """Returns per calendar month (UTC), in percent: one row per year, one column per month."""
    import pandas as pd

    equity = result.equity["equity"]
    if equity.empty:
        return pd.DataFrame(columns=range(1, 13), dtype="float64")
    times = _naive(equity.index)
    naive = pd.Series(equity.to_numpy(), index=times)
    month_end = naive.groupby([times.year, times.month]).last()
    start = float(naive.iloc[0])
    previous = month_end.shift(1)
    previous.iloc[0] = start
    table = ((month_end / previous - 1) * 100).unstack()
    table.index.name, table.columns.name = "Year", "Month"
    return table.reindex(columns=range(1, 13))


def plot_monthly_returns(result: RunResult, ax: Axes | None = None) -> Axes:
    """A heatmap of monthly returns in percent: years down, months across, values written in."""
    import matplotlib.colors as mcolors

    ax = _axes(ax)
    table = monthly_returns(result)
    values = table.to_numpy(dtype="float64")
    finite = values[np.isfinite(values)]
    limit = max(float(np.abs(finite).max()) if len(finite) else 1.0, 0.5)
    norm = mcolors.TwoSlopeNorm(vmin=-limit, vcenter=0.0, vmax=limit)
    image = ax.imshow(np.ma.masked_invalid(values), cmap="RdYlGn", norm=norm, aspect="auto")
    ax.set_xticks(range(12), ["J", "F", "M", "A", "M", "J", "J", "A", "S", "O", "N", "D"])
    ax.set_yticks(range(len(table.index)), [str(y) for y in table.index])
    size = 8 if len(table.index) <= 8 else 7
    for (row, col), value in np.ndenumerate(values):
        if math.isfinite(value):
            ax.text(col, row, f"{value:.1f}", ha="center", va="center", fontsize=size,
                    color=_ink(image.to_rgba(value)))  # fmt: skip
    ax.set_title("Monthly returns (%)", loc="left", fontsize=11, fontweight="bold")
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.tick_params(length=0)
    return ax


def plot_correlation(matrix: pd.DataFrame, ax: Axes | None = None, *, title: str = "") -> Axes:
    """A heatmap of a correlation matrix, values written in (red: together, blue: apart).

    Args:
        matrix: A square correlation matrix
            (:func:`~ibkrfw.analysis.correlation_matrix`, or one time of
            :func:`~ibkrfw.analysis.rolling_correlation`).
        ax: Where to draw (a new figure if None).
        title: The title ("Correlation" if empty).
    """
    ax = _axes(ax)
    values = matrix.to_numpy(dtype="float64")
    image = ax.imshow(np.ma.masked_invalid(values), cmap="RdBu_r", vmin=-1.0, vmax=1.0)
    labels = [str(c) for c in matrix.columns]
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(matrix.index)), [str(i) for i in matrix.index])
    size = 9 if len(labels) <= 8 else 7
    for (row, col), value in np.ndenumerate(values):
        if math.isfinite(value):
            ax.text(col, row, f"{value:.2f}", ha="center", va="center", fontsize=size,
                    color=_ink(image.to_rgba(value)))  # fmt: skip
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_title(title or "Correlation", loc="left", fontsize=11, fontweight="bold")
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.tick_params(length=0)
    return ax


def plot_in_and_out_of_sample(frame: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Bars of each walk-forward window's in-sample and out-of-sample objective.

    Out-of-sample bars far below the in-sample ones are the mark of over-fitting.
    """
    ax = _axes(ax)
    x = np.arange(len(frame))
    ax.bar(x - 0.2, frame["in_sample"].to_numpy(dtype="float64"), 0.4, color=BLUE,
           label="in sample (best)")  # fmt: skip
    ax.bar(x + 0.2, frame["out_of_sample"].to_numpy(dtype="float64"), 0.4, color=GREEN,
           label="out of sample")  # fmt: skip
    labels = [f"{t:%Y-%m}" for t in frame["test_start"]] if "test_start" in frame else x
    ax.set_xticks(x, labels, rotation=45, ha="right")
    ax.axhline(0, color=GREY, linewidth=0.8)
    ax.legend(frameon=False)
    _style(ax, "Walk-forward: in sample against out of sample", "objective")
    return ax


def plot_parameter_heatmap(
    table: pd.DataFrame,
    ax: Axes | None = None,
    *,
    title: str = "",
    fmt: str = "{:.2f}",
    metric: str = "",
    maximize: bool = True,
) -> Axes:
    """A heatmap of a metric over two parameters (a sweep's ``table(x, y)``).

    Green is better: the colours run from the table's worst value to its best (reversed when
    ``maximize`` is False). Each value is written in its cell, in black on light cells and
    white on dark ones; cells without a value (a failed or missing run) are grey and marked
    "n/a". The colour bar is labelled with the metric.

    Args:
        table: The metric, one row per value of one parameter and one column per value of the
            other (the index and columns named after the parameters).
        ax: Where to draw (a new figure if None).
        title: The title; by default it names the metric, the two parameters and whether
            higher or lower is better.
        fmt: How each value is written.
        metric: The metric's name (``"Sharpe ratio"``); ``table.name`` or "objective" if empty.
        maximize: Whether a larger value is better.
    """
    import matplotlib as mpl

    ax = _axes(ax)
    metric = metric or str(getattr(table, "name", "") or "objective")
    x, y = str(table.columns.name or "x"), str(table.index.name or "y")
    values = table.to_numpy(dtype="float64")
    cmap = mpl.colormaps["RdYlGn" if maximize else "RdYlGn_r"].with_extremes(bad="#e6e6e6")
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, aspect="auto", origin="lower")
    ax.set_xticks(range(len(table.columns)), [str(c) for c in table.columns])
    ax.set_yticks(range(len(table.index)), [str(i) for i in table.index])
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    size = 9 if values.size <= 64 else 7
    if values.size <= 400:
        for (row, col), value in np.ndenumerate(values):
            if math.isfinite(value):
                ax.text(col, row, fmt.format(value), ha="center", va="center", fontsize=size,
                        color=_ink(image.to_rgba(value)))  # fmt: skip
            else:
                ax.text(col, row, "n/a", ha="center", va="center", fontsize=size,
                        color="#555555", fontstyle="italic")  # fmt: skip
    bar = ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    bar.set_label(metric)
    better = "higher" if maximize else "lower"
    ax.set_title(title or f"{metric} by {x} and {y} ({better} is better)", loc="left",
                 fontsize=11, fontweight="bold")  # fmt: skip
    ax.tick_params(length=0)
    return ax


def plot_returns_distribution(result: RunResult, ax: Axes | None = None) -> Axes:
    """A histogram of the period returns, in percent, with their mean."""
    ax = _axes(ax)
    returns = metrics.simple_returns(result.equity["equity"].to_numpy()) * 100
    returns = returns[np.isfinite(returns) & (returns != 0)]
    if len(returns):
        ax.hist(returns, bins=min(60, max(10, len(returns) // 10)), color=BLUE, alpha=0.75)
        mean = float(returns.mean())
        ax.axvline(mean, color=RED, linewidth=1.2, label=f"mean {mean:.2f} %")
        ax.legend(frameon=False)
    else:
        ax.text(0.5, 0.5, "no returns", ha="center", va="center", transform=ax.transAxes)
    _style(ax, "Distribution of returns (periods with a change)", "count")
    ax.set_xlabel("%")
    return ax


def plot_rolling_sharpe(result: RunResult, ax: Axes | None = None, *, window: int = 63) -> Axes:
    """The annualised Sharpe ratio over a trailing window of periods (63: a quarter of days)."""
    ax = _axes(ax)
    equity = result.equity["equity"]
    periods = metrics.periods_per_year(result._ts)
    rolling = metrics.rolling_sharpe(
        metrics.simple_returns(equity.to_numpy()), window, periods if periods > 0 else 252.0
    )
    ax.plot(_naive(equity.index[1:]), rolling, color=BLUE, linewidth=1.0)
    ax.axhline(0, color=GREY, linewidth=0.8)
    _style(ax, f"Rolling Sharpe ratio ({window} periods)")
    _dates(ax)
    return ax


def plot_trades(
    result: RunResult, instrument: Instrument | None = None, ax: Axes | None = None
) -> Axes:
    """An instrument's closes with the fills on it: buys as green triangles, sells as red.

    Raises:
        ConfigError: if the run has no bars of the instrument.
    """
    import pandas as pd

    ax = _axes(ax)
    bars = result._bars
    if instrument is None:
        if not bars:
            raise ConfigError("the run kept no bars to plot")
        instrument = next(iter(bars))
    history = bars.get(instrument)
    if history is None:
        raise ConfigError(f"the run has no bars of {instrument.id}")
    times = _naive(pd.DatetimeIndex(history.ts_ns.astype("datetime64[ns]")).tz_localize("UTC"))
    ax.plot(times, history.close, color=GREY, linewidth=1.0, label="close")
    fills = [f for f in result.fill_list if f.instrument == instrument]
    for side, marker, color in (("BUY", "^", GREEN), ("SELL", "v", RED)):
        chosen = [f for f in fills if f.side.value == side]
        if chosen:
            stamps = pd.DatetimeIndex([f.ts_ns for f in chosen]).tz_localize("UTC")
            ax.scatter(_naive(stamps), [float(f.price) for f in chosen], marker=marker,
                       color=color, s=28, alpha=0.8, zorder=3, label=side.lower())  # fmt: skip
    ax.legend(frameon=False, loc="best")
    _style(ax, f"{instrument.symbol}: entries and exits", instrument.currency)
    _dates(ax)
    return ax


def plot_comparison(
    results: Sequence[RunResult], ax: Axes | None = None, *, labels: Sequence[str] = ()
) -> Axes:
    """Several runs' equity, each as a growth of 1 from its start, on one chart."""
    ax = _axes(ax)
    for i, result in enumerate(results):
        equity = result.equity["equity"]
        if equity.empty:
            continue
        label = labels[i] if i < len(labels) else _label(result, i)
        ax.plot(_naive(equity.index), (equity / equity.iloc[0]).to_numpy(), linewidth=1.2,
                label=label)  # fmt: skip
    ax.legend(frameon=False, loc="upper left", fontsize=8)
    _style(ax, "Growth of 1")
    _dates(ax)
    return ax


def _label(result: RunResult, i: int) -> str:
    params = ", ".join(f"{k}={v}" for k, v in result.parameters.items())
    return f"{i + 1}. {result.strategy_name}({params})"


def tearsheet(result: RunResult, *, benchmark: pd.Series | None = None) -> Figure:
    """Every plot of a run on one figure.

    Equity (with the benchmark, if given), drawdown, monthly returns, the distribution of
    returns, the rolling Sharpe ratio, and the first instrument's entries and exits.
    """
    import matplotlib.pyplot as plt

    figure = plt.figure(figsize=(13, 13), layout="constrained")
    grid = figure.add_gridspec(4, 2, height_ratios=[1.3, 0.8, 1.0, 1.0])
    plot_equity(result, figure.add_subplot(grid[0, :]), benchmark=benchmark)
    plot_drawdown(result, figure.add_subplot(grid[1, :]))
    plot_monthly_returns(result, figure.add_subplot(grid[2, 0]))
    plot_returns_distribution(result, figure.add_subplot(grid[2, 1]))
    plot_rolling_sharpe(result, figure.add_subplot(grid[3, 0]))
    if result._bars:
        plot_trades(result, None, figure.add_subplot(grid[3, 1]))
    figure.suptitle(_label(result, 0)[3:], fontsize=13, fontweight="bold")
    return figure
