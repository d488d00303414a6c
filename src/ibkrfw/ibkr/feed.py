"""IBKRDataFeed: IB's real-time bars, aggregated into the strategy's bar size, as engine events."""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast, final

from typing_extensions import override

from ibkrfw.core.clock import Clock
from ibkrfw.data.aggregate import HOUR_NS, BarAggregator
from ibkrfw.data.barsize import bar_size_ns, normalize_bar_size
from ibkrfw.data.depth_store import DepthStore
from ibkrfw.data.sessions import SessionCalendar, calendar_for
from ibkrfw.errors import ConfigError, DataError, RequestError
from ibkrfw.ibkr.client import IBClient, Listener
from ibkrfw.ibkr.config import IBKRConfig
from ibkrfw.ibkr.connection import Action, ConnectionMonitor, ConnectionState, Transition
from ibkrfw.ibkr.history import ib_bar_size
from ibkrfw.ibkr.translate import to_ib_contract
from ibkrfw.model._time import parse_ib_time
from ibkrfw.model.book import BookSide, DepthBook, DepthOperation, DepthReceived, DepthUpdate
from ibkrfw.model.data import Bar, OptionGreeks, Quote, Tick
from ibkrfw.model.events import (
    BarReceived,
    DataProblem,
    GreeksReceived,
    QuoteReceived,
    TickReceived,
)
from ibkrfw.model.instruments import Instrument
from ibkrfw.ports import DataFeed, EventSink

__all__ = ["BarAggregator", "IBKRDataFeed", "bar_fault"]

log = logging.getLogger("ibkrfw.ibkr")

_REALTIME_NS = 5_000_000_000  # IB's real-time bars last five seconds
# tick types -> slot in the book: bid, ask, bid size, ask size (live, then delayed: 66-70)
_PRICE_SLOTS = {1: 0, 2: 1, 66: 0, 67: 1}
_SIZE_SLOTS = {0: 2, 3: 3, 69: 2, 70: 3}
# tickOptionComputation's tick types (and their delayed ones): which price the model is of
_GREEKS_SOURCES = {10: "bid", 11: "ask", 12: "last", 13: "model",
                   80: "bid", 81: "ask", 82: "last", 83: "model"}  # fmt: skip


def _greek(value: Any) -> float | None:
    """A value of tickOptionComputation: None where IB has not computed it (-1, -2, unset)."""
    if value is None:
        return None
    number = float(value)
    if not math.isfinite(number) or number in (-1.0, -2.0) or abs(number) >= 1e300:
        return None
    return number


