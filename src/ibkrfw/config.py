"""One typed configuration model for ``ibkrfw run``, ``ibkrfw optimize`` and :class:`IBKRConfig`.

A configuration file (``ibkrfw.toml``) has these tables, each an attrs class here:
``[ibkr]`` (:class:`~ibkrfw.ibkr.IBKRConfig`), ``[run]`` (:class:`RunSettings`),
``[sandbox]`` (:class:`SandboxSettings`), ``[alerts]`` (:class:`AlertsSettings`, with
``[alerts.email]`` and ``[[alerts.webhook]]``), ``[monitor]`` (:class:`MonitorSettings`),
``[summary]`` (:class:`SummarySettings`), ``[dashboard]`` (:class:`DashboardSettings`),
``[risk]`` (:class:`RiskSettings`), ``[protection]`` (:class:`ProtectionSettings`) and
``[optimize]`` (:class:`OptimizeSettings`).

:func:`load_settings` reads a file into :class:`Settings`: defaults, then the file, then the
environment (``IBKRFW_<TABLE>_<KEY>``), then overrides given in code (the command line's
options). Types are strict, as written in TOML: a string is never taken for a list
(``symbols = "ACME"``) or a bool (``cancel_on_stop = "false"``). Unknown tables and keys are
refused with the nearest valid name. Every problem of a file is reported at once, in one
:class:`~ibkrfw.ConfigError`, each naming the file, the table, the key, the value given and
what to write instead.

The structuring is cattrs' (attrs-native, with extra keys forbidden); the hooks below make it
strict, and :func:`_problems` turns its errors into sentences.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import re
import tomllib
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs
import cattrs
from cattrs.errors import (
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
)

from ibkrfw._net import is_loopback
from ibkrfw._redact import MASK, Secret, mask_url
from ibkrfw.data.barsize import normalize_bar_size
from ibkrfw.errors import ConfigError

if TYPE_CHECKING:
    from ibkrfw.model.instruments import Instrument
    from ibkrfw.risk.monitor import RiskMonitor
    from ibkrfw.risk.protect import Protection
    from ibkrfw.risk.rule import RiskRule

__all__ = [
    "AlertsSettings",
    "DashboardSettings",
    "ENV_PREFIX",
    "EmailSettings",
    "IBKRConfig",
    "MonitorSettings",
    "OptimizeSettings",
    "ProtectionSettings",
    "RiskSettings",
    "RunSettings",
    "SandboxSettings",
    "Settings",
    "SummarySettings",
    "WebhookSettings",
    "load_settings",
    "settings_from_tables",
    "settings_toml",
    "split_listen",
]

ENV_PREFIX: Final = "IBKRFW_"
"""Environment variables ``IBKRFW_<TABLE>_<KEY>`` (``IBKRFW_RUN_STATE_DIR``,
``IBKRFW_MONITOR_STALE_AFTER_S``...) override the file's settings."""

Scalar = str | int | float | bool
"""A TOML value that is not a table or a list: a strategy parameter's value."""


# --- the checks fields carry (metadata "check": value -> problem or None) -------------------


def _positive(value: float | None) -> str | None:
    if value is not None and not value > 0:
        return "must be above 0"
    return None


def _fraction(value: float | None) -> str | None:
    if value is not None and not 0 < value <= 1:
        return "must be a fraction above 0 and at most 1, e.g. 0.1 for 10%"
    return None


def _not_negative(value: float | None) -> str | None:
    if value is not None and value < 0:
        return "must be 0 or more"
    return None


def _port(value: int) -> str | None:
    if not 0 < value < 65536:
        return "a port is a whole number from 1 to 65535"
    return None


def _hh_mm(value: str) -> str | None:
    hours, sep, minutes = value.partition(":")
    if not (sep and hours.isdigit() and minutes.isdigit()) or not (
        int(hours) < 24 and int(minutes) < 60 and len(minutes) == 2
    ):
        return 'must be a time of day as "HH:MM", e.g. "16:30"'
    return None


def _zone(value: str) -> str | None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        return 'is not a time zone name, e.g. "America/New_York"'
    return None


def _names(value: Sequence[str] | None) -> str | None:
    if value is not None and any(not name.strip() for name in value):
        return 'has an empty name: give names, e.g. ["ACME", "BOLT"]'
    return None


def _directory(value: Path) -> str | None:
    """A directory that exists, or that can be created (its nearest existing parent is one).

    The default (``ibkrfw-state``, in the working directory) is checked by ``ibkrfw run`` and
    ``ibkrfw config check``, which use it (see :func:`_check_state_dir`), not by every reader
    of the file: ``ibkrfw download`` in a read-only folder has no state to keep.
    """
    if value == _DEFAULT_STATE_DIR:
        return None
    return _state_dir_problem(value)


_DEFAULT_STATE_DIR: Final = Path("ibkrfw-state")


def _check_state_dir(settings: Settings, source: str) -> None:
    """Refuse a ``[run] state_dir`` that is not a directory and cannot be made one.

    Raises:
        ConfigError: naming the key, its value and why.
    """
    why = _state_dir_problem(settings.run.state_dir)
    if why is not None:
        raise ConfigError(f"{source}: [run] state_dir = {_toml(settings.run.state_dir)}: {why}")


def _state_dir_problem(value: Path) -> str | None:
    if value.exists():
        return None if value.is_dir() else "exists and is not a directory: give a directory"
    parent = value.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        return f"cannot be created: {str(parent)!r} is not a directory"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot be created: no permission to write in {str(parent)!r}"
    return None


def _file(value: Path | None) -> str | None:
    if value is not None and not value.is_file():
        return "is not a file" if value.exists() else "does not exist"
    return None


_HOSTNAME: Final = re.compile(
    r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?$"
)


def _host_problem(host: str) -> str | None:
    """Why ``host`` is neither an IP address nor a plausible host name (None: it is one)."""
    if not host:
        return 'is empty: give an address, e.g. "127.0.0.1"'
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if len(host) > 253 or not _HOSTNAME.match(host):
            return 'is not an IP address or a host name, e.g. "127.0.0.1" or "gateway.lan"'
    return None


def split_listen(text: str) -> tuple[str, int]:
    """The host and port of a ``"[HOST:]PORT"`` address; an IPv6 host in brackets.

    ``"8765"`` and ``":8765"`` are 127.0.0.1 (loopback); ``"[::1]:8765"`` is IPv6's
    loopback, given without its brackets (as sockets take it).

    Raises:
        ValueError: saying what is wrong, and the form to write.

    Example:
        >>> split_listen("[::1]:8765"), split_listen("8765")
        (('::1', 8765), ('127.0.0.1', 8765))
    """
    form = 'must be "[HOST:]PORT", e.g. "127.0.0.1:8765" or "[::1]:8765"'
    if text.startswith("["):
        inside, bracket, rest = text[1:].partition("]")
        if not bracket or not rest.startswith(":"):
            raise ValueError(form)
        host, port = inside, rest[1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"[{host}] is not an IPv6 address; {form}") from None
    else:
        host, _, port = text.rpartition(":")
        if ":" in host:
            raise ValueError(f'an IPv6 address goes in brackets, e.g. "[::1]:8765"; {form}')
        why = _host_problem(host) if host else None
        if why is not None:
            raise ValueError(f"its host {host!r} {why}")
    if not (port.isascii() and port.isdigit()) or _port(int(port)) is not None:
        raise ValueError(form)
    return host or "127.0.0.1", int(port)


def _listen(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        split_listen(value)
    except ValueError as exc:
        return str(exc)
    return None


def _host(value: str) -> str | None:
    return _host_problem(value)


def _symbols(value: Sequence[str] | None) -> str | None:
    """Symbols: none empty, none with spaces around it, none given twice."""
    if value is None:
        return None
    why = _names(value)
    if why is not None:
        return why
    for name in value:
        if name != name.strip():
            return f"{_toml(name)} has spaces around it: write {_toml(name.strip())}"
    seen: set[str] = set()
    for name in value:
        if name in seen:
            return f"has {_toml(name)} twice: give each symbol once"
        seen.add(name)
    return None


def _scheduler(value: str | None) -> str | None:
    from ibkrfw.optimize.cluster import address_problem

    return None if value is None else address_problem(value)


def _nonempty(value: str | None) -> str | None:
    if value is not None and not value.strip():
        return "give a path, or leave the key out"
    return None


def _store_uri(value: str | None) -> str | None:
    if value is None:
        return None
    if not value.strip():
        return "give a path or URI, or leave the key out"
    authority = value.partition("://")[2].partition("/")[0] if "://" in value else ""
    if "@" in authority:
        return (
            "credentials do not go in the store's URI (they would be seen in files, shell "
            "history and process lists): set them in the environment (AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY for s3://) or in fsspec's configuration"
        )
    return None


def _time_text(value: str | None) -> str | None:
    if value is None:
        return None
    import pandas as pd

    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError):
        stamp = None
    if stamp is None or pd.isna(stamp):
        return 'is not a time: give a date or a time, e.g. "2020-01-01"'
    return None


