"""Running risk monitors: watch the account as time passes, and halt trading when told to.

A monitor looks at the portfolio once per time stamp, once the strategy has handled every bar
of it (the account marked at those bars' closes). When it returns a :class:`Halt`,
the engine stops every order that would add risk until the halt ends, optionally cancels the
working orders that would add risk or closes every position first, and reports a
:class:`~ibkrfw.TradingHalted` event. The same monitors run in a backtest and live.

Since a monitor sees the account at the closes, the orders the strategy decided on the bar that
broke a limit are already sent when it halts; the built-in monitors that watch closes
(:class:`DailyLossLimit`, :class:`MaxDrawdownKillSwitch`, :class:`MaintenanceMargin`) cancel
those of them that add risk. On bars of a day or longer that is all a daily loss limit can
stop: it says so when the run starts (:meth:`RiskMonitor.on_start`).
"""

from __future__ import annotations

import datetime as dt
import math
from abc import ABC, abstractmethod
from typing import final
from zoneinfo import ZoneInfo

import attrs
from typing_extensions import override

from ibkrfw.errors import ConfigError
from ibkrfw.model.events import OrderEvent, OrderFilled, OrderRejected
from ibkrfw.model.orders import Order, OrderType
from ibkrfw.portfolio.portfolio import PortfolioView
from ibkrfw.risk.rule import _DAILY_NS, LimitUsage, _duration

__all__ = [
    "CircuitBreaker",
    "DailyLossLimit",
    "Halt",
    "MaintenanceMargin",
    "MaxDrawdownKillSwitch",
    "RiskMonitor",
]


@final
@attrs.frozen
class Halt:
    """A monitor's order to stop trading.

    Args:
        reason: Why, in words.
        until_ns: When trading may resume (UTC ns); None for the rest of the run.
        flatten: Close every position at once (market orders), besides refusing new risk.
        cancel_orders: Also cancel the working orders that would add risk: those on the side
            of their instrument's position, and every one of a flat instrument (exits, such
            as protective orders and a bracket's children once its entry has filled, are
            kept). Those the strategy sent before the halt, which would otherwise fill
            during it. (A flatten cancels every working order.)
    """

    reason: str
    until_ns: int | None = None
    flatten: bool = False
    cancel_orders: bool = False


class RiskMonitor(ABC):
    """Watches the account once per time stamp; may halt trading."""

    @property
    def name(self) -> str:
        """The monitor's name in halts and logs (its class name unless overridden)."""
        return type(self).__name__

    @abstractmethod
    def observe(self, portfolio: PortfolioView, ts_ns: int) -> Halt | None:
        """Look at ``portfolio`` at ``ts_ns``; return a :class:`Halt` to stop trading."""

    @property
    def watches_orders(self) -> bool:
        """Whether :meth:`on_order` should see every order event (False here: cheaper)."""
        return False

    def on_order(self, order: Order, event: OrderEvent) -> Halt | None:
        """See an order event (if :attr:`watches_orders`); return a :class:`Halt` to stop."""
        del order, event
        return None

    def usage(self, portfolio: PortfolioView) -> list[LimitUsage]:
        """How much of the monitor's limits ``portfolio`` uses now (none here)."""
        del portfolio
        return []

    def on_start(self, portfolio: PortfolioView, bar_ns: int | None) -> str | None:
        """Get ready for a run; say what the monitor cannot do at the run's bar size.

        The engine calls it once, when the run starts: after positions held at the broker
        are booked, before the first bar. Nothing here.

        Args:
            portfolio: The account as the run starts.
            bar_ns: How long the run's bars last (the shortest of its feeds',
                :attr:`DataFeed.bar_ns <ibkrfw.DataFeed.bar_ns>`), None if not known.

        Returns:
            What the monitor cannot do at that bar size, and what it does instead, in words,
            or None. The engine logs it as a warning and reports it as a
            :class:`~ibkrfw.RiskWarning`.

        Raises:
            ConfigError: if the monitor can do nothing useful at that bar size.
        """
        del portfolio, bar_ns
        return None


