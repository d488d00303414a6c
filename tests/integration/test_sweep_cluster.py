"""Sweeps beyond one machine: a Dask scheduler from the command line, bars named by reference
(a Parquet store read by each worker), and journals that resume a stopped sweep."""

from __future__ import annotations

import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

from ibkrfw import ConfigError, DataError
from ibkrfw.cli import main
from ibkrfw.data import ParquetBarStore, load_sample, sample_instruments
from ibkrfw.optimize import Backtest, Runner, StoredBars, SweepJournal, grid, run_sweep
from ibkrfw.optimize.stored import process_reads
from ibkrfw.strategies import MovingAverageCrossover

ROOT = Path(__file__).resolve().parents[2]
SPACE = {"fast": [5, 10, 20], "slow": [10, 40, 80]}  # (10, 10) and (20, 10) fail
SECRET = "hunter2-not-shown"


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A Parquet store of the sample's daily bars of ACME and BOLT."""
    root = tmp_path_factory.mktemp("bars")
    store = ParquetBarStore(root)
    frame = load_sample()
    for symbol, inst in sample_instruments(["ACME", "BOLT"]).items():
        bars = frame[frame["symbol"] == symbol].set_index("timestamp").drop(columns="symbol")
        store.write(inst, "1d", bars)
    return str(root)