def _bar_size(value: str) -> str | None:
    try:
        normalize_bar_size(value)
    except ConfigError as exc:
        return str(exc)
    return None


def _client_id(value: int) -> str | None:
    if not 0 <= value <= _MAX_CLIENT_ID:
        return f"IB's client ids are whole numbers from 0 to {_MAX_CLIENT_ID}"
    return None


_MAX_CLIENT_ID: Final = 2**31 - 1  # IB sends it as a 32-bit signed integer
_INBOX_BOUND: Final = 10_000  # the engine's inbox bound in ibkrfw run (Engine's default)


def _max_inbox(value: int | None) -> str | None:
    if value is None:
        return None
    if not value > 0:
        return "must be above 0"
    if value > _INBOX_BOUND:
        return (
            f"the engine's inbox holds at most {_INBOX_BOUND} events, so this alert could "
            f"never fire: give at most {_INBOX_BOUND}"
        )
    return None


def _grid(value: Mapping[str, object]) -> str | None:
    for name, values in value.items():
        if isinstance(values, list) and not values:
            return f"{name} = []: give at least one value, e.g. {name} = [5, 10]"
    return None


def _field(
    default: Any, help: str, check: Callable[[Any], str | None] | None = None, **more: Any
) -> Any:
    """An attrs field with its one-line help (documented from it) and its check."""
    metadata: dict[str, Any] = {"help": help, **more}
    if check is not None:
        metadata["check"] = check
    if default is _REQUIRED:
        return attrs.field(metadata=metadata)
    return attrs.field(default=default, metadata=metadata)


_REQUIRED: Final = object()


class _Problems(ConfigError):  # noqa: N818 (a ConfigError carrying its parts)
    """The problems of one table's values: (key, value, what is wrong) each."""

    def __init__(self, problems: list[tuple[str, object, str]]) -> None:
        self.problems = problems
        super().__init__(
            "; ".join(f"{key} = {_toml(value)}: {why}" for key, value, why in problems)
        )


def _check(self: Any) -> None:
    """Run the fields' checks, and the class's own (``_more``), raising every problem at once."""
    problems: list[tuple[str, object, str]] = []
    for field in attrs.fields(type(self)):
        check = field.metadata.get("check")
        value = getattr(self, field.name)
        if isinstance(value, float) and not math.isfinite(value):  # every float field
            problems.append((field.name, value, "must be a finite number"))
            continue
        why = check(value) if check is not None else None
        if why is None and typing.get_origin(field.type) is Literal:
            choices = typing.get_args(field.type)
            if value not in choices:
                why = "must be one of " + ", ".join(_toml(c) for c in choices)
        if why is not None:
            problems.append((field.name, value, why))
    more = getattr(self, "_more", None)
    if more is not None:
        problems.extend(more())
    if problems:
        raise _Problems(problems)


# --- the tables ----------------------------------------------------------------------------


def _mode(value: str) -> str | None:
    return None if value in ("paper", "live") else 'must be "paper" or "live"'


def _rate(value: float) -> str | None:
    if not 0 < value <= 50:
        return "IB allows at most 50 messages a second: give a number above 0, at most 50"
    return None


@final
@attrs.frozen(kw_only=True)
class IBKRConfig:
    """Where and how to connect to TWS or IB Gateway: the ``[ibkr]`` table.

    Paper trading is the default; live trading needs ``mode="live"``, and the account must then
    be a live one (paper account ids start with ``DU``; see :meth:`check_account`). Also
    importable as :class:`ibkrfw.ibkr.IBKRConfig`.

    Args:
        host: TWS or Gateway's address.
        port: 7497 (TWS paper, the default), 7496 (TWS live), 4002 / 4001 (Gateway).
        client_id: This connection's client id (unique among the connected clients).
        account: The account to trade; empty for the login's only account.
        mode: ``"paper"`` or ``"live"``.
        connect_timeout: Seconds to wait for ``nextValidId`` and ``managedAccounts``.
        request_timeout: Seconds to wait for the answer to a request.
        max_messages_per_second: Outgoing message budget (IB's limit is 50; 45 leaves room).

    Raises:
        ConfigError: for a value out of its range, naming each.

    Example:
        >>> IBKRConfig.load(environ={"IBKRFW_IBKR_PORT": "4002"}).port
        4002
    """

    host: str = _field("127.0.0.1", "TWS or IB Gateway's address", _host)
    port: int = _field(
        7497, "7497 TWS paper, 7496 TWS live, 4002 / 4001 Gateway paper / live", _port
    )
    client_id: int = _field(
        1,
        "this connection's API client id (unique among connected clients), 0 to 2**31-1",
        _client_id,
    )
    account: str = _field("", "the account to trade; empty for the login's only account")
    mode: Literal["paper", "live"] = _field(
        "paper", "paper or live (ibkrfw run: --mode wins)", _mode
    )
    connect_timeout: float = _field(
        10.0, "seconds to wait for the connection's handshake", _positive
    )
    request_timeout: float = _field(30.0, "seconds to wait for the answer to a request", _positive)
    max_messages_per_second: float = _field(
        45.0, "outgoing message budget (IB's limit is 50)", _rate
    )

    def __attrs_post_init__(self) -> None:
        _check(self)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> IBKRConfig:
        """Read the ``[ibkr]`` table of a TOML file, then environment variables, then keywords.

        The whole file is checked (see :func:`~ibkrfw.config.load_settings`): a file with a
        wrong table or key anywhere is refused.

        Args:
            path: A TOML file (``ibkrfw.toml``); none by default.
            environ: The environment to read (``os.environ`` by default): ``IBKRFW_IBKR_PORT``...
            overrides: Settings given in code, which win over both.

        Raises:
            ConfigError: for an unreadable file, an unknown setting or a bad value.
        """
        return load_settings(path, environ=environ, overrides={"ibkr": overrides}).ibkr

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


@final
@attrs.frozen(kw_only=True)
class RunSettings:
    """The ``[run]`` table: what ``ibkrfw run`` trades, and how it starts and stops."""

    strategy: str = _field("", "'module:Class' of a Strategy subclass, or a built-in name")
    symbols: list[str] = _field(attrs.Factory(list), "the stock symbols to trade", _symbols)
    bar_size: str = _field(
        "1min", "the strategy's bar size (5s: IB's own real-time bars)", _bar_size
    )
    state_dir: Path = _field(
        _DEFAULT_STATE_DIR, "where order ids, the journal and summaries are kept", _directory
    )
    cancel_on_stop: bool = _field(
        False, "cancel working orders, protective GTC stops included, when stopping"
    )
    on_mismatch: Literal["refuse", "adopt"] = _field(
        "refuse", "an account the journal cannot explain: refuse to start, or adopt it"
    )
    parameters: dict[str, Scalar] = _field(
        attrs.Factory(dict), "the strategy's parameters ([run.parameters]), NAME = VALUE"
    )

    def __attrs_post_init__(self) -> None:
        _check(self)


@final
@attrs.frozen(kw_only=True)
class SandboxSettings:
    """The ``[sandbox]`` table: the simulator's costs and rules for ``ibkrfw run --sandbox``."""

    cash: float = _field(100_000, "starting cash (--cash overrides it)", _positive)
    commission: str | float = _field(
        "none", '"ibkr_fixed", "ibkr_tiered", "none", or a number: that much per share'
    )
    slippage_bps: float | None = _field(
        None, "a fixed slippage, in basis points of the price", _not_negative
    )
    spread_bps: float | None = _field(
        None, "half of this spread, or of the quote's, is paid on each fill", _not_negative
    )
    volume_limit: float | None = _field(
        None, "the largest fraction of a bar's volume one order may take", _fraction, example="0.1"
    )
    fill_timing: Literal["next_bar", "this_close"] = _field(
        "next_bar", "fill from the next bar on, or at this bar's close"
    )
    fill_on: Literal["bars", "quotes"] = _field("bars", "match orders on bars or on quotes")
    account: Literal["margin", "cash"] = _field("margin", "a margin or a cash account")

    def __attrs_post_init__(self) -> None:
        _check(self)

    def _more(self) -> list[tuple[str, object, str]]:
        problems: list[tuple[str, object, str]] = []
        if isinstance(self.commission, str):
            if self.commission not in ("ibkr_fixed", "ibkr_tiered", "none"):
                why = 'must be "ibkr_fixed", "ibkr_tiered", "none", or a number, e.g. 0.005'
                problems.append(("commission", self.commission, why))
        elif self.commission < 0:
            problems.append(("commission", self.commission, "must be 0 or more"))
        if self.slippage_bps is not None and self.spread_bps is not None:
            problems.append(
                ("spread_bps", self.spread_bps, "give slippage_bps or spread_bps, not both")
            )
        return problems


