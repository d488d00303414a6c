"""Progress on long jobs: bars in a terminal, plain lines in logs, nothing unless asked."""

from __future__ import annotations

import gc
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ibkrfw import ConfigError, Engine, Stock
from ibkrfw._progress import MIN_BARS_ENV, _Lines, make_bar
from ibkrfw.cli import main
from ibkrfw.data import SQLiteBarStore, generate_bars, sample_feed, write_bars_csv
from ibkrfw.optimize import Backtest, grid, run_sweep, walk_forward
from ibkrfw.sim import DataFrameFeed, SimBroker
from ibkrfw.strategies import MovingAverageCrossover

FEED = sample_feed(["ACME"])
SPACE = {"fast": [5, 10], "slow": [40]}


def _bars(periods: int) -> pd.DataFrame:
    frame = generate_bars(["SYN"], freq="1min", periods=periods, seed=3)
    return frame.set_index("timestamp")[["open", "high", "low", "close", "volume"]]


def _assert_lines(err: str, prefix: str) -> list[str]:
    """Progress in a log: whole lines of one job, starting at 0 and ending at 100 %."""
    assert "\r" not in err and "\x1b" not in err  # no redraws, no cursor moves
    lines = [line for line in err.splitlines() if line.startswith(prefix)]
    assert len(lines) >= 2, err
    assert " 0%" in lines[0] and "100%" in lines[-1], lines
    return lines


def test_engine_progress_gives_the_results_of_a_run_without(
    capsys: pytest.CaptureFixture[str],
) -> None:
    feed = DataFrameFeed(_bars(30_000), Stock("SYN"))  # several steps of 8,192 bars, and a rest
    quiet = Engine(MovingAverageCrossover(), feed, SimBroker()).run()
    assert capsys.readouterr().err == ""  # quiet by default
    shown = Engine(MovingAverageCrossover(), feed, SimBroker()).run(progress=True)
    lines = _assert_lines(capsys.readouterr().err, "backtest SYN")
    assert "30.0k/30.0k" in lines[-1]  # the exact count at the end
    pd.testing.assert_series_equal(quiet.stats, shown.stats)
    assert np.array_equal(quiet.equity, shown.equity)
    assert quiet.fill_list == shown.fill_list and int(quiet.stats["Trades"]) > 0


def test_engine_progress_none_shows_only_long_runs(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    Engine(MovingAverageCrossover(), FEED, SimBroker()).run(progress=None)
    Engine(MovingAverageCrossover(), FEED, SimBroker()).run(progress=False)
    assert capsys.readouterr().err == ""  # 2,608 bars: under the 200,000 of progress=None
    monkeypatch.setenv(MIN_BARS_ENV, "1000")
    Engine(MovingAverageCrossover(), FEED, SimBroker()).run(progress=None)
    _assert_lines(capsys.readouterr().err, "backtest ACME")


@pytest.mark.parametrize("value", ["yes", 1, 0.5])
def test_engine_progress_must_be_true_false_or_none(value: object) -> None:
    engine = Engine(MovingAverageCrossover(), FEED, SimBroker())
    with pytest.raises(
        ConfigError, match=f"Engine.run: progress must be True, False or None, got {value!r}"
    ):
        engine.run(progress=value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["many", "-5", "1e5"])
def test_a_bad_min_bars_variable_is_a_config_error_naming_it(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MIN_BARS_ENV, value)
    frozen, thresholds = gc.get_freeze_count(), gc.get_threshold()  # 3.12 starts with some
    with pytest.raises(ConfigError, match=f"{MIN_BARS_ENV}='{value}' is not a whole number"):
        Engine(MovingAverageCrossover(), FEED, SimBroker()).run(progress=None)
    # The refused run leaves the collector as it found it: nothing more frozen, the same
    # thresholds (it once left everything frozen, and each later run paid to count them).
    assert (gc.get_freeze_count(), gc.get_threshold()) == (frozen, thresholds)


def test_sweeps_show_a_line_per_state_and_nothing_when_quiet(
    capsys: pytest.CaptureFixture[str],
) -> None:
    setup = Backtest(MovingAverageCrossover, [FEED])
    quiet = run_sweep(setup, grid(SPACE), workers=1)
    assert capsys.readouterr().err == ""
    shown = run_sweep(setup, grid(SPACE), workers=1, progress=True)
    lines = _assert_lines(capsys.readouterr().err, "sweep of 2")
    assert "2/2" in lines[-1]
    pd.testing.assert_frame_equal(quiet.frame, shown.frame)
    walk_forward(setup, grid(SPACE), train="1460D", test="730D", workers=1, progress=True)
    _assert_lines(capsys.readouterr().err, "walk-forward")
    with pytest.raises(ConfigError, match="run_sweep: progress must be True, False, None or"):
        run_sweep(setup, grid(SPACE), workers=1, progress="bar")  # type: ignore[arg-type]


def test_a_terminal_gets_a_redrawn_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    with make_bar(total=3, desc="job", unit="run") as meter:
        meter.update(3)
    assert "\r" in terminal.getvalue() and "3/3" in terminal.getvalue()


def test_log_lines_are_whole_and_not_repeated() -> None:
    log = io.StringIO()
    lines = _Lines(log)
    lines.write("\rjob: 1/3")
    lines.write("\rjob: 1/3   ")
    lines.write("\rjob: 3/3\n")
    assert log.getvalue() == "job: 1/3\njob: 3/3\n"


def test_the_backtest_command_logs_progress_lines_for_long_runs(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["backtest", "--symbols", "ACME"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and "Sharpe ratio" in out  # a short run: no progress
    monkeypatch.setenv(MIN_BARS_ENV, "100")  # make the sample's 2,608 bars a long run
    assert main(["backtest", "--symbols", "ACME"]) == 0
    long_out, err = capsys.readouterr()
    _assert_lines(err, "backtest ACME")
    assert long_out == out  # progress stays on stderr; the results are the same


def test_the_optimize_command_logs_progress_lines(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["optimize", "--symbols", "ACME", "-g", "fast=5,10", "-g", "slow=40", "--workers", "1"]
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "2/2" in _assert_lines(err, "sweep of 2")[-1]
    assert "sweep of" not in out
    assert main([*argv, "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_the_import_command_logs_progress_lines_for_large_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "in.csv"
    frame = generate_bars(["ACME"], freq="1min", start="2024-03-04", periods=600)
    write_bars_csv(frame.set_index("timestamp")[["open", "high", "low", "close", "volume"]], source)
    argv = ["data", "import", str(source), "--store", str(tmp_path / "s.db"), "--symbol", "ACME",
            "--bar-size", "1min"]  # fmt: skip
    monkeypatch.setenv(MIN_BARS_ENV, "100")
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert "600/600" in _assert_lines(err, "storing ACME 1min")[-1]
    assert "stored 600 1min bar(s)" in out


def test_store_writes_are_quiet_unless_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = _bars(120_000)
    with SQLiteBarStore(tmp_path / "s.db") as store:
        store.write(Stock("SYN"), "1min", frame)
        assert capsys.readouterr().err == ""
        store.write(Stock("SYN"), "1min", frame, progress=True)  # three parts of 50,000
        assert "120k/120k" in _assert_lines(capsys.readouterr().err, "storing SYN 1min")[-1]
        assert len(store.read("SYN.SMART", "1min")) == 120_000
