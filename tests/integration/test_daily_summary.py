"""The daily summary across restarts: runs ("processes") one after another on one state directory.

Each run is what ``ibkrfw run`` builds (an alerter with its journal, a monitor, a daily
summary saving under ``state/summaries``), driven by hourly bars whose times are the run's
clock.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from ibkrfw import Engine, Stock
from ibkrfw.monitoring import Alerter, DailySummary, LiveMonitor
from ibkrfw.sim import DataFrameFeed, SimBroker
from ibkrfw.testing import RecordingChannel, ScriptedStrategy, bars_frame

ACME = Stock("ACME")
MONDAY, TUESDAY = "2024-01-08", "2024-01-09"


class Clocks:
    """The alerter's monotonic clock (s) and wall clock (ns), moved on between runs."""

    def __init__(self) -> None:
        self.mono, self.wall = 1_000.0, pd.Timestamp(f"{MONDAY} 09:00", tz="UTC").value

    def advance(self, seconds: float) -> None:
        self.mono += seconds
        self.wall += int(seconds * 1e9)


def hours(day: str, first: str, count: int, price: float = 100.0) -> pd.DataFrame:
    """``count`` hourly bars of ``day`` from ``first``, New York time, closing 1 higher each."""
    rows = [(price + i, price + i, price + i, price + i) for i in range(count)]
    return bars_frame(rows, start=f"{day} {first}", freq="1h", tz="America/New_York")


def run(
    state: Path,
    clocks: Clocks,
    inbox: RecordingChannel,
    *frames: pd.DataFrame,
    actions: dict[int, Callable[..., Any]] | None = None,
) -> DailySummary:
    """One process: its bars, then it stops; the next one starts two hours later."""
    alerter = Alerter([inbox], journal=state / "alerts.jsonl", clock=lambda: clocks.mono,
                      wall_clock=lambda: clocks.wall).start()  # fmt: skip
    monitor = LiveMonitor(alerter=alerter, stale_after_s=1e9, drawdown_alert=None,
                          daily_loss_alert=None)  # fmt: skip
    summary = DailySummary(monitor, alerter=alerter, directory=state / "summaries")
    feed = DataFrameFeed(pd.concat(frames), ACME)
    Engine(ScriptedStrategy(actions or {}), feed, SimBroker(10_000),
           observers=[monitor, summary]).run()  # fmt: skip
    alerter.stop()
    clocks.advance(2 * 3600)  # longer than the alerts' quiet period
    return summary


def titles(inbox: RecordingChannel) -> list[str]:
    return [a.title for a in inbox.alerts if a.kind == "daily_summary"]


def test_a_restart_after_the_summary_time_does_not_send_the_day_again(tmp_path: Path) -> None:
    clocks, inbox = Clocks(), RecordingChannel()
    run(tmp_path, clocks, inbox, hours(MONDAY, "09:30", 9))  # to 17:30: summarised at 16:30
    again = run(tmp_path, clocks, inbox, hours(MONDAY, "19:00", 3))  # a supervisor's restart
    assert again.sent == []
    run(tmp_path, clocks, inbox, hours(TUESDAY, "09:30", 8))
    assert titles(inbox) == [f"daily summary {MONDAY}: P&L +0.00",
                             f"daily summary {TUESDAY}: P&L +0.00"]  # fmt: skip


def test_a_run_started_after_the_summary_time_skips_a_day_it_did_not_run_through(
    tmp_path: Path,
) -> None:
    clocks, inbox = Clocks(), RecordingChannel()
    summary = run(tmp_path, clocks, inbox, hours(MONDAY, "17:30", 3), hours(TUESDAY, "09:30", 8))
    assert [s["date"] for s in summary.sent] == [TUESDAY]
    assert titles(inbox) == [f"daily summary {TUESDAY}: P&L +0.00"]


@pytest.mark.parametrize(
    ("restart", "expected"),
    [
        ((MONDAY, "17:30", 2), [MONDAY]),  # the same evening
        ((TUESDAY, "09:30", 8), [MONDAY, TUESDAY]),  # the next morning
    ],
)
def test_a_day_left_before_its_summary_time_is_summarised_late_by_the_next_run(
    tmp_path: Path, restart: tuple[str, str, int], expected: list[str]
) -> None:
    clocks, inbox = Clocks(), RecordingChannel()
    # the run buys at 10:30 (101), and stops at 12:30 (marked at 103): a crash before 16:30
    buy = {0: lambda c, b: c.buy(ACME, 10)}
    run(tmp_path, clocks, inbox, hours(MONDAY, "09:30", 4), actions=buy)
    summary = run(tmp_path, clocks, inbox, hours(*restart))
    assert [s["date"] for s in summary.sent] == expected
    late = summary.sent[0]
    assert late["late"] and late["as_of"] == f"{MONDAY}T12:30-05:00"
    assert late["fills_today"] == 1 and late["positions"][0]["quantity"] == 10.0
    assert late["pnl_today"] == pytest.approx(20.0)
    assert titles(inbox)[0] == f"daily summary {MONDAY} (late): P&L +20.00"
    text = next(a.message for a in inbox.alerts if a.kind == "daily_summary")
    assert text.startswith("Late: no run was up at 16:30; figures as of 12:30")
    saved = json.loads((tmp_path / "summaries" / f"summary-{MONDAY}.json").read_text())
    assert saved["late"] and saved["fills_today"] == 1
    # and once only: a third run that evening sends nothing
    assert run(tmp_path, clocks, inbox, hours(restart[0], "20:00", 2)).sent == []
    assert len(titles(inbox)) == len(expected)


