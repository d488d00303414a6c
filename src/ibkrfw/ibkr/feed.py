"""IBKRDataFeed: IB's real-time bars, aggregated into the strategy's bar size, as engine events."""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, final

from typing_extensions import override

from ibkrfw.core.clock import Clock
from ibkrfw.data.barsize import bar_size_ns, normalize_bar_size
from ibkrfw.data.sessions import Session, SessionCalendar, SessionLookup, calendar_for
from ibkrfw.errors import ConfigError, DataError, RequestError
from ibkrfw.ibkr.client import IBClient, Listener
from ibkrfw.ibkr.config import IBKRConfig
from ibkrfw.ibkr.connection import Action, ConnectionMonitor, ConnectionState, Transition
from ibkrfw.ibkr.history import ib_bar_size
from ibkrfw.ibkr.translate import to_ib_contract
from ibkrfw.model._time import parse_ib_time
from ibkrfw.model.data import Bar, Quote, Tick
from ibkrfw.model.events import BarReceived, DataProblem, QuoteReceived, TickReceived
from ibkrfw.model.instruments import Instrument
from ibkrfw.ports import DataFeed, EventSink

__all__ = ["BarAggregator", "IBKRDataFeed", "bar_fault"]

log = logging.getLogger("ibkrfw.ibkr")

_REALTIME_NS = 5_000_000_000  # IB's real-time bars last five seconds
# tick types -> slot in the book: bid, ask, bid size, ask size (live, then delayed: 66-70)
_PRICE_SLOTS = {1: 0, 2: 1, 66: 0, 67: 1}
_SIZE_SLOTS = {0: 2, 3: 3, 69: 2, 70: 3}
_LAST_PRICE, _LAST_SIZE = frozenset((4, 68)), frozenset((5, 71))  # live, delayed
_DAY_NS = 86_400 * 1_000_000_000


_HOUR_NS = 3_600 * 1_000_000_000
_WEEK_NS = 7 * _DAY_NS
_ANCHOR_MONDAY = dt.date(1970, 1, 5)  # blocks of days and weeks count from it (resample_bars)


class _SessionPeriods:
    """The bar a time belongs to when bars follow sessions, as :func:`resample_bars` cuts them.

    Hours start at each session's open and never span two sessions; N days are N sessions,
    stamped at midnight of the first one's date; N weeks are the sessions of N weeks, Monday
    to Sunday, likewise stamped. Blocks of days and weeks count from Monday 1970-01-05.
    """

    __slots__ = ("_calendar", "_count", "_lookup", "_period", "_session", "_size", "_unit")

    def __init__(self, calendar: SessionCalendar, size_ns: int) -> None:
        self._lookup = SessionLookup(calendar)
        self._calendar = calendar
        self._size = size_ns
        if size_ns % _WEEK_NS == 0:
            self._unit, self._count = "w", size_ns // _WEEK_NS
        elif size_ns % _DAY_NS == 0:
            self._unit, self._count = "d", size_ns // _DAY_NS
        else:
            self._unit, self._count = "h", 0
        self._session = Session(dt.date.min, 0, 0)  # the latest session found
        self._period = (0, 0, 0)  # its period, for days and weeks: label, first bar, end

    def find(self, ts_ns: int) -> tuple[int, int, int] | None:
        """The period of a bar at ``ts_ns``: its stamp, its first bar's time, its end.

        None for a time outside every session.
        """
        session = self._session
        if not session.open_ns <= ts_ns < session.close_ns:
            found = self._lookup.at(ts_ns)
            if found is None:
                return None
            self._session = session = found
            if self._unit != "h":
                self._period = self._block(found)
        if self._unit == "h":
            start = session.open_ns + (ts_ns - session.open_ns) // self._size * self._size
            return start, start, min(start + self._size, session.close_ns)
        return self._period

    def _block(self, session: Session) -> tuple[int, int, int]:
        """The days or weeks ``session`` is in: the stamp, when it opens, when it closes."""
        if self._unit == "d" and self._count == 1:
            label = self._lookup.local_midnight_ns(session.day)
            return label, session.open_ns, session.close_ns
        if self._unit == "w":
            weeks = (session.day - _ANCHOR_MONDAY).days // 7 // self._count
            first = _ANCHOR_MONDAY + dt.timedelta(weeks=weeks * self._count)
            last = first + dt.timedelta(weeks=self._count) - dt.timedelta(days=1)
            block = self._calendar.sessions(first, last)
        else:  # N sessions, numbered from the anchor
            numbered = self._calendar.sessions(_ANCHOR_MONDAY, session.day).day
            number = len(numbered) - 1
            start = number - number % self._count
            first = numbered[start].astype(object)
            block = self._calendar.sessions(first, session.day + dt.timedelta(days=8 * self._count))
            block = block._replace(
                day=block.day[: self._count],
                open_ns=block.open_ns[: self._count],
                close_ns=block.close_ns[: self._count],
            )
        label = self._lookup.local_midnight_ns(block.day[0].astype(object))
        return label, int(block.open_ns[0]), int(block.close_ns[-1])


