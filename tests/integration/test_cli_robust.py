"""The ``ibkrfw`` command ends without a traceback: Ctrl-C, a closed pipe, unwritable paths."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ibkrfw.cli import main

SLOW_STRATEGY = '''
import time
from ibkrfw import Strategy


class Slow(Strategy):
    """Takes its time over every bar, so a run lasts long enough to be interrupted."""

    def on_bar(self, ctx, bar):
        time.sleep(0.01)
'''


# A process started in the background by a non-interactive shell (CI, a tox run under `&`)
# inherits SIGINT ignored, and Python then never raises KeyboardInterrupt: the command is run
# with the handler it has when a user starts it in a terminal.
AS_IN_A_TERMINAL = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from ibkrfw.cli import main; sys.exit(main(sys.argv[1:]))"
)


def _command(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", AS_IN_A_TERMINAL, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_ctrl_c_stops_a_backtest_with_a_short_message(tmp_path: Path) -> None:
    (tmp_path / "slow_strategy.py").write_text(SLOW_STRATEGY)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]),
        "IBKRFW_PROGRESS_MIN_BARS": "1",  # a first progress line says the run has begun
    }
    proc = _command("backtest", "--strategy", "slow_strategy:Slow", env=env)
    assert proc.stderr is not None
    try:
        deadline = time.monotonic() + 60
        seen = ""
        while "backtest" not in seen and time.monotonic() < deadline:
            seen += proc.stderr.readline()
        assert "backtest" in seen, "the run never started"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:  # never leave the run behind, whatever failed
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130
    assert "ibkrfw: interrupted" in err
    assert "Traceback" not in err


def test_a_closed_pipe_ends_quietly() -> None:
    proc = _command("backtest")
    assert proc.stdout is not None
    proc.stdout.close()  # the reader is gone before the results are written (`| head -0`)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 141
    assert "Traceback" not in err and "BrokenPipe" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["backtest", "--save", "{tmp}"], "argument --save: '{tmp}' is a directory"),
        (["backtest", "--report", "{tmp}/no/r.html"], "argument --report: the folder"),
        (["report", "run.ibkrfw", "-o", "{tmp}/no/r.html"], "argument -o/--output: the folder"),
        (["optimize", "-g", "fast=5,10", "--out", "{tmp}/no/o.csv"], "argument --out: the folder"),
        (["fake-tws", "--port", "-5"], "argument --port: a port is a whole number from 0"),
        (["fake-tws", "--port", "70000"], "from 0 to 65535"),
        (["run", "--sandbox", "--port", "0"], "from 1 to 65535"),
    ],
)
def test_paths_and_ports_are_checked_before_anything_runs(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [a.format(tmp=tmp_path) for a in argv]
    started = time.monotonic()
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert time.monotonic() - started < 5  # refused at once, not after a run
    err = capsys.readouterr().err
    assert message.format(tmp=tmp_path) in err
    assert f"usage: ibkrfw {argv[0]}" in err
    assert not list(tmp_path.iterdir())  # nothing left behind (a half-written .tmp)


def test_a_file_that_cannot_be_written_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ibkrfw.engine.result import RunResult

    def full_disk(self: RunResult, path: object, **_: object) -> None:
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(RunResult, "report", full_disk)
    target = tmp_path / "r.html"
    assert main(["backtest", "--symbols", "ACME", "--report", str(target)]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == f"ibkrfw: error: No space left on device: {target}"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["backtest", "--symbols", ""], "--symbols '' names no symbol"),
        (["backtest", "--symbols", "ACME,,BOLT"], "has an empty name between commas"),
        (["backtest", "--tz", "Europe/Paris"], "--tz Europe/Paris is for the times of a --csv"),
        (["fake-tws", "--sample", ","], "--sample ',' names no symbol"),
    ],
)
def test_symbol_lists_and_options_that_would_be_ignored_are_refused(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_spaces_around_symbols_are_allowed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backtest", "--symbols", "ACME, BOLT"]) == 0
    assert "Symbols        ACME, BOLT" in capsys.readouterr().out