def test_a_run_that_skips_past_the_summary_time_summarises_the_day_late(tmp_path: Path) -> None:
    clocks, inbox = Clocks(), RecordingChannel()
    # no bar between Monday 12:30 and Tuesday 09:30: the heartbeat jumps past 16:30
    summary = run(tmp_path, clocks, inbox, hours(MONDAY, "09:30", 4), hours(TUESDAY, "09:30", 8),
                  actions={0: lambda c, b: c.buy(ACME, 10)})  # fmt: skip
    assert [(s["date"], s["late"]) for s in summary.sent] == [(MONDAY, True), (TUESDAY, False)]
    assert summary.sent[0]["as_of"] == f"{MONDAY}T12:30-05:00"
    assert summary.sent[0]["pnl_today"] == pytest.approx(20.0)


def test_a_restart_before_the_summary_time_summarises_the_day_once_saying_since_when(
    tmp_path: Path,
) -> None:
    clocks, inbox = Clocks(), RecordingChannel()
    first = run(tmp_path, clocks, inbox, hours(MONDAY, "09:30", 3))
    second = run(tmp_path, clocks, inbox, hours(MONDAY, "13:30", 5))  # up again at 16:30
    assert first.sent == [] and [s["date"] for s in second.sent] == [MONDAY]
    assert not second.sent[0]["late"] and second.sent[0]["since"] == f"{MONDAY}T13:30-05:00"
    assert "This run started at 13:30: P&L and fills since then" in inbox.alerts[-1].message
    assert titles(inbox) == [f"daily summary {MONDAY}: P&L +0.00"]


def test_a_summary_that_could_not_be_saved_is_not_sent_again_after_a_restart(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clocks, inbox = Clocks(), RecordingChannel()
    (tmp_path / "summaries" / f"summary-{MONDAY}.json").mkdir(parents=True)  # in the way
    with caplog.at_level(logging.WARNING, logger="ibkrfw.summary"):
        run(tmp_path, clocks, inbox, hours(MONDAY, "09:30", 9))
    assert "could not save the daily summary" in caplog.text
    # the alert journal remembers that it went out
    assert run(tmp_path, clocks, inbox, hours(MONDAY, "19:00", 2)).sent == []
    assert titles(inbox) == [f"daily summary {MONDAY}: P&L +0.00"]


def test_a_day_no_run_was_up_on_before_its_summary_time_is_not_summarised_late_either(
    tmp_path: Path,
) -> None:
    clocks, inbox = Clocks(), RecordingChannel()
    # Monday left at 12:30; the next heartbeat on Tuesday at 17:30, after Tuesday's time
    run(tmp_path, clocks, inbox, hours(MONDAY, "09:30", 4), hours(TUESDAY, "17:30", 3))
    assert run(tmp_path, clocks, inbox, hours(TUESDAY, "20:00", 2)).sent == []
    assert titles(inbox) == [f"daily summary {MONDAY} (late): P&L +0.00"]


def test_a_live_runs_beats_at_older_bar_times_do_not_summarise_those_days_again(
    tmp_path: Path,
) -> None:
    """A live run beats on the wall clock and, once per bar, at the bar's time, which lags.

    Restarted on Monday morning, the first bars it handles may be Friday evening's: Friday,
    summarised by the run that was up then, must not be summarised again at every start.
    """
    clocks, inbox = Clocks(), RecordingChannel()
    friday = "2024-01-05"
    run(tmp_path, clocks, inbox, hours(friday, "09:30", 9))  # summarised at 16:30
    alerter = Alerter([inbox], journal=tmp_path / "alerts.jsonl", clock=lambda: clocks.mono,
                      wall_clock=lambda: clocks.wall).start()  # fmt: skip
    monitor = LiveMonitor(alerter=alerter, stale_after_s=1e9)
    restarted = DailySummary(monitor, alerter=alerter, directory=tmp_path / "summaries")
    engine = Engine(ScriptedStrategy({}), DataFrameFeed(hours(friday, "09:30", 1), ACME),
                    SimBroker())  # fmt: skip
    engine.run()  # books and a portfolio to look at

    def ns(text: str) -> int:
        return pd.Timestamp(text, tz="America/New_York").value

    for beat in ("2024-01-08 08:00:00", "2024-01-05 16:59", "2024-01-05 17:00",
                 "2024-01-08 08:00:01"):  # fmt: skip
        restarted.on_heartbeat(engine, ns(beat))
    alerter.stop()
    assert restarted.sent == []
    assert titles(inbox) == [f"daily summary {friday}: P&L +0.00"]