@final
@attrs.frozen(kw_only=True)
class EmailSettings:
    """The ``[alerts.email]`` table: alerts by email (SMTP). The password is never inline."""

    host: str = _field(_REQUIRED, "the SMTP server")
    port: int = _field(587, "its port (587: STARTTLS submission)", _port)
    sender: str = _field(_REQUIRED, "the From address")
    recipients: list[str] = _field(_REQUIRED, "the To addresses", _names)
    username: str | None = _field(None, "the login (none: no login)")
    password_env: str | None = _field(
        "IBKRFW_SMTP_PASSWORD", "the environment variable holding the password", secret_env=True
    )
    password_file: Path | None = _field(None, "a file whose first line is the password", _file)
    starttls: bool = _field(True, "upgrade the connection with STARTTLS before logging in")
    timeout: float = _field(10.0, "seconds to wait for the server", _positive)
    subject_prefix: str = _field("[ibkrfw] ", "put before each subject")

    def __attrs_post_init__(self) -> None:
        _check(self)

    def _more(self) -> list[tuple[str, object, str]]:
        if not self.recipients:
            return [
                (
                    "recipients",
                    self.recipients,
                    'needs at least one address, e.g. ["me@example.com"]',
                )
            ]
        if self.username and not self.starttls and not is_loopback(self.host):
            return [
                (
                    "starttls",
                    self.starttls,
                    f"a login to {self.host} without STARTTLS would send the password in clear: "
                    'set starttls = true, or send through a relay on host = "127.0.0.1", or '
                    "drop the username",
                )
            ]
        return []


WebhookFormat = Literal["json", "slack", "discord", "sms"]


@final
@attrs.frozen(kw_only=True)
class WebhookSettings:
    """One ``[[alerts.webhook]]`` table: alerts posted to a URL (Slack, Discord, an SMS gateway).

    The URL is a secret (Slack's and Discord's carry their token): it is kept as a
    ``Secret`` and shown masked.
    """

    url: Secret = _field(_REQUIRED, "where to post (a secret: shown masked)", secret=True)
    format: WebhookFormat = _field("json", "the body's shape: json, slack, discord or sms")
    token_env: str | None = _field(
        None, "the environment variable holding a bearer token", secret_env=True
    )
    sms_to: str | None = _field(None, 'the phone number, for format = "sms"')
    timeout: float = _field(10.0, "seconds to wait for the answer", _positive)

    def __attrs_post_init__(self) -> None:
        _check(self)

    def _more(self) -> list[tuple[str, object, str]]:
        problems: list[tuple[str, object, str]] = []
        if not self.url.reveal().startswith(("http://", "https://")):
            problems.append(
                (
                    "url",
                    self.url,
                    'must be an http(s) URL, e.g. "https://hooks.slack.com/services/..."',
                )
            )
        elif MASK in self.url.reveal():
            problems.append(
                ("url", self.url, "is the masked form `config show` prints: give the real URL")
            )
        if self.format == "sms" and not self.sms_to:
            problems.append(
                ("format", self.format, 'needs sms_to, the phone number, e.g. sms_to = "+15550100"')
            )
        return problems


@final
@attrs.frozen(kw_only=True)
class AlertsSettings:
    """The ``[alerts]`` table: how often alerts go out, and where (always to the log too)."""

    quiet_s: float = _field(
        900.0, "repeats of an alert within this many seconds are dropped", _positive
    )
    max_per_hour: int = _field(
        30, "warnings beyond this many an hour wait (critical ones never)", _positive
    )
    email: EmailSettings | None = _field(None, "[alerts.email]: alerts by email")
    webhook: list[WebhookSettings] = _field(
        attrs.Factory(list), "[[alerts.webhook]]: alerts posted to URLs (one table each)"
    )

    def __attrs_post_init__(self) -> None:
        _check(self)


QuietWindow = tuple[str, str, str]


def _windows(value: Sequence[QuietWindow]) -> str | None:
    for start, end, zone in value:
        if _hh_mm(start) or _hh_mm(end) or _zone(zone):
            return 'each is ["HH:MM", "HH:MM", "Zone"], e.g. ["00:15", "01:45", "America/New_York"]'
    return None


@final
@attrs.frozen(kw_only=True)
class MonitorSettings:
    """The ``[monitor]`` table: the live run's health checks and the alerts they raise."""

    stale_after_s: float = _field(
        900.0, "a bar older than this many seconds: data stale, alert", _positive
    )
    disconnect_after_s: float = _field(
        120.0, "disconnected longer than this: failing, alert", _positive
    )
    heartbeat_timeout_s: float = _field(30.0, "the engine silent this long: failing", _positive)
    ack_timeout_s: float = _field(10.0, "an order unacknowledged this long: alert", _positive)
    min_free_mb: float = _field(
        200.0, "less free disk space than this in state_dir: alert", _not_negative
    )
    drawdown_alert: float | None = _field(
        0.1, "alert at this drawdown from the peak (0.1: 10%)", _fraction
    )
    daily_loss_alert: float | None = _field(
        0.03, "alert at this loss in a day (0.03: 3%)", _fraction
    )
    quiet: list[QuietWindow] = _field(
        attrs.Factory(list),
        'windows without disconnection alerts, [["HH:MM", "HH:MM", "Zone"], ...]',
        _windows,
    )
    tz: str = _field("America/New_York", "the time zone of the trading day", _zone)
    equity_points: int = _field(2000, "equity points kept for the dashboard", _positive)
    max_lag_s: float = _field(
        2.0, "behind by more than this many seconds (p99 lag): degraded, alert", _positive
    )
    max_inbox: int | None = _field(
        None,
        "more events than this waiting in the engine's inbox (at most 10000): degraded, alert",
        _max_inbox,
    )

    def __attrs_post_init__(self) -> None:
        _check(self)


@final
@attrs.frozen(kw_only=True)
class SummarySettings:
    """The ``[summary]`` table: the daily summary, sent and saved under state_dir/summaries."""

    at: str = _field("16:30", 'the time of day it is sent, "HH:MM" (weekdays)', _hh_mm)
    tz: str = _field("America/New_York", "the time zone of at", _zone)
    save_every_s: float = _field(300.0, "seconds between saves of the day in progress", _positive)

    def __attrs_post_init__(self) -> None:
        _check(self)


@final
@attrs.frozen(kw_only=True)
class DashboardSettings:
    """The ``[dashboard]`` table: the HTTP dashboard of a live run (off unless listen is set)."""

    listen: str | None = _field(None, 'serve it on "[HOST:]PORT", e.g. "127.0.0.1:8765"', _listen)
    token_env: str = _field(
        "IBKRFW_DASHBOARD_TOKEN",
        "the environment variable holding its access token",
        secret_env=True,
    )
    tls_cert: Path | None = _field(None, "a PEM certificate file: serve HTTPS", _file)
    tls_key: Path | None = _field(None, "the certificate's PEM private key file", _file)
    allow_plain_http: bool = _field(False, "serve plain HTTP off loopback (not advised)")
    keep_after_stop: bool = _field(
        False,
        "keep serving the run's final state after it stops, until SIGINT or SIGTERM "
        "(ibkrfw run --keep-dashboard)",
    )

    def __attrs_post_init__(self) -> None:
        _check(self)

    def _more(self) -> list[tuple[str, object, str]]:
        if self.keep_after_stop and not self.listen:
            return [
                (
                    "keep_after_stop",
                    True,
                    "needs a dashboard: set listen (or give ibkrfw run --dashboard)",
                )
            ]
        if (self.tls_cert is None) != (self.tls_key is None):
            given, key = (
                ("tls_cert", self.tls_cert) if self.tls_key is None else ("tls_key", self.tls_key)
            )
            other = "tls_key" if given == "tls_cert" else "tls_cert"
            return [(given, key, f"needs {other} too: give both, or neither")]
        return []


def _below_one(value: float | None) -> str | None:
    if value is not None and not 0 < value < 1:
        return "must be a fraction above 0 and below 1, e.g. 0.05 for 5%"
    return None


def _window(value: list[str] | None) -> str | None:
    if value is None:
        return None
    if len(value) != 3 or _hh_mm(value[0]) or _hh_mm(value[1]) or _zone(value[2]):
        return 'must be ["HH:MM", "HH:MM", "Zone"], e.g. ["09:35", "15:55", "America/New_York"]'
    if value[0] == value[1]:
        return "needs a start different from its end"
    return None


