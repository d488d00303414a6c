"""An alerter's journal: history, quiet periods and the hourly cap survive a restart."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from ibkrfw.monitoring import Alert, Alerter
from ibkrfw.testing import RecordingChannel


class Clocks:
    """A monotonic clock in seconds and a wall clock in ns that move together."""

    def __init__(self) -> None:
        self.mono, self.wall = 1_000.0, 1_700_000_000 * 10**9

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += int(seconds * 1e9)


def _alerter(path: Path, clocks: Clocks, inbox: RecordingChannel, **options: object) -> Alerter:
    return Alerter([inbox], journal=path, clock=lambda: clocks.mono,
                   wall_clock=lambda: clocks.wall, **options).start()  # type: ignore[arg-type]  # fmt: skip


def _send(alerter: Alerter, *alerts: Alert) -> None:
    for alert in alerts:
        alerter.send(alert)
    assert alerter.flush(5)


def test_a_restarted_alerter_shows_the_earlier_alerts(tmp_path: Path) -> None:
    path, clocks = tmp_path / "state" / "alerts.jsonl", Clocks()
    first = _alerter(path, clocks, RecordingChannel())
    _send(first, Alert("disconnected", "TWS lost", "1100", "critical", ts_ns=5),
          Alert("order_rejected", "order 7 rejected", "201: no margin", ts_ns=6))  # fmt: skip
    first.stop()
    clocks.advance(60)  # the process is restarted a minute later
    again = _alerter(path, clocks, RecordingChannel())
    recent = again.recent(10)
    assert [(d.alert.kind, d.alert.message, d.alert.ts_ns) for d in recent] == [
        ("order_rejected", "201: no margin", 6),
        ("disconnected", "1100", 5),
    ]
    assert recent[0].ok and recent[0].channel == "recording"
    assert recent[0].at == pytest.approx(clocks.mono - 60)
    again.stop()


def test_the_quiet_period_and_the_hourly_cap_carry_over_a_restart(tmp_path: Path) -> None:
    path, clocks = tmp_path / "alerts.jsonl", Clocks()
    crash = Alert("start_failed", "ibkrfw could not start", "ConfigError", "critical")
    inbox = RecordingChannel()
    first = _alerter(path, clocks, inbox, quiet_s=900, max_per_hour=3)
    _send(first, crash, Alert("a", "one"), Alert("b", "two"))
    first.stop()
    clocks.advance(30)  # a supervisor restarts the failing process
    again = _alerter(path, clocks, inbox, quiet_s=900, max_per_hour=3)
    _send(again, crash)
    assert [a.kind for a in inbox.alerts] == ["start_failed", "a", "b"]  # not repeated
    _send(again, Alert("c", "three"))  # the fourth alert of the hour is over the cap
    assert again.suppressed == 2
    again.stop()
    clocks.advance(3600)
    later = _alerter(path, clocks, inbox, quiet_s=900, max_per_hour=3)
    _send(later, crash)  # an hour on, it is news again
    assert [a.kind for a in inbox.alerts][-1] == "start_failed"
    later.stop()


def test_an_unreadable_journal_line_is_skipped_and_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path, clocks = tmp_path / "alerts.jsonl", Clocks()
    first = _alerter(path, clocks, RecordingChannel())
    _send(first, Alert("a", "one"))
    first.stop()
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"kind": "half a line\n')
    with caplog.at_level(logging.WARNING, logger="ibkrfw.alerts"):
        again = _alerter(path, clocks, RecordingChannel())
    assert [d.alert.kind for d in again.recent()] == ["a"]
    assert "1 unreadable line(s)" in caplog.text
    assert [json.loads(line)["kind"] for line in path.read_text().splitlines()] == ["a"]
    again.stop()


def test_an_unwritable_journal_never_stops_an_alert(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path, inbox = tmp_path / "a-directory", RecordingChannel()
    path.mkdir()
    with caplog.at_level(logging.WARNING, logger="ibkrfw.alerts"):
        alerter = _alerter(path, Clocks(), inbox)
        _send(alerter, Alert("a", "one"), Alert("b", "two"))
        alerter.stop()
    assert [a.kind for a in inbox.alerts] == ["a", "b"]
    assert caplog.text.count("cannot write the alert journal") == 1


def test_a_long_journal_is_cut_to_what_is_read_back(tmp_path: Path) -> None:
    path, clocks = tmp_path / "alerts.jsonl", Clocks()
    alerter = _alerter(path, clocks, RecordingChannel(), quiet_s=0, max_per_hour=10_000)
    _send(alerter, *(Alert("n", f"alert {i}") for i in range(1_100)))
    alerter.stop()
    assert len(path.read_text().splitlines()) == 1_100
    again = _alerter(path, clocks, RecordingChannel(), quiet_s=0, max_per_hour=10_000)
    again.stop()
    lines = path.read_text().splitlines()
    assert len(lines) == 500 and json.loads(lines[-1])["title"] == "alert 1099"


def test_alerter_over_the_hourly_cap_still_sends_critical_alerts_deduplicated(
    tmp_path: Path,
) -> None:
    inbox, clocks = RecordingChannel(), Clocks()
    alerter = _alerter(tmp_path / "alerts.jsonl", clocks, inbox, quiet_s=900, max_per_hour=2)
    halt = Alert("risk_halt", "trading halted by MaxDrawdownKillSwitch", "drawdown 16 %",
                 "critical")  # fmt: skip
    _send(alerter, Alert("a", "one"), Alert("b", "two"), Alert("c", "three"), halt, halt)
    sent = [a.kind for a in inbox.alerts]
    assert sent.count("risk_halt") == 1  # past the cap, and still once within the quiet period
    assert "c" not in sent  # a warning over the cap is held back
    alerter.stop()


def test_the_cap_notice_goes_to_every_channel_once_and_says_what_still_goes_out(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    inbox, clocks = RecordingChannel(), Clocks()
    alerter = _alerter(tmp_path / "alerts.jsonl", clocks, inbox, quiet_s=0, max_per_hour=2)
    with caplog.at_level(logging.INFO, logger="ibkrfw.alerts"):
        _send(alerter, *(Alert("stale_data", f"no bar of S{i} for 20 min") for i in range(5)))
    notices = [a for a in inbox.alerts if a.kind == "alerts_capped"]
    assert [a.kind for a in inbox.alerts] == ["stale_data", "stale_data", "alerts_capped"]
    assert len(notices) == 1 and notices[0].severity == "warning"
    assert "Critical alerts and the daily summary still go out" in notices[0].message
    assert "about 60 min" in notices[0].message
    # what was held back is on the log, as the notice says
    assert "no bar of S4 for 20 min" in caplog.text and "hourly cap" in caplog.text
    assert alerter.suppressed == 3
    alerter.stop()


def test_the_daily_summary_is_not_held_back_by_the_hourly_cap(tmp_path: Path) -> None:
    inbox, clocks = RecordingChannel(), Clocks()
    alerter = _alerter(tmp_path / "alerts.jsonl", clocks, inbox, max_per_hour=1)
    summary = Alert("daily_summary", "daily summary 2024-01-08", "P&L", "info",
                    key="summary:2024-01-08")  # fmt: skip
    _send(alerter, Alert("a", "one"), Alert("b", "two"), summary)
    assert [a.kind for a in inbox.alerts] == ["a", "alerts_capped", "daily_summary"]
    alerter.stop()


def test_a_restart_within_a_spent_hour_sends_critical_alerts_and_no_second_notice(
    tmp_path: Path,
) -> None:
    path, clocks, inbox = tmp_path / "alerts.jsonl", Clocks(), RecordingChannel()
    first = _alerter(path, clocks, inbox, max_per_hour=2)
    _send(first, Alert("a", "one"), Alert("b", "two"), Alert("c", "three"))
    first.stop()
    clocks.advance(120)  # a supervisor restarts the process: the hour is still spent
    again = _alerter(path, clocks, inbox, max_per_hour=2)
    _send(again, Alert("d", "four"),
          Alert("disconnected", "IB disconnected for 5 min", "1100", "critical"))  # fmt: skip
    assert [a.kind for a in inbox.alerts] == ["a", "b", "alerts_capped", "disconnected"]
    again.stop()
    clocks.advance(3600)  # an hour on there is room again, and a new spell over the cap is news
    later = _alerter(path, clocks, inbox, max_per_hour=2)
    _send(later, Alert("e", "five"), Alert("f", "six"), Alert("g", "seven"))
    assert [a.kind for a in inbox.alerts][4:] == ["e", "f", "alerts_capped"]
    later.stop()
