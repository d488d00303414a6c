"""What ``ibkrfw run`` and ``ibkrfw fake-tws`` hand the library: dashboard safety, log masking,
the acknowledgement time-out, the fake TWS's warning off loopback."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ibkrfw._redact import RedactingFilter, Secret
from ibkrfw.cli import main
from ibkrfw.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
RUN = '[run]\nstrategy = "sma_crossover"\nsymbols = ["ACME"]\n'


def _config(tmp_path: Path, text: str = "") -> list[str]:
    path = tmp_path / "ibkrfw.toml"
    path.write_text(RUN + text, encoding="utf-8")
    return ["run", "--config", str(path), "--port", "1", "--state-dir", str(tmp_path / "s")]


def test_a_dashboard_open_to_the_network_without_a_token_is_refused_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("IBKRFW_DASHBOARD_TOKEN", raising=False)
    assert main([*_config(tmp_path), "--dashboard", "0.0.0.0:8765"]) == 2
    err = capsys.readouterr().err
    assert "without an access token" in err and "IBKRFW_DASHBOARD_TOKEN" in err
    assert "[HOST:]PORT" not in err  # the old, wrong message
    # with a token but neither TLS nor the opt-out: refused too, saying why
    monkeypatch.setenv("IBKRFW_DASHBOARD_TOKEN", "a-long-dashboard-token")
    assert main([*_config(tmp_path), "--dashboard", "0.0.0.0:8765"]) == 2
    err = capsys.readouterr().err
    assert "plain HTTP" in err and "tls_cert" in err and "a-long-dashboard-token" not in err
    # a malformed address still gets the address's message
    assert main([*_config(tmp_path), "--dashboard", "127.0.0.1:http"]) == 2
    assert "[HOST:]PORT" in capsys.readouterr().err


def test_run_masks_secrets_in_every_log_record(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("IBKRFW_DASHBOARD_TOKEN", raising=False)
    secret = Secret("https://hooks.example.com/services/T0/B0/quoted-by-a-library")
    main([*_config(tmp_path), "--dashboard", "0.0.0.0:8765"])  # fails after the log is set up
    assert any(
        isinstance(f, RedactingFilter) for h in logging.getLogger().handlers for f in h.filters
    )
    with caplog.at_level(logging.WARNING):
        logging.getLogger("urllib3.somewhere").warning("POST %s failed", secret.reveal())
    assert "quoted-by-a-library" not in caplog.text and "POST *** failed" in caplog.text


def test_the_monitors_ack_timeout_is_the_brokers_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import ibkrfw.ibkr

    given: dict[str, Any] = {}

    def broker(**kwargs: Any) -> None:
        given.update(kwargs)
        raise ConfigError("stopped here by the test")

    monkeypatch.setattr(ibkrfw.ibkr, "IBKRBroker", broker)
    assert main(_config(tmp_path, "[monitor]\nack_timeout_s = 3.5\n")) == 2
    assert "stopped here by the test" in capsys.readouterr().err
    assert given["ack_timeout_s"] == 3.5


def test_fake_tws_off_loopback_warns_once_on_stderr() -> None:
    # the fake is built (its warning logged) but never bound: no test listens off loopback
    code = (
        "import sys\n"
        "from ibkrfw.testing.faketws import FakeTWS\n"
        "FakeTWS.__enter__ = lambda self: sys.exit(0)\n"
        "from ibkrfw.cli import main\n"
        "sys.exit(main(['fake-tws', '--host', '0.0.0.0', '--sample', 'ACME']))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if "listens on 0.0.0.0" in line]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("ibkrfw: WARNING: the fake TWS listens on 0.0.0.0")
    assert "anyone who can reach this machine can place orders" in lines[0]


def test_the_load_thresholds_of_the_monitor_table_reach_the_monitor(tmp_path: Path) -> None:
    import argparse

    from ibkrfw.cli.run import _operations

    tables = {"monitor": {"max_lag_s": 0.5, "max_inbox": 100}}
    args = argparse.Namespace(dashboard=None)
    alerter, monitor, _, _ = _operations(args, tables, str(tmp_path))
    alerter.stop()
    assert (monitor.max_lag_s, monitor.max_inbox) == (0.5, 100)
    with pytest.raises(ConfigError, match=r"\[monitor\] max_inbox = 0: must be above 0"):
        _operations(args, {"monitor": {"max_inbox": 0}}, str(tmp_path))


def test_an_smtp_login_in_clear_is_refused_by_config_check_and_by_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    email = (
        '[alerts.email]\nhost = "smtp.example.com"\nsender = "bot@example.com"\n'
        'recipients = ["me@example.com"]\nusername = "bot"\nstarttls = false\n'
    )
    args = _config(tmp_path, email)
    path = args[2]
    assert main(["config", "check", path]) == 2
    err = capsys.readouterr().err
    assert "[alerts.email] starttls = false: a login to smtp.example.com without STARTTLS" in err
    # to a relay on this machine it is allowed
    (tmp_path / "ibkrfw.toml").write_text(
        RUN + email.replace("smtp.example.com", "127.0.0.1"), encoding="utf-8"
    )
    assert main(["config", "check", path]) == 0
    capsys.readouterr()


def test_an_email_channel_refused_by_run_names_its_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    from ibkrfw.cli.run import _operations

    email = {"host": "127.0.0.1", "sender": "bot@example.com", "recipients": ["me@x.org"],
             "username": "bot", "password_env": "IBKRFW_TEST_NO_SUCH_VARIABLE"}  # fmt: skip
    with pytest.raises(ConfigError, match=r"^\[alerts\.email\]: "):
        _operations(argparse.Namespace(dashboard=None), {"alerts": {"email": email}}, str(tmp_path))
