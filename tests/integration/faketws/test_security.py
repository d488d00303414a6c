"""Security of a live run: its secrets shown nowhere, and a fake TWS open to the network warned.

A live session with every kind of secret, then a grep of everything it wrote and showed.

The run trades against the fake TWS with an SMTP channel (a password, to a real SMTP server on
loopback), a webhook that answers 500 (a token in its path and query, and a bearer token), one
that nothing answers (another token in its path and query) and a dashboard with an access
token. Then every file under the state directory, the log, stdout and stderr, the dashboard's
answers, the emails sent and the reprs of the pieces are searched for each secret.
"""

from __future__ import annotations

import base64
import http.client
import logging
import socket
import ssl
import threading
from collections.abc import Iterator
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ibkrfw._redact import RedactingFilter, install_log_redaction
from ibkrfw.monitoring import (
    Alert,
    Alerter,
    DailySummary,
    Dashboard,
    EmailChannel,
    LiveMonitor,
    LogChannel,
    WebhookChannel,
)
from ibkrfw.testing import FakeTWS, LiveSession, ScriptedStrategy

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")
aiosmtpd_smtp = pytest.importorskip("aiosmtpd.smtp")
trustme = pytest.importorskip("trustme")

PASSWORD = "smtp-Pa55w0rd-7Qz"
WRONG_PASSWORD = "wr0ng-Pa55w0rd-3Kx"
BEARER = "bearer-T0ken-8Jd"
DASHBOARD_TOKEN = "dash-T0ken-5Mf2-w8q"
HOOK_PATH, HOOK_QUERY = "services/T0GREP/B0GREP/pathT0ken9", "key=queryT0ken4"
DEAD_PATH, DEAD_QUERY = "api/webhooks/1234/deadT0ken6", "sig=deadQueryT0ken2"
SECRETS = [
    PASSWORD, WRONG_PASSWORD, BEARER, DASHBOARD_TOKEN, HOOK_PATH, HOOK_QUERY, DEAD_PATH,
    DEAD_QUERY, "pathT0ken9", "queryT0ken4", "deadT0ken6", "deadQueryT0ken2",
    # as SMTP's AUTH LOGIN and AUTH PLAIN send the password
    base64.b64encode(PASSWORD.encode()).decode(),
    base64.b64encode(f"\0bot\0{PASSWORD}".encode()).decode(),
]  # fmt: skip


class _Failing(BaseHTTPRequestHandler):
    """A webhook endpoint that is down: 500 for every POST."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(500)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def failing_hook() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Failing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def smtp() -> Iterator[tuple[int, list[bytes], ssl.SSLContext]]:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    mails: list[bytes] = []

    class Inbox:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
            mails.append(envelope.content)
            return "250 OK"

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: Any, auth: Any) -> Any:
        ok = auth.login == b"bot" and auth.password == PASSWORD.encode()
        return aiosmtpd_smtp.AuthResult(success=ok, handled=False)

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    controller = aiosmtpd_controller.Controller(
        Inbox(), hostname="127.0.0.1", port=port, tls_context=server_ctx, require_starttls=True,
        authenticator=authenticate, auth_required=True, auth_require_tls=True,
    )  # fmt: skip
    controller.start()
    try:
        yield port, mails, client_ctx
    finally:
        controller.stop()


@pytest.fixture
def run_log(tmp_path: Path) -> Iterator[Path]:
    """The run's log: everything, DEBUG included, through the redacting filter."""
    path = tmp_path / "run.log"
    root = logging.getLogger()
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    logging.getLogger("ibapi").setLevel(logging.WARNING)  # as `ibkrfw run` does
    install_log_redaction()  # what `ibkrfw run` calls once logging is configured
    try:
        yield path
    finally:
        root.removeHandler(handler)
        handler.close()
        root.setLevel(level)
        logging.getLogger("ibapi").setLevel(logging.NOTSET)
        for each in root.handlers:  # pytest's own handlers got the filter too
            for added in [f for f in each.filters if isinstance(f, RedactingFilter)]:
                each.removeFilter(added)