@final
@attrs.frozen(kw_only=True)
class RiskSettings:
    """The ``[risk]`` table: the account-wide risk rules and monitors of ``ibkrfw run``.

    Every key is off unless set. The pre-trade rules (checked on every order, in this order):
    :class:`~ibkrfw.risk.RestrictedList`, :class:`~ibkrfw.risk.TradingHours`,
    :class:`~ibkrfw.risk.StaleDataGuard`, :class:`~ibkrfw.risk.MaxOrderQuantity`,
    :class:`~ibkrfw.risk.MaxOrderNotional`, :class:`~ibkrfw.risk.MaxPosition`,
    :class:`~ibkrfw.risk.ExposureLimit`, :class:`~ibkrfw.risk.MarginCheck` and
    :class:`~ibkrfw.risk.OrderRateLimit` (last, so denied orders do not use up its budget);
    the monitors, which halt trading: :class:`~ibkrfw.risk.DailyLossLimit`,
    :class:`~ibkrfw.risk.MaxDrawdownKillSwitch` and :class:`~ibkrfw.risk.MaintenanceMargin`.
    The broker's own buying-power check always runs. Build them with :meth:`rules` and
    :meth:`monitors`.
    """

    max_order_quantity: float | None = _field(
        None, "the largest quantity of one order (MaxOrderQuantity)", _positive
    )
    max_order_value: float | None = _field(
        None, "the largest value of one order, in the base currency (MaxOrderNotional)", _positive
    )
    max_position_quantity: float | None = _field(
        None, "the largest absolute quantity held in one instrument (MaxPosition)", _positive
    )
    max_position_value: float | None = _field(
        None, "the largest absolute market value of one position (MaxPosition)", _positive
    )
    max_position_percent: float | None = _field(
        None, "the largest position as a share of equity, 0.25: 25% (MaxPosition)", _positive
    )
    shrink: bool = _field(
        False, "cut an order over an order or position limit down to what fits, not deny it"
    )
    max_gross: float | None = _field(
        None, "the largest gross exposure, in the base currency (ExposureLimit)", _positive
    )
    max_net: float | None = _field(
        None, "the largest absolute net exposure, in the base currency (ExposureLimit)", _positive
    )
    max_leverage: float | None = _field(
        None, "the largest gross exposure over equity, 2.0 for 2:1 (ExposureLimit)", _positive
    )
    initial_margin: float | None = _field(
        None, "the share of gross exposure equity must cover, 0.5: Reg T (MarginCheck)", _fraction
    )
    maintenance_margin: float | None = _field(
        None, "halt and flatten when equity covers less than this share (MaintenanceMargin)",
        _fraction,
    )  # fmt: skip
    max_orders: int | None = _field(
        None, "at most this many orders in any orders_window_s (OrderRateLimit)", _positive
    )
    orders_window_s: float = _field(60.0, "the window of max_orders, in seconds", _positive)
    restricted: list[str] = _field(
        attrs.Factory(list),
        "symbols no order may open or add to, only reduce (RestrictedList)",
        _symbols,
    )
    trading_hours: list[str] | None = _field(
        None, 'new orders only inside ["HH:MM", "HH:MM", "Zone"], weekdays (TradingHours)',
        _window,
    )  # fmt: skip
    max_data_age_s: float | None = _field(
        None, "deny orders on bars older than this many seconds (StaleDataGuard)", _positive
    )
    daily_loss: float | None = _field(
        None, "halt at this loss in a day, in the base currency (DailyLossLimit)", _positive
    )
    daily_loss_percent: float | None = _field(
        None, "halt at this loss in a day, a share of its starting equity (DailyLossLimit)",
        _fraction,
    )  # fmt: skip
    daily_loss_flatten: bool = _field(False, "also close every position at the daily loss")
    daily_loss_tz: str = _field("America/New_York", "the zone whose midnight starts a day", _zone)
    max_drawdown: float | None = _field(
        None, "halt at this fall from the peak, 0.2: 20% (MaxDrawdownKillSwitch)", _below_one
    )
    drawdown_flatten: bool = _field(True, "also close every position at max_drawdown")

    def __attrs_post_init__(self) -> None:
        _check(self)

    def rules(self) -> list[RiskRule]:
        """The pre-trade rules these settings set, in the order they are checked."""
        from ibkrfw import risk
        from ibkrfw.model._decimal import float_decimal

        rules: list[RiskRule] = []
        if self.restricted:
            rules.append(risk.RestrictedList(symbols=self.restricted, reason="[risk] restricted"))
        if self.trading_hours is not None:
            start, end, tz = self.trading_hours
            rules.append(risk.TradingHours(start, end, tz))
        if self.max_data_age_s is not None:
            rules.append(risk.StaleDataGuard(self.max_data_age_s))
        if self.max_order_quantity is not None:
            rules.append(
                risk.MaxOrderQuantity(float_decimal(self.max_order_quantity), shrink=self.shrink)
            )
        if self.max_order_value is not None:
            rules.append(risk.MaxOrderNotional(self.max_order_value, shrink=self.shrink))
        position = (self.max_position_quantity, self.max_position_value,
                    self.max_position_percent)  # fmt: skip
        if any(v is not None for v in position):
            rules.append(
                risk.MaxPosition(
                    quantity=None if position[0] is None else float_decimal(position[0]),
                    notional=position[1],
                    percent_of_equity=position[2],
                    shrink=self.shrink,
                )
            )
        if any(v is not None for v in (self.max_gross, self.max_net, self.max_leverage)):
            rules.append(
                risk.ExposureLimit(
                    max_gross=self.max_gross, max_net=self.max_net, max_leverage=self.max_leverage
                )
            )
        if self.initial_margin is not None:
            rules.append(risk.MarginCheck(self.initial_margin))
        if self.max_orders is not None:
            rules.append(risk.OrderRateLimit(self.max_orders, self.orders_window_s))
        return rules

    def monitors(self) -> list[RiskMonitor]:
        """The risk monitors (halts) these settings set."""
        from ibkrfw import risk

        monitors: list[RiskMonitor] = []
        if self.daily_loss is not None or self.daily_loss_percent is not None:
            monitors.append(
                risk.DailyLossLimit(
                    self.daily_loss,
                    percent=self.daily_loss_percent,
                    flatten=self.daily_loss_flatten,
                    tz=self.daily_loss_tz,
                )
            )
        if self.max_drawdown is not None:
            monitors.append(risk.MaxDrawdownKillSwitch(self.max_drawdown,
                                                       flatten=self.drawdown_flatten))  # fmt: skip
        if self.maintenance_margin is not None:
            monitors.append(risk.MaintenanceMargin(self.maintenance_margin))
        return monitors


