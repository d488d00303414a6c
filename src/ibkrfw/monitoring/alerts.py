"""Alerts: email, webhooks (Slack, Discord, SMS gateways) and the log, never in the way.

An :class:`Alerter` takes alerts from any thread and delivers them on its own thread, so a
slow or failing channel never holds up trading. It drops repeats of the same alert within a
quiet period, caps how many go out per hour (critical alerts and the daily summary excepted),
and reports a failing channel through the others (and the log). Secrets (SMTP passwords,
bearer tokens, webhook URLs, whose path and query carry the token) come only from environment
variables, a secrets file or the configuration, are registered as secrets when read, and never
appear in logs, reprs, errors or the alert journal: a channel shows a webhook as
``https://hooks.slack.com/***``, and whatever an alert or an error quotes of a secret is
masked before it is sent, logged or journaled.
"""

from __future__ import annotations

import json
import logging
import math
import os
import queue
import smtplib
import ssl
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from email.message import EmailMessage
from pathlib import Path
from typing import Literal, final

import attrs

from ibkrfw._net import is_loopback
from ibkrfw._redact import MASK, Secret, mask_url, redact, redact_json, register_secret
from ibkrfw.errors import ConfigError

__all__ = [
    "Alert",
    "Alerter",
    "Channel",
    "Delivery",
    "EmailChannel",
    "LogChannel",
    "WebhookChannel",
    "read_secret",
]

log = logging.getLogger("ibkrfw.alerts")

Severity = Literal["info", "warning", "critical"]
_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.CRITICAL}


@final
@attrs.frozen
class Alert:
    """Something an operator should hear about.

    Args:
        kind: What happened, as a short code (``"disconnected"``, ``"order_rejected"``,
            ``"risk_halt"``, ``"drawdown"``, ``"stale_data"``, ``"reconciliation"``,
            ``"strategy_error"``, ``"channel_failed"``, ``"daily_summary"``...).
        title: One line.
        message: The details.
        severity: ``"info"``, ``"warning"`` or ``"critical"``.
        key: What makes two alerts "the same" for de-duplication (the kind and title if
            empty).
        ts_ns: When it happened (UTC ns; 0: when it was sent).
    """

    kind: str
    title: str
    message: str = ""
    severity: Severity = "warning"
    key: str = ""
    ts_ns: int = 0

    @property
    def dedupe_key(self) -> str:
        """The key repeats are recognised by."""
        return self.key or f"{self.kind}:{self.title}"


def read_secret(
    *, env: str | None = None, file: str | os.PathLike[str] | None = None, what: str = "secret"
) -> str:
    """Read a secret from an environment variable or a file (its first line), in that order.

    The value is registered as a secret (see ``ibkrfw._redact``): from then on it is masked in
    every log record, journal line, alert and error ibkrfw writes.

    Raises:
        ConfigError: if neither gives a value (the message names where it looked, never the
            value).
    """
    if env:
        value = os.environ.get(env, "")
        if value:
            register_secret(value)
            return value
    if file:
        try:
            text = Path(file).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read the {what} file {file}: {exc.strerror}") from None
        value = text.splitlines()[0].strip() if text.strip() else ""
        if value:
            register_secret(value)
            return value
    where = " or ".join(x for x in (f"${env}" if env else "", str(file) if file else "") if x)
    raise ConfigError(f"no {what}: set {where or 'an environment variable or a secrets file'}")


class Channel(ABC):
    """Somewhere alerts go. :meth:`send` runs on the alerter's thread and may raise."""

    name: str = "channel"

    @abstractmethod
    def send(self, alert: Alert) -> None:
        """Deliver ``alert``; raise if it could not be delivered."""


@final
class LogChannel(Channel):
    """Alerts as log records on ``ibkrfw.alerts`` (at the alert's severity)."""

    name = "log"

    def send(self, alert: Alert) -> None:
        """Log ``alert``."""
        text = f"{alert.title}: {alert.message}" if alert.message else alert.title
        log.log(_LEVELS.get(alert.severity, logging.WARNING), "[%s] %s", alert.kind, text)


