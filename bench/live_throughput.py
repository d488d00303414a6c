"""Live path throughput: quotes from the fake TWS to a strategy, and tick-to-order latency.

A fake TWS in its own process replays top-of-book quotes as fast as it can (a bid and an ask
price tick per time stamp, plus the size ticks the ibapi client derives from them) over a real
socket on 127.0.0.1. In this process they go through the official ibapi client, the
`IBKRDataFeed` (ticks into `QuoteReceived` events), the engine's inbox and loop, to the
strategy's `on_quote`. Every `--every`-th quote the strategy sends a limit order far from the
market (it rests, never fills) and cancels the one before; IB's 50 messages a second cap
(the client keeps under it) bounds how often that can be.

Printed figures:

* ticks per second through the whole path (ticks that reached the feed, over the time from the
  first quote to the last reaching `on_quote`), and quotes per second reaching `on_quote`;
* tick-to-order latency inside the process: from the moment the feed turned the tick into a
  quote (its `ts_ns`, read on ibapi's thread) to the moment `ctx.submit` returned with the
  order written to the socket: p50, p99 and max, in microseconds.

Run it flat out for the throughput, and at a rate the path keeps up with for the latency
(flat out, the queues fill and the latency measures the backlog):

    python bench/live_throughput.py [--quotes 100000] [--every 1000]
    python bench/live_throughput.py --quotes 20000 --rate 2000 --every 200
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd

from ibkrfw import Context, Engine, Order, OrderRequest, OrderType, Quote, Side, Stock, Strategy
from ibkrfw.ibkr import IBClient, IBKRBroker, IBKRConfig, IBKRDataFeed
from ibkrfw.testing import FakeTWS

ACME = Stock("ACME")


class Probe(Strategy):
    """Counts quotes; every n-th one, replaces its resting order and times the submit."""

    def __init__(self, every: int) -> None:
        self.every = every
        self.quotes = 0
        self.first_ns = 0
        self.last_ns = 0
        self.latencies_ns: list[int] = []
        self._working: Order | None = None

    def on_quote(self, ctx: Context, quote: Quote) -> None:
        self.quotes += 1
        if self.quotes == 1:
            self.first_ns = time.perf_counter_ns()
        self.last_ns = time.perf_counter_ns()
        if self.quotes % self.every:
            return
        limit = Decimal(str(round(quote.bid * 0.5, 2)))
        request = OrderRequest(quote.instrument, Side.BUY, 1, OrderType.LIMIT, limit_price=limit)
        if self._working is not None:
            ctx.cancel(self._working)
        self._working = ctx.submit(request)
        self.latencies_ns.append(time.time_ns() - quote.ts_ns)


def quotes_frame(count: int) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    mid = 100 + np.cumsum(rng.normal(0, 0.02, count))
    index = pd.date_range("2024-01-02 14:30", periods=count, freq="1s", tz="UTC")
    return pd.DataFrame(
        {
            "bid": np.round(mid - 0.01, 2),
            "ask": np.round(mid + 0.01, 2),
            "bid_size": 100.0,
            "ask_size": 100.0,
        },
        index=index,
    )


def serve(count: int, port_file: Path, rate: float) -> None:
    """The fake TWS's process: wait for a quote subscription, replay everything, linger."""
    with FakeTWS(quotes={ACME: quotes_frame(count)}) as tws:
        port_file.write_text(str(tws.port))
        if not tws.wait_for(lambda: tws.messages("in", msg_id=1), 60):
            raise SystemExit("no subscription")
        started = time.perf_counter()
        done = 0
        while True:
            replayed = tws.step(10)
            if not replayed:
                break
            done += replayed
            if rate > 0:  # hold the pace: the i-th quote leaves at i / rate seconds
                ahead = done / rate - (time.perf_counter() - started)
                if ahead > 0:
                    time.sleep(ahead)
        print(f"fake TWS: {count} quotes replayed in {time.perf_counter() - started:.2f} s",
              flush=True)  # fmt: skip
        tws.wait_for(lambda: not tws.client_ids, 120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quotes", type=int, default=100_000)
    parser.add_argument("--every", type=int, default=1000)
    parser.add_argument(
        "--rate", type=float, default=0.0, help="time stamps replayed per second (0: flat out)"
    )
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.quotes, args.serve, args.rate)
        return
    port_file = Path(f"/tmp/ibkrfw-bench-{time.time_ns()}.port")
    server = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--quotes",
            str(args.quotes),
            "--rate",
            str(args.rate),
            "--serve",
            str(port_file),
        ]
    )
    try:
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text()):
            if time.monotonic() > deadline:
                raise SystemExit("the fake TWS did not start")
            time.sleep(0.05)
        port = int(port_file.read_text())
        client = IBClient(IBKRConfig(port=port, max_messages_per_second=50))
        feed = IBKRDataFeed([ACME], client=client, bar_size=None, quotes=True)
        probe = Probe(args.every)
        engine = Engine(probe, feed, IBKRBroker(client=client), tune_gc=False)
        runner = threading.Thread(target=engine.run)
        runner.start()
        deadline = time.monotonic() + 300
        last, idle_since = -1, time.monotonic()
        while time.monotonic() < deadline:  # until the quotes stop coming for a second
            time.sleep(0.1)
            if probe.quotes != last:
                last, idle_since = probe.quotes, time.monotonic()
            elif probe.quotes and time.monotonic() - idle_since > 1.0:
                break
        engine.stop()
        runner.join(30)
        server.wait(60)
    finally:
        if server.poll() is None:
            server.kill()
        port_file.unlink(missing_ok=True)
    elapsed_s = (probe.last_ns - probe.first_ns) / 1e9
    lat = np.array(probe.latencies_ns, dtype=np.float64) / 1e3
    print(f"ticks through the path: {feed.ticks} in {elapsed_s:.2f} s: "
          f"{feed.ticks / elapsed_s:,.0f} ticks/s")  # fmt: skip
    print(f"quotes reaching on_quote: {probe.quotes}: {probe.quotes / elapsed_s:,.0f} quotes/s")
    print(
        f"tick-to-order latency over {len(lat)} orders: p50 {np.percentile(lat, 50):.0f} us, "
        f"p99 {np.percentile(lat, 99):.0f} us, max {lat.max():.0f} us"
    )
    print(f"orders sent: {client.sent_counts['placeOrder']}, "
          f"cancels: {client.sent_counts['cancelOrder']}")  # fmt: skip


if __name__ == "__main__":
    main()