def _zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"unknown time zone {tz!r}: {exc}") from None


@final
class DailyLossLimit(RiskMonitor):
    """Stop adding risk for the rest of the day once the day's loss reaches a limit.

    The day starts at midnight in ``tz``. Its loss is measured as IB's daily P&L is, from the
    previous day's closing equity (the last equity seen before the day began; on the first
    day of the run, the equity it started with), so a fall overnight or at the open counts.
    When it reaches the limit, orders that add risk are refused until the next day, and the
    working orders that add risk are cancelled (see ``cancel_orders`` of :class:`Halt`).

    On bars of a day or longer the day's loss is known only at a bar's close, when the day's
    trading is over, so the limit cannot stop trading during the day: the halt then covers
    the orders decided at that close, which would trade in the next session (they are
    cancelled; with ``flatten`` the positions are closed at the next open). The monitor says
    so when the run starts (a :class:`~ibkrfw.RiskWarning`).

    Args:
        limit: The loss, in the base currency, that halts trading.
        percent: The loss as a share of the day's starting equity (0.02: 2 %).
        flatten: Also close every position when the limit is reached.
        tz: The time zone whose midnight starts a day.

    Raises:
        ConfigError: if neither limit is given, one is not positive, or the zone is unknown.
    """

    def __init__(
        self,
        limit: float | None = None,
        *,
        percent: float | None = None,
        flatten: bool = False,
        tz: str = "America/New_York",
    ) -> None:
        if limit is None and percent is None:
            raise ConfigError("DailyLossLimit needs a limit or a percent")
        for name, value in (("limit", limit), ("percent", percent)):
            if value is not None and not value > 0:
                raise ConfigError(f"{name} must be positive, got {value!r}")
        self.limit, self.percent, self.flatten = limit, percent, flatten
        self.zone = _zone(tz)
        self._day: dt.date | None = None
        self._start = math.nan  # the day's starting equity: the previous day's close
        self._last = math.nan  # the last equity seen
        self._halted_day: dt.date | None = None
        self._daily_bars = False

    @override
    def on_start(self, portfolio: PortfolioView, bar_ns: int | None) -> str | None:
        self._day, self._start, self._halted_day = None, math.nan, None  # a new run
        self._last = portfolio.equity  # the first day's loss counts from here
        self._daily_bars = bar_ns is not None and bar_ns >= _DAILY_NS
        if bar_ns is None or not self._daily_bars:
            return None
        said = (
            f"on bars of {_duration(bar_ns)} a day's loss is known only at a bar's close, when "
            "the day's trading is over: the limit cannot stop trading during the day. When a "
            "close shows it reached, the orders decided at that close that add risk (they "
            "would trade in the next session) are cancelled"
            + (" and every position is closed at the next open" if self.flatten else "")
        )
        if bar_ns > 36 * 3_600 * 1_000_000_000:
            said += (
                f"; and as one bar spans {_duration(bar_ns)}, the loss measured is a bar's, "
                "not a day's"
            )
        return said

    @override
    def usage(self, portfolio: PortfolioView) -> list[LimitUsage]:
        if math.isnan(self._start):
            return []
        allowed = min(
            self.limit if self.limit is not None else math.inf,
            self.percent * self._start if self.percent is not None else math.inf,
        )
        return [LimitUsage("daily loss", max(self._start - portfolio.equity, 0.0), allowed)]

    @override
    def observe(self, portfolio: PortfolioView, ts_ns: int) -> Halt | None:
        local = dt.datetime.fromtimestamp(ts_ns / 1e9, tz=self.zone)
        day = local.date()
        equity = portfolio.equity
        if day != self._day:
            # A new day: its loss counts from the last equity seen before it, the previous
            # day's close (without a start, as in a bare call, from the first one seen today).
            self._day = day
            self._start = self._last if not math.isnan(self._last) else equity
        if not math.isnan(equity):
            self._last = equity
        if self._halted_day == day or math.isnan(equity) or math.isnan(self._start):
            return None
        loss = self._start - equity
        allowed = min(
            self.limit if self.limit is not None else math.inf,
            self.percent * self._start if self.percent is not None else math.inf,
        )
        if loss < allowed:
            return None
        self._halted_day = day
        tomorrow = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=self.zone)
        reason = f"the day's loss of {loss:,.2f} reached the limit of {allowed:,.2f}"
        if self._daily_bars:
            reason += " (seen at the day's close: the orders decided at it that add risk stop)"
        return Halt(
            reason,
            until_ns=int(tomorrow.timestamp()) * 1_000_000_000,
            flatten=self.flatten,
            cancel_orders=True,
        )