@final
class BarAggregator:
    """Merges consecutive bars of one instrument into bars of a larger size.

    Without a ``calendar``, or for bars under an hour, a bar of size ``S`` covers
    ``[k*S, (k+1)*S)`` in UTC: minutes stay aligned on the clock. With a ``calendar``, bars of
    an hour or more follow its sessions exactly as :func:`~ibkrfw.data.resample_bars` cuts
    them with that calendar, so a strategy sees live the bars its backtest reads: hours start
    at each session's open and end at its close at the latest (hourly US stock bars are 09:30,
    10:30... 15:30); a day is one session, stamped at midnight of its local date (as IB's
    daily bars and the bar store); a size of whole weeks counts weeks, Monday to Sunday. Bars
    outside every session (pre-market and after-hours bars with a regular-hours calendar) are
    left out of them.

    A bar is complete, and returned, as soon as a bar ending at or after its end arrives, so a
    one-minute bar is out with its twelfth five-second bar and a daily bar with the session's
    last, not a bar later; if that bar never comes (a gap), the period is handed out when a
    later bar arrives.

    Args:
        instrument: The instrument.
        size_ns: The output size, nanoseconds.
        input_ns: The size of the bars that come in (5 s for IB's real-time bars).
        calendar: The instrument's sessions (:func:`~ibkrfw.data.calendar_for`), for bars of
            an hour or more.

    Raises:
        ConfigError: if ``size_ns`` is not a multiple of ``input_ns``.

    Example:
        >>> from ibkrfw import Stock
        >>> agg = BarAggregator(Stock("X"), 10_000_000_000, 5_000_000_000)
        >>> agg.add(Bar(Stock("X"), 0, 1.0, 2.0, 0.5, 1.5, 10))
        []
        >>> [bar[1:] for bar in agg.add(Bar(Stock("X"), 5_000_000_000, 1.5, 3.0, 1.0, 2.5, 5))]
        [(0, 1.0, 3.0, 0.5, 2.5, 15.0)]
    """

    __slots__ = ("_bar", "_end", "_partial", "_periods", "input_ns", "instrument", "size_ns")

    def __init__(
        self,
        instrument: Instrument,
        size_ns: int,
        input_ns: int = _REALTIME_NS,
        *,
        calendar: SessionCalendar | None = None,
    ) -> None:
        if size_ns < input_ns or size_ns % input_ns:
            raise ConfigError(
                f"a bar of {size_ns // 10**9} s cannot be built from bars of {input_ns // 10**9} s"
            )
        self.instrument = instrument
        self.size_ns = size_ns
        self.input_ns = input_ns
        self._periods = (
            _SessionPeriods(calendar, size_ns)
            if calendar is not None and size_ns >= _HOUR_NS
            else None
        )
        self._bar: Bar | None = None
        self._end = 0
        self._partial = False

    def add(self, bar: Bar) -> list[Bar]:
        """Take the next bar; return the bars it completes (usually none or one).

        A period whose first bar is missing (the subscription started inside it) is dropped
        rather than handed out with a wrong open.
        """
        ts = bar.ts_ns
        if self._periods is None:
            size = self.size_ns
            start = first = ts - ts % size
            end = start + size
        else:
            period = self._periods.find(ts)
            if period is None:  # outside every session: in no bar, but it may end one
                if self._bar is not None and ts >= self._end:
                    return self._hand_out()
                return []
            start, first, end = period
        out: list[Bar] = []
        current = self._bar
        if current is not None and current.ts_ns != start:  # the period ended incomplete
            out = self._hand_out()
            current = None
        if current is None:
            self._partial = ts != first
            self._end = end
            current = Bar(self.instrument, start, bar.open, bar.high, bar.low, bar.close,
                          float(bar.volume))  # fmt: skip
        else:
            current = Bar(
                self.instrument, start, current.open, max(current.high, bar.high),
                min(current.low, bar.low), bar.close, current.volume + float(bar.volume),
            )  # fmt: skip
        if ts + self.input_ns >= end:
            self._bar = current
            out += self._hand_out()
        else:
            self._bar = current
        return out

    def _hand_out(self) -> list[Bar]:
        """The bar in progress, if whole, as a list; forget it."""
        bar, self._bar = self._bar, None
        return [] if bar is None or self._partial else [bar]

    def flush(self) -> Bar | None:
        """Return the bar in progress (incomplete) and forget it."""
        bar, self._bar = self._bar, None
        return bar


