"""Live path under load: the message rate it keeps up with, and the lag at 2x and 10x that rate.

A fake TWS in its own process replays top-of-book quotes (a bid and an ask price message per
time stamp, each carrying its size) at a fixed rate over a real socket on 127.0.0.1. In this
process they go through the official ibapi client, `IBClient`'s reader, the `IBKRDataFeed`,
the engine's inbox and loop, to the strategy's `on_quote`. Each quote's bid encodes its
number, so its *intended* send time (start + i / rate) is known here: the clocks of both
processes are the system's monotonic clock.

Figures, per run:

* rate: messages per second the fake TWS was asked for, and what it sent;
* lag (socket read -> on_quote): the lag the engine measures and the monitor shows
  (`Inbox.stats`), p50 / p99 / max over every quote the strategy saw;
* behind schedule (intended send -> on_quote): how stale the quotes the strategy acts on
  are; includes what waits in TWS and in the socket, which no client-side stamp sees;
* conflated: quotes replaced in the inbox by a newer one of the instrument (not dropped
  data: the strategy always gets the latest quote);
* memory: the growth of this process's resident memory during the run (peak minus start).

First it doubles the rate (from --start) until a run no longer keeps up, then tries 1.5x the
last rate that did: the highest rate kept up with is the *sustained rate*. Keeping up means
every quote reaches the strategy (none conflated) and the strategy is less than 100 ms
behind schedule (p99). Then it runs at 2x and 10x that rate for --seconds each: past the
sustained rate, ticks are conflated (the strategy gets the latest quote, later than each
one), which keeps the lag and the memory bounded.

    python bench/live_load.py --reader    # the reader alone: ibapi's against ibkrfw's

    python bench/live_load.py [--start 5000] [--seconds 5]
    python bench/live_load.py --rate 20000 --seconds 5     # one run at a given rate
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ibkrfw import Context, Engine, Quote, Stock, Strategy
from ibkrfw.ibkr import IBClient, IBKRBroker, IBKRConfig, IBKRDataFeed
from ibkrfw.testing import FakeTWS

ACME = Stock("ACME")
BASE = 1000.0  # bid of quote 0; quote i bids BASE + i / 100


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Probe(Strategy):
    """Records, per quote: its number, when on_quote ran, and the engine's measured lag.

    Into arrays allocated (and touched) before the run, so they do not count as its memory.
    """

    def __init__(self, capacity: int) -> None:
        self.engine: Engine | None = None
        self.count = 0
        self.index = np.full(capacity, -1, dtype=np.int64)
        self.seen_ns = np.zeros(capacity, dtype=np.int64)
        self.lag_ns = np.full(capacity, -1, dtype=np.int64)

    def on_quote(self, ctx: Context, quote: Quote) -> None:
        now = time.monotonic_ns()
        i = self.count
        if i >= len(self.index):
            return
        self.count = i + 1
        self.index[i] = round((quote.bid - BASE) * 100)
        self.seen_ns[i] = now
        inbox = self.engine.inbox if self.engine is not None else None
        arrival = getattr(inbox, "arrival_ns", 0)
        if arrival:
            self.lag_ns[i] = now - arrival


def first_quote() -> pd.DataFrame:
    """The quote the fake knows before the burst (its number is negative: left out)."""
    index = pd.date_range("2024-01-02 14:30", periods=1, freq="1s", tz="UTC")
    return pd.DataFrame({"bid": [BASE / 2], "ask": [BASE / 2 + 0.01]}, index=index)


def serve(steps: int, rate: float, port_file: Path) -> None:
    """The fake TWS's process: wait for a quote subscription, send the quotes at `rate`."""
    with FakeTWS(quotes={ACME: first_quote()}) as tws:
        port_file.write_text(f"{tws.port}\n")
        if not tws.wait_for(lambda: tws.messages("in", msg_id=1), 60):
            raise SystemExit("no subscription")
        time.sleep(0.2)  # the client settles (its first quote: the snapshot)
        bids = np.round(BASE + np.arange(steps) / 100, 2).tolist()
        asks = np.round(np.array(bids) + 0.01, 2).tolist()
        took = tws.burst(ACME, bids, asks, rate=2 * rate)
        started = time.monotonic_ns() - int(took * 1e9)
        with port_file.open("a") as out:
            out.write(f"{started}\n{took}\n")
        tws.wait_for(lambda: not tws.client_ids, 300)