@pytest.fixture(scope="module")
def cluster() -> Iterator[object]:
    """A LocalCluster of two worker processes on 127.0.0.1 (the dashboard on a free port)."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address="127.0.0.1:0", silence_logs=40,
    ) as found:  # fmt: skip
        yield found


def in_memory(store_dir: str, **bounds: str) -> Backtest:
    feed = ParquetBarStore(store_dir).feed(["ACME.SMART"], "1d", **bounds)
    return Backtest(MovingAverageCrossover, [feed], objective="Total return [%]")


def by_reference(uri: str, **bounds: str) -> Backtest:
    return Backtest(
        MovingAverageCrossover, [StoredBars(uri, "ACME", "1d", **bounds)],
        objective="Total return [%]",
    )  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- bars by reference ----------------------------------------------------------------------


def test_stored_bars_give_the_in_memory_sweeps_results_exactly(store_dir: str) -> None:
    sets = grid(SPACE)
    expected = run_sweep(in_memory(store_dir, start="2017-01-01"), sets, workers=1).frame
    for uri in (store_dir, f"file://{store_dir}"):
        found = run_sweep(by_reference(uri, start="2017-01-01"), sets, workers=1).frame
        pd.testing.assert_frame_equal(found, expected, check_exact=True)
    # an object store through fsspec: the same files in fsspec's in-memory file system
    import fsspec

    memory = fsspec.filesystem("memory")
    memory.put(store_dir, "/bars-copy", recursive=True)
    try:
        found = run_sweep(
            by_reference("memory://bars-copy", start="2017-01-01"), sets, workers=1
        ).frame
    finally:
        memory.rm("/bars-copy", recursive=True)
    pd.testing.assert_frame_equal(found, expected, check_exact=True)
    assert len(expected) == 9 and (expected["error"] != "").sum() == 2


class CountingPool(ThreadPoolExecutor):
    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.submitted = 0

    def submit(self, *args, **kwargs):  # type: ignore[no-untyped-def, override]
        self.submitted += 1
        return super().submit(*args, **kwargs)


@pytest.mark.parametrize(
    ("where", "instrument", "bar_size", "message"),
    [
        ("missing", "ACME", "1d", "does not exist (or is not a directory)"),
        ("store", "NOPE", "1d", "has no instrument 'NOPE'; it has ['ACME.SMART', 'BOLT.SMART']"),
        ("store", "ACME", "1min", "has no 1min bars of ACME.SMART"),
    ],
)
def test_stored_bars_that_cannot_be_read_are_refused_before_any_task(
    store_dir: str, where: str, instrument: str, bar_size: str, message: str
) -> None:
    uri = store_dir if where == "store" else os.path.join(store_dir, "missing")
    setup = Backtest(MovingAverageCrossover, [StoredBars(uri, instrument, bar_size)])
    with CountingPool() as pool, pytest.raises(ConfigError) as caught:
        run_sweep(setup, grid(SPACE), executor=pool)
    assert pool.submitted == 0
    assert message in str(caught.value) and uri in str(caught.value)


def test_stored_bars_never_show_credentials(store_dir: str, tmp_path: Path) -> None:
    bars = StoredBars(
        f"memory://reader:{SECRET}@nowhere/bars?sig={SECRET}", "ACME", "1d",
        storage_options={"secret": SECRET},
    )  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        bars.check()
    shown = [repr(bars), str(caught.value), json.dumps(bars.describe())]
    assert all(SECRET not in text for text in shown)
    assert "memory://***@nowhere/bars?***" in shown[0]
    # nor in a journal: it names the data by its masked reference
    journal = tmp_path / "sweep.jsonl"
    book = SweepJournal(journal)
    book.start(Backtest(MovingAverageCrossover, [bars]), grid(SPACE))
    book.close()
    assert SECRET not in journal.read_text()


def test_stored_bars_on_a_dask_cluster_are_read_once_per_worker(
    store_dir: str, cluster: object
) -> None:
    distributed = pytest.importorskip("distributed")
    sets = grid(SPACE)
    setup = by_reference(store_dir, start="2016-06-01")
    # what travels: the reference (a few hundred bytes), not ten years of bars
    assert len(pickle.dumps(setup)) < 2_000 < len(pickle.dumps(in_memory(store_dir)))
    with distributed.Client(cluster) as client:
        before = client.run(process_reads)
        with Runner(setup, client.get_executor()) as runner:
            rows = runner.run(sets)
        after = client.run(process_reads)
        reads = {worker: after[worker] - before[worker] for worker in after}
        # read once by each worker process that ran a set, whatever the number of sets
        assert len(rows) == 9 and set(reads.values()) <= {0, 1} and sum(reads.values()) >= 1
        on_dask = run_sweep(setup, sets, executor=client.get_executor()).frame
    expected = run_sweep(in_memory(store_dir, start="2016-06-01"), sets, workers=1).frame
    pd.testing.assert_frame_equal(on_dask, expected, check_exact=True)


# --- journals ----------------------------------------------------------------------------


class StopSweepError(Exception):
    pass


def test_a_sweep_stopped_after_k_sets_resumes_to_the_same_table(tmp_path: Path) -> None:
    setup = in_memory_sample()
    sets = grid(SPACE)
    whole = run_sweep(setup, sets, workers=1).frame
    path = tmp_path / "sweep.jsonl"

    def stop_after_four(done: int, total: int) -> None:
        if done == 4:
            raise StopSweepError

    with pytest.raises(StopSweepError):
        run_sweep(setup, sets, workers=1, journal=path, progress=stop_after_four)
    assert len(path.read_text().splitlines()) == 1 + 4  # the header and four rows
    seen: list[tuple[int, int]] = []
    journal = SweepJournal(path)
    resumed = run_sweep(
        setup, sets, workers=1, journal=journal, progress=lambda d, t: seen.append((d, t))
    )
    # the four recorded sets count as done from the start; only five ran
    assert journal.recorded == 4 and not journal.torn
    assert seen == [(4, 9), (5, 9), (6, 9), (7, 9), (8, 9), (9, 9)]
    pd.testing.assert_frame_equal(resumed.frame, whole, check_exact=True)
    # run once more: everything comes from the journal, nothing runs
    again = SweepJournal(path)
    pd.testing.assert_frame_equal(
        run_sweep(setup, sets, workers=1, journal=again).frame, whole, check_exact=True
    )
    assert again.recorded == 9


def in_memory_sample() -> Backtest:
    from ibkrfw.data import sample_feed

    return Backtest(MovingAverageCrossover, [sample_feed(["ACME"])], objective="Sharpe ratio")


def test_a_torn_last_line_is_dropped_reported_and_run_again(tmp_path: Path) -> None:
    setup = in_memory_sample()
    sets = grid(SPACE)
    path = tmp_path / "sweep.jsonl"
    with pytest.raises(StopSweepError):
        run_sweep(setup, sets, workers=1, journal=path, progress=_stop_at(3))
    with path.open("a") as handle:
        handle.write('{"_index": 5, "fast": 10, "sl')  # a process killed mid-write
    journal = SweepJournal(path)
    resumed = run_sweep(setup, sets, workers=1, journal=journal)
    assert journal.torn and journal.recorded == 3
    pd.testing.assert_frame_equal(
        resumed.frame, run_sweep(setup, sets, workers=1).frame, check_exact=True
    )
    lines = path.read_text().splitlines()
    assert len(lines) == 1 + 9 and all(json.loads(line) for line in lines)  # no torn line left


def _stop_at(k: int):  # type: ignore[no-untyped-def]
    def stop(done: int, total: int) -> None:
        if done == k:
            raise StopSweepError

    return stop


def test_a_journal_of_another_sweep_is_refused_not_mixed_in(tmp_path: Path) -> None:
    from ibkrfw.data import sample_feed

    setup = in_memory_sample()
    sets = grid(SPACE)
    path = tmp_path / "sweep.jsonl"
    run_sweep(setup, sets[:4], workers=1, journal=path)
    recorded = path.read_bytes()
    others = {
        "sets": (setup, sets),
        "fixed": (Backtest(MovingAverageCrossover, setup.feeds, fixed={"weight": 0.5}), sets[:4]),
        "objective": (Backtest(MovingAverageCrossover, setup.feeds, objective="Trades"), sets[:4]),
        "data": (Backtest(MovingAverageCrossover, [sample_feed(["BOLT"])]), sets[:4]),
    }
    for what, (other, other_sets) in others.items():
        with pytest.raises(ConfigError, match=rf"records another sweep \(its {what} differ"):
            run_sweep(other, other_sets, workers=1, journal=path)
    assert path.read_bytes() == recorded  # left as it was


def test_a_damaged_journal_is_refused(tmp_path: Path) -> None:
    setup = in_memory_sample()
    sets = grid(SPACE)
    path = tmp_path / "sweep.jsonl"
    run_sweep(setup, sets[:4], workers=1, journal=path)
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], "{not json", *lines[2:]]) + "\n")
    with pytest.raises(DataError, match="line 2 is damaged"):
        run_sweep(setup, sets[:4], workers=1, journal=path)
    path.write_text("hello\n")
    with pytest.raises(ConfigError, match="is not a sweep journal"):
        run_sweep(setup, sets[:4], workers=1, journal=path)


# --- the command line ------------------------------------------------------------------------

GRID = ["-g", "fast=5,10,15,20,25,30", "-g", "slow=40,60,80,100,120"]  # 30 sets


def test_the_command_killed_mid_sweep_resumes_from_its_journal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journal = tmp_path / "sweep.jsonl"
    argv = ["optimize", "--symbols", "ACME", *GRID, "--workers", "1", "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    process = subprocess.Popen(
        [sys.executable, "-m", "ibkrfw", *argv, "--journal", str(journal)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            if journal.exists() and journal.read_text().count("\n") >= 1 + 3:
                break
            time.sleep(0.02)
        assert process.poll() is None, "the sweep ended before it could be killed"
        os.kill(process.pid, signal.SIGKILL)  # no chance to tidy up
    finally:
        process.kill()
        process.wait(timeout=30)
        assert process.stderr is not None
        process.stderr.close()
    killed_at = journal.read_text().count("\n") - 1
    assert 3 <= killed_at < 30
    resumed_csv, whole_csv = tmp_path / "resumed.csv", tmp_path / "whole.csv"
    assert main([*argv, "--journal", str(journal), "--out", str(resumed_csv)]) == 0
    resumed = capsys.readouterr()
    assert f"journal {journal}: {killed_at} of 30 sets resumed from it" in resumed.err
    assert main([*argv, "--out", str(whole_csv)]) == 0
    whole = capsys.readouterr()
    assert resumed_csv.read_text() == whole_csv.read_text()
    table = [line for line in resumed.out.splitlines() if not line.startswith("results written")]
    assert table == [line for line in whole.out.splitlines() if not line.startswith("results")]


def test_the_command_on_a_dask_scheduler_with_bars_by_reference(
    store_dir: str, cluster: object, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    address = cluster.scheduler_address  # type: ignore[attr-defined]
    argv = ["optimize", "--symbols", "ACME", "-g", "fast=5,10,20", "-g", "slow=40,80",
            "--store", f"file://{store_dir}", "--start", "2018-01-01", "--quiet"]  # fmt: skip
    assert main([*argv, "--scheduler", address, "--out", str(tmp_path / "dask.csv")]) == 0
    on_dask = capsys.readouterr().out
    assert main([*argv, "--workers", "1", "--out", str(tmp_path / "here.csv")]) == 0
    here = capsys.readouterr().out
    assert "6 parameter sets of MovingAverageCrossover" in on_dask
    assert on_dask.split("results written")[0] == here.split("results written")[0]
    assert (tmp_path / "dask.csv").read_text() == (tmp_path / "here.csv").read_text()
    # the scheduler from the [optimize] table; the option wins over it
    unreachable = f"tcp://127.0.0.1:{free_port()}"
    config = tmp_path / "sweep.toml"
    config.write_text(f'[optimize]\nscheduler = "{address}"\nscheduler_timeout_s = 1\n')
    assert main([*argv, "--config", str(config)]) == 0
    assert "6 parameter sets" in capsys.readouterr().out
    config.write_text(f'[optimize]\nscheduler = "{unreachable}"\nscheduler_timeout_s = 1\n')
    assert main([*argv, "--config", str(config), "--scheduler", address]) == 0
    capsys.readouterr()
    assert main([*argv, "--config", str(config)]) == 2
    assert f"scheduler in [optimize] {unreachable}: no Dask scheduler answered within 1 s" in (
        capsys.readouterr().err
    )


def test_the_command_refuses_a_scheduler_it_cannot_reach(
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("distributed")
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    code = main(["optimize", "--symbols", "ACME", "-g", "fast=5,10", "--quiet",
                 "--scheduler", address, "--scheduler-timeout", "1"])  # fmt: skip
    assert code == 2 and time.monotonic() - started < 30
    err = capsys.readouterr().err
    assert err.startswith(f"ibkrfw: error: --scheduler {address}: no Dask scheduler answered")
    assert "leave --scheduler out to run on this machine" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            ["--scheduler", "127.0.0.1:8786"],
            "--scheduler 127.0.0.1:8786: give the protocol too: tcp://127.0.0.1:8786",
        ),
        (["--scheduler", "udp://127.0.0.1:8786"], "the protocol 'udp' is not one of tcp"),
        (["--scheduler", "tcp://127.0.0.1"], "no port"),
        (["--scheduler", "tcp://127.0.0.1:99999"], "the port '99999' is not a whole number"),
        (["--scheduler-timeout", "0"], "--scheduler-timeout: must be a number of seconds"),
        (["--store", "MISSING"], "does not exist (or is not a directory)"),
        (["--store", "STORE", "--symbols", "NOPE"], "has no instrument 'NOPE'"),
        (["--store", "STORE", "--bar-size", "1min"], "has no 1min bars of ACME.SMART"),
        (["--store", "STORE", "--bar-size", "7 parsecs"], "'7 parsecs' is not understood"),
        (["--store", "STORE", "--start", "someday"], "--start someday: is not a time"),
        (["--store", "STORE", "--csv", "bars.csv"], "--store and --csv both give the bars"),
        (["--bar-size", "1d"], "--bar-size says what to read from a Parquet store"),
        (["--journal", "J", "--walk-forward", "730D:365D"], "cannot go with --walk-forward"),
        (["--journal", "NODIR/j.jsonl"], "the directory"),
        (
            ["--store", f"s3://key:{SECRET}@bucket/bars"],
            "s3://***@bucket/bars: credentials do not go in the store's URI",
        ),
    ],
)
def test_the_command_refuses_bad_cluster_options(
    options: list[str], message: str, store_dir: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    swap = {
        "STORE": store_dir,
        "MISSING": str(tmp_path / "missing"),
        "J": str(tmp_path / "j.jsonl"),
        "NODIR/j.jsonl": str(tmp_path / "no" / "j.jsonl"),
    }
    options = [swap.get(o, o) for o in options]
    symbols = [] if "--symbols" in options else ["--symbols", "ACME"]
    try:
        code = main(
            ["optimize", *symbols, "-g", "fast=5,10", "--workers", "1", "--quiet", *options]
        )
    except SystemExit as exc:  # argparse's refusal of an option's value
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err
    assert SECRET not in err


def test_a_store_uri_with_credentials_in_the_toml_table_is_refused_masked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "sweep.toml"
    config.write_text(f'[optimize]\nstore = "s3://key:{SECRET}@bucket/bars"\n')
    assert main(["optimize", "--config", str(config), "-g", "fast=5", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "[optimize] store" in err and "credentials do not go" in err and SECRET not in err
