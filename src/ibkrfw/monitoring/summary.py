"""The daily summary: once a day after the close, by the alert channels and as saved files."""

from __future__ import annotations

import datetime as dt
import html
import json
import logging
import os
from pathlib import Path
from typing import Any, final
from zoneinfo import ZoneInfo

from ibkrfw._redact import redact
from ibkrfw.engine.engine import Engine, EngineObserver
from ibkrfw.errors import ConfigError
from ibkrfw.model.events import Event, OrderFilled
from ibkrfw.monitoring.alerts import Alert, Alerter
from ibkrfw.monitoring.monitor import LiveMonitor

__all__ = ["DailySummary"]

log = logging.getLogger("ibkrfw.summary")
_NS = 1_000_000_000
_NEVER = 2**63 - 1  # ns: a time that never comes
_BEFORE_ALL = -(2**63)  # ns: before any time (the first heartbeat begins a day)
_DAY_FILE = "day.json"  # the day in progress, kept for the next run
_JOURNAL_LOOKBACK = 500  # deliveries looked through for a day's summary (all an alerter keeps)


def _file(day: dt.date, suffix: str) -> str:
    return f"summary-{day.isoformat()}{suffix}"


def _write(path: Path, text: str) -> None:
    """Write ``text``, secrets masked, to ``path`` whole or not at all (no half file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".tmp")
    try:
        temp.write_text(redact(text), encoding="utf-8")
        os.replace(temp, path)
    except OSError:
        temp.unlink(missing_ok=True)
        raise


@final
class DailySummary(EngineObserver):
    """Send a summary of each trading day at ``at`` (exchange time), and save it.

    The summary holds the day's P&L, its fills, the positions, the risk state (halts,
    drawdown) and the health, from the run's :class:`LiveMonitor`. It goes out as an
    ``info`` alert (``daily_summary``, which the alerter's hourly cap never holds back)
    through ``alerter`` and is written to ``directory`` as ``summary-YYYY-MM-DD.json`` and
    ``.html``. Weekends are skipped.

    **Once a day, across restarts.** A day is summarised once, at the first heartbeat at or
    after ``at``. Its saved ``summary-YYYY-MM-DD.json`` is the record that it was: a run
    restarted later (a supervisor restarting ``ibkrfw run``) finds it and sends nothing
    again. Should that file not be writable, a delivery of the day's summary in the
    alerter's journal counts as well (with neither, a restart may send it again: a
    duplicate rather than a loss; the log says so).

    **Which days.** A day is summarised only if a run was up on it before ``at``: this run,
    or an earlier one with the same ``directory``, which keeps the day in progress there in
    ``day.json`` (written at the day's first heartbeat, every ``save_every_s`` of the run's
    clock, and when the run stops). So:

    * a day no run was up on before ``at`` gets no summary: a run started after ``at``
      does not summarise a day it did not run through;
    * a day a run was up on but left before ``at`` (it stopped or crashed, and the next
      run starts after ``at``, that evening or days later; or no heartbeat came between
      ``at`` and midnight) is summarised **late**, at the next run's first heartbeat: the
      summary says so (``late``) and gives the day's figures as last saved (``as_of``);
    * after a restart before ``at``, the day is summarised at ``at`` as usual, with what
      this run saw: its P&L and fills count from its start (``since``).

    Args:
        monitor: The run's monitor (its snapshot is the source).
        alerter: Where the summary goes (none if None).
        at: The local time, ``"HH:MM"`` (16:30 by default: after the US close).
        tz: The exchange's time zone.
        directory: Where the files go and the day in progress is kept (neither if None:
            then a day is summarised once by this run only).
        save_every_s: How often the day in progress is saved, in seconds of the run's
            clock (the figures of a late summary are at most this old).

    Raises:
        ConfigError: for a time that is not ``HH:MM``, an unknown zone, or a
            ``save_every_s`` that is not a positive number.
    """

    def __init__(
        self,
        monitor: LiveMonitor,
        *,
        alerter: Alerter | None = None,
        at: str = "16:30",
        tz: str = "America/New_York",
        directory: str | Path | None = None,
        save_every_s: float = 300.0,
    ) -> None:
        try:
            hours, minutes = (int(p) for p in at.split(":"))
            self.at = dt.time(hours, minutes)
            self.zone = ZoneInfo(tz)
        except (ValueError, KeyError) as exc:
            raise ConfigError(f"bad summary time {at!r} or zone {tz!r}: {exc}") from None
        if not (isinstance(save_every_s, int | float) and save_every_s > 0):
            raise ConfigError(f"save_every_s must be a positive number of seconds, got "
                              f"{save_every_s!r}")  # fmt: skip
        self.monitor = monitor
        self.alerter = alerter
        self.directory = Path(directory) if directory is not None else None
        self.save_every_s = float(save_every_s)
        self._done: set[dt.date] = set()
        self._fills: dict[dt.date, int] = {}
        self.sent: list[dict[str, Any]] = []
        """The summaries made so far."""
        # The day watched, in ns of the run's clock: its summary time and its end. The
        # heartbeat compares one number until the next of them (or the next save) is due.
        self._today: dt.date | None = None
        self._due_ns = self._end_ns = self._next_ns = _BEFORE_ALL
        self._save_ns = _NEVER
        self._pending = False  # the day watched is still to be summarised, at _due_ns
        self._since_ns: int | None = None  # when this run began on that day (None: before)
        self._record: tuple[dt.date, dict[str, Any]] | None = None  # the day in progress
        self._kept_failed = False

    def _local(self, ns: int) -> dt.datetime:
        return dt.datetime.fromtimestamp(ns / _NS, tz=self.zone)

    def _ns(self, day: dt.date, time: dt.time) -> int:
        return round(dt.datetime.combine(day, time, tzinfo=self.zone).timestamp()) * _NS

    def _hhmm(self, iso: str) -> str:
        return dt.datetime.fromisoformat(iso).astimezone(self.zone).strftime("%H:%M")

    def on_event(self, engine: Engine, event: Event) -> None:
        """Count the day's fills."""
        if isinstance(event, OrderFilled):
            day = self._local(event.fill.ts_ns).date()
            self._fills[day] = self._fills.get(day, 0) + 1

    def on_heartbeat(self, engine: Engine, now_ns: int) -> None:
        """Summarise the day once its time has come; keep the day in progress."""
        if now_ns >= self._next_ns:
            if now_ns >= self._end_ns:
                self._begin(now_ns)
            today = self._today
            if self._pending and today is not None and now_ns >= self._due_ns:
                self._pending, self._save_ns = False, _NEVER
                self.summarise(today, now_ns)
            self._next_ns = self._due_ns if self._pending else self._end_ns
        elif now_ns >= self._save_ns:
            self._keep(now_ns)

    def on_stop(self, engine: Engine, error: BaseException | None) -> None:
        """Keep the day in progress as it is now, for a late summary by the next run."""
        now_ns = engine.clock.now_ns()
        if self._pending and now_ns < self._end_ns:
            self._keep(now_ns)

    def summarise(self, day: dt.date, now_ns: int | None = None) -> dict[str, Any]:
        """Make, send and save the summary of ``day`` now (``now_ns``: the run's time)."""
        return self._emit(self._make(day, now_ns))

    # --- internals ------------------------------------------------------------------------
    def _begin(self, now_ns: int) -> None:
        """A new day (or the run's first heartbeat): settle the day left, watch this one."""
        day = self._local(now_ns).date()
        first = self._today is None
        if first:
            self._record = self._load()
        self._today = day
        self._due_ns = self._ns(day, self.at)
        self._end_ns = self._ns(day + dt.timedelta(days=1), dt.time())
        self._since_ns = now_ns if first else None
        left = self._record
        # a day a run was up on before its summary time, and no run at it: summarised late
        if left is not None and (left[0] < day or (first and now_ns >= self._due_ns)):
            self._record = None
            if not self._summarised(left[0]):
                self._emit({**left[1], "late": True})
        self._save_ns = _NEVER
        self._pending = day.weekday() < 5 and now_ns < self._due_ns and not self._summarised(day)
        if self._pending:
            self._keep(now_ns)  # the mark that a run was up on the day before its time
        elif day.weekday() < 5 and not self._summarised(day):
            log.info("no daily summary of %s: the run's first heartbeat that day came at %s, "
                     "after %s, and no run was up on it before", day,
                     self._local(now_ns).strftime("%H:%M"), self.at.strftime("%H:%M"))  # fmt: skip

    def _summarised(self, day: dt.date) -> bool:
        """Whether ``day`` was summarised: by this run, its saved file, or the alert journal."""
        if day in self._done:
            return True
        if self.directory is not None and (self.directory / _file(day, ".json")).is_file():
            return True
        if self.alerter is not None:
            key = f"summary:{day.isoformat()}"
            return any(d.ok and d.alert.kind == "daily_summary" and d.alert.key == key
                       for d in self.alerter.recent(_JOURNAL_LOOKBACK))  # fmt: skip
        return False

    def _make(self, day: dt.date, now_ns: int | None) -> dict[str, Any]:
        snap = self.monitor.snapshot()
        health = snap.get("health", {})
        when = self._local(now_ns) if now_ns is not None else None
        if when is None and snap.get("time"):  # the monitor's last look at the run
            when = dt.datetime.fromisoformat(snap["time"]).astimezone(self.zone)
        since = self._since_ns if day == self._today else None
        return {
            "date": day.isoformat(),
            "strategy": snap.get("strategy"),
            "equity": snap.get("equity"),
            "pnl_today": snap.get("pnl_today"),
            "drawdown": snap.get("drawdown"),
            "fills_today": self._fills.get(day, 0),
            "positions": snap.get("positions", []),
            "working_orders": len(snap.get("orders", [])),
            "halts": snap.get("halts", []),
            "limits": snap.get("limits", []),
            "health": health.get("status"),
            "health_reasons": health.get("reasons", []),
            "as_of": None if when is None else when.isoformat(timespec="minutes"),
            "since": None if since is None else self._local(since).isoformat(timespec="minutes"),
            "late": False,
        }

    def _emit(self, summary: dict[str, Any]) -> dict[str, Any]:
        """Send and save ``summary``; from now on its day counts as summarised."""
        day = dt.date.fromisoformat(summary["date"])
        self._done.add(day)
        self.sent.append(summary)
        text = self._text(summary)
        if self.alerter is not None:
            pnl = summary["pnl_today"]
            late = " (late)" if summary.get("late") else ""
            title = f"daily summary {day}{late}" + (
                f": P&L {pnl:+,.2f}" if isinstance(pnl, int | float) else ""
            )
            self.alerter.send(Alert("daily_summary", title, text, "info", key=f"summary:{day}"))
        if self.directory is not None:
            try:
                _write(self.directory / _file(day, ".json"),
                       json.dumps(summary, indent=2, default=str))  # fmt: skip
                _write(self.directory / _file(day, ".html"), self._html(summary, text))
            except OSError as exc:
                saved = "the alert journal" if self.alerter and self.alerter.journal else ""
                log.warning("could not save the daily summary of %s: %s (%s)", day, exc,
                            f"{saved} keeps it from being sent again after a restart"
                            if saved else "a restart may send it again")  # fmt: skip
        return summary

    def _keep(self, now_ns: int) -> None:
        """Keep the day in progress (in ``day.json``), for the next run if this one stops."""
        self._save_ns = now_ns + round(self.save_every_s * _NS)
        if self._today is None:
            return
        figures = self._make(self._today, now_ns)
        self._record = (self._today, figures)
        if self.directory is None:
            return
        kept = {"date": figures["date"], "summary": figures}
        try:
            _write(self.directory / _DAY_FILE, json.dumps(kept, default=str))
        except OSError as exc:
            if not self._kept_failed:  # said once
                self._kept_failed = True
                log.warning("cannot keep the day in progress in %s: %s (a run restarted after "
                            "the summary time will not summarise the day)",
                            self.directory / _DAY_FILE, exc)  # fmt: skip

    def _load(self) -> tuple[dt.date, dict[str, Any]] | None:
        """The day in progress an earlier run kept, if any."""
        if self.directory is None:
            return None
        path = self.directory / _DAY_FILE
        try:
            row = json.loads(path.read_text(encoding="utf-8"))
            figures = dict(row["summary"])
            return dt.date.fromisoformat(row["date"]), figures
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("cannot read the day in progress %s: %s (ignored)", path, exc)
            return None

    def _text(self, summary: dict[str, Any]) -> str:
        def money(value: Any) -> str:
            return f"{value:,.2f}" if isinstance(value, int | float) else "n/a"

        lines = []
        if summary.get("late"):
            as_of = f"as of {self._hhmm(summary['as_of'])}" if summary.get("as_of") else "as saved"
            lines.append(f"Late: no run was up at {self.at:%H:%M}; figures {as_of}, when the "
                         "run was last seen.")  # fmt: skip
        if summary.get("since"):
            which = "That run" if summary.get("late") else "This run"
            lines.append(f"{which} started at {self._hhmm(summary['since'])}: P&L and fills "
                         "since then.")  # fmt: skip
        lines += [
            f"Strategy: {summary['strategy']}",
            f"Equity: {money(summary['equity'])}",
            f"P&L today: {money(summary['pnl_today'])}",
            f"Drawdown: {100 * (summary['drawdown'] or 0):.2f} %",
            f"Fills today: {summary['fills_today']}; working orders: {summary['working_orders']}",
            f"Health: {summary['health']}"
            + (
                " (" + "; ".join(summary["health_reasons"]) + ")"
                if summary["health_reasons"]
                else ""
            ),
            f"Halts: {len(summary['halts'])}",
            *(
                f"Limit {u['rule']} {u['measure']}: {u['used']:g} of {u['limit']:g}"
                for u in summary["limits"]
            ),
            "Positions:",
        ]
        for p in summary["positions"] or []:
            lines.append(f"  {p['instrument']}: {p['quantity']:g} (value {money(p['value'])})")
        if not summary["positions"]:
            lines.append("  none")
        return "\n".join(lines)

    @staticmethod
    def _html(summary: dict[str, Any], text: str) -> str:
        title = f"ibkrfw daily summary {summary['date']}"
        return (
            "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title></head><body>"
            f"<h1>{html.escape(title)}</h1><pre>{html.escape(text)}</pre></body></html>\n"
        )