def run(rate_msgs: float, seconds: float) -> dict[str, Any]:
    """One run at `rate_msgs` messages per second (two per time stamp) for `seconds`."""
    steps_rate = rate_msgs / 2
    steps = max(10, int(steps_rate * seconds))
    port_file = Path(f"/tmp/ibkrfw-load-{time.time_ns()}.port")
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port_file), "--steps", str(steps),
         "--rate", str(steps_rate)]
    )  # fmt: skip
    probe = Probe(2 * steps + 100)
    peak = [0.0]
    try:
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.monotonic() > deadline:
                raise SystemExit("the fake TWS did not start")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        client = IBClient(IBKRConfig(port=port))
        feed = IBKRDataFeed([ACME], client=client, bar_size=None, quotes=True)
        engine = Engine(probe, feed, IBKRBroker(client=client), tune_gc=False)
        probe.engine = engine
        start_mb = rss_mb()
        runner = threading.Thread(target=engine.run)
        runner.start()
        last, idle_since = -1, time.monotonic()
        deadline = time.monotonic() + seconds * 20 + 60
        while time.monotonic() < deadline:  # until the replay is over and the quotes stop
            time.sleep(0.05)
            peak[0] = max(peak[0], rss_mb())
            count = probe.count
            if count != last:
                last, idle_since = count, time.monotonic()
            elif len(port_file.read_text().split()) >= 3 and time.monotonic() - idle_since > 5:
                break
        engine.stop()
        runner.join(30)
        server.wait(60)
        _, started, took = port_file.read_text().split()[:3]
    finally:
        if server.poll() is None:
            server.kill()
        port_file.unlink(missing_ok=True)
    seen_count = probe.count
    index, seen = probe.index[:seen_count], probe.seen_ns[:seen_count]
    burst = index >= 0
    index, seen = index[burst], seen[burst]
    behind = (seen - (int(started) + index / steps_rate * 1e9)) / 1e9
    lag = probe.lag_ns[:seen_count][burst]
    lag = lag[lag >= 0] / 1e9
    stats = getattr(engine.inbox, "stats", None)
    conflated = stats().conflated if stats is not None else 0
    return {
        "asked": rate_msgs,
        "sent": 2 * steps / float(took),
        "quotes": len(index),
        "last": int(index.max()) if len(index) else -1,
        "steps": steps,
        "behind": behind,
        "lag": lag,
        "conflated": conflated,
        "memory_mb": peak[0] - start_mb,
        "blocked_s": getattr(client, "reader_blocked_s", 0.0),
        "wire_conflated": getattr(client, "conflated", 0),
    }


