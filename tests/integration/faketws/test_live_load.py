"""Load that is seen: a burst from the fake TWS and a slow strategy, over a real socket.

The lag from the socket read to the end of the strategy's handler is measured, shown in the
monitor's snapshot and metrics, warned about once past ``max_lag_s`` (health degraded) and
recovered from; the inbox stays bounded (quotes conflated per instrument, bars and order
events all kept).
"""

from __future__ import annotations

import logging
import threading
import time
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ibkrfw import ConfigError, Engine, OrderFilled, OrderRequest, Side, Stock, Strategy
from ibkrfw.ibkr import IBClient, IBKRBroker, IBKRConfig, IBKRDataFeed
from ibkrfw.monitoring import Alerter, LiveMonitor
from ibkrfw.monitoring.dashboard import prometheus_text
from ibkrfw.testing import FakeTWS, RecordingChannel

WAIT = 10.0
ACME = Stock("ACME")


def until(condition: Any, timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


class Slow(Strategy):
    """5 ms a bar (and a quote); buys once, on its first bar."""

    def __init__(self, pause_s: float = 0.005) -> None:
        self.pause_s = pause_s
        self.bars = 0
        self.quotes = 0
        self.order_events: list[object] = []
        self.fills = 0

    def on_bar(self, ctx: Any, bar: Any) -> None:
        self.bars += 1
        if self.bars == 1:
            ctx.submit(OrderRequest(bar.instrument, Side.BUY, Decimal(1)))
        time.sleep(self.pause_s)

    def on_quote(self, ctx: Any, quote: Any) -> None:
        self.quotes += 1
        time.sleep(self.pause_s)

    def on_order(self, ctx: Any, order: Any, event: Any) -> None:
        self.order_events.append(event)

    def on_fill(self, ctx: Any, fill: Any) -> None:
        self.fills += 1


def _run(engine: Engine) -> threading.Thread:
    runner = threading.Thread(target=engine.run, name="test-engine")
    runner.start()
    return runner


def test_live_load_burst_with_slow_strategy_warns_degrades_and_recovers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    channel = RecordingChannel()
    monitor = LiveMonitor(alerter=Alerter([channel]).start(), max_lag_s=0.3, max_inbox=1_000)
    strategy = Slow()
    with FakeTWS.from_sample(["ACME"]) as tws:
        client = IBClient(IBKRConfig(port=tws.port))
        feed = IBKRDataFeed([ACME], client=client, bar_size=None, quotes=True)
        engine = Engine(strategy, feed, IBKRBroker(client=client), observers=[monitor],
                        tune_gc=False, inbox_bound=50)  # fmt: skip
        engine.inbox.window_s = 0.5  # recovery shows within half a second of catching up
        engine.inbox.conflate_from = 100
        runner = _run(engine)
        try:
            assert tws.wait_for(lambda: tws.messages("in", client_id=1, msg_id=50), WAIT)
            assert tws.wait_for(lambda: tws.messages("in", client_id=1, msg_id=1), WAIT)
            statuses: list[str] = []

            def load_status() -> str:
                checks = monitor.health().checks
                return next(c.status for c in checks if c.name == "load")

            depths: list[int] = []
            tws.step(200)  # a burst: 200 bars and their quotes, as fast as the socket goes
            # 200 bars at 5 ms each: about a second behind at the end of the burst
            assert until(lambda: (statuses.append(load_status()),
                                  depths.append(engine.inbox.stats().depth),
                                  strategy.bars >= 200)[-1])  # fmt: skip
            assert until(lambda: load_status() == "ok", 5.0)  # caught up
            tws.step(2)  # the order sent on the first bar fills on the next bar replayed
            assert until(lambda: strategy.fills == 1 and strategy.bars == 202)
        finally:
            engine.stop()
            runner.join(WAIT)
            monitor.alerter.stop()  # type: ignore[union-attr]
    assert "degraded" in statuses
    assert strategy.bars == 202  # no bar dropped
    kinds = [type(e).__name__ for e in strategy.order_events]
    assert "OrderFilled" in kinds and strategy.fills == 1  # no order event dropped
    stats = engine.inbox.stats()
    assert stats.conflated > 0  # the quotes waiting were conflated...
    assert stats.high_water <= 200 + 100 + 10  # ...so the inbox held the bars, few quotes
    warnings = [r for r in caplog.records if "falling behind" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    recovered = [r for r in caplog.records if "caught up (recovered)" in r.getMessage()]
    assert len(recovered) == 1 and recovered[0].levelno == logging.INFO
    bound = [r for r in caplog.records if "past its bound of 50" in r.getMessage()]
    assert len(bound) == 1 and bound[0].levelno == logging.WARNING
    alerts = [(a.kind, a.severity) for a in channel.alerts]
    assert ("lagging", "warning") in alerts and ("lag_recovered", "info") in alerts


def test_live_load_is_in_the_snapshot_and_the_metrics() -> None:
    monitor = LiveMonitor()
    strategy = Slow(pause_s=0.0)
    with FakeTWS.from_sample(["ACME"]) as tws:
        client = IBClient(IBKRConfig(port=tws.port))
        feed = IBKRDataFeed([ACME], client=client, bar_size=None, quotes=True)
        engine = Engine(strategy, feed, IBKRBroker(client=client), observers=[monitor],
                        tune_gc=False)  # fmt: skip
        runner = _run(engine)
        try:
            assert tws.wait_for(lambda: tws.messages("in", client_id=1, msg_id=1), WAIT)
            tws.step(20)
            assert until(lambda: strategy.bars >= 20 and "load" in monitor.snapshot())
            assert until(lambda: monitor.snapshot()["load"]["handled"] >= 20)
        finally:
            engine.stop()
            runner.join(WAIT)
    snap = monitor.snapshot()
    load = snap["load"]
    assert 0 < load["lag_p50_s"] <= load["lag_p99_s"] <= load["lag_max_s"] < 1.0
    assert load["behind"] is False and load["bound"] == 10_000
    check = next(c for c in snap["health"]["checks"] if c["name"] == "load")
    assert check["status"] == "ok" and check["detail"].startswith("lag p50 ")
    text = prometheus_text(snap)
    assert 'ibkrfw_lag_seconds{quantile="0.99"}' in text
    assert "\nibkrfw_inbox_depth " in text
    assert "ibkrfw_quotes_conflated_total" in text
    assert load["ticks_conflated"] == 0 and "\nibkrfw_ticks_conflated_total 0.0" in text


def _quotes(count: int) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    mid = 100 + np.cumsum(rng.normal(0, 0.02, count))
    index = pd.date_range("2024-01-02 14:30", periods=count, freq="1s", tz="UTC")
    return pd.DataFrame({"bid": np.round(mid - 0.01, 2), "ask": np.round(mid + 0.01, 2),
                         "bid_size": 100.0, "ask_size": 100.0}, index=index)  # fmt: skip


def test_live_load_quote_burst_keeps_the_inbox_bounded_and_every_order_event() -> None:
    """A quote burst far faster than on_quote: conflated, and the order's events all come."""
    strategy = Slow(pause_s=0.001)
    sent: list[int] = []

    class Buyer(Slow):
        def on_quote(self, ctx: Any, quote: Any) -> None:
            super().on_quote(ctx, quote)
            if self.quotes == 1:
                sent.append(ctx.submit(OrderRequest(quote.instrument, Side.BUY, 1)).order_id)

    strategy = Buyer(pause_s=0.001)
    with FakeTWS(quotes={ACME: _quotes(6_000)}) as tws:
        client = IBClient(IBKRConfig(port=tws.port))
        feed = IBKRDataFeed([ACME], client=client, bar_size=None, quotes=True)
        engine = Engine(strategy, feed, IBKRBroker(client=client), tune_gc=False)
        engine.inbox.conflate_from = 20
        runner = _run(engine)
        try:
            assert tws.wait_for(lambda: tws.messages("in", client_id=1, msg_id=1), WAIT)
            tws.step(1)
            assert until(lambda: sent)
            tws.step(5_999)  # about 12,000 quotes at once; on_quote takes 1 ms each
            assert until(lambda: engine.inbox.stats().handled > 0 and not engine.inbox)
            assert until(lambda: strategy.fills == 1)
        finally:
            engine.stop()
            runner.join(WAIT)
    stats = engine.inbox.stats()
    assert stats.conflated + client.conflated > 5_000  # most quotes: replaced by newer ones
    assert stats.high_water <= 20 + 2 + 10  # ...and few ever waited
    assert strategy.quotes < 6_000
    kinds = [type(e) for e in strategy.order_events]
    assert OrderFilled in kinds  # the order's events were never conflated


def test_fake_tws_burst_sends_quotes_at_the_rate_asked() -> None:
    seen: list[float] = []

    class Count(Strategy):
        def on_quote(self, ctx: Any, quote: Any) -> None:
            seen.append(quote.bid)

    with FakeTWS(quotes={ACME: _quotes(1)}) as tws:
        client = IBClient(IBKRConfig(port=tws.port))
        feed = IBKRDataFeed([ACME], client=client, bar_size=None, quotes=True)
        engine = Engine(Count(), feed, IBKRBroker(client=client), tune_gc=False)
        runner = _run(engine)
        try:
            assert tws.wait_for(lambda: tws.messages("in", client_id=1, msg_id=1), WAIT)
            bids = [200.0 + i / 100 for i in range(1_000)]
            took = tws.burst(ACME, bids, [b + 0.01 for b in bids], rate=10_000)
            assert until(lambda: seen[-1] == bids[-1])
        finally:
            engine.stop()
            runner.join(WAIT)
        with pytest.raises(ConfigError, match="1 bids but 2 asks"):
            tws.burst(ACME, [1.0], [1.0, 2.0])
        with pytest.raises(ConfigError, match="rate must be a positive number"):
            tws.burst(ACME, [1.0], [1.0], rate=0)
    assert 0.15 <= took < 2.0  # 2,000 messages at 10,000 a second: 0.2 s


def test_live_load_conflated_quotes_never_come_before_a_fill_that_tws_sent_first() -> None:
    """A limit order fills mid-burst while older quotes still wait: none newer than the fill.

    The fake TWS matches the order on quote ``k`` and sends the fill before that quote, so
    every quote the strategy sees before its fill must be older than ``k``: conflation keeps
    the latest quote where it arrived, never in the place of one that waited before the fill.
    """
    count = 4_000
    bids = 100.0 - np.arange(count) / 100  # falling by a cent a quote: its bid is its number
    index = pd.date_range("2024-01-02 14:30", periods=count, freq="1s", tz="UTC")
    frame = pd.DataFrame({"bid": bids, "ask": bids + 0.01, "bid_size": 100.0,
                          "ask_size": 100.0}, index=index)  # fmt: skip
    limit = Decimal("70.00")
    k = int(np.argmax(frame["ask"].to_numpy() <= float(limit) + 1e-9))  # the quote it fills on
    seen: list[tuple[str, int]] = []

    class Recorder(Strategy):
        def on_quote(self, ctx: Any, quote: Any) -> None:
            if not seen:
                ctx.submit(OrderRequest.limit(quote.instrument, Side.BUY, 1, limit))
            seen.append(("quote", round((100.0 - quote.bid) * 100)))
            time.sleep(0.002)  # slower than the burst: quotes wait and are conflated

        def on_fill(self, ctx: Any, fill: Any) -> None:
            seen.append(("fill", k))

    with FakeTWS(quotes={ACME: frame}) as tws:
        client = IBClient(IBKRConfig(port=tws.port))
        feed = IBKRDataFeed([ACME], client=client, bar_size=None, quotes=True)
        engine = Engine(Recorder(), feed, IBKRBroker(client=client), tune_gc=False)
        engine.inbox.conflate_from = 5
        runner = _run(engine)
        try:
            assert tws.wait_for(lambda: bool(tws.messages("in", client_id=1, msg_id=1)), WAIT)
            tws.step(1)
            assert tws.wait_for(lambda: bool(tws.messages("in", client_id=1, msg_id=3)), WAIT)
            tws.step(count - 1)
            assert until(lambda: ("fill", k) in seen and not engine.inbox)
        finally:
            engine.stop()
            runner.join(WAIT)
    stats = engine.inbox.stats()
    assert stats.conflated + client.conflated > 0  # the quotes did wait and were conflated
    filled_at = seen.index(("fill", k))
    before = [n for kind, n in seen[:filled_at] if kind == "quote"]
    assert before and max(before) < k, f"quote {max(before)} came before the fill on {k}"
    assert [n for _, n in seen[filled_at + 1 :]] == sorted(n for _, n in seen[filled_at + 1 :])
