"""The dashboard, safe from the network: Host checked on loopback, token and TLS off it.

Everything is served over real sockets on 127.0.0.1; an off-loopback bind is tried only with a
token and TLS (and reached through 127.0.0.1), the other off-loopback cases through the
constructor's checks.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import ssl
from pathlib import Path

import pytest

from ibkrfw import ConfigError
from ibkrfw.monitoring import Dashboard, LiveMonitor

trustme = pytest.importorskip("trustme")

TOKEN = "dash-T0ken-4f9a2c"


def _get(
    port: int,
    path: str,
    *,
    host: str | None,
    token: str | None = None,
    context: ssl.SSLContext | None = None,
) -> tuple[int, bytes]:
    """GET ``path`` from 127.0.0.1:``port`` with exactly the Host header given (None: none)."""
    if context is None:
        conn: http.client.HTTPConnection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    else:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
    try:
        conn.putrequest("GET", path, skip_host=True)
        if host is not None:
            conn.putheader("Host", host)
        if token is not None:
            conn.putheader("Authorization", f"Bearer {token}")
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.fixture
def monitor(monkeypatch: pytest.MonkeyPatch) -> LiveMonitor:
    monkeypatch.delenv("IBKRFW_DASHBOARD_TOKEN", raising=False)
    return LiveMonitor()


def test_dashboard_on_loopback_answers_only_to_this_machines_names(
    monitor: LiveMonitor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "ibkrfw.dashboard")
    with Dashboard(monitor, port=0) as dashboard:
        port = dashboard.port
        for host in ("127.0.0.1", f"127.0.0.1:{port}", "localhost", f"LOCALHOST:{port}",
                     "[::1]", f"[::1]:{port}"):  # fmt: skip
            status, body = _get(port, "/api/state", host=host)
            assert status == 200, host
            assert "health" in json.loads(body)
        # a web page served by attacker.example, its name rebound to 127.0.0.1
        for path in ("/api/state", "/", "/metrics", "/healthz"):
            status, body = _get(port, path, host=f"attacker.example:{port}")
            assert status == 421, path
            assert body == b"this dashboard answers only to 127.0.0.1, localhost or [::1]\n"
        assert _get(port, "/api/state", host="attacker.example")[0] == 421
        assert _get(port, "/api/state", host="127.0.0.1.attacker.example")[0] == 421
        assert _get(port, "/api/state", host=None)[0] == 421  # no Host at all
        assert _get(port, "/api/state", host=f"localhost:{port + 1}")[0] == 421
    refused = [r.getMessage() for r in caplog.records if "refused a request" in r.getMessage()]
    # said once per name, not at every request
    assert len(refused) == 5, refused  # five names (none counts as one)
    assert "'attacker.example:" in refused[0]


def test_dashboard_host_is_checked_before_the_token(
    monitor: LiveMonitor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IBKRFW_DASHBOARD_TOKEN", TOKEN)
    with Dashboard(monitor, port=0) as dashboard:
        assert _get(dashboard.port, "/api/state", host="evil.test", token=TOKEN)[0] == 421
        assert _get(dashboard.port, "/api/state", host="localhost")[0] == 401
        assert _get(dashboard.port, "/api/state", host="localhost", token=TOKEN)[0] == 200


def test_dashboard_off_loopback_without_a_token_is_refused_with_the_fix(
    monitor: LiveMonitor,
) -> None:
    with pytest.raises(ConfigError) as info:
        Dashboard(monitor, host="0.0.0.0", tls_cert="c.pem", tls_key="k.pem")
    message = str(info.value)
    assert message.startswith(
        "the dashboard would listen on 0.0.0.0, open to the network, without an access token"
    )
    assert "$IBKRFW_DASHBOARD_TOKEN" in message and "listen on 127.0.0.1" in message
    with pytest.raises(ConfigError, match=r"\$MY_TOKEN"):
        Dashboard(monitor, host="192.0.2.7", token_env="MY_TOKEN", allow_plain_http=True)


def test_dashboard_off_loopback_with_a_token_needs_tls_or_the_plain_http_opt_out(
    monitor: LiveMonitor,
) -> None:
    with pytest.raises(ConfigError) as info:
        Dashboard(monitor, host="0.0.0.0", token=TOKEN)
    message = str(info.value)
    assert "over plain HTTP" in message and "in clear" in message
    assert "tls_cert and tls_key" in message and "allow_plain_http" in message
    assert TOKEN not in message
    opted = Dashboard(monitor, host="0.0.0.0", token=TOKEN, allow_plain_http=True)
    assert opted.url.startswith("http://") and not opted.tls
    assert TOKEN not in repr(opted)


def test_dashboard_plain_http_off_loopback_warns_at_start(
    monitor: LiveMonitor, caplog: pytest.LogCaptureFixture
) -> None:
    dashboard = Dashboard(monitor, host="0.0.0.0", port=0, token=TOKEN, allow_plain_http=True)
    # the decision is the constructor's; the test then binds loopback only, so as not to open
    # a plain-HTTP port to the network
    dashboard.host = "127.0.0.1"
    caplog.set_level(logging.INFO, "ibkrfw.dashboard")
    with dashboard:
        assert _get(dashboard.port, "/healthz", host="anything.example", token=TOKEN)[0] == 200
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    text = warnings[0].getMessage()
    assert "plain HTTP" in text and "travel in clear" in text and "tls_cert" in text
    assert TOKEN not in caplog.text


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path, ssl.SSLContext]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    for extra in cert.cert_chain_pems[1:]:
        extra.write_to_path(str(cert_file), append=True)
    cert.private_key_pem.write_to_path(str(key_file))
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return cert_file, key_file, client


def test_dashboard_off_loopback_serves_https_with_the_token(
    monitor: LiveMonitor,
    tls_files: tuple[Path, Path, ssl.SSLContext],
    caplog: pytest.LogCaptureFixture,
) -> None:
    cert, key, client = tls_files
    caplog.set_level(logging.DEBUG, "ibkrfw.dashboard")
    with Dashboard(monitor, host="0.0.0.0", port=0, token=TOKEN, tls_cert=cert,
                   tls_key=key) as dashboard:  # fmt: skip
        assert dashboard.tls and dashboard.url == f"https://0.0.0.0:{dashboard.port}/"
        port = dashboard.port
        status, body = _get(port, "/api/state", host="box.example", token=TOKEN, context=client)
        assert status == 200 and "health" in json.loads(body)
        assert _get(port, "/api/state", host="box.example", context=client)[0] == 401
        # plain HTTP to the TLS port gets nothing, and the server goes on serving
        with pytest.raises((http.client.HTTPException, OSError)):
            _get(port, "/api/state", host="box.example", token=TOKEN)
        # a client that does not trust the certificate stops at the handshake
        with pytest.raises(ssl.SSLCertVerificationError):
            _get(port, "/healthz", host="box.example", context=ssl.create_default_context())
        assert _get(port, "/healthz", host="box.example", token=TOKEN, context=client)[0] == 200
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_dashboard_tls_on_loopback_keeps_the_host_check(
    monitor: LiveMonitor, tls_files: tuple[Path, Path, ssl.SSLContext]
) -> None:
    cert, key, client = tls_files
    with Dashboard(monitor, port=0, tls_cert=str(cert), tls_key=str(key)) as dashboard:
        assert dashboard.url == f"https://127.0.0.1:{dashboard.port}/"
        assert _get(dashboard.port, "/healthz", host="localhost", context=client)[0] == 200
        assert _get(dashboard.port, "/healthz", host="evil.test", context=client)[0] == 421


def test_dashboard_bad_tls_settings_are_refused_by_name(
    monitor: LiveMonitor, tls_files: tuple[Path, Path, ssl.SSLContext], tmp_path: Path
) -> None:
    cert, key, _ = tls_files
    with pytest.raises(ConfigError, match="has tls_cert but no tls_key: give both"):
        Dashboard(monitor, tls_cert=cert)
    with pytest.raises(ConfigError, match="has tls_key but no tls_cert"):
        Dashboard(monitor, host="0.0.0.0", token=TOKEN, tls_key=key)
    missing = tmp_path / "nowhere.pem"
    with pytest.raises(ConfigError, match=f"cannot read the dashboard's TLS file {missing}"):
        Dashboard(monitor, tls_cert=missing, tls_key=key)
    other_key = tmp_path / "other-key.pem"
    trustme.CA().issue_cert("localhost").private_key_pem.write_to_path(str(other_key))
    with pytest.raises(ConfigError, match="the key must match the certificate"):
        Dashboard(monitor, tls_cert=cert, tls_key=other_key)
    with pytest.raises(ConfigError, match="cannot use the dashboard's TLS certificate"):
        Dashboard(monitor, tls_cert=key, tls_key=key)  # a key is no certificate


@pytest.mark.parametrize(
    "weak", ["a", "abc", "   ", "", "short-token-15c", " " + TOKEN, TOKEN + "\n"]
)
def test_dashboard_weak_token_is_refused_with_how_to_make_one(
    monitor: LiveMonitor, weak: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    hint = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'
    for host in ("0.0.0.0", "127.0.0.1"):  # on loopback too, when a token is set
        with pytest.raises(ConfigError) as info:
            Dashboard(monitor, host=host, token=weak, allow_plain_http=True)
        message = str(info.value)
        assert message.startswith("the dashboard's access token ")
        assert hint in message
        if len(weak.strip()) > 3:  # "a" or "abc" are in any sentence
            assert weak.strip() not in message
    monkeypatch.setenv("IBKRFW_DASHBOARD_TOKEN", weak)
    if weak:  # an empty variable is no token at all (refused off loopback for that)
        with pytest.raises(ConfigError, match=r"access token in \$IBKRFW_DASHBOARD_TOKEN"):
            Dashboard(monitor, host="0.0.0.0", allow_plain_http=True)


def test_dashboard_token_of_16_characters_is_enough(monitor: LiveMonitor) -> None:
    assert len("0123456789abcdef") == 16
    Dashboard(monitor, host="0.0.0.0", token="0123456789abcdef", allow_plain_http=True)


def test_dashboard_request_log_never_shows_a_query_token(
    monitor: LiveMonitor, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, "ibkrfw.dashboard")
    for token in (None, TOKEN):
        if token:
            monkeypatch.setenv("IBKRFW_DASHBOARD_TOKEN", token)
        with Dashboard(monitor, port=0) as dashboard:
            port = dashboard.port
            # guesses and typos are never registered as secrets: masked by name
            for query in ("token=abc", "x=1&token=a-typo-of-the-token", "token=x&token=yz",
                          f"token={TOKEN}", "%74oken=p3rcent-encoded-name"):  # fmt: skip
                _get(port, f"/api/state?{query}", host="localhost")
            _get(port, "/?token=b4d-request", host="localhost")
            # a malformed request line is logged as an error, quoting it
            with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
                raw.sendall(b"GET /?token=m4lformed-line HTTP/1.1 junk\r\n\r\n")
                raw.recv(4096)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "token=***" in logged and "x=1&token=***" in logged
    for secret in ("abc", "a-typo-of-the-token", "=yz", TOKEN, "p3rcent-encoded-name",
                   "b4d-request", "m4lformed-line"):  # fmt: skip
        assert secret not in logged, secret


def test_dashboard_absolute_form_request_target_is_checked_like_the_host(
    monitor: LiveMonitor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "ibkrfw.dashboard")
    with Dashboard(monitor, port=0) as dashboard:
        port = dashboard.port
        # RFC 7230 section 5.4: the request target's authority wins over the Host header
        for target in ("http://evil.com/api/state", f"http://evil.com:{port}/api/state",
                       "https://evil.com/", "http://user@127.0.0.1/api/state"):  # fmt: skip
            status, body = _get(port, target, host="127.0.0.1")
            assert status == 421, target
            assert b"health" not in body
        for target in ("http://127.0.0.1/api/state", f"http://localhost:{port}/api/state"):
            assert _get(port, target, host="127.0.0.1")[0] == 200, target
        # a path starting with // is a path (http.server folds it to one /), not an authority
        assert _get(port, "//evil.com/api/state", host="127.0.0.1")[0] in (404, 421)
        # both must be this machine's
        assert _get(port, "http://localhost/api/state", host="evil.com")[0] == 421
    assert any("'evil.com'" in r.getMessage() for r in caplog.records)
