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

* quote latency, end to end, measured the same way for every client: from the moment the
  fake TWS's process began to replay the quote (its wall clock, recorded per time stamp) to
  the moment the strategy's `on_quote` (or the other client's handler) saw it (this
  process's wall clock: the same clock on one machine): p50, p99 and max, in microseconds,
  and how many quotes it saw (ibkrfw's `on_quote` sees the bid and the ask change apart).

`--client ib_async` runs the same replay into ib_async (the asyncio client a user would pick
instead of ibkrfw for live data), its ticker's `pendingTickersEvent` in place of `on_quote`
(ib_async hands over the latest state of a ticker per socket read, so it may see fewer quotes:
the count is printed). Each bid is unique, so each quote seen is matched to its time stamp.

Counting messages: each time stamp is two messages from TWS (a bid and an ask tickPrice,
each carrying its size), four ibapi callbacks (the client derives a tickSize from each) and
two quotes to `on_quote`; so `--rate 1000` is 2,000 messages/s and `--rate 5000` 10,000.

Run it flat out for the throughput, and at a rate the path keeps up with for the latency
(flat out, the queues fill and the latency measures the backlog):

    python bench/live_throughput.py [--quotes 100000] [--every 1000]
    python bench/live_throughput.py --quotes 20000 --rate 2000 --every 200
    python bench/live_throughput.py --quotes 50000 --rate 5000 --client ib_async
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd

from ibkrfw import Context, Engine, Order, OrderRequest, OrderType, Quote, Side, Stock, Strategy
from ibkrfw.core.queue import Inbox
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
        self.seen: list[tuple[float, int]] = []  # (bid, wall clock ns when on_quote saw it)
        # per quote seen: when the feed made it (its ts_ns, wall clock) and when its message
        # was read off the socket (the inbox's arrival, monotonic clock), for the stages
        self.stamps: list[tuple[int, int]] = []
        self.inbox: Inbox | None = None
        self._working: Order | None = None

    def on_quote(self, ctx: Context, quote: Quote) -> None:
        self.seen.append((quote.bid, time.time_ns()))
        if self.inbox is not None:
            self.stamps.append((quote.ts_ns, self.inbox.arrival_ns))
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


BASE, STEP = 100.0, 0.01  # the i-th quote's bid is BASE + i * STEP: unique, so traceable


def quotes_frame(count: int) -> pd.DataFrame:
    mid = BASE + 0.01 + np.arange(count) * STEP
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
        sent_ns = np.zeros(count, dtype=np.int64)  # when each quote's replay began
        done = 0
        while done < count:
            sent_ns[done] = time.time_ns()
            if not tws.step(1):
                break
            done += 1
            if rate > 0:  # hold the pace: the i-th quote leaves at i / rate seconds
                ahead = done / rate - (time.perf_counter() - started)
                if ahead > 0:
                    time.sleep(ahead)
        np.save(port_file.with_suffix(".sent.npy"), sent_ns[:done])
        print(f"fake TWS: {count} quotes replayed in {time.perf_counter() - started:.2f} s",
              flush=True)  # fmt: skip
        tws.wait_for(lambda: not tws.client_ids, 120)


def latencies_us(seen: list[tuple[float, int]], sent_ns: np.ndarray) -> np.ndarray:
    """End-to-end latency of each quote seen: when seen minus when its time stamp was sent."""
    bids = np.array([bid for bid, _ in seen])
    at = np.array([ns for _, ns in seen], dtype=np.int64)
    index = np.rint((bids - BASE) / STEP).astype(np.int64)
    ok = (index >= 0) & (index < len(sent_ns))
    return (at[ok] - sent_ns[index[ok]]) / 1e3


def run_ib_async(port: int) -> list[tuple[float, int]]:
    """Subscribe with ib_async and record each bid its ticker events show, until idle."""
    import ib_async  # the `test` extra installs it

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    ib = ib_async.IB()
    seen: list[tuple[float, int]] = []

    def on_tickers(tickers: set[ib_async.Ticker]) -> None:
        now = time.time_ns()
        for ticker in tickers:
            if ticker.bid == ticker.bid and ticker.bid > 0:
                seen.append((ticker.bid, now))

    try:
        ib.connect("127.0.0.1", port, clientId=1, timeout=30)
        ib.pendingTickersEvent += on_tickers
        (contract,) = ib.qualifyContracts(ib_async.Stock("ACME", "SMART", "USD"))
        ib.reqMktData(contract)
        deadline = time.monotonic() + 300
        last, idle_since = -1, time.monotonic()
        while time.monotonic() < deadline:  # until the quotes stop coming for a second
            ib.sleep(0.1)
            if len(seen) != last:
                last, idle_since = len(seen), time.monotonic()
            elif seen and time.monotonic() - idle_since > 1.0:
                break
    finally:
        ib.disconnect()
        loop.run_until_complete(asyncio.sleep(0.05))
        asyncio.set_event_loop(None)
        loop.close()
    return seen


def print_latency(label: str, seen: list[tuple[float, int]], sent_ns: np.ndarray) -> None:
    lat = latencies_us(seen, sent_ns)
    print(
        f"{label}: quote latency end to end over {len(lat)} quotes seen of {len(sent_ns)}: "
        f"p50 {np.percentile(lat, 50):.0f} us, p99 {np.percentile(lat, 99):.0f} us, "
        f"max {lat.max():.0f} us"
    )


def print_stages(probe: Probe, sent_ns: np.ndarray, mono_to_wall_ns: int) -> None:
    """Where ibkrfw's time goes: fake TWS -> socket read -> feed -> on_quote, per quote."""
    seen = np.array([ns for _, ns in probe.seen], dtype=np.int64)
    bids = np.array([bid for bid, _ in probe.seen])
    fed = np.array([ts for ts, _ in probe.stamps], dtype=np.int64)
    read = np.array([arrival for _, arrival in probe.stamps], dtype=np.int64) + mono_to_wall_ns
    index = np.rint((bids - BASE) / STEP).astype(np.int64)
    ok = (index >= 0) & (index < len(sent_ns))
    stages = {
        "fake -> socket read": read[ok] - sent_ns[index[ok]],
        "socket read -> feed": fed[ok] - read[ok],
        "feed -> on_quote": seen[ok] - fed[ok],
    }
    for name, lat in stages.items():
        us = lat / 1e3
        print(f"  {name}: p50 {np.percentile(us, 50):.0f} us, p99 {np.percentile(us, 99):.0f} us, "
              f"max {us.max():.0f} us")  # fmt: skip


class GcPauses:
    """Records the collector's pauses (gc.callbacks) while installed."""

    def __init__(self) -> None:
        self.pauses_ns: list[tuple[int, int]] = []  # (generation, ns)
        self._started = 0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter_ns()
        else:
            self.pauses_ns.append((info["generation"], time.perf_counter_ns() - self._started))

    def summary(self) -> str:
        out = []
        for gen in (0, 1, 2):
            ns = [p for g, p in self.pauses_ns if g == gen]
            if ns:
                out.append(f"gen {gen}: {len(ns)}, max {max(ns) / 1e3:.0f} us")
        return "; ".join(out) or "none"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quotes", type=int, default=100_000)
    parser.add_argument("--every", type=int, default=1000)
    parser.add_argument(
        "--rate", type=float, default=0.0, help="time stamps replayed per second (0: flat out)"
    )
    parser.add_argument(
        "--client", choices=("ibkrfw", "ib_async"), default="ibkrfw", help="who reads the quotes"
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
        if args.client == "ib_async":
            seen = run_ib_async(port)
            server.wait(60)
            print_latency("ib_async", seen, np.load(port_file.with_suffix(".sent.npy")))
            return
        client = IBClient(IBKRConfig(port=port, max_messages_per_second=50))
        feed = IBKRDataFeed([ACME], client=client, bar_size=None, quotes=True)
        probe = Probe(args.every)
        engine = Engine(probe, feed, IBKRBroker(client=client))
        probe.inbox = engine.inbox
        mono_to_wall_ns = time.time_ns() - time.monotonic_ns()
        pauses = GcPauses()
        gc.callbacks.append(pauses)
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
        gc.callbacks.remove(pauses)
        server.wait(60)
        sent_ns = np.load(port_file.with_suffix(".sent.npy"))
    finally:
        if server.poll() is None:
            server.kill()
        port_file.unlink(missing_ok=True)
        port_file.with_suffix(".sent.npy").unlink(missing_ok=True)
    elapsed_s = (probe.last_ns - probe.first_ns) / 1e9
    lat = np.array(probe.latencies_ns, dtype=np.float64) / 1e3
    print(f"ticks through the path: {feed.ticks} in {elapsed_s:.2f} s: "
          f"{feed.ticks / elapsed_s:,.0f} ticks/s")  # fmt: skip
    print(f"quotes reaching on_quote: {probe.quotes}: {probe.quotes / elapsed_s:,.0f} quotes/s")
    if len(lat):
        print(
            f"tick-to-order latency over {len(lat)} orders: p50 {np.percentile(lat, 50):.0f} us, "
            f"p99 {np.percentile(lat, 99):.0f} us, max {lat.max():.0f} us"
        )
    print(f"orders sent: {client.sent_counts['placeOrder']}, "
          f"cancels: {client.sent_counts['cancelOrder']}")  # fmt: skip
    print_latency("ibkrfw", probe.seen, sent_ns)
    print_stages(probe, sent_ns, mono_to_wall_ns)
    print(f"  garbage collections during the run: {pauses.summary()}")


if __name__ == "__main__":
    main()
