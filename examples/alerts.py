"""Alerts: to the log and to a webhook (Slack-shaped here), de-duplicated, never blocking.

Run it with ``python examples/alerts.py``. A tiny HTTP server on 127.0.0.1 stands in for
Slack; the alerter sends a few alerts (one of them three times: it goes out once) and shows
what reached each channel. For email, add an ``EmailChannel`` (its password comes from the
environment, never from code); in ``ibkrfw run`` the same is an ``[alerts]`` table.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ibkrfw.monitoring import Alert, Alerter, LogChannel, WebhookChannel

received: list[dict[str, object]] = []


class FakeSlack(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeSlack)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    slack = WebhookChannel(f"http://127.0.0.1:{server.server_address[1]}/hook", "slack")
    alerter = Alerter([LogChannel(), slack], quiet_s=900).start()
    try:
        for _ in range(3):  # the same alert three times: delivered once
            alerter.send(Alert("stale_data", "no new bar of ACME for 12 min"))
        alerter.send(Alert("risk_halt", "trading halted by MaxDrawdownKillSwitch",
                           "equity 8,200 is 18 % below its peak", "critical"))  # fmt: skip
        alerter.flush()
    finally:
        alerter.stop()
        server.shutdown()
        server.server_close()
    print(f"{len(received)} webhook posts, {alerter.suppressed} repeat(s) dropped")
    for body in received:
        print(" ", body["text"].splitlines()[0])


if __name__ == "__main__":
    main()
