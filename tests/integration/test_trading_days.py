"""DAY orders and auctions in the simulator follow the exchange's sessions, not midnight.

At IB a DAY order is cancelled at the end of the trading session (16:00 New York for US
stocks, 17:00 New York for forex), an order sent after the close is for the next session, and
the opening and closing auctions are the session's. Minute bars with extended hours, and
instruments whose session spans midnight, are where local calendar days get this wrong.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from typing import Any

import pandas as pd
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from ibkrfw import (
    Bar,
    BarReceived,
    Clock,
    Context,
    DataFeed,
    Engine,
    Forex,
    Future,
    Instrument,
    LiveClock,
    Order,
    OrderExpired,
    OrderFilled,
    OrderRequest,
    OrderStatus,
    OrderType,
    Quote,
    SimClock,
    Stock,
)
from ibkrfw.data import SessionCalendar, Sessions, USEquityCalendar, WeekdayCalendar
from ibkrfw.ports import EventSink
from ibkrfw.risk import Protection, StopLoss
from ibkrfw.sim import DataFrameFeed, SimBroker
from ibkrfw.testing import ScriptedStrategy

X = Stock("X")  # New York
NY = "America/New_York"
D = Decimal
FLAT = (100.0, 100.0, 100.0, 100.0)

Row = tuple[Any, ...]  # (local time, (open, high, low, close)[, volume])


def frame(rows: Sequence[Row], tz: str = NY) -> pd.DataFrame:
    """Bars at local times (``"2024-01-02 15:59"``), each (open, high, low, close[, volume])."""
    index = pd.DatetimeIndex([pd.Timestamp(r[0], tz=tz) for r in rows], name="timestamp")
    data = [(*r[1], r[2] if len(r) > 2 else 1_000.0) for r in rows]
    return pd.DataFrame(
        data, index=index.tz_convert("UTC"), columns=["open", "high", "low", "close", "volume"]
    )


def run(
    rows: Sequence[Row],
    actions: dict[int, Callable[[Context, Bar], object]],
    instrument: Instrument = X,
    tz: str = NY,
    **broker_kw: Any,
) -> tuple[ScriptedStrategy, Any]:
    script = ScriptedStrategy(actions)
    feed = DataFrameFeed(frame(rows, tz), instrument)
    result = Engine(script, feed, SimBroker(100_000, **broker_kw)).run()
    return script, result


def ns(text: str, tz: str = NY) -> int:
    return int(pd.Timestamp(text, tz=tz).value)


def expired_at(script: ScriptedStrategy) -> dict[int, int]:
    return {e.order_id: e.ts_ns for _, e in script.events if isinstance(e, OrderExpired)}


# --- DAY orders ---------------------------------------------------------------------------------

# A US stock's minute bars with after-hours and pre-market bars around the 16:00 close.
EXTENDED: list[Row] = [
    ("2024-01-02 15:58", FLAT),
    ("2024-01-02 15:59", FLAT),
    ("2024-01-02 16:00", FLAT),  # after hours
    ("2024-01-02 16:30", (90.0, 91.0, 89.0, 90.0)),  # after hours, through the limit
    ("2024-01-03 04:00", FLAT),  # pre-market
    ("2024-01-03 09:30", FLAT),
    ("2024-01-03 10:00", (100.0, 100.0, 94.0, 95.0)),
]


def test_a_day_order_expires_at_the_sessions_close_not_in_the_evening() -> None:
    script, result = run(EXTENDED, {0: lambda ctx, bar: ctx.buy(X, 10, limit_price="95")})
    # IB cancels it at 16:00: the after-hours bar at 16:30 must not fill it.
    assert script.fills == []
    assert expired_at(script) == {1: ns("2024-01-02 16:00")}  # told with the first bar after
    assert result.order_list[0].status is OrderStatus.EXPIRED


def test_a_day_order_sent_after_the_close_works_the_next_session() -> None:
    rows: list[Row] = [("2024-01-02 16:20", FLAT), *EXTENDED[3:]]
    rows[1] = ("2024-01-02 16:30", FLAT)
    script, _ = run(rows, {0: lambda ctx, bar: ctx.buy(X, 10, limit_price="95")})
    # Not expired at midnight: it is for the session of the 3rd, and fills there at 10:00.
    (fill,) = script.fills
    assert (fill.price, fill.ts_ns) == (D(95), ns("2024-01-03 10:00"))


def test_a_forex_day_order_lives_across_midnight_until_five_pm_new_york() -> None:
    eur = Forex("EUR", currency="USD")
    quiet = (1.1, 1.1, 1.1, 1.1)
    rows: list[Row] = [
        ("2024-01-02 20:00", quiet),
        ("2024-01-02 23:00", quiet),
        ("2024-01-03 00:00", quiet),  # midnight New York: the same forex session
        ("2024-01-03 03:00", (1.1, 1.1, 1.09, 1.095)),
        ("2024-01-03 16:00", quiet),
        ("2024-01-03 17:00", (1.1, 1.1, 1.08, 1.085)),  # the next session
    ]
    script, _ = run(
        rows,
        {
            0: lambda ctx, bar: (
                ctx.buy(eur, 1000, limit_price="1.09"),
                ctx.buy(eur, 1000, limit_price="1.085"),
            )
        },
        instrument=eur,
    )
    (fill,) = script.fills
    assert (fill.order_id, fill.ts_ns) == (1, ns("2024-01-03 03:00"))
    assert expired_at(script) == {2: ns("2024-01-03 17:00")}  # not filled by the next session


def test_the_rest_of_a_partly_filled_day_order_expires_at_the_close() -> None:
    script, result = run(EXTENDED, {0: lambda ctx, bar: ctx.buy(X, 300)}, volume_limit=0.1)
    # 10 % of the 15:59 bar's 1,000; the after-hours bars fill nothing more.
    assert [(f.quantity, f.ts_ns) for f in script.fills] == [(D(100), ns("2024-01-02 15:59"))]
    order = result.order_list[0]
    assert (order.status, order.filled_quantity) == (OrderStatus.EXPIRED, D(100))
    assert expired_at(script) == {1: ns("2024-01-02 16:00")}


def test_the_exits_of_a_day_bracket_expire_with_the_session() -> None:
    rows: list[Row] = [
        ("2024-01-02 15:58", FLAT),
        ("2024-01-02 15:59", FLAT),  # the entry fills at this open
        ("2024-01-02 16:05", (100.0, 100.0, 90.0, 91.0)),  # after hours, through the stop
    ]
    script, result = run(
        rows,
        {0: lambda ctx, bar: ctx.bracket(X, "BUY", 10, take_profit=110, stop_loss=95, tif="DAY")},
    )
    assert [f.order_id for f in script.fills] == [1]
    assert expired_at(script) == {2: ns("2024-01-02 16:05"), 3: ns("2024-01-02 16:05")}
    assert [o.status for o in result.order_list[1:]] == [OrderStatus.EXPIRED] * 2


def test_gtc_and_gtd_orders_ignore_the_sessions_close() -> None:
    until = ns("2024-01-02 17:00")
    script, _ = run(
        EXTENDED,
        {
            0: lambda ctx, bar: (
                ctx.buy(X, 10, limit_price="95", tif="GTC"),
                ctx.buy(X, 10, limit_price="85", tif="GTD", good_till_ns=until),
            )
        },
    )
    assert [(f.order_id, f.ts_ns) for f in script.fills] == [(1, ns("2024-01-02 16:30"))]
    assert expired_at(script) == {2: ns("2024-01-03 04:00")}  # the first bar at or after 17:00


def test_a_day_order_follows_an_early_close_with_exchange_calendars_and_16h_without(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rows: list[Row] = [
        ("2024-11-29 12:58", FLAT),  # the day after Thanksgiving: NYSE closes at 13:00
        ("2024-11-29 12:59", FLAT),
        ("2024-11-29 13:30", (96.0, 96.0, 94.0, 95.0)),
    ]
    script, _ = run(rows, {0: lambda ctx, bar: ctx.buy(X, 10, limit_price="95")})
    assert script.fills == []
    assert expired_at(script) == {1: ns("2024-11-29 13:30")}
    monkeypatch.setitem(sys.modules, "exchange_calendars", None)  # the weekday fallback
    script, _ = run(rows, {0: lambda ctx, bar: ctx.buy(X, 10, limit_price="95")})
    assert [f.ts_ns for f in script.fills] == [ns("2024-11-29 13:30")]  # open until 16:00 there


def test_a_calendar_given_to_the_broker_sets_a_futures_session() -> None:
    es = Future("ES", expiry="202403", exchange="CME", multiplier=50, tick_size="0.25",
                timezone="America/Chicago")  # fmt: skip
    globex = WeekdayCalendar("America/Chicago", "17:00", "16:00")  # from 17:00 the day before
    rows: list[Row] = [
        ("2024-01-02 15:58", FLAT),
        ("2024-01-02 15:59", FLAT),
        ("2024-01-02 17:00", FLAT),  # the session of the 3rd
        ("2024-01-02 18:00", FLAT),
        ("2024-01-03 01:00", (96.0, 96.0, 94.0, 95.0)),  # after midnight, the same session
    ]
    orders = {
        0: lambda ctx, bar: ctx.buy(es, 1, limit_price=95),
        3: lambda ctx, bar: ctx.buy(es, 1, limit_price=95),
    }
    script, _ = run(rows, orders, instrument=es, tz="America/Chicago", calendar=globex)
    assert expired_at(script) == {1: ns("2024-01-02 17:00", "America/Chicago")}
    assert [(f.order_id, f.ts_ns) for f in script.fills] == [
        (2, ns("2024-01-03 01:00", "America/Chicago"))
    ]


def test_a_calendar_per_instrument_can_be_a_function() -> None:
    calls: list[Instrument] = []

    def calendars(inst: Instrument) -> SessionCalendar:
        calls.append(inst)
        return WeekdayCalendar(NY, "09:30", "15:00")

    rows: list[Row] = [
        ("2024-01-02 14:58", FLAT),
        ("2024-01-02 14:59", FLAT),
        ("2024-01-02 15:00", (96.0, 96.0, 94.0, 95.0)),  # after this calendar's close
    ]
    buy = {0: lambda ctx, bar: (ctx.buy(X, 1, limit_price=95), ctx.buy(X, 1, limit_price=95))}
    script, _ = run(rows, buy, calendar=calendars)
    assert script.fills == []
    assert expired_at(script) == {1: ns("2024-01-02 15:00"), 2: ns("2024-01-02 15:00")}
    assert calls == [X]  # asked once
    script, _ = run(rows, buy)  # US stock hours: until 16:00
    assert len(script.fills) == 2


class _NoSessions(SessionCalendar):
    timezone = NY
    source = "nothing"

    def sessions(self, start: object, end: object) -> Sessions:
        import numpy as np

        empty = np.empty(0, np.int64)
        return Sessions(np.empty(0, "datetime64[D]"), empty, empty)


def test_a_calendar_without_sessions_falls_back_to_local_days_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level("WARNING", logger="ibkrfw.sim"):
        script, _ = run(
            EXTENDED,
            {0: lambda ctx, bar: (ctx.buy(X, 1, limit_price=50), ctx.buy(X, 1, limit_price=50))},
            calendar=_NoSessions(),
        )
    assert expired_at(script) == {1: ns("2024-01-03 04:00"), 2: ns("2024-01-03 04:00")}
    warnings = [r for r in caplog.records if "no session" in r.getMessage()]
    assert len(warnings) == 1


# --- auctions -----------------------------------------------------------------------------------


def test_an_on_open_order_fills_at_the_sessions_open_not_at_the_pre_market() -> None:
    rows: list[Row] = [
        ("2024-01-02 10:00", FLAT),
        ("2024-01-03 04:00", (101.0, 101.0, 101.0, 101.0)),  # pre-market
        ("2024-01-03 09:30", (102.0, 102.0, 102.0, 102.0)),  # the opening auction
    ]
    script, _ = run(rows, {0: lambda ctx, bar: ctx.buy(X, 10, tif="OPG")})
    (fill,) = script.fills
    assert (fill.price, fill.ts_ns) == (D(102), ns("2024-01-03 09:30"))


def test_an_on_open_order_sent_before_the_open_takes_part_in_that_open() -> None:
    rows: list[Row] = [
        ("2024-01-03 08:00", FLAT),  # pre-market
        ("2024-01-03 09:30", (102.0, 102.0, 102.0, 102.0)),
        ("2024-01-04 09:30", (103.0, 103.0, 103.0, 103.0)),
    ]
    script, _ = run(rows, {0: lambda ctx, bar: ctx.buy(X, 10, tif="OPG")})
    (fill,) = script.fills
    assert (fill.price, fill.ts_ns) == (D(102), ns("2024-01-03 09:30"))


def test_an_on_close_order_fills_at_the_regular_close_not_after_hours() -> None:
    rows: list[Row] = [
        ("2024-01-02 15:58", FLAT),
        ("2024-01-02 15:59", (100.0, 101.0, 100.0, 101.0)),  # the regular session's last
        ("2024-01-02 16:00", (101.0, 102.0, 101.0, 102.0)),
        ("2024-01-02 19:59", (102.0, 103.0, 102.0, 103.0)),
        ("2024-01-03 09:30", FLAT),
    ]
    held: list[Decimal] = []
    script, _ = run(
        rows,
        {
            0: lambda ctx, bar: ctx.buy(X, 10, order_type="MOC"),
            2: lambda ctx, bar: held.append(ctx.position(X).quantity),
        },
    )
    (fill,) = script.fills
    assert (fill.price, fill.ts_ns) == (D(101), ns("2024-01-02 15:59"))
    assert held == [10]  # known when the first after-hours bar came


@pytest.mark.parametrize("exchange_calendars", [True, False])
def test_daily_bars_stamped_at_midnight_behave_as_before_holidays_included(
    exchange_calendars: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not exchange_calendars:
        monkeypatch.setitem(sys.modules, "exchange_calendars", None)
    # Daily bars at midnight New York (IB's, the store's); the 15th is Martin Luther King Day,
    # a holiday to exchange_calendars but a bar in these data: each bar is still one day.
    rows: list[Row] = [
        ("2024-01-12", (100.0, 101.0, 99.0, 100.0)),
        ("2024-01-15", (101.0, 102.0, 100.0, 101.0)),
        ("2024-01-16", (102.0, 103.0, 96.0, 97.0)),
        ("2024-01-17", (98.0, 99.0, 97.0, 98.0)),
    ]
    script, result = run(
        rows,
        {
            0: lambda ctx, bar: (
                ctx.buy(X, 1, limit_price=97),  # DAY: works on the 15th only
                ctx.buy(X, 2, tif="OPG"),
                ctx.buy(X, 3, order_type="MOC"),
            ),
            1: lambda ctx, bar: (ctx.buy(X, 4, tif="OPG"), ctx.buy(X, 5, limit_price=97)),
        },
    )
    fills = [(f.order_id, f.price, f.ts_ns) for f in script.fills]
    day = {r[0][-2:]: ns(r[0]) for r in rows}
    assert fills == [
        (2, D(101), day["15"]),
        (3, D(101), day["15"]),
        (4, D(102), day["16"]),
        (5, D(97), day["16"]),
    ]
    assert expired_at(script) == {1: day["16"]}
    assert result.order_list[0].status is OrderStatus.EXPIRED


# --- with the rest: protection, quotes, a live clock, the fake TWS --------------------------------


def test_a_day_entry_expiring_at_the_close_leaves_the_protective_stop_working() -> None:
    rows: list[Row] = [
        ("2024-01-02 15:57", FLAT),
        ("2024-01-02 15:58", FLAT),  # bought at this open: the protection is placed after it
        ("2024-01-02 15:59", FLAT),
        ("2024-01-02 16:30", FLAT),
        ("2024-01-03 09:30", (100.0, 100.0, 94.0, 95.0)),
    ]
    script = ScriptedStrategy(
        {0: lambda ctx, bar: (ctx.buy(X, 10), ctx.buy(X, 10, limit_price="98"))}
    )
    feed = DataFrameFeed(frame(rows), X)
    result = Engine(
        script, feed, SimBroker(100_000), protection=Protection(StopLoss.fixed(5))
    ).run()
    entry, more = result.order_list[:2]
    assert entry.status is OrderStatus.FILLED
    assert (more.status, more.updated_ns) == (OrderStatus.EXPIRED, ns("2024-01-02 16:30"))
    stop = next(o for o in result.order_list if o.request.tag == "stop-loss")
    assert stop.request.order_type is OrderType.STOP
    assert (stop.status, stop.updated_ns) == (OrderStatus.FILLED, ns("2024-01-03 09:30"))
    assert result.fill_list[-1].price == D(95)


def test_on_quotes_a_day_order_expires_with_the_first_quote_after_the_close() -> None:
    events: list[object] = []
    broker = SimBroker(100_000, fill_on="quotes")
    clock = SimClock(ns("2024-01-02 15:59"))
    broker.start(clock, events.append)
    request = OrderRequest.limit(X, "BUY", 10, "100")
    broker.submit(Order(1, request, OrderStatus.PENDING_SUBMIT, clock.now_ns(), clock.now_ns()))
    for when, ask in (("2024-01-02 15:59:30", 100.5), ("2024-01-02 16:00:30", 99.5)):
        clock.advance_to(ns(when))
        broker.on_quote(Quote(X, ns(when), ask - 0.1, ask, 100.0, 100.0))
    assert not [e for e in events if isinstance(e, OrderFilled)]
    (expired,) = [e for e in events if isinstance(e, OrderExpired)]
    assert expired.ts_ns == ns("2024-01-02 16:00:30")


class _Replay(DataFeed):
    """A live feed replaying bars from a thread as fast as the engine takes them."""

    def __init__(self, bars: Sequence[Bar]) -> None:
        self._bars = bars
        self.done = threading.Event()

    @property
    def instruments(self) -> tuple[Instrument, ...]:
        return (X,)

    @property
    def is_live(self) -> bool:
        return True

    def __iter__(self) -> Iterator[Bar]:
        return iter(())

    def start(self, clock: Clock, emit: EventSink) -> None:
        def replay() -> None:
            for bar in self._bars:
                emit(BarReceived(ts_ns=bar.ts_ns, bar=bar))
            self.done.set()

        threading.Thread(target=replay, name="replay", daemon=True).start()


def test_in_sandbox_mode_a_day_order_expires_at_the_close() -> None:
    bars = list(DataFrameFeed(frame(EXTENDED), X))
    script = ScriptedStrategy({0: lambda ctx, bar: ctx.buy(X, 10, limit_price="95")})
    feed = _Replay(bars)
    engine = Engine(script, feed, SimBroker(100_000), tune_gc=False)
    assert isinstance(engine.clock, LiveClock)

    def stop_when_replayed() -> None:  # bounded in time
        deadline = time.monotonic() + 30
        feed.done.wait(30)
        while engine.bars_processed < len(bars) and time.monotonic() < deadline:
            time.sleep(0.01)
        engine.stop()

    stopper = threading.Thread(target=stop_when_replayed, daemon=True)
    stopper.start()
    result = engine.run()
    stopper.join(30)
    assert engine.bars_processed == len(bars)
    assert script.fills == []
    assert expired_at(script) == {1: ns("2024-01-02 16:00")}
    assert result.order_list[0].status is OrderStatus.EXPIRED


def test_live_through_the_fake_tws_a_day_order_is_cancelled_at_the_close() -> None:
    pytest.importorskip("ibapi")
    from ibkrfw.testing import FakeTWS, LiveSession

    script = ScriptedStrategy({0: lambda ctx, bar: ctx.buy(X, 10, limit_price="95")})
    with FakeTWS(data={X: frame(EXTENDED)}) as tws, LiveSession(script, tws) as session:
        session.step(len(EXTENDED))
        result = session.stop()
    assert script.fills == []
    (order,) = result.order_list
    assert order.status in (OrderStatus.CANCELLED, OrderStatus.EXPIRED)


# --- the invariant ------------------------------------------------------------------------------

_CLOSE = USEquityCalendar(use_exchange_calendars=False)


@st.composite
def _minutes(draw: st.DrawFn) -> list[int]:
    """Sorted, distinct bar times over six days, at any minute but local midnight (a daily
    bar's stamp), across the change to daylight time on the 10th."""
    start = ns("2024-03-07")  # a Thursday
    offsets = draw(st.lists(st.integers(0, 6 * 1440 - 1), min_size=2, max_size=40, unique=True))
    stamps = sorted(start + m * 60 * 10**9 for m in offsets)
    local = pd.DatetimeIndex(stamps).tz_localize("UTC").tz_convert(NY)
    kept = [t for t, when in zip(stamps, local, strict=True) if (when.hour, when.minute) != (0, 0)]
    assume(len(kept) >= 2)
    return kept


@given(_minutes(), st.data())
def test_no_day_order_fills_or_lives_past_its_sessions_close(
    stamps: list[int], data: st.DataObject
) -> None:
    lows = data.draw(st.lists(st.sampled_from([90.0, 95.0, 100.0]), min_size=len(stamps),
                              max_size=len(stamps)))  # fmt: skip
    at = data.draw(st.integers(0, len(stamps) - 2))
    index = pd.DatetimeIndex(stamps, name="timestamp").tz_localize("UTC")
    bars = pd.DataFrame(
        {"open": 100.0, "high": 100.0, "low": lows, "close": 100.0, "volume": 1_000.0},
        index=index,
    )
    script = ScriptedStrategy({at: lambda ctx, bar: ctx.buy(X, 1, limit_price=92)})
    Engine(script, DataFrameFeed(bars, X), SimBroker(calendar=_CLOSE)).run()
    # The trading day of the first bar it could fill on: the session holding it, or the next.
    first = stamps[at + 1]
    sessions = _CLOSE.sessions_between(first, first + 5 * 86_400 * 10**9)
    close = int(next(c for c in sessions.close_ns if c > first))
    working = [t for t, low in zip(stamps, lows, strict=True) if first <= t < close and low <= 92]
    assert [f.ts_ns for f in script.fills] == working[:1]
    if not working:
        after = [t for t in stamps if t >= close]
        assert expired_at(script) == ({1: after[0]} if after else {})
