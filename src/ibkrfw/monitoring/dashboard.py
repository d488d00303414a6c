"""The dashboard: an HTML page that refreshes itself, a JSON API and Prometheus metrics.

Standard library only (``http.server``, ``ssl``), no build step: the page is one HTML file with
its script and style served beside it.

Safe from the network by default:

- It listens on 127.0.0.1, and there it answers only requests addressed to this machine (a
  ``Host`` header of ``127.0.0.1``, ``localhost`` or ``[::1]``), so a web page in a browser on
  the same machine cannot read it through DNS rebinding.
- A request in absolute form (``GET http://other.example/api/state``) is checked by the
  authority it names, which wins over the ``Host`` header (RFC 7230, section 5.4).
- On any other address it needs an access token, which every request must carry (an
  ``Authorization: Bearer`` header, or ``?token=`` for the page in a browser; the page's script
  and style, which hold nothing of the run, are served without it), and either TLS
  (a certificate and key) or the explicit, logged choice of plain HTTP. A token, wherever it
  is used, has at least 16 characters and no spaces around it; the request log never shows
  the value of ``?token=``, right or wrong.
- Secrets registered by the run (webhook URLs, passwords, tokens) are masked in everything it
  serves.
- Its controls (``POST /api/control/pause``, ``resume``, ``flatten``, ``cancel_all``) need the
  token on loopback too, and only in an ``Authorization: Bearer`` header: a web page cannot
  set that header on another site's request, and a token in a URL ends up in logs and
  browser histories. Without a token the controls are off (403).
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import logging
import os
import socket
import ssl
import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any, Literal, final
from urllib.parse import parse_qs, urlsplit

from ibkrfw._net import is_loopback
from ibkrfw._redact import Secret, mask_query_param, redact, redact_json
from ibkrfw.errors import ConfigError, EngineError
from ibkrfw.monitoring.alerts import Alert, read_secret
from ibkrfw.monitoring.monitor import LiveMonitor

__all__ = ["Dashboard", "prometheus_text"]

log = logging.getLogger("ibkrfw.dashboard")

_STATUS = {"ok": 0, "degraded": 1, "failing": 2}


_LOCAL_NAMES = frozenset({"127.0.0.1", "localhost", "[::1]"})
_MIN_TOKEN_LENGTH = 16  # about 96 bits of a random URL-safe token: not guessable over HTTP
_MAKE_TOKEN = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'
ACTIONS = ("pause", "resume", "flatten", "cancel_all")
"""The dashboard's controls, each ``POST /api/control/<action>``."""
_MAX_BODY = 4096  # bytes of a control's JSON body
_MAX_REASON = 200  # characters of an operator's reason
_ANSWER_WAIT_S = 2.0  # how long a control's answer waits for the engine to carry it out
_OPTIONS = {  # the body's keys each action takes, besides "reason"
    "pause": frozenset(),
    "resume": frozenset(),
    "flatten": frozenset({"confirm"}),
    "cancel_all": frozenset({"include_protection"}),
}


