"""Watch a live run: health checks, alerts, and a snapshot for the dashboard.

:class:`LiveMonitor` is an :class:`~ibkrfw.engine.EngineObserver`: it runs on the engine's
thread, sees every event and heartbeat, raises alerts, and publishes an immutable snapshot of
the run (equity, positions, orders, fills, risk, health) that the dashboard's thread reads
without locks on the engine.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, final
from zoneinfo import ZoneInfo

import attrs

from ibkrfw.core.queue import LoadStats
from ibkrfw.engine.engine import Engine, EngineObserver
from ibkrfw.errors import ConfigError
from ibkrfw.model.events import (
    BarReceived,
    ConnectionChanged,
    DataProblem,
    Event,
    OrderAccepted,
    OrderCancelled,
    OrderDenied,
    OrderEvent,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    ProtectionFailed,
    QuoteReceived,
    Reconciled,
    TickReceived,
    TimerFired,
    TradingHalted,
)
from ibkrfw.model.fills import Fill
from ibkrfw.model.orders import Order, Side
from ibkrfw.monitoring.alerts import Alert, Alerter
from ibkrfw.portfolio.portfolio import Ledger, round_trips
from ibkrfw.risk.monitor import DailyLossLimit, MaxDrawdownKillSwitch, RiskMonitor
from ibkrfw.risk.rule import RiskRule

__all__ = ["IB_NIGHTLY_RESET", "Check", "Health", "LiveMonitor"]

log = logging.getLogger("ibkrfw.monitor")

IB_NIGHTLY_RESET: tuple[tuple[str, str, str], ...] = (("00:15", "01:45", "America/New_York"),)
"""When IB's servers restart each night (North America, Sunday to Friday, 00:15 to 01:45 New
York time), as a quiet window for alerts. A TWS or Gateway set to restart itself at another
time, and IB's weekend maintenance (Friday 23:00 to Saturday 03:00), need windows of their own."""

Status = Literal["ok", "degraded", "failing"]
_MODES = ("paper", "live", "sandbox", "backtest")
_ZERO = Decimal(0)
_NEAR = 0.8  # the share of a limit at which the risk check turns degraded
_FARM_KINDS = {
    "market_data": "market data",
    "historical": "historical data",
    "security_definition": "security definitions",
}
_CODE = re.compile(r"\bcode (\d+)")
_HISTORY_ACTIONS = frozenset(("pause_history", "resume_history"))  # a farm notice's
_RANK = {"ok": 0, "degraded": 1, "failing": 2}
_NS = 1_000_000_000
_COUNTED: dict[type, str] = {
    OrderSubmitted: "submitted",
    OrderFilled: "filled",
    OrderRejected: "rejected",
    OrderDenied: "denied",
    OrderCancelled: "cancelled",
}


@final
@attrs.frozen
class Check:
    """One health check: its name, status and why."""

    name: str
    status: Status
    detail: str = ""


@final
@attrs.frozen
class Health:
    """The run's health: the worst of its checks, and the reasons."""

    status: Status
    checks: tuple[Check, ...]

    @property
    def reasons(self) -> list[str]:
        """What is not ok, in words."""
        return [f"{c.name}: {c.detail}" for c in self.checks if c.status != "ok"]

    def to_dict(self) -> dict[str, Any]:
        """As JSON-ready values."""
        return {
            "status": self.status,
            "reasons": self.reasons,
            "checks": [attrs.asdict(c) for c in self.checks],
        }


