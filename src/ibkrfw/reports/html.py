"""One self-contained HTML file per run: the plots, the statistics, the trades, the setup.

The file needs nothing else: the plots are PNG images inside it, the style is inline, and
there is no script, so it opens offline in any browser and can be mailed or archived.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ibkrfw._version import __version__

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

    from ibkrfw.engine.result import RunResult

__all__ = ["compare", "render_report", "write_report"]

_TRADES_SHOWN = 500
_TRADE_COLUMNS = (
    "instrument", "side", "quantity", "entry_time", "exit_time", "entry_price", "exit_price",
    "commission", "pnl", "return_pct", "mae_pct", "mfe_pct",
)  # fmt: skip
_MISSING = "\u2013"  # an en dash: a figure that cannot be computed

_CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: #222; margin: 0; background: #f4f5f7; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 28px 48px; background: #fff; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 32px 0 10px; padding-bottom: 4px; border-bottom: 1px solid #ddd; }
.sub { color: #666; font-size: 13px; margin-bottom: 18px; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 14px 0 6px; }
.card { flex: 1 1 150px; border: 1px solid #e3e3e3; border-radius: 6px; padding: 10px 12px; }
.card .k { font-size: 12px; color: #666; }
.card .v { font-size: 20px; font-weight: 600; margin-top: 2px; }
.pos { color: #1a7f37; } .neg { color: #c62828; }
img { width: 100%; height: auto; display: block; margin: 6px 0 14px; }
table { border-collapse: collapse; font-size: 13px; width: 100%; }
th, td { padding: 4px 8px; border-bottom: 1px solid #eee; text-align: right;
         font-variant-numeric: tabular-nums; white-space: nowrap; }
th { background: #fafafa; font-weight: 600; }
td.l, th.l { text-align: left; }
.stats { display: grid; grid-template-columns: 1fr 1fr; gap: 0 28px; }
.scroll { max-height: 520px; overflow: auto; border: 1px solid #eee; }
footer { margin-top: 36px; color: #888; font-size: 12px; }
"""

_CARDS = (
    ("Total return [%]", "{:+.2f} %"),
    ("CAGR [%]", "{:+.2f} %"),
    ("Sharpe ratio", "{:.2f}"),
    ("Max drawdown [%]", "{:.2f} %"),
    ("Trades", "{:d}"),
    ("Win rate [%]", "{:.1f} %"),
)


