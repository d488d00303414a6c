"""The live inbox: conflation of quotes past a depth, nothing else dropped, lag figures."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from ibkrfw import ConfigError, Quote, Stock, Strategy, Tick
from ibkrfw.core import Inbox, set_arrival_ns
from ibkrfw.model.data import Bar
from ibkrfw.model.events import (
    BarReceived,
    Event,
    OrderAccepted,
    QuoteReceived,
    TickReceived,
)

A, B = Stock("AAA"), Stock("BBB")


def quote(inst: Stock, bid: float) -> QuoteReceived:
    return QuoteReceived(ts_ns=0, quote=Quote(inst, 0, bid, bid + 0.01, 100.0, 100.0))


def bar(inst: Stock, ts: int) -> BarReceived:
    return BarReceived(ts_ns=ts, bar=Bar(inst, ts, 1.0, 1.0, 1.0, 1.0, 1.0))


def test_inbox_below_conflate_from_delivers_every_quote() -> None:
    inbox = Inbox(conflate_from=10)
    for bid in range(5):
        inbox.put(quote(A, bid))
    got = [inbox.get(0).quote.bid for _ in range(5)]  # type: ignore[union-attr]
    assert got == [0, 1, 2, 3, 4] and inbox.stats().conflated == 0


def test_inbox_past_conflate_from_keeps_the_latest_quote_per_instrument_where_it_arrived() -> None:
    inbox = Inbox(conflate_from=2)
    inbox.put(quote(A, 1))
    inbox.put(quote(B, 1))
    for bid in (2, 3, 4):
        inbox.put(quote(A, bid))  # removes A's quote waiting, joins the end of the line
    inbox.put(TickReceived(ts_ns=0, tick=Tick(A, 0, 5.0, 1.0)))  # a trade: its own line
    inbox.put(quote(B, 2))
    assert len(inbox) == 3 and inbox.stats().depth == 3
    events = [inbox.get(0) for _ in range(len(inbox))]
    assert [type(e).__name__ for e in events] == ["QuoteReceived", "TickReceived", "QuoteReceived"]
    assert [(e.quote.instrument, e.quote.bid) for e in events[::2]] == [(A, 4), (B, 2)]  # type: ignore[union-attr]
    assert inbox.stats().conflated == 4 and not inbox and inbox.get(0) is None


def test_inbox_never_hands_out_a_quote_before_a_fill_or_bar_that_arrived_before_it() -> None:
    """A quote conflated past a fill takes the newest place, not the waiting quote's."""
    inbox = Inbox(conflate_from=1)
    inbox.put(quote(A, 1))
    inbox.put(OrderAccepted(ts_ns=5, order_id=1))  # the fill (any order event)
    inbox.put(bar(A, 6))
    inbox.put(quote(A, 2))  # arrived after both: must come after both
    events = [inbox.get(0) for _ in range(len(inbox))]
    assert [type(e).__name__ for e in events] == ["OrderAccepted", "BarReceived", "QuoteReceived"]
    assert events[2].quote.bid == 2  # type: ignore[union-attr]
    assert inbox.stats().conflated == 1


def test_inbox_waiting_age_skips_conflated_quotes() -> None:
    inbox = Inbox(conflate_from=1)
    set_arrival_ns(time.monotonic_ns() - 5_000_000_000)  # the first quote is 5 s old...
    try:
        inbox.put(quote(A, 1))
    finally:
        set_arrival_ns(0)
    inbox.put(quote(A, 2))  # ...but was removed: the one waiting is fresh
    assert inbox.stats().waiting_s < 1.0


def test_inbox_conflated_places_do_not_pile_up_while_the_engine_stalls() -> None:
    inbox = Inbox(conflate_from=1)
    inbox.put(bar(A, 1))
    for bid in range(100_000):
        inbox.put(quote(A, bid))
    assert len(inbox) == 2 and inbox.stats().conflated == 99_999
    assert len(inbox._items) <= 2 * len(inbox) + 65  # tombstones compacted away
    assert [type(inbox.get(0)).__name__ for _ in range(2)] == ["BarReceived", "QuoteReceived"]


def test_inbox_bars_and_order_events_are_never_dropped_past_the_bound(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "ibkrfw.engine")
    inbox = Inbox(bound=10, conflate_from=1)
    for i in range(30):
        inbox.put(bar(A, i))
        inbox.put(OrderAccepted(ts_ns=i, order_id=i))
    assert len(inbox) == 60
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "past its bound of 10" in warned[0].getMessage()
    assert "nothing is dropped" in warned[0].getMessage()
    events = [inbox.get(0) for _ in range(60)]
    assert [e.ts_ns for e in events] == [i for i in range(30) for _ in (0, 1)]  # type: ignore[union-attr]
    back = [r for r in caplog.records if r.levelno == logging.INFO]
    assert len(back) == 1 and "back to 5 events" in back[0].getMessage()
    stats = inbox.stats()
    assert stats.high_water == 60 and stats.depth == 0 and stats.conflated == 0


