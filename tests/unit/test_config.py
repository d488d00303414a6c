"""The configuration model (ibkrfw.config): strict types, unknown names, environment, checks."""
# ruff: noqa: E501  (the table of inputs and the messages they give reads best one case a line)

from __future__ import annotations

from pathlib import Path

import pytest

from ibkrfw import ConfigError
from ibkrfw.config import Settings, load_settings, settings_from_tables, settings_toml
from ibkrfw.ibkr import IBKRConfig


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ibkrfw.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _error(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> str:
    path = _file(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ=environ or {})
    return str(info.value).replace(str(path), "ibkrfw.toml")


def test_load_settings_no_file_gives_the_defaults() -> None:
    settings = load_settings(environ={})
    assert settings == Settings()
    assert settings.run.state_dir == Path("ibkrfw-state")
    assert settings.run.cancel_on_stop is False
    assert settings.monitor.stale_after_s == 900.0 and settings.alerts.max_per_hour == 30
    assert settings.dashboard.listen is None and settings.dashboard.allow_plain_http is False


def test_load_settings_symbols_as_a_string_is_refused_not_split_into_letters(
    tmp_path: Path,
) -> None:
    message = _error(tmp_path, '[run]\nsymbols = "ACME"\n')
    assert message == (
        'ibkrfw.toml: [run] symbols = "ACME": expected a list of strings, e.g. symbols = ["ACME"]'
    )


def test_load_settings_cancel_on_stop_as_a_string_is_refused(tmp_path: Path) -> None:
    message = _error(tmp_path, '[run]\ncancel_on_stop = "false"\n')
    assert message == (
        'ibkrfw.toml: [run] cancel_on_stop = "false": expected true or false, '
        "e.g. cancel_on_stop = false"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[run]\nsymbolz = ["A"]\n',
         "ibkrfw.toml: [run] symbolz: unknown key; did you mean 'symbols'?"),
        ("[run]\nmax_loss = 0.05\n", "ibkrfw.toml: [run] max_loss: unknown key; the keys of [run]: strategy, symbols,"),
        ('[dashbord]\nlisten = "127.0.0.1:8765"\n', "ibkrfw.toml: [dashbord]: unknown table; did you mean [dashboard]?"),
        ("[risk]\nmax_loss = 0.05\n", "ibkrfw.toml: [risk]: unknown table; the tables: [ibkr], [run],"),
        ('symbols = ["ACME"]\n', "ibkrfw.toml: symbols: a key outside its table; put it under [run]"),
        ('[alerts.email]\nhost = "h"\nsender = "a"\nrecipients = ["b"]\npassword = "pw"\n',
         "ibkrfw.toml: [alerts.email] password: secrets never go in the file: give password_env"),
        ('[monitor]\nstale_after_s = "soon"\n',
         'ibkrfw.toml: [monitor] stale_after_s = "soon": expected a number, e.g. stale_after_s = 900.0'),
        ("[monitor]\nstale_after_s = true\n", "ibkrfw.toml: [monitor] stale_after_s = true: expected a number"),
        ("[ibkr]\nport = 7497.5\n", "ibkrfw.toml: [ibkr] port = 7497.5: expected a whole number"),
        ("[ibkr]\nport = 0\n", "ibkrfw.toml: [ibkr] port = 0: a port is a whole number from 1 to 65535"),
        ("[monitor]\ndisconnect_after_s = -1\n", "ibkrfw.toml: [monitor] disconnect_after_s = -1.0: must be above 0"),
        ('[run]\non_mismatch = "ignore"\n', 'ibkrfw.toml: [run] on_mismatch = "ignore": expected one of "refuse", "adopt"'),
        ('[summary]\nat = "4pm"\n', 'ibkrfw.toml: [summary] at = "4pm": must be a time of day as "HH:MM"'),
        ('[monitor]\ntz = "Mars/Olympus"\n', 'ibkrfw.toml: [monitor] tz = "Mars/Olympus": is not a time zone name'),
        ('[dashboard]\nlisten = "here"\n', 'ibkrfw.toml: [dashboard] listen = "here": must be "[HOST:]PORT"'),
        ('[alerts]\nwebhook = { url = "https://x" }\n', "ibkrfw.toml: [alerts] webhook = { url = "),
        ("[sandbox]\nslippage_bps = 1\nspread_bps = 2\n",
         "ibkrfw.toml: [sandbox] spread_bps = 2.0: give slippage_bps or spread_bps, not both"),
        ("[run]\n[run.parameters]\nweights = [1, 2]\n", "ibkrfw.toml: [run] parameters = { weights = [1, 2] }: expected a table of"),
    ],
)  # fmt: skip
def test_load_settings_a_wrong_value_or_name_is_named_with_file_table_and_key(
    tmp_path: Path, text: str, expected: str
) -> None:
    assert _error(tmp_path, text).startswith(expected)


def test_load_settings_state_dir_that_is_a_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("not a directory")
    message = _error(tmp_path, f'[run]\nstate_dir = "{tmp_path / "state"}"\n')
    assert "[run] state_dir = " in message
    assert message.endswith("exists and is not a directory: give a directory")