@final
class EmailChannel(Channel):
    """Alerts by email, over SMTP with STARTTLS and a login.

    The password comes from the environment variable ``password_env`` or the first line of
    ``password_file``, read when the channel is built; it is never logged or shown.

    Args:
        host: The SMTP server.
        port: Its port (587 for STARTTLS submission).
        sender: The From address.
        recipients: The To addresses.
        username: The login (None: no login).
        password_env: The environment variable holding the password.
        password_file: A file whose first line is the password.
        starttls: Upgrade the connection with STARTTLS before logging in (on by default; a
            server that does not offer it is an error, so a password is never sent in clear).
            Off, a login is refused unless ``host`` is this machine (a local relay).
        tls_context: The TLS settings (the system's defaults if None).
        timeout: Seconds to wait for the server.
        subject_prefix: Put before each subject.

    Raises:
        ConfigError: for no recipients, a login without a password, or a login without
            STARTTLS to a server that is not on this machine (the password would cross the
            network in clear).
    """

    name = "email"

    def __init__(
        self,
        host: str,
        port: int = 587,
        *,
        sender: str,
        recipients: Sequence[str],
        username: str | None = None,
        password_env: str | None = "IBKRFW_SMTP_PASSWORD",
        password_file: str | os.PathLike[str] | None = None,
        starttls: bool = True,
        tls_context: ssl.SSLContext | None = None,
        timeout: float = 10.0,
        subject_prefix: str = "[ibkrfw] ",
    ) -> None:
        if not recipients:
            raise ConfigError("an EmailChannel needs at least one recipient")
        if username and not starttls and not is_loopback(host):
            raise ConfigError(
                f"an SMTP login to {host}:{port} without STARTTLS would send the password in "
                "clear across the network: set starttls = true (the server must offer it, "
                "usually on port 587), or send through a relay on this machine (host = "
                '"127.0.0.1"), or drop the login (username)'
            )
        self.host, self.port = host, port
        self.sender, self.recipients = sender, list(recipients)
        self.username = username
        self._password = (
            Secret(read_secret(env=password_env, file=password_file, what="SMTP password"))
            if username
            else None
        )
        self.starttls = starttls
        self.tls_context = tls_context
        self.timeout = timeout
        self.subject_prefix = subject_prefix

    def __repr__(self) -> str:
        return (
            f"EmailChannel({self.host}:{self.port}, to={self.recipients}, "
            f"user={self.username!r}, password={MASK if self._password else None})"
        )

    def send(self, alert: Alert) -> None:
        """Send ``alert`` as one email."""
        message = EmailMessage()
        message["Subject"] = f"{self.subject_prefix}{alert.severity.upper()}: {alert.title}"
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message.set_content(f"{alert.title}\n\n{alert.message}\n\n(kind: {alert.kind})\n")
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
            smtp.ehlo()
            if self.starttls:
                smtp.starttls(context=self.tls_context or ssl.create_default_context())
                smtp.ehlo()
            if self.username and self._password is not None:
                try:
                    smtp.login(self.username, self._password.reveal())
                except smtplib.SMTPAuthenticationError as exc:
                    # the server's answer, never the password
                    raise ConnectionError(f"SMTP login refused for {self.username}: "
                                          f"{exc.smtp_code}") from None  # fmt: skip
            smtp.send_message(message)


WebhookFormat = Literal["json", "slack", "discord", "sms"]


