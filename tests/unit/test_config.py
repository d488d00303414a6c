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
        ("[risk]\nmax_loss = 0.05\n", "ibkrfw.toml: [risk] max_loss: unknown key"),
        ("[rsik]\nmax_loss = 0.05\n", "ibkrfw.toml: [rsik]: unknown table; did you mean [risk]?"),
        ("[limits]\nmax_loss = 0.05\n", "ibkrfw.toml: [limits]: unknown table; the tables: [ibkr], [run],"),
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
        ('[alerts]\nwebhook = { url = "https://x" }\n', "ibkrfw.toml: [alerts] webhook = (a table of 1 key): expected [[alerts.webhook]] tables"),
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


# --- issue 20's review: secrets in errors, values check passed and run refused, loose values --

_HOOK = "https://hooks.slack.com/services/T0LEAK/B0LEAK/SeCrEtT0KeN99"


@pytest.mark.parametrize(
    "text",
    [
        f'[alerts.webhook]\nurl = "{_HOOK}"\nformat = "slack"\n',
        f'[alerts]\nwebhook = "{_HOOK}"\n',
        f'[alerts]\nwebhook = ["{_HOOK}"]\n',
        f'[[alerts.webhook]]\nurl = ["{_HOOK}"]\n',
        f'[[alerts.webhook]]\nurl = "{_HOOK}"\nformat = "slak"\n',
        '[[alerts.webhook]]\nurl = "hooks.slack.com/services/T0LEAK/B0LEAK/SeCrEtT0KeN99"\n',
        f'[run]\nstrategy = ["{_HOOK}"]\n',
    ],
)
def test_a_webhook_url_is_masked_in_every_configuration_error(tmp_path: Path, text: str) -> None:
    message = _error(tmp_path, text)
    assert "SeCrEtT0KeN99" not in message and "T0LEAK" not in message


def test_a_webhook_written_as_a_list_of_strings_says_to_write_tables(tmp_path: Path) -> None:
    message = _error(tmp_path, f'[alerts]\nwebhook = ["{_HOOK}"]\n')
    assert message == (
        "ibkrfw.toml: [alerts] webhook = (a list of 1 item): expected [[alerts.webhook]] tables "
        'with url = "https://...", one table each, e.g. webhook = [{ url = "https://..." }]'
    )
    assert "0 =" not in message


def test_a_long_value_is_not_echoed_in_an_error(tmp_path: Path) -> None:
    names = ", ".join(f'"S{i}"' for i in range(200))
    message = _error(tmp_path, f"[run]\nstrategy = [{names}]\n")
    assert message.startswith("ibkrfw.toml: [run] strategy = (a list of 200 items): expected")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[dashboard]\nlisten = "a b c:80"\n', "[dashboard] listen = \"a b c:80\": its host 'a b c' is not an IP address or a host name"),
        ('[dashboard]\nlisten = "::1:8765"\n', '[dashboard] listen = "::1:8765": an IPv6 address goes in brackets, e.g. "[::1]:8765"'),
        ('[dashboard]\nlisten = "[nope]:8765"\n', "[nope] is not an IPv6 address"),
        ('[dashboard]\nlisten = "[::1]:0"\n', 'must be "[HOST:]PORT"'),
        ("[monitor]\nack_timeout_s = inf\n", "[monitor] ack_timeout_s = inf: must be a finite number"),
        ("[monitor]\nmax_lag_s = inf\n", "[monitor] max_lag_s = inf: must be a finite number"),
        ("[monitor]\nmin_free_mb = nan\n", "[monitor] min_free_mb = nan: must be a finite number"),
        ("[monitor]\nstale_after_s = inf\n", "[monitor] stale_after_s = inf: must be a finite number"),
        ("[monitor]\nheartbeat_timeout_s = inf\n", "heartbeat_timeout_s = inf: must be a finite number"),
        ("[monitor]\ndisconnect_after_s = inf\n", "disconnect_after_s = inf: must be a finite number"),
        ("[ibkr]\nconnect_timeout = inf\n", "[ibkr] connect_timeout = inf: must be a finite number"),
        ("[sandbox]\ncommission = nan\n", "[sandbox] commission = nan: must be a finite number"),
        ('[run]\nsymbols = ["ACME", "ACME"]\n', '[run] symbols = ["ACME", "ACME"]: has "ACME" twice'),
        ('[run]\nsymbols = ["ACME", " BOLT"]\n', '" BOLT" has spaces around it: write "BOLT"'),
        ('[run]\nsymbols = ["ACME", ""]\n', "has an empty name"),
        ('[optimize]\nsymbols = ["ACME", "ACME"]\n', '[optimize] symbols = ["ACME", "ACME"]: has "ACME" twice'),
        ('[run]\nbar_size = "0min"\n', "[run] bar_size = \"0min\": bar size '0min' must be a positive number"),
        ('[run]\nbar_size = "fortnight"\n', "[run] bar_size = \"fortnight\": bar size 'fortnight' is not understood"),
        ("[optimize.grid]\nfast = []\n", "fast = []: give at least one value"),
        ('[run]\nstate_dir = ""\n', '[run] state_dir = "": expected a path as a string, not empty'),
        ('[ibkr]\nhost = ""\n', '[ibkr] host = "": is empty: give an address'),
        ('[ibkr]\nhost = "tws host"\n', "is not an IP address or a host name"),
        ("[ibkr]\nclient_id = -1\n", "[ibkr] client_id = -1: IB's client ids are whole numbers from 0 to 2147483647"),
        ("[ibkr]\nclient_id = 2147483648\n", "from 0 to 2147483647"),
        ("[monitor]\nmax_inbox = 10001\n", "[monitor] max_inbox = 10001: the engine's inbox holds at most 10000 events"),
        ('[[alerts.webhook]]\nurl = "https://hooks.slack.com/***"\n', "is the masked form `config show` prints: give the real URL"),
    ],
)  # fmt: skip
def test_a_value_a_run_would_refuse_or_ignore_is_refused_by_the_model(
    tmp_path: Path, text: str, expected: str
) -> None:
    assert expected in _error(tmp_path, text)