@final
@attrs.frozen(kw_only=True)
class ProtectionSettings:
    """The ``[protection]`` table: a stop-loss and a take-profit on every position.

    The engine keeps them as real GTC orders (see :class:`~ibkrfw.risk.Protection`). Give at
    most one ``stop_loss_*`` key and one ``take_profit_*`` key; none: no protection. Percents
    are fractions (0.05: 5%). Build it with :meth:`protection`.
    """

    stop_loss_percent: float | None = _field(
        None, "a stop this share of the average entry price away", _below_one
    )
    stop_loss_amount: float | None = _field(
        None, "a stop this far (in price) from the average entry price", _positive
    )
    stop_loss_atr: float | None = _field(
        None, "a stop this many average true ranges (over atr_period bars) away", _positive
    )
    trailing: bool = _field(False, "make the stop a trailing stop behind the best price since")
    take_profit_percent: float | None = _field(
        None, "a take-profit this share of the average entry price beyond it", _positive
    )
    take_profit_amount: float | None = _field(
        None, "a take-profit this far (in price) beyond the average entry price", _positive
    )
    take_profit_atr: float | None = _field(
        None, "a take-profit this many average true ranges beyond it", _positive
    )
    atr_period: int = _field(14, "the bars the average true range is measured over", _positive)
    symbols: list[str] | None = _field(
        None, "the symbols protected (default: every symbol traded)", _symbols
    )

    def __attrs_post_init__(self) -> None:
        _check(self)

    def _more(self) -> list[tuple[str, object, str]]:
        problems: list[tuple[str, object, str]] = []
        for side in ("stop_loss", "take_profit"):
            given = [
                (f"{side}_{kind}", getattr(self, f"{side}_{kind}"))
                for kind in ("percent", "amount", "atr")
                if getattr(self, f"{side}_{kind}") is not None
            ]
            if len(given) > 1:
                names = " and ".join(name for name, _ in given)
                problems.append(
                    (given[1][0], given[1][1], f"give one of {names}, not both")
                )  # fmt: skip
        stops = (self.stop_loss_percent, self.stop_loss_amount, self.stop_loss_atr)
        if self.trailing and all(v is None for v in stops):
            problems.append(
                ("trailing", True, "needs a stop: stop_loss_percent, stop_loss_amount or "
                 "stop_loss_atr")
            )  # fmt: skip
        if self.symbols is not None and not self.symbols:
            problems.append(("symbols", [], 'give symbols, e.g. ["ACME"], or leave it out'))
        return problems

    @property
    def enabled(self) -> bool:
        """Whether a stop-loss or a take-profit is set."""
        keys = ("stop_loss_percent", "stop_loss_amount", "stop_loss_atr",
                "take_profit_percent", "take_profit_amount", "take_profit_atr")  # fmt: skip
        return any(getattr(self, key) is not None for key in keys)

    def protection(self, instruments: Sequence[Instrument] = ()) -> Protection | None:
        """The :class:`~ibkrfw.risk.Protection` these settings set (None: none set).

        Args:
            instruments: The run's instruments; ``symbols``, if set, picks among them.

        Raises:
            ConfigError: if ``symbols`` names one the run does not trade.
        """
        from ibkrfw.risk.protect import Protection, StopLoss, TakeProfit

        if not self.enabled:
            return None
        stop: StopLoss | None = None
        if self.stop_loss_percent is not None:
            stop = (
                StopLoss.trailing(percent=self.stop_loss_percent)
                if self.trailing
                else StopLoss.percent(self.stop_loss_percent)
            )
        elif self.stop_loss_amount is not None:
            stop = (
                StopLoss.trailing(amount=self.stop_loss_amount)
                if self.trailing
                else StopLoss.fixed(self.stop_loss_amount)
            )
        elif self.stop_loss_atr is not None:
            stop = StopLoss.atr(self.stop_loss_atr, self.atr_period, trail=self.trailing)
        take: TakeProfit | None = None
        if self.take_profit_percent is not None:
            take = TakeProfit.percent(self.take_profit_percent)
        elif self.take_profit_amount is not None:
            take = TakeProfit.fixed(self.take_profit_amount)
        elif self.take_profit_atr is not None:
            take = TakeProfit.atr(self.take_profit_atr, self.atr_period)
        covered: list[Instrument] | None = None
        if self.symbols is not None:
            by_symbol = {inst.symbol: inst for inst in instruments}
            missing = [s for s in self.symbols if s not in by_symbol]
            if missing:
                raise ConfigError(
                    f"[protection] symbols = {_toml(self.symbols)}: {_toml(missing)} not traded "
                    f"(the run trades {_toml(sorted(by_symbol))}): add them to [run] symbols, "
                    "or drop them here"
                )
            covered = [by_symbol[s] for s in self.symbols]
        return Protection(stop, take, instruments=covered)


GridValues = Scalar | list[Scalar]


@final
@attrs.frozen(kw_only=True)
class OptimizeSettings:
    """The ``[optimize]`` table: what ``ibkrfw optimize --config`` searches."""

    strategy: str = _field("sma_crossover", "'module:Class' of a Strategy subclass, or a built-in")
    objective: str = _field("Sharpe ratio", "the statistic to rank by")
    symbols: list[str] | None = _field(
        None, "the symbols to backtest (default: every sample one)", _symbols
    )
    grid: dict[str, GridValues] = _field(
        attrs.Factory(dict),
        "[optimize.grid]: NAME = [V1, V2, ...] for each parameter searched",
        _grid,
    )
    scheduler: str | None = _field(
        None,
        "a Dask scheduler's address, e.g. tcp://127.0.0.1:8786, to run the sets on its "
        "workers (--scheduler wins over it)",
        _scheduler,
    )
    scheduler_timeout_s: float = _field(
        10.0, "seconds to wait for the scheduler to answer (--scheduler-timeout)", _positive
    )
    journal: str | None = _field(
        None,
        "a file recording each finished set: a stopped sweep run again resumes from it "
        "(--journal wins over it)",
        _nonempty,
    )
    store: str | None = _field(
        None,
        "a Parquet bar store, a path or fsspec URI (s3://bucket/bars), each worker reads the "
        "bars from (--store wins over it); credentials go in the environment, not the URI",
        _store_uri,
    )
    bar_size: str = _field("1d", "the bar size read from store (--bar-size)", _bar_size)
    start: str | None = _field(None, "first time read from store (--start)", _time_text)
    end: str | None = _field(None, "first time not read from store (--end)", _time_text)

    def __attrs_post_init__(self) -> None:
        _check(self)


def _ibkr_factory() -> IBKRConfig:
    return IBKRConfig()


@final
@attrs.frozen(kw_only=True)
class Settings:
    """Everything a configuration file sets: one attribute per table.

    Build it with :func:`load_settings`.
    """

    ibkr: IBKRConfig = _field(
        attrs.Factory(_ibkr_factory), "where and how to connect to TWS or IB Gateway"
    )
    run: RunSettings = _field(attrs.Factory(RunSettings), "what ibkrfw run trades")
    sandbox: SandboxSettings = _field(
        attrs.Factory(SandboxSettings), "the simulator of ibkrfw run --sandbox"
    )
    alerts: AlertsSettings = _field(attrs.Factory(AlertsSettings), "where alerts go")
    monitor: MonitorSettings = _field(attrs.Factory(MonitorSettings), "health checks")
    summary: SummarySettings = _field(attrs.Factory(SummarySettings), "the daily summary")
    dashboard: DashboardSettings = _field(attrs.Factory(DashboardSettings), "the dashboard")
    risk: RiskSettings = _field(attrs.Factory(RiskSettings), "ibkrfw run's risk rules")
    protection: ProtectionSettings = _field(
        attrs.Factory(ProtectionSettings), "ibkrfw run's stop-loss and take-profit"
    )
    optimize: OptimizeSettings = _field(attrs.Factory(OptimizeSettings), "ibkrfw optimize --config")


_TABLES: Final[tuple[str, ...]] = tuple(f.name for f in attrs.fields(Settings))
for _cls in (IBKRConfig, RunSettings, SandboxSettings, EmailSettings, WebhookSettings,
             AlertsSettings, MonitorSettings, SummarySettings, DashboardSettings,
             RiskSettings, ProtectionSettings, OptimizeSettings, Settings):  # fmt: skip
    attrs.resolve_types(_cls)


# --- strict structuring (cattrs) ------------------------------------------------------------


class _Expected(ValueError):  # noqa: N818 (what the hooks raise: a value's type was wrong)
    """A value of the wrong type: what was expected, and an example of it (as TOML)."""

    def __init__(self, value: object, what: str, example: str) -> None:
        self.value, self.what, self.example = value, what, example
        super().__init__(f"expected {what}, got {_toml(value)}")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _scalar(value: object) -> bool:
    return isinstance(value, str | int | float | bool)


def _strict(kind: type, test: Callable[[object], bool], what: str, example: str) -> Any:
    def hook(value: object, _: object) -> object:
        if not test(value):
            raise _Expected(value, what, example)
        return kind(value)

    return hook


def _is_literal(kind: Any) -> bool:
    return typing.get_origin(kind) is Literal


def _literal_hook(kind: Any) -> Callable[[object, object], object]:
    choices = typing.get_args(kind)

    def hook(value: object, _: object) -> object:
        if not isinstance(value, str) or value not in choices:
            raise _Expected(
                value, "one of " + ", ".join(_toml(c) for c in choices), _toml(choices[0])
            )
        return value

    return hook


def _str_list(value: object, _: object) -> list[str]:
    if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
        example = f"[{_toml(value)}]" if isinstance(value, str) else '["ACME", "BOLT"]'
        raise _Expected(value, "a list of strings", example)
    return list(value)


def _windows_hook(value: object, _: object) -> list[QuietWindow]:
    if not (
        isinstance(value, list)
        and all(isinstance(w, list) and len(w) == 3 and all(isinstance(p, str) for p in w)
                for w in value)
    ):  # fmt: skip
        raise _Expected(value, 'a list of ["HH:MM", "HH:MM", "Zone"] windows',
                        '[["00:15", "01:45", "America/New_York"]]')  # fmt: skip
    return [(w[0], w[1], w[2]) for w in value]


def _commission_hook(value: object, _: object) -> str | float:
    if isinstance(value, str):
        return value
    if _is_number(value):
        return float(typing.cast(float, value))
    raise _Expected(value, '"ibkr_fixed", "ibkr_tiered", "none" or a number per share', "0.005")


def _parameters_hook(value: object, _: object) -> dict[str, Scalar]:
    if not (isinstance(value, dict) and all(_scalar(v) for v in value.values())):
        raise _Expected(
            value, "a table of NAME = VALUE (numbers, strings, true/false)", "{ fast = 10 }"
        )
    return dict(value)


