"""ibkrfw._redact: what is registered as a secret, and the log filter's installation."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from ibkrfw._net import is_loopback
from ibkrfw._redact import MASK, install_log_redaction, redact, redact_json, register_secret


def test_register_secret_url_masks_its_path_query_and_password() -> None:
    register_secret("https://bot:pw-9f8e7d@hooks.example/services/T01/B02/Zz9yY8?key=q-77aa")
    assert redact("posting to /services/T01/B02/Zz9yY8 failed") == f"posting to /{MASK} failed"
    assert redact("sent with key=q-77aa") == f"sent with {MASK}"
    assert redact("login pw-9f8e7d refused") == f"login {MASK} refused"


def test_register_secret_short_url_path_is_masked_only_within_the_url() -> None:
    url = "http://127.0.0.1:8080/alerts"
    register_secret(url)
    assert redact(f"POST {url} failed") == f"POST {MASK} failed"
    # a short path is an ordinary word: masking it everywhere would garble the log
    assert redact("state/alerts.jsonl") == "state/alerts.jsonl"


def test_redact_json_masks_values_and_keeps_keys() -> None:
    register_secret("json-secret-1234")
    value = {"json-secret-1234": ["a json-secret-1234 b", 3, None], "ok": True}
    assert redact_json(value) == {"json-secret-1234": [f"a {MASK} b", 3, None], "ok": True}


@pytest.fixture
def logger() -> Iterator[tuple[logging.Logger, io.StringIO, io.StringIO]]:
    log = logging.Logger("test-redact-install")  # outside the manager: no one else's handlers
    first, second = io.StringIO(), io.StringIO()
    handlers = [logging.StreamHandler(first), logging.StreamHandler(second)]
    for handler in handlers:
        log.addHandler(handler)
    yield log, first, second
    for handler in handlers:
        log.removeHandler(handler)


def test_install_log_redaction_masks_every_handler_once(
    logger: tuple[logging.Logger, io.StringIO, io.StringIO],
) -> None:
    log, first, second = logger
    assert install_log_redaction(log) == 2
    assert install_log_redaction(log) == 0  # idempotent: one filter per handler
    register_secret("hunter2-password-x")
    try:
        raise ConnectionError("login hunter2-password-x refused")
    except ConnectionError:
        log.exception("sending failed for %s", "hunter2-password-x")
    for stream in (first, second):
        text = stream.getvalue()
        assert "hunter2-password-x" not in text
        assert f"sending failed for {MASK}" in text
        assert f"ConnectionError: login {MASK} refused" in text  # the traceback too


def test_install_log_redaction_defaults_to_the_root_logger() -> None:
    root = logging.getLogger()
    handler = logging.StreamHandler(io.StringIO())
    root.addHandler(handler)
    try:
        assert install_log_redaction() >= 1
        assert any(type(f).__name__ == "RedactingFilter" for f in handler.filters)
    finally:
        root.removeHandler(handler)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True),
     ("localhost", True), ("LocalHost", True), ("0.0.0.0", False), ("", False),
     ("::", False), ("192.0.2.7", False), ("box.example", False)],
)  # fmt: skip
def test_is_loopback_host_only_this_machine(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_mask_query_param_masks_the_token_whatever_its_value() -> None:
    from ibkrfw._redact import mask_query_param

    line = '"GET /api/state?token=a HTTP/1.1" 401 -'
    assert mask_query_param(line) == f'"GET /api/state?token={MASK} HTTP/1.1" 401 -'
    assert mask_query_param("/?x=1&token=t0k&y=2#f") == f"/?x=1&token={MASK}&y=2#f"
    assert mask_query_param("/?token=a&token=bb") == f"/?token={MASK}&token={MASK}"
    assert mask_query_param("/?%74oken=enc0ded") == f"/?%74oken={MASK}"  # decoded as a server does
    assert (
        mask_query_param("Bad request ('GET /?token=q1 x')")
        == f"Bad request ('GET /?token={MASK} x')"
    )
    # other parameters, and a token that is not a query parameter, are left alone
    assert mask_query_param("/?tokens=1&my_token=2") == "/?tokens=1&my_token=2"
    assert mask_query_param("the token=abc is wrong") == "the token=abc is wrong"
    assert mask_query_param("/?key=abc", "key") == f"/?key={MASK}"
