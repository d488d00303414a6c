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
    from ibkrfw.model.instruments import Instrument

__all__ = ["compare", "render_report", "write_report"]

_TRADES_SHOWN = 500
_CHARTS_SHOWN = 12  # entries-and-exits charts: more would bury the rest of the report
# The trade table's columns: (the frame's column, its header, how its cells are written).
_TRADE_COLUMNS = (
    ("instrument", "Instrument", "text"),
    ("currency", "Currency", "text"),
    ("side", "Side", "text"),
    ("quantity", "Quantity", "quantity"),
    ("entry_time", "Entry time", "time"),
    ("exit_time", "Exit time", "time"),
    ("entry_price", "Entry price", "price"),
    ("exit_price", "Exit price", "price"),
    ("commission", "Commission", "money"),
    ("pnl", "P&L", "money"),
    ("return_pct", "Return %", "percent"),
    ("mae_pct", "MAE %", "percent"),
    ("mfe_pct", "MFE %", "percent"),
)
_HEADER_TITLES = {
    "P&L": "Profit or loss after commissions",
    "MAE %": "Maximum adverse excursion: the trade's worst open loss, in percent of its entry",
    "MFE %": "Maximum favourable excursion: the trade's best open gain, in percent of its entry",
}
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
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr));
          gap: 0 16px; }
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