@final
class WebhookChannel(Channel):
    """Alerts as JSON POSTs: plain, or shaped for Slack, Discord or an SMS gateway.

    Formats: ``"json"`` posts the alert's fields; ``"slack"`` ``{"text": ...}`` (incoming
    webhooks); ``"discord"`` ``{"content": ...}``; ``"sms"`` ``{"to": ..., "message": ...}``
    with a short text, for gateways that take a webhook (set ``sms_to``). A bearer token, if
    any, comes from the environment variable ``token_env`` and goes in the Authorization
    header. The URL is a secret too (a Slack or Discord webhook's token is its path, some
    gateways put a key in the query): it is shown as its scheme, host and port only
    (``https://hooks.slack.com/***``), in the repr, in errors and in logs.

    Redirects are not followed: an answer of 3xx (an ``http://`` URL the server moves to
    ``https://``, say) is a failed delivery whose error names the status and where it pointed
    (masked), so an alert is never silently lost and the token never goes to another address.
    Put the final URL in the configuration.

    Args:
        url: Where to post.
        format: The body's shape.
        token_env: The environment variable holding a bearer token (none if None).
        sms_to: The phone number for the ``"sms"`` format.
        timeout: Seconds to wait for the answer.

    Raises:
        ConfigError: for a URL that is not http(s), or ``"sms"`` without ``sms_to``.
    """

    def __init__(
        self,
        url: str,
        format: WebhookFormat = "json",
        *,
        token_env: str | None = None,
        sms_to: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"a webhook URL must be http(s), got {mask_url(url)!r}")
        if format not in ("json", "slack", "discord", "sms"):
            raise ConfigError(f"unknown webhook format {format!r}")
        if format == "sms" and not sms_to:
            raise ConfigError("the sms format needs sms_to (the phone number)")
        self._url = Secret(url)
        self.format: WebhookFormat = format
        self.name = f"webhook:{format}"
        self._token = (
            Secret(read_secret(env=token_env, what="webhook token")) if token_env else None
        )
        self.sms_to = sms_to
        self.timeout = timeout

    @property
    def url(self) -> str:
        """Where alerts are posted, masked (the scheme, host and port, never the path or query)."""
        return mask_url(self._url.reveal())

    def __repr__(self) -> str:
        return f"WebhookChannel({self.url}, format={self.format!r})"

    def body(self, alert: Alert) -> dict[str, object]:
        """The JSON body posted for ``alert``."""
        text = f"[{alert.severity.upper()}] {alert.title}"
        if self.format == "slack":
            return {"text": f"*{text}*\n{alert.message}" if alert.message else text}
        if self.format == "discord":
            return {"content": f"**{text}**\n{alert.message}"[:2000]}
        if self.format == "sms":
            return {"to": self.sms_to, "message": text[:160]}
        return {
            "kind": alert.kind, "severity": alert.severity, "title": alert.title,
            "message": alert.message, "ts_ns": alert.ts_ns,
        }  # fmt: skip

    def send(self, alert: Alert) -> None:
        """POST ``alert``; raise unless the answer is 2xx (a redirect included)."""
        data = json.dumps(self.body(alert)).encode()
        request = urllib.request.Request(self._url.reveal(), data=data, method="POST")
        request.add_header("Content-Type", "application/json")
        if self._token:
            request.add_header("Authorization", f"Bearer {self._token.reveal()}")
        try:
            with _OPENER.open(request, timeout=self.timeout) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            location = exc.headers.get("Location") if exc.headers is not None else None
            exc.close()  # it holds the answer's socket open until collected (a ResourceWarning)
            if 300 <= exc.code < 400:
                where = (
                    f"to {mask_url(urllib.parse.urljoin(self._url.reveal(), location))}"
                    if location
                    else "(no Location)"
                )
                raise ConnectionError(
                    f"{self!r} answered {exc.code} {where}: ibkrfw does not follow redirects; "
                    "put the final URL in the configuration"
                ) from None
            raise ConnectionError(f"{self!r} answered {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = redact(str(getattr(exc, "reason", exc)))  # may quote the URL
            raise ConnectionError(f"{self!r} unreachable: {reason}") from None
        if not 200 <= status < 300:
            raise ConnectionError(f"{self!r} answered {status}")


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """Follow no redirect: the 3xx answer then reaches ``send`` as an HTTPError.

    urllib would otherwise re-send the request, with its Authorization header, to wherever
    the answer points (another host included), as a GET without the alert.
    """

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_OPENER = urllib.request.build_opener(_RefuseRedirects)


@final
@attrs.frozen
class Delivery:
    """What became of one alert on one channel (``error`` empty when it went out)."""

    alert: Alert
    channel: str
    ok: bool
    error: str = ""
    at: float = 0.0


_STOP = object()


@final
class Alerter:
    """Deliver alerts to channels on a background thread, de-duplicated and rate-limited.

    :meth:`send` never blocks and never raises: the alert is queued. The thread delivers it to
    every channel, under two rules:

    * **Repeats**: an alert with the same :attr:`Alert.dedupe_key` as one sent less than
      ``quiet_s`` ago is dropped (and counted in ``suppressed``), whatever its severity.
    * **The hourly cap**: once ``max_per_hour`` alerts went out in the last 60 minutes,
      ``warning`` and ``info`` alerts are held back (written to the ``ibkrfw.alerts`` log at
      their level, and counted) until the hour has room again. **Critical alerts** (a halt,
      a drawdown, a lasting disconnection, a failed run...) **and the daily summary** (one a
      day, expected) **are never held back**; they count toward the cap of the others, as
      messages the operator received. When the cap is first reached, one ``alerts_capped``
      notice (a warning, itself past the cap) goes to every channel, saying for how long
      and that critical alerts still go out; the next notice comes only after the hour had
      room again.

    A channel that fails is reported on the log and, as a ``channel_failed`` alert, on the
    other channels (itself de-duplicated); delivery goes on.

    With a ``journal`` file, every delivery is appended to it as one JSON line, and a new
    alerter reads it back: :meth:`recent` (and the dashboard) show the alerts of earlier
    runs, and the quiet periods, the hourly count (critical alerts included) and a notice
    already sent carry over a restart, so a process that a supervisor restarts again and
    again neither repeats an alert nor the notice at each start. A journal that cannot be
    read or written is reported on the log; alerts still go out.

    Args:
        channels: Where alerts go (a :class:`LogChannel` is a good first one).
        quiet_s: How long repeats of an alert are dropped.
        max_per_hour: The most alerts delivered in any 60 minutes, critical alerts and the
            daily summary excepted (they go out past it).
        clock: Seconds, monotonic (for tests).
        journal: A file to keep the deliveries in across restarts (JSON lines); none if None.
        wall_clock: UTC nanoseconds (for tests): relates the journal's times to ``clock``.

    Example:
        >>> alerter = Alerter([LogChannel()]).start()
        >>> alerter.send(Alert("order_rejected", "order 7 rejected", "201: no margin"))
        >>> alerter.stop()
        >>> [d.channel for d in alerter.deliveries]
        ['log']
    """

    def __init__(
        self,
        channels: Sequence[Channel],
        *,
        quiet_s: float = 900.0,
        max_per_hour: int = 30,
        clock: Callable[[], float] = time.monotonic,
        journal: str | os.PathLike[str] | None = None,
        wall_clock: Callable[[], int] = time.time_ns,
    ) -> None:
        if not channels:
            raise ConfigError("an Alerter needs at least one channel")
        self.channels = list(channels)
        self.quiet_s = quiet_s
        self.max_per_hour = max_per_hour
        self._clock = clock
        self._queue: queue.Queue[object] = queue.Queue()
        self._last: dict[str, float] = {}
        self._sent_times: deque[float] = deque()
        self._capped = False  # over the cap, and the notice was sent
        self._notice: Alert | None = None  # the notice to send, when the cap is first reached
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.deliveries: deque[Delivery] = deque(maxlen=500)
        """The latest deliveries (and failures), newest last."""
        self.suppressed = 0
        """How many alerts were dropped as repeats or over the hourly cap."""
        self._wall_clock = wall_clock
        self.journal = None if journal is None else Path(journal)
        """The file deliveries are kept in across restarts, if any."""
        self._journal_failed = False
        if self.journal is not None:
            self._reload(self.journal)

    def start(self) -> Alerter:
        """Start the delivery thread (idempotent); returns the alerter."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="ibkrfw-alerts", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Deliver what is queued (within ``timeout``), then stop the thread."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout)
            self._thread = None

    def send(self, alert: Alert) -> None:
        """Queue ``alert`` for delivery (from any thread; never blocks, never raises).

        Any secret its title or message quotes (an error that cites a URL) is masked first.
        """
        title, message = redact(alert.title), redact(alert.message)
        if alert.ts_ns == 0 or title != alert.title or message != alert.message:
            alert = attrs.evolve(
                alert, title=title, message=message, ts_ns=alert.ts_ns or time.time_ns()
            )
        self._queue.put(alert)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything queued so far was handled; False on timeout."""
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def recent(self, n: int = 20) -> list[Delivery]:
        """The last ``n`` deliveries, newest first."""
        with self._lock:
            return list(self.deliveries)[-n:][::-1]

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if isinstance(item, threading.Event):
                item.set()
                continue
            if isinstance(item, Alert):
                self._deliver(item)

    def _admit(self, alert: Alert) -> bool:
        now = self._clock()
        key = alert.dedupe_key
        last = self._last.get(key)
        if last is not None and now - last < self.quiet_s:
            self.suppressed += 1
            log.debug("[%s] %s: a repeat within %g s, not sent", alert.kind, alert.title,
                      self.quiet_s)  # fmt: skip
            return False
        times = self._sent_times
        while times and now - times[0] >= 3600:
            times.popleft()
        if len(times) < self.max_per_hour:
            self._capped = False
        elif alert.severity != "critical" and alert.kind not in _UNCAPPED_KINDS:
            self.suppressed += 1
            text = f"{alert.title}: {alert.message}" if alert.message else alert.title
            log.log(_LEVELS.get(alert.severity, logging.WARNING),
                    "[%s] %s (not sent: the hourly cap of %d alerts is reached)",
                    alert.kind, text, self.max_per_hour)  # fmt: skip
            if not self._capped:
                self._capped = True
                self._notice = self._cap_notice(now)
            return False
        self._last[key] = now
        times.append(now)
        return True

    def _cap_notice(self, now: float) -> Alert:
        times = self._sent_times
        wait_min = math.ceil(max(0.0, times[0] + 3600 - now) / 60) if times else 60
        return Alert(
            _CAP_NOTICE,
            f"alert cap of {self.max_per_hour} an hour reached",
            f"Warning and info alerts are held back for about {wait_min} min (the hourly cap "
            f"of {self.max_per_hour}); they are written to the log. Critical alerts and the "
            "daily summary still go out.",
            "warning",
            key=_CAP_NOTICE,
            ts_ns=self._wall_clock(),
        )

    def _deliver(self, alert: Alert, skip: Channel | None = None) -> None:
        if not self._admit(alert):
            notice, self._notice = self._notice, None
            if notice is not None:  # once per spell over the cap, past the cap itself
                log.warning("%s: %s", notice.title, notice.message)
                self._sent_times.append(self._clock())
                self._broadcast(notice)
            return
        self._broadcast(alert, skip)

    def _broadcast(self, alert: Alert, skip: Channel | None = None) -> None:
        for channel in self.channels:
            if channel is skip:
                continue
            try:
                channel.send(alert)
            except Exception as exc:  # a channel's failure is news, not a crash
                error = redact(f"{type(exc).__name__}: {exc}")  # it may quote a URL or login
                self._record(Delivery(alert, channel.name, False, error, self._clock()))
                log.warning("alert channel %s failed: %s", channel.name, error)
                if alert.kind != "channel_failed":
                    failed = Alert(
                        "channel_failed", f"alert channel {channel.name} failed", error,
                        "warning", key=f"channel_failed:{channel.name}", ts_ns=time.time_ns(),
                    )  # fmt: skip
                    self._deliver(failed, skip=channel)
            else:
                self._record(Delivery(alert, channel.name, True, "", self._clock()))

    def _record(self, delivery: Delivery) -> None:
        with self._lock:
            self.deliveries.append(delivery)
        if self.journal is not None:
            self._append(self.journal, delivery)

    def _append(self, path: Path, delivery: Delivery) -> None:
        alert = delivery.alert
        line = json.dumps(redact_json({
            "ts_ns": alert.ts_ns, "kind": alert.kind, "title": alert.title,
            "message": alert.message, "severity": alert.severity, "key": alert.key,
            "channel": delivery.channel, "ok": delivery.ok, "error": delivery.error,
            "at_ns": self._wall_clock(),
        }))  # fmt: skip
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as handle:
                handle.write(line + "\n")
        except OSError as exc:
            if not self._journal_failed:  # said once; the alerts themselves still go out
                self._journal_failed = True
                log.warning("cannot write the alert journal %s: %s", path, exc)

    def _reload(self, path: Path) -> None:
        """Take the deliveries, the quiet periods and the hourly count from ``path``."""
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return
        except OSError as exc:
            log.warning("cannot read the alert journal %s: %s", path, exc)
            return
        now, wall = self._clock(), self._wall_clock()
        kept: list[str] = []
        bad = masked = 0
        for line in lines[-_JOURNAL_KEEP:]:
            try:
                row = json.loads(line)
                clean = redact_json(row)  # a journal written before a secret was masked
                if clean != row:
                    row, line = clean, json.dumps(clean)
                    masked += 1
                alert = Alert(row["kind"], row["title"], row["message"], row["severity"],
                              row["key"], int(row["ts_ns"]))  # fmt: skip
                delivery = Delivery(alert, row["channel"], bool(row["ok"]), row["error"],
                                    now - (wall - int(row["at_ns"])) / 1e9)  # fmt: skip
            except (ValueError, KeyError, TypeError):
                bad += 1
                continue
            kept.append(line)
            self.deliveries.append(delivery)
            if self._last.get(alert.dedupe_key, -math.inf) < delivery.at:
                self._last[alert.dedupe_key] = delivery.at  # its quiet period goes on
        # the hourly cap counts alerts, not deliveries: one per alert and time
        sent = sorted({(d.alert.dedupe_key, d.alert.ts_ns): d.at for d in self.deliveries}.values())
        self._sent_times.extend(t for t in sent if now - t < 3600)
        # still over the cap, and its notice went out: it is not sent again at each restart
        self._capped = len(self._sent_times) >= self.max_per_hour and any(
            d.alert.kind == _CAP_NOTICE and now - d.at < 3600 for d in self.deliveries
        )
        if bad:
            log.warning("the alert journal %s has %d unreadable line(s): skipped", path, bad)
        if len(lines) > 2 * _JOURNAL_KEEP or bad or masked:  # keep the file short and clean
            try:
                temp = path.with_name(path.name + ".tmp")
                temp.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")
                os.replace(temp, path)
            except OSError as exc:
                log.warning("cannot rewrite the alert journal %s: %s", path, exc)


_JOURNAL_KEEP = 500  # deliveries read back from an alert journal (the length of `deliveries`)
_CAP_NOTICE = "alerts_capped"  # the notice that the hourly cap is reached
_UNCAPPED_KINDS = frozenset({"daily_summary"})  # never held back by the cap (nor critical alerts)


def channels_from_config(table: Mapping[str, object]) -> list[Channel]:
    """Build channels from an ``[alerts]`` TOML table (see the deployment guide).

    Raises:
        ConfigError: for an unknown channel type or a missing setting.
    """
    built: list[Channel] = [LogChannel()]
    email = table.get("email")
    if isinstance(email, Mapping):
        try:
            built.append(EmailChannel(**dict(email)))
        except (TypeError, ConfigError) as exc:
            raise ConfigError(f"[alerts.email]: {exc}") from None
    hooks = table.get("webhook", [])
    for hook in hooks if isinstance(hooks, list) else [hooks]:
        if not isinstance(hook, Mapping):
            raise ConfigError("[[alerts.webhook]] entries must be tables")
        try:
            built.append(WebhookChannel(**dict(hook)))
        except (TypeError, ConfigError) as exc:
            raise ConfigError(f"[[alerts.webhook]]: {exc}") from None
    return built
