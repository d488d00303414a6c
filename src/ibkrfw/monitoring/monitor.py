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
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
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
from ibkrfw.model.orders import Order, Side
from ibkrfw.monitoring.alerts import Alert, Alerter
from ibkrfw.risk.monitor import RiskMonitor
from ibkrfw.risk.rule import RiskRule

__all__ = ["IB_NIGHTLY_RESET", "Check", "Health", "LiveMonitor"]

log = logging.getLogger("ibkrfw.monitor")

IB_NIGHTLY_RESET: tuple[tuple[str, str, str], ...] = (("00:15", "01:45", "America/New_York"),)
"""When IB's servers restart each night (North America, Sunday to Friday, 00:15 to 01:45 New
York time), as a quiet window for alerts. A TWS or Gateway set to restart itself at another
time, and IB's weekend maintenance (Friday 23:00 to Saturday 03:00), need windows of their own."""

Status = Literal["ok", "degraded", "failing"]
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
    return dt.datetime.fromtimestamp(ns / _NS, tz=dt.UTC).isoformat(timespec="seconds")


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
    * **data**: degraded when an instrument's last bar is older than ``stale_after_s``;
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

    Raises:
        ConfigError: if a quiet window or the time zone is malformed, ``max_lag_s`` is not a
            positive number of seconds, or ``max_inbox`` not a whole number of at least 1.
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
    ) -> None:
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
        self._fills: deque[dict[str, Any]] = deque(maxlen=20)
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
        self._publish(engine, engine.clock.now_ns())

    def on_event(self, engine: Engine, event: Event) -> None:
        """Follow orders, connection, reconciliation and risk; alert where needed."""
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
                self._fills.appendleft(
                    {
                        "time": _iso(fill.ts_ns),
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
            self._connection, self._connection_reason = event.state, event.reason
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
        if not isinstance(event, QuoteReceived | TickReceived | BarReceived | TimerFired):
            # market data is published with the heartbeat: thousands of quotes a second
            # must not rebuild the snapshot each
            self._publish(engine, engine.clock.now_ns())

    def on_heartbeat(self, engine: Engine, now_ns: int) -> None:
        """Record equity, check the thresholds, publish the snapshot."""
        self._last_beat = self._wall()
        portfolio = engine.portfolio
        if portfolio is not None:
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
        """The latest state of the run, JSON-ready, with the health as of now."""
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
            self.alerter.send(Alert(kind, title, message, severity, key))  # type: ignore[arg-type]

    def _track_equity(self, now_ns: int, equity: float) -> None:
        points = self._equity
        if points and points[-1][0] == now_ns:
            points[-1] = (now_ns, equity)
        else:
            points.append((now_ns, equity))
        day = dt.datetime.fromtimestamp(now_ns / _NS, tz=self.zone).date()
        if day != self._day:
            self._day, self._day_start = day, equity
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
            f"IB {self._connection} for {down_s / 60:.0f} min",
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

    def _stale(self, engine: Engine, now_ns: int) -> dict[str, float]:
        """The instruments whose last bar is older than ``stale_after_s``, and its age (s)."""
        portfolio = engine.portfolio
        found: dict[str, float] = {}
        if portfolio is None:
            return found
        for inst in engine.instruments:
            last = portfolio.history(inst, 1).ts_ns
            if len(last):
                age = (now_ns - int(last[0])) / _NS
                if age > self.stale_after_s:
                    found[inst.id] = age
        return found

    def _check_staleness(self, engine: Engine, now_ns: int) -> None:
        stale = {} if self._in_quiet(now_ns) else self._stale(engine, now_ns)
        for name, age in stale.items():
            if name not in self._stale_alerted:
                self._alert("stale_data", f"no new bar of {name} for {age / 60:.0f} min")
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
            detail = "; ".join([*(f"{s} stale" for s in stale), *problems])
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

    def _publish(self, engine: Engine, now_ns: int, *, stopped: bool = False) -> None:
        portfolio = engine.portfolio
        snap: dict[str, Any] = {
            "status": "stopped" if stopped else "running",
            "stopped": stopped,
            "time": _iso(now_ns),
            "strategy": engine.strategy.name,
            "bars": engine.bars_processed,
            "checks": [attrs.asdict(c) for c in self._checks(engine, now_ns)],
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
        if portfolio is not None:
            equity = portfolio.equity
            snap["equity"] = round(equity, 2) if math.isfinite(equity) else None
            snap["cash"] = round(float(portfolio.cash), 2)
            snap["fills_total"] = len(portfolio.fills)
            today = equity - self._day_start if math.isfinite(self._day_start) else 0.0
            snap["pnl_today"] = round(today, 2) if math.isfinite(today) else None
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
                    "unrealized": round(p.unrealized_pnl, 2)
                    if math.isfinite(p.unrealized_pnl)
                    else None,
                }
                for inst, p in portfolio.positions.items()
            ]
            limits = []
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