def _grid_hook(value: object, _: object) -> dict[str, GridValues]:
    def ok(v: object) -> bool:
        return _scalar(v) or (isinstance(v, list) and all(_scalar(x) for x in v))

    if not (isinstance(value, dict) and all(ok(v) for v in value.values())):
        raise _Expected(value, "a table of NAME = [V1, V2, ...]", "{ fast = [5, 10, 20] }")
    return dict(value)


def _webhooks_hook(value: object, _: object) -> list[WebhookSettings]:
    if not (isinstance(value, list) and all(isinstance(item, dict) for item in value)):
        raise _Expected(
            value,
            '[[alerts.webhook]] tables with url = "https://...", one table each',
            '[{ url = "https://..." }]',
        )
    errors: list[Exception] = []
    hooks: list[WebhookSettings] = []
    for index, item in enumerate(value):
        try:
            hooks.append(_converter.structure(item, WebhookSettings))
        except Exception as exc:  # gathered, with where they came from
            exc.__notes__ = [*getattr(exc, "__notes__", []), _Index(index)]
            errors.append(exc)
    if errors:
        raise IterableValidationError("While structuring webhooks", errors, list)
    return hooks


class _Index(str):
    """The note on an error of a list's item: its index."""

    position: int

    def __new__(cls, position: int) -> _Index:
        note = super().__new__(cls, f"item {position}")
        note.position = position
        return note


def _attrs_hook_factory(cls: type) -> Callable[[object, object], object]:
    inner: Callable[[Any, Any], Any] = cattrs.gen.make_dict_structure_fn(
        cls, _converter, _cattrs_forbid_extra_keys=True
    )

    def hook(value: object, _: object) -> object:
        if not isinstance(value, dict):
            raise _Expected(value, "a table", "{ ... } or a [table] of its own")
        return inner(value, cls)

    return hook


_converter = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
_converter.register_structure_hook(
    bool, _strict(bool, lambda v: isinstance(v, bool), "true or false", "true")
)
_converter.register_structure_hook(
    int,
    _strict(int, lambda v: isinstance(v, int) and not isinstance(v, bool), "a whole number", "10"),
)
_converter.register_structure_hook(float, _strict(float, _is_number, "a number", "10.0"))
_converter.register_structure_hook(
    str, _strict(str, lambda v: isinstance(v, str), "a string", '"text"')
)
_converter.register_structure_hook_func(lambda t: t == list[str], _str_list)
_converter.register_structure_hook_func(lambda t: t == list[QuietWindow], _windows_hook)
_converter.register_structure_hook_func(lambda t: t == (str | float), _commission_hook)
_converter.register_structure_hook_func(lambda t: t == dict[str, Scalar], _parameters_hook)
_converter.register_structure_hook_func(lambda t: t == dict[str, GridValues], _grid_hook)
_converter.register_structure_hook_func(lambda t: t == list[WebhookSettings], _webhooks_hook)
_converter.register_structure_hook_factory(_is_literal, _literal_hook)
_converter.register_structure_hook_factory(attrs.has, _attrs_hook_factory)
_converter.register_structure_hook(Path, lambda v, _: _path(v))
_converter.register_structure_hook(Secret, lambda v, _: _secret(v))


def _path(value: object) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise _Expected(value, "a path as a string, not empty", '"/var/lib/ibkrfw"')
    return Path(value).expanduser()


def _secret(value: object) -> Secret:
    if not isinstance(value, str):
        raise _Expected(value, "a string", '"https://..."')
    return Secret(value)


# --- problems, in words ---------------------------------------------------------------------

_Path = tuple[str | int, ...]


def _toml(value: object) -> str:
    """``value`` as written in TOML (secrets masked)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Secret):
        return f'"{mask_url(value.reveal())}"'
    if isinstance(value, str | Path):
        text = str(value).replace("\\", "\\\\").replace('"', '\\"')
        return f'"{text}"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if value is None:
        return "(none)"
    return repr(value)


def _class_at(path: _Path) -> type | None:
    """The settings class of the table at ``path`` (None for the top of the file)."""
    cls: type = Settings
    for part in path:
        if isinstance(part, int):
            continue
        field = attrs.fields_dict(cls).get(part)
        if field is None:
            return None
        kind: Any = field.type
        if typing.get_origin(kind) in (types.UnionType, typing.Union):
            kind = next(a for a in typing.get_args(kind) if a is not type(None))
        if typing.get_origin(kind) is list:
            kind = typing.get_args(kind)[0]
        if not attrs.has(kind):
            return None
        cls = kind
    return cls


def _table_name(path: _Path) -> str:
    names = ".".join(p for p in path if isinstance(p, str))
    index = [p for p in path if isinstance(p, int)]
    return f"[[{names}]] #{index[0] + 1}" if index else f"[{names}]"


_SECRET_KEYS = {"password": "password_env or password_file", "token": "token_env"}

# keys a user may well write for a limit that has another name: spelling alone misleads there
# (difflib offers 'max_gross' for 'max_loss')
_LOSS_HINT = (
    "a loss limit is daily_loss (money lost in a day) or daily_loss_percent (a share of the "
    "day's starting equity); a limit below the peak is max_drawdown (a share, 0.15 = 15 %)"
)
_MEANT = {
    ("[risk]", "max_loss"): _LOSS_HINT,
    ("[risk]", "max_daily_loss"): _LOSS_HINT,
    ("[risk]", "loss_limit"): _LOSS_HINT,
    ("[risk]", "drawdown"): _LOSS_HINT,
    ("[risk]", "stop_loss"): "a stop-loss on each position is [protection] stop_loss_percent, "
    "stop_loss_amount or stop_loss_atr",
    ("[protection]", "stop_loss"): "give stop_loss_percent (0.05 = 5 % below a long's average "
    "price), stop_loss_amount (money per share) or stop_loss_atr (ATRs)",
    ("[protection]", "take_profit"): "give take_profit_percent, take_profit_amount or "
    "take_profit_atr",
}


def _unknown(path: _Path, key: str) -> str:
    """Say that ``key`` of the table at ``path`` is unknown, and what it may have meant."""
    cls = _class_at(path)
    known = [f.name for f in attrs.fields(cls)] if cls is not None else []
    if not path:
        holders = [t for t in _TABLES if key in attrs.fields_dict(_class_at((t,)) or Settings)]
        if holders:
            return f"{key}: a key outside its table; put it under [{holders[0]}]"
        close = difflib.get_close_matches(key, _TABLES, n=1)
        hint = (
            f"did you mean [{close[0]}]?"
            if close
            else "the tables: " + ", ".join(f"[{t}]" for t in _TABLES)
        )
        return f"[{key}]: unknown table; {hint}"
    where = f"{_table_name(path)} {key}"
    if key in _SECRET_KEYS:
        return (f"{where}: secrets never go in the file: give {_SECRET_KEYS[key]} (an environment "
                "variable or a file only the service can read)")  # fmt: skip
    meant = _MEANT.get((_table_name(path), key))
    if meant:
        return f"{where}: unknown key; {meant}"
    if len(path) == 1:
        owners = [
            t
            for t in _TABLES
            if t != path[0] and key in attrs.fields_dict(_class_at((t,)) or Settings)
        ]
        if owners:
            return f"{where}: a key of [{owners[0]}], not of {_table_name(path)}; move it there"
    close = difflib.get_close_matches(key, known, n=1)
    hint = (
        f"did you mean {close[0]!r}?"
        if close
        else f"the keys of {_table_name(path)}: " + ", ".join(known)
    )
    return f"{where}: unknown key; {hint}"


def _problems(exc: BaseException, path: _Path) -> Iterator[tuple[_Path, str]]:
    """Each problem in the cattrs error ``exc`` raised at ``path``: where, and what is wrong."""
    if isinstance(exc, ClassValidationError):
        with_notes, without = exc.group_exceptions()
        for sub, note in with_notes:
            yield from _problems(sub, (*path, note.name))
        for sub in without:
            yield from _problems(sub, path)
    elif isinstance(exc, IterableValidationError):
        for sub in exc.exceptions:
            notes = [n for n in getattr(sub, "__notes__", []) if isinstance(n, _Index)]
            yield from _problems(sub, (*path, notes[-1].position) if notes else path)
    elif isinstance(exc, ForbiddenExtraKeysError):
        for key in sorted(exc.extra_fields):
            yield (*path, key), _unknown(path, key)
    elif isinstance(exc, _Problems):
        for key, value, why in exc.problems:
            yield (*path, key), f"{_table_name(path)} {key} = {_toml(value)}: {why}"
    elif isinstance(exc, _Expected):
        key = str(path[-1])
        where = f"{_table_name(path[:-1])} {key}" if len(path) > 1 else f"[{key}]"
        example = _example(path, exc)
        shown = _shown(path, exc.value)
        yield path, f"{where} = {shown}: expected {exc.what}, e.g. {key} = {example}"
    elif isinstance(exc, KeyError) and path:  # a required key (noted with its name) is absent
        yield path, f"{_table_name(path[:-1])} {path[-1]}: missing; it has no default: give it"
    else:
        yield path, f"{_table_name(path)}: {exc}"


_SHOWN_LENGTH: Final = 60


def _shown(path: _Path, value: object) -> str:
    """``value`` as an error shows it: a URL masked, a webhook's anything masked, no long text.

    A webhook's URL is a secret wherever it was written (``webhook = "https://..."``, a
    ``url`` in a list...); any other string with ``://`` may carry a credential too. A
    long table or list is named by its type only: the error names its place.
    """
    under_webhook = "webhook" in path and path[-1] in ("webhook", "url")
    if isinstance(value, str) and (under_webhook or "://" in value):
        return _toml(mask_url(value))
    if isinstance(value, dict | list):
        text = _toml(_masked(value))
        if under_webhook or len(text) > _SHOWN_LENGTH:
            count = len(value)
            what = "key" if isinstance(value, dict) else "item"
            return f"(a {'table' if isinstance(value, dict) else 'list'} of {count} {what}" + (
                "s)" if count != 1 else ")"
            )
        return text
    text = _toml(value)
    return text if len(text) <= _SHOWN_LENGTH else text[:_SHOWN_LENGTH] + "..."


def _masked(value: object) -> object:
    """``value`` with every string holding ``://`` masked as a URL."""
    if isinstance(value, str) and "://" in value:
        return mask_url(value)
    if isinstance(value, list):
        return [_masked(v) for v in value]
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    return value


