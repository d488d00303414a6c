"""``ibkrfw config check/show``, and ``ibkrfw run`` refusing a wrong configuration file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ibkrfw.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ibkrfw.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[run]\nstrategy = "sma_crossover"\nsymbols = "ACME"\n',
         '[run] symbols = "ACME": expected a list of strings, e.g. symbols = ["ACME"]'),
        ('[run]\nstrategy = "sma_crossover"\nsymbols = ["ACME"]\ncancel_on_stop = "false"\n',
         '[run] cancel_on_stop = "false": expected true or false'),
        ('[run]\nstrategy = "sma_crossover"\nsymbolz = ["ACME"]\n',
         "[run] symbolz: unknown key; did you mean 'symbols'?"),
        ('[run]\nstrategy = "sma_crossover"\nsymbols = ["ACME"]\nmax_loss = 500\n',
         "[run] max_loss: unknown key"),
        ('[run]\nstrategy = "sma_crossover"\nsymbols = ["ACME"]\n[dashbord]\nlisten = "8765"\n',
         "[dashbord]: unknown table; did you mean [dashboard]?"),
        ('[run]\nstrategy = "sma_crossover"\nsymbols = ["ACME"]\n[riks]\nmax_loss = 500\n',
         "[riks]: unknown table; did you mean [risk]?"),
        ('[run]\nstrategy = "sma_crossover"\nsymbols = ["ACME"]\n[risk]\nmax_loss = 500\n',
         "[risk] max_loss: unknown key"),
        ('[run]\nstrategy = "sma_crossover"\nsymbols = ["ACME"]\n[risk]\nmax_drawdown = 20\n',
         "[risk] max_drawdown = 20.0: must be a fraction above 0 and below 1"),
        ('[run]\nstrategy = "sma_crossover"\nsymbols = ["ACME"]\n'
         '[monitor]\nstale_after_s = "soon"\n',
         '[monitor] stale_after_s = "soon": expected a number'),
    ],
)  # fmt: skip
def test_run_a_wrong_configuration_exits_2_before_connecting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, expected: str
) -> None:
    path = _write(tmp_path, text)
    # port 1: nothing listens there; the file is refused before any connection is tried
    code = main(["run", "--config", str(path), "--port", "1", "--state-dir", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert code == 2
    assert f"ibkrfw: error: {path}: {expected}" in err
    assert "Traceback" not in err and "connect" not in err.lower()


def test_run_a_state_dir_that_is_a_file_exits_2_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    state.write_text("a file")
    path = _write(
        tmp_path, f'[run]\nstrategy = "sma_crossover"\nsymbols = ["ACME"]\nstate_dir = "{state}"\n'
    )
    assert main(["run", "--config", str(path), "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert f'[run] state_dir = "{state}": exists and is not a directory' in err
    assert "FileExistsError" not in err
    # given as an option, it is named as one
    assert main(["run", "--config", str(path), "--state-dir", str(state), "--port", "1"]) == 2
    assert "the command line: [run] state_dir" in capsys.readouterr().err


def test_config_check_a_good_file_says_ok(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(
        tmp_path,
        '[ibkr]\nport = 4002\n[run]\nstrategy = "sma_crossover"\nsymbols = ["ACME"]\n'
        "[run.parameters]\nfast = 5\nslow = 20\n[sandbox]\ncommission = 0.005\n"
        '[optimize]\nobjective = "Sharpe ratio"\n[optimize.grid]\nfast = [5, 10]\n',
    )
    assert main(["config", "check", str(path)]) == 0
    assert capsys.readouterr().out == f"{path}: ok\n"


def test_config_check_a_bad_file_lists_every_problem_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, '[run]\nsymbols = "ACME"\nsymbolz = []\n[riks]\nx = 1\n')
    assert main(["config", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ibkrfw: error: 3 problems:\n")
    assert f"  {path}: [run] symbols = " in err and f"  {path}: [riks]: unknown table" in err


def test_config_check_loads_the_strategy_and_converts_its_parameters(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(
        tmp_path, '[run]\nstrategy = "sma_crossover"\n[run.parameters]\nfast = 30\nslow = 10\n'
    )
    assert main(["config", "check", str(path)]) == 2
    assert "MovingAverageCrossover refuses" in capsys.readouterr().err
    assert main(["config", "check", str(path), "--strategy", "no_such:Thing"]) == 2
    assert "--strategy no_such:Thing: cannot import 'no_such'" in capsys.readouterr().err
    bad = _write(tmp_path, '[run]\nstrategy = "sma_crossover"\n[run.parameters]\nfsat = 3\n')
    assert main(["config", "check", str(bad)]) == 2
    assert "did you mean 'fast'?" in capsys.readouterr().err


def test_config_check_a_bad_environment_variable_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(tmp_path, "[run]\n")
    monkeypatch.setenv("IBKRFW_RUN_CANCEL_ON_STOP", "sometimes")
    assert main(["config", "check", str(path)]) == 2
    assert "IBKRFW_RUN_CANCEL_ON_STOP='sometimes' is not true or false" in capsys.readouterr().err


def test_config_show_masks_the_webhook_token_and_the_smtp_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _write(
        tmp_path,
        '[alerts.email]\nhost = "smtp.example.com"\nsender = "bot@example.com"\n'
        'recipients = ["me@example.com"]\nusername = "bot@example.com"\n'
        '[[alerts.webhook]]\nurl = "https://hooks.slack.com/services/T0/B0/WEBHOOKTOKEN123"\n'
        'format = "slack"\ntoken_env = "HOOK_TOKEN"\n',
    )
    monkeypatch.setenv("IBKRFW_SMTP_PASSWORD", "smtp-password-value")
    monkeypatch.setenv("HOOK_TOKEN", "bearer-token-value")
    monkeypatch.setenv("IBKRFW_MONITOR_STALE_AFTER_S", "120")
    assert main(["config", "show", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    for secret in ("WEBHOOKTOKEN123", "smtp-password-value", "bearer-token-value"):
        assert secret not in out
    assert 'url = "https://hooks.slack.com/***"' in out
    assert 'password_env = "IBKRFW_SMTP_PASSWORD"  # the variable is set' in out
    assert "stale_after_s = 120.0" in out  # the environment's value, as a run would use it


def test_config_show_without_a_file_prints_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "show"]) == 0
    out = capsys.readouterr().out
    assert "[run]\n" in out and 'state_dir = "ibkrfw-state"' in out


def test_the_configuration_reference_page_is_generated_from_the_model() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "gen_config_reference.py"), "--check"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr


def test_run_the_default_state_dir_that_is_a_file_exits_2_but_download_config_is_not_blocked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from ibkrfw.ibkr import IBKRConfig

    monkeypatch.chdir(tmp_path)
    (tmp_path / "ibkrfw-state").write_text("a file")
    path = _write(tmp_path, '[ibkr]\nport = 4002\n[run]\nstrategy = "sma_crossover"\n')
    assert IBKRConfig.load(path, environ={}).port == 4002  # download has no state to keep
    assert main(["run", "--config", str(path), "--symbols", "ACME", "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert f'{path}: [run] state_dir = "ibkrfw-state": exists and is not a directory' in err
    assert main(["config", "check", str(path)]) == 2
    assert '[run] state_dir = "ibkrfw-state": exists and is not a directory' in (
        capsys.readouterr().err
    )


def test_config_check_a_webhook_error_shows_no_secret_and_main_redacts_known_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hook = "https://hooks.slack.com/services/T0LEAK/B0LEAK/SeCrEtT0KeN99"
    path = _write(tmp_path, f'[alerts.webhook]\nurl = "{hook}"\nformat = "slack"\n')
    assert main(["config", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "SeCrEtT0KeN99" not in err and "[alerts] webhook = (a table of 2 keys)" in err
    # a secret already read is masked in any error the command prints
    from ibkrfw._redact import Secret

    Secret("known-secret-value-42")
    state = tmp_path / "known-secret-value-42"
    state.write_text("a file")
    bad = _write(tmp_path, f'[run]\nstate_dir = "{state}"\n')
    assert main(["config", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "known-secret-value-42" not in err and "exists and is not a directory" in err


def test_config_show_output_says_masked_values_are_unusable_and_is_refused_fed_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(
        tmp_path, '[[alerts.webhook]]\nurl = "https://hooks.slack.com/services/T0/B0/TOKEN123"\n'
    )
    assert main(["config", "show", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "# masked values (***) are not usable as they are" in out
    shown = tmp_path / "shown.toml"
    shown.write_text(out, encoding="utf-8")
    assert main(["config", "check", str(shown)]) == 2
    assert "is the masked form `config show` prints: give the real URL" in capsys.readouterr().err


def test_a_file_asking_for_live_needs_mode_live_on_the_command_line_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(
        tmp_path,
        '[ibkr]\nmode = "live"\nport = 1\n[run]\nstrategy = "sma_crossover"\nsymbols = ["ACME"]\n',
    )
    assert main(["config", "check", str(path)]) == 0
    assert 'ok ([ibkr] mode = "live": ibkrfw run needs --mode live too)' in (
        capsys.readouterr().out
    )
    assert main(["config", "show", "--config", str(path)]) == 0
    assert 'mode = "live"  # ibkrfw run needs --mode live too' in capsys.readouterr().out
    state = str(tmp_path / "s")
    assert main(["run", "--config", str(path), "--state-dir", state]) == 2
    err = capsys.readouterr().err
    assert (
        f'ibkrfw: error: {path}: [ibkr] mode = "live" asks for live trading; pass --mode live'
        in err
    )
    paper = _write(
        tmp_path,
        '[ibkr]\nmode = "paper"\nport = 1\n[run]\nstrategy = "sma_crossover"\nsymbols = ["A"]\n',
    )
    assert main(["run", "--config", str(paper), "--mode", "live", "--state-dir", state]) == 2
    assert '[ibkr] mode = "paper" differs from --mode live' in capsys.readouterr().err


def test_run_a_dashboard_address_in_use_exits_2_naming_the_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main([
            "run", "--sandbox", "--strategy", "sma_crossover", "--symbols", "ACME",
            "--port", "1", "--state-dir", str(tmp_path / "s"),
            "--dashboard", f"127.0.0.1:{port}",
        ])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"--dashboard: cannot listen on 127.0.0.1:{port}: address already in use" in err
    assert "Traceback" not in err


def test_run_builds_an_ipv6_dashboard_from_the_form_it_prints(tmp_path: Path) -> None:
    import argparse
    import socket

    from ibkrfw.cli.run import _operations
    from ibkrfw.config import settings_from_tables

    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    settings = settings_from_tables({"dashboard": {"listen": "[::1]:8"}})
    alerter, _, _, dashboard = _operations(
        argparse.Namespace(dashboard=None), settings, str(tmp_path)
    )
    try:
        assert (dashboard.host, dashboard.port) == ("::1", 8)
        assert dashboard.url == "http://[::1]:8/"
    finally:
        alerter.stop()


def test_config_check_takes_risk_and_protection_and_refuses_protecting_an_untraded_symbol(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (
        '[run]\nstrategy = "sma_crossover"\nsymbols = ["ACME"]\n'
        "[risk]\nmax_order_value = 25000\nmax_drawdown = 0.15\n"
        '[protection]\nstop_loss_percent = 0.05\nsymbols = ["{}"]\n'
    )
    good = _write(tmp_path, text.format("ACME"))
    assert main(["config", "check", str(good)]) == 0
    assert capsys.readouterr().out == f"{good}: ok\n"
    assert main(["config", "show", "--config", str(good)]) == 0
    shown = capsys.readouterr().out
    assert "[risk]\n" in shown and "max_order_value = 25000.0" in shown
    assert "[protection]\n" in shown and "stop_loss_percent = 0.05" in shown
    bad = _write(tmp_path, text.format("BOLT"))
    assert main(["config", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f'{bad}: [protection] symbols = ["BOLT"]: ["BOLT"] not traded' in err, err


def test_config_check_refuses_a_data_age_no_longer_than_a_bar(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(
        tmp_path,
        '[run]\nstrategy = "sma_crossover"\nbar_size = "5min"\n[risk]\nmax_data_age_s = 300\n',
    )
    assert main(["config", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert (
        f"{path}: [risk] max_data_age_s = 300.0 is not longer than one of the run's bars "
        '([run] bar_size = "5min")'
    ) in err, err
    assert "e.g. 600 for one late bar" in err