def _iso(ns: int) -> str:
    """``ns`` as an ISO-8601 UTC time, to the second, ending in ``Z``."""
    return dt.datetime.fromtimestamp(ns / _NS, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _money(value: float) -> float | None:
    return round(float(value), 2) if math.isfinite(value) else None


def _age(seconds: float) -> str:
    """A duration in words a reader takes in at once: ``"45 s"``, ``"12 min"``, ``"3.5 h"``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7_200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3_600:.1f} h"


def _bar_size(bar_ns: int) -> str:
    """A feed's bar size in words: ``"1 day"``, ``"5 secs"``, ``"1 min"``."""
    seconds = bar_ns // _NS
    for unit, length in (("day", 86_400), ("hour", 3_600), ("min", 60)):
        if seconds >= length and seconds % length == 0:
            count = seconds // length
            return f"{count} {unit}{'s' if count > 1 else ''}"
    return f"{seconds} sec{'s' if seconds != 1 else ''}"


def _is_exit(engine: Engine, order: Order) -> bool:
    """Whether ``order`` trades against the position held: a stop, a target, a flatten."""
    portfolio = engine.portfolio
    held = portfolio.quantity(order.instrument) if portfolio is not None else 0
    return held != 0 and (held > 0) is (order.request.side is Side.SELL)


def _minutes(text: str) -> int:
    hours, minutes = (int(p) for p in text.split(":"))
    return hours * 60 + minutes


@final
class LiveMonitor(EngineObserver):
    """Health checks, alerts and the dashboard's snapshot of a run.

    Checks (each ``ok``, ``degraded`` or ``failing``; the run's status is the worst):

    * **connection**: failing while disconnected (or IB unreachable) for longer than
      ``disconnect_after_s``, degraded before that;
    * **risk**: failing while a risk monitor's halt is in force (trading stopped by a rule:
      ``/healthz`` then answers 503), degraded while a limit is used to 80 % or more, or
      the drawdown or today's loss is past ``drawdown_alert`` or ``daily_loss_alert``;
    * **data**: degraded when an instrument's last bar is older than ``stale_after_s``
      (its age counted on the engine's clock from when the bar came, see
      :meth:`snapshot`);
    * **heartbeat**: failing when the engine's loop has not reported for
      ``heartbeat_timeout_s`` (measured on the wall clock when the health is read);
    * **orders**: degraded when an order has waited more than ``ack_timeout_s`` for the
      broker's acknowledgement (and an ``order_unacknowledged`` alert, once per order, or
      once per bracket, naming its orders); the
      acknowledgement latencies are in the snapshot;
    * **disk**: failing when the journal's disk has less than ``min_free_mb`` free;
    * **reconciliation**: failing when the last reconciliation refused to trade, degraded
      when it adopted the account's state or raised warnings (an order lost on the way to
      the broker, a margin shortfall).
    * **load** (live runs): degraded while the run is behind: the lag from a message's
      arrival (the socket read) to the end of its handling passes ``max_lag_s`` (its 99th
      percentile over the last seconds, or the age of the oldest event still waiting), or
      more than ``max_inbox`` events wait in the engine's inbox. Entering that state logs
      one WARNING and raises a ``lagging`` alert; leaving it (once both are back under half
      their limit) logs an INFO and raises a ``lag_recovered`` alert. The figures are in
      the snapshot (``load``: :meth:`LoadStats.to_dict <ibkrfw.core.LoadStats.to_dict>`,
      with ``ticks_conflated``, the ticks an IB feed's client conflated before decoding,
      and ``behind``) and the dashboard.

    Alerts (through ``alerter``): disconnection longer than ``disconnect_after_s``, order
    rejected, order unacknowledged past ``ack_timeout_s``, trading halted, drawdown past
    ``drawdown_alert``, daily loss past ``daily_loss_alert``, stale data, data problems,
    reconciliation differences and warnings (``reconciliation_warning``: lost orders, margin),
    and the run ending with an error. An order lost on the way to the broker (an
    :class:`~ibkrfw.OrderRejected` whose reason begins ``"lost:"``) is alerted once, by its
    reconciliation's warning. The disconnection, the halt, the drawdown, the daily loss, the
    reconciliation differences and warnings, the failed run and the rejection of an exit (an
    order against the position held: a protective stop or target, a flatten) are
    ``critical``, so the alerter's hourly cap never holds them back; a rejected entry is a
    ``warning``. During
    the ``quiet`` windows (IB's nightly reset by default) a disconnection raises no alert
    unless it outlasts the window by ``disconnect_after_s``.

    Args:
        alerter: Where alerts go (none if None).
        stale_after_s: How old an instrument's last bar may be.
        disconnect_after_s: How long a disconnection is tolerated.
        heartbeat_timeout_s: How long the loop may be silent.
        ack_timeout_s: How long an order may wait for its acknowledgement.
        journal_dir: The directory of the broker's journal (its disk is checked).
        min_free_mb: The least free space on that disk.
        drawdown_alert: Alert when equity is this far below its peak (0.1: 10 %).
        daily_loss_alert: Alert when today's loss reaches this share of the day's starting
            equity.
        quiet: Windows ``("HH:MM", "HH:MM", "Zone/Name")`` when disconnections are expected
            (None: ``IB_NIGHTLY_RESET``, 00:15 to 01:45 New York; ``()`` for none).
        tz: The zone days are counted in (for today's P&L).
        equity_points: How many equity points the snapshot keeps.
        wall_clock: Seconds, monotonic (for the heartbeat; tests may replace it).
        max_lag_s: How far behind a live run may be, in seconds, before the load check
            turns degraded.
        max_inbox: How many events may wait in the engine's inbox before it does (None:
            the engine's ``inbox_bound``).
        mode: What the run is: ``"paper"``, ``"live"``, ``"sandbox"`` (IB's data, simulated
            fills) or ``"backtest"``, shown in the snapshot. None: the broker says (an
            :class:`~ibkrfw.ibkr.IBKRBroker`'s configured mode), or ``"backtest"`` for a run
            that is not live, or unknown.

    Raises:
        ConfigError: if a quiet window or the time zone is malformed, ``max_lag_s`` is not a
            positive number of seconds, ``max_inbox`` not a whole number of at least 1, or
            ``mode`` not one of the four.
    """

    def __init__(
        self,
        *,
        alerter: Alerter | None = None,
        stale_after_s: float = 900.0,
        disconnect_after_s: float = 120.0,
        heartbeat_timeout_s: float = 30.0,
        ack_timeout_s: float = 10.0,
        journal_dir: str | Path | None = None,
        min_free_mb: float = 200.0,
        drawdown_alert: float | None = 0.1,
        daily_loss_alert: float | None = 0.03,
        quiet: Sequence[tuple[str, str, str]] | None = None,
        tz: str = "America/New_York",
        equity_points: int = 2000,
        wall_clock: Callable[[], float] = time.monotonic,
        max_lag_s: float = 2.0,
        max_inbox: int | None = None,
        mode: str | None = None,
    ) -> None:
        if mode is not None and mode not in _MODES:
            raise ConfigError(
                f"LiveMonitor(mode={mode!r}): give what the run is, one of "
                f"{', '.join(map(repr, _MODES))}, or None to learn it from the broker"
            )
        self.mode = mode
        if isinstance(max_lag_s, bool) or not (
            isinstance(max_lag_s, int | float) and 0 < max_lag_s < math.inf
        ):
            raise ConfigError(
                f"LiveMonitor(max_lag_s={max_lag_s!r}): give how far behind a live run may be "
                "before its health turns degraded, a positive number of seconds (2 by default)"
            )
        if max_inbox is not None and (
            isinstance(max_inbox, bool) or not isinstance(max_inbox, int) or max_inbox < 1
        ):
            raise ConfigError(
                f"LiveMonitor(max_inbox={max_inbox!r}): give how many events may wait in the "
                "engine's inbox before its health turns degraded, a whole number of at least "
                "1, or None for the engine's inbox_bound"
            )
        self.max_lag_s = float(max_lag_s)
        self.max_inbox = max_inbox
        self.alerter = alerter
        self.stale_after_s = stale_after_s
        self.disconnect_after_s = disconnect_after_s
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.ack_timeout_s = ack_timeout_s
        self.journal_dir = Path(journal_dir) if journal_dir is not None else None
        self.min_free_mb = min_free_mb
        self.drawdown_alert = drawdown_alert
        self.daily_loss_alert = daily_loss_alert
        try:
            windows = IB_NIGHTLY_RESET if quiet is None else quiet
            self.quiet = [(_minutes(a), _minutes(b), ZoneInfo(z)) for a, b, z in windows]
            self.zone = ZoneInfo(tz)
        except (ValueError, KeyError) as exc:
            raise ConfigError(f"bad quiet window or time zone: {exc}") from None
        self._wall = wall_clock
        self._lock = threading.Lock()
        self._snapshot: dict[str, Any] = {"status": "starting"}
        self._last_beat = wall_clock()
        self._equity: deque[tuple[int, float]] = deque(maxlen=equity_points)
        self._peak = -math.inf
        self._day: dt.date | None = None
        self._day_start = math.nan
        self._connection = "connected"
        self._connection_since = 0
        self._connection_ts = 0
        self._connection_reason = ""
        self._disconnect_alerted = False
        # order id -> (wall time, instrument, its group: the bracket's entry, or itself)
        self._waiting: dict[int, tuple[float, str, int]] = {}
        self._late_alerted: set[int] = set()  # orders alerted as unacknowledged
        self._counts = dict.fromkeys(("submitted", "filled", "rejected", "denied", "cancelled"), 0)
        self._latencies: deque[float] = deque(maxlen=200)
        self._fills: deque[dict[str, Any]] = deque(maxlen=200)
        self._received: dict[int, int] = {}  # a fill's time -> the engine's when it came
        # what the portfolio's fills give (round trips, open trades' starts, realised P&L
        # by currency), worked out again only when a fill is added
        self._by_fills: tuple[int, list[dict[str, Any]], dict[Any, int], dict[str, float]] = (
            -1,
            [],
            {},
            {},
        )
        self._start_ns = 0  # the engine's clock when the run began
        self._last_equity = math.nan  # the last equity seen: the next day starts from it
        # instrument -> (its last bar's time, when it came: engine clock) / last quote
        self._bars_seen: dict[str, tuple[int, int]] = {}
        self._quotes: dict[str, tuple[float, float, int]] = {}  # bid, ask, when it came
        self._ticks: dict[str, float] = {}  # the last trade's price
        self._bar_sizes: dict[str, str] = {}
        self._connection_code: int | None = None
        self._reconnecting = False
        self._reconciled: Reconciled | None = None
        self._problems: dict[str, str] = {}
        self._stale_alerted: set[str] = set()
        self._drawdown_alerted = False
        self._loss_alerted_day: dt.date | None = None
        self._load: LoadStats | None = None
        self._ticks_conflated = 0  # by the feeds' clients, before decoding
        self._behind = ""  # why the run is behind, while it is
        self.engine: Engine | None = None

    # --- EngineObserver -------------------------------------------------------------------
    def on_start(self, engine: Engine) -> None:
        """Remember the engine; publish a first snapshot."""
        self.engine = engine
        now = self._start_ns = self._connection_since = engine.clock.now_ns()
        portfolio = engine.portfolio
        if portfolio is not None and math.isfinite(equity := portfolio.equity):
            self._last_equity = equity  # the first day's P&L counts from here
        self._bar_sizes = {
            inst.id: _bar_size(size)
            for feed in engine.feeds
            if (size := feed.bar_ns) is not None
            for inst in feed.instruments
        }
        self._publish(engine, now)

    def on_event(self, engine: Engine, event: Event) -> None:
        """Follow orders, connection, reconciliation and risk; alert where needed."""
        # market data: only remembered (cheaply: thousands of quotes a second), published
        # with the heartbeat
        if type(event) is QuoteReceived:
            quote = event.quote
            self._quotes[quote.instrument.id] = (quote.bid, quote.ask, engine.clock.now_ns())
            return
        if type(event) is BarReceived:
            bar = event.bar
            self._bars_seen[bar.instrument.id] = (bar.ts_ns, engine.clock.now_ns())
            return
        if type(event) is TickReceived:
            self._ticks[event.tick.instrument.id] = event.tick.price
            return
        counted = _COUNTED.get(type(event))
        if counted is not None:
            self._counts[counted] += 1
        if isinstance(event, OrderSubmitted):
            parent = event.request.parent_id
            group = event.order_id if parent is None else parent
            self._waiting[event.order_id] = (self._wall(), event.request.instrument.id, group)
        elif isinstance(event, OrderEvent):
            acked = isinstance(event, OrderAccepted | OrderRejected | OrderFilled | OrderCancelled)
            sent = self._waiting.pop(event.order_id, None) if acked else None
            if sent is not None:
                self._latencies.append(self._wall() - sent[0])
            if isinstance(event, OrderRejected) and not (
                event.code is None and event.reason.startswith("lost:")
            ):  # a lost order is alerted by the reconciliation that found it
                order = engine.orders.get(event.order_id)
                what = (
                    ""
                    if order is None
                    else (f"{order.request.side} {order.request.quantity} {order.instrument.id}: ")
                )
                code = f" (code {event.code})" if event.code else ""
                key = f"order_rejected:{event.order_id}"
                severity = "warning"
                if order is not None and _is_exit(engine, order):
                    # a position left unprotected or not closed: critical, past the hourly
                    # cap; one alert per instrument and code in the quiet period, so a
                    # strategy retrying the exit every bar does not flood the operator
                    severity = "critical"
                    key = f"order_rejected:exit:{order.instrument.id}:{event.code}"
                self._alert(
                    "order_rejected",
                    f"order {event.order_id} rejected",
                    f"{what}{event.reason}{code}",
                    severity,
                    key=key,
                )
            elif isinstance(event, OrderFilled):
                fill = event.fill
                came = engine.clock.now_ns()
                self._received[fill.ts_ns] = came
                self._fills.appendleft(
                    {
                        "time": _iso(came),
                        "exec_time": _iso(fill.ts_ns),
                        "order": fill.order_id,
                        "instrument": fill.instrument.id,
                        "side": str(fill.side),
                        "quantity": float(fill.quantity),
                        "price": float(fill.price),
                        "commission": float(fill.commission),
                    }
                )
        elif isinstance(event, ConnectionChanged):
            if event.ts_ns < self._connection_ts:
                return  # overtaken: the broker and the feed report on their own threads
            self._connection_ts = event.ts_ns
            was = self._connection
            self._connection = event.state
            if event.actions and set(event.actions) <= _HISTORY_ACTIONS:
                # a historical-data farm's notice (2105, 2106): not why the state is what it
                # is (it carries the state as it stands, maybe one not reported yet)
                if event.state != was:
                    self._connection_reason, self._connection_code = "", None
            else:
                self._connection_reason = event.reason
                found = _CODE.search(event.reason)
                self._connection_code = int(found.group(1)) if found else None
                # the adapter reconnects by itself after a lost socket, unless told not to
                client = getattr(engine.broker, "client", None)
                self._reconnecting = (
                    event.state != "connected"
                    and "reconnect" in event.actions
                    and getattr(client, "reconnect", True) is not False
                )
            if event.state == "connected":
                self._reconnecting = False
            if event.state != was:
                self._connection_since = engine.clock.now_ns()
            if event.state == "connected":
                if self._disconnect_alerted:
                    self._alert("reconnected", "IB connection back", event.reason, "info")
                self._disconnect_alerted = False
        elif isinstance(event, Reconciled):
            self._reconciled = event
            if event.differences:
                self._alert(
                    "reconciliation",
                    f"reconciliation: {event.resolution}",
                    "\n".join(event.differences),
                    "critical",
                )
            if event.warnings:
                self._alert(
                    "reconciliation_warning",
                    f"reconciliation: {len(event.warnings)} warning(s)",
                    "\n".join(event.warnings),
                    "critical",
                    key=f"reconciliation_warning:{event.ts_ns}:{hash(event.warnings)}",
                )
        elif isinstance(event, TradingHalted):
            self._alert(
                "risk_halt",
                f"trading halted by {event.rule}",
                event.reason,
                "critical",
                key=f"risk_halt:{event.rule}:{event.ts_ns}",
            )
        elif isinstance(event, ProtectionFailed):
            self._alert(
                "protection_failed",
                f"{event.instrument.id} is without its {event.tag}",
                event.reason,
                "critical",
                key=f"protection_failed:{event.instrument.id}:{event.tag}:{event.ts_ns}",
            )
        elif isinstance(event, DataProblem):
            self._problems[event.instrument.id] = event.reason
            self._alert("data_problem", f"data problem: {event.instrument.id}", event.reason)
        if type(event) is not TimerFired:
            self._publish(engine, engine.clock.now_ns())

    def on_heartbeat(self, engine: Engine, now_ns: int) -> None:
        """Record equity, check the thresholds, publish the snapshot.

        Everything is stamped with the engine's clock, read now: a live run's heartbeat at
        the end of a time stamp carries that bar's time, which a replay (the fake TWS's
        bars of years ago, under a run on the wall clock) sets far from the clock's.
        """
        now_ns = max(now_ns, engine.clock.now_ns())
        self._last_beat = self._wall()
        portfolio = engine.portfolio
        # a replay's clock stays at 0 until its first bar: no equity point (nor day) in 1970
        if portfolio is not None and now_ns > 0:
            equity = portfolio.equity
            if math.isfinite(equity):
                self._track_equity(now_ns, equity)
        self._check_disconnection(now_ns)
        self._check_staleness(engine, now_ns)
        self._check_acknowledgements()
        if engine.live:
            self._check_load(engine)
        self._publish(engine, now_ns)

    def on_stop(self, engine: Engine, error: BaseException | None) -> None:
        """Alert if the run ended with an error; publish the last snapshot."""
        if error is not None and not isinstance(error, KeyboardInterrupt):
            self._alert(
                "strategy_error", f"the run stopped: {type(error).__name__}", str(error), "critical"
            )
        self._publish(engine, engine.clock.now_ns(), stopped=True)

    # --- reading, from any thread ---------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """The latest state of the run, JSON-ready, with the health as of now.

        This is what the dashboard serves as ``/api/state``. Times are ISO-8601 UTC strings
        (``"2026-12-04T16:30:05Z"``) on the engine's clock, the one clock of the run: the
        wall clock in a live run, a bar's time in a backtest (and in a
        :class:`~ibkrfw.testing.LiveSession`, whose clock follows the replayed bars).
        ``ibkrfw run`` against ``ibkrfw fake-tws`` runs on the wall clock while the bars
        it replays carry their own, older, times: those times show only where they are the
        data's (a bar's ``last_bar_time``, a fill's ``exec_time``). Ages are seconds on the
        engine's clock; money is in ``currency``, rounded to the cent. The keys:

        * ``status`` (``"running"`` or ``"stopped"``), ``stopped``, ``strategy``, ``bars``
          (bars handled);
        * ``mode``: ``"paper"``, ``"live"``, ``"sandbox"``, ``"backtest"`` or None
          (unknown); ``account``: the broker's account id (an IB broker's, once
          connected; None otherwise); ``currency``: the account's base currency;
        * ``time`` and ``clock``: the engine's time, its ``zone`` (``tz``), the time there
          (``local``), the ``day`` "today" refers to, and ``source`` (``"engine"``);
          ``updated``: when this snapshot was built, on the wall clock;
        * ``connection`` (its state) and ``connection_detail``: ``state``, ``since`` (when
          it entered it), ``reason``, IB's ``code`` (1100, 1101, 1102...; None if the
          reason has none), ``farms`` (each data farm IB sent a notice about: ``name``,
          ``kind``, ``ok``, ``code``) and ``reconnecting`` (the adapter is opening the
          socket again);
        * ``equity``, ``cash``, ``drawdown`` (below the peak, a share), ``pnl_today``, and
          ``pnl``: the ``day``, its ``day_start_equity`` (the equity before the day began:
          the previous day's close, or the run's start), ``today`` (equity minus that),
          and since the run began ``realized`` (before commissions; other currencies at
          today's rate), ``unrealized`` (of the positions held) and ``commission``; in a
          run that started flat, ``realized + unrealized - commission`` is what equity
          gained;
        * ``positions``, ``orders`` (working), ``order_counts`` (by event), ``fills`` (the
          last 200, newest first: ``time`` it came, the broker's ``exec_time``, ``order``
          id, ``instrument``, ``side``, ``quantity``, ``price``, ``commission``),
          ``fills_total``;
        * ``trades``: round trips (see :func:`~ibkrfw.portfolio.round_trips`), newest first,
          up to 100: the open ones (one per position: ``open`` true, ``unrealized``), then
          the closed ones with ``exit_time``, ``exit_price``, ``pnl`` (before
          commissions: they sum to ``pnl.realized`` when no position is partly closed),
          ``net_pnl`` and ``commission``;
        * ``data``: per instrument, its ``bar_size`` (as the feed asks for it), its last
          bar's own time (``last_bar_time``) and age since it came (``last_bar_age_s``),
          ``last_price``, the last ``bid`` and ``ask`` with when they came
          (``quote_time``, ``quote_age_s``), and a ``status``: ``"fresh"``, ``"stale"``
          (older than ``stale_after_s``), ``"problem"`` (the feed reported one, in
          ``detail``) or ``"no data"``;
        * ``risk``: the risk check's ``status``, ``drawdown`` and ``drawdown_limit`` (the
          tightest :class:`~ibkrfw.risk.MaxDrawdownKillSwitch`'s, else
          ``drawdown_alert``), ``daily_loss`` and ``daily_loss_limit`` (the tightest
          :class:`~ibkrfw.risk.DailyLossLimit`'s as a share of the day's starting equity,
          else ``daily_loss_alert``), ``near`` (the limits used to 80 % or more, in words)
          and the ``halt`` in force (``rule``, ``reason``, ``time``, ``until``) or None;
          ``limits``: every rule's use of its limits; ``halts``: every halt of the run;
        * ``equity_curve``, ``latency_ms``, ``load`` (live runs), ``checks``,
          ``health`` (with the heartbeat and disk checks as of now) and ``alerts`` (the
          last 20 deliveries).

        An instrument's bar age counts from when the bar came (or, for bars the run did
        not receive live, from their time or the run's start, whichever is later): never
        across two clocks, so bars of 2017 replayed under a run on the wall clock are fresh
        while they keep coming, and stale ``stale_after_s`` after they stop. An instrument
        that has had no bar at all is stale ``stale_after_s`` after the run's start.
        """
        with self._lock:
            snap = dict(self._snapshot)
        snap["health"] = self.health(snap).to_dict()
        if self.alerter is not None:
            snap["alerts"] = [
                {
                    "time": _iso(d.alert.ts_ns) if d.alert.ts_ns else "",
                    "kind": d.alert.kind,
                    "severity": d.alert.severity,
                    "title": d.alert.title,
                    "channel": d.channel,
                    "ok": d.ok,
                    "error": d.error,
                }
                for d in self.alerter.recent(20)
            ]
        else:
            snap["alerts"] = []
        return snap

    def health(self, snap: dict[str, Any] | None = None) -> Health:
        """Run every check now."""
        if snap is None:
            with self._lock:
                snap = dict(self._snapshot)
        checks = [Check(**c) for c in snap.get("checks", [])]
        silent = self._wall() - self._last_beat
        if snap.get("stopped"):
            checks.append(Check("heartbeat", "failing", "the run has stopped"))
        elif silent > self.heartbeat_timeout_s:
            checks.append(Check("heartbeat", "failing", f"no heartbeat for {silent:.0f} s"))
        else:
            checks.append(Check("heartbeat", "ok", f"{silent:.1f} s ago"))
        checks.append(self._disk())
        status: Status = max((c.status for c in checks), key=_RANK.__getitem__, default="ok")
        return Health(status, tuple(checks))

    # --- internals ------------------------------------------------------------------------
    def _alert(
        self, kind: str, title: str, message: str = "", severity: str = "warning", key: str = ""
    ) -> None:
        if self.alerter is not None:
            # stamped with the engine's clock, as everything else in the snapshot
            now = self.engine.clock.now_ns() if self.engine is not None else 0
            self.alerter.send(Alert(kind, title, message, severity, key, now))  # type: ignore[arg-type]

    def _track_equity(self, now_ns: int, equity: float) -> None:
        points = self._equity
        if points and points[-1][0] == now_ns:
            points[-1] = (now_ns, equity)
        else:
            points.append((now_ns, equity))
        day = dt.datetime.fromtimestamp(now_ns / _NS, tz=self.zone).date()
        if day != self._day:
            # A day starts from the last equity seen before it, the previous day's close (the
            # run's starting equity on its first day), as IB's daily P&L does: starting it
            # from its own first point would hide the first bar's move, all of it on bars of
            # a day (one point a day).
            last = self._last_equity
            self._day, self._day_start = day, last if math.isfinite(last) else equity
        self._last_equity = equity
        if equity > self._peak:
            self._peak = equity
            self._drawdown_alerted = False
        if self.drawdown_alert is not None and self._peak > 0:
            drawdown = 1 - equity / self._peak
            if drawdown >= self.drawdown_alert and not self._drawdown_alerted:
                self._drawdown_alerted = True
                self._alert(
                    "drawdown",
                    f"drawdown of {drawdown:.1%}",
                    f"equity {equity:,.2f}, peak {self._peak:,.2f}",
                    "critical",
                )
        if self.daily_loss_alert is not None and self._day_start > 0:
            loss = 1 - equity / self._day_start
            if loss >= self.daily_loss_alert and self._loss_alerted_day != day:
                self._loss_alerted_day = day
                self._alert(
                    "daily_loss",
                    f"daily loss of {loss:.1%}",
                    f"equity {equity:,.2f}, day began at {self._day_start:,.2f}",
                    "critical",
                )

    def _in_quiet(self, ns: int) -> bool:
        for start, end, zone in self.quiet:
            local = dt.datetime.fromtimestamp(ns / _NS, tz=zone)
            minute = local.hour * 60 + local.minute
            inside = start <= minute < end if start < end else minute >= start or minute < end
            if inside:
                return True
        return False

    def _check_disconnection(self, now_ns: int) -> None:
        if self._connection == "connected" or self._disconnect_alerted:
            return
        down_s = (now_ns - self._connection_since) / _NS
        if down_s < self.disconnect_after_s or self._in_quiet(now_ns):
            return
        self._disconnect_alerted = True
        self._alert(
            "disconnected",
            f"IB {self._connection} for {_age(down_s)}",
            self._connection_reason,
            "critical",
        )

    def _check_acknowledgements(self) -> None:
        now = self._wall()
        late: dict[int, list[tuple[int, float, str]]] = {}  # group -> its late orders
        for order_id, (sent, inst, group) in list(self._waiting.items()):
            if now - sent > self.ack_timeout_s and order_id not in self._late_alerted:
                late.setdefault(group, []).append((order_id, sent, inst))
        for group, orders in late.items():
            # One alert per group: a bracket's three orders go out, and wait, together.
            ids = [order_id for order_id, _, _ in orders]
            self._late_alerted.update(ids)
            waited = now - min(sent for _, sent, _ in orders)
            inst = orders[0][2]
            if len(ids) == 1:
                what, them = f"order {ids[0]} ({inst})", f"order {ids[0]}"
            else:
                names = ", ".join(map(str, ids[:-1])) + f" and {ids[-1]}"
                what = f"orders {names} ({inst}, one bracket)"
                them = f"orders {names} (the bracket of order {group})"
            self._alert(
                "order_unacknowledged",
                f"{what} not acknowledged",
                f"the broker has not acknowledged {them} in {waited:.0f} s: it may be lost on "
                "the way; the next reconciliation settles it",
                key=f"order_unacknowledged:{group}",
            )
        if self._late_alerted:
            self._late_alerted &= set(self._waiting)

    def _last_bars(self, engine: Engine, now_ns: int) -> dict[str, tuple[int, float]]:
        """Each instrument's last bar: its time, and its age in seconds.

        The age is measured on the engine's clock, from when the bar came (a live feed's
        bar), or from its time, or the run's start if later (a backtest's bar, or history
        loaded before the run): never across two clocks, so a replay of old bars under a
        run on the wall clock is as fresh as its bars keep coming.
        """
        portfolio = engine.portfolio
        found: dict[str, tuple[int, float]] = {}
        if portfolio is None:
            return found
        for inst in engine.instruments:
            seen = self._bars_seen.get(inst.id)
            if seen is not None:
                bar_ns, came = seen
            else:
                last = portfolio.history(inst, 1).ts_ns
                if not len(last):
                    continue
                bar_ns = int(last[0])
                came = max(bar_ns, self._start_ns)
            found[inst.id] = (bar_ns, max(0.0, (now_ns - came) / _NS))
        return found

    def _stale(self, engine: Engine, now_ns: int) -> dict[str, float]:
        """The instruments whose last bar is older than ``stale_after_s``, and its age (s).

        One that has had no bar at all counts from the run's start: a feed that never
        delivers is stale too, not fresh for ever.
        """
        found = self._last_bars(engine, now_ns)
        stale = {name: age for name, (_, age) in found.items() if age > self.stale_after_s}
        waited = max(0.0, (now_ns - self._start_ns) / _NS) if self._start_ns else 0.0
        if waited > self.stale_after_s:
            for inst in engine.instruments:
                if inst.id not in found:
                    stale[inst.id] = waited
        return stale

    def _check_staleness(self, engine: Engine, now_ns: int) -> None:
        stale = {} if self._in_quiet(now_ns) else self._stale(engine, now_ns)
        for name, age in stale.items():
            if name not in self._stale_alerted:
                self._alert("stale_data", f"no new bar of {name} for {_age(age)}")
        self._stale_alerted = set(stale)

    def _check_load(self, engine: Engine) -> None:
        stats = self._load = engine.inbox.stats()
        # An IB feed's client conflates ticks before they are even decoded (IBClient.conflated)
        self._ticks_conflated = sum(
            int(getattr(getattr(feed, "client", None), "conflated", 0) or 0)
            for feed in engine.feeds
        )
        bound = self.max_inbox or stats.bound
        behind = stats.behind_s
        reasons = []
        if behind > self.max_lag_s:
            reasons.append(
                f"{behind:.1f} s behind (lag p99 {stats.lag_p99_s:.2f} s, oldest waiting "
                f"{stats.waiting_s:.2f} s), past max_lag_s {self.max_lag_s:g}"
            )
        if stats.depth > bound:
            reasons.append(f"{stats.depth} events waiting in the inbox, past {bound}")
        if reasons and not self._behind:
            self._behind = "; ".join(reasons)
            log.warning(
                "the run is falling behind its data: %s; %d quotes conflated so far, nothing "
                "dropped (see the deployment guide: what the lag figures mean)",
                self._behind,
                stats.conflated,
            )
            self._alert("lagging", "the run is falling behind", self._behind, key="lagging")
        elif self._behind and behind <= self.max_lag_s / 2 and stats.depth <= bound // 2:
            log.info(
                "the run has caught up (recovered): lag p99 %.3f s, %d events waiting",
                stats.lag_p99_s,
                stats.depth,
            )
            self._behind = ""
            self._alert(
                "lag_recovered",
                "the run has caught up",
                f"lag p99 {stats.lag_p99_s:.3f} s, {stats.depth} events waiting",
                "info",
                key="lag_recovered",
            )

    def _load_check(self) -> Check:
        stats = self._load
        if stats is None:
            return Check("load", "ok", "not measured (backtest, or no heartbeat yet)")
        if self._behind:
            return Check("load", "degraded", self._behind)
        return Check(
            "load",
            "ok",
            f"lag p50 {stats.lag_p50_s * 1000:.1f} ms, p99 {stats.lag_p99_s * 1000:.1f} ms; "
            f"{stats.depth} waiting",
        )

    def _disk(self) -> Check:
        if self.journal_dir is None:
            return Check("disk", "ok", "no journal directory given")
        try:
            free_mb = shutil.disk_usage(self.journal_dir).free / 1e6
        except OSError as exc:
            return Check("disk", "failing", f"cannot read {self.journal_dir}: {exc.strerror}")
        if free_mb < self.min_free_mb:
            return Check("disk", "failing", f"{free_mb:,.0f} MB free for the journal")
        return Check("disk", "ok", f"{free_mb:,.0f} MB free")

    def _checks(self, engine: Engine, now_ns: int) -> list[Check]:
        checks: list[Check] = []
        if self._connection == "connected":
            checks.append(Check("connection", "ok", "connected"))
        else:
            down_s = (now_ns - self._connection_since) / _NS
            bad: Status = "failing" if down_s >= self.disconnect_after_s else "degraded"
            checks.append(
                Check(
                    "connection",
                    bad,
                    f"{self._connection} for {down_s:.0f} s ({self._connection_reason})",
                )
            )
        stale = self._stale(engine, now_ns)
        problems = [f"{k}: {v}" for k, v in self._problems.items()]
        if stale or problems:
            detail = "; ".join(
                [*(f"{s} stale: no new bar for {age:.0f} s" for s, age in stale.items()), *problems]
            )
            checks.append(Check("data", "degraded", detail))
        else:
            checks.append(Check("data", "ok", "fresh"))
        now = self._wall()
        late = [
            f"order {i} ({inst})"
            for i, (t, inst, _) in self._waiting.items()
            if now - t > self.ack_timeout_s
        ]
        if late:
            checks.append(Check("orders", "degraded", "unacknowledged: " + ", ".join(late)))
        else:
            checks.append(Check("orders", "ok", self._latency_text()))
        rec = self._reconciled
        if rec is None:
            checks.append(Check("reconciliation", "ok", "not run (backtest or sandbox)"))
        elif rec.resolution == "refused" and rec.differences:
            checks.append(Check("reconciliation", "failing", "; ".join(rec.differences)))
        elif rec.differences or rec.warnings:
            checks.append(
                Check(
                    "reconciliation",
                    "degraded",
                    f"{rec.resolution}: " + "; ".join((*rec.differences, *rec.warnings)),
                )
            )
        else:
            checks.append(Check("reconciliation", "ok", rec.resolution))
        checks.append(self._load_check())
        return checks

    def _latency_text(self) -> str:
        if not self._latencies:
            return "no acknowledgements yet"
        values = sorted(self._latencies)
        median = values[len(values) // 2]
        return f"acknowledged in {median * 1000:.0f} ms (median), {values[-1] * 1000:.0f} ms max"

    def _mode(self, engine: Engine) -> str | None:
        if self.mode is not None:
            return self.mode
        said = getattr(getattr(engine.broker, "config", None), "mode", None)  # IBKRBroker
        if said in ("paper", "live"):
            return str(said)
        return None if engine.live else "backtest"

    @staticmethod
    def _clients(engine: Engine) -> list[Any]:
        """The IB clients of the broker and the feeds (an IB adapter's ``client``), once each."""
        found: list[Any] = []
        for part in (engine.broker, *engine.feeds):
            client = getattr(part, "client", None)
            if client is not None and all(client is not c for c in found):
                found.append(client)
        return found

    def _connection_detail(self, engine: Engine) -> dict[str, Any]:
        farms: dict[str, dict[str, Any]] = {}
        for client in self._clients(engine):
            status = getattr(getattr(client, "monitor", None), "farm_status", None)
            if isinstance(status, dict):
                for farm in list(status.values()):
                    kind = str(farm.kind)
                    farms[farm.name] = {
                        "name": farm.name,
                        "kind": _FARM_KINDS.get(kind, kind),
                        "ok": bool(farm.ok),
                        "code": int(farm.code),
                    }
        since = self._connection_since
        return {
            "state": self._connection,
            "since": _iso(since) if since else None,
            "reason": self._connection_reason,
            "code": self._connection_code,
            "farms": [farms[name] for name in sorted(farms)],
            "reconnecting": self._reconnecting,
        }

    def _clock(self, now_ns: int) -> dict[str, Any]:
        local = dt.datetime.fromtimestamp(now_ns / _NS, tz=self.zone)
        return {
            "time": _iso(now_ns),
            "zone": str(self.zone),
            "local": local.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "day": local.date().isoformat(),
            "source": "engine",
        }

    def _data(self, engine: Engine, now_ns: int, portfolio: Ledger) -> list[dict[str, Any]]:
        bars = self._last_bars(engine, now_ns)
        rows = []
        for inst in engine.instruments:
            name = inst.id
            bar = bars.get(name)
            quote = self._quotes.get(name)
            price = self._ticks.get(name, portfolio.price(inst))
            bid, ask, quote_age = (math.nan, math.nan, None)
            if quote is not None:
                bid, ask = quote[0], quote[1]
                quote_age = round(max(0.0, (now_ns - quote[2]) / _NS), 1)
            age = None if bar is None else bar[1]
            if name in self._problems:
                status, detail = "problem", self._problems[name]
            elif bar is None and quote is None:
                status, detail = "no data", "no bar or quote yet"
            elif age is not None and age > self.stale_after_s:
                status = "stale"
                detail = f"no new bar for {age:.0f} s (stale after {self.stale_after_s:g} s)"
            else:
                status, detail = "fresh", ""
            rows.append(
                {
                    "instrument": name,
                    "bar_size": self._bar_sizes.get(name),
                    "last_bar_time": None if bar is None else _iso(bar[0]),
                    "last_bar_age_s": None if age is None else round(age, 1),
                    "last_price": price if math.isfinite(price) else None,
                    "bid": bid if math.isfinite(bid) else None,
                    "ask": ask if math.isfinite(ask) else None,
                    "quote_time": None if quote is None else _iso(quote[2]),
                    "quote_age_s": quote_age,
                    "status": status,
                    "detail": detail,
                }
            )
        return rows

    def _in_base(self, portfolio: Ledger, amount: float, currency: str) -> float:
        if currency == portfolio.base_currency or not amount:
            return amount
        try:
            return amount * portfolio.rate(currency)
        except Exception:  # no rate yet: the amount cannot be counted in the base currency
            return math.nan

    def _from_fills(
        self, portfolio: Ledger, fills: list[Fill]
    ) -> tuple[list[dict[str, Any]], dict[Any, int], dict[str, float]]:
        """Closed round trips (rows, newest first), open trades' starts, realised P&L."""
        count, closed, opened, realized = self._by_fills
        if count == len(fills):
            return closed, opened, realized
        received = self._received

        def when(ts_ns: int) -> str:  # on the engine's clock, if the fill came as an event
            return _iso(received.get(ts_ns, ts_ns))

        closed = [
            {
                "instrument": t.instrument.id,
                "side": "long" if t.side is Side.BUY else "short",
                "quantity": float(t.quantity),
                "entry_time": when(t.entry_ns),
                "entry_price": float(t.entry_price),
                "exit_time": when(t.exit_ns),
                "exit_price": float(t.exit_price),
                "pnl": round(float(t.gross_pnl), 2),
                "net_pnl": round(float(t.pnl), 2),
                "commission": round(float(t.commission), 2),
                "open": False,
            }
            for t in reversed(round_trips(fills)[-100:])
        ]
        opened = {}
        held: dict[Any, Decimal] = {}
        realized = {}
        for fill, amount in zip(fills, portfolio.realized_per_fill, strict=True):
            inst = fill.instrument
            before = held.get(inst, _ZERO)
            after = held[inst] = before + fill.signed_quantity
            if after and (not before or (before > 0) != (after > 0)):
                opened[inst] = received.get(fill.ts_ns, fill.ts_ns)
            realized[inst.currency] = realized.get(inst.currency, 0.0) + float(amount)
        self._by_fills = (len(fills), closed, opened, realized)
        return closed, opened, realized

    def _pnl(self, portfolio: Ledger, equity: float, fills: list[Fill]) -> dict[str, Any]:
        by_currency = self._from_fills(portfolio, fills)[2]
        realized = sum(
            (
                self._in_base(portfolio, amount, currency)
                for currency, amount in by_currency.items()
            ),
            0.0,
        )
        unrealized = sum(
            (
                self._in_base(portfolio, p.unrealized_pnl, inst.currency)
                for inst, p in portfolio.positions.items()
            ),
            0.0,
        )
        today = equity - self._day_start if math.isfinite(self._day_start) else 0.0
        return {
            "day": self._day.isoformat() if self._day is not None else None,
            "day_start_equity": _money(self._day_start),
            "today": _money(today),
            "realized": _money(realized),
            "unrealized": _money(unrealized),
            "commission": _money(float(portfolio.commission)),
        }

    def _trade_rows(self, portfolio: Ledger, fills: list[Fill]) -> list[dict[str, Any]]:
        """Round trips, newest first: those open (one per position held), then those closed."""
        closed, opened, _ = self._from_fills(portfolio, fills)
        open_rows = [
            {
                "instrument": inst.id,
                "side": "long" if p.quantity > 0 else "short",
                "quantity": float(abs(p.quantity)),
                "entry_time": _iso(opened[inst]) if inst in opened else None,
                "entry_price": float(p.avg_price),
                "exit_time": None,
                "exit_price": None,
                "pnl": None,
                "unrealized": _money(p.unrealized_pnl),
                "commission": None,
                "open": True,
            }
            for inst, p in portfolio.positions.items()
        ]
        return [*open_rows, *closed][:100]

    def _active_halt(self, engine: Engine, now_ns: int) -> TradingHalted | None:
        for halt in reversed(engine.halts):
            if halt.until_ns is None or now_ns < halt.until_ns:
                return halt
        return None

    def _risk(
        self, engine: Engine, now_ns: int, equity: float, limits: list[dict[str, Any]]
    ) -> tuple[dict[str, Any], Check]:
        """The ``risk`` key of the snapshot, and the health check of the same name."""
        drawdown = 1 - equity / self._peak if self._peak > 0 and math.isfinite(equity) else 0.0
        start = self._day_start
        daily_loss = max(0.0, 1 - equity / start) if start > 0 and math.isfinite(equity) else 0.0
        switches = [m for m in engine.risk_monitors if isinstance(m, MaxDrawdownKillSwitch)]
        drawdown_limit = min((m.max_drawdown for m in switches), default=self.drawdown_alert)
        daily: list[float] = []
        for m in engine.risk_monitors:
            if isinstance(m, DailyLossLimit):
                if m.percent is not None:
                    daily.append(m.percent)
                if m.limit is not None and start > 0:
                    daily.append(m.limit / start)
        daily_limit = min(daily, default=self.daily_loss_alert)
        near = [
            f"{u['rule']}: {u['share']:.0%} of {u['measure']}"
            for u in limits
            if u["share"] is not None and u["share"] >= _NEAR
        ]
        halt = self._active_halt(engine, now_ns)
        reasons = list(near)
        if self.drawdown_alert is not None and drawdown >= self.drawdown_alert:
            reasons.append(f"drawdown {drawdown:.1%}, past the alert level of "
                           f"{self.drawdown_alert:.0%}")  # fmt: skip
        if self.daily_loss_alert is not None and daily_loss >= self.daily_loss_alert:
            reasons.append(f"daily loss {daily_loss:.1%}, past the alert level of "
                           f"{self.daily_loss_alert:.0%}")  # fmt: skip
        if halt is not None:
            until = f" until {_iso(halt.until_ns)}" if halt.until_ns else " for the rest of the run"
            check = Check(
                "risk",
                "failing",
                f"trading halted by {halt.rule} at {_iso(halt.ts_ns)}{until}: {halt.reason}"
                + "".join(f"; {r}" for r in reasons),
            )
        elif reasons:
            check = Check("risk", "degraded", "; ".join(reasons))
        else:
            check = Check(
                "risk",
                "ok",
                f"drawdown {drawdown:.1%}, daily loss {daily_loss:.1%}; no limit near",
            )
        risk = {
            "status": check.status,
            "drawdown": round(drawdown, 4),
            "drawdown_limit": drawdown_limit,
            "daily_loss": round(daily_loss, 4),
            "daily_loss_limit": None if daily_limit is None else round(daily_limit, 4),
            "near": near,
            "halt": None
            if halt is None
            else {
                "rule": halt.rule,
                "reason": halt.reason,
                "time": _iso(halt.ts_ns),
                "until": _iso(halt.until_ns) if halt.until_ns else None,
            },
        }
        return risk, check

    def _publish(self, engine: Engine, now_ns: int, *, stopped: bool = False) -> None:
        portfolio = engine.portfolio
        checks = self._checks(engine, now_ns)
        account = getattr(engine.broker, "client", None)  # an IBKRBroker's, once connected
        snap: dict[str, Any] = {
            "status": "stopped" if stopped else "running",
            "stopped": stopped,
            "time": _iso(now_ns),
            "mode": self._mode(engine),
            "account": (getattr(account, "account", "") or None) if account else None,
            "currency": portfolio.base_currency if portfolio is not None else None,
            "clock": self._clock(now_ns),
            "updated": _iso(time.time_ns()),
            "strategy": engine.strategy.name,
            "bars": engine.bars_processed,
            "fills": list(self._fills),
            "equity_curve": [{"t": _iso(t), "v": round(v, 2)} for t, v in self._equity],
            "halts": [
                {
                    "time": _iso(h.ts_ns),
                    "rule": h.rule,
                    "reason": h.reason,
                    "until": _iso(h.until_ns) if h.until_ns else None,
                    "flatten": h.flatten,
                }
                for h in engine.halts
            ],
            "latency_ms": [round(x * 1000, 1) for x in list(self._latencies)[-50:]],
            "order_counts": dict(self._counts),
            "connection": self._connection,
            "connection_detail": self._connection_detail(engine),
        }
        # controls (issue 21): whether new entries are taken, and why the run stopped
        trading = engine.trading
        snap["trading"] = {
            "state": trading.state,
            "reason": trading.reason,
            "since": _iso(trading.since_ns) if trading.since_ns is not None else None,
            "by": trading.by,
        }
        snap["stop_reason"] = engine.stop_reason if stopped else None
        if self._load is not None:
            snap["load"] = {
                **self._load.to_dict(),
                "ticks_conflated": self._ticks_conflated,
                "behind": bool(self._behind),
            }
        limits: list[dict[str, Any]] = []
        equity = math.nan
        if portfolio is not None:
            equity = portfolio.equity
            fills = portfolio.fills
            snap["equity"] = _money(equity)
            snap["cash"] = round(float(portfolio.cash), 2)
            snap["fills_total"] = len(fills)
            pnl = self._pnl(portfolio, equity, fills)
            snap["pnl"] = pnl
            snap["pnl_today"] = pnl["today"]
            snap["drawdown"] = (
                round(1 - equity / self._peak, 4)
                if self._peak > 0 and math.isfinite(equity)
                else 0.0
            )
            snap["positions"] = [
                {
                    "instrument": inst.id,
                    "quantity": float(p.quantity),
                    "avg_price": float(p.avg_price),
                    "price": p.market_price,
                    "value": round(portfolio.value(p), 2),
                    "unrealized": _money(p.unrealized_pnl),
                }
                for inst, p in portfolio.positions.items()
            ]
            watchers: list[RiskRule | RiskMonitor] = [
                *engine.risk_rules,
                *engine.account_rules,
                *engine.risk_monitors,
            ]
            for rule in watchers:
                for use in rule.usage(portfolio):
                    share = use.share
                    limits.append(
                        {
                            "rule": rule.name,
                            "measure": use.measure,
                            "used": round(use.used, 4),
                            "limit": round(use.limit, 4),
                            "share": round(share, 4) if math.isfinite(share) else None,
                        }
                    )
            snap["limits"] = limits
            snap["data"] = self._data(engine, now_ns, portfolio)
            snap["trades"] = self._trade_rows(portfolio, fills)
        risk, risk_check = self._risk(engine, now_ns, equity, limits)
        snap["risk"] = risk
        checks.insert(1, risk_check)  # after the connection's
        snap["checks"] = [attrs.asdict(c) for c in checks]
        snap["orders"] = [
            {
                "id": o.order_id,
                "instrument": o.instrument.id,
                "side": str(o.request.side),
                "quantity": float(o.request.quantity),
                "filled": float(o.filled_quantity),
                "type": str(o.request.order_type),
                "limit": float(o.request.limit_price)
                if o.request.limit_price is not None
                else None,
                "stop": float(o.request.stop_price) if o.request.stop_price is not None else None,
                "status": str(o.status),
                "tag": o.request.tag,
            }
            for o in engine.orders.active()
        ]
        with self._lock:
            self._snapshot = snap