_LAST_PRICE, _LAST_SIZE = frozenset((4, 68)), frozenset((5, 71))  # live, delayed
# IB's errors that end a subscription: too many lines (101), no permission (354), no such
# contract (200), history farm (162), pacing (420, 10089, 10090), too many depth requests
# (309), no deep data for the contract (10092)
_DEAD_STREAM = frozenset((101, 354, 200, 162, 420, 10089, 10090, 309, 10092))
_DEPTH_RESET = 317  # "Market depth data has been RESET": empty the book, rebuild it
_LOST = -1  # DepthReceived.stream when the connection is lost: the books go stale


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
        depth: Also stream market depth (``reqMktDepth``) of these instruments (each one of
            ``instruments``), or of all of them with True. The feed keeps a
            :class:`~ibkrfw.DepthBook` of each, changed only on the engine's thread; the
            strategy reads it with :meth:`Context.book <ibkrfw.Context.book>` and hears of
            each change in :meth:`Strategy.on_book <ibkrfw.Strategy.on_book>`. Bad depth
            data is reported as a :class:`~ibkrfw.DataProblem` and the book rebuilt from a
            fresh snapshot (see :doc:`/concepts/depth`).
        depth_rows: The rows of each side asked for (IB's ``numRows``), at least 1.
        smart_depth: Ask for IB's aggregated SMART depth (every exchange's levels, with the
            exchange as market maker) where the contract is routed SMART; other contracts
            get their exchange's depth.
        max_depth_lines: How many depth subscriptions the account may hold at once (IB:
            about 3 with the basic 100 market data lines; more with more lines or Quote
            Booster packs). More ``depth`` instruments are refused with a
            :class:`~ibkrfw.ConfigError` before anything is sent, rather than failing with
            IB's error 309.
        record_depth: Keep every depth row received, as it came (bad ones too: the evidence),
            in this :class:`~ibkrfw.data.DepthStore`, for a backtest to replay
            (:class:`~ibkrfw.sim.DepthFeed`). Rows are written in batches, every
            ``record_every_s`` seconds and when the feed closes; a batch that cannot be
            written (a full disk...) is reported as a :class:`~ibkrfw.DataProblem`, and the
            recording stops, the run goes on.
        record_every_s: Seconds between two writes of the recording (each rewrites the
            day's file of an instrument: fewer, larger batches cost less).

    Raises:
        ConfigError: if neither ``config`` nor ``client`` is given, no instrument is, the
            bar size is not a multiple of 5 seconds, or ``depth``, ``depth_rows``,
            ``smart_depth`` or ``max_depth_lines`` is not valid (a depth instrument the
            feed does not deliver, more than ``max_depth_lines`` of them).
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
        depth: Sequence[Instrument] | bool = False,
        depth_rows: int = 10,
        smart_depth: bool = True,
        max_depth_lines: int = 3,
        record_depth: DepthStore | None = None,
        record_every_s: float = 60.0,
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
        self._instruments = tuple(instruments)
        self.depth_instruments = _depth_instruments(
            self._instruments, depth, depth_rows, smart_depth, max_depth_lines
        )
        """The instruments whose market depth the feed streams."""
        self.depth_rows = depth_rows
        self.smart_depth = smart_depth
        self.max_depth_lines = max_depth_lines
        if record_depth is not None and not isinstance(record_depth, DepthStore):
            raise ConfigError(
                f"IBKRDataFeed(record_depth={record_depth!r}): give a DepthStore, e.g. "
                "DepthStore('depth/')"
            )
        if record_depth is not None and not self.depth_instruments:
            raise ConfigError(
                "IBKRDataFeed(record_depth=...) records market depth: give depth= too"
            )
        if isinstance(record_every_s, bool) or not (
            isinstance(record_every_s, int | float)
            and math.isfinite(record_every_s)
            and record_every_s > 0
        ):
            raise ConfigError(
                f"IBKRDataFeed(record_every_s={record_every_s!r}): give a positive number of "
                "seconds, e.g. 60"
            )
        self.record_depth = record_depth
        """Where the depth rows are recorded, or None."""
        self.record_every_s = float(record_every_s)
        self.recorded = 0
        """How many depth rows were written to :attr:`record_depth`."""
        self._to_record: list[DepthUpdate] = []
        self._recorded_at_ns: int | None = None
        self.client = client
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
                calendar=(sessions or calendar_for)(inst) if size_ns >= HOUR_NS else None,
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
        self.greeks = 0
        """How many option computations (IB's model greeks) of the quote streams arrived."""
        """How many price and size ticks of the quote streams arrived."""
        self.emitted = 0
        """How many bars were handed to the engine (counted before :attr:`received`)."""
        self.dropped = 0
        """How many malformed bars from IB were dropped (each reported as a DataProblem)."""
        # depth: request id -> instrument, instrument -> its current request id (the lock);
        # updates of a burst by request id (IB's message thread only); the books and the
        # subscription each holds (the engine's thread only)
        self._depth_streams: dict[int, Instrument] = {}
        self._depth_current: dict[Instrument, int] = {}
        self._depth_pending: dict[int, list[DepthUpdate]] = {}
        self._depth_books = {inst: DepthBook(inst, depth_rows) for inst in self.depth_instruments}
        self._book_stream: dict[Instrument, int] = {}
        self.depth_updates = 0
        """How many depth rows IB sent (``updateMktDepth`` and ``updateMktDepthL2``)."""
        self.depth_refreshes = 0
        """How many times a book was subscribed again for a fresh snapshot (bad data, 317)."""

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
            old_depth, self._depth_streams = self._depth_streams, {}
            self._depth_current = {}
        for req_id in old:
            self.client.send("cancelRealTimeBars", req_id)
        for req_id in old_quotes:
            self.client.send("cancelMktData", req_id)
        for req_id, inst in old_depth.items():
            self.client.send("cancelMktDepth", req_id, self._smart(inst))
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
        for inst in self.depth_instruments:
            self._request_depth(inst)

    def _smart(self, inst: Instrument) -> bool:
        """Whether ``inst``'s depth is asked for as SMART depth (only where routed SMART)."""
        return self.smart_depth and inst.exchange == "SMART"

    def _request_depth(self, inst: Instrument) -> None:
        """Subscribe to ``inst``'s depth on a new request id, cancelling the one it replaces.

        The book is emptied (on the engine's thread, by an empty event of the new
        subscription) before the fresh snapshot arrives; updates still on their way on the
        old one are ignored.
        """
        req_id = self.client.new_req_id()
        with self._lock:
            old = self._depth_current.get(inst)
            if old is not None:
                self._depth_streams.pop(old, None)
            self._depth_streams[req_id] = inst
            self._depth_current[inst] = req_id
        smart = self._smart(inst)
        if old is not None:
            self.client.send("cancelMktDepth", old, smart)
        if self._emit is not None and self._clock is not None:
            self._emit(DepthReceived(ts_ns=self._clock.now_ns(), instrument=inst, updates=(),
                                     stream=req_id))  # fmt: skip
        self.client.send("reqMktDepth", req_id, to_ib_contract(inst), self.depth_rows, smart, [])

    def _refresh_depth(self, inst: Instrument) -> None:
        """Subscribe to ``inst``'s depth again for a fresh snapshot of its book."""
        self.depth_refreshes += 1
        log.info("subscribing again to the market depth of %s for a fresh snapshot", inst.id)
        try:
            self._request_depth(inst)
        except RequestError as exc:  # pragma: no cover - send() does not raise it today
            log.warning("resubscribing to the depth of %s failed: %s", inst.id, exc)

    @override
    def depth_book(self, instrument: Instrument) -> DepthBook | None:
        """Return ``instrument``'s depth book if the feed streams its depth, else None.

        The book itself: read it on the engine's thread (in a strategy's handlers), never
        change it. Stale (answering None) from a problem until the fresh snapshot.
        """
        return self._depth_books.get(instrument)

    @override
    def on_depth(self, event: DepthReceived) -> DepthBook | DataProblem | None:
        """Apply a burst of depth updates to its book, on the engine's thread.

        Updates of a replaced subscription are ignored; the first event of a new one
        empties the book. The burst is applied row by row, then the book is checked
        (:meth:`DepthBook.check <ibkrfw.DepthBook.check>`): a problem leaves it stale, is
        returned (once: a stale book ignores what follows), and the instrument is
        subscribed again for a fresh snapshot.

        Returns:
            The book if the burst changed it and it is sound, the problem if it spoilt it,
            else None.
        """
        inst = event.instrument
        book = self._depth_books.get(inst)
        if book is None:
            return None
        if self.record_depth is not None and event.updates:
            self._record(event)
        if event.stream == _LOST:  # stale, said by ConnectionChanged, until a new snapshot
            if self._book_stream.get(inst) == self._depth_current.get(inst):
                book.invalidate("the connection to IB was lost", event.ts_ns)
                self._book_stream[inst] = _LOST
            return None
        with self._lock:
            current = self._depth_current.get(inst)
        if event.stream != current:
            return None
        if self._book_stream.get(inst) != event.stream:  # a new subscription: a new book
            book.reset()
            self._book_stream[inst] = event.stream
        if book.problem is not None or not event.updates:
            return None  # stale: the fresh snapshot is on its way
        problem = None
        for update in event.updates:
            problem = book.apply(update)
            if problem is not None:
                break
        else:
            problem = book.check()
        if problem is None:
            return book
        log.warning("%s", problem.reason)
        self._refresh_depth(inst)
        return problem

    def _record(self, event: DepthReceived) -> None:
        """Keep the rows of the current subscription; write them out every so often."""
        with self._lock:
            current = self._depth_current.get(event.instrument)
        if event.stream == current:
            self._to_record.extend(event.updates)
        if self._recorded_at_ns is None:
            self._recorded_at_ns = event.ts_ns
        elif event.ts_ns - self._recorded_at_ns >= self.record_every_s * 1e9:
            self._recorded_at_ns = event.ts_ns
            self.flush_recording()

    def flush_recording(self) -> int:
        """Write the depth rows received since the last write; return how many.

        A failure is reported as a :class:`~ibkrfw.DataProblem` (when the feed runs) and
        logged, and the recording stops: the run is never stopped by it.
        """
        store, rows = self.record_depth, self._to_record
        if store is None or not rows:
            return 0
        self._to_record = []
        try:
            written = store.write(rows)
        except Exception as exc:
            self.record_depth = None
            text = f"recording market depth stopped: {type(exc).__name__}: {exc}"
            log.error("%s", text)
            if self._emit is not None and self._clock is not None:
                self._problem(self._emit, rows[0].instrument, None, text)
            return 0
        self.recorded += written
        return written

    @override
    def close(self) -> None:
        """Cancel the subscriptions; disconnect unless the broker still uses the client."""
        self.flush_recording()
        with self._lock:
            old, self._subscriptions = self._subscriptions, {}
            old_quotes, self._quote_streams = self._quote_streams, {}
            old_depth, self._depth_streams = self._depth_streams, {}
            self._depth_current = {}
        if self.client.is_connected:
            for req_id in old:
                self.client.send("cancelRealTimeBars", req_id)
            for req_id in old_quotes:
                self.client.send("cancelMktData", req_id)
            for req_id, inst in old_depth.items():
                self.client.send("cancelMktDepth", req_id, self._smart(inst))
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
        elif name == "tickOptionComputation":
            self._greeks(emit, args)
        elif name == "updateMktDepth" or name == "updateMktDepthL2":
            self._depth_row(name, args)
        elif name == "depthBurstEnd":
            self._depth_burst_end(emit)
        elif name == "marketDataType":
            req_id, kind = args
            inst = self._quote_streams.get(req_id)
            if inst is not None and kind in (3, 4) and inst not in self.delayed_instruments:
                self.delayed_instruments.add(inst)
                self._problem(emit, inst, None, "delayed market data (no live subscription): "
                              "prices are 15 to 20 minutes old")  # fmt: skip
        elif name == "error":
            req_id, code, text = args
            inst = (
                self._subscriptions.get(req_id)
                or self._quote_streams.get(req_id)
                or self._depth_streams.get(req_id)
            )
            if inst is None or ConnectionMonitor.is_notice(code):
                return
            if code == _DEPTH_RESET and req_id in self._depth_streams:
                self._problem(emit, inst, code, f"{text}: the book is rebuilt from a fresh "
                              "snapshot")  # fmt: skip
                threading.Thread(target=self._refresh_depth, args=(inst,),
                                 name="ibkrfw-depth-refresh", daemon=True).start()  # fmt: skip
                return
            if code == 10167:  # "not subscribed, displaying delayed data": a notice
                if inst not in self.delayed_instruments:
                    self.delayed_instruments.add(inst)
                    self._problem(emit, inst, code, text)
                return
            if code in _DEAD_STREAM:  # the stream is dead
                with self._lock:
                    self._quote_streams.pop(req_id, None)
                    self._subscriptions.pop(req_id, None)
                    if self._depth_streams.pop(req_id, None) is not None:
                        self._depth_current.pop(inst, None)
            self._problem(emit, inst, code, text)

    def _problem(self, emit: EventSink, inst: Instrument, code: int | None, text: str) -> None:
        assert self._clock is not None
        log.warning("market data of %s: %s", inst.id, text)
        emit(DataProblem(ts_ns=self._clock.now_ns(), instrument=inst, code=code, reason=text))

    def _depth_row(self, name: str, args: tuple[Any, ...]) -> None:
        """Keep one row of IB's depth until its burst ends (IB's message thread)."""
        if name == "updateMktDepth":
            req_id, position, operation, side, price, size = args
            maker, smart = "", False
        else:
            req_id, position, maker, operation, side, price, size, smart = args
        inst = self._depth_streams.get(req_id)
        if inst is None:
            return
        self.depth_updates += 1
        assert self._clock is not None
        # a side or an operation IB does not define stays a number: the book reports it
        update = DepthUpdate(
            inst, self._clock.now_ns(),
            BookSide(side) if side in (0, 1) else cast(BookSide, side), position,
            DepthOperation(operation) if operation in (0, 1, 2) else cast(DepthOperation,
                                                                          operation),
            price, size, maker, smart,
        )  # fmt: skip
        pending = self._depth_pending.get(req_id)
        if pending is None:
            self._depth_pending[req_id] = [update]
        else:
            pending.append(update)

    def _depth_lost(self, emit: EventSink) -> None:
        """The socket is gone: the books go stale until the new subscriptions' snapshots."""
        assert self._clock is not None
        now = self._clock.now_ns()
        for inst in self.depth_instruments:
            emit(DepthReceived(ts_ns=now, instrument=inst, updates=(), stream=_LOST))

    def _depth_burst_end(self, emit: EventSink) -> None:
        """Hand each book's burst of rows to the engine's thread as one event."""
        pending, self._depth_pending = self._depth_pending, {}
        assert self._clock is not None
        now = self._clock.now_ns()
        for req_id, updates in pending.items():
            inst = self._depth_streams.get(req_id)
            if inst is not None:
                emit(DepthReceived(ts_ns=now, instrument=inst, updates=tuple(updates),
                                   stream=req_id))  # fmt: skip

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

    def _greeks(self, emit: EventSink, args: tuple[Any, ...]) -> None:
        """IB's option model for a price of an option of the quote streams."""
        req_id, tick, *values = args
        inst = self._quote_streams.get(req_id)
        source = _GREEKS_SOURCES.get(tick)
        if inst is None or source is None:
            return
        iv, delta, price, dividend, gamma, vega, theta, under = (_greek(v) for v in values)
        assert self._clock is not None
        greeks = OptionGreeks(
            inst, self._clock.now_ns(), source, iv, delta, gamma, vega, theta, price, under,
            dividend,
        )  # fmt: skip
        self.greeks += 1
        emit(GreeksReceived(ts_ns=greeks.ts_ns, greeks=greeks))

    @override
    def on_transition(self, transition: Transition) -> None:
        """Subscribe again when the data was lost (1101) or the socket reconnected."""
        if self._emit is None:
            return
        if transition.after is ConnectionState.DISCONNECTED and self.depth_instruments:
            self._depth_lost(self._emit)
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


def _depth_instruments(
    instruments: tuple[Instrument, ...],
    depth: object,
    rows: object,
    smart: object,
    max_lines: object,
) -> tuple[Instrument, ...]:
    """The instruments of ``depth``, with the depth options checked (IBKRDataFeed)."""
    where = "IBKRDataFeed"
    if type(rows) is not int or rows < 1:
        raise ConfigError(f"{where}: depth_rows must be a whole number >= 1 (IB's numRows), "
                          f"got {rows!r}")  # fmt: skip
    if type(smart) is not bool:
        raise ConfigError(f"{where}: smart_depth must be True or False, got {smart!r}")
    if type(max_lines) is not int or max_lines < 0:
        raise ConfigError(f"{where}: max_depth_lines must be a whole number >= 0 (IB allows "
                          f"about 3 depth subscriptions), got {max_lines!r}")  # fmt: skip
    if depth is True:
        chosen = instruments
    elif depth is False:
        return ()
    elif isinstance(depth, Sequence) and not isinstance(depth, str):
        chosen = tuple(depth)
        for inst in chosen:
            if not isinstance(inst, Instrument):
                raise ConfigError(f"{where}: depth must list instruments, got {inst!r}; "
                                  "or give depth=True for every instrument")  # fmt: skip
            if inst not in instruments:
                known = ", ".join(i.id for i in instruments)
                raise ConfigError(f"{where}: depth instrument {inst.id} is not one of the "
                                  f"feed's instruments ({known}); add it to them")  # fmt: skip
        if len(set(chosen)) != len(chosen):
            raise ConfigError(f"{where}: depth lists an instrument twice: "
                              f"{[i.id for i in chosen]}")  # fmt: skip
    else:
        raise ConfigError(f"{where}: depth must be True, False or a list of instruments, "
                          f"got {depth!r}")  # fmt: skip
    if len(chosen) > max_lines:
        names = ", ".join(i.id for i in chosen)
        raise ConfigError(
            f"{where}: {len(chosen)} market depth subscriptions ({names}) exceed the "
            f"account's {max_lines} simultaneous depth subscriptions (max_depth_lines; IB "
            "allows about 3 with the basic market data lines and refuses more with error "
            "309): give depth fewer instruments, or raise max_depth_lines if your account "
            "has more"
        )
    return chosen
