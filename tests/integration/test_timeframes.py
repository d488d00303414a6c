"""Several bar sizes per instrument (issue 24): larger bars built from the feed's, never early.

A strategy declares larger bar sizes (``Strategy.bar_sizes``); the engine builds them from the
base bars on the instrument's sessions and hands each to ``on_bar`` once complete, right after
the base bar that completes it. These tests run whole backtests with real parts.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ibkrfw import (
    Bar,
    ConfigError,
    Context,
    DataFeed,
    Engine,
    Forex,
    Instrument,
    Stock,
    Strategy,
)
from ibkrfw.data import calendar_for, generate_bars, resample_bars
from ibkrfw.indicators import SMA, Indicator
from ibkrfw.risk import Protection, StopLoss, TakeProfit
from ibkrfw.sim import DataFrameFeed, SimBroker

NY = "America/New_York"
MIN = 60 * 10**9
ACME = Stock("ACME")
BETA = Stock("BETA")
COLUMNS = ["open", "high", "low", "close", "volume"]


def minutes(symbols: Sequence[str] = ("ACME",), periods: int = 390 * 3) -> pd.DataFrame:
    return generate_bars(list(symbols), freq="1min", periods=periods)


def one(frame: pd.DataFrame, symbol: str = "ACME") -> pd.DataFrame:
    part = frame[frame["symbol"] == symbol] if "symbol" in frame else frame
    return part.set_index("timestamp")[COLUMNS]


class Recorder(Strategy):
    """Records every on_bar call: (now, bar size, bar), and what the histories held then."""

    def __init__(self, sizes: Mapping[Instrument, Sequence[str]]) -> None:
        self.sizes = sizes
        self.calls: list[tuple[int, str | None, Bar]] = []

    def bar_sizes(self) -> Mapping[Instrument, Sequence[str]]:
        return self.sizes

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        self.calls.append((ctx.now_ns, ctx.bar_size, bar))

    def of(self, size: str) -> list[Bar]:
        return [bar for _, s, bar in self.calls if s == size]


def run(strategy: Strategy, frame: pd.DataFrame, inst: Instrument = ACME, **kw: object) -> Engine:
    engine = Engine(strategy, DataFrameFeed(frame, inst), SimBroker(), **kw)  # type: ignore[arg-type]
    engine.run()
    return engine


def as_frame(bars: list[Bar]) -> pd.DataFrame:
    index = pd.DatetimeIndex([b.ts_ns for b in bars], name="timestamp").tz_localize("UTC")
    rows = [(b.open, b.high, b.low, b.close, b.volume) for b in bars]
    return pd.DataFrame(rows, index=index, columns=COLUMNS)


@pytest.mark.parametrize("size", ["5min", "15min", "1h", "2h", "1d", "2d", "1w"])
def test_timeframes_larger_bars_equal_the_offline_resampler_exactly(size: str) -> None:
    frame = one(minutes(periods=390 * 10))  # two whole weeks of minutes (Mondays first)
    strategy = Recorder({ACME: [size]})
    run(strategy, frame)
    expected = resample_bars(frame, size, calendar=calendar_for(ACME))
    got = as_frame(strategy.of(size))
    if size == "1w" or size == "2d":  # the last block may not be over when the data ends
        expected = expected.loc[got.index]
    pd.testing.assert_frame_equal(got, expected, check_freq=False)
    assert len(got) >= (1 if size == "1w" else 2)


def test_timeframes_an_hour_is_handed_out_after_its_last_minute_at_that_minute() -> None:
    frame = one(minutes())
    strategy = Recorder({ACME: ["1h", "1d"]})
    run(strategy, frame)
    closes = dict(zip(frame.index.as_unit("ns").asi8.tolist(), frame["close"], strict=True))
    calls = strategy.calls
    for i, (now, size, bar) in enumerate(calls):
        if size == "1min":
            continue
        # the base bar just before, at the same time stamp, completed it
        j = i - 1
        while calls[j][1] != "1min":
            j -= 1
        assert calls[j][0] == now and calls[j][2].ts_ns == now
        assert bar.close == closes[now]  # the close of the minute that ends it
        local = pd.Timestamp(now, tz="UTC").tz_convert(NY)
        if size == "1h":  # ends at the hour's end or the session's close: 10:29, ... 15:59
            assert local.minute == 29 or (local.hour, local.minute) == (15, 59)
        else:
            assert (local.hour, local.minute) == (15, 59)
    assert [s for _, s, _ in calls[-3:]] == ["1min", "1h", "1d"]  # base first, then smallest


class Peeker(Strategy):
    """Reads the hour bars on every minute: none may hold a minute that has not passed."""

    def __init__(self) -> None:
        self.checked = 0
        self.hours_seen = 0

    def bar_sizes(self) -> Mapping[Instrument, Sequence[str]]:
        return {ACME: ["1h"]}

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        hours = ctx.history(bar.instrument, bar_size="1h")
        minutes = ctx.history(bar.instrument)
        now = ctx.now_ns
        assert minutes.ts_ns[-1] == now  # the minute handled is the last one known
        if len(hours):
            # an hour bar's last minute started at or before now: no minute from the future
            last_end = hours.ts_ns[-1] + 60 * MIN
            assert last_end <= now + MIN or pd.Timestamp(now, tz="UTC").tz_convert(NY).hour == 15
            inside = (minutes.ts_ns >= hours.ts_ns[-1]) & (minutes.ts_ns < last_end)
            assert hours.close[-1] == minutes.close[inside][-1]
            assert hours.high[-1] == minutes.high[inside].max()
            at_end = ctx.bar_size == "1h"
            # the hour's close equals the current minute's close only when the hour just ended
            if hours.close[-1] == minutes.close[-1] and hours.ts_ns[-1] + 60 * MIN > now:
                assert minutes.ts_ns[inside][-1] == now
            if at_end:
                self.hours_seen += 1
                assert minutes.ts_ns[inside][-1] == now
        self.checked += 1


def test_timeframes_no_look_ahead_an_hour_never_holds_a_minute_not_yet_passed() -> None:
    strategy = Peeker()
    run(strategy, one(minutes()))
    assert strategy.checked == 390 * 3 + 7 * 3
    assert strategy.hours_seen == 7 * 3


def test_timeframes_a_partial_last_bar_is_never_handed_out() -> None:
    frame = one(minutes()).iloc[: 390 + 45]  # a day and 45 minutes of the next
    strategy = Recorder({ACME: ["1h", "1d"]})
    run(strategy, frame)
    assert len(strategy.of("1d")) == 1
    assert len(strategy.of("1h")) == 7  # the second day's first hour is not over


def test_timeframes_a_run_joining_an_hour_late_drops_that_hour() -> None:
    frame = one(minutes()).iloc[15:]  # starts at 09:45
    strategy = Recorder({ACME: ["1h"]})
    run(strategy, frame)
    first = pd.Timestamp(strategy.of("1h")[0].ts_ns, tz="UTC").tz_convert(NY)
    assert (first.hour, first.minute) == (10, 30)


def _day(day: str, start: str, end: str, tz: str = NY) -> pd.DataFrame:
    """Minute bars from ``start`` to ``end`` (excluded), local time, with rising prices."""
    index = pd.date_range(f"{day} {start}", f"{day} {end}", freq="1min", tz=tz, inclusive="left")
    price = 100 + np.arange(len(index)) * 0.01
    return pd.DataFrame(
        {"open": price, "high": price + 0.05, "low": price - 0.05, "close": price + 0.01,
         "volume": 100.0},
        index=index.tz_convert("UTC").rename("timestamp"),
    )  # fmt: skip


def test_timeframes_a_half_day_ends_its_last_hour_and_its_day_at_the_early_close() -> None:
    pytest.importorskip("exchange_calendars")  # the early closes come from it
    frame = _day("2024-07-03", "09:30", "13:00")  # the eve of Independence Day: closes 13:00
    strategy = Recorder({ACME: ["1h", "1d"]})
    run(strategy, frame)
    hours = as_frame(strategy.of("1h"))
    assert [t.strftime("%H:%M") for t in hours.index.tz_convert(NY)] == [
        "09:30", "10:30", "11:30", "12:30"
    ]  # fmt: skip
    assert len(strategy.of("1d")) == 1
    done_at = [pd.Timestamp(now, tz="UTC").tz_convert(NY) for now, s, _ in strategy.calls
               if s == "1d"]  # fmt: skip
    assert [t.strftime("%H:%M") for t in done_at] == ["12:59"]
    expected = resample_bars(frame, "1h", calendar=calendar_for(ACME))
    pd.testing.assert_frame_equal(hours, expected, check_freq=False)


def test_timeframes_the_overnight_forex_session_makes_the_day_from_17_00_to_17_00() -> None:
    eur = Forex("EUR", currency="USD")
    sunday = _day("2024-03-10", "17:00", "23:59")
    monday = _day("2024-03-11", "00:00", "17:00")
    tuesday = _day("2024-03-11", "17:00", "18:00")
    frame = pd.concat([sunday, monday, tuesday])
    strategy = Recorder({eur: ["4h", "1d"]})
    engine = Engine(strategy, DataFrameFeed(frame, eur), SimBroker())
    engine.run()
    days = strategy.of("1d")
    assert len(days) == 1  # Monday's session: Sunday 17:00 to Monday 17:00, over at 16:59
    calendar = calendar_for(eur)
    expected = resample_bars(frame, "1d", calendar=calendar).iloc[:1]
    pd.testing.assert_frame_equal(as_frame(days), expected, check_freq=False)
    fours = as_frame(strategy.of("4h"))
    offline = resample_bars(frame, "4h", calendar=calendar)
    pd.testing.assert_frame_equal(fours, offline.loc[fours.index], check_freq=False)
    # Sunday 17:00-21:00 first (with its 23:59 minute missing: kept), Tuesday's not yet over
    assert fours.index[0] == pd.Timestamp("2024-03-10 17:00", tz=NY)
    assert len(fours) == 6


class HourTrader(Strategy):
    """Trades on hour bars only: buys after the first hour, with a bracket on BETA."""

    def __init__(self) -> None:
        self.sent: list[int] = []

    def bar_sizes(self) -> Mapping[Instrument, Sequence[str]]:
        return {ACME: ["1h"], BETA: ["1h"]}

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        if ctx.bar_size != "1h" or self.sent:
            if ctx.bar_size == "1h" and len(self.sent) == 1 and bar.instrument == BETA:
                price = ctx.price(BETA)
                ctx.bracket(BETA, "BUY", 5, take_profit=round(price * 1.5, 2),
                            stop_loss=round(price * 0.5, 2))  # fmt: skip
                self.sent.append(ctx.now_ns)
            return
        ctx.buy(bar.instrument, 10)
        self.sent.append(ctx.now_ns)


def test_timeframes_orders_from_an_hour_bar_fill_on_the_next_base_bar_with_protection() -> None:
    frame = minutes(["ACME", "BETA"])
    data = {ACME: one(frame, "ACME"), BETA: one(frame, "BETA")}
    strategy = HourTrader()
    protect = Protection(StopLoss.percent(0.5), TakeProfit.percent(0.5), instruments=[ACME])
    engine = Engine(strategy, DataFrameFeed(data), SimBroker(), protection=protect)
    engine.run()
    fills = engine.portfolio.fills if engine.portfolio is not None else []
    entries = [f for f in fills if f.quantity in (Decimal(10), Decimal(5))]
    assert [f.instrument for f in entries] == [ACME, BETA]
    for fill, sent_ns, inst in zip(entries, strategy.sent, [ACME, BETA], strict=True):
        assert fill.ts_ns == sent_ns + MIN  # the next minute
        assert (
            float(fill.price)
            == data[inst]["open"].iloc[
                data[inst].index.as_unit("ns").asi8.tolist().index(sent_ns + MIN)
            ]
        )
    working = {(o.instrument, o.request.order_type.name) for o in engine.orders.active()}
    assert (ACME, "STOP") in working and (ACME, "LIMIT") in working  # the protection
    assert (BETA, "STOP") in working and (BETA, "LIMIT") in working  # the bracket's exits
    # the broker saw base bars only: one fill per entry, none from an hour bar's prices
    assert len(entries) == 2


class SliceWatcher(Strategy):
    def __init__(self) -> None:
        self.calls: list[tuple[int, str | None, str]] = []
        self.slices: list[list[str]] = []

    def bar_sizes(self) -> Mapping[Instrument, Sequence[str]]:
        return {ACME: ["30min"], BETA: ["30min"]}

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        self.calls.append((ctx.now_ns, ctx.bar_size, bar.instrument.symbol))

    def on_slice(self, ctx: Context, bars: Sequence[Bar]) -> None:
        self.slices.append([b.instrument.symbol for b in bars])


def test_timeframes_several_instruments_in_one_time_slice() -> None:
    frame = minutes(["ACME", "BETA"], periods=390)
    strategy = SliceWatcher()
    Engine(strategy, DataFrameFeed({ACME: one(frame, "ACME"), BETA: one(frame, "BETA")}),
           SimBroker()).run()  # fmt: skip
    at = pd.Timestamp("2020-01-02 09:59", tz=NY).value
    assert [(s, sym) for t, s, sym in strategy.calls if t == at] == [
        ("1min", "ACME"), ("30min", "ACME"), ("1min", "BETA"), ("30min", "BETA")
    ]  # fmt: skip
    assert all(names == ["ACME", "BETA"] for names in strategy.slices)  # base bars only
    assert len(strategy.slices) == 390


class Indicated(Strategy):
    def __init__(self) -> None:
        self.values: list[tuple[float, float]] = []

    def bar_sizes(self) -> Mapping[Instrument, Sequence[str]]:
        return {ACME: ["60min"]}  # spelt the strategy's way; the store's is "1h"

    def indicators(self) -> Mapping[str, Indicator]:
        return {"sma": SMA(3)}

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        if ctx.bar_size == "1h":
            hours = ctx.history(ACME, 3, bar_size="60min")
            sma = ctx.indicator(ACME, "sma", bar_size="1h")
            if sma.ready:
                self.values.append((sma.value, float(hours.close.mean())))
            assert ctx.indicator(ACME, "sma") is not sma


def test_timeframes_declared_indicators_are_kept_per_bar_size() -> None:
    strategy = Indicated()
    run(strategy, one(minutes()))
    assert len(strategy.values) == 7 * 3 - 2
    for got, expected in strategy.values:
        assert got == pytest.approx(expected)


@pytest.mark.parametrize(
    ("sizes", "message"),
    [
        ({ACME: ["1min"]}, "'1min' is not larger than the feed's bars \\(1min\\)"),
        ({ACME: ["30s"]}, "not larger"),
        ({ACME: ["90s"]}, "not a whole multiple of the feed's bars \\(1min\\)"),
        ({ACME: ["25h"]}, "lasts a day or more.*'1d'"),
        ({ACME: ["1 fortnight"]}, "bar_sizes\\(\\)\\[ACME.*not understood"),
        ({ACME: "1h"}, "give a list of bar sizes"),
        ({ACME: ["1h", "60min"]}, "given twice"),
        ({BETA: ["1h"]}, "names BETA.SMART, which no feed of the run delivers.*ACME"),
        ({"ACME": ["1h"]}, "names 'ACME', which no feed"),
        (["1h"], "returned a list: return a dict"),
    ],
)
def test_timeframes_bad_declarations_are_refused_naming_the_value(
    sizes: object, message: str
) -> None:
    class Bad(Strategy):
        def bar_sizes(self) -> Mapping[Instrument, Sequence[str]]:
            return sizes  # type: ignore[return-value]

    engine = Engine(Bad(), DataFrameFeed(one(minutes(periods=30)), ACME), SimBroker())
    with pytest.raises(ConfigError, match=message):
        engine.run()


def test_timeframes_days_from_bars_that_do_not_divide_a_day_are_refused() -> None:
    class Days(Strategy):
        def bar_sizes(self) -> Mapping[Instrument, Sequence[str]]:
            return {ACME: ["1d"]}

    frame = one(minutes(periods=70)).iloc[::7]  # 7-minute bars
    engine = Engine(Days(), DataFrameFeed(frame, ACME), SimBroker())
    with pytest.raises(ConfigError, match="'1d' cannot be built from bars of 7min, which do not"):
        engine.run()


def test_timeframes_history_of_an_undeclared_size_is_refused() -> None:
    seen: list[str] = []

    class Asks(Strategy):
        def bar_sizes(self) -> Mapping[Instrument, Sequence[str]]:
            return {ACME: ["1h"]}

        def on_bar(self, ctx: Context, bar: Bar) -> None:
            assert len(ctx.history(ACME, bar_size="1min")) == len(ctx.history(ACME))
            with pytest.raises(ConfigError, match=r"no bars of size '1d'.*'1h'.*bar_sizes") as e:
                ctx.history(ACME, bar_size="1d")
            seen.append(str(e.value))

    run(Asks(), one(minutes(periods=3)))
    assert seen


def test_timeframes_without_a_declaration_bar_size_is_the_feeds() -> None:
    sizes: set[str | None] = set()

    class Plain(Strategy):
        def on_bar(self, ctx: Context, bar: Bar) -> None:
            sizes.add(ctx.bar_size)

    run(Plain(), one(minutes(periods=30)))
    assert sizes == {"1min"}


# --- the property: any base bars, any size ------------------------------------------------

SIZES = ["2min", "5min", "15min", "30min", "1h", "2h", "1d"]


@st.composite
def sparse_minutes(draw: st.DrawFn) -> pd.DataFrame:
    days = draw(st.integers(1, 3))
    index = pd.DatetimeIndex([])
    for d in range(days):
        day = pd.Timestamp("2024-03-04", tz=NY) + pd.Timedelta(days=d)  # Monday on
        session = pd.date_range(day + pd.Timedelta("09:30:00"), periods=390, freq="1min")
        keep = draw(st.lists(st.booleans(), min_size=390, max_size=390))
        index = index.append(session[np.array(keep)])
    if len(index) < 2:
        index = pd.date_range(pd.Timestamp("2024-03-04 09:30", tz=NY), periods=2, freq="1min")
    n = len(index)
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    close = 100 + np.cumsum(rng.normal(0, 0.1, n)).round(2)
    open_ = (close + rng.normal(0, 0.05, n)).round(2)
    high = np.maximum(open_, close) + rng.uniform(0, 0.1, n).round(2)
    low = np.minimum(open_, close) - rng.uniform(0, 0.1, n).round(2)
    volume = rng.integers(1, 1000, n).astype(float)
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume},
        index=index.tz_convert("UTC").rename("timestamp"),
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=sparse_minutes(), size=st.sampled_from(SIZES))
def test_timeframes_property_every_larger_bar_is_its_window_and_never_early(
    frame: pd.DataFrame, size: str
) -> None:
    strategy = Recorder({ACME: [size]})
    engine = Engine(strategy, DataFrameFeed(frame, ACME), SimBroker())
    if engine.feeds[0].bar_ns != MIN:  # too few bars a minute apart to tell the bar size
        return
    engine.run()
    calendar = calendar_for(ACME)
    offline = resample_bars(frame, size, calendar=calendar)
    ts = frame.index.as_unit("ns").asi8
    sessions = calendar.sessions_between(int(ts[0]), int(ts[-1]))
    delivered = [(now, bar) for now, s, bar in strategy.calls if s == size]
    labels = offline.index.as_unit("ns").asi8.tolist()
    for now, bar in delivered:
        assert bar.ts_ns in labels
        row = offline.iloc[labels.index(bar.ts_ns)]
        assert (bar.open, bar.high, bar.low, bar.close, bar.volume) == tuple(row[COLUMNS])
        # the base bars of its window: from its stamp to the next label or its session's end
        k = labels.index(bar.ts_ns)
        if size.endswith("d"):
            day = pd.Timestamp(bar.ts_ns, tz="UTC").tz_convert(NY).date()
            where = sessions.day.astype(object).tolist().index(day)
            window = (ts >= sessions.open_ns[where]) & (ts < sessions.close_ns[where])
        else:
            later = labels[k + 1] if k + 1 < len(labels) else ts[-1] + 1
            window = (ts >= bar.ts_ns) & (ts < later)
        assert ts[window][-1] <= now  # never before its last base bar
        assert float(frame["close"].to_numpy()[window][-1]) == bar.close
    # every period but the first (perhaps joined late) and the last (perhaps not over) comes
    got = [bar.ts_ns for _, bar in delivered]
    assert got == sorted(got)
    assert set(labels[1:-1]) <= set(got)


class _WarmFeed(DataFeed):
    """A feed that, as a live one, has recent bars to warm up on and streams the rest."""

    def __init__(self, past: list[Bar], coming: list[Bar]) -> None:
        self.past, self.coming = past, coming

    @property
    def instruments(self) -> tuple[Instrument, ...]:
        return (ACME,)

    def __iter__(self) -> Iterator[Bar]:
        return iter(self.coming)

    @property
    def bar_ns(self) -> int | None:
        return MIN

    def recent_bars(self, instrument: Instrument, count: int) -> Sequence[Bar]:
        return self.past[-count:]


def test_timeframes_warm_up_bars_start_the_larger_bars_a_live_run_goes_on_with() -> None:
    frame = one(minutes(periods=120))  # 09:30 to 11:29
    bars = list(DataFrameFeed(frame, ACME))

    class WarmRecorder(Recorder):
        @property
        def warmup_bars(self) -> int:
            return 45  # 09:30 to 10:14: the first hour goes on with the streamed minutes

    strategy = WarmRecorder({ACME: ["1h"]})
    Engine(strategy, _WarmFeed(bars[:45], bars[45:]), SimBroker()).run()
    hours = as_frame(strategy.of("1h"))
    expected = resample_bars(frame, "1h", calendar=calendar_for(ACME))
    pd.testing.assert_frame_equal(hours, expected, check_freq=False)  # 09:30 whole
    assert [s for _, s, _ in strategy.calls].count("1min") == 120 - 45


def test_timeframes_with_several_strategies_each_gets_only_the_sizes_it_declared() -> None:
    # Several strategies in one engine: the larger bars are built once for all, and each
    # strategy gets (and reads) only the sizes it declared; one declaring none sees minutes.
    hourly, daily, plain = Recorder({ACME: ["1h"]}), Recorder({ACME: ["60min", "1d"]}), Recorder({})
    frame = one(minutes())
    engine = Engine({"h": hourly, "d": daily, "p": plain}, DataFrameFeed(frame, ACME), SimBroker())
    engine.run()
    alone = Recorder({ACME: ["1h", "1d"]})
    run(alone, frame)
    assert {s for _, s, _ in plain.calls} == {"1min"}
    assert {s for _, s, _ in hourly.calls} == {"1min", "1h"}
    assert {s for _, s, _ in daily.calls} == {"1min", "1h", "1d"}
    for size in ("1min", "1h", "1d"):
        assert daily.of(size) == alone.of(size)  # as when it runs alone
    assert hourly.of("1h") == alone.of("1h") and plain.of("1min") == alone.of("1min")
    assert hourly.calls == [c for c in alone.calls if c[1] != "1d"]  # same order, same time

    class Reads(Strategy):
        def __init__(self) -> None:
            self.refused: list[str] = []

        def on_bar(self, ctx: Context, bar: Bar) -> None:
            with pytest.raises(ConfigError) as e:  # declared by another strategy only
                ctx.history(ACME, bar_size="1h")
            self.refused.append(str(e.value))

    reads = Reads()
    Engine(
        {"h": Recorder({ACME: ["1h"]}), "r": reads}, DataFrameFeed(frame, ACME), SimBroker()
    ).run()
    assert reads.refused and "no bars of size '1h'" in reads.refused[0]


def test_timeframes_with_several_strategies_a_bad_declaration_names_its_strategy() -> None:
    frame = one(minutes(periods=30))
    engine = Engine(
        {"ok": Recorder({ACME: ["1h"]}), "bad": Recorder({ACME: ["1 fortnight"]})},
        DataFrameFeed(frame, ACME),
        SimBroker(),
    )
    with pytest.raises(ConfigError, match=r"Recorder.bar_sizes\(\)\[ACME.*not understood"):
        engine.run()


class ReadsAsDeclared(Strategy):
    """Declares ``size`` as it likes to spell it, and reads its history and SMA that way."""

    def __init__(self, size: str, n: int) -> None:
        self.size, self.n = size, n
        self.seen: list[tuple[float, float]] = []

    def bar_sizes(self) -> Mapping[Instrument, Sequence[str]]:
        return {ACME: [self.size]}

    def indicators(self) -> Mapping[str, Indicator]:
        return {"sma": SMA(self.n)}

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        if ctx.bar_size == "1min":
            return
        sma = ctx.indicator(ACME, "sma", bar_size=self.size)
        closes = ctx.history(ACME, self.n, bar_size=self.size).close
        if sma.ready:
            self.seen.append((sma.value, float(closes.mean())))


def test_timeframes_with_several_strategies_a_size_reads_as_its_strategy_spelt_it() -> None:
    # Alone, a strategy declaring "60min" reads ctx.history(bar_size="60min"); beside one
    # declaring "1h" (the same size, built once), it must read it the same way, with its own
    # indicator of that size.
    frame = one(minutes())
    alone = ReadsAsDeclared("60min", 2)
    run(alone, frame)
    hour, sixty = ReadsAsDeclared("1h", 3), ReadsAsDeclared("60min", 2)
    Engine({"h": hour, "m": sixty}, DataFrameFeed(frame, ACME), SimBroker()).run()
    assert alone.seen and sixty.seen == alone.seen
    assert hour.seen and hour.seen != sixty.seen  # its own SMA(3), not the other's SMA(2)


def test_timeframes_a_declared_size_reads_in_any_spelling_bar_sizes_takes() -> None:
    # bar_sizes() takes "1h", "60min", "1 hour" and "1H" as one size: ctx.history and
    # ctx.indicator read it in any of them (they said "no bars of size '1 hour'" and told to
    # declare what was declared), alone and beside another strategy; an undeclared size is
    # still refused.
    seen: dict[str, list[tuple[float, float]]] = {}

    class Spellings(Strategy):
        def __init__(self, name: str) -> None:
            self.name_ = name

        def bar_sizes(self) -> Mapping[Instrument, Sequence[str]]:
            return {ACME: ["1h", "1d"]}

        def indicators(self) -> Mapping[str, Indicator]:
            return {"sma": SMA(2)}

        def on_bar(self, ctx: Context, bar: Bar) -> None:
            if ctx.bar_size != "1h":
                return
            for spelling in ("1h", "60min", "1 hour", "1H", "60 mins"):
                sma = ctx.indicator(ACME, "sma", bar_size=spelling)
                last = ctx.history(ACME, 1, bar_size=spelling).close[-1]
                seen.setdefault(f"{self.name_}:{spelling}", []).append((sma.value, last))
            with pytest.raises(ConfigError, match="no bars of size '2h'"):
                ctx.history(ACME, 1, bar_size="2h")
            ctx.history(ACME, 1, bar_size="1 day")  # days are sessions: "24h" is no "1d"
            with pytest.raises(ConfigError, match="no bars of size '24h'"):
                ctx.history(ACME, 1, bar_size="24h")

    frame = one(minutes())
    run(Spellings("alone"), frame)
    Engine(
        {"a": Spellings("a"), "b": Recorder({ACME: ["1d"]})},
        DataFrameFeed(frame, ACME),
        SimBroker(),
    ).run()
    for who in ("alone", "a"):
        assert seen[f"{who}:1h"]
        for spelling in ("60min", "1 hour", "1H", "60 mins"):
            assert seen[f"{who}:{spelling}"] == seen[f"{who}:1h"]