def pct(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def show(label: str, r: dict[str, Any]) -> None:
    lag, behind = r["lag"], r["behind"]
    lag_text = (
        f"lag p50 {pct(lag, 50) * 1e3:.1f} ms, p99 {pct(lag, 99) * 1e3:.1f} ms, "
        f"max {lag.max() * 1e3:.1f} ms"
        if len(lag)
        else "lag not measured (no Inbox)"
    )
    print(
        f"{label}: asked {r['asked']:,.0f} msgs/s, sent {r['sent']:,.0f} msgs/s; "
        f"{r['quotes']:,} of {2 * r['steps']:,} quotes seen (conflated: "
        f"{r['wire_conflated']:,} ticks before decoding, {r['conflated']:,} quotes in the inbox), "
        f"last #{r['last']:,}\n"
        f"    {lag_text}\n"
        f"    behind schedule p50 {pct(behind, 50) * 1e3:.1f} ms, "
        f"p99 {pct(behind, 99) * 1e3:.1f} ms, max {behind.max() * 1e3:.1f} ms; "
        f"memory +{r['memory_mb']:.1f} MB; reader waited {r['blocked_s']:.2f} s",
        flush=True,
    )


def kept_up(r: dict[str, Any]) -> bool:
    return (
        len(r["behind"]) > 0
        and pct(r["behind"], 99) < 0.1
        and r["conflated"] == 0
        and r["wire_conflated"] == 0
        and r["last"] == r["steps"] - 1
        and r["sent"] > 0.9 * r["asked"]
    )


def reader_cost(count: int, ours: bool) -> float:
    """Messages per second read off a socket holding `count` waiting (ibapi's or ours)."""
    import queue
    import socket
    import struct
    from types import SimpleNamespace

    from ibapi.client import EClient
    from ibapi.connection import Connection
    from ibapi.reader import EReader

    payload = b"1\x006\x001001\x001\x00100.25\x00100\x007\x00"  # a tickPrice
    data = (struct.pack("!I", len(payload)) + payload) * count
    writer_end, reader_end = socket.socketpair()
    reader_end.settimeout(1)
    got: Any
    if ours:
        from ibkrfw.ibkr.client import _Connection, _MessageQueue

        conn = _Connection("127.0.0.1", 0)
        stub = SimpleNamespace(conn=conn, connState=EClient.CONNECTED)
        got = _MessageQueue(stub, count + 1, conflate_from=count + 1)  # type: ignore[arg-type]
        conn.pump_into = got
    else:
        conn, got = Connection("127.0.0.1", 0), queue.Queue()
    conn.socket = reader_end
    writer = threading.Thread(target=writer_end.sendall, args=(data,))
    started = time.perf_counter()
    writer.start()
    reader = EReader(conn, got)
    reader.start()
    for _ in range(count):
        got.get(timeout=120)
    took = time.perf_counter() - started
    conn.disconnect()
    writer_end.close()
    writer.join(5)
    reader.join(5)
    return count / took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=float, default=5_000, help="first rate tried, msgs/s")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each run")
    parser.add_argument("--rate", type=float, default=0.0, help="one run at this rate only")
    parser.add_argument("--reader", action="store_true",
                        help="only the reader's cost: ibapi's against ibkrfw's")  # fmt: skip
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.steps, args.rate, args.serve)
        return
    if args.reader:
        for count in (10_000, 100_000, 200_000):
            print(
                f"reader, {count:,} messages waiting: ibapi's {reader_cost(count, False):,.0f}"
                f" msgs/s, ibkrfw's {reader_cost(count, True):,.0f} msgs/s",
                flush=True,
            )
        return
    if args.rate:
        show(f"at {args.rate:,.0f} msgs/s", run(args.rate, args.seconds))
        return
    rate, sustained = args.start, 0.0
    while True:
        result = run(rate, min(args.seconds, 3.0))
        show(f"probe {rate:,.0f}", result)
        if not kept_up(result):
            break
        sustained, rate = rate, rate * 2
    if not sustained:
        raise SystemExit(f"the path did not keep up with {args.start:,.0f} msgs/s")
    result = run(1.5 * sustained, min(args.seconds, 3.0))  # between the last two
    show(f"probe {1.5 * sustained:,.0f}", result)
    if kept_up(result):
        sustained *= 1.5
    print(f"\nsustained: {sustained:,.0f} msgs/s kept up with (every quote, p99 under 100 ms)")
    for factor in (2, 10):
        with contextlib.suppress(KeyboardInterrupt):
            show(f"{factor}x ({factor * sustained:,.0f} msgs/s)",
                 run(factor * sustained, args.seconds))  # fmt: skip


if __name__ == "__main__":
    main()
