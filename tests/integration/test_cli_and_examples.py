from __future__ import annotations

import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from ibkrfw.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_backtest_on_the_sample_prints_stats(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["backtest", "--symbols", "ACME,BOLT", "-p", "fast=5", "-p", "slow=20"]) == 0
    out = capsys.readouterr().out
    assert "MovingAverageCrossover(fast=5, slow=20" in out
    assert re.search(r"Sharpe ratio\s+-?\d", out)
    assert re.search(r"Trades\s+\d+", out)


def test_backtest_on_a_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ibkrfw.data import generate_bars

    frame = generate_bars(["ZZZ"], periods=300, seed=5)
    path = tmp_path / "zzz.csv"
    frame.drop(columns="symbol").to_csv(path, index=False)
    assert main(["backtest", "--csv", str(path), "--symbols", "ZZZ", "--commission", "0.005"]) == 0
    assert "Commissions" in capsys.readouterr().out


def test_user_strategy_by_import_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "mystrat.py").write_text(
        "import attrs\nfrom ibkrfw import Strategy\n\n"
        "@attrs.define\nclass Hold(Strategy):\n    weight: float = 0.5\n"
        "    def on_bar(self, ctx, bar):\n"
        "        ctx.order_target_percent(bar.instrument, self.weight)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert (
        main(["backtest", "--strategy", "mystrat:Hold", "--symbols", "ACME", "-p", "weight=0.25"])
        == 0
    )
    assert "Hold(weight=0.25)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["backtest", "--strategy", "nope"], "module:Class"),
        (["backtest", "--strategy", "no_such_module_xyz:S"], "cannot import"),
        (["backtest", "--strategy", "ibkrfw:Engine"], "not a Strategy"),
        (["backtest", "-p", "bogus=1"], "no parameter 'bogus'"),
        (["backtest", "-p", "fast=ten"], "parameter fast: 'ten' is not an int"),
        (["backtest", "-p", "fast=40"], "must be smaller than slow"),
        (["backtest", "--csv", "/nonexistent.csv", "--symbols", "X"], "does not exist"),
        (["backtest", "--csv", "/nonexistent.csv"], "/nonexistent.csv: does not exist"),
    ],
)
def test_cli_errors_are_one_clear_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("ibkrfw: error:") and message in err


def test_examples_run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    for path in sorted((ROOT / "examples").glob("*.py")):
        monkeypatch.setattr(sys, "argv", [str(path)])
        runpy.run_path(str(path), run_name="__main__")
    out = capsys.readouterr().out
    # pinned statistics of examples/sma_crossover.py (deterministic sample data)
    assert re.search(r"Final equity\s+62767\.77\b", out)
    assert re.search(r"Trades\s+31\b", out)
    assert re.search(r"Commissions\s+606\.2\b", out)
    # examples/store_and_backtest.py
    assert "570 bar(s) dropped, 22830 kept" in out
    assert "410 hourly bars; 12 trades; final equity 97,882.71" in out
    # examples/multi_asset_rebalance.py: five buys, then the kill switch closes all five
    assert "10 fills over 1 rebalance(s)" in out
    assert "halted on 2015-02-10 by MaxDrawdownKillSwitch: equity 851,998.51 is 15.1%" in out
    assert "without the kill switch: total return -53.0 %, max drawdown -69.1 %" in out
    assert "diversification ratio of the target mix: 1.28" in out
    # examples/custom_risk_rule.py
    assert "most positions held at once: 2" in out
    assert re.search(r"\d+ orders, \d+ denied by MaxOpenPositions", out)
    # examples/optimize_walk_forward.py
    assert "best in sample: {'fast': 20, 'slow': 100}" in out
    assert re.search(r"walk-forward: in sample -?[\d.]+, out of sample -?[\d.]+, efficiency", out)
    # examples/paper_trading_fake_tws.py: the paper run makes the backtest's trades
    assert "same fills: True; health while running: degraded" in out
    assert "risk: drawdown 36.1%, past the alert level of 10%" in out  # 1M fell to 639k
    # examples/download_history.py
    assert "261 daily bars of ACME stored, 2019-01-01 to 2019-12-31" in out
    # examples/covered_call.py: every call rolled 5 days before expiry, none assigned
    assert "23 calls written, 23 rolled, 0 assigned, 0 expired worthless" in out
    assert "net premium 1,245.00, commissions 47.00, 0 order(s) denied by the delta limit" in out
    # examples/several_strategies.py: two strategies, their books add up to the account's
    assert re.search(r"trend +capital +60,000\.00 +final equity +16,258\.42 +trades +59", out)
    assert re.search(r"meanrev +capital +40,000\.00 +final equity +42,143\.50 +trades +101", out)
    assert "account  final equity 58,401.92" in out
    assert "the strategies add up to the account: True" in out
    assert "meanrev: 203 orders, none above its own limit of 300: True" in out
    # examples/futures_trend.py: flat at the first roll (switched), six positions rolled
    assert "8 months, 7 rolls: 1 switched, 6 done" in out
    assert "2026-12-14 ESZ6 -> ESH7: done, -1 contract(s), price difference 15.00" in out
    assert "12 trades, final equity 200,187.34, total return 0.1 %" in out
    assert "held at the end: {'ES.20280616.CME': -1}" in out
    # examples/alerts.py: three identical alerts go out once
    assert "2 webhook posts, 2 repeat(s) dropped" in out
    # examples/multi_timeframe.py: hours and days built from the minutes, traded on
    assert "on_bar: 4680 minutes, 84 hours, 12 days" in out
    assert "4 fills; final equity 97,792.62" in out