def _figure(width: float, height: float, draw: Callable[[Figure], None]) -> str:
    """Draw on a new figure and return it as an embedded PNG image.

    The figure is made without pyplot, so writing a report neither needs nor changes the
    user's matplotlib backend (a notebook's inline display stays as it is).
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    draw(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="" src="data:image/png;base64,{data}">'


def _format(value: object, tz: str = "UTC") -> str:
    """A cell's text: money with two decimals, times in the exchange's zone, dates alone."""
    import pandas as pd

    if value is None or value is pd.NaT:
        return _MISSING
    if isinstance(value, float) and math.isnan(value):
        return _MISSING
    if isinstance(value, pd.Timestamp):
        local = value.tz_convert(tz) if value.tzinfo is not None else value
        timed = local.hour or local.minute
        return local.strftime("%Y-%m-%d %H:%M" if timed else "%Y-%m-%d")
    if isinstance(value, pd.Timedelta):
        days = value.total_seconds() / 86_400
        return f"{days:,.0f} days" if days >= 2 else str(value)
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, Decimal):
        return f"{value:,}" if value == value.to_integral_value() else f"{float(value):,.2f}"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) >= 0.01 or value == 0 else f"{value:.2g}"
    return str(value)


def _cards(stats: pd.Series) -> str:
    out = []
    for key, pattern in _CARDS:
        value = stats.get(key)
        if isinstance(value, float) and math.isnan(value):
            text, cls = _MISSING, ""
        else:
            text = pattern.format(value)
            cls = "pos" if isinstance(value, float | int) and value > 0 else ""
            if isinstance(value, float | int) and value < 0:
                cls = "neg"
        if key in ("Trades", "Win rate [%]", "Sharpe ratio"):
            cls = ""
        out.append(
            f'<div class="card"><div class="k">{html.escape(key.replace(" [%]", ""))}</div>'
            f'<div class="v {cls}">{html.escape(text)}</div></div>'
        )
    return '<div class="cards">' + "".join(out) + "</div>"


def _stats_table(stats: pd.Series, tz: str) -> str:
    rows = [
        f'<tr><td class="l">{html.escape(str(k))}</td><td>{html.escape(_format(v, tz))}</td></tr>'
        for k, v in stats.items()
    ]
    half = (len(rows) + 1) // 2
    left, right = "".join(rows[:half]), "".join(rows[half:])
    return f'<div class="stats"><table>{left}</table><table>{right}</table></div>'


def _frame_table(frame: pd.DataFrame, limit: int, tz: str) -> str:
    shown = frame.head(limit)
    texts = {c for c in shown if len(shown) and isinstance(shown[c].iloc[0], str)}
    head = '<th class="l">#</th>' + "".join(
        f'<th class="{"l" if c in texts else ""}">{html.escape(str(c))}</th>' for c in shown
    )
    body = []
    for i, (_, row) in enumerate(shown.iterrows(), 1):
        cells = "".join(
            f'<td class="l">{html.escape(v)}</td>'
            if isinstance(v, str)
            else f"<td>{html.escape(_format(v, tz))}</td>"
            for v in row
        )
        body.append(f'<tr><td class="l">{i}</td>{cells}</tr>')
    more = ""
    if len(frame) > limit:
        more = f"<p class='sub'>The first {limit} of {len(frame)} shown.</p>"
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>{more}"
    )


def render_report(
    result: RunResult,
    *,
    benchmark: pd.Series | None = None,
    title: str | None = None,
    config: dict[str, object] | None = None,
) -> str:
    """Return the HTML of the report of ``result`` (see :func:`write_report`)."""
    from ibkrfw.reports import plots

    stats = result.statistics(benchmark=benchmark)
    name = title or result.strategy_name
    params = ", ".join(f"{k}={v!r}" for k, v in result.parameters.items()) or "none"
    tz = next((i.timezone for i in result._bars), "UTC")  # times as the exchange tells them
    start, end = _format(stats["Start"], tz), _format(stats["End"], tz)

    def top(figure: Figure) -> None:
        grid = figure.add_gridspec(2, 1, height_ratios=[1.6, 1])
        plots.plot_equity(result, figure.add_subplot(grid[0]), benchmark=benchmark)
        plots.plot_drawdown(result, figure.add_subplot(grid[1]))

    def middle(figure: Figure) -> None:
        left, right = figure.subplots(1, 2)
        plots.plot_monthly_returns(result, left)
        plots.plot_returns_distribution(result, right)

    def bottom(figure: Figure) -> None:
        left, right = figure.subplots(1, 2)
        plots.plot_rolling_sharpe(result, left)
        if result._bars:
            plots.plot_trades(result, None, right)
        else:
            right.set_axis_off()

    setup: dict[str, object] = {
        "Strategy": result.strategy_name,
        "Parameters": params,
        "Period": f"{start} to {end}",
        "Instruments": ", ".join(i.id for i in result._bars) or _MISSING,
        "Starting cash": f"{result.starting_cash:,.2f} {result.base_currency}",
        **(config or {}),
        "ibkrfw": __version__,
    }
    setup_rows = "".join(
        f'<tr><td class="l">{html.escape(str(k))}</td><td class="l">{html.escape(str(v))}</td></tr>'
        for k, v in setup.items()
    )
    trades = result.trades
    trades = trades[[c for c in _TRADE_COLUMNS if c in trades.columns]]
    trades_html = (
        _frame_table(trades, _TRADES_SHOWN, tz) if len(trades) else "<p class='sub'>No trades.</p>"
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(name)}: backtest report</title><style>{_CSS}</style></head>
<body><main>
<h1>{html.escape(name)}</h1>
<div class="sub">{html.escape(params)} · {html.escape(start)} to {html.escape(end)}
 ({html.escape(tz)}) · {stats["Bars"]:,} bars · {html.escape(result.base_currency)}</div>
{_cards(stats)}
<h2>Equity and drawdown</h2>
{_figure(11.5, 6.2, top)}
<h2>Returns</h2>
{_figure(11.5, 4.2, middle)}
{_figure(11.5, 3.8, bottom)}
<h2>Statistics</h2>
{_stats_table(stats, tz)}
<h2>Trades</h2>
{trades_html}
<h2>Run</h2>
<table>{setup_rows}</table>
<footer>Made by ibkrfw {html.escape(__version__)}.</footer>
</main></body></html>
"""


def write_report(
    result: RunResult,
    path: str | os.PathLike[str],
    *,
    benchmark: pd.Series | None = None,
    title: str | None = None,
    config: dict[str, object] | None = None,
) -> None:
    """Write one self-contained HTML report of ``result`` to ``path``.

    It holds the headline figures, the equity curve (with ``benchmark`` if given), the
    drawdown, monthly returns, the distribution of returns, the rolling Sharpe ratio, the first
    instrument's entries and exits, every statistic, the trades (the first 500), and the run's
    setup (strategy, parameters, period, instruments, anything in ``config``, the library
    version).
    """
    text = render_report(result, benchmark=benchmark, title=title, config=config)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def compare(
    results: Sequence[RunResult], labels: Sequence[str] = (), *, benchmark: Any = None
) -> pd.DataFrame:
    """The statistics of several runs side by side: one column per run.

    Columns are named by ``labels``, or by each run's strategy and parameters.
    """
    import pandas as pd

    from ibkrfw.reports.plots import _label

    columns = {}
    for i, result in enumerate(results):
        label = labels[i] if i < len(labels) else _label(result, i)
        columns[label] = result.statistics(benchmark=benchmark)
    return pd.DataFrame(columns)