def bar_fault(bar: Bar) -> str | None:
    """Say what is wrong with a bar from IB, or None if nothing is.

    Prices must be finite and positive with ``low <= open, close <= high``. The volume is not
    judged: IB sends -1 for "no volume", which the feed keeps as NaN.

    Example:
        >>> from ibkrfw import Stock
        >>> bar_fault(Bar(Stock("ACME"), 0, 10.0, 11.0, 9.0, 10.5, 100.0)) is None
        True
        >>> bar_fault(Bar(Stock("ACME"), 0, 10.0, 9.0, 9.5, 10.5, 100.0))
        'high 9.0 is below low 9.5'
    """
    _, _, open_, high, low, close, _ = bar
    for name, price in (("open", open_), ("high", high), ("low", low), ("close", close)):
        if not (math.isfinite(price) and price > 0):
            return f"{name} is {price!r}, not a finite positive price"
    if high < low:
        return f"high {high!r} is below low {low!r}"
    if not (low <= open_ <= high and low <= close <= high):
        return f"open {open_!r} or close {close!r} is outside low {low!r} to high {high!r}"
    return None


@final
class IBKRDataFeed(DataFeed, Listener):
    """Bars from TWS or IB Gateway, live: IB's 5-second real-time bars, aggregated.

    The feed subscribes to ``reqRealTimeBars`` (``TRADES``, outside regular hours too) for each
    instrument when the engine starts (and to ``reqMktData`` quotes if asked), and puts each
    completed bar on the engine's queue as a :class:`~ibkrfw.BarReceived` event. After a
    reconnection, or when IB says the market data was lost (1101), it subscribes again. IB's
    errors about a subscription (no permission, no such contract, too many lines: 101) reach
    the strategy as :class:`~ibkrfw.DataProblem`.

    Args:
        instruments: What to subscribe to.
        config: Where to connect (or give ``client``).
        client: A client shared with the :class:`~ibkrfw.ibkr.IBKRBroker`.
        bar_size: The bars handed to the strategy (``"1min"``, ``"5min"``, ``"1h"``...), built
            from the 5-second bars; None passes IB's bars through unchanged.
        history_bar_size: The bar size of the warm-up history (:meth:`recent_bars`):
            ``bar_size`` by default, or 5 seconds when that is None.
        quotes: Also stream top-of-book quotes and trades (``reqMktData``) as
            :class:`~ibkrfw.QuoteReceived` events (for the broker and ``on_quote``) and
            :class:`~ibkrfw.TickReceived` events (for ``on_tick``).
        delayed: Accept IB's delayed data (15 to 20 minutes old) where the account has no
            live subscription. Each instrument that falls back to it is reported once as a
            :class:`~ibkrfw.DataProblem`, and listed in :attr:`delayed_instruments`.
        max_lines: The account's market data lines (100 by default at IB): subscribing to
            more quote streams is refused with a :class:`~ibkrfw.ConfigError` rather than
            left to fail one by one with error 101.
        calendar: The sessions that bars of an hour or more follow (see
            :class:`~ibkrfw.ibkr.BarAggregator`): one calendar for every instrument, or a
            function giving each instrument's. By default :func:`~ibkrfw.data.calendar_for`:
            regular hours for US stocks; ``lambda inst: calendar_for(inst, extended=True)``
            puts pre-market and after-hours trading in them too. Bars under an hour stay
            aligned on the clock.

    Raises:
        ConfigError: if neither ``config`` nor ``client`` is given, no instrument is, or the
            bar size is not a multiple of 5 seconds.
    """

    def __init__(
        self,
        instruments: Sequence[Instrument],
        config: IBKRConfig | None = None,
        *,
        client: IBClient | None = None,
        bar_size: str | None = "1min",
        history_bar_size: str | None = None,
        quotes: bool = False,
        delayed: bool = False,
        max_lines: int = 100,
        calendar: SessionCalendar | Callable[[Instrument], SessionCalendar] | None = None,
    ) -> None:
        if client is None:
            if config is None:
                raise ConfigError("IBKRDataFeed needs a config or a client")
            client = IBClient(config)
        if not instruments:
            raise ConfigError("IBKRDataFeed needs at least one instrument")
        if quotes and len(instruments) > max_lines:
            raise ConfigError(
                f"{len(instruments)} quote streams need more than the {max_lines} market data "
                "lines of the account"
            )
        self.client = client
        self._instruments = tuple(instruments)
        self.bar_size = None if bar_size is None else normalize_bar_size(bar_size)
        size_ns = None if self.bar_size is None else bar_size_ns(self.bar_size)
        self.history_bar_size = normalize_bar_size(history_bar_size or self.bar_size or "5s")
        self._bar_ns = size_ns or bar_size_ns("5s")  # IB's real-time bars, passed through
        sessions = (lambda _: calendar) if isinstance(calendar, SessionCalendar) else calendar
        self._aggregators = {
            inst: None
            if size_ns is None
            else BarAggregator(
                inst,
                size_ns,
                calendar=(sessions or calendar_for)(inst) if size_ns >= _HOUR_NS else None,
            )
            for inst in self._instruments
        }
        self.quotes = quotes
        self.delayed = delayed
        self.max_lines = max_lines
        self.delayed_instruments: set[Instrument] = set()
        """Instruments whose data IB sends delayed (no live subscription)."""
        self._lock = threading.Lock()
        self._subscriptions: dict[int, Instrument] = {}
        self._quote_streams: dict[int, Instrument] = {}
        self._books: dict[Instrument, list[float]] = {}  # bid, ask, bid size, ask size
        self._last: dict[Instrument, float] = {}  # a trade price waiting for its size
        self._emit: EventSink | None = None
        self._clock: Clock | None = None
        self.received = 0
        """How many bars IB sent (before aggregation)."""
        self.ticks = 0
        """How many price and size ticks of the quote streams arrived."""
        self.emitted = 0
        """How many bars were handed to the engine (counted before :attr:`received`)."""
        self.dropped = 0
        """How many malformed bars from IB were dropped (each reported as a DataProblem)."""

    @property
    @override
    def instruments(self) -> tuple[Instrument, ...]:
        return self._instruments

    @property
    @override
    def is_live(self) -> bool:
        """Always true, as bars arrive as events while the engine runs."""
        return True

    @property
    @override
    def bar_ns(self) -> int:
        """The length of ``bar_size`` (5 seconds, IB's own, when that is None)."""
        return self._bar_ns

    @override
    def __iter__(self) -> Iterator[Bar]:
        """Nothing: a live feed's bars arrive through :meth:`start`'s ``emit``."""
        return iter(())

    @override
    def start(self, clock: Clock, emit: EventSink) -> None:
        """Connect if need be and subscribe to every instrument's real-time bars."""
        self._clock, self._emit = clock, emit
        self.client.add_listener(self)
        if self.client.monitor.state is not ConnectionState.CONNECTED:
            self.client.connect()
        self._subscribe()

    def _subscribe(self) -> None:
        with self._lock:
            old, self._subscriptions = self._subscriptions, {}
            old_quotes, self._quote_streams = self._quote_streams, {}
        for req_id in old:
            self.client.send("cancelRealTimeBars", req_id)
        for req_id in old_quotes:
            self.client.send("cancelMktData", req_id)
        if self.quotes and self.delayed:
            self.client.send("reqMarketDataType", 3)  # live where subscribed, else delayed
        for inst in self._instruments:
            contract = to_ib_contract(inst)
            req_id = self.client.new_req_id()
            with self._lock:
                self._subscriptions[req_id] = inst
            self.client.send("reqRealTimeBars", req_id, contract, 5, "TRADES", False, [])
            if self.quotes:
                req_id = self.client.new_req_id()
                with self._lock:
                    self._quote_streams[req_id] = inst
                self.client.send("reqMktData", req_id, contract, "", False, False, [])

    @override
    def close(self) -> None:
        """Cancel the subscriptions; disconnect unless the broker still uses the client."""
        with self._lock:
            old, self._subscriptions = self._subscriptions, {}
            old_quotes, self._quote_streams = self._quote_streams, {}
        if self.client.is_connected:
            for req_id in old:
                self.client.send("cancelRealTimeBars", req_id)
            for req_id in old_quotes:
                self.client.send("cancelMktData", req_id)
        self.client.remove_listener(self)

    @override
    def recent_bars(self, instrument: Instrument, count: int) -> list[Bar]:
        """Download the last ``count`` completed bars of ``instrument`` (the warm-up).

        Raises:
            RequestError: if IB refuses or does not answer.
            DataError: if a bar IB sent is malformed (see :func:`~ibkrfw.ibkr.feed.bar_fault`).
        """
        if count <= 0:
            return []
        if self.client.monitor.state is not ConnectionState.CONNECTED:
            self.client.connect()
        size = self.history_bar_size
        size_s = bar_size_ns(size) // 1_000_000_000
        span_s = count * size_s * 2 + (4 * 86_400 if size_s >= 3_600 else 0)  # room for closes
        duration = f"{math.ceil(span_s / 86_400)} D" if span_s > 86_400 else f"{span_s} S"
        rows = self.client.request(
            "reqHistoricalData", to_ib_contract(instrument), "", duration, ib_bar_size(size),
            "TRADES", 0, 2, False, [], rows="historicalData",
        )  # fmt: skip
        bars = [self._history_bar(instrument, row[0]) for row in rows][-count:]
        for bar in bars:
            fault = bar_fault(bar)
            if fault is not None:
                raise DataError(f"IB's history of {instrument.id} at {bar.timestamp}: {fault}")
        return bars

    @staticmethod
    def _history_bar(instrument: Instrument, bar: Any) -> Bar:
        text = str(bar.date)
        ts = (
            int(text) * 1_000_000_000
            if text.isdigit() and len(text) > 8
            else parse_ib_time(text, instrument.timezone)
        )
        volume = float(bar.volume) if float(bar.volume) >= 0 else float("nan")
        return Bar(instrument, ts, float(bar.open), float(bar.high), float(bar.low),
                   float(bar.close), volume)  # fmt: skip

    # --- IB's callbacks ----------------------------------------------------------------------
    @override
    def on_message(self, name: str, args: tuple[Any, ...]) -> None:
        """Turn real-time bars into events; report errors about the subscriptions."""
        emit = self._emit
        if emit is None:
            return
        if name == "realtimeBar":
            req_id, seconds, open_, high, low, close, volume = args
            inst = self._subscriptions.get(req_id)
            if inst is None:
                return
            size = float(volume) if float(volume) >= 0 else math.nan  # -1: IB has no volume
            bar = Bar(inst, seconds * 1_000_000_000, float(open_), float(high), float(low),
                      float(close), size)  # fmt: skip
            fault = bar_fault(bar)
            if fault is not None:  # dropped, said, and never aggregated into a bar
                self.dropped += 1
                self._problem(emit, inst, None, f"a malformed real-time bar was dropped: {fault}")
                self.received += 1
                return
            aggregator = self._aggregators[inst]
            for done in (bar,) if aggregator is None else aggregator.add(bar):
                self.emitted += 1
                emit(BarReceived(ts_ns=done.ts_ns, bar=done))
            self.received += 1
        elif name in ("tickPrice", "tickSize"):
            self._tick(emit, name, *args)
        elif name == "marketDataType":
            req_id, kind = args
            inst = self._quote_streams.get(req_id)
            if inst is not None and kind in (3, 4) and inst not in self.delayed_instruments:
                self.delayed_instruments.add(inst)
                self._problem(emit, inst, None, "delayed market data (no live subscription): "
                              "prices are 15 to 20 minutes old")  # fmt: skip
        elif name == "error":
            req_id, code, text = args
            inst = self._subscriptions.get(req_id) or self._quote_streams.get(req_id)
            if inst is None or ConnectionMonitor.is_notice(code):
                return
            if code == 10167:  # "not subscribed, displaying delayed data": a notice
                if inst not in self.delayed_instruments:
                    self.delayed_instruments.add(inst)
                    self._problem(emit, inst, code, text)
                return
            if code in (101, 354, 200, 162, 420, 10089, 10090):  # the stream is dead
                with self._lock:
                    self._quote_streams.pop(req_id, None)
                    self._subscriptions.pop(req_id, None)
            self._problem(emit, inst, code, text)

    def _problem(self, emit: EventSink, inst: Instrument, code: int | None, text: str) -> None:
        assert self._clock is not None
        log.warning("market data of %s: %s", inst.id, text)
        emit(DataProblem(ts_ns=self._clock.now_ns(), instrument=inst, code=code, reason=text))

    def _tick(self, emit: EventSink, name: str, req_id: int, tick: int, value: Any) -> None:
        inst = self._quote_streams.get(req_id)
        if inst is None:
            return
        self.ticks += 1
        if tick in _LAST_PRICE and name == "tickPrice":
            self._last[inst] = float(value)  # its size follows (LAST_SIZE)
            return
        if tick in _LAST_SIZE and name == "tickSize":
            price = self._last.pop(inst, None)
            if price is not None and price > 0:
                assert self._clock is not None
                trade = Tick(inst, self._clock.now_ns(), price, float(value))
                emit(TickReceived(ts_ns=trade.ts_ns, tick=trade))
            return
        price_tick = name == "tickPrice"
        slot = (_PRICE_SLOTS if price_tick else _SIZE_SLOTS).get(tick)
        if slot is None:
            return
        book = self._books.setdefault(inst, [math.nan, math.nan, math.nan, math.nan])
        book[slot] = float(value)
        if price_tick:
            return  # IB sends a price with its size, which the client hands over next
        bid, ask = book[0], book[1]
        if bid > 0 and ask > 0:  # both sides known (IB sends -1 when a side is empty)
            assert self._clock is not None
            quote = Quote(inst, self._clock.now_ns(), bid, ask, book[2], book[3])
            emit(QuoteReceived(ts_ns=quote.ts_ns, quote=quote))

    @override
    def on_transition(self, transition: Transition) -> None:
        """Subscribe again when the data was lost (1101) or the socket reconnected."""
        if self._emit is None:
            return
        reconnected = (
            transition.after is ConnectionState.CONNECTED
            and transition.before is ConnectionState.CONNECTING
            and self._subscriptions
        )
        if Action.RESUBSCRIBE in transition.actions or reconnected:
            log.info("subscribing again to %d real-time bar stream(s)", len(self._instruments))
            threading.Thread(target=self._resubscribe, name="ibkrfw-resubscribe",
                             daemon=True).start()  # fmt: skip

    def _resubscribe(self) -> None:
        try:
            self._subscribe()
        except RequestError as exc:  # pragma: no cover - send() does not raise it today
            log.warning("resubscribing failed: %s", exc)

    def __repr__(self) -> str:
        names = ", ".join(i.id for i in self._instruments)
        return f"IBKRDataFeed([{names}], bar_size={self.bar_size!r})"