_TRADING = {"active": 0, "paused": 1, "halted": 2, "stopped": 3}  # ibkrfw_trading_state


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def prometheus_text(snap: dict[str, Any]) -> str:
    """The snapshot as Prometheus text exposition (version 0.0.4)."""
    lines: list[str] = []

    def gauge(name: str, help_text: str, samples: list[tuple[str, float | None]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} gauge")
        for labels, value in samples:
            if value is not None:
                lines.append(f"{name}{labels} {float(value)!r}")

    def counter(name: str, help_text: str, samples: list[tuple[str, float]]) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} counter")
        for labels, value in samples:
            lines.append(f"{name}{labels} {float(value)!r}")

    gauge("ibkrfw_equity", "Account equity in the base currency.", [("", snap.get("equity"))])
    gauge("ibkrfw_cash", "Cash in the base currency.", [("", snap.get("cash"))])
    gauge("ibkrfw_pnl_today", "Profit and loss since the day began.", [("", snap.get("pnl_today"))])
    gauge("ibkrfw_drawdown_ratio", "Equity below its peak, as a fraction.",
          [("", snap.get("drawdown"))])  # fmt: skip
    pnl = snap.get("pnl") or {}
    gauge("ibkrfw_pnl_realized", "Profit realised since the run began, before commissions.",
          [("", pnl.get("realized"))])  # fmt: skip
    gauge("ibkrfw_pnl_unrealized", "Profit of the positions held, at the last prices.",
          [("", pnl.get("unrealized"))])  # fmt: skip
    gauge("ibkrfw_commission", "Commissions paid since the run began.",
          [("", pnl.get("commission"))])  # fmt: skip
    risk = snap.get("risk")
    if risk:
        gauge("ibkrfw_risk_status", "0 ok, 1 near a limit or past an alert level, 2 halted.",
              [("", float(_STATUS.get(risk.get("status", "failing"), 2)))])  # fmt: skip
    positions = snap.get("positions", [])
    named = [(f'{{instrument="{_label(p["instrument"])}"}}', p) for p in positions]
    gauge("ibkrfw_position_quantity", "Signed quantity held.",
          [(label, p["quantity"]) for label, p in named])  # fmt: skip
    gauge("ibkrfw_position_value", "Market value of the position in the base currency.",
          [(label, p["value"]) for label, p in named])  # fmt: skip
    gauge("ibkrfw_orders_working", "Orders that may still fill.",
          [("", float(len(snap.get("orders", []))))])  # fmt: skip
    counts = snap.get("order_counts", {})
    counter("ibkrfw_orders_total", "Order events since the start, by kind.",
            [(f'{{event="{k}"}}', v) for k, v in counts.items()])  # fmt: skip
    counter("ibkrfw_fills_total", "Fills since the start.", [("", snap.get("fills_total", 0))])
    counter("ibkrfw_bars_total", "Bars handled by the strategy (live runs).",
            [("", snap.get("bars", 0))])  # fmt: skip
    counter("ibkrfw_halts_total", "Risk halts since the start.",
            [("", float(len(snap.get("halts", []))))])  # fmt: skip
    limits = snap.get("limits", [])
    gauge("ibkrfw_limit_usage_ratio", "How much of each risk limit is used (1: at the limit).",
          [(f'{{rule="{_label(u["rule"])}",measure="{_label(u["measure"])}"}}', u["share"])
           for u in limits])  # fmt: skip
    latencies = sorted(snap.get("latency_ms", []))
    if latencies:
        gauge("ibkrfw_order_ack_latency_seconds", "Order acknowledgement latency, recent orders.",
              [('{quantile="0.5"}', latencies[len(latencies) // 2] / 1000),
               ('{quantile="1"}', latencies[-1] / 1000)])  # fmt: skip
    load = snap.get("load")
    if load:
        gauge("ibkrfw_lag_seconds", "Arrival to handled, live events of the last seconds.",
              [('{quantile="0.5"}', load["lag_p50_s"]), ('{quantile="0.99"}', load["lag_p99_s"]),
               ('{quantile="1"}', load["lag_max_s"])])  # fmt: skip
        gauge("ibkrfw_oldest_waiting_seconds", "Age of the oldest event waiting in the inbox.",
              [("", load["waiting_s"])])  # fmt: skip
        gauge("ibkrfw_inbox_depth", "Events waiting in the engine's inbox.",
              [("", load["depth"])])  # fmt: skip
        counter("ibkrfw_quotes_conflated_total", "Quotes and trades replaced by a newer one.",
                [("", load["conflated"])])  # fmt: skip
        counter("ibkrfw_ticks_conflated_total", "IB ticks replaced by a newer one, undecoded.",
                [("", load.get("ticks_conflated", 0))])  # fmt: skip
        counter("ibkrfw_events_handled_total", "Live events taken off the inbox and handled.",
                [("", load["handled"])])  # fmt: skip
    gauge("ibkrfw_connected", "1 when connected to IB.",
          [("", 1.0 if snap.get("connection") == "connected" else 0.0)])  # fmt: skip
    farms = (snap.get("connection_detail") or {}).get("farms", [])
    if farms:
        gauge("ibkrfw_farm_ok", "1 when IB's last notice said the data farm works.",
              [(f'{{farm="{_label(f["name"])}",kind="{_label(f["kind"])}"}}',
                1.0 if f["ok"] else 0.0) for f in farms])  # fmt: skip
    trading = (snap.get("trading") or {}).get("state")
    if trading in _TRADING:  # whether new entries are taken: a pause is not in the health
        gauge("ibkrfw_trading_state", "0 active, 1 paused (operator), 2 halted (risk), "
              "3 stopped.", [("", float(_TRADING[trading]))])  # fmt: skip
    health = snap.get("health", {})
    gauge("ibkrfw_health_status", "0 ok, 1 degraded, 2 failing.",
          [("", float(_STATUS.get(health.get("status", "failing"), 2)))])  # fmt: skip
    return "\n".join(lines) + "\n"


def _asset(name: str) -> bytes:
    return resources.files("ibkrfw.monitoring").joinpath("static", name).read_bytes()


@final
class Dashboard:
    """Serve the monitor's state: ``/`` (the page), ``/api/state``, ``/metrics``, ``/healthz``.

    ``/healthz`` answers 200 while the run is ok or degraded and 503 when failing, for
    supervisors and load balancers.

    On a loopback address (the default) every request must be addressed to this machine: a
    ``Host`` header other than ``127.0.0.1``, ``localhost`` or ``[::1]`` (with or without the
    port) gets ``421 Misdirected Request`` and nothing of the run, which is what keeps a web
    page on this machine from reading the dashboard by DNS rebinding. A request target in
    absolute form (``http://name/path``) must name one of these too: its authority wins over
    the ``Host`` header (RFC 7230, section 5.4).

    Off loopback the dashboard needs an access token, and either TLS (``tls_cert`` and
    ``tls_key``: it then serves HTTPS) or ``allow_plain_http=True``, a choice logged as a
    warning at :meth:`start`, because the token and the account's state then cross the network
    in clear. TLS can be used on loopback too.

    **Controls.** With a token, ``POST /api/control/pause``, ``/resume``, ``/flatten`` and
    ``/cancel_all`` act on the run (:meth:`Engine.pause <ibkrfw.Engine.pause>` and the
    others, carried out on the engine's thread). They take the token only in an
    ``Authorization: Bearer`` header, on loopback too (``?token=`` is refused: 401), and a
    JSON body of at most 4 KiB (413 past it): ``{"reason": "..."}`` for any action (200
    printable characters at most), ``{"confirm": "flatten"}`` required by ``flatten`` (400 without),
    ``{"include_protection": true}`` for ``cancel_all`` to cancel the protective stops too.
    Without a token they answer 403; an unknown action, a malformed body or an unknown key
    400; before the run starts 503, after it ends 409. An accepted action answers 202 with
    ``{"action", "accepted": true, "detail"}`` (what the engine did, if it did it within
    two seconds). Each is logged at WARNING, written as a JSON line to ``controls.jsonl`` in
    the monitor's ``journal_dir`` (the run's state directory under ``ibkrfw run``), and
    alerted (``operator_action``; critical for ``flatten``). The state's ``controls`` key
    says whether they are enabled and what the last one did.

    A token, wherever it is set (on loopback too), must have at least 16 characters and no
    spaces or line breaks around it; make one with
    ``python -c "import secrets; print(secrets.token_urlsafe(32))"``. The token, like every
    secret the run registered (webhook URLs, passwords), is masked in whatever the dashboard
    serves and logs, and the request log never shows the value of a ``?token=`` parameter,
    whatever it is (a wrong or mistyped token included).

    Args:
        monitor: The run's monitor.
        host: The address to listen on (127.0.0.1 by default).
        port: The port (0 picks a free one; read :attr:`url` after :meth:`start`).
        token: The access token (or from ``token_env``); required off loopback.
        token_env: The environment variable holding the token.
        refresh_s: How often the page refreshes.
        tls_cert: A PEM certificate (chain) file: serve HTTPS with it and ``tls_key``.
        tls_key: The PEM file of the certificate's private key.
        allow_plain_http: Serve plain HTTP off loopback anyway (on a network you trust, such
            as a VPN): the token then travels in clear, and :meth:`start` says so in a warning.

    Raises:
        ConfigError: when asked to listen off loopback without a token, or without TLS and
            without ``allow_plain_http``; for a token shorter than 16 characters or with
            spaces around it; for a certificate without a key (or the reverse); for a
            certificate or key that cannot be read or used.
    """

    def __init__(
        self,
        monitor: LiveMonitor,
        *,
        host: str = "127.0.0.1",
        port: int = 8765,
        token: str | None = None,
        token_env: str | None = "IBKRFW_DASHBOARD_TOKEN",
        refresh_s: float = 2.0,
        tls_cert: str | os.PathLike[str] | None = None,
        tls_key: str | os.PathLike[str] | None = None,
        allow_plain_http: bool = False,
    ) -> None:
        source = "given"
        if token is None and token_env:
            try:
                token = read_secret(env=token_env, what="dashboard token")
                source = f"in ${token_env}"
            except ConfigError:
                token = None
        if token is not None:
            _check_token(token, source)
        self.loopback = is_loopback(host)
        """Whether it listens on this machine only (requests are then checked for their Host)."""
        variable = f"${token_env or 'IBKRFW_DASHBOARD_TOKEN'}"
        if not self.loopback and not token:
            raise ConfigError(
                f"the dashboard would listen on {host or 'every address'}, open to the "
                "network, without an access token: anyone who can reach this machine would "
                f"see the account. Set an access token in {variable} (make one with "
                f"{_MAKE_TOKEN}), or listen on 127.0.0.1 (and reach it through an SSH tunnel)"
            )
        self._tls = _tls_context(tls_cert, tls_key)
        if not self.loopback and self._tls is None and not allow_plain_http:
            raise ConfigError(
                f"the dashboard would listen on {host or 'every address'} over plain HTTP: "
                "its access token and the account would cross the network in clear. Give "
                "tls_cert and tls_key (a PEM certificate and its key) to serve HTTPS, or set "
                "allow_plain_http (only on a network you trust, such as a VPN), or listen on "
                "127.0.0.1"
            )
        self.monitor = monitor
        self._variable = variable  # where the token is read from, for the controls' 403
        self.host, self.port = host, port
        self._token = Secret(token) if token else None
        self.refresh_s = refresh_s
        self.allow_plain_http = allow_plain_http
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._refused_hosts: set[str] = set()
        self._controls_lock = threading.Lock()
        self._last_control: dict[str, Any] | None = None
        self._controls_done = 0  # each control's alert is its own, never a repeat

    @property
    def url(self) -> str:
        """Where the page is, without the token (``https://`` when it serves TLS)."""
        scheme = "http" if self._tls is None else "https"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}/"

    @property
    def tls(self) -> bool:
        """Whether it serves HTTPS."""
        return self._tls is not None

    def start(self) -> Dashboard:
        """Start serving on a background thread.

        Off loopback over plain HTTP (``allow_plain_http``), it logs a warning first.
        """
        if not self.loopback and self._tls is None:
            log.warning(
                "the dashboard serves plain HTTP on %s:%s, open to the network "
                "(allow_plain_http): its access token and the account's state travel in "
                "clear, readable by anyone on the way; give tls_cert and tls_key to serve "
                "HTTPS instead",
                self.host,
                self.port,
            )
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self._server = _Server((self.host, self.port), _handler(self), self._tls, family)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="ibkrfw-dashboard", daemon=True
        )
        self._thread.start()
        log.info("dashboard on %s", self.url)
        return self

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> Dashboard:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        token = "***" if self._token else None
        return f"Dashboard({self.url}, token={token}, tls={self.tls})"

    def allowed(self, headers: Any, query: dict[str, list[str]]) -> bool:
        """Whether a request carries the token (always, when none is set)."""
        if self._token is None:
            return True
        given = ""
        auth = headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            given = auth[7:]
        elif query.get("token"):
            given = query["token"][0]
        return hmac.compare_digest(given.encode(), self._token.reveal().encode())

    @property
    def controls_enabled(self) -> bool:
        """Whether the controls are on (they are when the dashboard has a token)."""
        return self._token is not None

    def state(self) -> dict[str, Any]:
        """The monitor's snapshot, with the ``controls`` key: as ``/api/state`` serves it."""
        snap = self.monitor.snapshot()
        with self._controls_lock:
            last = dict(self._last_control) if self._last_control is not None else None
        snap["controls"] = {
            "enabled": self.controls_enabled,
            "actions": list(ACTIONS),
            "last": last,
        }
        return snap

    def control(self, action: str, options: dict[str, Any], peer: str = "") -> dict[str, Any]:
        """Carry out ``action`` on the monitor's engine, as ``POST /api/control/<action>``.

        The checks of the request (token, host, body) are the handler's; this asks the
        engine, journals and alerts the outcome, and waits up to two seconds for it.

        Args:
            action: ``"pause"``, ``"resume"``, ``"flatten"`` or ``"cancel_all"``.
            options: The request's body, checked: ``reason`` and the action's own keys.
            peer: Who asked (the client's address), for the journal.

        Returns:
            ``{"action", "accepted", "detail"}``.

        Raises:
            EngineError: if there is no run to act on (not started, or ended).
        """
        engine = self.monitor.engine
        if engine is None:
            raise EngineError("the run has not started yet: nothing to control")
        if engine.trading.state == "stopped":  # say why, not how to start an Engine
            raise EngineError(
                f"the run has stopped ({engine.stop_reason or 'no reason given'}): it takes "
                "no more commands; start a new run to trade again"
            )
        # masked before the engine keeps it: it shows in denials, the log and the run's result
        reason = redact(str(options.get("reason") or "from the dashboard"))
        log.warning("dashboard: the operator asks to %s (%s) from %s", action, reason,
                    peer or "?")  # fmt: skip
        future: Future[str]
        if action == "pause":
            future = engine.pause(reason)
        elif action == "resume":
            future = engine.resume(reason)
        elif action == "flatten":
            future = engine.flatten(reason)
        else:
            future = engine.cancel_all(
                reason, include_protection=bool(options.get("include_protection", False))
            )
        asked_ns = engine.clock.now_ns()
        journalled = threading.Event()

        def record(done: Future[str]) -> None:
            try:
                self._journal(action, reason, peer, asked_ns, done)
            finally:
                journalled.set()

        future.add_done_callback(record)
        try:
            detail = future.result(_ANSWER_WAIT_S)
        except FutureTimeout:
            detail = "queued: the engine carries it out after the event in hand"
        except Exception as exc:  # the engine said why: journalled by the callback
            journalled.wait(_ANSWER_WAIT_S)
            return {"action": action, "accepted": False, "detail": f"failed: {exc}"}
        else:
            # the callback runs on the engine's thread once the result is set, which wakes
            # this one too: the journal and controls.last are written before the answer goes
            journalled.wait(_ANSWER_WAIT_S)
            detail += self._held(action)
        return {"action": action, "accepted": True, "detail": detail}

    def _held(self, action: str) -> str:
        """Why the orders of ``action`` have not reached IB yet, if the connection is down."""
        if action not in ("flatten", "cancel_all"):
            return ""
        snap = self.monitor.snapshot()
        state = snap.get("connection") or "connected"
        if state == "connected":
            return ""
        reason = (snap.get("connection_detail") or {}).get("reason") or ""
        return (
            f"; but the connection to IB is {state}{f' ({reason})' if reason else ''}: the "
            "orders and cancellations wait in the broker until it returns, so nothing has "
            "reached IB yet" + (" and the positions are not closed" if action == "flatten" else "")
        )

    def _journal(
        self, action: str, reason: str, peer: str, asked_ns: int, done: Future[str]
    ) -> None:
        """Record what an action did: ``controls.last``, controls.jsonl, an alert."""
        error = done.exception()
        result, detail = ("failed", str(error)) if error is not None else ("done", done.result())
        if error is None:
            detail += self._held(action)
        engine = self.monitor.engine
        now_ns = engine.clock.now_ns() if engine is not None else asked_ns
        when = dt.datetime.fromtimestamp(now_ns / 1e9, tz=dt.UTC)
        record = {
            "action": action,
            "time": when.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "result": result,
            "detail": redact(detail),
        }
        with self._controls_lock:
            self._last_control = record
            self._controls_done += 1
            number = self._controls_done
        level = logging.WARNING if error is None else logging.ERROR
        log.log(level, "dashboard: operator %s %s: %s", action, result, record["detail"])
        folder = self.monitor.journal_dir
        if folder is not None:
            line = {**record, "reason": redact(reason), "from": peer}
            try:
                with self._controls_lock:
                    folder.mkdir(parents=True, exist_ok=True)
                    with open(folder / "controls.jsonl", "a") as journal:
                        journal.write(json.dumps(line) + "\n")
            except OSError as exc:
                log.error("dashboard: cannot journal the operator's %s in %s: %s", action,
                          folder, exc.strerror or exc)  # fmt: skip
        alerter = self.monitor.alerter
        if alerter is not None:
            title = f"operator: {action.replace('_', ' ')} {result}"
            severity: Literal["warning", "critical"] = (
                "critical" if action == "flatten" else "warning"
            )
            alerter.send(Alert("operator_action", title, f"{reason}: {record['detail']}",
                               severity, key=f"operator_action:{number}"))  # fmt: skip

    def host_allowed(self, host: str | None) -> bool:
        """Whether a request addressed to ``host`` may be answered.

        ``host`` is a ``Host`` header, or the authority of a request target in absolute form
        (``http://host:port/path``), which the handler checks too. Off loopback, any (the token
        guards the dashboard). On loopback, only this machine's names, with or without the
        port: ``127.0.0.1``, ``localhost``, ``[::1]`` (and the address it listens on). A
        request without a ``Host`` header is refused there too.
        """
        if not self.loopback:
            return True
        if not host:
            return False
        host = host.strip().lower()
        bound = f"[{self.host}]" if ":" in self.host else self.host.lower()
        names = _LOCAL_NAMES | {bound}
        return host in names or host in {f"{name}:{self.port}" for name in names}

    def _refused(self, host: str | None) -> None:
        shown = (host or "")[:100]
        if shown not in self._refused_hosts and len(self._refused_hosts) < 100:
            self._refused_hosts.add(shown)  # said once per name, not at every poll
            log.warning(
                "dashboard: refused a request for Host %r: it answers only to 127.0.0.1, "
                "localhost or [::1] (a web page trying to read it by DNS rebinding?)",
                shown,
            )