def _example(path: _Path, exc: _Expected) -> str:
    """An example value for the key at ``path``: its default where that is a plain value."""
    cls = _class_at(path[:-1])
    field = attrs.fields_dict(cls).get(str(path[-1])) if cls is not None else None
    default = field.default if field is not None else None
    if isinstance(default, bool | int | float | str) and type(default) in _PLAIN.get(
        exc.example, ()
    ):
        return _toml(default)
    return exc.example


_PLAIN: Final[dict[str, tuple[type, ...]]] = {
    "true": (bool,), "10": (int,), "10.0": (int, float), '"text"': (str,),
}  # fmt: skip


# --- loading --------------------------------------------------------------------------------


def _env_name(table: str, key: str) -> str:
    return f"{ENV_PREFIX}{table.upper()}_{key.upper()}"


def _env_kind(kind: Any) -> Any:
    """The type an environment variable of a field of type ``kind`` is read as (None: none)."""
    if typing.get_origin(kind) in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(kind) if a is not type(None)]
        kind = args[0] if len(args) == 1 else kind
    if kind in (bool, int, float, str, Path, list[str], str | float):
        return kind
    if typing.get_origin(kind) is Literal:
        return str
    return None


def _env_settings(
    environ: Mapping[str, str],
) -> tuple[list[tuple[str, str, str, object]], list[str]]:
    """The settings the environment overrides, and the problems of its variables.

    Each setting is (table, key, variable, value as typed); each problem a variable whose
    value is not of its setting's type.
    """
    problems: list[str] = []
    found: list[tuple[str, str, str, object]] = []
    for table in _TABLES:
        for field in attrs.fields(_class_at((table,)) or Settings):
            kind = _env_kind(field.type)
            name = _env_name(table, field.name)
            text = environ.get(name)
            if kind is None or text is None:
                continue
            if not text.strip():
                problems.append(
                    f"{name} is set but empty: unset it or give a value (it sets "
                    f"[{table}] {field.name})"
                )
                continue
            value: object = text
            try:
                if kind is bool:
                    words = {
                        "true": True,
                        "1": True,
                        "yes": True,
                        "false": False,
                        "0": False,
                        "no": False,
                    }
                    if text.strip().lower() not in words:
                        raise ValueError("true or false (or 1/0, yes/no)")
                    value = words[text.strip().lower()]
                elif kind is int:
                    value = int(text)
                elif kind is float:
                    value = float(text)
                elif kind == list[str]:
                    value = [s.strip() for s in text.split(",")]
                elif kind == (str | float):
                    try:
                        value = float(text)
                    except ValueError:
                        value = text
            except ValueError:
                what = {bool: "true or false (or 1/0, yes/no)", int: "a whole number"}.get(
                    kind, "a number"
                )
                default = field.default
                example = str(default).lower() if isinstance(default, bool | int | float) else "1"
                problems.append(
                    f"{name}={_env_text(text)} is not {what}: it sets [{table}] {field.name}, "
                    f"e.g. {name}={example}"
                )
                continue
            found.append((table, field.name, name, value))
    return found, problems


def _env_value(text: str) -> str:
    """A variable's value as errors show it: a URL masked, no long text."""
    if "://" in text:
        return mask_url(text)
    return text if len(text) <= _SHOWN_LENGTH else text[:_SHOWN_LENGTH] + "..."


def _env_text(text: str) -> str:
    return repr(_env_value(text))


_OTHER_ENV: Final = frozenset({
    "IBKRFW_DASHBOARD_TOKEN", "IBKRFW_SMTP_PASSWORD", "IBKRFW_PROGRESS_MIN_BARS",
})  # fmt: skip
"""The ``IBKRFW_`` variables ibkrfw reads that are not settings: the default secret variables
(``token_env``, ``password_env``) and the progress bar's threshold. The variables a file's
``*_env`` keys name are allowed too."""


def _secret_env_names(tables: Mapping[str, Any]) -> set[str]:
    """The variables the tables' ``*_env`` keys name (a secret each), as written."""
    names: set[str] = set()

    def visit(table: object) -> None:
        if isinstance(table, dict):
            for key, value in table.items():
                if key.endswith("_env") and isinstance(value, str):
                    names.add(value)
                else:
                    visit(value)
        elif isinstance(table, list):
            for item in table:
                visit(item)

    visit(dict(tables))
    return names


def _unknown_env(environ: Mapping[str, str], allowed: set[str]) -> list[str]:
    """The ``IBKRFW_`` variables that are no setting and not otherwise used: misspelt ones."""
    settings: dict[str, tuple[str, str]] = {}
    for table in _TABLES:
        for field in attrs.fields(_class_at((table,)) or Settings):
            settings[_env_name(table, field.name)] = (table, field.name)
    known = sorted({*settings, *_OTHER_ENV})
    problems: list[str] = []
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name in allowed or name in _OTHER_ENV:
            continue
        if name in settings:
            table, key = settings[name]
            field = attrs.fields_dict(_class_at((table,)) or Settings)[key]
            if _env_kind(field.type) is None:
                problems.append(
                    f"{name}: [{table}] {key} cannot be set from the environment: give it in "
                    "the file, and unset the variable"
                )
            continue
        table = name[len(ENV_PREFIX) :].partition("_")[0].lower()
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
        hint = f"did you mean {close[0]}?" if close else "unset it"
        if table in _TABLES:
            names = [
                _env_name(table, f.name)
                for f in attrs.fields(_class_at((table,)) or Settings)
                if _env_kind(f.type) is not None
            ]
            keys = ", ".join(names)
            # a variable of a known table is one of its own, not a near name of another's
            close = difflib.get_close_matches(name, names, n=1, cutoff=0.75)
            hint = f"did you mean {close[0]}?" if close else "unset it"
            if not close:
                hint = f"the variables of [{table}]: {keys}"
            problems.append(f"{name}: no such setting in [{table}]; {hint}")
        else:
            problems.append(
                f"{name}: not a variable of ibkrfw (IBKRFW_<TABLE>_<KEY>, the tables: "
                + ", ".join(_TABLES)
                + f"); {hint}"
            )
    return problems


def _read(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"cannot read {os.fspath(path)}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {os.fspath(path)}: {exc.strerror or exc}") from None


def settings_from_tables(
    tables: Mapping[str, Any],
    *,
    source: str = "the configuration",
    origins: Mapping[tuple[str, str], str] | None = None,
    problems: Sequence[str] = (),
) -> Settings:
    """Build :class:`Settings` from parsed TOML tables (as :func:`tomllib.loads` gives them).

    Args:
        tables: The tables.
        source: What to name as where they came from in errors (a file's name).
        origins: For settings that came from elsewhere, (table, key) -> where (an environment
            variable, an option), named in their errors instead of ``source``.
        problems: Problems found before (in environment variables), reported with the others.

    Raises:
        ConfigError: listing every problem, each with where it is and how to fix it.
    """
    lines = list(problems)
    try:
        settings: Settings = _converter.structure(dict(tables), Settings)
    except Exception as exc:  # cattrs' errors, every one gathered
        for where, text in _problems(exc, ()):
            origin = (
                (origins or {}).get((str(where[0]), str(where[1]))) if len(where) >= 2 else None
            )
            lines.append(f"{origin or source}: {text}")
    if lines:
        head = f"{len(lines)} problems:\n  " if len(lines) > 1 else ""
        raise ConfigError(head + "\n  ".join(lines))
    return settings