def _dashboard_answers(port: int) -> list[str]:
    """What the dashboard answers, headers and bodies, to the token and to others."""
    asks = [
        ("/", "localhost", DASHBOARD_TOKEN), ("/app.js", "localhost", DASHBOARD_TOKEN),
        ("/api/state", "localhost", DASHBOARD_TOKEN), ("/metrics", "localhost", DASHBOARD_TOKEN),
        ("/healthz", "localhost", DASHBOARD_TOKEN),
        (f"/?token={DASHBOARD_TOKEN}", "localhost", None),
        (f"/api/state?token={DASHBOARD_TOKEN}", "127.0.0.1", None),
        ("/api/state", "localhost", "not-the-token"), ("/api/state", "evil.test", DASHBOARD_TOKEN),
    ]  # fmt: skip
    answers = []
    for path, host, token in asks:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.putrequest("GET", path, skip_host=True)
        conn.putheader("Host", host)
        if token is not None:
            conn.putheader("Authorization", f"Bearer {token}")
        conn.endheaders()
        response = conn.getresponse()
        answers.append(f"{response.status} {response.headers}\n{response.read().decode()}")
        conn.close()
    assert [a[:3] for a in answers] == ["200"] * 7 + ["401", "421"]
    return answers


def test_a_live_run_shows_none_of_its_secrets_anywhere(
    tmp_path: Path,
    failing_hook: str,
    smtp: tuple[int, list[bytes], ssl.SSLContext],
    run_log: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    smtp_port, mails, smtp_ctx = smtp
    state = tmp_path / "state"
    monkeypatch.setenv("IBKRFW_SMTP_PASSWORD", PASSWORD)
    monkeypatch.setenv("WRONG_SMTP_PASSWORD", WRONG_PASSWORD)
    monkeypatch.setenv("HOOK_BEARER", BEARER)
    monkeypatch.setenv("IBKRFW_DASHBOARD_TOKEN", DASHBOARD_TOKEN)
    hook_url = f"{failing_hook}/{HOOK_PATH}?{HOOK_QUERY}"
    dead_url = f"http://127.0.0.1:9/{DEAD_PATH}?{DEAD_QUERY}"
    channels = [
        LogChannel(),
        EmailChannel("127.0.0.1", smtp_port, sender="bot@desk.test", recipients=["me@desk.test"],
                     username="bot", tls_context=smtp_ctx),
        EmailChannel("127.0.0.1", smtp_port, sender="bot@desk.test", recipients=["me@desk.test"],
                     username="bot", password_env="WRONG_SMTP_PASSWORD", tls_context=smtp_ctx),
        WebhookChannel(hook_url, "slack", token_env="HOOK_BEARER"),
        WebhookChannel(dead_url, "discord", timeout=2),
    ]  # fmt: skip
    alerter = Alerter(channels, journal=state / "alerts.jsonl").start()
    monitor = LiveMonitor(alerter=alerter, journal_dir=state, stale_after_s=1e9)
    summary = DailySummary(monitor, alerter=alerter, directory=state / "summaries")
    buy = ScriptedStrategy({b: (lambda ctx, bar: ctx.buy(bar.instrument, 10)) for b in (0, 2)})
    with (
        FakeTWS.from_sample(["ACME"]) as tws,
        Dashboard(monitor, port=0) as dashboard,
        LiveSession(buy, tws, observers=[monitor, summary], state_dir=state) as session,
    ):
        tws.reject_next_order(201, "Order rejected - reason: no margin")
        session.step(5)
        # errors quoting secrets, as a library's exception or log line would
        alerter.send(Alert("strategy_error", "on_bar raised",
                           f"HTTPError 500 from {hook_url} (login bot:{PASSWORD})"))  # fmt: skip
        logging.getLogger("some.library").warning("POST %s failed (Bearer %s)", dead_url, BEARER)
        assert alerter.flush(30)
        answers = _dashboard_answers(dashboard.port)
        shown = [repr(dashboard), repr(alerter), repr(list(alerter.deliveries))]
        shown += [repr(c) for c in channels]
        session.stop()
    alerter.stop()
    captured = capfd.readouterr()
    # the run did what the test is about: alerts out, failures reported
    kinds = {(d.alert.kind, d.channel, d.ok) for d in alerter.deliveries}
    assert ("order_rejected", "email", True) in kinds
    assert ("order_rejected", "webhook:slack", False) in kinds
    assert ("order_rejected", "webhook:discord", False) in kinds
    assert any(k == "channel_failed" and c == "email" and not ok for k, c, ok in kinds)
    assert mails, "no email was sent"
    files = sorted(p for p in state.rglob("*") if p.is_file())
    names = {p.name for p in files}
    assert {"alerts.jsonl", "order_ids.json", "journal.db", "day.json"} <= names
    assert any(n.startswith("summary-") for n in names)  # daily summaries, sent and saved
    texts = {str(p): p.read_bytes().decode("utf-8", "replace") for p in files}
    texts["run.log"] = run_log.read_text(encoding="utf-8")
    texts["stdout"], texts["stderr"] = captured.out, captured.err
    texts.update({f"dashboard answer {i}": a for i, a in enumerate(answers)})
    texts.update({f"email {i}": str(message_from_bytes(m)) for i, m in enumerate(mails)})
    texts.update({f"repr {i}": r for i, r in enumerate(shown)})
    assert "alert channel webhook:slack failed" in texts["run.log"]
    assert f"{failing_hook}/***" in texts["run.log"]
    assert "POST *** failed (Bearer ***)" in texts["run.log"]  # by the filter
    leaks = [(where, secret) for where, text in texts.items() for secret in SECRETS
             if secret in text]  # fmt: skip
    assert leaks == []


def test_fake_tws_off_loopback_warns_that_anyone_can_place_orders(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "ibkrfw.testing.faketws")
    quiet = FakeTWS()
    assert quiet.network_warning is None and not caplog.records
    exposed = FakeTWS(host="0.0.0.0", account="DU7654321")  # the decision, without binding
    assert exposed.network_warning == (
        "the fake TWS listens on 0.0.0.0, open to the network, and asks for no login: anyone "
        "who can reach this machine can place orders on its account DU7654321; listen on "
        "127.0.0.1 unless that is what you want"
    )
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.WARNING, exposed.network_warning)
    ]
    FakeTWS(host="localhost")
    FakeTWS(host="::1")
    assert len(caplog.records) == 1