def _check_token(token: str, source: str) -> None:
    """Refuse a token that is short enough to guess or was pasted with spaces around it.

    Raises:
        ConfigError: naming the problem and how to make a good token, never the token.
    """
    if token != token.strip():
        problem = "has spaces or a line break at its start or end (a copy-and-paste slip?)"
    elif len(token) < _MIN_TOKEN_LENGTH:
        problem = (
            f"has {len(token)} character{'s' if len(token) != 1 else ''}; it needs at least "
            f"{_MIN_TOKEN_LENGTH}, random, so that it cannot be guessed"
        )
    else:
        return
    raise ConfigError(
        f"the dashboard's access token {source} {problem}. Make one with {_MAKE_TOKEN}"
    )


def _tls_context(
    cert: str | os.PathLike[str] | None, key: str | os.PathLike[str] | None
) -> ssl.SSLContext | None:
    """The server's TLS settings, or None without a certificate.

    Raises:
        ConfigError: for a certificate without a key (or the reverse), or one that cannot be
            read or used.
    """
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        given, missing = ("tls_cert", "tls_key") if cert is not None else ("tls_key", "tls_cert")
        raise ConfigError(f"the dashboard has {given} but no {missing}: give both, or neither")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(os.fspath(cert), os.fspath(key))
    except FileNotFoundError as exc:
        raise ConfigError(
            f"cannot read the dashboard's TLS file {exc.filename or cert}: no such file"
        ) from None
    except OSError as exc:
        if isinstance(exc, ssl.SSLError):
            raise ConfigError(
                f"cannot use the dashboard's TLS certificate {os.fspath(cert)} with the key "
                f"{os.fspath(key)}: {exc.reason or exc} (both PEM; the key must match the "
                "certificate)"
            ) from None
        raise ConfigError(
            f"cannot read the dashboard's TLS certificate {os.fspath(cert)} or key "
            f"{os.fspath(key)}: {exc.strerror or exc}"
        ) from None
    return context