def _figure(width: float, height: float, draw: Callable[[Figure], None], alt: str) -> str:
    """Draw on a new figure and return it as an embedded PNG image described by ``alt``.

    The figure is made without pyplot, so writing a report neither needs nor changes the
    user's matplotlib backend (a notebook's inline display stays as it is).
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    draw(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


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
    rows = []
    for key, value in stats.items():
        name, text = str(key), _format(value, tz)
        if name.endswith(" [%]"):  # the unit goes with the number, as on the cards
            name = name.removesuffix(" [%]")
            text = text if text == _MISSING else f"{text} %"
        rows.append(f'<tr><td class="l">{html.escape(name)}</td><td>{html.escape(text)}</td></tr>')
    half = (len(rows) + 1) // 2
    left, right = "".join(rows[:half]), "".join(rows[half:])
    return f'<div class="stats"><table>{left}</table><table>{right}</table></div>'


def _cell(value: object, kind: str, tz: str) -> str:
    """A trade cell's text: every cell of a column written the same way.

    Money with two decimals (a zero commission too), prices with at least two and as many as
    they carry, quantities as counted, percents with their sign, times in ``tz``.
    """
    import pandas as pd

    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return _MISSING
    if kind == "text":
        return str(value)
    if kind == "time" and isinstance(value, pd.Timestamp):
        return _format(value, tz)
    if kind == "quantity" and isinstance(value, Decimal):
        return f"{value.normalize():,f}"
    if kind == "price" and isinstance(value, Decimal):
        places = max(2, -int(value.normalize().as_tuple().exponent))
        return f"{value:,.{places}f}"
    number = float(value)  # type: ignore[arg-type]
    if kind == "percent":
        return f"{number:,.2f} %"
    if kind in ("money", "price"):
        return f"{number:,.2f}"
    return _format(value, tz)


def _trade_table(result: RunResult, limit: int) -> str:
    """The trades (the first ``limit``), with readable headers and one format per column."""
    import pandas as pd

    trades = result.trades
    zones = {i.id: i.timezone for i in result._bars}
    currencies = sorted(set(trades["currency"])) if "currency" in trades else []
    columns = [
        (key, header, kind)
        for key, header, kind in _TRADE_COLUMNS
        if key in trades.columns and not (key == "currency" and len(currencies) <= 1)
    ]
    one_zone = len(set(zones.values())) <= 1
    zone = next(iter(zones.values()), "UTC")
    heads = ['<th class="l">#</th>']
    for _, header, kind in columns:
        hint = _HEADER_TITLES.get(header)
        attrs = f' title="{html.escape(hint)}"' if hint else ""
        css = ' class="l"' if kind == "text" else ""
        heads.append(f"<th{css}{attrs}>{html.escape(header)}</th>")
    body = []
    for number, (_, row) in enumerate(trades.head(limit).iterrows(), 1):
        tz = zones.get(str(row.get("instrument", "")), zone)
        cells = [f'<td class="l">{number}</td>']
        for key, _, kind in columns:
            value = row[key]
            text = _cell(value, kind, tz)
            if kind == "time" and not one_zone and isinstance(value, pd.Timestamp):
                text = f"{text} {value.tz_convert(tz).strftime('%Z')}"
            css = "l" if kind == "text" else ""
            if key == "pnl" and text != _MISSING:
                css = "pos" if float(value) > 0 else "neg" if float(value) < 0 else ""
            cells.append(f'<td class="{css}">{html.escape(text)}</td>' if css else
                         f"<td>{html.escape(text)}</td>")  # fmt: skip
        body.append(f"<tr>{''.join(cells)}</tr>")
    notes = []
    if one_zone:
        notes.append(f"times in {zone}")
    if len(currencies) == 1:
        notes.append(f"money in {currencies[0]}")
    if len(trades) > limit:
        notes.append(f"the first {limit} of {len(trades)} trades shown")
    text = ", ".join(notes)
    caption = f"<p class='sub'>{html.escape(text[:1].upper() + text[1:])}.</p>" if notes else ""
    return (
        f'{caption}<div class="scroll"><table><thead><tr>{"".join(heads)}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _names(symbols: Sequence[str], shown: int = 4) -> str:
    """``ACME``, ``ACME and BOLT``, ``ACME, BOLT, CRUX and 7 more``."""
    if len(symbols) <= 1:
        return "".join(symbols) or "no instrument"
    if len(symbols) <= shown:
        return f"{', '.join(symbols[:-1])} and {symbols[-1]}"
    return f"{', '.join(symbols[: shown - 1])} and {len(symbols) - shown + 1} more"


def _trade_charts(result: RunResult, name: str, period: str) -> str:
    """One entries-and-exits chart per instrument (those with most fills if there are many)."""
    from ibkrfw.reports import plots

    instruments = list(result._bars)
    if not instruments:
        return "<p class='sub'>The run kept no bars to chart.</p>"
    fills: dict[Instrument, list[str]] = {i: [] for i in instruments}
    for fill in result.fill_list:
        if fill.instrument in fills:
            fills[fill.instrument].append(fill.side.value)
    chosen = instruments
    note = ""
    if len(instruments) > _CHARTS_SHOWN:
        ranked = sorted(instruments, key=lambda i: -len(fills[i]))[:_CHARTS_SHOWN]
        chosen = [i for i in instruments if i in ranked]  # in the run's order
        note = (
            f"<p class='sub'>The {_CHARTS_SHOWN} instruments with the most fills, of "
            f"{len(instruments)}; draw any other with "
            "<code>ibkrfw.reports.plot_trades(result, instrument)</code>.</p>"
        )
    images = []
    for instrument in chosen:
        sides = fills[instrument]
        buys, sells = sides.count("BUY"), sides.count("SELL")
        alt = (
            f"Closes of {instrument.symbol} with the buys ({buys}) and sells ({sells}) of "
            f"{name}, {period}"
        )

        def draw(figure: Figure, instrument: Instrument = instrument) -> None:
            plots.plot_trades(result, instrument, figure.add_subplot())

        images.append(_figure(5.7, 3.0, draw, alt))
    return f'{note}<div class="charts">{"".join(images)}</div>'


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

    symbols = [i.symbol for i in result._bars]
    period = f"{start} to {end}"
    subject = f"{name} on {_names(symbols)}, {period}"

    def top(figure: Figure) -> None:
        grid = figure.add_gridspec(2, 1, height_ratios=[1.6, 1])
        plots.plot_equity(result, figure.add_subplot(grid[0]), benchmark=benchmark)
        plots.plot_drawdown(result, figure.add_subplot(grid[1]))

    def middle(figure: Figure) -> None:
        left, right = figure.subplots(1, 2)
        plots.plot_monthly_returns(result, left)
        plots.plot_returns_distribution(result, right)

    def bottom(figure: Figure) -> None:
        plots.plot_rolling_sharpe(result, figure.add_subplot())

    against = f" against {benchmark.name or 'a benchmark'}" if benchmark is not None else ""
    top_alt = f"Equity curve of {subject}{against}, with its drawdown in percent below"
    middle_alt = (
        f"Monthly returns in percent (years down, months across) and the distribution of "
        f"period returns of {subject}"
    )
    bottom_alt = f"Rolling Sharpe ratio (63 periods) of {subject}"
    setup: dict[str, object] = {
        "Strategy": result.strategy_name,
        "Parameters": params,
        "Period": period,
        "Instruments": ", ".join(i.id for i in result._bars) or _MISSING,
        "Starting cash": f"{result.starting_cash:,.2f} {result.base_currency}",
        **(config or {}),
        "ibkrfw": __version__,
    }
    setup_rows = "".join(
        f'<tr><td class="l">{html.escape(str(k))}</td><td class="l">{html.escape(str(v))}</td></tr>'
        for k, v in setup.items()
    )
    trades_html = (
        _trade_table(result, _TRADES_SHOWN)
        if len(result.trades)
        else "<p class='sub'>No trades.</p>"
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
{_figure(11.5, 6.2, top, top_alt)}
<h2>Returns</h2>
{_figure(11.5, 4.2, middle, middle_alt)}
{_figure(11.5, 3.0, bottom, bottom_alt)}
<h2>Entries and exits</h2>
{_trade_charts(result, name, period)}
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
    drawdown, monthly returns, the distribution of returns, the rolling Sharpe ratio, each
    instrument's entries and exits (one chart per instrument; for more than 12, the 12 with
    the most fills, and the report says so), every statistic, the trades (the first 500, times
    in the exchange's time zone, money in two decimals), and the run's setup (strategy,
    parameters, period, instruments, anything in ``config``, the library version). Every
    image carries an ``alt`` text that says what it shows.
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
