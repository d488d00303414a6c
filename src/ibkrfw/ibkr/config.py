"""Connection settings for TWS or IB Gateway, from a TOML file and environment variables."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from typing import Any, Literal, final

import attrs

from ibkrfw.errors import ConfigError

__all__ = ["ENV_PREFIX", "IBKRConfig"]

ENV_PREFIX = "IBKRFW_IBKR_"
"""Environment variables ``IBKRFW_IBKR_HOST``, ``_PORT``, ``_CLIENT_ID``, ``_ACCOUNT``,
``_MODE``... override the file."""


def _positive(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise ConfigError(f"{attribute.name} must be positive, got {value!r}")


def _port(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not 0 < value < 65536:
        raise ConfigError(f"port must be in 1..65535, got {value!r}")


def _mode(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    if value not in ("paper", "live"):
        raise ConfigError(f"mode must be 'paper' or 'live', got {value!r}")


def _rate(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0 < value <= 50:
        raise ConfigError(f"IB allows at most 50 messages a second; got {value!r}")


@final
@attrs.frozen(kw_only=True)
class IBKRConfig:
    """Where and how to connect to TWS or IB Gateway.

    Paper trading is the default; live trading needs ``mode="live"``, and the account must then
    be a live one (paper account ids start with ``DU``; see :meth:`check_account`).

    Args:
        host: TWS or Gateway's address.
        port: 7497 (TWS paper, the default), 7496 (TWS live), 4002 / 4001 (Gateway).
        client_id: This connection's client id (unique among the connected clients).
        account: The account to trade; empty for the login's only account.
        mode: ``"paper"`` or ``"live"``.
        connect_timeout: Seconds to wait for ``nextValidId`` and ``managedAccounts``.
        request_timeout: Seconds to wait for the answer to a request.
        max_messages_per_second: Outgoing message budget (IB's limit is 50; 45 leaves room).

    Example:
        >>> IBKRConfig.load(environ={"IBKRFW_IBKR_PORT": "4002"}).port
        4002
    """

    host: str = "127.0.0.1"
    port: int = attrs.field(default=7497, validator=_port)
    client_id: int = 1
    account: str = ""
    mode: Literal["paper", "live"] = attrs.field(default="paper", validator=_mode)
    connect_timeout: float = attrs.field(default=10.0, validator=_positive)
    request_timeout: float = attrs.field(default=30.0, validator=_positive)
    max_messages_per_second: float = attrs.field(default=45.0, validator=_rate)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> IBKRConfig:
        """Read the ``[ibkr]`` table of a TOML file, then environment variables, then keywords.

        Args:
            path: A TOML file (``ibkrfw.toml``); none by default.
            environ: The environment to read (``os.environ`` by default).
            overrides: Settings given in code, which win over both.

        Raises:
            ConfigError: for an unreadable file, an unknown setting or a bad value.
        """
        settings: dict[str, Any] = {}
        if path is not None:
            try:
                with open(path, "rb") as handle:
                    table = tomllib.load(handle).get("ibkr", {})
            except (OSError, tomllib.TOMLDecodeError) as exc:
                raise ConfigError(f"cannot read {os.fspath(path)!r}: {exc}") from None
            if not isinstance(table, dict):
                raise ConfigError(f"{os.fspath(path)!r}: [ibkr] must be a table")
            settings.update(table)
        fields = {f.name: f for f in attrs.fields(cls)}
        env = os.environ if environ is None else environ
        for name, field in fields.items():
            text = env.get(ENV_PREFIX + name.upper())
            if text is not None:
                settings[name] = _convert(name, text, field.default)
        settings.update(overrides)
        unknown = sorted(set(settings) - set(fields))
        if unknown:
            raise ConfigError(f"unknown IBKR setting(s) {unknown}; known: {sorted(fields)}")
        try:
            return cls(**settings)
        except TypeError as exc:
            raise ConfigError(f"bad IBKR settings: {exc}") from None

    def check_account(self, account: str) -> None:
        """Refuse to trade a paper account as live, or a live account as paper.

        Raises:
            ConfigError: if the account does not match the mode.
        """
        paper = account.upper().startswith("DU")
        if self.mode == "live" and paper:
            raise ConfigError(f"account {account} is a paper account, and the mode is live")
        if self.mode == "paper" and not paper:
            raise ConfigError(
                f"account {account} is a live account, and the mode is paper: set mode='live' "
                "to trade it"
            )


def _convert(name: str, text: str, default: object) -> object:
    try:
        if isinstance(default, bool):
            return text.lower() in ("1", "true", "yes", "on")
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
    except ValueError:
        raise ConfigError(f"{ENV_PREFIX}{name.upper()}={text!r} is not a number") from None
    return text
