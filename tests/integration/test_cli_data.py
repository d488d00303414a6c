"""The ``ibkrfw data`` commands, run as a user runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

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
    SQLiteBarStore(store).close()  # an empty store
    done = subprocess.run(
        [sys.executable, "-m", "ibkrfw.cli", "data", "info", "--store", str(store)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "the store is empty" in done.stdout


def _with_line(path: Path, number: int, edit: str) -> None:
    """Rewrite line ``number`` of a file (header = line 1): ``edit`` formats its fields."""
    lines = path.read_text().splitlines()
    t, o, h, lo, c, v = lines[number - 1].split(",")
    lines[number - 1] = edit.format(t=t, o=o, h=h, lo=lo, c=c, v=v)
    path.write_text("\n".join(lines) + "\n")


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_bad_number_is_named_by_its_line_in_every_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, store = tmp_path / "bars.csv", tmp_path / "bars.sqlite"
    _csv(source, 600)
    _with_line(source, 500, "{t},{o},{h},{lo},abc,{v}")
    expected = f"ibkrfw: error: {source} line 500, column close: 'abc' is not a number; "
    for argv in (
        ["data", "validate", str(source), "--symbol", "ACME", "--bar-size", "1min"],
        ["data", "import", str(source), "--store", str(store), "--symbol", "ACME",
         "--bar-size", "1min"],
        ["backtest", "--csv", str(source), "--symbols", "ACME"],
    ):  # fmt: skip
        code, out, err = _run(capsys, *argv)
        assert (code, out) == (2, ""), argv
        assert err.startswith(expected), (argv, err)
        assert "Traceback" not in err


def test_validate_reports_problems_by_file_line_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, store = tmp_path / "bars.csv", tmp_path / "bars.sqlite"
    _csv(source, 600)
    _with_line(source, 500, "{t},{o},{h},{lo},,{v}")  # an empty close
    code, out, _ = _run(
        capsys, "data", "validate", str(source), "--symbol", "ACME", "--bar-size", "1min"
    )
    assert code == 1
    assert "1 problem(s): missing_price 1" in out
    header, row = out.splitlines()[1:3]
    assert header.split()[:2] == ["line", "timestamp"] and row.split()[0] == "500"
    import_argv = ["data", "import", str(source), "--store", str(store), "--symbol", "ACME"]
    code, _, err = _run(capsys, *import_argv, "--bar-size", "1min")
    assert code == 2
    assert f"{source} line 500 (" in err
    assert "e.g. --clean missing_price=drop, or fix the data" in err
    assert "clean_bars" not in err and "actions=" not in err
    _with_line(source, 300, "{t},{o},{h},{lo},{c},-5")  # and a negative volume before it
    code, _, err = _run(capsys, "backtest", "--csv", str(source), "--symbols", "ACME")
    assert code == 2
    assert f"{source} line 500 (" in err and "column close: missing or infinite price" in err
    code, out, _ = _run(
        capsys, "data", "validate", str(source), "--symbol", "ACME", "--bar-size", "1min"
    )
    assert (code, [r.split()[0] for r in out.splitlines()[2:4]]) == (1, ["300", "500"])


def test_naive_times_ask_for_the_tz_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "naive.csv"
    _csv(source, 30)
    source.write_text(source.read_text().replace("+00:00", ""))
    for argv in (
        ["data", "validate", str(source), "--bar-size", "1min"],
        ["backtest", "--csv", str(source), "--symbols", "ACME"],
    ):
        code, _, err = _run(capsys, *argv)
        assert code == 2
        assert f"{source} line 2: timestamps have no time zone" in err
        assert "--tz America/New_York" in err and "tz=" not in err
    code, out, _ = _run(
        capsys, "data", "validate", str(source), "--bar-size", "1min", "--tz", "UTC"
    )
    assert (code, out) == (0, "30 bar(s), no problems\n")
    code, _, err = _run(capsys, "data", "validate", str(source), "--bar-size", "1min",
                        "--tz", "New York")  # fmt: skip
    assert code == 2 and "unknown time zone 'New York'" in err


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda p: p.write_bytes(b""), "is empty"),
        (lambda p: p.write_text("timestamp,open,high,low,close\n"), "has a header but no bars"),
        (lambda p: p.write_bytes(bytes(range(256)) * 8), "holds binary data"),
        (lambda p: p.mkdir(), "is a directory, not a CSV file"),
        (lambda p: p.write_text("timestamp;open;high;low;close\n"), "separated by semicolons"),
        (
            lambda p: p.write_text("Date,Open,High,Low,Close,Volume\n2024-01-02,1,2,0.5,1,5\n"),
            "looks like the 'yahoo' layout: give --layout yahoo",
        ),
        (lambda p: None, "no such file; check the path"),
    ],
)
def test_wrong_files_exit_2_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: Any, words: str
) -> None:
    source = tmp_path / "bars.csv"
    make(source)
    code, out, err = _run(
        capsys, "data", "validate", str(source), "--symbol", "ACME", "--bar-size", "1d"
    )
    assert (code, out) == (2, "")
    assert err.startswith(f"ibkrfw: error: {source}") and words in err
    assert "Traceback" not in err


@pytest.mark.parametrize("line", [2, 5])
def test_a_line_with_a_value_too_many_is_named_in_every_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], line: int
) -> None:
    source, store = tmp_path / "extra.csv", tmp_path / "bars.sqlite"
    _csv(source, 10)
    _with_line(source, line, "{t},{o},{h},{lo},{c},{v},9")
    expected = f"ibkrfw: error: {source} line {line} has 7 values, the header has 6; remove"
    for argv in (
        ["backtest", "--csv", str(source), "--symbols", "X"],
        [
            "data",
            "import",
            str(source),
            "--store",
            str(store),
            "--symbol",
            "X",
            "--bar-size",
            "1min",
        ],
        ["data", "validate", str(source), "--bar-size", "1min"],
    ):
        code, out, err = _run(capsys, *argv)
        assert (code, out) == (2, ""), argv
        assert err.startswith(expected), (argv, err)
        assert "np.int64" not in err and "is not a time" not in err
    assert not store.exists()


def test_one_symbol_reads_its_rows_of_a_file_with_a_symbol_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "multi.csv"
    frame = generate_bars(["ACME", "BOLT"], freq="1D", start="2024-01-02", periods=40)
    frame.to_csv(source, index=False)
    code, out, _ = _run(capsys, "backtest", "--csv", str(source), "--symbols", "ACME")
    assert code == 0 and "ACME" in out
    single = tmp_path / "acme.csv"
    frame[frame["symbol"] == "ACME"].drop(columns="symbol").to_csv(single, index=False)
    code, same, _ = _run(capsys, "backtest", "--csv", str(single), "--symbols", "ACME")
    assert code == 0 and same.replace(str(single), str(source)) == out
    for symbols in ("ZZZ", "ACME,ZZZ"):
        code, out, err = _run(capsys, "backtest", "--csv", str(source), "--symbols", symbols)
        assert (code, out) == (2, "")
        assert f"{source}: no rows for symbol 'ZZZ'; its symbol column has ACME, BOLT" in err


def test_commands_that_read_a_store_refuse_one_that_does_not_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "nonexist.db"
    for argv in (
        ["data", "info", "--store", str(store)],
        ["data", "validate", "--store", str(store), "--instrument", "ACME.SMART", "--bar-size",
         "1d"],
        ["data", "export", str(tmp_path / "o.csv"), "--store", str(store), "--instrument",
         "ACME.SMART", "--bar-size", "1d"],
    ):  # fmt: skip
        code, out, err = _run(capsys, *argv)
        assert (code, out) == (2, ""), argv
        assert err.startswith(f"ibkrfw: error: --store {store} does not exist; give the path")
    assert not store.exists()
    code, _, err = _run(capsys, "data", "info", "--store", str(tmp_path), "--parquet")
    assert code == 0  # an existing directory is an (empty) Parquet store


def test_import_into_a_directory_is_refused_before_reading_the_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "bad.csv"
    source.write_text("timestamp,open\nnot a time,x\n")
    argv = ["data", "import", str(source), "--store", str(tmp_path), "--symbol", "ACME"]
    code, out, err = _run(capsys, *argv, "--bar-size", "1d")
    assert (code, out) == (2, "")
    assert err.startswith(f"ibkrfw: error: --store {tmp_path} is a directory, not a SQLite file")
    assert "--parquet" in err


def test_validate_and_export_name_the_bar_sizes_and_instruments_stored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, store = tmp_path / "in.csv", tmp_path / "bars.sqlite"
    _csv(source, 30)
    args = ["data", "import", str(source), "--store", str(store), "--symbol", "ACME"]
    assert _run(capsys, *args, "--bar-size", "1min")[0] == 0
    check = ["data", "validate", "--store", str(store), "--instrument"]
    code, out, err = _run(capsys, *check, "ACME.SMART", "--bar-size", "1h")
    assert (code, out) == (2, "")
    assert "the store has no 1h bars of ACME.SMART; it has 1min bars of it" in err
    export = ["data", "export", str(tmp_path / "o.csv"), "--store", str(store), "--instrument"]
    code, out, err = _run(capsys, *export, "ACME.SMART", "--bar-size", "1d")
    assert (code, out) == (2, "") and "no 1d bars of ACME.SMART; it has 1min bars" in err
    code, out, err = _run(capsys, *check, "ACME", "--bar-size", "1min")
    assert (code, out) == (2, "")
    assert "no instrument 'ACME' (did you mean 'ACME.SMART'?)" in err


def test_import_says_which_step_runs_and_reports_daily_bars_by_date(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    source, store = tmp_path / "daily.csv", tmp_path / "bars.sqlite"
    # daily bars at 09:30 New York time on every weekday, holidays too
    days = pd.bdate_range("2024-07-01", "2024-07-10")
    frame = pd.DataFrame(
        {"timestamp": (days + pd.Timedelta("9h30min")).tz_localize("America/New_York"),
         "open": 10.0, "high": 11.0, "low": 9.0, "close": 10.5, "volume": 1000},
    ).set_index("timestamp")  # fmt: skip
    write_bars_csv(frame, source)
    args = ["data", "import", str(source), "--store", str(store), "--symbol", "ACME"]
    code, out, err = _run(capsys, *args, "--bar-size", "1d")
    assert code == 2 and "outside_session" in err and err.count("ibkrfw:") == 1
    lines = out.splitlines()
    assert lines[1].split() == ["line", "date", "column", "kind", "detail"]  # no NaN values
    assert lines[2].split()[:2] == ["5", "2024-07-04"]  # the exchange's date, not UTC time
    assert "not in a trading session of" in lines[2] and "exchange_calendars" not in out
    monkeypatch.setenv("IBKRFW_PROGRESS_MIN_BARS", "0")
    code, out, err = _run(capsys, *args, "--bar-size", "1d", "--clean", "outside_session=drop")
    assert code == 0
    assert "ibkrfw: validating 8 bars" in err and "ibkrfw: cleaning 1 problem(s)" in err
    assert f"ibkrfw: writing 7 bars to {store}" in err