@final
class MaxDrawdownKillSwitch(RiskMonitor):
    """Halt for the rest of the run once equity falls a share below its peak.

    Equity is seen at each time stamp's closes. The halt also cancels the working orders that
    add risk (among them those decided at the bar that broke the limit, on bars of any size;
    see ``cancel_orders`` of :class:`Halt`).

    Args:
        max_drawdown: The fall from the peak that halts, as a share (0.2: 20 %).
        flatten: Also close every position (the default: a kill switch gets out).

    Raises:
        ConfigError: if ``max_drawdown`` is not in (0, 1).
    """

    def __init__(self, max_drawdown: float, *, flatten: bool = True) -> None:
        if not 0 < max_drawdown < 1:
            raise ConfigError(f"max_drawdown must be in (0, 1), got {max_drawdown!r}")
        self.max_drawdown, self.flatten = max_drawdown, flatten
        self._peak = -math.inf
        self._tripped = False

    @override
    def usage(self, portfolio: PortfolioView) -> list[LimitUsage]:
        if not self._peak > 0:
            return []
        return [LimitUsage("drawdown", max(1 - portfolio.equity / self._peak, 0.0),
                           self.max_drawdown)]  # fmt: skip

    @override
    def observe(self, portfolio: PortfolioView, ts_ns: int) -> Halt | None:
        equity = portfolio.equity
        if self._tripped or math.isnan(equity):
            return None
        self._peak = max(self._peak, equity)
        if self._peak > 0 and equity <= self._peak * (1 - self.max_drawdown):
            self._tripped = True
            fall = 1 - equity / self._peak
            return Halt(
                f"equity {equity:,.2f} is {fall:.1%} below its peak of {self._peak:,.2f} "
                f"(the limit is {self.max_drawdown * 100:.4g}%)",  # 0.05%, not 0%
                flatten=self.flatten,
                cancel_orders=True,
            )
        return None