@pytest.mark.parametrize(
    "listen", ["[::1]:8765", "127.0.0.1:8765", "8765", ":8765", "localhost:8765", "gw.lan:80"]
)
def test_listen_accepts_the_forms_the_dashboard_prints(tmp_path: Path, listen: str) -> None:
    settings = load_settings(_file(tmp_path, f'[dashboard]\nlisten = "{listen}"\n'), environ={})
    assert settings.dashboard.listen == listen


def test_split_listen_gives_an_ipv6_host_without_its_brackets() -> None:
    from ibkrfw.config import split_listen

    assert split_listen("[::1]:8765") == ("::1", 8765)
    assert split_listen(":8765") == ("127.0.0.1", 8765)
    assert split_listen("0.0.0.0:80") == ("0.0.0.0", 80)
    with pytest.raises(ValueError, match="brackets"):
        split_listen("::1:8765")


def test_limits_that_hold_are_accepted(tmp_path: Path) -> None:
    text = "[ibkr]\nclient_id = 2147483647\n[monitor]\nmax_inbox = 10000\n"
    settings = load_settings(_file(tmp_path, text), environ={})
    assert settings.ibkr.client_id == 2**31 - 1 and settings.monitor.max_inbox == 10_000


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("IBKRFW_MONITOR_MIN_FREE_MB", "nan", "IBKRFW_MONITOR_MIN_FREE_MB=nan: [monitor] min_free_mb = nan: must be a finite number"),
        ("IBKRFW_MONITOR_STALE_AFTER_S", "1e999", "[monitor] stale_after_s = inf: must be a finite number"),
        ("IBKRFW_RUN_STATE_DIR", "", "IBKRFW_RUN_STATE_DIR is set but empty: unset it or give a value (it sets [run] state_dir)"),
        ("IBKRFW_IBKR_HOST", "", "IBKRFW_IBKR_HOST is set but empty: unset it or give a value"),
        ("IBKRFW_RUN_SYMBOLS", "ACME,ACME", '[run] symbols = ["ACME", "ACME"]: has "ACME" twice'),
        ("IBKRFW_RUN_SYMBOLZ", "X", "IBKRFW_RUN_SYMBOLZ: no such setting in [run]; did you mean IBKRFW_RUN_SYMBOLS?"),
        ("IBKRFW_RUN_MAX_LOSS", "5", "IBKRFW_RUN_MAX_LOSS: no such setting in [run]; the variables of [run]: IBKRFW_RUN_STRATEGY"),
        ("IBKRFW_FOO_BAR", "1", "IBKRFW_FOO_BAR: not a variable of ibkrfw (IBKRFW_<TABLE>_<KEY>, the tables: ibkr, run,"),
        ("IBKRFW_DASHBORD_TOKEN", "x", "did you mean IBKRFW_DASHBOARD_TOKEN?"),
        ("IBKRFW_RUN_PARAMETERS", "fast=5", "IBKRFW_RUN_PARAMETERS: [run] parameters cannot be set from the environment"),
        ("IBKRFW_IBKR_PORT", f"{_HOOK}", "IBKRFW_IBKR_PORT='https://hooks.slack.com/***' is not a whole number"),
    ],
)  # fmt: skip
def test_a_wrong_environment_variable_is_refused_by_name(
    tmp_path: Path, name: str, value: str, expected: str
) -> None:
    message = _error(tmp_path, "[run]\n", environ={name: value})
    assert expected in message
    assert "SeCrEtT0KeN99" not in message


