"""The dashboard: an HTML page that refreshes itself, a JSON API and Prometheus metrics.

Standard library only (``http.server``), no build step: the page is one HTML file with its
script and style served beside it. It listens on 127.0.0.1 by default; on any other address it
refuses to start without an access token, which every request must then carry (an
``Authorization: Bearer`` header, or ``?token=`` for the page in a browser).
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any, final
from urllib.parse import parse_qs, urlsplit

from ibkrfw.errors import ConfigError
from ibkrfw.monitoring.alerts import read_secret
from ibkrfw.monitoring.monitor import LiveMonitor

__all__ = ["Dashboard", "prometheus_text"]

log = logging.getLogger("ibkrfw.dashboard")

_STATUS = {"ok": 0, "degraded": 1, "failing": 2}


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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

    Args:
        monitor: The run's monitor.
        host: The address to listen on (127.0.0.1 by default).
        port: The port (0 picks a free one; read :attr:`url` after :meth:`start`).
        token: The access token (or from ``token_env``); required off loopback.
        token_env: The environment variable holding the token.
        refresh_s: How often the page refreshes.

    Raises:
        ConfigError: when asked to listen off loopback without a token.
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
    ) -> None:
        if token is None and token_env:
            try:
                token = read_secret(env=token_env, what="dashboard token")
            except ConfigError:
                token = None
        if not _is_loopback(host) and not token:
            raise ConfigError(
                f"the dashboard would listen on {host}, beyond this machine: set an access "
                f"token (${token_env or 'IBKRFW_DASHBOARD_TOKEN'}) or keep it on 127.0.0.1"
            )
        self.monitor = monitor
        self.host, self.port = host, port
        self._token = token or None
        self.refresh_s = refresh_s
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Where the page is (without the token)."""
        return f"http://{self.host}:{self.port}/"

    def start(self) -> Dashboard:
        """Start serving on a background thread."""
        handler = _handler(self)
        self._server = ThreadingHTTPServer((self.host, self.port), handler)
        self._server.daemon_threads = True
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
        return hmac.compare_digest(given.encode(), self._token.encode())


def _handler(dashboard: Dashboard) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "ibkrfw-dashboard"

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s " + format, self.address_string(), *args)

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

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            if not dashboard.allowed(self.headers, query):
                self._send(401, b"an access token is required\n", "text/plain; charset=utf-8")
                return
            path = parts.path
            if path in ("/", "/index.html"):
                page = _asset("dashboard.html").replace(
                    b"__REFRESH_MS__", str(int(dashboard.refresh_s * 1000)).encode()
                )
                self._send(200, page, "text/html; charset=utf-8")
            elif path == "/app.js":
                self._send(200, _asset("dashboard.js"), "text/javascript; charset=utf-8")
            elif path == "/app.css":
                self._send(200, _asset("dashboard.css"), "text/css; charset=utf-8")
            elif path == "/api/state":
                body = json.dumps(dashboard.monitor.snapshot(), default=str).encode()
                self._send(200, body, "application/json")
            elif path == "/metrics":
                text = prometheus_text(dashboard.monitor.snapshot()).encode()
                self._send(200, text, "text/plain; version=0.0.4; charset=utf-8")
            elif path == "/healthz":
                health = dashboard.monitor.health()
                body = json.dumps(health.to_dict()).encode()
                self._send(503 if health.status == "failing" else 200, body, "application/json")
            else:
                self._send(404, b"not found\n", "text/plain; charset=utf-8")

    return Handler