def test_load_settings_state_dir_under_a_file_cannot_be_created(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("not a directory")
    message = _error(tmp_path, f'[run]\nstate_dir = "{tmp_path / "state" / "sub"}"\n')
    assert "[run] state_dir = " in message and "cannot be created" in message


def test_load_settings_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    message = _error(
        tmp_path,
        '[run]\nsymbols = "ACME"\ncancel_on_stop = "false"\n[risk]\nx = 1\n'
        '[monitor]\nstale_after_s = "soon"\n',
    )
    lines = message.splitlines()
    assert lines[0] == "4 problems:"
    assert len(lines) == 5 and all(line.startswith("  ibkrfw.toml: [") for line in lines[1:])


def test_load_settings_webhook_url_is_masked_in_errors(tmp_path: Path) -> None:
    message = _error(tmp_path, '[[alerts.webhook]]\nurl = "ftp://example.com/T000/SECRETTOKEN"\n')
    assert "SECRETTOKEN" not in message
    assert "[[alerts.webhook]] #1 url = " in message and "must be an http(s) URL" in message


def test_load_settings_unreadable_or_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read .*missing\.toml"):
        load_settings(tmp_path / "missing.toml", environ={})
    with pytest.raises(ConfigError, match=r"cannot read .*: not valid TOML"):
        load_settings(_file(tmp_path, "[run\n"), environ={})


def test_load_settings_environment_overrides_the_file_and_options_override_both(
    tmp_path: Path,
) -> None:
    path = _file(tmp_path, '[ibkr]\nport = 4002\nclient_id = 3\n[run]\nsymbols = ["ACME"]\n')
    environ = {
        "IBKRFW_IBKR_PORT": "4001",
        "IBKRFW_RUN_SYMBOLS": "BOLT, CRUX",
        "IBKRFW_RUN_CANCEL_ON_STOP": "yes",
        "IBKRFW_MONITOR_STALE_AFTER_S": "60",
        "IBKRFW_DASHBOARD_TOKEN": "not-a-setting",  # the token's own variable is no setting
    }
    settings = load_settings(path, environ=environ, overrides={"ibkr": {"client_id": 9}})
    assert settings.ibkr.port == 4001  # environment over file
    assert settings.ibkr.client_id == 9  # overrides over file
    assert settings.run.symbols == ["BOLT", "CRUX"]
    assert settings.run.cancel_on_stop is True
    assert settings.monitor.stale_after_s == 60.0
    over = load_settings(path, environ=environ, overrides={"ibkr": {"port": 7496}})
    assert over.ibkr.port == 7496  # overrides over environment


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("IBKRFW_RUN_CANCEL_ON_STOP", "maybe",
         "IBKRFW_RUN_CANCEL_ON_STOP='maybe' is not true or false (or 1/0, yes/no): it sets "
         "[run] cancel_on_stop, e.g. IBKRFW_RUN_CANCEL_ON_STOP=false"),
        ("IBKRFW_MONITOR_STALE_AFTER_S", "soon",
         "IBKRFW_MONITOR_STALE_AFTER_S='soon' is not a number: it sets [monitor] stale_after_s"),
        ("IBKRFW_IBKR_PORT", "0", "IBKRFW_IBKR_PORT=0: [ibkr] port = 0: a port is a whole number"),
        ("IBKRFW_RUN_ON_MISMATCH", "ignore", 'IBKRFW_RUN_ON_MISMATCH=ignore: [run] on_mismatch = "ignore"'),
    ],
)  # fmt: skip
def test_load_settings_a_bad_environment_variable_is_named(
    variable: str, value: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ={variable: value})
    assert str(info.value).startswith(expected)


def test_ibkr_config_load_keeps_its_variables_and_reads_the_whole_file(tmp_path: Path) -> None:
    assert IBKRConfig.load(environ={"IBKRFW_IBKR_CLIENT_ID": "7"}).client_id == 7
    path = _file(tmp_path, '[ibkr]\nport = 4002\n[run]\nsymbols = "ACME"\n')
    with pytest.raises(ConfigError, match=r"\[run\] symbols = \"ACME\""):
        IBKRConfig.load(path, environ={})


def test_settings_from_tables_builds_the_deploy_guides_shape() -> None:
    settings = settings_from_tables({
        "alerts": {
            "quiet_s": 600,
            "email": {"host": "smtp.example.com", "sender": "a@x", "recipients": ["b@x"]},
            "webhook": [{"url": "https://hooks.slack.com/services/T/B/HOOKSECRET", "format": "slack"}],
        },
        "monitor": {"quiet": [["00:15", "01:45", "America/New_York"]]},
    })  # fmt: skip
    assert settings.alerts.quiet_s == 600.0
    assert settings.alerts.email is not None and settings.alerts.email.port == 587
    assert settings.alerts.webhook[0].url.reveal().endswith("/HOOKSECRET")
    assert "HOOKSECRET" not in repr(settings)
    assert settings.monitor.quiet == [("00:15", "01:45", "America/New_York")]


def test_settings_toml_masks_secrets_and_reads_back() -> None:
    import tomllib

    settings = settings_from_tables({
        "alerts": {
            "email": {"host": "h", "sender": "a@x", "recipients": ["b@x"], "username": "bot"},
            "webhook": [{"url": "https://hooks.slack.com/services/T0/B0/SLACKTOKEN"}],
        },
    })  # fmt: skip
    text = settings_toml(settings, environ={"IBKRFW_SMTP_PASSWORD": "hunter2-password"})
    assert "SLACKTOKEN" not in text and "hunter2-password" not in text
    assert 'password_env = "IBKRFW_SMTP_PASSWORD"  # the variable is set' in text
    assert 'url = "https://hooks.slack.com/***"' in text
    shown = tomllib.loads(text)
    assert shown["alerts"]["email"]["recipients"] == ["b@x"]
    assert shown["run"]["cancel_on_stop"] is False


def test_load_settings_a_missing_required_key_is_named(tmp_path: Path) -> None:
    message = _error(tmp_path, '[alerts.email]\nhost = "h"\nrecipients = ["a@x"]\n')
    assert message == "ibkrfw.toml: [alerts.email] sender: missing; it has no default: give it"