def test_multi_asset_example_draws_the_heatmap(tmp_path: Path) -> None:
    heatmap = tmp_path / "correlation.png"
    module = runpy.run_path(str(ROOT / "examples" / "multi_asset_rebalance.py"))
    module["main"](["--plot", str(heatmap), "--max-drawdown", "0.5"])
    assert heatmap.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_readme_opens_with_the_two_commands_and_ci_runs_the_second() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    blocks = [ln for ln in lines[:20] if ln.startswith(("pip ", "python "))]
    assert len(blocks) == 2, blocks
    quickstart, suite = blocks
    assert "ibkrfw backtest" in quickstart
    assert "tox" in suite
    ci = (ROOT / ".ci" / "run").read_text()
    assert suite in ci


def test_installed_console_script_runs_the_quickstart() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    quickstart = next(ln for ln in lines[:20] if "ibkrfw backtest" in ln)
    command = quickstart.split("&&")[-1].split()  # the backtest part, run against this install
    assert command[0] == "ibkrfw"
    out = subprocess.run(
        [sys.executable, "-m", "ibkrfw.cli", *command[1:]],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={**os.environ, "PYTHONWARNINGS": "error"},
    )
    assert "Sharpe ratio" in out.stdout


def test_the_sandbox_table_sets_the_simulators_costs_and_rules() -> None:
    from decimal import Decimal

    from ibkrfw.cli import _sandbox_broker
    from ibkrfw.sim import (
        FixedBpsSlippage,
        HalfSpreadSlippage,
        IBKRFixedCommission,
        PerShareCommission,
        ZeroCommission,
    )

    table = {"cash": 50_000, "commission": "ibkr_fixed", "slippage_bps": 2, "volume_limit": 0.1}
    broker = _sandbox_broker(None, table)
    assert broker.starting_cash() == Decimal(50_000)
    assert isinstance(broker.commission_model, IBKRFixedCommission)
    assert isinstance(broker.slippage, FixedBpsSlippage) and broker.slippage.bps == 2
    assert _sandbox_broker("7500.5", table).starting_cash() == Decimal("7500.5")  # --cash wins
    plain = _sandbox_broker(None, {})
    assert plain.starting_cash() == Decimal(100_000)
    assert isinstance(plain.commission_model, ZeroCommission) and plain.slippage is None
    per_share = _sandbox_broker(None, {"commission": 0.005, "spread_bps": 4})
    assert per_share.commission_model.rate == Decimal("0.005")
    assert isinstance(per_share.commission_model, PerShareCommission)
    assert isinstance(per_share.slippage, HalfSpreadSlippage)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"comission": 1}, r"\[sandbox\] comission: unknown key; did you mean 'commission'\?"),
        ({"commission": "ibkr"}, r'\[sandbox\] commission = "ibkr": must be "ibkr_fixed", '),
        ({"commission": True}, r"\[sandbox\] commission = true: expected \"ibkr_fixed\""),
        ({"slippage_bps": 1, "spread_bps": 2}, "slippage_bps or spread_bps, not both"),
        ({"slippage_bps": "2"}, r'\[sandbox\] slippage_bps = "2": expected a number'),
        ({"fill_timing": "now"}, r'\[sandbox\] fill_timing = "now": expected one of'),
        ({"volume_limit": "a tenth"}, r'\[sandbox\] volume_limit = "a tenth": expected a number'),
        ({"cash": "lots"}, r'\[sandbox\] cash = "lots": expected a number, e.g. cash = 100000'),
        ({"commission": -0.01}, r"\[sandbox\] commission = -0.01: must be 0 or more"),
        ({"slippage_bps": -3}, r"\[sandbox\] slippage_bps = -3.0: must be 0 or more"),
    ],
)
def test_a_bad_sandbox_table_is_a_config_error_naming_the_setting(
    table: dict[str, object], message: str
) -> None:
    from ibkrfw import ConfigError
    from ibkrfw.cli import _sandbox_broker

    with pytest.raises(ConfigError, match=message):
        _sandbox_broker(None, table)
