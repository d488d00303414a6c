"""Parameter sweeps and walk-forward analysis, serial, on process pools and on Dask."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import partial

import pandas as pd
import pytest

from ibkrfw import ConfigError, RunResult
from ibkrfw.data import sample_feed
from ibkrfw.optimize import (
    Backtest,
    IntUniform,
    Runner,
    SweepResult,
    check_lengths,
    grid,
    grid_search,
    random_search,
    run_sweep,
    sample,
    statistic_names,
    walk_forward,
    windows,
)
from ibkrfw.sim import PerShareCommission, SimBroker
from ibkrfw.strategies import MovingAverageCrossover

FEED = sample_feed(["ACME"])
SPACE = {"fast": [5, 10, 20], "slow": [10, 40, 80]}  # (10, 10) and (20, 10) are invalid


def columns(result) -> pd.DataFrame:
    return result.frame[["fast", "slow", result.objective, "Trades", "error"]].sort_index()


def test_grid_search_ranks_every_set_and_reports_the_failures() -> None:
    calls: list[tuple[int, int]] = []
    result = grid_search(
        MovingAverageCrossover, SPACE, FEED, workers=1, progress=lambda d, t: calls.append((d, t))
    )
    assert len(result.frame) == 9 and calls[-1] == (9, 9)
    failures = result.failures
    assert sorted(zip(failures["fast"], failures["slow"], strict=True)) == [(10, 10), (20, 10)]
    assert failures["error"].str.startswith("ConfigError: fast (").all()
    # the objective is the statistic's own column, not a copy of it under another name
    assert result.objective == "Sharpe ratio"
    assert list(result.frame.columns) == [
        "fast", "slow", "Sharpe ratio", "Total return [%]", "Max drawdown [%]", "Trades", "error",
    ]  # fmt: skip
    good = result.frame[result.frame["error"] == ""]
    assert good["Sharpe ratio"].is_monotonic_decreasing  # best first
    assert result.best_params == dict(good.iloc[0][["fast", "slow"]])
    assert result.best_value == pytest.approx(good["Sharpe ratio"].max())
    table = result.table("fast", "slow")
    assert table.shape == (3, 3) and table.isna().sum().sum() == 2  # the two failures


def test_the_process_pool_and_a_thread_pool_give_the_serial_results() -> None:
    broker = partial(SimBroker, 100_000, commission=PerShareCommission("0.005"))
    setup = Backtest(MovingAverageCrossover, [FEED], broker, objective="Total return [%]")
    sets = grid(SPACE)
    serial = columns(run_sweep(setup, sets, workers=1))
    pooled = columns(run_sweep(setup, sets, workers=2))
    with ThreadPoolExecutor(2) as threads:
        threaded = columns(run_sweep(setup, sets, executor=threads))
    pd.testing.assert_frame_equal(serial, pooled)
    pd.testing.assert_frame_equal(serial, threaded)


def test_random_search_is_reproducible_with_a_seed() -> None:
    space = {"fast": IntUniform(3, 15), "slow": IntUniform(20, 90), "exponential": [True, False]}
    one = random_search(MovingAverageCrossover, space, FEED, 5, seed=7, workers=1)
    two = random_search(MovingAverageCrossover, space, FEED, 5, seed=7, workers=1)
    pd.testing.assert_frame_equal(one.frame, two.frame)
    assert sample(space, 5, seed=7) != sample(space, 5, seed=8)


def test_a_callable_objective_and_minimising() -> None:
    result = grid_search(
        MovingAverageCrossover, {"fast": [5, 10], "slow": [40]}, FEED, workers=1,
        objective=lambda r: float(r.stats["Max drawdown [%]"]), maximize=False,
    )  # fmt: skip
    assert result.objective == "objective"  # a lambda has no name to give its column
    assert result.frame["objective"].is_monotonic_increasing

    def drawdown(run: RunResult) -> float:
        return float(run.stats["Max drawdown [%]"])

    named = grid_search(MovingAverageCrossover, {"fast": [5, 10], "slow": [40]}, FEED,
                        workers=1, objective=drawdown, maximize=False)  # fmt: skip
    assert named.objective == "drawdown" and "objective" not in named.frame
    assert named.frame["drawdown"].tolist() == result.frame["objective"].tolist()

    def fast(run: RunResult) -> float:
        return 0.0

    with pytest.raises(ConfigError, match=r"column would be named 'fast'.*another name"):
        grid_search(MovingAverageCrossover, {"fast": [5], "slow": [40]}, FEED, workers=1,
                    objective=fast)  # fmt: skip
    with pytest.raises(ConfigError, match="no statistic 'Sharp'"):
        Backtest(MovingAverageCrossover, [FEED], objective="Sharp").score(
            Backtest(MovingAverageCrossover, [FEED]).run({})
        )


def test_walk_forward_windows_rolling_and_anchored() -> None:
    ns = lambda d: pd.Timestamp(d, tz="UTC").value  # noqa: E731
    rolling = windows(ns("2020-01-01"), ns("2022-01-01"), train="365D", test="180D")
    assert [
        (
            pd.Timestamp(w.train_start, tz="UTC").date().isoformat(),
            pd.Timestamp(w.test_start, tz="UTC").date().isoformat(),
            pd.Timestamp(w.test_end, tz="UTC").date().isoformat(),
        )
        for w in rolling
    ] == [
        ("2020-01-01", "2020-12-31", "2021-06-29"),
        ("2020-06-29", "2021-06-29", "2021-12-26"),
    ]  # fmt: skip (a last test span of 6 days is left out)
    anchored = windows(ns("2020-01-01"), ns("2022-01-01"), train="12MS", test="6MS", anchored=True)
    assert {w.train_start for w in anchored} == {ns("2020-01-01")}
    assert [pd.Timestamp(w.test_start, tz="UTC").strftime("%Y-%m") for w in anchored] == [
        "2021-01", "2021-07",
    ]  # fmt: skip
    with pytest.raises(ConfigError, match="too short"):
        windows(ns("2020-01-01"), ns("2020-02-01"), train="365D", test="30D")
    with pytest.raises(ConfigError, match="length of time"):
        windows(ns("2020-01-01"), ns("2021-01-01"), train="a year", test="30D")


def test_walk_forward_reports_in_and_out_of_sample() -> None:
    setup = Backtest(MovingAverageCrossover, [sample_feed(["ACME", "BOLT"])])
    sets = grid({"fast": [5, 20], "slow": [50, 100]})
    result = walk_forward(setup, sets, train="1095D", test="365D", workers=2)
    frame = result.frame
    assert len(frame) == 7  # 2015-2024: three years in, then one year at a time
    assert frame["error"].eq("").all()
    for _, row in frame.iterrows():
        assert (row["fast"], row["slow"]) in {(p["fast"], p["slow"]) for p in sets}
        assert row["test_start"] == row["train_end"]
    # the in-sample best is the best of its window's sweep
    assert frame["in_sample"].iloc[0] == result.sweeps[0].best_value
    summary = result.summary
    assert summary["windows"] == 7
    assert summary["efficiency"] == pytest.approx(
        frame["out_of_sample"].mean() / frame["in_sample"].mean()
    )


def test_walk_forward_needs_feeds_it_can_cut() -> None:
    opaque = Backtest(MovingAverageCrossover, [object()])  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="cannot be cut by time"):
        opaque.between(None, None)


def test_plots_of_a_sweep_and_a_walk_forward() -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    sweep = grid_search(MovingAverageCrossover, SPACE, FEED, workers=1)
    ax = sweep.heatmap("fast", "slow", Figure().add_subplot())
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == 9 and texts.count("n/a") == 2  # two cells are failed runs
    assert ax.get_title(loc="left") == "Sharpe ratio by fast and slow (higher is better)"
    setup = Backtest(MovingAverageCrossover, [FEED])
    wf = walk_forward(setup, grid({"fast": [5], "slow": [50]}), train="1460D", test="730D",
                      workers=1)  # fmt: skip
    ax = wf.plot(Figure().add_subplot())
    assert len(ax.patches) == 2 * len(wf.frame)


def test_the_heatmap_names_its_metric_and_writes_each_value_legibly() -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.colors import to_rgb
    from matplotlib.figure import Figure

    from ibkrfw.reports import plot_parameter_heatmap

    # lowest (dark red), middle (pale yellow), highest (dark green); one missing run
    table = pd.DataFrame(
        [[-1.0, 0.0], [1.0, float("nan")]],
        index=pd.Index([50, 100], name="slow"),
        columns=pd.Index([5, 10], name="fast"),
    )
    ax = plot_parameter_heatmap(table, Figure().add_subplot(), metric="Sharpe ratio")
    assert ax.get_title(loc="left") == "Sharpe ratio by fast and slow (higher is better)"
    assert ax.images[0].colorbar is not None
    assert ax.images[0].colorbar.ax.get_ylabel() == "Sharpe ratio"
    ink = {t.get_text(): to_rgb(t.get_color()) for t in ax.texts}
    assert ink["-1.00"] == ink["1.00"] == (1.0, 1.0, 1.0)  # white on the dark ends
    assert ink["0.00"] == (0.0, 0.0, 0.0)  # black on the light middle
    assert "n/a" in ink  # the missing run is marked, not left blank
    image = ax.images[0]
    assert image.cmap(image.norm(-1.0))[:3] != image.cmap(image.norm(1.0))[:3]
    # smaller is better: the title says so and the best (lowest) value is green
    low = plot_parameter_heatmap(table, Figure().add_subplot(), metric="Max drawdown [%]",
                                 maximize=False)  # fmt: skip
    assert low.get_title(loc="left").endswith("(lower is better)")
    red, green, _ = low.images[0].to_rgba(-1.0)[:3]
    assert green > red


def test_a_sweep_on_a_dask_cluster(capsys: pytest.CaptureFixture[str]) -> None:
    distributed = pytest.importorskip("distributed")
    with (
        # The scheduler's HTTP server takes port 8787 unless told otherwise: a free port, so a
        # second run or anything else on 8787 cannot make the cluster fail to start.
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address="127.0.0.1:0", silence_logs=40,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):  # fmt: skip
        setup = Backtest(MovingAverageCrossover, [FEED], objective="Total return [%]")
        sets = grid(SPACE)
        with Runner(setup, client.get_executor()) as runner:
            # the setup went to each worker once, as one scattered piece of data; the tasks
            # carry only its future
            shipped = runner.shipped
            assert isinstance(shipped, distributed.Future)
            assert len(client.who_has(shipped)[shipped.key]) == 2
            rows = runner.run(sets)
        with pytest.raises(ConfigError, match=r"objective=setup\.objective_name"):
            SweepResult.from_rows(rows, ["fast", "slow"], maximize=True)  # which column?
        found = SweepResult.from_rows(
            rows, ["fast", "slow"], maximize=True, objective=setup.objective_name
        )
        on_dask = columns(found)
        shown = run_sweep(setup, sets, executor=client.get_executor(), progress=True)
        assert len(columns(shown)) == 9
    # the progress moved in this process as the cluster's runs finished: log lines, no \r
    err = capsys.readouterr().err
    assert "\r" not in err and "9/9" in err.splitlines()[-1]
    serial = columns(run_sweep(setup, sets, workers=1))
    pd.testing.assert_frame_equal(serial, on_dask)


def test_the_optimize_command(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    from ibkrfw.cli import main

    out_csv = tmp_path / "sweep.csv"
    argv = ["optimize", "--symbols", "ACME", "-g", "fast=5,10", "-g", "slow=40,80",
            "--workers", "1", "--quiet", "--out", str(out_csv),
            "--heatmap", f"fast,slow={tmp_path / 'heat.png'}"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "4 parameter sets of MovingAverageCrossover, ranked by Sharpe ratio" in out
    assert "best: {'fast': " in out
    assert len(pd.read_csv(out_csv)) == 4
    assert (tmp_path / "heat.png").read_bytes()[:4] == b"\x89PNG"
    # the same grid from a TOML file, random draws, minimising the drawdown
    config = tmp_path / "sweep.toml"
    config.write_text(
        '[optimize]\nstrategy = "sma_crossover"\nsymbols = ["ACME"]\n'
        'objective = "Max drawdown [%]"\n[optimize.grid]\nfast = [5, 10]\nslow = [40, 80]\n'
    )
    assert main(["optimize", "--config", str(config), "--random", "3", "--seed", "1",
                 "--minimize", "--workers", "1", "--quiet"]) == 0  # fmt: skip
    assert "3 parameter sets of MovingAverageCrossover, ranked by Max drawdown [%]" in (
        capsys.readouterr().out
    )
    # walk-forward from the command line
    assert main(["optimize", "--symbols", "ACME", "-g", "fast=5,20", "-g", "slow=50",
                 "--walk-forward", "1460D:730D", "--workers", "1", "--quiet"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "efficiency" in out and "out_of_sample" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["optimize", "--symbols", "ACME"], "nothing to search"),
        (["optimize", "-g", "speed=1,2"], "-g speed=1,2: MovingAverageCrossover has no"),
        (["optimize", "-g", "fast=a,b"], "-g fast=a,b: 'a' is not an int"),
        (["optimize", "-g", "fast=5", "--walk-forward", "730D"], "TRAIN:TEST"),
    ],
)
def test_optimize_command_errors(argv, message, capsys: pytest.CaptureFixture[str]) -> None:
    from ibkrfw.cli import main

    assert main([*argv, "--workers", "1", "--quiet"]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("train", "test", "message"),
    [
        ("730D", "0D", "test must be a length above zero"),
        ("0D", "180D", "train must be a length above zero"),
        ("730D", "-6MS", "test must be a length above zero"),
        (pd.Timedelta(0), "180D", "train must be a length above zero"),
    ],
)
def test_walk_forward_refuses_lengths_not_above_zero(train, test, message) -> None:
    # a zero test length used to loop forever; a zero train length ran windows of NaN
    setup = Backtest(MovingAverageCrossover, [FEED])
    with pytest.raises(ConfigError, match=message):
        walk_forward(setup, [{"fast": 5}], train=train, test=test, workers=1)
    with pytest.raises(ConfigError, match=message):
        windows(0, 10**18, train=train, test=test)
    with pytest.raises(ConfigError, match=message):
        check_lengths(train, test)


def test_an_objective_that_names_no_statistic_is_refused_when_the_backtest_is_made() -> None:
    with pytest.raises(ConfigError, match=r"no statistic 'sharpe'; did you mean 'Sharpe ratio'"):
        Backtest(MovingAverageCrossover, [FEED], objective="sharpe")
    with pytest.raises(ConfigError, match="a statistic's name or a function"):
        Backtest(MovingAverageCrossover, [FEED], objective=3)  # type: ignore[arg-type]
    assert "Calmar ratio" in statistic_names()