def test_the_variables_ibkrfw_reads_elsewhere_are_not_refused(tmp_path: Path) -> None:
    environ = {
        "IBKRFW_DASHBOARD_TOKEN": "t", "IBKRFW_SMTP_PASSWORD": "p",
        "IBKRFW_PROGRESS_MIN_BARS": "5", "IBKRFW_HOOK_TOKEN": "h", "IBKRFW_MAIL_PW": "m",
        "PATH": "/bin",
    }  # fmt: skip
    text = (
        '[alerts.email]\nhost = "smtp.example.com"\nsender = "a@example.com"\n'
        'recipients = ["b@example.com"]\npassword_env = "IBKRFW_MAIL_PW"\n'
        '[[alerts.webhook]]\nurl = "https://example.com/hook"\ntoken_env = "IBKRFW_HOOK_TOKEN"\n'
    )
    load_settings(_file(tmp_path, text), environ=environ)  # no error


# --- [risk] and [protection] ----------------------------------------------------------------

_RISK = """\
[risk]
max_order_quantity = 500
max_order_value = 25000
max_position_percent = 0.2
shrink = true
max_leverage = 1.5
initial_margin = 0.5
max_orders = 10
orders_window_s = 30
restricted = ["BOLT"]
trading_hours = ["09:35", "15:55", "America/New_York"]
max_data_age_s = 600
daily_loss_percent = 0.02
max_drawdown = 0.15
maintenance_margin = 0.25

[protection]
stop_loss_percent = 0.05
trailing = true
take_profit_atr = 3
atr_period = 20
"""


def test_the_risk_table_builds_each_rule_and_monitor_it_names(tmp_path: Path) -> None:
    from decimal import Decimal

    from ibkrfw import risk

    settings = load_settings(_file(tmp_path, _RISK), environ={})
    rules = settings.risk.rules()
    assert [type(r).__name__ for r in rules] == [
        "RestrictedList", "TradingHours", "StaleDataGuard", "MaxOrderQuantity",
        "MaxOrderNotional", "MaxPosition", "ExposureLimit", "MarginCheck", "OrderRateLimit",
    ]  # fmt: skip
    quantity = rules[3]
    assert isinstance(quantity, risk.MaxOrderQuantity)
    assert quantity.limit == Decimal(500) and quantity.shrink
    position = rules[5]
    assert isinstance(position, risk.MaxPosition) and position.percent_of_equity == 0.2
    rate = rules[-1]
    assert isinstance(rate, risk.OrderRateLimit) and rate.max_orders == 10
    monitors = settings.risk.monitors()
    assert [type(m).__name__ for m in monitors] == [
        "DailyLossLimit", "MaxDrawdownKillSwitch", "MaintenanceMargin",
    ]  # fmt: skip
    protection = settings.protection.protection()
    assert protection is not None and protection.instruments is None
    assert protection.stop_loss == risk.StopLoss.trailing(percent=0.05)
    assert protection.take_profit == risk.TakeProfit.atr(3.0, period=20)


def test_no_risk_or_protection_table_sets_nothing() -> None:
    settings = Settings()
    assert settings.risk.rules() == [] and settings.risk.monitors() == []
    assert settings.protection.protection() is None


