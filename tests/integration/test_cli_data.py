"""The ``ibkrfw data`` commands, run as a user runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from ibkrfw.cli import main
from ibkrfw.data import SQLiteBarStore, generate_bars, write_bars_csv


def _csv(path: Path, periods: int = 300) -> pd.DataFrame:
    frame = generate_bars(["ACME"], freq="1min", start="2024-03-04", periods=periods)
    frame = frame.set_index("timestamp")[["open", "high", "low", "close", "volume"]]
    write_bars_csv(frame, path)
    return frame


def test_import_info_export_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source, store, out = tmp_path / "in.csv", tmp_path / "bars.sqlite", tmp_path / "out.csv"
    frame = _csv(source)
    args = ["data", "import", str(source), "--store", str(store), "--symbol", "ACME"]
    assert main([*args, "--bar-size", "1min"]) == 0
    assert "stored 300 1min bar(s) of ACME.SMART" in capsys.readouterr().out
    assert main(["data", "info", "--store", str(store)]) == 0
    listing = capsys.readouterr().out
    assert "ACME.SMART" in listing and "300" in listing
    export = ["data", "export", str(out), "--store", str(store), "--instrument", "ACME.SMART"]
    assert main([*export, "--bar-size", "1 min", "--start", "2024-03-04 10:00"]) == 0
    assert "wrote 270 bar(s)" in capsys.readouterr().out
    assert pd.read_csv(out)["close"].tolist() == frame["close"].iloc[30:].tolist()
    check = ["data", "validate", "--store", str(store), "--instrument", "ACME.SMART"]
    assert main([*check, "--bar-size", "1min"]) == 0
    assert "300 bar(s), no problems" in capsys.readouterr().out


def test_import_stops_on_problems_unless_told_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, store = tmp_path / "in.csv", tmp_path / "bars.sqlite"
    frame = _csv(source, 60)
    gappy = frame.drop(frame.index[10:13])
    write_bars_csv(gappy, source)
    args = ["data", "import", str(source), "--store", str(store), "--symbol", "ACME"]
    assert main([*args, "--bar-size", "1min"]) == 2
    captured = capsys.readouterr()
    assert "1 problem(s): gap 1" in captured.out
    assert "3 missing bar(s)" in captured.out
    assert "choose an action for 'gap'" in captured.err.lower()
    with SQLiteBarStore(store) as s:
        assert s.series() == []  # nothing stored
    assert main([*args, "--bar-size", "1min", "--clean", "gap=ffill"]) == 0
    assert "3 change(s) made" in capsys.readouterr().out
    with SQLiteBarStore(store) as s:
        assert s.series()[0].rows == 60
    assert main(["data", "validate", str(source), "--symbol", "ACME", "--bar-size", "1min"]) == 1


def test_the_installed_command_runs(tmp_path: Path) -> None:
    store = tmp_path / "bars.sqlite"
    done = subprocess.run(
        [sys.executable, "-m", "ibkrfw.cli", "data", "info", "--store", str(store)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "the store is empty" in done.stdout