def test_inbox_lag_runs_from_the_arrival_stamp_to_handled() -> None:
    inbox = Inbox()
    set_arrival_ns(time.monotonic_ns() - 300_000_000)  # read off the socket 0.3 s ago
    try:
        inbox.put(bar(A, 1))
    finally:
        set_arrival_ns(0)
    inbox.put(bar(A, 2))  # no stamp: arrives as it is put
    for _ in range(2):
        inbox.get(0)
        inbox.handled(inbox.arrival_ns)
    stats = inbox.stats()
    assert stats.handled == 2
    assert 0.3 <= stats.lag_max_s < 1.0 and stats.lag_p50_s < 0.3
    assert stats.behind_s == stats.lag_p99_s >= 0.3


def test_inbox_waiting_age_grows_while_nothing_is_taken() -> None:
    inbox = Inbox()
    inbox.put(bar(A, 1))
    time.sleep(0.05)
    assert inbox.stats().waiting_s >= 0.05 and inbox.stats().depth == 1


def test_inbox_lag_figures_cover_the_window_only() -> None:
    inbox = Inbox(window_s=0.05)
    set_arrival_ns(time.monotonic_ns() - 1_000_000_000)
    try:
        inbox.put(bar(A, 1))
    finally:
        set_arrival_ns(0)
    inbox.get(0)
    inbox.handled(inbox.arrival_ns)
    assert inbox.stats().lag_max_s >= 1.0
    time.sleep(0.06)
    assert inbox.stats().lag_max_s == 0.0  # out of the window: recovered


def test_inbox_get_waits_for_a_producer_thread() -> None:
    inbox = Inbox()
    threading.Timer(0.02, inbox.put, [bar(A, 7)]).start()
    event = inbox.get(2.0)
    assert event is not None and event.ts_ns == 7
    assert inbox.get(0.01) is None


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"bound": 0}, "Inbox(bound=0)"),
        ({"bound": True}, "Inbox(bound=True)"),
        ({"conflate_from": 2.5}, "Inbox(conflate_from=2.5)"),
        ({"window_s": 0}, "Inbox(window_s=0)"),
        ({"window_s": float("inf")}, "Inbox(window_s=inf)"),
    ],
)
def test_inbox_bad_settings_raise_config_error_naming_them(
    kwargs: dict[str, object], named: str
) -> None:
    with pytest.raises(ConfigError, match=named.replace("(", r"\(").replace(")", r"\)")):
        Inbox(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [0, -5, 1.5, True, None])
def test_engine_inbox_bound_must_be_a_positive_whole_number(bad: object) -> None:
    from ibkrfw import Engine
    from ibkrfw.data import sample_feed
    from ibkrfw.sim import SimBroker

    with pytest.raises(ConfigError, match=rf"Engine\(inbox_bound={bad!r}\)"):
        Engine(Strategy(), sample_feed(["ACME"]), SimBroker(), inbox_bound=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"max_lag_s": 0}, r"LiveMonitor\(max_lag_s=0\)"),
        ({"max_lag_s": float("nan")}, r"LiveMonitor\(max_lag_s=nan\)"),
        ({"max_lag_s": "2"}, r"LiveMonitor\(max_lag_s='2'\)"),
        ({"max_inbox": 0}, r"LiveMonitor\(max_inbox=0\)"),
        ({"max_inbox": 10.0}, r"LiveMonitor\(max_inbox=10.0\)"),
    ],
)
def test_live_monitor_load_limits_are_checked(kwargs: dict[str, object], named: str) -> None:
    from ibkrfw.monitoring import LiveMonitor

    with pytest.raises(ConfigError, match=named):
        LiveMonitor(**kwargs)  # type: ignore[arg-type]


def test_backtest_engine_reports_no_load() -> None:
    from ibkrfw import Engine
    from ibkrfw.data import generate_bars
    from ibkrfw.monitoring import LiveMonitor
    from ibkrfw.sim import DataFrameFeed, SimBroker

    # Sixty days are enough: the monitor rebuilds its snapshot on every bar.
    bars = generate_bars(["ACME"], periods=60).drop(columns="symbol").set_index("timestamp")
    monitor = LiveMonitor()
    Engine(Strategy(), DataFrameFeed(bars, Stock("ACME")), SimBroker(), observers=[monitor]).run()
    assert len(monitor.snapshot()["equity_curve"]) == 60  # it did run, bar by bar
    snap = monitor.snapshot()
    assert "load" not in snap
    check = next(c for c in snap["health"]["checks"] if c["name"] == "load")
    assert check["status"] == "ok" and "not measured" in check["detail"]


