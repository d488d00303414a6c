"""Alerts to a real SMTP server (STARTTLS, login) and real webhooks, all on loopback."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from ibkrfw import ConfigError
from ibkrfw.monitoring import (
    Alert,
    Alerter,
    EmailChannel,
    LogChannel,
    WebhookChannel,
    channels_from_config,
    read_secret,
)

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")
aiosmtpd_smtp = pytest.importorskip("aiosmtpd.smtp")
trustme = pytest.importorskip("trustme")

PASSWORD = "s3cret-Pa55"


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.logins: list[tuple[str, bool]] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


def _free_port() -> int:
    import socket

    with socket.socket() as probe:  # aiosmtpd needs a port number before it starts
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def smtp_server() -> Iterator[tuple[Any, _Inbox, Any]]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    import ssl

    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    inbox = _Inbox()

    def authenticate(server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
        ok = auth_data.login == b"bot" and auth_data.password == PASSWORD.encode()
        inbox.logins.append((auth_data.login.decode(), ok))
        return aiosmtpd_smtp.AuthResult(success=ok, handled=False)  # the server answers 535

    controller = aiosmtpd_controller.Controller(
        inbox, hostname="127.0.0.1", port=_free_port(), tls_context=server_ctx,
        require_starttls=True, authenticator=authenticate, auth_required=True,
        auth_require_tls=True,
    )  # fmt: skip
    controller.start()
    try:
        yield controller, inbox, client_ctx
    finally:
        controller.stop()


def test_an_alert_arrives_by_email_over_starttls_with_a_login(
    smtp_server, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    controller, inbox, client_ctx = smtp_server
    monkeypatch.setenv("IBKRFW_SMTP_PASSWORD", PASSWORD)
    channel = EmailChannel(
        "127.0.0.1", controller.port, sender="bot@desk.test", recipients=["me@desk.test"],
        username="bot", tls_context=client_ctx,
    )  # fmt: skip
    assert PASSWORD not in repr(channel)
    caplog.set_level(logging.DEBUG)
    alerter = Alerter([LogChannel(), channel]).start()
    alerter.send(Alert("order_rejected", "order 7 rejected", "201: insufficient margin",
                       "critical"))  # fmt: skip
    assert alerter.flush()
    alerter.stop()
    ((sender, rcpts, raw),) = inbox.messages
    mail = message_from_bytes(raw)
    assert sender == "bot@desk.test" and rcpts == ["me@desk.test"]
    assert mail["Subject"] == "[ibkrfw] CRITICAL: order 7 rejected"
    assert "201: insufficient margin" in mail.get_payload()
    assert inbox.logins == [("bot", True)]
    assert [d.ok for d in alerter.deliveries] == [True, True]
    assert PASSWORD not in caplog.text  # never logged


def test_a_refused_login_is_reported_without_the_password(
    smtp_server, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    controller, inbox, client_ctx = smtp_server
    monkeypatch.setenv("WRONG_PASSWORD", "not-" + PASSWORD)
    channel = EmailChannel(
        "127.0.0.1", controller.port, sender="bot@desk.test", recipients=["me@desk.test"],
        username="bot", password_env="WRONG_PASSWORD", tls_context=client_ctx,
    )  # fmt: skip
    alerter = Alerter([LogChannel(), channel]).start()
    alerter.send(Alert("risk_halt", "trading halted", "drawdown 21 %", "critical"))
    assert alerter.flush()
    alerter.stop()
    assert inbox.messages == []
    failed = [d for d in alerter.deliveries if not d.ok]
    assert failed[0].channel == "email" and "SMTP login refused for bot" in failed[0].error
    # the failure itself went out on the other channel
    assert any(d.alert.kind == "channel_failed" and d.ok for d in alerter.deliveries)
    assert PASSWORD not in caplog.text and "not-" + PASSWORD not in caplog.text


class _Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, dict[str, Any], str]]] = []
    status = 200

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        body = json.loads(self.rfile.read(length))
        type(self).received.append((self.path, body, self.headers.get("Authorization", "")))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hook_server() -> Iterator[str]:
    _Hook.received = []
    _Hook.status = 200
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_webhooks_in_every_format(hook_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_TOKEN", "tok-123")
    channels = [
        WebhookChannel(f"{hook_server}/json", token_env="HOOK_TOKEN"),
        WebhookChannel(f"{hook_server}/slack", "slack"),
        WebhookChannel(f"{hook_server}/discord", "discord"),
        WebhookChannel(f"{hook_server}/sms?key=abc", "sms", sms_to="+15550100"),
    ]
    assert "key=abc" not in repr(channels[-1])
    alerter = Alerter(channels).start()
    alerter.send(Alert("disconnected", "IB disconnected for 5 min", "since 03:12", "critical"))
    assert alerter.flush()
    alerter.stop()
    got = {path.split("?")[0]: (body, auth) for path, body, auth in _Hook.received}
    assert got["/json"][0]["title"] == "IB disconnected for 5 min"
    assert got["/json"][1] == "Bearer tok-123"
    assert got["/slack"][0] == {"text": "*[CRITICAL] IB disconnected for 5 min*\nsince 03:12"}
    assert got["/discord"][0]["content"].startswith("**[CRITICAL] IB disconnected")
    assert got["/sms"][0] == {"to": "+15550100", "message": "[CRITICAL] IB disconnected for 5 min"}


def test_repeats_are_dropped_and_the_hourly_cap_holds(hook_server: str) -> None:
    now = [0.0]
    alerter = Alerter([WebhookChannel(hook_server)], quiet_s=600, max_per_hour=3,
                      clock=lambda: now[0]).start()  # fmt: skip
    for _ in range(5):
        alerter.send(Alert("stale_data", "no bars of ACME for 10 min"))
    assert alerter.flush()
    assert len(_Hook.received) == 1 and alerter.suppressed == 4
    now[0] = 700.0  # the quiet period is over: the same alert goes out again
    alerter.send(Alert("stale_data", "no bars of ACME for 10 min"))
    for i in range(5):
        alerter.send(Alert("order_rejected", f"order {i} rejected"))
    assert alerter.flush()
    alerter.stop()
    kinds = [body["kind"] for _, body, _ in _Hook.received]
    # the cap: 3 within the hour, then one notice that it is reached
    assert kinds == ["stale_data", "stale_data", "order_rejected", "alerts_capped"]


def test_a_failing_channel_never_blocks_and_is_itself_reported(hook_server: str) -> None:
    _Hook.status = 500
    dead = WebhookChannel("http://127.0.0.1:9/nowhere", timeout=1.0)  # nothing listens there
    broken = WebhookChannel(hook_server)
    alerter = Alerter([LogChannel(), dead, broken]).start()
    alerter.send(Alert("strategy_error", "on_bar raised", "ZeroDivisionError"))
    assert alerter.flush()
    alerter.stop()
    failed = [(d.alert.kind, d.error) for d in alerter.deliveries if not d.ok]
    # the alert failed on both webhooks; the notice about the first went to the log (ok) and to
    # the broken one (failed again, and not reported once more: no storm)
    assert [k for k, _ in failed] == ["strategy_error", "channel_failed", "strategy_error"]
    assert "unreachable" in failed[0][1]
    assert "answered 500" in failed[1][1] and "answered 500" in failed[2][1]
    kinds = [d.alert.kind for d in alerter.deliveries if d.ok]
    assert kinds.count("channel_failed") >= 1  # reported on the log channel


def test_secrets_and_configuration(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = tmp_path / "smtp-password"
    secret.write_text("from-file\n")
    assert read_secret(env="NOT_SET_ANYWHERE", file=secret) == "from-file"
    with pytest.raises(ConfigError, match=r"no SMTP password: set \$NOPE") as info:
        read_secret(env="NOPE", what="SMTP password")
    assert "from-file" not in str(info.value)
    monkeypatch.setenv("IBKRFW_SMTP_PASSWORD", "x")
    channels = channels_from_config({
        "email": {"host": "127.0.0.1", "sender": "a@b", "recipients": ["c@d"], "username": "u"},
        "webhook": [{"url": "http://127.0.0.1:1/x", "format": "slack"}],
    })  # fmt: skip
    assert [c.name for c in channels] == ["log", "email", "webhook:slack"]
    with pytest.raises(ConfigError, match=r"\[alerts.email\]"):
        channels_from_config({"email": {"host": "h", "colour": "red"}})
    with pytest.raises(ConfigError, match="http"):
        WebhookChannel("ftp://example.test/")


def test_a_kill_switch_halt_reaches_the_operator_after_a_restart_in_a_spent_hour(
    hook_server: str, tmp_path
) -> None:
    from ibkrfw import Engine, Stock
    from ibkrfw.monitoring import LiveMonitor
    from ibkrfw.risk import MaxDrawdownKillSwitch
    from ibkrfw.sim import DataFrameFeed, SimBroker
    from ibkrfw.testing import ScriptedStrategy, bars_frame

    journal = tmp_path / "state" / "alerts.jsonl"
    # the earlier process spent the hour on warnings, then a supervisor restarted it
    first = Alerter([WebhookChannel(hook_server)], journal=journal, max_per_hour=3).start()
    for symbol in ("AAA", "BBB", "CCC", "DDD"):
        first.send(Alert("stale_data", f"no new bar of {symbol} for 20 min"))
    first.stop()
    alerter = Alerter([LogChannel(), WebhookChannel(hook_server)], journal=journal,
                      max_per_hour=3).start()  # fmt: skip
    monitor = LiveMonitor(alerter=alerter, drawdown_alert=0.1, daily_loss_alert=0.05,
                          stale_after_s=10 * 86_400)  # fmt: skip
    acme = Stock("ACME")
    rows = [(100, 100, 100, 100)] * 3 + [(80, 80, 80, 80)] * 3
    feed = DataFrameFeed(bars_frame(rows, start="2024-01-02 15:00", freq="1h"), acme)
    strategy = ScriptedStrategy({0: lambda c, b: c.buy(acme, 90)})
    result = Engine(strategy, feed, SimBroker(10_000), observers=[monitor],
                    risk_monitors=[MaxDrawdownKillSwitch(0.15)]).run()  # fmt: skip
    assert alerter.flush()
    alerter.stop()
    assert result.halts and result.halts[0].flatten
    kinds = [body["kind"] for _, body, _ in _Hook.received]
    # the halt, the drawdown and the day's loss are critical: they go out past the spent
    # hour; the notice is not sent again by the restarted process
    assert kinds == ["stale_data"] * 3 + ["alerts_capped", "risk_halt", "drawdown", "daily_loss"]


def test_webhook_url_token_is_never_shown(
    hook_server: str, tmp_path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path, query = "services/T0W3B/B0W3B/urlTok3nInPath", "key=Qu3ryS3cret"
    monkeypatch.setenv("HOOK_BEARER", "bearer-T0k3n-9x")
    _Hook.status = 500
    failing = WebhookChannel(f"{hook_server}/{path}?{query}", "slack", token_env="HOOK_BEARER")
    dead = WebhookChannel(f"http://127.0.0.1:9/{path}-dead?{query}-dead", "discord", timeout=1)
    assert repr(failing) == f"WebhookChannel({hook_server}/***, format='slack')"
    assert failing.url == f"{hook_server}/***"
    assert repr(dead) == "WebhookChannel(http://127.0.0.1:9/***, format='discord')"
    caplog.set_level(logging.DEBUG)
    journal = tmp_path / "alerts.jsonl"
    alerter = Alerter([LogChannel(), failing, dead], journal=journal).start()
    # an alert quoting a secret (an error message that cites the URL) is masked before it goes
    quoted = f"URLError for {hook_server}/{path}?{query} with bearer-T0k3n-9x"
    alerter.send(Alert("strategy_error", "on_bar raised", quoted))
    assert alerter.flush()
    alerter.stop()
    assert _Hook.received[0][0] == f"/{path}?{query}"  # the real URL and token were used
    assert _Hook.received[0][2] == "Bearer bearer-T0k3n-9x"
    errors = [d.error for d in alerter.deliveries if not d.ok]
    assert errors and all("/***" in e for e in errors), errors
    sent = [json.dumps(body) for _, body, _ in _Hook.received]
    shown = "\n".join([caplog.text, journal.read_text(), repr(list(alerter.deliveries)), *sent])
    assert "URLError for ***" in shown
    for secret in (path, query, "bearer-T0k3n-9x", "urlTok3nInPath", "Qu3ryS3cret"):
        assert secret not in shown, secret


def test_a_journal_written_before_masking_is_cleaned_when_read(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = tmp_path / "alerts.jsonl"
    url = "https://hooks.example/services/T0OLD/B0OLD/0ldT0kenPath"
    row = {"ts_ns": 1, "kind": "channel_failed", "title": "alert channel webhook:slack failed",
           "message": f"WebhookChannel({url}) answered 500", "severity": "warning",
           "key": "", "channel": "log", "ok": True, "error": "", "at_ns": 1}  # fmt: skip
    journal.write_text(json.dumps(row) + "\n")
    channel = WebhookChannel(url, "slack")  # reading the configuration registers the URL
    alerter = Alerter([LogChannel(), channel], journal=journal)
    assert "0ldT0kenPath" not in repr(alerter.recent())
    assert "0ldT0kenPath" not in journal.read_text()
    assert "WebhookChannel(***) answered 500" in journal.read_text()


def test_bad_webhook_url_and_secrets_files_never_echo_the_secret(tmp_path) -> None:
    with pytest.raises(ConfigError) as info:
        WebhookChannel("ftp://bot:pa55w0rd-x@files.example/drop/T0KEN-in-path")
    assert str(info.value) == "a webhook URL must be http(s), got 'ftp://***@files.example/***'"
    secret = tmp_path / "smtp-password"
    secret.write_text("fr0m-a-file-pw\n")
    assert read_secret(file=secret) == "fr0m-a-file-pw"
    from ibkrfw._redact import redact

    assert redact("smtp said fr0m-a-file-pw") == "smtp said ***"  # registered when read


class _Elsewhere(BaseHTTPRequestHandler):
    """Another host, where a redirect would lead: it records whatever reaches it."""

    seen: ClassVar[list[tuple[str, str, str]]] = []

    def do_GET(self) -> None:
        type(self).seen.append((self.command, self.path, self.headers.get("Authorization", "")))
        self.send_response(200)
        self.end_headers()

    def do_POST(self) -> None:
        self.do_GET()

    def log_message(self, *args: object) -> None:
        pass


class _Redirecting(BaseHTTPRequestHandler):
    """A webhook endpoint answering every POST with a redirect to ``location``."""

    status = 302
    location = ""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(type(self).status)
        if type(self).location:
            self.send_header("Location", type(self).location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def redirect_servers() -> Iterator[tuple[str, str]]:
    _Elsewhere.seen = []
    servers = [ThreadingHTTPServer(("127.0.0.1", 0), h) for h in (_Redirecting, _Elsewhere)]
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    try:
        hook, other = servers
        yield (f"http://127.0.0.1:{hook.server_address[1]}",
               f"localhost:{other.server_address[1]}")  # fmt: skip
    finally:
        for server, thread in zip(servers, threads, strict=True):
            server.shutdown()
            server.server_close()
            thread.join(5)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_webhook_redirect_is_a_failed_delivery_and_the_token_never_goes_on(
    redirect_servers: tuple[str, str],
    status: int,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    hook, other = redirect_servers
    _Redirecting.status, _Redirecting.location = status, f"http://{other}/collect/R3dir-path"
    monkeypatch.setenv("HOOK_BEARER", "bearer-REDIRECT-secret-1")
    channel = WebhookChannel(f"{hook}/services/T/B/xyzTOKENpath", "json", token_env="HOOK_BEARER")
    with pytest.raises(ConnectionError) as info:
        channel.send(Alert("k", "title", "msg", "warning"))
    assert str(info.value) == (
        f"WebhookChannel({hook}/***, format='json') answered {status} to http://{other}/***: "
        "ibkrfw does not follow redirects; put the final URL in the configuration"
    )
    assert _Elsewhere.seen == []  # nothing reached the other host, the token least of all
    # through an alerter: a failed delivery, reported on the other channels
    caplog.set_level(logging.DEBUG)
    alerter = Alerter([LogChannel(), channel]).start()
    alerter.send(Alert("risk_halt", "trading halted", "drawdown 21 %", "critical"))
    assert alerter.flush()
    alerter.stop()
    failed = [d for d in alerter.deliveries if not d.ok]
    assert [d.channel for d in failed] == ["webhook:json"]
    assert f"answered {status} to http://{other}/***" in failed[0].error
    assert any(d.alert.kind == "channel_failed" and d.ok for d in alerter.deliveries)
    assert _Elsewhere.seen == []
    for secret in ("xyzTOKENpath", "R3dir-path", "bearer-REDIRECT-secret-1"):
        assert secret not in caplog.text and secret not in failed[0].error


def test_webhook_redirect_from_http_to_https_names_the_fix(
    redirect_servers: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    hook, _ = redirect_servers
    # the usual case: an http:// URL the server upgrades to https://, relative Location too
    _Redirecting.status, _Redirecting.location = 301, "https://hooks.example/services/x/y/z"
    channel = WebhookChannel(f"{hook}/services/x/y/z", "slack")
    with pytest.raises(ConnectionError, match=r"answered 301 to https://hooks\.example/\*\*\*: "
                       "ibkrfw does not follow redirects; put the final URL in the "
                       "configuration"):  # fmt: skip
        channel.send(Alert("k", "title"))
    _Redirecting.status, _Redirecting.location = 302, "/elsewhere/on-the-same-host"
    with pytest.raises(ConnectionError, match=rf"answered 302 to {hook}/\*\*\*: ibkrfw does"):
        channel.send(Alert("k", "title"))
    _Redirecting.status, _Redirecting.location = 302, ""
    with pytest.raises(ConnectionError, match=r"answered 302 \(no Location\): ibkrfw does not"):
        channel.send(Alert("k", "title"))


def test_email_login_without_starttls_is_refused_off_loopback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("IBKRFW_SMTP_PASSWORD", PASSWORD)
    with pytest.raises(ConfigError) as info:
        EmailChannel("smtp.example.com", 25, sender="a@b", recipients=["c@d"], username="bot",
                     starttls=False)  # fmt: skip
    message = str(info.value)
    assert message.startswith(
        "an SMTP login to smtp.example.com:25 without STARTTLS would send the password in clear"
    )
    assert "starttls = true" in message and PASSWORD not in message
    with pytest.raises(ConfigError, match=r"\[alerts.email\]: an SMTP login to 192\.0\.2\.5"):
        channels_from_config({"email": {"host": "192.0.2.5", "sender": "a@b",
                                        "recipients": ["c@d"], "username": "u",
                                        "starttls": False}})  # fmt: skip
    # no login, a server on this machine (a local relay), or STARTTLS: allowed
    EmailChannel("smtp.example.com", 25, sender="a@b", recipients=["c@d"], starttls=False)
    for local in ("127.0.0.1", "localhost", "::1"):
        EmailChannel(local, 25, sender="a@b", recipients=["c@d"], username="bot", starttls=False)
    EmailChannel("smtp.example.com", sender="a@b", recipients=["c@d"], username="bot")