def load_settings(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    override_source: str = "given in code",
) -> Settings:
    """Read a configuration file: defaults, then the file, the environment, the overrides.

    Args:
        path: A TOML file (``ibkrfw.toml``); none: defaults and the environment only.
        environ: The environment (``os.environ`` by default): ``IBKRFW_<TABLE>_<KEY>``
            variables override the file, e.g. ``IBKRFW_RUN_STATE_DIR=/var/lib/ibkrfw``.
        overrides: ``{table: {key: value}}`` that win over both (a command line's options).
        override_source: What to call the overrides in errors (``"the command line"``).

    Raises:
        ConfigError: for a file that cannot be read or is not TOML, and for every unknown
            table or key, value of the wrong type or out of range, each named with its
            file (or variable), table and key, and the fix.

    Example:
        >>> load_settings(environ={"IBKRFW_RUN_SYMBOLS": "ACME,BOLT"}).run.symbols
        ['ACME', 'BOLT']
    """
    tables: dict[str, Any] = _read(path) if path is not None else {}
    source = os.fspath(path) if path is not None else "the defaults"
    origins: dict[tuple[str, str], str] = {}
    env = os.environ if environ is None else environ
    found, problems = _env_settings(env)
    problems += _unknown_env(env, _secret_env_names(tables))
    for table, key, name, value in found:
        section = tables.setdefault(table, {})
        if isinstance(section, dict):
            section[key] = value
            origins[table, key] = f"{name}={_env_value(env[name])}"
    for table, values in (overrides or {}).items():
        section = tables.setdefault(table, {})
        if isinstance(section, dict):
            for key, value in values.items():
                section[key] = value
                origins[table, key] = override_source
    return settings_from_tables(tables, source=source, origins=origins, problems=problems)


# --- showing the settings, and documenting them ---------------------------------------------


def _lines(obj: Any, table: str, environ: Mapping[str, str], *, array: bool = False) -> list[str]:
    """The TOML of one table (``obj``) and of the tables under it, secrets masked."""
    head = f"[[{table}]]" if array else f"[{table}]"
    own, below = [head], []
    for field in attrs.fields(type(obj)):
        value = getattr(obj, field.name)
        if attrs.has(type(value)):
            below += ["", *_lines(value, f"{table}.{field.name}", environ)]
        elif isinstance(value, list) and value and attrs.has(type(value[0])):
            for item in value:
                below += ["", *_lines(item, f"{table}.{field.name}", environ, array=True)]
        elif isinstance(value, dict):
            below += ["", f"[{table}.{field.name}]"]
            below += [f"{k} = {_toml(v)}" for k, v in value.items()]
        elif value is None:
            own.append(f"# {field.name}: not set")
        elif field.metadata.get("secret_env"):
            state = "set" if environ.get(str(value)) else "not set"
            own.append(f"{field.name} = {_toml(value)}  # the variable is {state}")
        elif table == "ibkr" and field.name == "mode" and value == "live":
            own.append(f"{field.name} = {_toml(value)}  # ibkrfw run needs --mode live too")
        else:
            own.append(f"{field.name} = {_toml(value)}")
    return own + below


def settings_toml(settings: Settings, environ: Mapping[str, str] | None = None) -> str:
    """``settings`` as a TOML file, every table and key, secrets masked.

    Webhook URLs are shown without their path and query; the environment variables
    that hold passwords and tokens are named, with whether they are set, never their values.

    Args:
        settings: The settings, e.g. from :func:`load_settings`.
        environ: The environment to say the variables are set in (``os.environ`` by default).
    """
    env = os.environ if environ is None else environ
    parts = ["\n".join(_lines(getattr(settings, t), t, env)) for t in _TABLES]
    return "\n\n".join(parts) + "\n"


def _type_text(kind: Any) -> str:
    """A field's type in words, for the reference."""
    if typing.get_origin(kind) in (types.UnionType, typing.Union):
        args = typing.get_args(kind)
        if kind == (str | float):
            return "string or number"
        return _type_text(next(a for a in args if a is not type(None)))
    if typing.get_origin(kind) is Literal:
        return " / ".join(_toml(c) for c in typing.get_args(kind))
    names = {
        bool: "bool", int: "integer", float: "number", str: "string", Path: "path (string)",
        Secret: "string (secret)", list[str]: "list of strings",
        list[QuietWindow]: 'list of ["HH:MM", "HH:MM", "Zone"]',
        dict[str, Scalar]: "table", dict[str, GridValues]: "table",
    }  # fmt: skip
    return names.get(kind, getattr(kind, "__name__", str(kind)))


def _default_text(field: attrs.Attribute[Any]) -> str:
    default = field.default
    if default is attrs.NOTHING:
        return "required"
    if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
        made = typing.cast(Any, default).factory()
        return "(table)" if attrs.has(type(made)) else _toml(made)
    return "not set" if default is None else _toml(default)


def _reference() -> str:
    """The configuration reference page (``docs/reference/configuration.md``), from the model."""
    out = [
        "# Configuration reference",
        "",
        "<!-- generated from ibkrfw.config by tools/gen_config_reference.py: do not edit -->",
        "",
        "Every table and key of an `ibkrfw.toml` file, as {func}`ibkrfw.config.load_settings` "
        "reads it for `ibkrfw run`, `ibkrfw optimize --config`, `ibkrfw download --config` and "
        "{class}`~ibkrfw.ibkr.IBKRConfig`. Check a file with `ibkrfw config check FILE`; see "
        "the effective settings with `ibkrfw config show --config FILE`.",
        "",
        'Types are strict: a list is written as a list (`symbols = ["ACME"]`, never '
        '`"ACME"`), a bool as `true` or `false` (never `"false"`). Unknown tables and keys '
        "are errors. Settings come from, each over the one before: the defaults below, the "
        "file, the environment (the variable in the table, `IBKRFW_<TABLE>_<KEY>`; bools as "
        "`true`/`false`/`1`/`0`/`yes`/`no`, lists comma-separated) and the command line's options.",
        "Secrets (passwords, tokens) never go in the file: name the environment variable (or "
        "file) that holds them. A webhook URL may be inline, and is shown masked.",
    ]

    def section(cls: type, name: str, table: str | None) -> None:
        doc = (cls.__doc__ or "").strip().splitlines()[0]
        out.extend(["", f"## `{name}`", "", doc.replace("``", "`"), ""])
        out.append("| Key | Type | Default | Environment | Meaning |")
        out.append("|---|---|---|---|---|")
        nested: list[tuple[type, str]] = []
        for field in attrs.fields(cls):
            kind = _class_at((*(table.split(".") if table else ()), field.name)) if table else None
            if kind is not None:
                nested.append((kind, field.name))
                continue
            env = (
                f"`{_env_name(table, field.name)}`"
                if table and "." not in table and _env_kind(field.type) is not None
                else ""
            )
            text = field.metadata.get("help", "").replace("|", "\\|")
            kind_text = _type_text(field.type).replace("|", "\\|")
            default = _default_text(field).replace("|", "\\|")
            out.append(f"| `{field.name}` | {kind_text} | `{default}` | {env} | {text} |")
        for sub, key in nested:
            array = typing.get_origin(attrs.fields_dict(cls)[key].type) is list
            full = f"{table}.{key}"
            section(sub, f"[[{full}]]" if array else f"[{full}]", full)

    for table in _TABLES:
        section(_class_at((table,)) or Settings, f"[{table}]", table)
    classes = [
        _class_at((t,)) or Settings for t in _TABLES if t != "ibkr"
    ]  # IBKRConfig: in the ibkrfw.ibkr reference
    out.extend([
        "", "## The model in Python", "",
        "The tables above are these attrs classes; `ibkrfw run`, `ibkrfw optimize` and "
        "{class}`~ibkrfw.ibkr.IBKRConfig` read them through {func}`~ibkrfw.config.load_settings`.",
        "", "```{eval-rst}",
        ".. autofunction:: ibkrfw.config.load_settings",
        ".. autofunction:: ibkrfw.config.settings_from_tables",
        ".. autofunction:: ibkrfw.config.settings_toml",
        ".. autofunction:: ibkrfw.config.split_listen",
        ".. autodata:: ibkrfw.config.ENV_PREFIX",
        ".. autoclass:: ibkrfw.config.Settings",
        *(f".. autoclass:: ibkrfw.config.{cls.__name__}" for cls in classes),
        ".. autoclass:: ibkrfw.config.EmailSettings",
        ".. autoclass:: ibkrfw.config.WebhookSettings",
        "```",
    ])  # fmt: skip
    return "\n".join(out) + "\n"