_HANDSHAKE_TIMEOUT_S = 10.0  # a client that opens a connection and says nothing


class _Server(ThreadingHTTPServer):
    """A threading HTTP server that speaks TLS when given a context.

    The TLS handshake is made in the request's own thread, so a slow or silent client never
    holds up the others.
    """

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        tls: ssl.SSLContext | None,
        family: socket.AddressFamily,
    ) -> None:
        self.address_family = family
        self._tls = tls
        super().__init__(address, handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self._tls is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(_HANDSHAKE_TIMEOUT_S)
        try:
            secure = self._tls.wrap_socket(request, server_side=True)
        except OSError as exc:  # ssl.SSLError included: not TLS, or a certificate refused
            log.debug("dashboard: TLS handshake with %s failed: %s", client_address, exc)
            return
        try:
            super().finish_request(secure, client_address)
        finally:
            secure.close()


def _handler(dashboard: Dashboard) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "ibkrfw-dashboard"
        timeout = 30  # seconds a silent client may hold its thread

        def log_message(self, format: str, *args: Any) -> None:
            # the request line may carry ?token=: masked by name, a wrong or short one too
            # (only the right token is a registered secret); the log filter masks the rest
            text = mask_query_param(format % args if args else format)
            log.debug("%s %s", self.address_string(), text)

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Referrer-Policy", "no-referrer")
            self.send_header(
                "Content-Security-Policy",
                "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:",
            )
            self.end_headers()
            self.wfile.write(body)

        def _misdirected(self, parts: Any) -> bool:
            """Answer 421 to a request not addressed to this machine (on loopback)."""
            host = self.headers.get("Host")
            # an absolute-form target ("GET http://name/path", or "//name/path") names where it
            # is addressed, and that wins over Host (RFC 7230, section 5.4): both are checked
            for name in (host, parts.netloc) if parts.scheme or parts.netloc else (host,):
                if not dashboard.host_allowed(name):
                    dashboard._refused(name)
                    self._send(
                        421,
                        b"this dashboard answers only to 127.0.0.1, localhost or [::1]\n",
                        "text/plain; charset=utf-8",
                    )
                    return True
            return False

        def _answer(self, code: int, payload: dict[str, Any]) -> None:
            body = json.dumps(redact_json(payload)).encode()
            self._send(code, body, "application/json")

        def _refuse(self, code: int, action: str, detail: str) -> None:
            self._answer(code, {"action": action, "accepted": False, "detail": detail})

        def do_POST(self) -> None:
            parts = urlsplit(self.path)
            if self._misdirected(parts):
                return
            prefix = "/api/control/"
            if not parts.path.startswith(prefix):
                self._send(404, b"not found\n", "text/plain; charset=utf-8")
                return
            action = parts.path[len(prefix) :]
            shown = action[:40]
            if dashboard._token is None:
                self._refuse(403, shown, (
                    f"controls need a dashboard token: set {dashboard._variable} to one made "
                    f"with {_MAKE_TOKEN}, restart the run, and send it in an Authorization: "
                    "Bearer header"
                ))  # fmt: skip
                return
            if "token" in parse_qs(parts.query):
                self._refuse(401, shown, (
                    "controls take the token only in an Authorization: Bearer header, never "
                    "in the URL (?token=): a URL can be sent by another web page and ends up "
                    "in logs"
                ))  # fmt: skip
                return
            auth = self.headers.get("Authorization", "")
            given = auth[7:] if auth.startswith("Bearer ") else ""
            if not hmac.compare_digest(given.encode(), dashboard._token.reveal().encode()):
                self._refuse(401, shown, "an access token is required, in an Authorization: "
                                         "Bearer header")  # fmt: skip
                return
            if action not in ACTIONS:
                self._refuse(400, shown, f"unknown control {shown!r}: use one of "
                                         f"{', '.join(ACTIONS)}")  # fmt: skip
                return
            options = self._options(action)
            if options is None:
                return
            try:
                answer = dashboard.control(action, options, self.address_string())
            except EngineError as exc:
                code = 503 if dashboard.monitor.engine is None else 409
                self._refuse(code, action, str(exc))
                return
            self._answer(202 if answer["accepted"] else 500, answer)

        def _options(self, action: str) -> dict[str, Any] | None:
            """The request's JSON body, checked for ``action``; None once refused."""
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if length < 0:
                self._refuse(400, action, "a bad Content-Length header")
                return None
            if length > _MAX_BODY:
                self._refuse(413, action, f"the body has {length} bytes: at most {_MAX_BODY}")
                return None
            raw = self.rfile.read(length) if length else b""
            if not raw.strip():
                options: Any = {}
            else:
                try:
                    options = json.loads(raw)
                except (ValueError, UnicodeDecodeError):
                    self._refuse(400, action, 'the body is not JSON: send {"reason": "..."}')
                    return None
            if not isinstance(options, dict):
                self._refuse(400, action, 'the body must be a JSON object: {"reason": "..."}')
                return None
            allowed = {"reason"} | _OPTIONS[action]
            unknown = sorted(set(options) - allowed)
            if unknown:
                self._refuse(400, action, (
                    f"{action} takes no {', '.join(map(repr, unknown))[:200]}: it takes "
                    f"{', '.join(sorted(allowed))}"
                ))  # fmt: skip
                return None
            reason = options.get("reason", "")
            if not isinstance(reason, str) or len(reason) > _MAX_REASON or not reason.isprintable():
                # isprintable: no control characters (DEL, U+2028...) nor invisible format
                # ones (U+202E turns the text around) in the log, the journal and the alerts
                self._refuse(400, action, (
                    f"reason must be text of at most {_MAX_REASON} characters on one line, "
                    "without control or invisible characters"
                ))  # fmt: skip
                return None
            if action == "flatten" and options.get("confirm") != "flatten":
                self._refuse(400, action, (
                    'flatten closes every position at market and cancels the working orders: '
                    'confirm it with {"confirm": "flatten"} in the body'
                ))  # fmt: skip
                return None
            protection = options.get("include_protection", False)
            if not isinstance(protection, bool):
                self._refuse(400, action, "include_protection must be true or false")
                return None
            return options

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            if self._misdirected(parts):
                return
            query = parse_qs(parts.query)
            # the page's script and style hold nothing of the run: served without the token,
            # which the browser does not add to the page's own sub-requests
            if parts.path == "/app.js":
                self._send(200, _asset("dashboard.js"), "text/javascript; charset=utf-8")
                return
            if parts.path == "/app.css":
                self._send(200, _asset("dashboard.css"), "text/css; charset=utf-8")
                return
            if not dashboard.allowed(self.headers, query):
                self._send(401, b"an access token is required\n", "text/plain; charset=utf-8")
                return
            path = parts.path
            if path in ("/", "/index.html"):
                page = _asset("dashboard.html").replace(
                    b"__REFRESH_MS__", str(int(dashboard.refresh_s * 1000)).encode()
                )
                self._send(200, page, "text/html; charset=utf-8")
            elif path == "/api/state":
                state = redact_json(dashboard.state())
                body = json.dumps(state, default=lambda value: redact(str(value))).encode()
                self._send(200, body, "application/json")
            elif path == "/metrics":
                text = redact(prometheus_text(dashboard.monitor.snapshot())).encode()
                self._send(200, text, "text/plain; version=0.0.4; charset=utf-8")
            elif path == "/healthz":
                health = dashboard.monitor.health()
                body = json.dumps(redact_json(health.to_dict())).encode()
                self._send(503 if health.status == "failing" else 200, body, "application/json")
            else:
                self._send(404, b"not found\n", "text/plain; charset=utf-8")

    return Handler