@final
class CircuitBreaker(RiskMonitor):
    """Halt when too many rejections or stop-outs come within a short time.

    A stop-out is a fill of a stop or trailing-stop order (a stop-loss taken). Either count
    reaching its limit within ``minutes`` halts trading for ``pause_minutes`` (for the rest of
    the run if None). It counts the events as they come, before the strategy sees the bar they
    came on, so its halt stops the orders decided at that bar on bars of any size. But with a
    window shorter than a bar only the events of one bar count together, and a pause shorter
    than a bar stops only the orders of the bar it trips on: it says so when the run starts
    (a :class:`~ibkrfw.RiskWarning`).

    Args:
        max_rejections: Rejections by the broker (:class:`~ibkrfw.OrderRejected`) that trip it.
        max_stop_outs: Stop-outs that trip it.
        minutes: The window the events are counted in.
        pause_minutes: How long trading stays halted; None for the rest of the run.
        flatten: Also close every position when it trips.

    Raises:
        ConfigError: if no limit is given, or a number is not positive.
    """

    def __init__(
        self,
        *,
        max_rejections: int | None = None,
        max_stop_outs: int | None = None,
        minutes: float = 60.0,
        pause_minutes: float | None = None,
        flatten: bool = False,
    ) -> None:
        if max_rejections is None and max_stop_outs is None:
            raise ConfigError("CircuitBreaker needs max_rejections or max_stop_outs")
        for name, value in (
            ("max_rejections", max_rejections),
            ("max_stop_outs", max_stop_outs),
            ("minutes", minutes),
            ("pause_minutes", pause_minutes),
        ):
            if value is not None and not value > 0:
                raise ConfigError(f"{name} must be positive, got {value!r}")
        self.max_rejections, self.max_stop_outs = max_rejections, max_stop_outs
        self.window_ns = int(minutes * 60e9)
        self.pause_ns = None if pause_minutes is None else int(pause_minutes * 60e9)
        self.flatten = flatten
        self._minutes = minutes
        self._rejections: list[int] = []
        self._stop_outs: list[int] = []
        self._stopped_orders: set[int] = set()

    @property
    @override
    def watches_orders(self) -> bool:
        return True

    @override
    def on_start(self, portfolio: PortfolioView, bar_ns: int | None) -> str | None:
        if bar_ns is None:
            return None
        bar = _duration(bar_ns)
        said = []
        if self.window_ns < bar_ns:
            said.append(
                f"the window of {self._minutes:g} minutes is shorter than a bar ({bar}): only "
                "the rejections and stop-outs of one bar count together"
            )
        if self.pause_ns is not None and self.pause_ns < bar_ns:
            said.append(
                f"the pause of {self.pause_ns / 60e9:g} minutes is shorter than a bar ({bar}): "
                "it stops only the orders of the bar on which it trips"
            )
        return "; ".join(said) or None

    @override
    def observe(self, portfolio: PortfolioView, ts_ns: int) -> Halt | None:
        return None

    @override
    def on_order(self, order: Order, event: OrderEvent) -> Halt | None:
        ts = event.ts_ns
        if isinstance(event, OrderRejected):
            return self._count(self._rejections, self.max_rejections, ts, "rejections")
        stops = (OrderType.STOP, OrderType.TRAILING_STOP)
        if (
            isinstance(event, OrderFilled)
            and order.request.order_type in stops
            and order.order_id not in self._stopped_orders  # one stop-out per order
        ):
            self._stopped_orders.add(order.order_id)
            return self._count(self._stop_outs, self.max_stop_outs, ts, "stop-outs")
        return None

    def _count(self, seen: list[int], limit: int | None, ts: int, what: str) -> Halt | None:
        if limit is None:
            return None
        seen.append(ts)
        seen[:] = [t for t in seen if ts - t < self.window_ns]
        if len(seen) < limit:
            return None
        seen.clear()
        return Halt(
            f"{limit} {what} within {self._minutes:g} minutes",
            until_ns=None if self.pause_ns is None else ts + self.pause_ns,
            flatten=self.flatten,
        )


@final
class MaintenanceMargin(RiskMonitor):
    """A margin call: halt (and by default close everything) below the maintenance margin.

    It trips when equity falls below the maintenance requirement of the positions held (seen
    at each time stamp's closes, where IB checks it all the time), and arms again once the
    account is flat. Its halt cancels the working orders that add risk
    (``cancel_orders`` of :class:`Halt`), and by default closes every position.

    Args:
        maintenance: The share of gross exposure equity must keep covering (Reg T's minimum
            for US stocks is 25 %; IB often asks more).
        flatten: Close every position when it trips (the default, as a broker would).

    Raises:
        ConfigError: if ``maintenance`` is out of range.
    """

    def __init__(self, maintenance: float = 0.25, *, flatten: bool = True) -> None:
        if not 0 < maintenance <= 1:
            raise ConfigError(f"maintenance must be in (0, 1], got {maintenance!r}")
        self.maintenance, self.flatten = maintenance, flatten
        self._tripped = False

    @override
    def observe(self, portfolio: PortfolioView, ts_ns: int) -> Halt | None:
        gross, equity = portfolio.gross_exposure, portfolio.equity
        if not gross > 0:
            self._tripped = False
            return None
        needed = gross * self.maintenance
        if equity >= needed or self._tripped:
            return None
        self._tripped = True
        return Halt(
            f"equity {equity:,.2f} is below the maintenance margin of {needed:,.2f} "
            f"({self.maintenance:.0%} of {gross:,.2f})",
            flatten=self.flatten,
            cancel_orders=True,
        )
