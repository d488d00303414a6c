"""The ``ibkrfw`` command as a user reads it: help, usage on errors, output, refusals."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import attrs
import pandas as pd
import pytest

from ibkrfw import Context, Strategy
from ibkrfw.cli import _subcommands, build_parser, main
from ibkrfw.model.data import Bar

ROOT = Path(__file__).resolve().parents[2]


@attrs.define
class Greedy(Strategy):
    """Buys far more than the account can pay for: every order is denied."""

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        if not ctx.open_orders(bar.instrument) and ctx.position(bar.instrument).quantity == 0:
            ctx.buy(bar.instrument, 100_000)


@attrs.define
class Broken(Strategy):
    """Fails on its first bar, whatever its size."""

    size: int = 1

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        raise RuntimeError("broken")


def _walk(
    parser: argparse.ArgumentParser, help_text: str = ""
) -> list[tuple[argparse.ArgumentParser, str]]:
    found = [(parser, help_text)]
    helps = {
        choice.dest: choice.help
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
        for choice in action._choices_actions
    }
    for name, sub in _subcommands(parser).items():
        found += _walk(sub, helps.get(name) or "")
    return found


def test_every_command_has_a_description_and_every_option_a_help() -> None:
    parsers = _walk(build_parser())
    assert len(parsers) > 10  # the top level, the commands and data's subcommands
    for parser, help_text in parsers:
        assert parser.description, f"{parser.prog} has no description"
        assert "``" not in parser.description, f"{parser.prog}: markup in its description"
        if parser.prog != "ibkrfw":
            assert help_text, f"{parser.prog} has no help line in its parent's list"
        for action in parser._actions:
            assert action.help and action.help.strip(), f"{parser.prog} {action.dest}: no help"


def test_top_level_help_reads_without_markup(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "``" not in out and "Backtest, optimise and run" in out
    assert "data" in out and "show what a store holds (info)" in " ".join(out.split())


@pytest.mark.parametrize(
    ("argv", "usage"),
    [
        (["backtest", "--bogus"], "usage: ibkrfw backtest"),
        (["optimize", "--bogus"], "usage: ibkrfw optimize"),
        (["data", "info", "--store", "x.db", "--bogus"], "usage: ibkrfw data info"),
        (["data"], "usage: ibkrfw data "),
    ],
)
def test_a_commands_error_shows_its_own_usage(
    argv: list[str], usage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(usage)
    assert "--bogus" not in argv or "unrecognized arguments: --bogus" in err


def test_backtest_prints_a_header_and_readable_statistics(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["backtest", "--symbols", "ACME,BOLT", "--cash", "50000"]) == 0
    out = capsys.readouterr().out
    header, _, stats = out.partition("\n\n")
    assert re.search(r"^Strategy +MovingAverageCrossover\(fast=10, slow=30", header, re.M)
    assert re.search(r"^Data +the sample data shipped with ibkrfw$", header, re.M)
    assert re.search(r"^Symbols +ACME, BOLT$", header, re.M)
    assert re.search(r"^Bar size +1 day$", header, re.M)
    assert re.search(r"^First bar +2015-01-02 \(America/New_York\)$", header, re.M)
    assert re.search(r"^Last bar +2024-12-31 \(America/New_York\)$", header, re.M)
    assert re.search(r"^Bars +2,608$", header, re.M)
    assert re.search(r"^Starting cash +50,000.00 USD$", header, re.M)
    # daily bars as dates in New York, whole days, rounded numbers, counts as ints
    assert re.search(r"^Start +2015-01-02$", stats, re.M)
    assert "+00:00" not in stats and ":00:00" not in stats
    assert re.search(r"^Max drawdown duration +[\d,]+ days$", stats, re.M)
    assert re.search(r"^Initial equity +50,000.00$", stats, re.M)
    assert re.search(r"^Sharpe ratio +-?\d+\.\d\d$", stats, re.M)
    assert re.search(r"^Total return \[%\] +-?[\d,]+\.\d\d$", stats, re.M)
    assert re.search(r"^Periods per year +260\.8$", stats, re.M)
    assert re.search(r"^Trades +\d+$", stats, re.M)
    assert re.search(r"^Open trades +\d+$", stats, re.M)


def test_backtest_on_a_csv_names_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ibkrfw.data import generate_bars

    path = tmp_path / "zzz.csv"
    generate_bars(["ZZZ"], periods=300, seed=5).drop(columns="symbol").to_csv(path, index=False)
    assert main(["backtest", "--csv", str(path), "--symbols", "ZZZ"]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"^Data +CSV {re.escape(str(path))}$", out, re.M)
    assert re.search(r"^Symbols +ZZZ$", out, re.M)


def test_a_buy_and_hold_shows_its_open_positions_and_no_win_rate(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["backtest", "--strategy", "target_weights"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^Trades +0$", out, re.M)
    assert re.search(r"^Open trades +5$", out, re.M)
    assert re.search(r"^Win rate \[%\] +n/a$", out, re.M)
    assert "NaN" not in out


def test_denied_orders_are_reported(capsys: pytest.CaptureFixture[str]) -> None:
    strategy = f"{__name__}:Greedy"
    assert main(["backtest", "--strategy", strategy, "--symbols", "ACME"]) == 0
    out = capsys.readouterr().out
    assert re.search(
        r"^2608 order\(s\) refused .*the first, BUY 100000 ACME on 2015-01-02, denied: "
        r"insufficient buying power",
        out,
        re.M,
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--cash", "0"],
            "argument --cash: must be a positive amount of money up to 1,000,000,000,000, "
            "e.g. --cash",
        ),
        (["--cash", "-5"], "got '-5'"),
        (["--cash", "lots"], "got 'lots'"),
        (["--cash", "1e308"], "up to 1,000,000,000,000, e.g. --cash 100000; got '1e308'"),
        (["--cash", "1000000000001"], "got '1000000000001'"),
        (
            ["--commission", "-0.01"],
            "argument --commission: must be an amount of money of 0 or more, e.g. "
            "--commission 0.005; got '-0.01'",
        ),
    ],
)
def test_bad_money_is_refused_with_the_commands_usage(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["backtest", *argv])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: ibkrfw backtest") and message in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["-p", "fast=abc"],
            "parameter fast: 'abc' is not an int (MovingAverageCrossover.fast is an int, "
            "e.g. -p fast=10)",
        ),
        (["-p", "fsat=5"], "has no parameter 'fsat': did you mean 'fast'?"),
        (["-p", "fast"], "-p 'fast': expected NAME=VALUE"),
        (
            ["-p", "weight=2.5"],
            "MovingAverageCrossover refuses -p weight=2.5: weight must be a fraction of equity "
            "in (0, 1]",
        ),
        (["-p", "weight=nan"], "parameter weight: 'nan' is not a finite number"),
        (["-p", "exponential=maybe"], "'maybe' is not true or false"),
        (["-p", "slow=0"], "slow must be an int of at least 1, got 0"),
        (
            ["--strategy", "mean_reversion", "-p", "signal=median"],
            "'median' is not one of zscore, bollinger",
        ),
        (["--strategy", "ts_momentum", "-p", "weight=0"], "weight must be a fraction"),
        (
            ["--strategy", "target_weights", "-p", "weights=ACME:half"],
            "parameter weights: 'half' is not a number",
        ),
    ],
)
def test_bad_parameters_are_refused_in_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["backtest", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ibkrfw: error:") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_parameters_of_every_kind_are_converted(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["backtest", "--strategy", "target_weights", "-p", "weights=ACME:0.5,BOLT:0.25"]
    assert main([*argv, "-p", "every=none", "-p", "drift_trigger=0.1"]) == 0
    out = capsys.readouterr().out
    assert "TargetWeights(weights={'ACME': 0.5, 'BOLT': 0.25}, every=None, drift_trigger=0.1" in out


def test_csv_without_symbols_says_what_symbols_is_for(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bars.csv"
    path.write_text("timestamp,open,high,low,close,volume\n")
    assert main(["backtest", "--csv", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"--csv {path} needs --symbols: the symbol of the stock" in err
    assert main(["backtest", "--csv", str(tmp_path / "missing.csv")]) == 2
    assert "missing.csv: does not exist" in capsys.readouterr().err


def test_the_installed_command_reports_errors_with_exit_codes() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONWARNINGS": "error"}

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ibkrfw", *argv],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )

    bogus = run("backtest", "--bogus")
    assert bogus.returncode == 2
    assert bogus.stderr.startswith("usage: ibkrfw backtest")
    assert "ibkrfw backtest: error: unrecognized arguments: --bogus" in bogus.stderr
    cash = run("backtest", "--cash", "0")
    assert cash.returncode == 2 and "--cash: must be a positive amount" in cash.stderr
    weight = run("backtest", "-p", "weight=2.5")
    assert weight.returncode == 2 and "Traceback" not in weight.stderr
    assert weight.stderr.startswith("ibkrfw: error: MovingAverageCrossover refuses -p weight=2.5")
    ok = run("backtest", "--symbols", "ACME")
    assert ok.returncode == 0 and re.search(r"^Symbols +ACME$", ok.stdout, re.M)


# optimize: everything is checked before any data is read or any run starts


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--walk-forward", "730D:0D"], "--walk-forward 730D:0D: test must be a length above zero"),
        (["--walk-forward", "0D:180D"], "--walk-forward 0D:180D: train must be a length above"),
        (["--walk-forward", "730D:-6MS"], "e.g. --walk-forward 730D:180D"),
        (["-p", "weight=2.5"], "-g fast=5 (with -p weight=2.5): MovingAverageCrossover refuses"),
        (["-g", "slow=3,4"], "-g fast=5 -g slow=3: MovingAverageCrossover refuses fast=5, slow=3"),
        (["-g", "weight=0.5,2.5"], "-g fast=5 -g weight=2.5: MovingAverageCrossover refuses"),
        (
            ["--objective", "sharpe"],
            "--objective 'sharpe': no statistic 'sharpe'; did you mean 'Sharpe ratio'?",
        ),
        (
            ["-g", "fsat=1,2"],
            "-g fsat=1,2: MovingAverageCrossover has no parameter 'fsat': did you mean 'fast'?",
        ),
        (["-p", "fast=7"], "fast is given both to search (-g fast=...) and fixed (-p fast=...)"),
        (["--heatmap", "foo"], "--heatmap foo: give X,Y=FILE.png"),
        (["--heatmap", "fast,slow=h.png"], "'slow' is not a swept parameter; the swept ones: fast"),
        (["--random", "-3"], "argument --random: must be a whole number of at least 1"),
        (["--random", "0"], "argument --random: must be a whole number of at least 1"),
        (["--top", "0"], "argument --top: must be a whole number of at least 1"),
        (["--workers", "0"], "argument --workers: must be a whole number of at least 1"),
    ],
)
def test_optimize_refuses_before_running(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import time

    from ibkrfw.optimize import statistic_names

    statistic_names()  # imports pandas and the engine once: not what is timed
    missing = tmp_path / "never-read.csv"  # read only after the checks: it must not be reached
    start = time.perf_counter()
    try:  # argparse's refusals exit (2), the others return 2
        code = main(["optimize", "-g", "fast=5,10", *argv, "--csv", str(missing),
                     "--symbols", "ACME", "--quiet"])  # fmt: skip
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    assert time.perf_counter() - start < 1.0
    err = capsys.readouterr().err
    assert message in err
    assert "does not exist" not in err and "Traceback" not in err


def test_optimize_fails_with_1_when_every_set_fails(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["optimize", "--strategy", f"{__name__}:Broken", "-g", "size=1,2",
            "--symbols", "ACME", "--workers", "1", "--quiet"]  # fmt: skip
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert "2 set(s) failed" in captured.out
    assert "ibkrfw: error: every parameter set failed; the first: RuntimeError: broken" in (
        captured.err
    )


def test_optimize_tables_are_rounded(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["optimize", "-g", "fast=5,10", "-g", "weight=0.5,1.0", "--symbols", "ACME",
                 "--workers", "1", "--quiet", "--top", "2"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    table = out.split("ranked by Sharpe ratio:\n")[1].split("\n\n")[0].splitlines()
    assert len(table) == 4  # header, index name, two rows
    row = table[2].split()
    assert row[1:3] == ["5", "0.5"]  # the parameters as given
    assert all(re.fullmatch(r"-?\d+\.\d\d", cell) for cell in row[3:6])  # stats: 2 dp
    assert re.fullmatch(r"\d+", row[6])  # Trades: a whole number
    assert main(["optimize", "-g", "fast=5,20", "-g", "slow=50", "--symbols", "ACME",
                 "--walk-forward", "1460D:730D", "--workers", "1", "--quiet"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "+00:00" not in out and "05:00:00" not in out
    assert re.search(
        r"^0\s+2019-01-01\s+2019-01-01\s+2020-12-31\s+5\s+50\s+-?\d+\.\d\d\s", out, re.M
    )
    assert re.search(r"^windows\s+3$", out, re.M)
    assert re.search(r"^efficiency\s+-?\d+\.\d\d$", out, re.M)


def test_an_objective_from_the_toml_file_is_checked_and_named_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "sweep.toml"
    config.write_text('[optimize]\nobjective = "Calmar"\n[optimize.grid]\nfast = [5, 10]\n')
    assert main(["optimize", "--config", str(config), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert (
        "objective in [optimize] 'Calmar': no statistic 'Calmar'; did you mean 'Calmar ratio'?"
        in err
    )


def test_a_walk_forward_whose_every_window_failed_exits_with_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["optimize", "--strategy", f"{__name__}:Broken", "-g", "size=1,2", "--symbols",
            "ACME", "--walk-forward", "1460D:730D", "--workers", "1", "--quiet"]  # fmt: skip
    assert main(argv) == 1
    assert "ibkrfw: error: every window failed; the first: " in capsys.readouterr().err


@pytest.mark.parametrize("bars", [1, 2, 30])
def test_daily_bars_at_a_time_of_day_have_durations_in_days(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bars: int
) -> None:
    source = tmp_path / "naive.csv"
    days = pd.bdate_range("2024-01-02", periods=bars)
    frame = pd.DataFrame(
        {"timestamp": days + pd.Timedelta("9h30min"), "open": 10.0, "high": 11.0, "low": 9.0,
         "close": 10.5, "volume": 1000},
    )  # fmt: skip
    frame.to_csv(source, index=False)
    argv = ["backtest", "--csv", str(source), "--symbols", "X", "--tz", "America/New_York"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    shown = {
        name: line[len(name) :].strip()
        for line in out.splitlines()
        for name in ("Duration", "Max drawdown duration", "Longest under water")
        if line.startswith(name + " ")
    }
    span = (days[-1] - days[0]).days
    assert shown == {
        "Duration": "1 day" if span == 1 else f"{span:,} days",
        "Max drawdown duration": "0 days",
        "Longest under water": "0 days",
    }
    assert "00:00:00" not in out


@pytest.mark.parametrize(
    ("spec", "said"),
    [
        ("ibkrfw.strategies:SmaCross", "ibkrfw.strategies has no SmaCross; its strategies: "),
        (
            "ibkrfw.strategies:MovingAverageCrossovr",
            "did you mean ibkrfw.strategies:MovingAverageCrossover?",
        ),
        ("os:path", "'os:path' is not a Strategy subclass; os defines no Strategy subclass"),
    ],
)
def test_a_strategy_that_is_not_there_is_named_with_what_is(
    spec: str, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["backtest", "--strategy", spec]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ibkrfw: error:") and said in err, err