def test_inbox_get_waiting_while_the_line_is_compacted_takes_each_event_once() -> None:
    """The engine sleeps in get() while a producer conflates enough to compact the line."""
    inbox = Inbox(conflate_from=1)
    got: list[Event | None] = []
    taker = threading.Thread(target=lambda: got.append(inbox.get(5.0)))
    taker.start()
    deadline = time.monotonic() + 5
    while not inbox._ready._waiters and time.monotonic() < deadline:  # type: ignore[attr-defined]
        time.sleep(0.001)
    notify = inbox._ready.notify
    inbox._ready.notify = lambda n=1: None  # type: ignore[method-assign]  # it sleeps on
    inbox.put(bar(A, 1))
    for bid in range(200):  # enough tombstones to compact the line
        inbox.put(quote(A, bid))
    inbox._ready.notify = notify  # type: ignore[method-assign]
    with inbox._lock:
        notify()
    taker.join(5)
    assert type(got[0]).__name__ == "BarReceived"
    last = inbox.get(0)
    assert isinstance(last, QuoteReceived) and last.quote.bid == 199
    assert inbox.get(0) is None and len(inbox) == 0


# -- conflation never reorders: a property over random interleavings ---------------------

_INSTRUMENTS = (A, B, Stock("CCC"))


def _event(op: tuple[str, int], seq: int) -> Event:
    """The event of one operation, numbered by ``ts_ns`` (its place in the arrivals)."""
    kind, which = op
    inst = _INSTRUMENTS[which]
    if kind == "quote":
        return QuoteReceived(ts_ns=seq, quote=Quote(inst, seq, 1.0, 1.01, 1.0, 1.0))
    if kind == "trade":
        return TickReceived(ts_ns=seq, tick=Tick(inst, seq, 1.0, 1.0))
    if kind == "bar":
        return BarReceived(ts_ns=seq, bar=Bar(inst, seq, 1.0, 1.0, 1.0, 1.0, 1.0))
    return OrderAccepted(ts_ns=seq, order_id=seq)


def _key(event: Event) -> tuple[type, Stock] | None:
    if isinstance(event, QuoteReceived):
        return (QuoteReceived, event.quote.instrument)  # type: ignore[return-value]
    if isinstance(event, TickReceived):
        return (TickReceived, event.tick.instrument)  # type: ignore[return-value]
    return None


_OPS = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["quote", "trade", "bar", "order"]), st.integers(0, 2)),
        st.just(("get", 0)),
    ),
    max_size=80,
)


@given(ops=_OPS, conflate_from=st.integers(1, 6))
@example(ops=[("quote", 0), ("order", 0), ("quote", 0)], conflate_from=1)  # a fill between
@example(ops=[("quote", 0), ("quote", 1), ("quote", 0)], conflate_from=1)
def test_inbox_conflation_keeps_the_order_of_arrival(
    ops: list[tuple[str, int]], conflate_from: int
) -> None:
    """Random puts and gets; then the engine drains what waits. With A the arrivals and D
    the events handed out, in order:

    * D is a subsequence of A: no event handed out arrived after one handed out later
      (so no quote is seen before a fill or bar that arrived before it);
    * every bar and order event of A is in D;
    * a quote (or trade) of A missing from D was removed by a newer one of its instrument
      that arrived while it waited, with ``conflate_from`` events or more waiting; and, as
      they always conflate, with ``conflate_from=1`` a quote handed out is the latest of
      its instrument to have arrived by then;
    * the depth and the conflation count say what waits and what was removed.
    """
    inbox = Inbox(conflate_from=conflate_from)
    arrived: list[Event] = []
    handed: list[Event] = []
    model: list[Event] = []  # what waits, by the rule stated, kept the slow obvious way
    removed: set[int] = set()
    for op in [*ops, *[("get", 0)] * (len(ops) + 1)]:
        if op[0] == "get":
            event = inbox.get(0)
            assert (event is None) == (not model)
            if event is not None:
                assert event is model.pop(0)
                handed.append(event)
                if conflate_from == 1 and (key := _key(event)) is not None:
                    assert not any(_key(e) == key and e.ts_ns > event.ts_ns for e in arrived)
            continue
        event = _event(op, len(arrived))
        arrived.append(event)
        key = _key(event)
        if key is not None and len(model) >= conflate_from:
            waiting = [e for e in model if _key(e) == key]
            if waiting:
                model.remove(waiting[-1])
                removed.add(waiting[-1].ts_ns)
        model.append(event)
        inbox.put(event)
        assert len(inbox) == len(model) == inbox.stats().depth
        assert bool(inbox) == bool(model)
    order = [e.ts_ns for e in handed]
    assert order == sorted(order) and len(set(order)) == len(order)  # a subsequence of A
    assert [e for e in arrived if _key(e) is None] == [e for e in handed if _key(e) is None]
    assert {e.ts_ns for e in arrived} - set(order) == removed
    for seq in removed:
        gone = arrived[seq]
        assert any(_key(e) == _key(gone) for e in arrived[seq + 1 :])
    assert inbox.stats().conflated == len(removed) and len(inbox) == 0
