"""Keep secrets out of everything ibkrfw shows: logs, journals, reprs, errors, the dashboard.

Three tools, used together:

- :class:`Secret` holds a secret value (a password, a token, a webhook URL) whose ``str`` and
  ``repr`` are masked; only :meth:`Secret.reveal` gives the value, at the one place that sends it.
- :func:`mask_url` shows a URL without what can carry a credential: the user info, the path and
  the query (a Slack or Discord webhook's token is its path).
- :func:`register_secret` records a secret once it is read; :func:`redact` then masks it in any
  text, and :class:`RedactingFilter` does so in every log record, so that an exception message
  quoting a secret (``requests`` and ``urllib`` errors quote URLs) is masked too.
- :func:`mask_query_param` masks a query parameter by its name (``?token=``), whatever its
  value: a wrong or mistyped token is never registered, yet must not be shown either.
"""

from __future__ import annotations

import logging
import re
import threading
import urllib.parse
from typing import Final, final

__all__ = [
    "MASK",
    "RedactingFilter",
    "Secret",
    "install_log_redaction",
    "mask_query_param",
    "mask_url",
    "redact",
    "redact_json",
    "register_secret",
]

MASK: Final = "***"
_MIN_LENGTH: Final = 4  # shorter values would mask ordinary words
# A URL's path is registered on its own only from this length: a webhook's token path
# ("services/T0AB12/B0CD34/hookSecret") is long, while a short one ("/alerts", "/hook") is
# an ordinary word that masking would garble everywhere (it stays masked inside the whole URL
# and in reprs, which show no path at all).
_MIN_PATH_LENGTH: Final = 8

_lock = threading.Lock()
_secrets: set[str] = set()


@final
class Secret:
    """A secret value that never shows itself.

    Args:
        value: The secret. It is registered, so :func:`redact` masks it in any text.

    Example:
        >>> token = Secret("s3cr3t-value")
        >>> token, str(token), token.reveal()
        (Secret('***'), '***', 's3cr3t-value')
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        register_secret(value)

    def reveal(self) -> str:
        """The secret itself: only where it is sent, never where it is shown."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __str__(self) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


def mask_url(url: str) -> str:
    """A URL with its user info, path and query masked: what may carry a credential.

    Example:
        >>> mask_url("https://hooks.slack.com/services/T0AB12/B0CD34/hookSecret?x=1")
        'https://hooks.slack.com/***'
        >>> mask_url("https://user:pw@example.com")
        'https://***@example.com'
    """
    try:
        parts = urllib.parse.urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:  # not a URL at all: show nothing of it
        return MASK
    if not parts.scheme or not host:
        return MASK
    netloc = host if port is None else f"{host}:{port}"
    if parts.username is not None or parts.password is not None:
        netloc = f"{MASK}@{netloc}"
    masked = f"{parts.scheme}://{netloc}"
    if parts.path.strip("/") or parts.query or parts.fragment:
        masked += "/" + MASK
    return masked


# A query parameter: after "?" or "&", a name, "=", a value (to the next "&", "#", quote or
# space: a request line is quoted in repr() by http.server's error messages).
_QUERY_PARAM = re.compile(r"([?&])([^?&=#\s'\"]*)=([^&#\s'\"]*)")


def mask_query_param(text: str, name: str = "token") -> str:
    """``text`` with the value of every ``name=`` query parameter in it replaced by ``***``.

    The name is compared as a server decodes it (``%74oken`` is ``token``), so a request line
    or a URL in a log never shows the value, however short or wrong it is.

    Example:
        >>> mask_query_param('"GET /api/state?x=1&token=abc HTTP/1.1" 401 -')
        '"GET /api/state?x=1&token=*** HTTP/1.1" 401 -'
    """

    def mask(match: re.Match[str]) -> str:
        if urllib.parse.unquote_plus(match.group(2)) != name:
            return match.group(0)
        return f"{match.group(1)}{match.group(2)}={MASK}"

    return _QUERY_PARAM.sub(mask, text)


def register_secret(value: str) -> None:
    """Remember a secret so that :func:`redact` masks it wherever it appears.

    A URL is registered with its path, query and password too (each is a credential of a
    webhook). Values shorter than four characters are not registered, nor a URL's path shorter
    than eight: masking them would garble ordinary text.
    """
    found = {value}
    if "://" in value:
        try:
            parts = urllib.parse.urlsplit(value)
        except ValueError:
            parts = None
        if parts is not None:
            path = parts.path.strip("/")
            found |= {parts.query, parts.password or ""}
            if len(path) >= _MIN_PATH_LENGTH:
                found.add(path)
    with _lock:
        _secrets.update(s for s in found if len(s) >= _MIN_LENGTH)


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``***``.

    Example:
        >>> register_secret("hunter2-password")
        >>> redact("login failed for hunter2-password")
        'login failed for ***'
    """
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)  # the longest first: a URL before its path
    for secret in known:
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def redact_json(value: object) -> object:
    """``value`` (JSON-like: dicts, lists, strings...) with every string in it redacted.

    Keys are kept as they are, so the shape a reader expects never changes.

    Example:
        >>> register_secret("hunter2-password")
        >>> redact_json({"error": "login hunter2-password refused", "codes": [535]})
        {'error': 'login *** refused', 'codes': [535]}
    """
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redact_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_json(item) for item in value]
    return value


class RedactingFilter(logging.Filter):
    """A logging filter that masks registered secrets in each record's message.

    Install it on a handler (``handler.addFilter(RedactingFilter())``) so that every record
    passing through the handler is masked, whatever logger it came from.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Mask the record's message (its arguments merged in) and its exception text."""
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info is not None and record.exc_text is None:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> int:
    """Mask registered secrets in everything ``logger``'s handlers write (the root's by default).

    Adds one :class:`RedactingFilter` to each handler of ``logger`` that has none yet, so a
    record from any logger is masked before it is written, whoever built its message (an
    exception from ``urllib`` or ``smtplib`` quoting a URL or a login included). Call it once
    logging is configured (``logging.basicConfig``): handlers added later are not covered.
    Calling it again is harmless.

    Returns:
        How many handlers it added the filter to.

    Example:
        >>> import io
        >>> stream = io.StringIO()
        >>> handler = logging.StreamHandler(stream)
        >>> demo = logging.getLogger("redaction-demo")
        >>> demo.addHandler(handler)
        >>> demo.propagate = False
        >>> install_log_redaction(demo), install_log_redaction(demo)
        (1, 0)
        >>> register_secret("hunter2-password")
        >>> demo.error("login failed for %s", "hunter2-password")
        >>> stream.getvalue().strip()
        'login failed for ***'
    """
    target = logger if logger is not None else logging.getLogger()
    added = 0
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
            added += 1
    return added
