from __future__ import annotations

from pathlib import Path

import pytest

from ibkrfw import ConfigError
from ibkrfw.ibkr import IBKRConfig


def test_paper_on_localhost_by_default() -> None:
    config = IBKRConfig.load(environ={})
    assert (config.host, config.port, config.client_id, config.mode) == (
        "127.0.0.1",
        7497,
        1,
        "paper",
    )


def test_file_then_environment_then_code(tmp_path: Path) -> None:
    path = tmp_path / "ibkrfw.toml"
    path.write_text('[ibkr]\nport = 4002\nclient_id = 5\naccount = "DU111"\n')
    config = IBKRConfig.load(path, environ={"IBKRFW_IBKR_CLIENT_ID": "9"}, account="DU222")
    assert (config.port, config.client_id, config.account) == (4002, 9, "DU222")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"port": 0}, r"\[ibkr\] port = 0: a port is a whole number from 1 to 65535"),
        ({"mode": "real"}, r'\[ibkr\] mode = "real": expected one of "paper", "live"'),
        ({"connect_timeout": 0}, r"\[ibkr\] connect_timeout = 0.0: must be above 0"),
        ({"max_messages_per_second": 60}, "at most 50 messages a second"),
        ({"colour": "blue"}, r"\[ibkr\] colour: unknown key; the keys of \[ibkr\]: host, port"),
    ],
)
def test_bad_settings_are_refused(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        IBKRConfig.load(environ={}, **settings)


def test_bad_files_and_variables(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[ibkr\n")
    with pytest.raises(ConfigError, match="cannot read"):
        IBKRConfig.load(path, environ={})
    with pytest.raises(
        ConfigError, match=r"IBKRFW_IBKR_PORT='x' is not a whole number: it sets \[ibkr\] port"
    ):
        IBKRConfig.load(environ={"IBKRFW_IBKR_PORT": "x"})


def test_paper_and_live_accounts_are_never_mixed_up() -> None:
    paper, live = IBKRConfig.load(environ={}), IBKRConfig.load(environ={}, mode="live", port=7496)
    paper.check_account("DU1234567")
    live.check_account("U7654321")
    with pytest.raises(ConfigError, match="U7654321 is a live account, and the mode is paper"):
        paper.check_account("U7654321")
    with pytest.raises(ConfigError, match="DU1234567 is a paper account, and the mode is live"):
        live.check_account("DU1234567")
