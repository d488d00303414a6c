"""RunResult: what a run leaves behind, as pandas objects."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from functools import cached_property
from itertools import repeat
from typing import TYPE_CHECKING, final

import numpy as np
import numpy.typing as npt

from ibkrfw.analysis import metrics
from ibkrfw.core.history import History
from ibkrfw.errors import ConfigError
from ibkrfw.model.events import CashAdjusted, RiskWarning, TradingHalted
from ibkrfw.model.fills import Fill
from ibkrfw.model.instruments import Instrument
from ibkrfw.model.orders import Order
from ibkrfw.portfolio.fx import FxRates
from ibkrfw.portfolio.portfolio import Trade, round_trips

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = ["RunResult"]


def _utc_index(
    ts_ns: Sequence[int] | np.ndarray[tuple[int], np.dtype[np.int64]],
) -> pd.DatetimeIndex:
    import pandas as pd

    return pd.DatetimeIndex(np.asarray(ts_ns, dtype="datetime64[ns]")).tz_localize("UTC")


@final
class RunResult:
    """The outcome of :meth:`Engine.run <ibkrfw.Engine.run>`.

    Tables are built on first access. Statistics are in :attr:`stats`, one pandas Series with
    stable names.
    """

    def __init__(
        self,
        *,
        strategy_name: str,
        parameters: Mapping[str, object],
        starting_cash: float,
        timestamps_ns: npt.NDArray[np.int64],
        equity: npt.NDArray[np.float64],
        cash: npt.NDArray[np.float64],
        orders: Iterable[Order],
        fills: list[Fill],
        realized: Sequence[Decimal] | None = None,
        bars: Mapping[Instrument, History] | None = None,
        cash_adjustments: Sequence[CashAdjusted] = (),
        base_currency: str = "USD",
        fx: FxRates | None = None,
        halts: Sequence[TradingHalted] = (),
        earlier_fills: Sequence[Fill] = (),
        risk_warnings: Sequence[RiskWarning] = (),
        strategies: Mapping[str, RunResult] | None = None,
    ) -> None:
        self.strategy_name = strategy_name
        self.parameters = dict(parameters)
        self.starting_cash = starting_cash
        self._ts = np.asarray(timestamps_ns, dtype=np.int64)
        self._equity = np.asarray(equity, dtype=np.float64)
        self._cash = np.asarray(cash, dtype=np.float64)
        self._orders = orders
        self._bars = dict(bars or {})
        self.fill_list = fills
        """Every fill, in time order."""
        self._realized = list(realized) if realized is not None else None
        self.cash_adjustments = list(cash_adjustments)
        """Every cash adjustment (borrow fees...), in time order."""
        self.base_currency = base_currency
        """The account's currency, which equity, cash and the money statistics are in."""
        self.fx = fx
        """The exchange rates of the run, if it had any."""
        self.halts = list(halts)
        """Every halt a risk monitor ordered, in time order."""
        self.risk_warnings = list(risk_warnings)
        """What the risk rules and monitors said, as the run started, they cannot do in it
        (a daily loss limit on daily bars...): see :class:`~ibkrfw.RiskWarning`."""
        self.earlier_fills = list(earlier_fills)
        """The fills before the result's span (see :meth:`since`): the positions and trades
        start from them, the statistics do not count them. Empty for a whole run."""
        self.strategies: dict[str, RunResult] = dict(strategies or {})
        """Each strategy's own result by name, when one engine ran several (else empty).

        Each has the strategy's equity curve (from its capital and its own fills), its
        orders, fills, trades, statistics and report; this result is the account's, all of
        them together."""

    def _to_base(self, amount: Decimal, currency: str | None, ts_ns: int) -> float:
        """``amount`` of ``currency`` (None: the base) in the base currency at ``ts_ns``."""
        if currency is None or currency == self.base_currency or not amount:
            return float(amount)
        if self.fx is None:
            raise ConfigError(f"no exchange rates to convert {currency} into {self.base_currency}")
        return float(amount) * self.fx.rate(currency, ts_ns)

    @cached_property
    def order_list(self) -> list[Order]:
        """Every order of the run, in its final state."""
        return list(self._orders)

    @cached_property
    def trade_list(self) -> list[Trade]:
        """Every closed round-trip trade, grouped from the fills.

        See :func:`~ibkrfw.portfolio.round_trips` for how.
        """
        if not self.earlier_fills:
            return round_trips(self.fill_list)
        before = max(f.ts_ns for f in self.earlier_fills)
        trades = round_trips([*self.earlier_fills, *self.fill_list])
        return [t for t in trades if t.exit_ns > before]  # closed by a fill of the span

    @cached_property
    def equity(self) -> pd.DataFrame:
        """Equity and cash after each timestamp (UTC index), plus the market value held."""
        import pandas as pd

        frame = pd.DataFrame(
            {"equity": self._equity, "cash": self._cash}, index=_utc_index(self._ts)
        )
        frame["market_value"] = frame["equity"] - frame["cash"]
        frame.index.name = "timestamp"
        return frame

    @cached_property
    def positions(self) -> pd.DataFrame:
        """The quantity held of each instrument after each timestamp (one column each).

        Rows are the equity curve's timestamps; a fill counts from its own time on. Negative
        quantities are short positions.
        """
        import pandas as pd

        index = _utc_index(self._ts)
        columns: dict[str, npt.NDArray[np.float64]] = {}
        by_instrument: dict[Instrument, list[Fill]] = {}
        for fill in [*self.earlier_fills, *self.fill_list]:
            by_instrument.setdefault(fill.instrument, []).append(fill)
        for inst in [*self._bars, *(i for i in by_instrument if i not in self._bars)]:
            fills = by_instrument.get(inst, [])
            stamps = np.array([f.ts_ns for f in fills], dtype=np.int64)
            held = np.cumsum([float(f.signed_quantity) for f in fills], dtype=np.float64)
            at = np.searchsorted(stamps, self._ts, side="right") - 1
            columns[inst.id] = np.where(at >= 0, held[np.maximum(at, 0)] if len(held) else 0.0, 0.0)
        frame = pd.DataFrame(columns, index=index)
        frame.columns.name = "instrument"
        return frame

    @cached_property
    def closes(self) -> pd.DataFrame:
        """The close of each instrument's bars, one column each (UTC index of every bar time).

        An instrument without a bar at some time is NaN there. With
        :func:`~ibkrfw.analysis.returns_of` it gives the returns the correlation functions
        take.
        """
        import pandas as pd

        columns = {
            inst.id: pd.Series(h.close, index=_utc_index(h.ts_ns)) for inst, h in self._bars.items()
        }
        frame = pd.DataFrame(columns)
        frame.index.name = "timestamp"
        frame.columns.name = "instrument"
        return frame

    @cached_property
    def orders(self) -> pd.DataFrame:
        """Every order with its request, final status, fills and reason, one row each."""
        import pandas as pd

        rows = [
            {
                "order_id": o.order_id,
                "created": o.created_ns,
                "updated": o.updated_ns,
                "instrument": o.instrument.id,
                "side": str(o.side),
                "type": str(o.request.order_type),
                "quantity": o.quantity,
                "limit_price": o.request.limit_price,
                "stop_price": o.request.stop_price,
                "tif": str(o.request.tif),
                "status": str(o.status),
                "filled_quantity": o.filled_quantity,
                "avg_fill_price": o.avg_fill_price,
                "reason": o.reason,
                "tag": o.request.tag,
            }
            for o in self.order_list
        ]
        frame = pd.DataFrame(rows, columns=list(_ORDER_COLUMNS))
        for col in ("created", "updated"):
            frame[col] = _utc_index(frame[col].to_numpy(dtype=np.int64))
        return frame.set_index("order_id")

    @cached_property
    def fills(self) -> pd.DataFrame:
        """One row per fill (ledger values stay Decimal, in the instrument's currency).

        ``realized_pnl`` is the profit the fill realised before commission (zero when it
        opened or added to a position; None if the result was built without it).
        """
        import pandas as pd

        rows = [
            {
                "timestamp": f.ts_ns,
                "order_id": f.order_id,
                "instrument": f.instrument.id,
                "currency": f.instrument.currency,
                "side": str(f.side),
                "quantity": f.quantity,
                "price": f.price,
                "commission": f.commission,
                "slippage": f.slippage,
                "realized_pnl": pnl,
                "fill_id": f.fill_id,
            }
            for f, pnl in zip(self.fill_list, self._realized or repeat(None), strict=False)
        ]
        frame = pd.DataFrame(rows, columns=list(_FILL_COLUMNS))
        frame["timestamp"] = _utc_index(frame["timestamp"].to_numpy(dtype=np.int64))
        return frame

    @cached_property
    def trades(self) -> pd.DataFrame:
        """One row per closed round trip, with profit before and after commissions.

        Prices and money are in the instrument's currency (the ``currency`` column).

        ``mae`` and ``mfe`` are the maximum adverse and favourable excursions while the trade
        was open: the worst and best prices against the entry price, over the bars from the
        entry bar (whole) up to the exit bar (not included), and the exit price. They are given
        in currency for the trade's quantity, and in ``mae_pct`` and ``mfe_pct`` as percentages
        of the entry price. NaN without bars.
        """
        import pandas as pd

        rows = [
            {
                "instrument": t.instrument.id,
                "currency": t.instrument.currency,
                "side": "LONG" if t.side.sign > 0 else "SHORT",
                "quantity": t.quantity,
                "entry_time": t.entry_ns,
                "exit_time": t.exit_ns,
                "entry_price": t.entry_price,
                "exit_price": t.exit_price,
                "gross_pnl": t.gross_pnl,
                "commission": t.commission,
                "pnl": t.pnl,
                "return_pct": t.return_pct,
                **self._excursions(t),
            }
            for t in self.trade_list
        ]
        frame = pd.DataFrame(rows, columns=list(_TRADE_COLUMNS))
        for col in ("entry_time", "exit_time"):
            frame[col] = _utc_index(frame[col].to_numpy(dtype=np.int64))
        frame["duration"] = frame["exit_time"] - frame["entry_time"]
        return frame

    def _excursions(self, trade: Trade) -> dict[str, float]:
        nan = math.nan
        bars = self._bars.get(trade.instrument)
        if bars is None:
            return {"mae": nan, "mfe": nan, "mae_pct": nan, "mfe_pct": nan}
        ts = bars.ts_ns
        first = int(np.searchsorted(ts, trade.entry_ns, "left"))
        stop = int(np.searchsorted(ts, trade.exit_ns, "left"))  # exit bar: its exit price only
        high = low = float(trade.exit_price)
        if stop > first:
            high = max(high, float(bars.high[first:stop].max()))
            low = min(low, float(bars.low[first:stop].min()))
        entry = float(trade.entry_price)
        up, down = max(high - entry, 0.0), max(entry - low, 0.0)
        adverse, favourable = (down, up) if trade.side.sign > 0 else (up, down)
        size = float(trade.quantity * trade.instrument.multiplier)
        return {
            "mae": adverse * size,
            "mfe": favourable * size,
            "mae_pct": adverse / entry * 100 if entry else nan,
            "mfe_pct": favourable / entry * 100 if entry else nan,
        }

    def since(self, start_ns: int) -> RunResult:
        """The same run, seen from ``start_ns`` on: the statistics of a later span of it.

        The equity curve starts at its last row before ``start_ns``, the equity the span opens
        with (the ``Initial equity``), so every return of the span counts once and the
        earlier rows do not. Fills, cash adjustments and halts are those at or after
        ``start_ns``; trades those closed by a fill at or after it; orders those created or
        last changed at or after it. Positions held when the span opens are carried in: the
        earlier fills are kept in :attr:`earlier_fills` for the positions and trades, and
        count in no statistic. :func:`~ibkrfw.optimize.walk_forward` scores its
        out-of-sample runs this way, without their lead-in.

        Example:
            >>> from ibkrfw import Engine
            >>> from ibkrfw.data import sample_feed
            >>> from ibkrfw.sim import SimBroker
            >>> from ibkrfw.strategies import MovingAverageCrossover
            >>> result = Engine(MovingAverageCrossover(), sample_feed(["ACME"]),
            ...                 SimBroker(cash=100_000)).run()
            >>> late = result.since(result.equity.index[500].value)
            >>> int(late.stats["Bars"]) == len(result.equity) - 499
            True
        """
        ts = self._ts
        first = max(int(np.searchsorted(ts, start_ns, "left")) - 1, 0)
        split = next((i for i, f in enumerate(self.fill_list) if f.ts_ns >= start_ns),
                     len(self.fill_list))  # fmt: skip
        realized = None if self._realized is None else self._realized[split:]
        return RunResult(
            strategy_name=self.strategy_name,
            parameters=self.parameters,
            starting_cash=float(self._equity[first]) if len(ts) else self.starting_cash,
            timestamps_ns=ts[first:],
            equity=self._equity[first:],
            cash=self._cash[first:],
            orders=[o for o in self.order_list if o.updated_ns >= start_ns],
            fills=self.fill_list[split:],
            realized=realized,
            bars=self._bars,
            cash_adjustments=[a for a in self.cash_adjustments if a.ts_ns >= start_ns],
            base_currency=self.base_currency,
            fx=self.fx,
            halts=[h for h in self.halts if h.ts_ns >= start_ns],
            earlier_fills=[*self.earlier_fills, *self.fill_list[:split]],
            risk_warnings=self.risk_warnings,  # about the whole run: every span has them
            strategies={name: part.since(start_ns) for name, part in self.strategies.items()},
        )

    @cached_property
    def stats(self) -> pd.Series:
        """The run's statistics as one Series with stable names (:meth:`statistics`)."""
        return self.statistics()

    def statistics(
        self,
        *,
        benchmark: pd.Series | None = None,
        periods_per_year: float | None = None,
        risk_free: float = 0.0,
    ) -> pd.Series:
        """The run's statistics, one Series with stable names.

        Returns are per recorded timestamp (one per distinct bar time). They are annualised
        with the number of bars per calendar year observed in the data, which follows the
        trading sessions of the bars (about 252 for US daily bars), unless
        ``periods_per_year`` says otherwise; the rows ``Periods per year`` and
        ``Annualisation`` show which. Money is in the base currency: a trade's profit is
        converted at the rate of its exit, a commission or a cash adjustment at its time.

        ``Trades`` counts the closed round trips (:attr:`trade_list`), and every statistic
        about trades (win rate, best and worst, averages, expectancy, profit factor) is about
        them; ``Open trades`` counts the positions still open at the end (one per instrument),
        whose profit or loss is in the equity but in no trade statistic. A run that buys and
        holds has ``Trades`` 0, ``Open trades`` 1 and a NaN win rate.

        ``Exposure [%]`` is the share of timestamps ending with a position; ``Turnover
        (annual)`` the value traded (buys and sells) over the mean equity, per year; the
        largest drawdown's duration runs from its peak to the recovery, or to the end if equity
        never got back; ``Slippage`` is what the simulator's slippage model cost (0 live).

        Edge cases have defined values: what cannot be computed (a Sharpe ratio with zero
        volatility, a profit factor without a losing trade, anything about trades when there
        are none) is NaN, never infinity, and nothing raises.

        Args:
            benchmark: Prices of a benchmark (a Series with a time-zone-aware index): adds
                ``Alpha [%]``, ``Beta`` and ``Benchmark return [%]``, from its returns at the
                run's timestamps (the last price at or before each).
            periods_per_year: Annualise with this many periods instead of the observed number.
            risk_free: An annual risk-free rate for the Sharpe and Sortino ratios.
        """
        import pandas as pd

        ts, eq = self._ts, self._equity
        rets = metrics.simple_returns(eq)
        observed = metrics.periods_per_year(ts)
        periods = observed if periods_per_year is None else float(periods_per_year)
        years = float(ts[-1] - ts[0]) / (365.25 * 86_400e9) if len(ts) > 1 else math.nan
        dd = metrics.drawdown(eq)
        water = metrics.longest_under_water(eq)
        to_base = self._to_base
        pnl = np.array([to_base(t.pnl, t.instrument.currency, t.exit_ns) for t in self.trade_list])
        ret_pct = np.array([t.return_pct for t in self.trade_list])
        trades = metrics.trade_stats(pnl)
        cagr = metrics.cagr(eq, ts)
        nan = math.nan
        if len(eq):  # the share of timestamps ending with a position, in place: no index either
            held = np.subtract(eq, self._cash)
            np.abs(held, out=held)
            exposure = float(np.count_nonzero(held > 1e-9)) / len(eq) * 100
            del held
        else:
            exposure = nan
        traded = sum(
            (
                to_base(f.quantity * f.price * f.instrument.multiplier, f.instrument.currency,
                        f.ts_ns)
                for f in self.fill_list
            ),
            0.0,
        )  # fmt: skip
        mean_equity = float(np.mean(eq)) if len(eq) else nan

        def stamp(i: int) -> pd.Timestamp:  # what a DatetimeIndex of ts would give, without one
            return pd.Timestamp(int(ts[i]), unit="ns", tz="UTC")

        def at(i: int) -> object:
            return stamp(i) if 0 <= i < len(ts) else pd.NaT

        values: dict[str, object] = {
            "Start": at(0),
            "End": at(len(ts) - 1),
            "Duration": stamp(len(ts) - 1) - stamp(0) if len(ts) else pd.NaT,
            "Bars": len(ts),
            "Initial equity": self.starting_cash,
            "Final equity": float(eq[-1]) if len(eq) else self.starting_cash,
            "Total return [%]": metrics.total_return(eq) * 100,
            "CAGR [%]": cagr * 100,
            "Annual volatility [%]": metrics.annual_volatility(rets, periods) * 100,
            "Sharpe ratio": metrics.sharpe_ratio(rets, periods, risk_free),
            "Sortino ratio": metrics.sortino_ratio(rets, periods, risk_free),
            "Calmar ratio": metrics.calmar_ratio(cagr, dd.depth),
            "Max drawdown [%]": dd.depth * 100,
            "Max drawdown start": at(dd.peak) if dd.depth < 0 else pd.NaT,
            "Max drawdown trough": at(dd.trough) if dd.depth < 0 else pd.NaT,
            "Max drawdown recovery": at(dd.recovery) if dd.depth < 0 else pd.NaT,
            "Max drawdown duration": (
                stamp(dd.recovery if dd.recovery >= 0 else len(ts) - 1) - stamp(dd.peak)
                if dd.depth < 0
                else pd.Timedelta(0)
            ),
            "Time under water [%]": metrics.time_under_water(eq) * 100,
            "Longest under water": (
                stamp(water[1]) - stamp(water[0]) if water[1] > water[0] else pd.Timedelta(0)
            ),
            "Exposure [%]": exposure,
            "Turnover (annual)": traded / mean_equity / years
            if years > 0 and mean_equity > 0
            else nan,
            "Trades": trades.trades,
            "Open trades": self._open_positions(),
            "Trades per year": trades.trades / years if years > 0 else nan,
            "Win rate [%]": trades.win_rate * 100,
            "Best trade [%]": float(ret_pct.max()) if len(pnl) else nan,
            "Worst trade [%]": float(ret_pct.min()) if len(pnl) else nan,
            "Average win": trades.average_win,
            "Average loss": trades.average_loss,
            "Largest win": trades.largest_win,
            "Largest loss": trades.largest_loss,
            "Expectancy": trades.expectancy,
            "Profit factor": trades.profit_factor,
            "Commissions": sum(
                (to_base(f.commission, f.instrument.currency, f.ts_ns) for f in self.fill_list),
                0.0,
            ),
            "Slippage": sum(
                (to_base(f.slippage, f.instrument.currency, f.ts_ns) for f in self.fill_list),
                0.0,
            ),
            "Cash adjustments": sum(
                (to_base(a.amount, a.currency, a.ts_ns) for a in self.cash_adjustments), 0.0
            ),
            "Halts": len(self.halts),
            "Periods per year": periods,
            "Annualisation": "observed bars per year" if periods_per_year is None else "given",
        }
        if benchmark is not None:
            values.update(self._against(benchmark, rets, periods))
        return pd.Series(values, name=self.strategy_name, dtype=object)

    def _open_positions(self) -> int:
        """How many instruments hold a position after the last fill."""
        net: dict[Instrument, Decimal] = {}
        for fill in (*self.earlier_fills, *self.fill_list):
            net[fill.instrument] = net.get(fill.instrument, Decimal(0)) + (
                fill.quantity if fill.side.sign > 0 else -fill.quantity
            )
        return sum(1 for quantity in net.values() if quantity)

    def summary(self, stats: pd.Series | None = None) -> pd.Series:
        """The statistics as text for reading: rounded, in the exchange's time zone.

        Times are in the time zone of the run's first instrument (dates alone for daily bars:
        bars that all start at midnight there, or all at one time of day a day or more apart),
        durations of daily runs in whole days (a daylight-saving hour is not a duration), of
        other runs as days and a clock time (``3 days 04:00``), money and percentages with two
        decimals, ratios with two, counts as whole numbers, and what could not be computed as
        ``n/a``. :attr:`stats` keeps the exact values; this is what ``ibkrfw backtest`` prints.

        Args:
            stats: The statistics to show (default :attr:`stats`), e.g. from
                :meth:`statistics` with a benchmark.

        Example:
            >>> from ibkrfw import Engine
            >>> from ibkrfw.data import sample_feed
            >>> from ibkrfw.sim import SimBroker
            >>> from ibkrfw.strategies import MovingAverageCrossover
            >>> result = Engine(MovingAverageCrossover(), sample_feed(["ACME"]),
            ...                 SimBroker(cash=100_000)).run()
            >>> result.summary()[["Start", "Initial equity", "Sharpe ratio"]].tolist()
            ['2015-01-02', '100,000.00', '-0.63']
        """
        from ibkrfw.analysis.formatting import format_stats

        tz = next((i.timezone for i in self._bars), "UTC")
        index = _utc_index(self._ts).tz_convert(tz)
        return format_stats(self.stats if stats is None else stats, tz=tz, daily=_daily(index))

    def _against(
        self, benchmark: pd.Series, rets: npt.NDArray[np.float64], periods: float
    ) -> dict[str, object]:
        import pandas as pd

        if not isinstance(benchmark.index, pd.DatetimeIndex) or benchmark.index.tz is None:
            raise ConfigError("the benchmark needs a time-zone-aware DatetimeIndex of prices")
        prices = benchmark.sort_index().astype("float64")
        aligned = np.asarray(
            prices.reindex(_utc_index(self._ts), method="ffill").to_numpy(), dtype=np.float64
        )
        bench_rets = metrics.simple_returns(aligned)
        alpha, beta = metrics.alpha_beta(rets, bench_rets, periods)
        first, last = aligned[0] if len(aligned) else math.nan, aligned[-1] if len(aligned) else 0
        return {
            "Benchmark return [%]": (last / first - 1) * 100 if first > 0 else math.nan,
            "Alpha [%]": alpha * 100,
            "Beta": beta,
        }

    def plot(self, *, benchmark: pd.Series | None = None, show: bool = True) -> Figure:
        """Draw the tearsheet (:func:`~ibkrfw.reports.tearsheet`), show it, return it.

        Args:
            benchmark: Prices to draw beside the equity curve.
            show: Call ``matplotlib.pyplot.show()`` (set False in scripts that save it).
        """
        import matplotlib.pyplot as plt

        from ibkrfw.reports.plots import tearsheet

        figure = tearsheet(self, benchmark=benchmark)
        if show:
            plt.show()
        return figure

    def report(
        self,
        path: str | os.PathLike[str],
        *,
        benchmark: pd.Series | None = None,
        title: str | None = None,
    ) -> None:
        """Write one self-contained HTML report (:func:`~ibkrfw.reports.write_report`)."""
        from ibkrfw.reports.html import write_report

        write_report(self, path, benchmark=benchmark, title=title)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the result to one file (a zip of JSON and numpy arrays; no pickle).

        :meth:`load` reads it back, with the same tables and statistics.
        """
        from ibkrfw.engine.storage import save_result

        save_result(self, path)

    @staticmethod
    def load(path: str | os.PathLike[str]) -> RunResult:
        """Read a result written by :meth:`save`.

        Parameters that were not plain JSON values (numbers, text, lists...) come back as
        their ``repr`` text.

        Raises:
            ConfigError: if the file is not a saved run of this format.
        """
        from ibkrfw.engine.storage import load_result

        return load_result(path)

    def __repr__(self) -> str:
        return (
            f"<RunResult {self.strategy_name} bars={len(self._ts)} orders={len(self.order_list)}>"
        )


_ORDER_COLUMNS = (
    "order_id",
    "created",
    "updated",
    "instrument",
    "side",
    "type",
    "quantity",
    "limit_price",
    "stop_price",
    "tif",
    "status",
    "filled_quantity",
    "avg_fill_price",
    "reason",
    "tag",
)
_FILL_COLUMNS = (
    "timestamp",
    "order_id",
    "instrument",
    "currency",
    "side",
    "quantity",
    "price",
    "commission",
    "slippage",
    "realized_pnl",
    "fill_id",
)
_TRADE_COLUMNS = (
    "instrument",
    "currency",
    "side",
    "quantity",
    "entry_time",
    "exit_time",
    "entry_price",
    "exit_price",
    "gross_pnl",
    "commission",
    "pnl",
    "return_pct",
    "mae",
    "mfe",
    "mae_pct",
    "mfe_pct",
)


def _daily(index: pd.DatetimeIndex) -> bool:
    """Whether bars at ``index`` (local times) are daily (or longer) bars.

    They are if every bar starts at midnight, or if all start at one time of day (e.g. 09:30)
    at least 23 hours apart (a day less a daylight-saving hour).
    """
    import pandas as pd

    if not len(index):
        return False
    times = index - index.normalize()
    if (times == pd.Timedelta(0)).all():
        return True
    if len(index) < 2 or len(times.unique()) > 1:
        return False
    return bool(index.unique().sort_values().to_series().diff().min() >= pd.Timedelta(hours=23))
