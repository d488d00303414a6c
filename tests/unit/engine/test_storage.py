"""RunResult.save and load: the same tables and statistics back, no pickle involved."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from ibkrfw import ConfigError, Engine, RunResult
from ibkrfw.data import sample_feed
from ibkrfw.sim import IBKRFixedCommission, SimBroker
from ibkrfw.strategies import MovingAverageCrossover


def test_a_saved_run_loads_back_the_same(tmp_path: Path) -> None:
    result = Engine(
        MovingAverageCrossover(fast=5, slow=20),
        sample_feed(["ACME", "BOLT"]),
        SimBroker(cash=50_000, commission=IBKRFixedCommission(), borrow_rate=0.03),
    ).run()
    path = tmp_path / "run.ibkrfw"
    result.save(path)
    loaded = RunResult.load(path)
    pd.testing.assert_series_equal(loaded.stats, result.stats)
    for table in ("equity", "orders", "fills", "trades"):
        pd.testing.assert_frame_equal(getattr(loaded, table), getattr(result, table))
    assert loaded.order_list == result.order_list
    assert loaded.fill_list == result.fill_list
    assert loaded.parameters == result.parameters
    with zipfile.ZipFile(path) as archive:  # plain JSON and arrays, nothing executable
        assert sorted(archive.namelist()) == ["arrays.npz", "result.json"]
        assert json.loads(archive.read("result.json"))["format"] == "ibkrfw-run/1"


def test_not_a_saved_run_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.ibkrfw"
    bad.write_text("hello")
    with pytest.raises(ConfigError, match="not a saved run"):
        RunResult.load(bad)
    other = tmp_path / "other.ibkrfw"
    with zipfile.ZipFile(other, "w") as archive:
        archive.writestr("result.json", json.dumps({"format": "something/9"}))
        archive.writestr("arrays.npz", b"")
    with pytest.raises(ConfigError, match="has format 'something/9'"):
        RunResult.load(other)


def test_a_saved_run_keeps_its_halts_and_risk_warnings(tmp_path: Path) -> None:
    from ibkrfw.risk import DailyLossLimit, MaxDrawdownKillSwitch

    result = Engine(
        MovingAverageCrossover(fast=5, slow=20), sample_feed(["ACME"]), SimBroker(cash=50_000),
        risk_monitors=[DailyLossLimit(percent=0.001), MaxDrawdownKillSwitch(0.01)],
    ).run()  # fmt: skip
    assert result.halts and [w.rule for w in result.risk_warnings] == ["DailyLossLimit"]
    path = tmp_path / "run.ibkrfw"
    result.save(path)
    loaded = RunResult.load(path)
    assert loaded.halts == result.halts
    assert loaded.risk_warnings == result.risk_warnings
