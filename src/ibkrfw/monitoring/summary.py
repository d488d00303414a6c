"""The daily summary: once a day after the close, by the alert channels and as saved files."""

from __future__ import annotations

import datetime as dt
import html
import json
import logging
from pathlib import Path
from typing import Any, final
from zoneinfo import ZoneInfo

from ibkrfw.engine.engine import Engine, EngineObserver
from ibkrfw.errors import ConfigError
from ibkrfw.model.events import Event, OrderFilled
from ibkrfw.monitoring.alerts import Alert, Alerter
from ibkrfw.monitoring.monitor import LiveMonitor

__all__ = ["DailySummary"]

log = logging.getLogger("ibkrfw.summary")
_NS = 1_000_000_000


@final
class DailySummary(EngineObserver):
    """Send a summary of each trading day at ``at`` (exchange time), and save it.

    The summary holds the day's P&L, its fills, the positions, the risk state (halts,
    drawdown) and the health, from the run's :class:`LiveMonitor`. It goes out as an
    ``info`` alert (``daily_summary``) through ``alerter`` and is written to ``directory`` as
    ``summary-YYYY-MM-DD.json`` and ``.html``. Weekends are skipped; a day is summarised once,
    at the first heartbeat at or after ``at``.

    Args:
        monitor: The run's monitor (its snapshot is the source).
        alerter: Where the summary goes (none if None).
        at: The local time, ``"HH:MM"`` (16:30 by default: after the US close).
        tz: The exchange's time zone.
        directory: Where the files go (not written if None).

    Raises:
        ConfigError: for a time that is not ``HH:MM`` or an unknown zone.
    """

    def __init__(
        self,
        monitor: LiveMonitor,
        *,
        alerter: Alerter | None = None,
        at: str = "16:30",
        tz: str = "America/New_York",
        directory: str | Path | None = None,
    ) -> None:
        try:
            hours, minutes = (int(p) for p in at.split(":"))
            self.at = dt.time(hours, minutes)
            self.zone = ZoneInfo(tz)
        except (ValueError, KeyError) as exc:
            raise ConfigError(f"bad summary time {at!r} or zone {tz!r}: {exc}") from None
        self.monitor = monitor
        self.alerter = alerter
        self.directory = Path(directory) if directory is not None else None
        self._done: dt.date | None = None
        self._fills: dict[dt.date, int] = {}
        self.sent: list[dict[str, Any]] = []
        """The summaries made so far."""

    def _day(self, ns: int) -> dt.datetime:
        return dt.datetime.fromtimestamp(ns / _NS, tz=self.zone)

    def on_event(self, engine: Engine, event: Event) -> None:
        """Count the day's fills."""
        if isinstance(event, OrderFilled):
            day = self._day(event.fill.ts_ns).date()
            self._fills[day] = self._fills.get(day, 0) + 1

    def on_heartbeat(self, engine: Engine, now_ns: int) -> None:
        """Summarise the day once its time has come."""
        local = self._day(now_ns)
        day = local.date()
        if day == self._done or local.weekday() >= 5 or local.time() < self.at:
            return
        self._done = day
        self.summarise(day)

    def summarise(self, day: dt.date) -> dict[str, Any]:
        """Make, send and save the summary of ``day`` now."""
        snap = self.monitor.snapshot()
        health = snap.get("health", {})
        summary = {
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
        }
        self.sent.append(summary)
        text = self._text(summary)
        if self.alerter is not None:
            pnl = summary["pnl_today"]
            title = (
                f"daily summary {day}: P&L {pnl:+,.2f}"
                if pnl is not None
                else (f"daily summary {day}")
            )
            self.alerter.send(Alert("daily_summary", title, text, "info", key=f"summary:{day}"))
        if self.directory is not None:
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                stem = self.directory / f"summary-{day.isoformat()}"
                stem.with_suffix(".json").write_text(json.dumps(summary, indent=2, default=str))
                stem.with_suffix(".html").write_text(self._html(summary, text), encoding="utf-8")
            except OSError as exc:
                log.warning("could not save the daily summary: %s", exc)
        return summary

    @staticmethod
    def _text(summary: dict[str, Any]) -> str:
        def money(value: Any) -> str:
            return f"{value:,.2f}" if isinstance(value, int | float) else "n/a"

        lines = [
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