def test_ibkrfw_run_with_a_failing_webhook_prints_and_writes_no_secret(
    tmp_path: Path, failing_hook: str
) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    hook_url = f"{failing_hook}/{HOOK_PATH}?{HOOK_QUERY}"
    state = tmp_path / "state"
    env = dict(os.environ, IBKRFW_DASHBOARD_TOKEN=DASHBOARD_TOKEN, HOOK_BEARER=BEARER)
    with FakeTWS.from_sample(["ACME"]) as tws:
        tws.reject_next_order(201, "Order rejected - reason: no margin")
        config = tmp_path / "ibkrfw.toml"
        config.write_text(
            f"[ibkr]\nport = {tws.port}\nclient_id = 3\n"
            '[run]\nstrategy = "sma_crossover"\nsymbols = ["ACME"]\nbar_size = "5s"\n'
            "[run.parameters]\nfast = 2\nslow = 5\n"
            f'[[alerts.webhook]]\nurl = "{hook_url}"\nformat = "slack"\ntoken_env = "HOOK_BEARER"\n'
            "[monitor]\nstale_after_s = 1e9\n"
        )
        process = subprocess.Popen(
            [sys.executable, "-m", "ibkrfw", "run", "--config", str(config), "--state-dir",
             str(state), "--dashboard", f"127.0.0.1:{port}"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        )  # fmt: skip
        try:
            assert tws.wait_for(lambda: tws.messages("in", client_id=3, msg_id=50), 30)
            deadline = time.monotonic() + 30
            journal = state / "alerts.jsonl"
            while time.monotonic() < deadline and "webhook:slack" not in (
                journal.read_text() if journal.exists() else ""
            ):
                tws.step()
                time.sleep(0.02)
            request = urllib.request.Request(f"http://127.0.0.1:{port}/api/state")
            request.add_header("Authorization", f"Bearer {DASHBOARD_TOKEN}")
            with urllib.request.urlopen(request, timeout=10) as response:
                served = response.read().decode()
            process.send_signal(signal.SIGTERM)
            out, _ = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert process.returncode == 0, out
    assert "alert channel webhook:slack failed" in out
    assert f"WebhookChannel({failing_hook}/***, format='slack') answered 500" in out
    texts = {"output": out, "/api/state": served}
    texts.update({str(p): p.read_bytes().decode("utf-8", "replace")
                  for p in state.rglob("*") if p.is_file()})  # fmt: skip
    assert "webhook:slack" in texts[str(state / "alerts.jsonl")]
    leaks = [(where, secret) for where, text in texts.items() for secret in SECRETS
             if secret in text]  # fmt: skip
    assert leaks == []