def test_the_risk_tables_show_and_read_back(tmp_path: Path) -> None:
    settings = load_settings(_file(tmp_path, _RISK), environ={})
    shown = settings_toml(settings, environ={})
    assert "[risk]\n" in shown and "max_drawdown = 0.15" in shown
    assert "stop_loss_percent = 0.05" in shown and "# stop_loss_amount: not set" in shown
    assert load_settings(_file(tmp_path, shown), environ={}) == settings


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[risk]\nmax_order_value = "25k"\n', '[risk] max_order_value = "25k": expected a number, e.g. max_order_value = 10.0'),
        ("[risk]\nmax_orders = 2.5\n", "[risk] max_orders = 2.5: expected a whole number"),
        ('[risk]\nshrink = "yes"\n', '[risk] shrink = "yes": expected true or false'),
        ('[risk]\nrestricted = "BOLT"\n', '[risk] restricted = "BOLT": expected a list of strings, e.g. restricted = ["BOLT"]'),
        ("[risk]\nmax_order_valu = 5\n", "[risk] max_order_valu: unknown key; did you mean 'max_order_value'?"),
        ("[risks]\nmax_drawdown = 0.1\n", "[risks]: unknown table; did you mean [risk]?"),
        ("[risk]\nmax_order_value = 0\n", "[risk] max_order_value = 0.0: must be above 0"),
        ("[risk]\nmax_orders = -3\n", "[risk] max_orders = -3: must be above 0"),
        ("[risk]\nmax_drawdown = 1.0\n", "[risk] max_drawdown = 1.0: must be a fraction above 0 and below 1"),
        ("[risk]\ndaily_loss_percent = 2\n", "[risk] daily_loss_percent = 2.0: must be a fraction above 0 and at most 1"),
        ("[risk]\ninitial_margin = 1.5\n", "[risk] initial_margin = 1.5: must be a fraction"),
        ('[risk]\ndaily_loss_tz = "Mars/Olympus"\n', '[risk] daily_loss_tz = "Mars/Olympus": is not a time zone name'),
        ('[risk]\ntrading_hours = ["9:35", "16:00"]\n', '[risk] trading_hours = ["9:35", "16:00"]: must be ["HH:MM", "HH:MM", "Zone"]'),
        ('[risk]\ntrading_hours = ["10:00", "10:00", "UTC"]\n', "needs a start different from its end"),
        ('[risk]\nrestricted = ["BOLT", "BOLT"]\n', '[risk] restricted = ["BOLT", "BOLT"]: has "BOLT" twice'),
        ("[risk]\nmax_order_value = nan\n", "[risk] max_order_value = nan: must be a finite number"),
        ("[protection]\nstop_loss_percent = 1.5\n", "[protection] stop_loss_percent = 1.5: must be a fraction above 0 and below 1"),
        ("[protection]\nstop_loss_percent = 0.05\nstop_loss_atr = 2\n", "[protection] stop_loss_atr = 2.0: give one of stop_loss_percent and stop_loss_atr, not both"),
        ("[protection]\ntake_profit_amount = 5\ntake_profit_percent = 0.1\n", "give one of take_profit_percent and take_profit_amount, not both"),
        ("[protection]\ntrailing = true\n", "[protection] trailing = true: needs a stop"),
        ("[protection]\nstop_loss_atr = 2\natr_period = 0\n", "[protection] atr_period = 0: must be above 0"),
        ("[protection]\nstop_los_percent = 0.05\n", "[protection] stop_los_percent: unknown key; did you mean 'stop_loss_percent'?"),
        ("[protection]\nsymbols = []\nstop_loss_percent = 0.05\n", "[protection] symbols = []: give symbols"),
    ],
)  # fmt: skip
def test_a_wrong_risk_or_protection_key_is_named_with_its_fix(
    tmp_path: Path, text: str, expected: str
) -> None:
    message = _error(tmp_path, text)
    assert message.startswith("ibkrfw.toml: "), message
    assert expected in message, message


def test_risk_keys_come_from_the_environment_too(tmp_path: Path) -> None:
    environ = {"IBKRFW_RISK_MAX_DRAWDOWN": "0.2", "IBKRFW_PROTECTION_STOP_LOSS_PERCENT": "0.04"}
    settings = load_settings(environ=environ)
    assert settings.risk.max_drawdown == 0.2
    assert settings.protection.stop_loss_percent == 0.04
    environ = {"IBKRFW_RISK_MAX_DRAWDOWN": "lots"}
    with pytest.raises(ConfigError, match="IBKRFW_RISK_MAX_DRAWDOWN='lots' is not a number"):
        load_settings(environ=environ)


def test_protection_symbols_pick_among_the_runs_instruments(tmp_path: Path) -> None:
    from ibkrfw import Stock

    path = _file(tmp_path, '[protection]\nstop_loss_amount = 2\nsymbols = ["ACME"]\n')
    settings = load_settings(path, environ={})
    acme, bolt = Stock("ACME"), Stock("BOLT")
    protection = settings.protection.protection([acme, bolt])
    assert protection is not None and protection.covers(acme) and not protection.covers(bolt)
    with pytest.raises(
        ConfigError, match=r'\[protection\] symbols = \["ACME"\]: \["ACME"\] not traded'
    ):
        settings.protection.protection([bolt])


@pytest.mark.parametrize(
    ("table", "key", "hint"),
    [
        ("risk", "max_loss", "daily_loss (money lost in a day)"),
        ("risk", "max_daily_loss", "max_drawdown"),
        ("risk", "stop_loss", "[protection] stop_loss_percent"),
        ("risk", "stop_loss_percent", "a key of [protection], not of [risk]; move it there"),
        ("protection", "max_drawdown", "a key of [risk], not of [protection]; move it there"),
        ("protection", "take_profit", "take_profit_percent"),
        ("risk", "max_gros", "did you mean 'max_gross'?"),
    ],
)
def test_an_unknown_key_is_explained_by_what_it_likely_meant(
    table: str, key: str, hint: str
) -> None:
    # spelling alone misleads for limits named otherwise ('max_loss' is not 'max_gross')
    with pytest.raises(ConfigError) as caught:
        settings_from_tables({table: {key: 1}})
    assert f"[{table}] {key}" in str(caught.value) and hint in str(caught.value)
