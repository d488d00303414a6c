"""The Engine: one event loop for every mode."""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import heapq
import logging
import math
import threading
import time
import weakref
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from decimal import Decimal
from itertools import chain, islice
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Literal, final

import attrs
import numpy as np

from ibkrfw._progress import check as check_progress
from ibkrfw._progress import make_bar, min_bars
from ibkrfw._redact import redact
from ibkrfw.core.clock import Clock, LiveClock, SimClock
from ibkrfw.core.history import BarHistory
from ibkrfw.core.orderbook import OrderBook
from ibkrfw.core.queue import EventQueue, Inbox
from ibkrfw.core.timers import NEVER, Timers
from ibkrfw.engine.curve import equity_curve
from ibkrfw.engine.result import RunResult
from ibkrfw.engine.sleeves import Sleeve, _Sleeves, check_shared, sleeves_of
from ibkrfw.engine.timeframes import Timeframes, plan_timeframes, size_name
from ibkrfw.errors import ConfigError, DataError, EngineError, RequestError
from ibkrfw.indicators.core import Indicator
from ibkrfw.model.book import DepthBook, DepthReceived
from ibkrfw.model.data import Bar, OptionGreeks
from ibkrfw.model.events import (
    BarReceived,
    CashAdjusted,
    ConnectionChanged,
    DataProblem,
    Event,
    FutureSettled,
    GreeksReceived,
    OptionSettled,
    OrderAccepted,
    OrderCancelled,
    OrderCancelRejected,
    OrderDenied,
    OrderEvent,
    OrderExpired,
    OrderFilled,
    OrderModified,
    OrderModifyRejected,
    OrderRejected,
    OrderResized,
    OrderSubmitted,
    ProtectionFailed,
    QuoteReceived,
    Reconciled,
    RiskWarning,
    TickReceived,
    TimerFired,
    TradingHalted,
)
from ibkrfw.model.fills import Fill
from ibkrfw.model.instruments import Future as FutureContract
from ibkrfw.model.instruments import Instrument, Option
from ibkrfw.model.orders import (
    Order,
    OrderRequest,
    OrderStatus,
    OrderType,
    Side,
    check_modification,
    check_request,
)
from ibkrfw.portfolio.portfolio import Ledger, Portfolio, _Holding
from ibkrfw.ports import Broker, DataFeed
from ibkrfw.risk.monitor import Halt, RiskMonitor
from ibkrfw.risk.protect import GROUP_PREFIX, STOP_TAG, TAKE_TAG, Protection, waits_to_exit
from ibkrfw.risk.rule import RiskRule
from ibkrfw.strategy import Context, Strategy

# Enum members bound once: on Python 3.11 each `Side.BUY` in a function is a slow lookup
# (EnumType.__getattr__ routes every class attribute through Python), on the order path.
_DENIED = OrderStatus.DENIED
_PENDING_SUBMIT = OrderStatus.PENDING_SUBMIT
_TRAILING_STOP = OrderType.TRAILING_STOP
_BUY = Side.BUY
_SELL = Side.SELL

if TYPE_CHECKING:
    from tqdm import tqdm

__all__ = ["Engine", "EngineObserver", "TradingState"]

log = logging.getLogger("ibkrfw.engine")

_WAKE = "\x00ibkrfw-wake"  # the timer name of the event that wakes a live loop to stop
_CONTROL = "\x00ibkrfw-control"  # the timer name of the event that runs the operator's commands
_OPERATOR = "operator"  # the rule named by the denials of the operator's pause
_GC_THRESHOLD = 10_000  # first-generation threshold while running (CPython's default: 700)
_PROTECT_ATTEMPTS = 3  # protective orders lost in a row before the engine gives up (and says)
_SLICE_WAIT_S = 2.0  # how long a live time stamp waits for a missing bar, by default
# Denial rules that mean the strategy asked for something malformed: logged as warnings.
_STRATEGY_MISTAKES = frozenset(("validation", "sizing"))


def _expires(inst: Instrument) -> bool:
    """Whether the broker settles ``inst`` at an expiry: an option, a future with a last day."""
    return type(inst) is Option or (type(inst) is FutureContract and bool(inst.last_trade_date))


def _utc(ts_ns: int) -> str:
    return dt.datetime.fromtimestamp(ts_ns / 1e9, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class _Lane:
    """Per-instrument state on the hot path: its ledger entry and its history."""

    __slots__ = ("currency", "history", "holding", "index", "indicators", "on_close", "push")

    def __init__(
        self,
        index: int,
        holding: _Holding,
        history: BarHistory,
        currency: int,
        indicators: dict[str, Indicator],
    ) -> None:
        self.index = index
        self.currency = currency  # index in the run's currencies; 0 for the base currency
        self.holding = holding
        self.history = history
        self.indicators = indicators
        # Per bar the loop gives each indicator that reads only the close (Indicator's default
        # update_bar) the close itself, then calls push: the history (preloaded histories
        # follow the clock; only growing ones need each bar) and the indicators that read more.
        self.on_close = tuple(ind.update for ind in indicators.values() if _reads_close(ind))
        grow = None if history.is_preloaded else history.push
        on_bar = tuple(ind.update_bar for ind in indicators.values() if not _reads_close(ind))
        self.push: Callable[[Bar], None] | None = grow
        if on_bar:

            def push(bar: Bar) -> None:
                if grow is not None:
                    grow(bar)
                for update in on_bar:
                    update(bar)

            self.push = push

    def warm(self, bar: Bar) -> None:
        """Take one past bar before the run (live warm-up): the indicators and the history."""
        close = bar.close
        for update_close in self.on_close:
            update_close(close)
        if self.push is not None:
            self.push(bar)
        elif not self.on_close:  # no indicators: the history takes it even if preloaded
            self.history.push(bar)


def _reads_close(indicator: Indicator) -> bool:
    """Whether ``indicator`` takes a bar's close alone (it keeps the default ``update_bar``)."""
    return type(indicator).update_bar is Indicator.update_bar


_ENDED_UNFILLED = frozenset((OrderCancelled, OrderRejected, OrderExpired))
_ASKED_OF_NO_ORDER = frozenset((OrderCancelRejected, OrderModifyRejected))


class _LiveSlice:
    """The time stamp a live run is at: the bars it has had, and until when it waits for more."""

    __slots__ = ("bars", "deadline_ns", "is_open", "reported", "seen", "ts_ns")

    def __init__(self) -> None:
        self.ts_ns: int | None = None  # the latest time stamp begun, still open or closed
        self.is_open = False
        self.seen: set[Instrument] = set()  # the instruments that gave their bar of ts_ns
        self.bars: list[Bar] = []  # those bars, in the order they came
        self.deadline_ns = NEVER  # when it closes without the bars still missing
        self.reported: set[Instrument] = set()  # said missing; cleared when on time again


class EngineObserver:
    """Watches a run from the engine's thread: every event, and a heartbeat.

    Subclass it for monitoring (health checks, dashboards, alerts): :meth:`on_event` sees each
    event the engine dispatches, after the engine has applied it; :meth:`on_heartbeat` runs
    once per time stamp (after the bars and monitors) and, in live runs, at least twice a
    second whether events are coming or not. Both run on the engine's thread, so
    they may read the engine's state, and must be quick; share what other threads need as
    immutable snapshots. Both are no-ops here.
    """

    def on_start(self, engine: Engine) -> None:
        """The run is about to start (the portfolio and books exist)."""

    def on_event(self, engine: Engine, event: Event) -> None:
        """``event`` was dispatched."""

    def on_heartbeat(self, engine: Engine, now_ns: int) -> None:
        """The loop is alive at ``now_ns`` (the run's clock)."""

    def on_stop(self, engine: Engine, error: BaseException | None) -> None:
        """The run ended, with ``error`` if it raised."""


@final
@attrs.frozen
class TradingState:
    """Whether a run takes new entries, and why not (:attr:`ibkrfw.Engine.trading`).

    Args:
        state: ``"active"`` (orders pass the risk rules as usual), ``"paused"`` (the
            operator's :meth:`~ibkrfw.Engine.pause`: orders that add risk are denied), ``"halted"``
            (a risk monitor's :class:`~ibkrfw.TradingHalted` is in force; it wins over a
            pause) or ``"stopped"`` (the run has ended).
        reason: Why, in words (empty when active).
        since_ns: Since when, on the run's clock (UTC ns; None when active).
        by: Who: ``"operator"``, the risk monitor's name, or None.
    """

    state: Literal["active", "paused", "halted", "stopped"]
    reason: str = ""
    since_ns: int | None = None
    by: str | None = None


class _Guard:
    """The protective orders of one position: their OCA group, exit side and ids by tag.

    ``turned`` says that a fill left the position flat or on the other side since, even if
    later fills of the same time stamp brought it back: its orders protect a position that
    has ended.
    """

    __slots__ = ("group", "orders", "side", "turned")

    def __init__(self, group: str, side: Side) -> None:
        self.group = group
        self.side = side
        self.orders: dict[str, int] = {}
        self.turned = False


def _cost(fill: Fill) -> Decimal:
    """What a fill moved out of cash (negative for a sale), commission included."""
    value = fill.quantity * fill.price * fill.instrument.multiplier
    signed = value if fill.side is _BUY else -value
    return signed + fill.commission


# The ledgers runs have used: a ledger keeps one run's books (weakly held, as the engines).
_USED_LEDGERS: weakref.WeakSet[Ledger] = weakref.WeakSet()


def _fresh_ledger(ledger: object) -> Ledger | None:
    """``Engine(portfolio=...)``, checked: a ledger instance no run has used."""
    if ledger is None:
        return None
    if isinstance(ledger, type) and issubclass(ledger, Ledger):
        raise ConfigError(
            f"Engine(portfolio={ledger.__name__}): give an instance, built with the account's "
            f"cash, e.g. portfolio={ledger.__name__}(100_000)"
        )
    if not isinstance(ledger, Ledger):
        raise ConfigError(
            f"Engine(portfolio={ledger!r}): give a ledger, an instance of "
            "ibkrfw.portfolio.Ledger such as Portfolio(100_000) or TaxLotPortfolio(100_000), "
            f"not a {type(ledger).__name__}"
        )
    if ledger in _USED_LEDGERS or ledger.fills:
        why = "used by another run" if ledger in _USED_LEDGERS else "given fills already"
        raise ConfigError(
            f"Engine(portfolio=...): this {type(ledger).__name__} has been {why} and keeps "
            "those books; give each run a new one, with the account's cash and no fills"
        )
    return ledger


def _claim_ledger(ledger: Ledger, broker: Broker, account_cash: Decimal) -> None:
    """At the start of a run: the given ledger is fresh and has the account's cash and currency."""
    name = type(ledger).__name__
    _fresh_ledger(ledger)  # another engine may have run it since this one was built
    if ledger.base_currency != broker.base_currency:
        raise ConfigError(
            f"Engine(portfolio=...): the {name} keeps its books in {ledger.base_currency}, the "
            f"account in {broker.base_currency}: build it with "
            f"base_currency={broker.base_currency!r}"
        )
    if ledger.cash != account_cash or ledger.cash_balances != {ledger.base_currency: account_cash}:
        raise ConfigError(
            f"Engine(portfolio=...): the {name} starts with cash {ledger.cash}, the account "
            f"({type(broker).__name__}) with {account_cash} {broker.base_currency}: build it "
            f"with the account's cash, e.g. {name}({account_cash})"
        )
    _USED_LEDGERS.add(ledger)


def _one_feed_per_instrument(feeds: Sequence[DataFeed]) -> None:
    """Refuse two feeds delivering one instrument: their bars would be mixed into one history.

    Within one feed, an instrument named twice, and two different instruments with one id
    (``ACME.SMART`` with two tick sizes) are refused as well: orders, positions and results
    are keyed by it.
    """
    seen: dict[Instrument, int] = {}
    ids: dict[str, Instrument] = {}
    for number, feed in enumerate(feeds, 1):
        if len(set(feed.instruments)) != len(feed.instruments):
            twice = sorted({i.id for i in feed.instruments if feed.instruments.count(i) > 1})
            raise ConfigError(
                f"feed {number} ({type(feed).__name__}) names {', '.join(twice)} more than once"
            )
        for inst in feed.instruments:
            other = ids.setdefault(inst.id, inst)
            if other != inst:
                raise ConfigError(
                    f"two instruments share the id {inst.id}: {other!r} and {inst!r}; give each "
                    "instrument of a run one definition (the same tick size, exchange, currency)"
                )
            first = seen.setdefault(inst, number)
            if first != number:
                raise ConfigError(
                    f"{inst.id} is delivered by feed {first} ({type(feeds[first - 1]).__name__}) "
                    f"and feed {number} ({type(feed).__name__}): one instrument needs one feed. "
                    "bars of two sizes (or two sources) of one instrument would be mixed into one "
                    "history and one equity curve. For several bar sizes of one instrument, "
                    "give the engine the smallest and declare the larger ones in "
                    "Strategy.bar_sizes(): the engine builds them from it"
                )


def _one_bar_size(feeds: Sequence[DataFeed]) -> str | None:
    """The bar size every feed shares, by name (``Context.bar_size``); None if they differ."""
    sizes = {feed.bar_ns for feed in feeds}
    size = sizes.pop() if len(sizes) == 1 else None
    return None if size is None else size_name(size)


_PROGRESS_EVERY = 8_192  # bars between two moves of a backtest's progress bar
_PROGRESS_DELAY_S = 5.0  # progress=None, bars not counted in advance: shown after this long


def _counted(bars: Iterator[Bar], meter: tqdm[Any]) -> Iterator[Bar]:
    """Yield ``bars`` unchanged, moving ``meter`` on once every ``_PROGRESS_EVERY`` bars.

    The bars pass through ``chain`` and ``islice``, in C: the Python code here runs once per
    step, not once per bar, so a run with progress is as fast as one without.
    """

    def steps() -> Iterator[Iterable[Bar]]:
        whole = False
        for first in bars:  # the next bar is read only when the engine asks for it
            if whole:  # another bar came: the step before was whole
                meter.update(_PROGRESS_EVERY)
            whole = True
            yield (first,)
            yield islice(bars, _PROGRESS_EVERY - 1)

    return chain.from_iterable(steps())


def _overrides(strategy: Strategy, name: str) -> bool:
    return getattr(type(strategy), name) is not getattr(Strategy, name)


@final
class Engine:
    """Run a strategy: feed it events, route its orders through risk to a broker, keep books.

    The same loop runs backtests and live sessions; only the feed, the broker and the clock
    differ. For each bar: the broker sees it first (a simulator fills resting orders), the
    resulting order events are dispatched (order book, portfolio, ``on_order``/``on_fill``), the
    portfolio marks the instrument at the close, then ``on_bar`` runs (and again for each larger
    bar it completes, of the sizes :meth:`Strategy.bar_sizes <ibkrfw.Strategy.bar_sizes>`
    declares; the broker sees base bars only). Bars sharing a timestamp are then handed
    together to ``on_slice`` (live, as soon as every instrument's bar is in: see
    ``slice_wait_s``), and equity is recorded once per timestamp.

    Args:
        strategy: The strategy to run, or several (a list, a dict of name: strategy, or
            :class:`~ibkrfw.Sleeve` wrappers) sharing the account and the data, each with its
            own orders, books, rules and results (see :attr:`portfolios` and
            :attr:`RunResult.strategies <ibkrfw.RunResult.strategies>`).
        feed: One data feed or several (merged by time).
        broker: Where orders go (a :class:`~ibkrfw.sim.SimBroker` in a backtest).
        risk_rules: Checks every order must pass, in order; the first denial stops it. The
            broker's own checks follow (:attr:`Broker.account_rules
            <ibkrfw.Broker.account_rules>`: the simulated account's buying power).
        risk_monitors: Watchers of the account, run once per time stamp after its bars; a
            :class:`~ibkrfw.risk.Halt` they return stops orders that add risk (and may close
            every position), reported as :class:`~ibkrfw.TradingHalted`.
        protection: Stop-loss and take-profit orders kept on every position (see
            :class:`~ibkrfw.risk.Protection`); with several, the first covering an
            instrument applies.
        observers: Watchers of the run (see :class:`~ibkrfw.engine.EngineObserver`).
        clock: The clock; by default a :class:`~ibkrfw.SimClock` for a backtest and a
            :class:`~ibkrfw.LiveClock` when the feeds are live.
        logger: Where the run logs (``ibkrfw.engine`` by default).
        tune_gc: While :meth:`run` runs, collect cyclic garbage less often: the first
            generation's threshold is raised to 10,000 allocations, and the objects that exist
            before the run are frozen out of the collector's reach (``gc.freeze()``; skipped
            when objects are frozen already, as Python 3.12 does at start-up). A run keeps every
            order and fill alive, and the collector would otherwise scan them again and again
            (measured: 7 % of a 1,000,000-bar, 39,000-order backtest). Both settings are
            restored when the run ends.
        slice_wait_s: Live runs: how long a time stamp waits for the bars still missing once
            its first bar was handled, on the run's clock (2 seconds by default). A live time
            stamp closes (``on_slice``, the risk monitors, a heartbeat) as soon as every
            instrument of the feeds has given its bar for it; an instrument whose bar does not
            come (no trade, a halt, a lost subscription) holds it up this long at most, and
            is reported as a :class:`~ibkrfw.DataProblem`. ``0`` closes it as soon as no bar
            is waiting to be handled; ``math.inf`` waits for the next time stamp's first bar.
            A backtest has every bar of a time stamp at once and never waits.
        inbox_bound: Live runs: how many events may wait in the :attr:`inbox` before the
            engine logs a WARNING that it is not keeping up (once, until the depth is back
            under half of it). Nothing is dropped at the bound: quotes and trades are
            conflated per instrument once 1,000 events wait, and bars and order events all
            wait (see :class:`~ibkrfw.core.Inbox`).
        portfolio: The ledger that keeps the run's books (a :class:`~ibkrfw.portfolio.Ledger`,
            such as :class:`~ibkrfw.portfolio.TaxLotPortfolio`), fresh, with the account's
            cash and currency; it is :attr:`portfolio` during and after the run. By default
            the engine builds a :class:`~ibkrfw.Portfolio` (average cost). At the start the
            engine gives it the broker's exchange rates and its clock, then books each
            position the broker holds already as its opening fill
            (:meth:`~ibkrfw.portfolio.Ledger.adopt`).

    Raises:
        ConfigError: if no feed is given, several strategies are not named uniquely and
            safely or come with a ``protection``, ``slice_wait_s`` is not a number of seconds
            of at least 0, ``inbox_bound`` is not a whole number of at least 1, or
            ``portfolio`` is not a ledger, or one another run used; :meth:`run` raises it
            if the ledger's cash or currency are not the account's.

    Example:
        >>> from ibkrfw.data import sample_feed
        >>> from ibkrfw.sim import SimBroker
        >>> from ibkrfw.strategies import MovingAverageCrossover
        >>> result = Engine(MovingAverageCrossover(), sample_feed(["ACME"]), SimBroker()).run()
        >>> int(result.stats["Trades"]) > 0
        True
    """

    def __init__(
        self,
        strategy: Strategy | Sequence[Strategy | Sleeve] | Mapping[str, Strategy | Sleeve],
        feed: DataFeed | Sequence[DataFeed],
        broker: Broker,
        *,
        risk_rules: Sequence[RiskRule] = (),
        risk_monitors: Sequence[RiskMonitor] = (),
        protection: Protection | Sequence[Protection] = (),
        observers: Sequence[EngineObserver] = (),
        clock: Clock | None = None,
        logger: logging.Logger | None = None,
        tune_gc: bool = True,
        slice_wait_s: float = _SLICE_WAIT_S,
        inbox_bound: int = 10_000,
        portfolio: Ledger | None = None,
    ) -> None:
        self._given_ledger = _fresh_ledger(portfolio)
        self.strategy = self._several(strategy, protection)
        self.feeds: tuple[DataFeed, ...] = (feed,) if isinstance(feed, DataFeed) else tuple(feed)
        if not self.feeds:
            raise ConfigError("Engine needs at least one data feed")
        _one_feed_per_instrument(self.feeds)
        self.broker = broker
        self.risk_rules = tuple(risk_rules)
        self.account_rules = tuple(broker.account_rules)
        """The broker's account checks, run after ``risk_rules`` (buying power...)."""
        self._checks = self.risk_rules + self.account_rules
        self.risk_monitors = tuple(risk_monitors)
        self._order_monitors = any(m.watches_orders for m in self.risk_monitors)
        self.protection: tuple[Protection, ...] = (
            (protection,) if isinstance(protection, Protection) else tuple(protection)
        )
        self._guards: dict[Instrument, _Guard] = {}
        self._groups = 0  # protective OCA groups made so far
        self.observers = tuple(observers)
        self._last_beat = 0.0  # time.monotonic() of the last heartbeat
        if self.observers:  # only observed runs pay for the extra call per event
            self._dispatch = self._dispatch_observed  # type: ignore[method-assign]
        self._unguarded: set[Instrument] = set()  # positions whose protection must be checked
        self._retry: set[Instrument] = set()  # protection waiting for data or a retry
        self._cancelling: set[int] = set()  # orders the engine itself asked to cancel
        self._cancel_pending: set[int] = set()  # orders with a cancel sent and not answered
        self._flattening: set[int] = set()  # the closing orders of a flatten (see _flatten)
        # Protective orders lost in a row, per position and tag; and those found unplaceable.
        self._lost: dict[tuple[Instrument, str], int] = {}
        self._unplaceable: set[tuple[Instrument, str]] = set()
        self._exits = False  # whether a bracket exit was sent: their sizes are then kept in check
        self._adopted_exits = False  # whether an order with a parent was adopted from the broker
        self._oca_seen = False  # whether an order in an OCA group was sent or adopted
        self._exit_check: set[Instrument] = set()  # positions whose bracket exits must fit
        # The quantity the engine last asked its own exits to have, until the broker answers:
        # live, IB answers later; in a backtest, after the fills queued before the answer.
        self._asked: dict[int, Decimal] = {}
        # What a fill in an OCA group will take off the group's other orders (IB's ocaType 3)
        # and the broker has not said yet: their size once it does.
        self._oca_due: dict[int, Decimal] = {}
        self._halt: TradingHalted | None = None
        self.halts: list[TradingHalted] = []
        """Every halt of the run, in order."""
        self.live = any(feed.is_live for feed in self.feeds)
        if self.live and not all(feed.is_live for feed in self.feeds):
            raise ConfigError("a run's feeds must be all live or all historical")
        self.clock = clock if clock is not None else LiveClock() if self.live else SimClock()
        self.log = logger or log
        self.tune_gc = tune_gc
        if isinstance(slice_wait_s, bool) or not (
            isinstance(slice_wait_s, int | float) and slice_wait_s >= 0
        ):
            raise ConfigError(
                f"Engine(slice_wait_s={slice_wait_s!r}): give the seconds a live time stamp "
                f"waits for a missing bar, at least 0 (math.inf: until the next time stamp); "
                f"the default is {_SLICE_WAIT_S:g}"
            )
        self.slice_wait_s = float(slice_wait_s)
        """How long a live time stamp waits for a missing bar, in seconds."""
        self._slice_wait_ns = (
            NEVER if slice_wait_s == math.inf else min(NEVER, round(slice_wait_s * 1e9))
        )
        self.queue = EventQueue()
        self.orders = OrderBook()
        self.portfolio: Ledger | None = None
        """The run's ledger (None until :meth:`run` starts)."""
        # Cash and positions change only at fills: recorded there, as step functions, and the
        # equity curve is computed from them and the bars' closes once the run is over.
        self._fill_ts = array("q")
        self._fill_lane = array("q")
        self._fill_cash = array("d")
        self._fill_exposure = array("d")
        self._fill_currency = array("q")
        self._currencies: list[str] = []  # the base currency first, then the others met
        self._cash_adjustments: list[CashAdjusted] = []
        self._timers = Timers()
        self._lanes: dict[Instrument, _Lane] = {}
        self._timeframes: Timeframes | None = None  # the strategy's larger bar sizes
        self._want_order = self._want_fill = self._want_book = False
        self._hear_submitted = True
        self._depth_feeds: dict[Instrument, DataFeed] = {}  # built at the first DepthReceived
        self._greeks: dict[tuple[Instrument, str], OptionGreeks] = {}  # the latest of each
        self._ran = False
        self._arrived: deque[Bar] = deque()  # live bars taken off the inbox, not yet run
        # Live runs: what other threads (IB's) report waits in the inbox, and the loop takes
        # it one event at a time between bars; the queue holds what the engine's own thread
        # produced (a SimBroker's fills on a bar), dispatched at once, as in a backtest.
        if isinstance(inbox_bound, bool) or not isinstance(inbox_bound, int) or inbox_bound < 1:
            raise ConfigError(
                f"Engine(inbox_bound={inbox_bound!r}): give the number of events waiting in a "
                "live run's inbox past which the engine warns, a whole number of at least 1 "
                "(10000 by default)"
            )
        self.inbox = Inbox(inbox_bound, logger=self.log)
        """The events other threads report, waiting for a live run's loop.

        Its depth, conflation count and lag figures are in :meth:`~ibkrfw.core.Inbox.stats`.
        """
        self._arrived_ns: deque[int] = deque()  # when each bar of _arrived came off the socket
        self._arrival = 0  # the arrival of the inbox's event being dispatched (0: none)
        self._thread_id = 0
        self._stop = threading.Event()
        self._cancel_on_stop = False
        self.stop_reason: str | None = None
        """Why the run stopped, or is stopping (None while it runs).

        The reason given to :meth:`stop`, ``"the data ended"``, or ``"error: <type>:
        <message>"`` (secrets masked)."""
        self._pause: tuple[str, int] | None = None  # the operator's pause: reason, since
        self._commands: deque[tuple[Callable[[], str], Future[str]]] = deque()
        self._commands_lock = threading.Lock()  # queueing a command vs the run's end
        self._running = False  # between the start of the loop and its end
        self._loop_thread = 0  # the thread that runs the loop (live or backtest)
        self._ended_ns: int | None = None
        # Orders the risk rules leave out (one being modified, those a flatten cancels), and
        # the order they are checking (its OCA group counts once with it).
        self._risk_exclude: frozenset[int] = frozenset()
        self._risk_joining: OrderRequest | None = None
        self.bars_processed = 0
        """The number of bars a live run has finished with, a heartbeat.

        A bar counts once handed to the strategy (and its time stamp closed, if it completed
        it), or dropped as out of order."""
        self.notices: list[Event] = []
        """Connection changes and data problems seen during the run, in order."""
        self.risk_warnings: list[RiskWarning] = []
        """What the risk rules and monitors said at the start they cannot do in this run."""

    def _several(
        self,
        strategy: Strategy | Sequence[Strategy | Sleeve] | Mapping[str, Strategy | Sleeve],
        protection: Protection | Sequence[Protection],
    ) -> Strategy:
        """The strategy to run: ``strategy``, or the sleeves of several run as one."""
        sleeves = sleeves_of(strategy)
        if sleeves is None:
            return strategy  # type: ignore[return-value]
        check_shared(sleeves, (protection,) if isinstance(protection, Protection) else protection)
        several = _Sleeves(sleeves)
        several.bind(self)
        return several

    @property
    def portfolios(self) -> dict[str, Portfolio]:
        """Each strategy's own ledger by name, when the engine runs several (else empty).

        Each is fed by its strategy's fills only (a flatten's fills close each strategy's
        own position, an expired contract's settlement each strategy's own holding); the
        ledger named ``"(unallocated)"`` holds the cash no strategy was given and positions
        adopted at the start that no strategy claims. Together they add up to
        ``portfolio``, the account's.
        """
        strategy = self.strategy
        return strategy.ledgers() if isinstance(strategy, _Sleeves) else {}

    def _risk_warning(self, rule: str, said: str) -> None:
        """Report what a rule said at the start it cannot do in this run."""
        self.log.warning("%s: %s", rule, said)
        warning = RiskWarning(ts_ns=self.clock.now_ns(), rule=rule, reason=said)
        self.risk_warnings.append(warning)
        self.queue.append(warning)

    def _running_portfolio(self) -> Ledger:
        if self.portfolio is None:
            raise EngineError("orders can only be sent while the engine runs")
        return self.portfolio

    # --- OrderRouter, used by Context -----------------------------------------------------
    def submit(self, request: OrderRequest) -> Order:
        """Validate ``request``, run the risk rules, and hand it to the broker.

        An order on the closing side of a position with working exits (a
        :class:`~ibkrfw.risk.Protection`'s, or a bracket's once its entry has filled) joins their
        OCA group, unless it has a group or a parent of its own or another order of the strategy
        is in that group already: whichever fills first takes the others away (IB's
        ``ocaType`` 3), so the exit and the stop can never both fill. The strategy's closing
        orders take their share of the position before the brackets' exits, which are cut to
        what is left (see ``_fit_exits``); they are never cut or cancelled themselves: they
        are the strategy's, as at IB. A bracket's exits (a child on the other side of its
        parent, for no more than it) skip the risk rules: the entry was checked, and they
        only close what it opens.

        Returns:
            The new order, ``PENDING_SUBMIT`` if it was sent (its fate arrives as events) or
            already ``DENIED`` if validation or a risk rule refused it (the
            :class:`~ibkrfw.OrderDenied` event follows all the same).
        """
        if request.parent_id is not None:
            return self._send(request, checked=not self._exit_of_parent(request))
        # only a Protection's or a bracket's exits make a group to join
        if not request.oca_group and (self._guards or self._exits or self._adopted_exits):
            group = self._exit_group(request)
            if group is not None:
                request = attrs.evolve(request, oca_group=group)
        order = self._send(request, checked=True)
        if (
            order.status is not _DENIED
            and self._exits
            and self._running_portfolio().quantity(request.instrument)
        ):
            self._exit_check.add(request.instrument)  # exits and closing orders must fit
        return order

    def _exit_of_parent(self, request: OrderRequest) -> bool:
        """Whether ``request`` closes what its parent opens: the other side, no more of it."""
        parent = self.orders.get(request.parent_id) if request.parent_id is not None else None
        return (
            parent is not None
            and parent.instrument == request.instrument
            and parent.side is not request.side
            and request.quantity <= parent.quantity
        )

    def _is_exit(self, order: Order) -> bool:
        """Whether ``order`` is an exit the engine keeps: a Protection's or a bracket's."""
        return waits_to_exit(order.request)

    def _exit_group(self, request: OrderRequest) -> str | None:
        """The OCA group of working exits that a closing ``request`` should join, if any."""
        inst = request.instrument
        held = self._running_portfolio().quantity(inst)
        if not held or request.side.sign * held > 0:
            return None
        candidates: list[str] = []
        guard = self._guards.get(inst)
        if guard is not None and guard.side is request.side:
            candidates.append(guard.group)
        members: dict[str, list[Order]] = {}
        for order in self.orders.active(inst):
            group = order.request.oca_group
            if group:
                members.setdefault(group, []).append(order)
        for group, orders in members.items():  # the oldest brackets first
            if group not in candidates and any(
                self._live_exit(o) and o.side is request.side for o in orders
            ):
                candidates.append(group)
        for group in candidates:
            if not any(not self._is_exit(o) for o in members.get(group, ())):
                return group  # no order of the strategy's in it yet
        return None

    def _live_exit(self, order: Order) -> bool:
        """Whether ``order`` is a bracket's exit that works (its entry has ended)."""
        parent_id = order.request.parent_id
        if parent_id is None:
            return False
        parent = self.orders.get(parent_id)
        return parent is not None and parent.status.is_terminal

    def _send(self, request: OrderRequest, *, checked: bool) -> Order:
        """Validate ``request``, run the risk rules if ``checked``, and hand it to the broker."""
        now = self.clock.now_ns()
        reason = check_request(request)
        if reason is None and request.instrument not in self._lanes:
            reason = f"unknown instrument {request.instrument.id}: no feed of this run delivers it"
        if reason is None and request.parent_id is not None:
            reason = self._parent_problem(request)
        if reason is not None:
            return self._refuse(self.orders.create(request, now), now, reason, "validation")
        # Risk sees the orders already working, not this one: it is created after the check.
        asked = request
        halted = self._halt is not None or self._pause is not None
        refusal = self._halt_refusal(request, now) if checked and halted else None
        resized: list[tuple[str, str]] = []
        if refusal is None and checked:
            request, refusal = self._risk_check(request, now, resized)
        if refusal is not None:  # the order as asked is what was refused
            return self._refuse(self.orders.create(asked, now), now, refusal[1], refusal[0])
        order = self.orders.create(request, now)
        if request.parent_id is not None:
            self._exits = True
        if request.oca_group:
            self._oca_seen = True
        if resized:
            self._resized(order.order_id, now, asked.quantity, request.quantity, resized)
        if self._hear_submitted:  # nothing else happens on it: unheard, it is not made
            self.queue.append(OrderSubmitted(ts_ns=now, order_id=order.order_id, request=request))
        self.broker.submit(order)
        return order

    def _refuse(self, order: Order, now: int, reason: str, rule: str) -> Order:
        # A denial is the engine's own decision: the book records it at once (so the order
        # stops counting as pending), and the queued event only tells the strategy.
        event = OrderDenied(ts_ns=now, order_id=order.order_id, reason=reason, rule=rule)
        # A risk rule saying no is routine; an order the strategy got wrong is worth a warning.
        level = logging.WARNING if rule in _STRATEGY_MISTAKES else logging.INFO
        # A quantity of 0 is a stand-in for one that could not be read (the reason names the
        # value given), and a sizing denial's side too: show only what was given.
        what = (
            (order.instrument.id if rule == "sizing" else f"{order.side} {order.instrument.id}")
            if not order.quantity
            else f"{order.side} {order.quantity} {order.instrument.id}"
        )
        self.log.log(level, "order %d (%s) denied by %s: %s", order.order_id, what, rule,
                     reason)  # fmt: skip
        self.orders.apply(event)
        self.queue.append(event)
        return self.orders.get(order.order_id) or order

    def _resized(
        self, order_id: int, now: int, asked: Decimal, sent: Decimal, by: list[tuple[str, str]]
    ) -> None:
        rules, reasons = "; ".join(r for r, _ in by), "; ".join(w for _, w in by)
        self.log.info("order %d resized from %s to %s by %s: %s", order_id, asked, sent, rules,
                      reasons)  # fmt: skip
        event = OrderResized(
            ts_ns=now, order_id=order_id, requested=asked, quantity=sent, rule=rules,
            reason=reasons,
        )  # fmt: skip
        self.queue.append(event)

    def _risk_check(
        self, request: OrderRequest, now: int, resized: list[tuple[str, str]]
    ) -> tuple[OrderRequest, tuple[str, str] | None]:
        """Run the risk rules on ``request``.

        Returns:
            The request as the rules let it through (smaller if one shrank it; each shrink's
            rule and reason is appended to ``resized``), and the name and reason of the first
            rule that denies it, if any.
        """
        portfolio = self._running_portfolio()
        try:
            return self._run_rules(request, now, resized, portfolio)
        finally:
            self._risk_joining = None

    def _run_rules(
        self,
        request: OrderRequest,
        now: int,
        resized: list[tuple[str, str]],
        portfolio: Ledger,
    ) -> tuple[OrderRequest, tuple[str, str] | None]:
        for rule in self._checks:
            self._risk_joining = request
            decision = rule.check(request, portfolio, now)
            if not decision.approved:
                return request, (rule.name, decision.reason)
            smaller = decision.quantity
            if smaller is None:
                continue
            if smaller <= 0:
                return request, (rule.name, decision.reason)
            if smaller >= request.quantity or smaller % request.instrument.lot_size:
                return request, (
                    rule.name,
                    f"the rule shrank the order to {smaller}, which is not a whole number of "
                    f"lots below {request.quantity} (a fault in the rule; {decision.reason})",
                )
            request = attrs.evolve(request, quantity=smaller)
            resized.append((rule.name, decision.reason))
        return request, None

    def _halt_refusal(self, request: OrderRequest, now: int) -> tuple[str, str] | None:
        """The monitor (or operator) and reason of a halt or pause, if ``request`` adds risk."""
        halt = self._halt
        if halt is not None and halt.until_ns is not None and now >= halt.until_ns:
            self._halt = halt = None
        pause = self._pause
        if halt is None and pause is None:
            return None
        held = self._running_portfolio().quantity(request.instrument)
        after = held + request.signed_quantity
        if abs(after) <= abs(held) and after * held >= 0:
            return None  # getting out is always allowed
        if halt is not None:
            return halt.rule, f"trading is halted: {halt.reason}"
        return _OPERATOR, f"trading is paused by the operator: {pause[0] if pause else ''}"

    def _start_risk(self, portfolio: Ledger) -> None:
        """Tell the rules and monitors the run's bar size; report what they cannot do at it."""
        sizes = [size for feed in self.feeds if (size := feed.bar_ns) is not None]
        bar_ns = min(sizes) if sizes else None
        now = self.clock.now_ns()
        if not self.live:  # a backtest's clock is not set yet: the first bar's time, if known
            firsts = [
                int(arrays.ts_ns[0])
                for feed in self.feeds
                for inst in feed.instruments
                if (arrays := feed.history_arrays(inst)) is not None and len(arrays.ts_ns)
            ]
            now = min(firsts, default=now)
        parts: list[RiskRule | RiskMonitor] = [*self.risk_rules, *self.risk_monitors]
        for part in parts:
            said = part.on_start(portfolio, bar_ns)
            if said:
                self.log.warning("%s: %s", part.name, said)
                warning = RiskWarning(ts_ns=now, rule=part.name, reason=said)
                self.risk_warnings.append(warning)
                self.queue.append(warning)  # to the strategy after on_start

    def _watch(self, ts: int) -> None:
        """Let every monitor look at the account; act on a halt."""
        portfolio = self._running_portfolio()
        for monitor in self.risk_monitors:
            halt = monitor.observe(portfolio, ts)
            if halt is not None:
                self._halted_by(monitor, halt, ts)

    def _watch_order(self, event: OrderEvent) -> None:
        order = self.orders.get(event.order_id)
        if order is None:
            return
        for monitor in self.risk_monitors:
            halt = monitor.on_order(order, event)
            if halt is not None:
                self._halted_by(monitor, halt, event.ts_ns)

    def _halted_by(self, monitor: RiskMonitor, halt: Halt, ts: int) -> None:
        event = TradingHalted(
            ts_ns=ts, rule=monitor.name, reason=halt.reason, until_ns=halt.until_ns,
            flatten=halt.flatten,
        )  # fmt: skip
        self._halt = event
        self.halts.append(event)
        self.log.warning("%s halted trading: %s", monitor.name, halt.reason)
        if halt.flatten:
            self._flatten(ts)
        elif halt.cancel_orders:
            self._cancel_new_risk()
        self.queue.append(event)

    def _cancel_new_risk(self) -> None:
        """Cancel the working orders that would add to a position or open one."""
        portfolio = self._running_portfolio()
        for order in self.orders.active():
            if order.request.side.sign * portfolio.quantity(order.instrument) >= 0:
                self.log.info("order %d cancelled by the halt: it adds risk", order.order_id)
                self._cancel(order)

    def _flatten(self, ts: int) -> tuple[int, list[str], list[str]]:
        """Cancel the working orders and close every position with market orders.

        Returns:
            How many orders it cancelled, what it sent (``"ACME.SMART SELL 16"``) and what
            an earlier flatten's orders are closing already.
        """
        # A Protection's exits stay: the closing orders join their OCA group, so whichever
        # fills first takes the others away, and the position is never without its stop.
        # The closing orders of an earlier flatten stay too, when they close no more than is
        # held: at IB a market order may have filled already, unheard of here, and cancelling
        # it to send another would sell the position twice (two flattens in quick succession).
        portfolio = self._running_portfolio()
        closing: dict[Instrument, Decimal] = {}
        for order in self.orders.active():
            if order.order_id in self._flattening:
                inst = order.instrument
                left = order.remaining if order.side is _BUY else -order.remaining
                closing[inst] = closing.get(inst, Decimal(0)) + left
        kept = {
            inst
            for inst, pending in closing.items()
            if pending * portfolio.quantity(inst) < 0
            and abs(pending) <= abs(portfolio.quantity(inst))
        }
        cancelled = [
            o
            for o in self.orders.active()
            if not self._is_protective(o)
            and not (o.order_id in self._flattening and o.instrument in kept)
        ]
        for order in cancelled:
            self._cancel(order)
        # The closing orders only reduce risk: the rules let them through (see risk.limits)
        # once they no longer count the orders cancelled here, whose cancellations (and
        # those of IB, live) come back later as events.
        self._risk_exclude = frozenset(order.order_id for order in cancelled)
        sent: list[str] = []
        already: list[str] = []
        try:
            for inst, position in list(portfolio.positions.items()):
                side = _SELL if position.quantity > 0 else _BUY
                left = abs(position.quantity)
                if inst in kept:  # what the earlier closing orders do not close yet
                    already.append(f"{inst.id} {side.name} {abs(closing[inst])}")
                    left -= abs(closing[inst])
                if left > 0 and inst in self._lanes:
                    request = OrderRequest(inst, side, left, tag="flatten")
                    self._flattening.add(self.submit(request).order_id)
                    sent.append(f"{inst.id} {side.name} {left}")
        finally:
            self._risk_exclude = frozenset()
        return len(cancelled), sent, already

    def _is_protective(self, order: Order) -> bool:
        """Whether ``order`` is one of the exits a Protection keeps."""
        guard = self._guards.get(order.instrument)
        return guard is not None and guard.orders.get(order.request.tag) == order.order_id

    def _parent_problem(self, request: OrderRequest) -> str | None:
        parent_id = request.parent_id
        parent = self.orders.get(parent_id) if parent_id is not None else None
        if parent is None:
            return f"parent order {parent_id} is unknown"
        if parent.instrument != request.instrument:
            return f"a child order must trade its parent's instrument, {parent.instrument.id}"
        if parent.status.is_terminal and not parent.filled_quantity:
            return f"parent order {parent_id} was refused or ended unfilled"
        return None

    def bracket_problem(self, entry: OrderRequest) -> str | None:
        """Why a bracket entering with ``entry`` cannot be placed: a Protection keeps its exits.

        Its exits and the Protection's would both close the position, and both fill.
        """
        if any(p.covers(entry.instrument) for p in self.protection):
            return (
                f"a Protection keeps the exits of {entry.instrument.id}: a bracket's would add "
                "to them (use one or the other for an instrument)"
            )
        return None

    @staticmethod
    def together_refused(
        what: str, requests: Sequence[OrderRequest], at: int, rule: str, reason: str
    ) -> str:
        """Say why orders sent together (:meth:`submit_together`) were all refused.

        Args:
            what: What they do together (e.g. ``"roll of 2 ESZ6 into ESH7"``).
            requests: The orders.
            at: The index of the one refused.
            rule: The rule (or ``"validation"``) that refused it.
            reason: Why.
        """
        bad = requests[at]
        return (
            f"{what} refused: its order {at + 1} of {len(requests)} ({bad.side} "
            f"{bad.quantity} {bad.instrument.id}) was denied by {rule}: {reason}; none was sent"
        )

    def submit_together(self, requests: Sequence[OrderRequest], what: str) -> list[Order]:
        """Check every request, then send them all, or deny them all and send none.

        Each request is validated and checked by the halts and risk rules once, in order,
        before any is created: none sees the others as working orders, so a roll's opening
        leg is not counted against a limit with the closing leg it replaces. A rule that
        would shrink one refuses them all (they go whole or not at all). Once every one has
        passed, they are sent unchecked, each joining the OCA group of its position's working
        exits as :meth:`submit` does. They go to the broker one after the other, not as a
        :meth:`group` (whose orders but the last wait in TWS, untransmitted, until an order
        of the same parent arrives: unrelated orders would wait for ever).

        Returns:
            The orders, ``PENDING_SUBMIT``; or all ``DENIED``, each denial naming ``what``, the
            request refused and why.
        """
        now = self.clock.now_ns()
        refusal: tuple[int, str, str] | None = None
        for i, request in enumerate(requests):
            reason = check_request(request)
            if reason is None and request.instrument not in self._lanes:
                reason = (
                    f"unknown instrument {request.instrument.id}: no feed of this run delivers it"
                )
            if reason is None and request.parent_id is not None:
                reason = "orders sent together take no parent (send a bracket with ctx.bracket)"
            if reason is not None:
                refusal = (i, "validation", reason)
                break
            refused = self._halt_refusal(request, now)
            if refused is None:
                resized: list[tuple[str, str]] = []
                checked, refused = self._risk_check(request, now, resized)
                if refused is None and checked.quantity != request.quantity:
                    refused = (
                        "; ".join(r for r, _ in resized),
                        f"it would be cut to {checked.quantity} "
                        f"({'; '.join(w for _, w in resized)}), and these orders go whole or "
                        "not at all",
                    )
            if refused is not None:
                refusal = (i, *refused)
                break
        if refusal is not None:
            at, rule, reason = refusal
            said = self.together_refused(what, requests, at, rule, reason)
            return [
                self._refuse(self.orders.create(request, now), now, said, rule)
                for request in requests
            ]
        orders = []
        for request in requests:
            if not request.oca_group:
                group = self._exit_group(request)
                if group is not None:
                    request = attrs.evolve(request, oca_group=group)
            order = self._send(request, checked=False)
            if self._exits and self._running_portfolio().quantity(request.instrument):
                self._exit_check.add(request.instrument)
            orders.append(order)
        return orders

    def deny(self, request: OrderRequest, reason: str, rule: str) -> Order:
        """Record ``request`` as an order denied for ``reason`` by ``rule``; send nothing."""
        now = self.clock.now_ns()
        return self._refuse(self.orders.create(request, now), now, reason, rule)

    @contextlib.contextmanager
    def group(self) -> Iterator[None]:
        """Hand the orders submitted inside the block to the broker as one group."""
        self.broker.begin_group()
        try:
            yield
        finally:
            self.broker.end_group()

    def cancel(self, order: Order) -> None:
        """Ask the broker to cancel ``order``.

        A :class:`~ibkrfw.risk.Protection`'s order cancelled this way is placed again: the
        position it protects stays protected.
        """
        self._cancel_pending.add(order.order_id)
        self.broker.cancel(order)

    def _cancel(self, order: Order) -> None:
        """Cancel ``order`` on the engine's own account (its protection is not put back)."""
        self._cancelling.add(order.order_id)
        self._cancel_pending.add(order.order_id)
        self.broker.cancel(order)

    def modify(self, order: Order, request: OrderRequest) -> None:
        """Check ``request`` as a replacement for ``order`` and hand it to the broker.

        Refusals come back as :class:`~ibkrfw.OrderModifyRejected`: the order has finished,
        the instrument, side or type changed, the request is invalid, the quantity is not above
        what has filled, or a risk rule denies it. A rule that shrinks the replacement is
        reported by :class:`~ibkrfw.OrderResized` before the broker's answer. The quantity of
        an exit the engine keeps in line with its position (a Protection's, or a bracket's
        once its entry has filled) cannot be raised above the position.
        """
        reason = self._exit_problem(order, request)
        if reason is None and order.order_id in self._cancel_pending:
            # Live, the order still works until the broker answers the cancel; a backtest's
            # has ended already. Either way it cannot be changed any more (IB refuses it too).
            reason = (
                f"order {order.order_id} has a cancel on its way: it cannot be modified any "
                "more (send a new order once the cancel is answered)"
            )
        if reason is not None:
            now = self.clock.now_ns()
            self.queue.append(OrderModifyRejected(ts_ns=now, order_id=order.order_id,
                                                  reason=reason))  # fmt: skip
            return
        self._modify(order, request, checked=True)

    def refuse_modify(self, order: Order | None, reason: str) -> None:
        """Answer a change that cannot be made with an OrderModifyRejected.

        ``order`` is None for a change of no order: the event's ``order_id`` is then -1, and
        the strategy hears of it in :meth:`~ibkrfw.Strategy.on_event`.
        """
        order_id = -1 if order is None else order.order_id
        if order is not None:  # of no order: logged as it is dispatched
            self.log.warning("order %d not modified: %s", order_id, reason)
        now = self.clock.now_ns()
        self.queue.append(OrderModifyRejected(ts_ns=now, order_id=order_id, reason=reason))

    def refuse_cancel(self, reason: str) -> None:
        """Answer a cancel of no order with an OrderCancelRejected whose ``order_id`` is -1."""
        now = self.clock.now_ns()
        self.queue.append(OrderCancelRejected(ts_ns=now, order_id=-1, reason=reason))

    def _exit_problem(self, order: Order, request: OrderRequest) -> str | None:
        """Why ``request`` may not replace ``order``, an exit that follows its position."""
        inst = order.instrument
        guard = self._guards.get(inst)
        tag = order.request.tag
        if guard is not None and guard.orders.get(tag) == order.order_id:
            if request.quantity != order.quantity:
                return (
                    f"the {tag} of a Protection follows the position: its quantity is the "
                    "engine's to keep (change the Protection, or close the position)"
                )
            return None
        parent_id = order.request.parent_id
        parent = self.orders.get(parent_id) if parent_id is not None else None
        if parent is not None and request.quantity > parent.quantity:
            return (
                f"a bracket's exit may close at most what its entry opens ({parent.quantity}), "
                f"not {request.quantity}"
            )
        if parent is not None and parent.status.is_terminal:
            held = abs(self._running_portfolio().quantity(inst))
            if request.quantity - order.filled_quantity > held:
                return (
                    f"a bracket's exit may close at most the position of {inst.id} ({held}), "
                    f"not {request.quantity - order.filled_quantity}"
                )
        return None

    def _modify(self, order: Order, request: OrderRequest, *, checked: bool) -> None:
        """Modify ``order``; the risk rules run if ``checked`` (not for protective orders)."""
        now = self.clock.now_ns()
        asked = request.quantity
        resized: list[tuple[str, str]] = []
        reason = check_modification(order, request)
        if reason is None and checked:
            self._risk_exclude = frozenset((order.order_id,))  # the replacement stands in
            try:
                request, refusal = self._risk_check(request, now, resized)
            finally:
                self._risk_exclude = frozenset()
            if refusal is None and resized and request.quantity <= order.filled_quantity:
                refusal = resized[-1][0], "shrunk to no more than has already filled"
            if refusal is not None:
                reason = f"{refusal[0]}: {refusal[1]}"
        if reason is not None:
            self.queue.append(
                OrderModifyRejected(ts_ns=now, order_id=order.order_id, reason=reason)
            )
            return
        if resized:
            self._resized(order.order_id, now, asked, request.quantity, resized)
        if request.oca_group:
            self._oca_seen = True
        self.broker.modify(order, request)

    def stop(self, *, cancel_orders: bool = False, reason: str | None = None) -> None:
        """Ask a live run to end; safe from any thread and from a signal handler.

        The engine finishes the event in hand, optionally cancels every working order (and
        waits up to five seconds for the broker's confirmations), calls ``on_stop``, stops the
        broker and the feeds, and :meth:`run` returns. A backtest ends with its data and
        ignores this.

        Args:
            cancel_orders: Cancel every working order before stopping.
            reason: Why, in words (``"SIGTERM"``, ``"duration reached (--duration 60)"``):
                kept as :attr:`stop_reason` and shown by the monitor and the dashboard. The
                first reason given wins; ``"stopped by Engine.stop()"`` if none is.
        """
        self._cancel_on_stop = self._cancel_on_stop or cancel_orders
        if self.stop_reason is None and self.live:  # a backtest ends with its data
            self.stop_reason = reason or "stopped by Engine.stop()"
        self._stop.set()
        if threading.get_ident() != self._thread_id:
            # Wake the loop at once. Not from its own thread, which may be a signal handler
            # interrupting the loop inside the inbox's lock: it sees the flag within 0.5 s.
            self.inbox.put(TimerFired(ts_ns=0, name=_WAKE))

    # --- the operator's controls -----------------------------------------------------------
    @property
    def trading(self) -> TradingState:
        """Whether the run takes new entries (active, paused, halted or stopped), and why.

        Read it from any thread: it is made of values the engine replaces, never changes.
        """
        if self._ended_ns is not None:
            return TradingState("stopped", self.stop_reason or "", self._ended_ns, None)
        halt = self._halt
        if halt is not None and (halt.until_ns is None or self.clock.now_ns() < halt.until_ns):
            reason = halt.reason
            pause = self._pause
            if pause is not None:
                reason += f" (and paused by the operator: {pause[0]})"
            return TradingState("halted", reason, halt.ts_ns, halt.rule)
        pause = self._pause
        if pause is not None:
            return TradingState("paused", pause[0], pause[1], _OPERATOR)
        return TradingState("active")

    def pause(self, reason: str = "") -> Future[str]:
        """Refuse new entries until :meth:`resume`: the operator's pause.

        Orders that add risk are denied (an :class:`~ibkrfw.OrderDenied` by the rule
        ``"operator"``, whose reason names the pause); orders that reduce a position, a
        :class:`~ibkrfw.risk.Protection`'s stops and targets and a bracket's exits go on
        working, as under a risk halt. Orders already working are left alone (see
        :meth:`cancel_all`).

        Safe from any thread: the pause is made on the engine's thread (at once when called
        there, from the strategy or an observer; in a live run from another thread, as the
        next event the engine takes).

        Args:
            reason: Why, in words (shown in the denials, the log and the dashboard).

        Returns:
            A future whose result says what was done.

        Raises:
            EngineError: if the engine is not running, or is a backtest called from another
                thread (a backtest has no inbox: call it from the strategy or an observer).
        """
        return self._command("pause", lambda: self._do_pause(reason))

    def resume(self, reason: str = "") -> Future[str]:
        """Lift the operator's pause (never a risk monitor's halt, which stays in force).

        Safe from any thread, as :meth:`pause`.

        Returns:
            A future whose result says what was done, and whether a risk halt still
            refuses new entries.

        Raises:
            EngineError: as :meth:`pause`.
        """
        return self._command("resume", lambda: self._do_resume(reason))

    def flatten(self, reason: str = "") -> Future[str]:
        """Pause, cancel the working orders and close every position with market orders.

        The same as a risk monitor's flattening halt: a :class:`~ibkrfw.risk.Protection`'s
        stops stay (the closing orders join their OCA group, so only one of them can fill),
        every other working order is cancelled, and each position gets a market order that
        closes it (tagged ``"flatten"``). New entries stay refused until :meth:`resume`.
        Flattening again keeps the closing orders an earlier flatten left working and sends
        only what they do not close: at IB the first may have filled already, unheard of yet,
        and replacing it would close the position twice.
        Safe from any thread, as :meth:`pause`.

        Returns:
            A future whose result says what was cancelled and sent.

        Raises:
            EngineError: as :meth:`pause`.
        """
        return self._command("flatten", lambda: self._do_flatten(reason))

    def cancel_all(self, reason: str = "", *, include_protection: bool = False) -> Future[str]:
        """Cancel the working orders, keeping the ones that protect a position by default.

        A :class:`~ibkrfw.risk.Protection`'s stops and targets and the exits of a bracket
        whose entry has filled are kept unless ``include_protection`` is True: cancelling
        them would leave a position without its stop-loss. Cancelled with them, a
        Protection's orders are not placed again until the position changes. Safe from any
        thread, as :meth:`pause`.

        Args:
            reason: Why, in words (for the log).
            include_protection: Cancel the protective orders too.

        Returns:
            A future whose result says what was cancelled and kept.

        Raises:
            EngineError: as :meth:`pause`.
        """
        return self._command("cancel_all", lambda: self._do_cancel_all(reason, include_protection))

    def _command(self, action: str, work: Callable[[], str]) -> Future[str]:
        """Run ``work`` on the engine's thread; its future has what it says it did."""
        future: Future[str] = Future()
        if not self._running or self._ended_ns is not None:
            raise EngineError(
                f"Engine.{action}: the engine is not running (start it with run(); a run "
                "that has ended takes no more commands)"
            )
        if threading.get_ident() == self._loop_thread:
            future.set_running_or_notify_cancel()
            self._execute(action, work, future)
            return future
        if not self.live:
            raise EngineError(
                f"Engine.{action}: a backtest runs on its caller's thread and has no inbox "
                "for commands from another thread; call it from the strategy or an observer"
            )
        with self._commands_lock:  # not after the run's end has refused those waiting
            if self._ended_ns is not None:
                raise EngineError(
                    f"Engine.{action}: the run has just ended; it takes no more commands"
                )
            self._commands.append((work, future))
        self.inbox.put(TimerFired(ts_ns=0, name=_CONTROL))
        return future

    def _execute(self, action: str, work: Callable[[], str], future: Future[str]) -> None:
        try:
            detail = work()
        except Exception as exc:  # a bug: said to whoever asked, and logged; the run goes on
            self.log.exception("the operator's %s failed", action)
            future.set_exception(exc)
            return
        future.set_result(detail)

    def _run_commands(self) -> None:
        """Run the commands other threads queued (on the engine's thread)."""
        done: list[tuple[Future[str], str | None, Exception | None]] = []
        while self._commands:
            work, future = self._commands.popleft()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                done.append((future, work(), None))
            except Exception as exc:  # a bug: said to whoever asked, and logged
                self.log.exception("an operator's command failed")
                done.append((future, None, exc))
            self._drain()
        if self.observers:
            self._heartbeat(self.clock.now_ns())  # observers see it before the caller hears
        for future, detail, error in done:
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(detail or "")

    def _refuse_commands(self) -> None:
        """Fail the commands still waiting when the run ends."""
        while self._commands:
            _, future = self._commands.popleft()
            if future.set_running_or_notify_cancel():
                future.set_exception(
                    EngineError("the run stopped before the command could be carried out")
                )

    def _do_pause(self, reason: str) -> str:
        why = reason or "no reason given"
        if self._pause is not None:
            self._pause = (why, self._pause[1])
            self.log.warning("operator: pause (already paused): %s", why)
            return f"already paused; the reason is now: {why}"
        self._pause = (why, self.clock.now_ns())
        self.log.warning("operator: pause: %s", why)
        return "paused: orders that add risk are denied; exits and protective orders work"

    def _do_resume(self, reason: str) -> str:
        was = self._pause
        self._pause = None
        self.log.warning("operator: resume%s", f": {reason}" if reason else "")
        said = "resumed: the operator's pause is lifted" if was else "trading was not paused"
        halt = self.trading
        if halt.state == "halted":
            return (
                f"{said}, but trading stays halted by {halt.by}: {halt.reason} (resume never "
                "lifts a risk monitor's halt)"
            )
        return f"{said}; new entries are accepted" if was else said

    def _do_flatten(self, reason: str) -> str:
        why = reason or "no reason given"
        now = self.clock.now_ns()
        if self._pause is None:
            self._pause = (f"flatten: {why}", now)
        portfolio = self._running_portfolio()
        held = [f"{inst.id} {pos.quantity}" for inst, pos in portfolio.positions.items()]
        cancelled, _, already = self._flatten(now)
        self.log.warning(
            "operator: flatten (%s): cancelled %d order(s), closing %s%s", why, cancelled,
            ", ".join(held) or "no position",
            f" ({', '.join(already)} by an earlier flatten's orders)" if already else "",
        )  # fmt: skip
        said = (
            f"cancelled {cancelled} working order(s); closing "
            f"{', '.join(held) or 'no position (none held)'} with market orders"
        )
        if already:
            said += (
                f" ({', '.join(already)} by an earlier flatten's orders, still working: not "
                "sent again)"
            )
        return said + "; new entries are refused until resumed"

    def _do_cancel_all(self, reason: str, include_protection: bool) -> str:
        cancel, kept = [], []
        for order in self.orders.active():
            if not include_protection and (self._is_protective(order) or self._live_exit(order)):
                kept.append(order)
            else:
                cancel.append(order)
        self.log.warning(
            "operator: cancel all%s: %d order(s) cancelled, %d protective kept",
            f" ({reason})" if reason else "", len(cancel), len(kept),
        )  # fmt: skip
        bare = sorted(  # the positions the protective orders among them leave uncovered
            {o.instrument.id for o in cancel if self._is_protective(o) or self._live_exit(o)}
        )
        for order in cancel:
            self._cancel(order)
        said = f"cancelling {len(cancel)} working order(s)"
        if bare:
            said += (
                f", the protective ones among them: {', '.join(bare)} stay without a stop-loss "
                "or target until the position changes"
            )
        if kept:
            ids = ", ".join(str(o.order_id) for o in kept)
            said += (
                f"; kept {len(kept)} protective order(s) ({ids}): a position's stop-loss and "
                'target stay unless {"include_protection": true}'
            )
        return said

    # --- the loop -------------------------------------------------------------------------
    def _live_bars(self) -> Iterator[Bar]:
        """Bars of live feeds as they arrive; other events are dispatched meanwhile.

        Each time stamp ends here (see :meth:`_end_live_slice`): once every instrument has
        given its bar for it, ``slice_wait_s`` after its first bar was handled, or when a bar
        of a later time stamp comes first.
        """
        inbox, arrived, clock, timers = self.inbox, self._arrived, self.clock, self._timers
        arrived_ns, handled = self._arrived_ns, self.inbox.handled
        live = _LiveSlice()
        expected = len(self._lanes)
        wait_ns = self._slice_wait_ns
        while True:
            while arrived:
                bar = arrived.popleft()
                arrival = arrived_ns.popleft()
                if self._admit(live, bar):
                    yield bar
                    if arrival:  # on_bar has returned: the bar is handled
                        handled(arrival)
                    if live.is_open:  # it joined the time stamp in progress
                        if live.deadline_ns == NEVER and wait_ns < NEVER:  # its first bar
                            live.deadline_ns = clock.now_ns() + wait_ns
                        if len(live.seen) == expected:
                            self._end_live_slice(live, None)
                # counted once its time stamp has ended, if it was the last one missing
                self.bars_processed += 1
            # Out of time, and nothing waiting that could be the missing bar: close it.
            if live.is_open and not inbox and clock.now_ns() >= live.deadline_ns:
                self._end_live_slice(
                    live, f"within {self.slice_wait_s:g} s of the time stamp's first bar"
                )
            if self._stop.is_set():
                break
            wait = 0.5
            if timers.next_due_ns < NEVER:
                wait = min(wait, max(0.0, (timers.next_due_ns - clock.now_ns()) / 1e9))
            if live.is_open and live.deadline_ns < NEVER:
                wait = min(wait, max(0.0, (live.deadline_ns - clock.now_ns()) / 1e9))
            event = inbox.get(wait)
            now = clock.now_ns()
            if now >= timers.next_due_ns:
                self._fire_timers(now)
            if event is not None:
                self._arrival = arrival = inbox.arrival_ns
                self._dispatch(event)  # a bar only joins `arrived`: it is handled above
                self._arrival = 0
                self._drain()
                if type(event) is not BarReceived and type(event) is not TimerFired:
                    handled(arrival)  # the strategy's handler (if any) has returned
            if self.observers and time.monotonic() - self._last_beat >= 0.5:
                self._heartbeat(now)  # still alive, busy or idle, twice a second at least
        if live.is_open:  # stopped: what came of the time stamp in progress ends it
            self._end_live_slice(live, "")
        if self._cancel_on_stop:
            self._cancel_all()

    def _admit(self, live: _LiveSlice, bar: Bar) -> bool:
        """Say whether a live ``bar`` goes to the strategy; begin its time stamp if it is new.

        A bar of the time stamp in progress joins it; one of a later time stamp first ends
        the one in progress. A bar of a time stamp already ended goes to ``on_bar`` but not
        to ``on_slice`` (late: it is in time order for its instrument). A bar older than the
        time stamp in progress, or a second bar of an instrument for it, is dropped and
        reported: history and the clock only move forward.
        """
        ts, inst = bar.ts_ns, bar.instrument
        current = live.ts_ns
        if current is None or ts > current:
            if live.is_open:
                self._end_live_slice(live, "before a bar of a later time stamp came")
            live.ts_ns, live.is_open, live.deadline_ns = ts, True, NEVER
            live.seen = {inst}
            live.bars = [bar]
        elif ts == current and inst not in live.seen:
            live.seen.add(inst)
            if not live.is_open:
                self.log.info("%s: its bar of %s came after that time stamp ended: on_bar only",
                              inst.id, _utc(ts))  # fmt: skip
                return True
            live.bars.append(bar)
        else:
            why = (
                f"a second bar of {inst.id} for {_utc(ts)}"
                if ts == current
                else f"a bar of {inst.id} for {_utc(ts)}, older than the time stamp in "
                f"progress ({_utc(current)})"
            )
            self._data_problem(inst, f"{why} was dropped: live bars are handled in time order")
            return False
        if live.reported:
            live.reported.discard(inst)  # on time again
        return True

    def _end_live_slice(self, live: _LiveSlice, missing: str | None) -> None:
        """End the live time stamp in progress: ``on_slice``, the monitors, a heartbeat.

        ``missing`` says why it ends without the bars still missing (None: it is complete;
        empty: the run stops); each instrument missing is reported once, until its bars
        come in time again.
        """
        live.is_open, live.deadline_ns = False, NEVER
        ts, bars = live.ts_ns, live.bars
        if ts is None:
            return
        if missing and len(live.seen) < len(self._lanes):
            for inst in self._lanes:
                if inst in live.seen or inst in live.reported:
                    continue
                live.reported.add(inst)
                self._data_problem(inst, (
                    f"no bar of {inst.id} for {_utc(ts)} {missing}: on_slice went ahead "
                    "without it, and a bar of it for that time that comes later goes to "
                    "on_bar only (reported once, until its bars come in time again)"
                ))  # fmt: skip
        if bars and _overrides(self.strategy, "on_slice"):
            self.strategy.on_slice(self._ctx, bars)
            self._drain()
        if self.risk_monitors:
            # the account once every bar of ts was handled, at the run's time: a halt's
            # time, its end and "today" are on the one clock of the run, which is the wall
            # clock live, even when the bars are replayed history (ibkrfw fake-tws)
            self._watch(self.clock.now_ns())
            self._drain()
        if self.observers:
            self._heartbeat(ts)

    def _data_problem(self, inst: Instrument, reason: str) -> None:
        self.log.warning("%s", reason)
        self.queue.append(DataProblem(ts_ns=self.clock.now_ns(), instrument=inst, code=None,
                                      reason=reason))  # fmt: skip
        self._drain()

    def _cancel_all(self, timeout_s: float = 5.0) -> None:
        working = self.orders.active()
        for order in working:
            self._cancel(order)
        deadline = time.monotonic() + timeout_s
        while self.orders.active() and time.monotonic() < deadline:
            self._drain()
            event = self.inbox.get(0.1)
            if event is not None and type(event) is not BarReceived:
                self._dispatch(event)
        left = self.orders.active()
        if left:
            self.log.warning(
                "%d order(s) still working at IB after the stop: %s",
                len(left),
                ", ".join(str(o.order_id) for o in left),
            )

    def _bars(self) -> Iterator[Bar]:
        if self.live:
            return self._live_bars()
        if len(self.feeds) == 1:
            return iter(self.feeds[0])
        return heapq.merge(*self.feeds, key=attrgetter("ts_ns"))

    @property
    def instruments(self) -> tuple[Instrument, ...]:
        """Every instrument the run's feeds deliver (known once the run has started)."""
        return tuple(self._lanes)

    def run(self, *, progress: bool | None = False) -> RunResult:
        """Run to the end of the feeds and return the result.

        Args:
            progress: Show the backtest's progress on stderr (a bar in a terminal, a widget
                in Jupyter with ipywidgets, a few plain lines in a log): True for any run,
                None only for a long one (200,000 bars or more, or, when the feeds do not
                say how many bars they hold, one that takes more than 5 seconds), False
                (the default) never. It costs nothing per bar: the count moves every
                8,192 bars, and the results are the same either way.

        Raises:
            EngineError: if the engine already ran, or a feed yields a bar of an instrument it
                did not declare or out of time order.
            ConfigError: if ``progress`` is not True, False or None, or is True for a live
                run (which has no end to measure progress by).
        """
        check_progress(progress, "Engine.run")
        if progress and self.live:
            raise ConfigError(
                "Engine.run: progress=True needs a backtest; a live run has no end to measure "
                "progress by (watch it with a Dashboard instead)"
            )
        if self._ran:
            raise EngineError("an Engine runs once; build a new one for another run")
        self._ran = True
        strategy, clock, broker = self.strategy, self.clock, self.broker

        emit = self.queue.put
        self._loop_thread = threading.get_ident()
        if self.live:
            self._thread_id = threading.get_ident()
            emit = self._emit_live
        try:
            broker.start(clock, emit)
            for feed in self.feeds:  # a no-op for historical feeds
                feed.start(clock, emit)
            adopted = list(broker.starting_positions())
            account_cash = broker.starting_cash()
            starting_cash = account_cash + sum((_cost(fill) for fill in adopted), Decimal(0))
            if self._given_ledger is not None:
                _claim_ledger(self._given_ledger, broker, account_cash)
            portfolio, lanes, ctx = self._prepare(starting_cash)
            for fill in adopted:
                self._book_adopted(fill)
            broker.adopt_orders(self._adopt_order)
            if self.protection:
                self._take_over_protection()
            self._start_risk(portfolio)
            base, fx = portfolio.base_currency, portfolio.fx
        except BaseException:
            self._shut_down()  # a half-started broker may hold a connection and threads
            raise
        self._want_order = _overrides(strategy, "on_order")
        self._want_fill = _overrides(strategy, "on_fill")
        # An OrderSubmitted changes no order (the book made it PENDING_SUBMIT already): it is
        # queued only for those who hear it.
        self._hear_submitted = self._want_order or self._order_monitors or bool(self.observers)
        self._want_book = _overrides(strategy, "on_book")

        # The progress bar first: it may refuse (a bad IBKRFW_PROGRESS_MIN_BARS), and nothing
        # may raise between tuning the collector and the try that puts it back.
        meter = None if self.live or progress is False else self._meter(progress)
        thresholds = gc.get_threshold()
        frozen = self.tune_gc and gc.get_freeze_count() == 0
        if frozen:
            gc.freeze()
        if self.tune_gc:
            gc.set_threshold(max(thresholds[0], _GC_THRESHOLD), *thresholds[1:])
        error: BaseException | None = None
        try:
            self._running = True
            for observer in self.observers:
                observer.on_start(self)
            self._loop(ctx, portfolio, lanes, meter)
        except BaseException as exc:
            error = exc
            raise
        finally:
            self._stopped(error)
            if meter is not None:
                if error is None:  # the count moved by whole steps: the exact one at the end
                    meter.n = sum(len(lane.history) for lane in lanes.values())
                meter.close()
            gc.set_threshold(*thresholds)
            if frozen:
                gc.unfreeze()
            try:
                self._shut_down()
            finally:
                for observer in self.observers:
                    try:
                        observer.on_stop(self, error)
                    except Exception:  # an observer must not hide the run's own outcome
                        self.log.exception("observer %r failed in on_stop", observer)
        histories = [lane.history.last() for lane in lanes.values()]
        ts, cash, equity = equity_curve(
            [(h.ts_ns, h.close) for h in histories],
            np.frombuffer(self._fill_ts, dtype=np.int64),
            np.frombuffer(self._fill_lane, dtype=np.int64),
            np.frombuffer(self._fill_cash, dtype=np.float64),
            np.frombuffer(self._fill_exposure, dtype=np.float64),
            float(starting_cash),
            fill_currency=np.frombuffer(self._fill_currency, dtype=np.int64),
            lane_currency=[lane.currency for lane in lanes.values()],
            currencies=self._currencies,
            fx=fx,
        )
        result = RunResult(
            strategy_name=strategy.name,
            parameters=strategy.parameters(),
            starting_cash=float(starting_cash),
            timestamps_ns=ts,
            equity=equity,
            cash=cash,
            orders=self.orders,
            fills=portfolio.fills,
            realized=portfolio.realized_per_fill,
            bars=dict(zip(lanes, histories, strict=True)),
            cash_adjustments=self._cash_adjustments,
            base_currency=base,
            fx=fx,
            halts=self.halts,
            risk_warnings=self.risk_warnings,
        )
        if isinstance(strategy, _Sleeves):
            result.strategies = strategy.results(result)
        return result

    def _stopped(self, error: BaseException | None) -> None:
        """Record why the run ended, and refuse the commands still waiting."""
        if error is not None:
            why = (
                "interrupted (KeyboardInterrupt)"
                if isinstance(error, KeyboardInterrupt)
                else f"error: {type(error).__name__}: {redact(str(error))}"
            )
            self.stop_reason = why  # the error is why, whatever stop() was asked before
        elif self.stop_reason is None:
            self.stop_reason = "the data ended"
        with self._commands_lock:  # a command is queued before this, or refused
            self._ended_ns = self.clock.now_ns()
            self._running = False
        self._refuse_commands()

    def _book_fill(self, fill: Fill, *, adopted: bool = False) -> None:
        """Apply ``fill`` to the portfolio and record the cash and position step it makes."""
        portfolio = self._running_portfolio()
        if adopted:  # a ledger given to the engine starts with the account's cash
            portfolio.adopt(fill)
        else:
            portfolio.apply_fill(fill)
        lane = self._lanes.get(fill.instrument)
        if lane is not None:  # a fill of an instrument no feed delivers cannot be marked
            self._fill_ts.append(fill.ts_ns)
            self._fill_lane.append(lane.index)
            self._fill_exposure.append(lane.holding.qty_f)
            self._fill_currency.append(lane.currency)
            self._fill_cash.append(
                portfolio.cash_f
                if not lane.currency
                else float(portfolio.balance(fill.instrument.currency))
            )

    def _position_moved(self, fill: Fill) -> None:
        """After a fill is booked: the protection and exits of its instrument are looked at."""
        if self.protection:
            inst = fill.instrument
            self._unguarded.add(inst)
            guard = self._guards.get(inst)
            if guard is not None and not guard.turned:
                # Live, the engine acts on each fill: a position flat or turned in between
                # loses its exits (a trailing stop the ground it made), and the position
                # after gets new ones. A backtest acts once the bar's fills are in, so it
                # notes the turn here to do the same.
                held = self._running_portfolio().quantity(inst)
                guard.turned = not held or (held > 0) is (guard.side is _BUY)
            for tag in (STOP_TAG, TAKE_TAG):
                self._lost.pop((inst, tag), None)
                self._unplaceable.discard((inst, tag))
        if self._exits:
            self._exit_check.add(fill.instrument)

    def _run_instrument(self, inst: Instrument) -> Instrument:
        """The run's own instrument for one the broker reports, matched by id if need be.

        IB's positions and open orders give a contract, not its tick size: a future of tick
        0.25 comes back as one of the default tick, another key. The feed's instrument of the
        same kind, id and currency is the one meant (when there is exactly one).
        """
        if inst in self._lanes:
            return inst
        same = [
            i
            for i in self._lanes
            if type(i) is type(inst) and i.id == inst.id and i.currency == inst.currency
        ]
        return same[0] if len(same) == 1 else inst

    def _book_adopted(self, fill: Fill) -> None:
        """Book a position the account held before the run, as its opening fill."""
        if fill.instrument not in self._lanes:
            fill = attrs.evolve(fill, instrument=self._run_instrument(fill.instrument))
        self._book_fill(fill, adopted=self._given_ledger is not None)
        holding = self._running_portfolio().holding(fill.instrument)
        if holding.price != holding.price:  # not marked yet: at its cost until a bar comes
            holding.price = float(fill.price)
        self.log.info("adopted position: %s %s %s at %s", fill.side, fill.quantity,
                      fill.instrument.id, fill.price)  # fmt: skip

    def _adopt_order(
        self,
        request: OrderRequest,
        *,
        filled: Decimal = Decimal(0),
        avg_price: Decimal | None = None,
    ) -> Order:
        """Enter an order found working at the broker into the book, as accepted.

        An order that filled in part before the run enters part-filled (its fills are in the
        adopted positions already, so they are not booked again).
        """
        now = self.clock.now_ns()
        if request.instrument not in self._lanes:
            request = attrs.evolve(request, instrument=self._run_instrument(request.instrument))
        order = self.orders.create(request, now)
        if request.parent_id is not None:
            self._adopted_exits = True
        if request.oca_group:
            self._oca_seen = True
        self.orders.apply(OrderSubmitted(ts_ns=now, order_id=order.order_id, request=request))
        self.orders.apply(OrderAccepted(ts_ns=now, order_id=order.order_id))
        if filled > 0:
            self.orders.adopt_filled(order.order_id, filled, avg_price, now)
        self.log.info("adopted working order %d: %r (filled %s)", order.order_id, request,
                      filled)  # fmt: skip
        return self.orders.get(order.order_id) or order

    def _take_over_protection(self) -> None:
        """Adopt the protective orders found working; check every position held at the start."""
        for order in self.orders.active():
            request = order.request
            if request.oca_group.startswith(GROUP_PREFIX) and request.tag in (STOP_TAG, TAKE_TAG):
                guard = self._guards.get(request.instrument)
                if guard is None:
                    guard = _Guard(request.oca_group, request.side)
                    self._guards[request.instrument] = guard
                guard.orders[request.tag] = order.order_id
        self._unguarded.update(self._running_portfolio().positions)

    def _emit_live(self, event: Event) -> None:
        """Events from the engine's thread join the queue; from any other, the inbox."""
        if threading.get_ident() == self._thread_id:
            self.queue.put(event)
        else:
            self.inbox.put(event)

    def _prepare(self, starting_cash: Decimal) -> tuple[Ledger, dict[Instrument, _Lane], Context]:
        """Build the portfolio, the lanes (histories, warmed up in live runs) and the context."""
        strategy, clock, broker = self.strategy, self.clock, self.broker
        base, fx = broker.base_currency, broker.fx
        portfolio: Ledger
        if self._given_ledger is None:
            portfolio = Portfolio(starting_cash, base, fx, clock)
        else:
            portfolio = self._given_ledger
            portfolio.follow_rates(fx, clock)
        self.portfolio = portfolio
        portfolio.follow_orders(
            lambda: self.orders.working(self._risk_exclude, self._risk_joining),
            lambda inst: self.orders.pending_quantity(inst, waits_to_exit, self._risk_exclude),
        )
        self._currencies = [base]
        lanes = self._lanes
        declared = dict(strategy.indicators())
        for name, ind in declared.items():
            if not isinstance(ind, Indicator):
                raise ConfigError(f"indicator {name!r} is a {type(ind).__name__}, not an Indicator")
        for feed in self.feeds:
            for inst in feed.instruments:
                arrays = feed.history_arrays(inst)
                history = (
                    BarHistory.preloaded(arrays, clock)
                    if arrays is not None
                    else BarHistory.empty()
                )
                currency = self._currency_index(inst)
                indicators = {name: ind.fresh() for name, ind in declared.items()}
                lanes[inst] = _Lane(
                    len(lanes), portfolio.holding(inst), history, currency, indicators
                )
                if not history.is_preloaded and strategy.warmup_bars > 0:
                    self._warm_up(feed, inst, lanes[inst])
        portfolio.follow_histories({i: ln.history for i, ln in lanes.items()})
        sizes = self._timeframes = plan_timeframes(strategy, self.feeds, declared)
        if sizes is not None:  # live: the warm-up bars make the larger sizes' first bars
            sizes.warm({i: ln.history for i, ln in lanes.items()})
        ctx = self._ctx = Context(
            clock,
            portfolio,
            self.orders,
            {i: ln.history for i, ln in lanes.items()},
            self,
            self._timers,
            self.log,
            {i: ln.indicators for i, ln in lanes.items()},
            self._depth_book,
            lambda inst, source: self._greeks.get((inst, source)),
            bar_sizes=None
            if sizes is None
            else sizes.for_context(
                {i: ln.history for i, ln in lanes.items()},
                {i: ln.indicators for i, ln in lanes.items()},
            ),
        )
        ctx.bar_size = _one_bar_size(self.feeds)
        return portfolio, lanes, ctx

    def _shut_down(self) -> None:
        try:
            for feed in self.feeds:
                feed.close()
        finally:
            self.broker.stop()

    def _warm_up(self, feed: DataFeed, inst: Instrument, lane: _Lane) -> None:
        try:
            bars = list(feed.recent_bars(inst, self.strategy.warmup_bars))
        except (RequestError, DataError) as exc:
            # Not fatal: the indicators then warm up on live bars, and give no value until
            # they are ready. Said loudly, and kept as a notice of the run.
            reason = f"warm-up history could not be loaded ({exc}); warming up on live bars"
            self.log.warning("%s: %s", inst.id, reason)
            problem = DataProblem(ts_ns=self.clock.now_ns(), instrument=inst, code=None,
                                  reason=reason)  # fmt: skip
            self.notices.append(problem)
            return
        for bar in bars:  # the indicators see the warm-up bars too
            lane.warm(bar)
        if bars:
            lane.holding.price = bars[-1].close
        self.log.info("warm-up: %d past bar(s) of %s loaded", len(bars), inst.id)

    def _currency_index(self, inst: Instrument) -> int:
        """The index of ``inst``'s currency in the run's currencies, checked convertible."""
        currency = inst.currency
        currencies = self._currencies
        if currency in currencies:
            return currencies.index(currency)
        fx = self.broker.fx
        if fx is None or currency not in fx.currencies:
            raise ConfigError(
                f"{inst.id} is priced in {currency} and the account in {currencies[0]}: give the "
                f"broker exchange rates with a {currency} series (SimBroker(fx=FxRates(...)))"
            )
        currencies.append(currency)
        return len(currencies) - 1

    def _meter(self, progress: bool | None) -> tqdm[Any] | None:
        """The progress bar of a backtest, if it shows one (see :meth:`run`)."""
        sizes = [len(feed) for feed in self.feeds]
        total = sum(sizes) if all(sizes) else None
        if progress is None and total is not None and total < min_bars():
            return None
        delay_s = _PROGRESS_DELAY_S if progress is None and total is None else 0.0
        names = ", ".join(sorted({i.symbol for f in self.feeds for i in f.instruments}))
        if len(names) > 40:
            names = names[:37] + "..."
        return make_bar(total=total, desc=f"backtest {names}", unit="bar", delay_s=delay_s)

    def _loop(
        self,
        ctx: Context,
        portfolio: Ledger,
        lanes: dict[Instrument, _Lane],
        meter: tqdm[Any] | None = None,
    ) -> None:
        strategy, queue, clock, broker = self.strategy, self.queue, self.clock, self.broker
        on_bar: Callable[[Context, Bar], None] | None = (
            strategy.on_bar if _overrides(strategy, "on_bar") else None
        )
        if self._timeframes is not None:  # the larger bar sizes, after each base bar
            on_bar = self._timeframes.wrap(on_bar, queue.__len__, self._drain)
        # A backtest's time stamp ends when the next one's first bar comes; live bars come
        # a bar interval apart, so _live_bars ends each time stamp itself (on_slice, the
        # monitors, a heartbeat) as soon as its bars are in.
        ends_here = not self.live
        want_slice = ends_here and _overrides(strategy, "on_slice")
        broker_on_bar = broker.on_bar
        advance = clock.advance_to
        drain = self._drain
        timers = self._timers
        slice_bars: list[Bar] = []
        monitors = ends_here and bool(self.risk_monitors)
        observed = ends_here and bool(self.observers)

        bars = self._bars()
        if meter is not None:
            bars = _counted(bars, meter)
        first = next(bars, None)
        if first is not None:  # on_start sees the time of the first event, not the epoch
            advance(first.ts_ns)
            bars = chain((first,), bars)
        strategy.on_start(ctx)
        drain()
        cur_ts: int | None = None
        last_inst: Instrument | None = None
        holding: _Holding
        push: Callable[[Bar], None] | None = None
        on_close: tuple[Callable[[float], float], ...] = ()
        active = self.orders.active_index  # truthy while some order may still fill
        # options and dated futures are settled at expiry by the broker, which needs the prices
        every_bar = broker.needs_every_bar or any(map(_expires, self._lanes))
        for bar in bars:
            ts = bar.ts_ns
            if ts != cur_ts:
                if want_slice and slice_bars:
                    strategy.on_slice(ctx, slice_bars)
                    slice_bars = []
                    drain()
                if monitors and cur_ts is not None:
                    self._watch(cur_ts)  # the account once every bar of cur_ts was handled
                    drain()
                if observed and cur_ts is not None:
                    self._heartbeat(cur_ts)
                if self._retry:
                    self._unguarded |= self._retry
                    drain()
                if ts >= timers.next_due_ns:
                    self._fire_timers(ts)
                advance(ts)
                cur_ts = ts
            inst = bar.instrument
            if inst is not last_inst:
                try:
                    lane = lanes[inst]
                except KeyError:
                    raise EngineError(
                        f"a feed yielded a bar of {inst.id}, which it does not declare"
                    ) from None
                last_inst, holding, push, on_close = inst, lane.holding, lane.push, lane.on_close
            if active or every_bar:
                broker_on_bar(bar)
                if queue:
                    drain()
            holding.price = close = bar.close
            if on_close:
                for update in on_close:
                    update(close)
            if push is not None:
                push(bar)
            if on_bar is not None:
                on_bar(ctx, bar)
                if queue:
                    drain()
            if want_slice:
                slice_bars.append(bar)
        if want_slice and slice_bars:
            strategy.on_slice(ctx, slice_bars)
            drain()
        if monitors and cur_ts is not None:
            self._watch(cur_ts)
            drain()
        if observed and cur_ts is not None:
            self._heartbeat(cur_ts)
        strategy.on_stop(ctx)
        drain()

    def _fire_timers(self, until_ns: int) -> None:
        while (due := self._timers.pop_due(until_ns)) is not None:
            name, due_ns = due
            self.clock.advance_to(due_ns)
            self._dispatch(TimerFired(ts_ns=due_ns, name=name))
            self._drain()

    def _drain(self) -> None:
        queue = self.queue
        while True:
            while queue:
                event = queue.popleft()
                self._dispatch(event)
                if self._exit_check and type(event) is OrderFilled:
                    # A bracket's exits follow the position fill by fill, in a backtest as
                    # live (where IB's fills come one at a time and the engine acts on
                    # each): a position that is flat or turned between two fills of one
                    # bar cancels them, whatever the bar's later fills do. Fitting them to
                    # the bar's end instead kept exits live cancels, and they filled in
                    # the backtest alone. What the broker has said but not yet done (an
                    # OCA group's reductions) is counted by _ahead.
                    self._fit_all_exits()
            if not self._unguarded and not self._exit_check:
                return
            # Positions changed: once everything the broker has said is in (the bar's other
            # fills, an OCA group's reductions), make the protective orders match the
            # positions; acting fill by fill would act on sizes the broker has already moved
            # past. Live, IB's answers come one at a time and the engine acts on each: it
            # then counts what is on its way (_ahead), and the outcome is the same, as a
            # Protection places its orders again for the position that is left. (A
            # bracket's exits are not placed again: they are fitted fill by fill, above.)
            changed, self._unguarded = self._unguarded, set()
            for inst in sorted(changed, key=attrgetter("id")):
                self._protect(inst)
            self._fit_all_exits()

    def _fit_all_exits(self) -> None:
        """Fit the bracket exits of every position noted in ``_exit_check`` (see _fit_exits)."""
        changed, self._exit_check = self._exit_check, set()
        for inst in sorted(changed, key=attrgetter("id")):
            self._fit_exits(inst)

    def _fit_exits(self, inst: Instrument) -> None:
        """Keep a bracket's exits within the position, after the strategy's closing orders.

        A bracket's exits work once its entry has ended (its OCA group counting once). The
        strategy's closing orders (and the groups they joined) take their share of the
        position first, oldest first, then the brackets', oldest first; what finds no room
        is cut, and cancelled at nothing. The strategy's orders are never cut: they are its
        own. Exits on the wrong side of the position (it closed or turned) are cancelled:
        left working, they would reopen it. A Protection's orders are ``_protect``'s.
        """
        held = self._running_portfolio().quantity(inst)
        closing = _SELL if held > 0 else _BUY
        mine: dict[str, list[Order]] = {}  # groups holding an order of the strategy's
        theirs: dict[str, list[Order]] = {}  # the brackets' exits alone
        for order in self.orders.active(inst):
            request = order.request
            if order.order_id in self._cancelling or self._is_protective(order):
                continue
            if not self._ahead(order):
                continue  # its OCA group took all of it: going away
            order_id = order.order_id
            exit_ = self._live_exit(order)
            if request.parent_id is not None and not exit_:
                continue  # a bracket's exit not working until its entry has ended
            if not held or order.side is not closing:
                if exit_:
                    self.log.info("exit %d cancelled: the position in %s is %s",
                                  order_id, inst.id, held)  # fmt: skip
                    self._cancel(order)
                continue
            group = request.oca_group if self._bracket_group(request.oca_group) else ""
            key = group or f"#{order_id}"
            if request.parent_id is None:  # the strategy's: its group comes first
                mine[key] = theirs.pop(key, []) + mine.get(key, []) + [order]
            elif key in mine:
                mine[key].append(order)
            else:
                theirs.setdefault(key, []).append(order)
        room = abs(held)
        for members in (*mine.values(), *theirs.values()):  # each: oldest first
            keep = min(max(self._ahead(o) for o in members), room)
            room -= keep
            for order in members:
                if order.request.parent_id is None:
                    continue  # the strategy's own: never cut
                if not keep:
                    self.log.info("exit %d cancelled: the position in %s is %s, closed by "
                                  "other orders", order.order_id, inst.id, held)  # fmt: skip
                    self._cancel(order)
                elif self._ahead(order) > keep:
                    size = order.filled_quantity + keep
                    self.log.info("exit %d resized to %s: the position in %s is %s",
                                  order.order_id, size, inst.id, held)  # fmt: skip
                    self._resize(order, attrs.evolve(order.request, quantity=size))

    def _cannot_place(self, inst: Instrument, tag: str, held: Decimal, entry: float) -> None:
        """Say, once per position, that a protective order cannot be placed at all."""
        if (inst, tag) in self._unplaceable:
            return
        self._unplaceable.add((inst, tag))
        reason = (
            f"its price would be at or below zero for a position of {held} at {entry:g}: the "
            "distance is larger than the price"
        )
        self.log.error("the %s of %s cannot be placed: %s", tag, inst.id, reason)
        self.queue.append(
            ProtectionFailed(ts_ns=self.clock.now_ns(), instrument=inst, tag=tag, reason=reason)
        )

    def _oca_reduces(self, fill: Fill) -> None:
        """Note what ``fill`` takes off the other orders of its OCA group, until they say."""
        if not self._oca_seen:
            return  # no order was ever in a group
        order = self.orders.get(fill.order_id)
        group = order.request.oca_group if order is not None else ""
        if not group:
            return
        for other in self.orders.active(fill.instrument):
            if other.status is _PENDING_SUBMIT:
                continue  # sent after the fill happened (the broker had it not yet)
            if other.order_id != fill.order_id and other.request.oca_group == group:
                due = self._oca_due.get(other.order_id, Decimal(0))
                self._oca_due[other.order_id] = due + fill.quantity

    def _ahead(self, order: Order) -> Decimal:
        """What of ``order`` will be left once the answers on their way are in.

        The size the engine last asked for, if the broker has not answered yet; otherwise
        what is left once its OCA group's fills have reduced it (IB's ``ocaType`` 3).
        """
        asked = self._asked.get(order.order_id)
        if asked is not None:
            return max(asked - order.filled_quantity, Decimal(0))
        return max(order.remaining - self._oca_due.get(order.order_id, Decimal(0)), Decimal(0))

    def _answered(self, event: OrderEvent) -> None:
        """The broker answered (or overtook) a resize the engine asked for."""
        kind = type(event)
        if kind is OrderModified:
            if event.request.quantity == self._asked[event.order_id]:  # type: ignore[attr-defined]
                del self._asked[event.order_id]  # the answer to the latest ask
        elif kind is OrderModifyRejected or kind in _ENDED_UNFILLED:
            del self._asked[event.order_id]
        elif kind is OrderFilled:
            order = self.orders.get(event.order_id)
            if order is not None and not order.is_active:
                del self._asked[event.order_id]

    def _resize(self, order: Order, request: OrderRequest) -> None:
        """Ask the broker to give the engine's own exit ``order`` the size of ``request``."""
        self._asked[order.order_id] = request.quantity
        self._modify(order, request, checked=False)

    @staticmethod
    def _bracket_group(group: str) -> bool:
        return group.startswith("bracket-")

    def _protective_lost(self, event: OrderEvent) -> None:
        """A protective order ended without filling: put it back, or say it cannot be."""
        order_id = event.order_id
        if order_id in self._cancelling:
            self._cancelling.discard(order_id)
            return
        order = self.orders.get(order_id)
        if order is None:
            return
        request = order.request
        inst = request.instrument
        guard = self._guards.get(inst)
        if guard is None or guard.orders.get(request.tag) != order_id:
            return
        if inst in self._unguarded or not self._running_portfolio().quantity(inst):
            return  # a fill changed the position (an OCA group's sibling): it is redone anyway
        key = (inst, request.tag)
        lost = self._lost[key] = self._lost.get(key, 0) + 1
        what = {OrderRejected: "rejected", OrderExpired: "expired"}.get(type(event), "cancelled")
        reason = getattr(event, "reason", "") or what
        if lost >= _PROTECT_ATTEMPTS:
            self.log.error(
                "the %s of %s was %s %d times in a row (last: %s): the position is left "
                "without it until it changes", request.tag, inst.id, what, lost, reason,
            )  # fmt: skip
            self.queue.append(
                ProtectionFailed(ts_ns=event.ts_ns, instrument=inst, tag=request.tag,
                                 reason=f"{what} {lost} times in a row; last: {reason}")
            )  # fmt: skip
            return
        self.log.warning("the %s of %s was %s (%s): placing it again", request.tag, inst.id,
                         what, reason)  # fmt: skip
        if type(event) is OrderRejected:
            self._retry.add(inst)  # at the next time stamp: the refusal may not last
        else:
            self._unguarded.add(inst)

    def _protect(self, inst: Instrument) -> None:
        """Place, resize, move or cancel the protective orders of ``inst``'s position."""
        spec = next((p for p in self.protection if p.covers(inst)), None)
        lane = self._lanes.get(inst)
        if spec is None or lane is None:
            return
        portfolio = self._running_portfolio()
        held = portfolio.quantity(inst)
        guard = self._guards.get(inst)
        live: dict[str, Order] = {}
        if guard is not None:
            for tag, order_id in guard.orders.items():
                order = self.orders.get(order_id)
                if order is not None and not order.status.is_terminal and self._ahead(order):
                    live[tag] = order  # (one its OCA group took all of is going away)
        side = _SELL if held > 0 else _BUY
        if guard is not None and (guard.turned or not held or guard.side is not side):
            for order in live.values():  # flat, or turned around (then or since): they go
                self._cancel(order)
            del self._guards[inst]
            guard, live = None, {}
        self._retry.discard(inst)
        if not held:
            return
        if guard is None:
            # A new group each time (a position may turn twice within one time stamp): the
            # old exits, whose cancellation may not be confirmed yet, must not share it.
            self._groups += 1
            guard = self._guards[inst] = _Guard(
                f"{GROUP_PREFIX}{inst.id}-{self.clock.now_ns()}-{self._groups}", side
            )
        price = lane.holding.price
        wanted = spec.orders(
            inst, held, float(lane.holding.avg), lane.history.last(),
            None if price != price else price,
        )  # fmt: skip
        for tag, request in wanted.items():
            current = live.get(tag)
            if request is None:
                if current is None:
                    self._retry.add(inst)  # no price for it yet (an ATR): next time stamp
                    if not spec.waits_for_bars(tag, lane.history.last()):
                        self._cannot_place(inst, tag, held, float(lane.holding.avg))
                elif self._ahead(current) > abs(held):
                    # No new price for it (an ATR distance past the price, say): it keeps
                    # its price, but never exceeds the position, which it would turn.
                    size = current.filled_quantity + abs(held)
                    self.log.info("%s %d resized to %s: the position in %s is %s",
                                  tag, current.order_id, size, inst.id, held)  # fmt: skip
                    self._resize(current, attrs.evolve(current.request, quantity=size))
                continue
            if current is None:
                if self._lost.get((inst, tag), 0) >= _PROTECT_ATTEMPTS:
                    continue  # said by ProtectionFailed; tried again once the position changes
                order = self._send(attrs.evolve(request, oca_group=guard.group), checked=False)
                guard.orders[tag] = order.order_id
                continue
            old = current.request
            total = current.filled_quantity + request.quantity
            expected = current.filled_quantity + self._ahead(current)
            if total != expected:  # the position changed: resize, and move to its price
                trailing = old.order_type is _TRAILING_STOP  # keeps the ground it made
                replacement = attrs.evolve(
                    old, quantity=total, limit_price=request.limit_price,
                    stop_price=old.stop_price if trailing else request.stop_price,
                )  # fmt: skip
                self._resize(current, replacement)

    def _heartbeat(self, now_ns: int) -> None:
        self._last_beat = time.monotonic()
        for observer in self.observers:
            observer.on_heartbeat(self, now_ns)

    def _depth_book(self, instrument: Instrument) -> DepthBook | None:
        """The book of ``instrument`` that one of the feeds keeps (Context.book), or None."""
        for feed in self.feeds:
            book = feed.depth_book(instrument)
            if book is not None:
                return book
        return None

    def _depth_received(self, event: DepthReceived) -> None:
        """Hand depth updates to the feed that sent them; the strategy hears of the result."""
        feeds = self._depth_feeds
        if not feeds:
            feeds.update((inst, feed) for feed in self.feeds for inst in feed.instruments)
        feed = feeds.get(event.instrument)
        if feed is None:
            self.log.warning("depth of %s, which no feed delivers, was dropped",
                             event.instrument.id)  # fmt: skip
            return
        outcome = feed.on_depth(event)
        if type(outcome) is DataProblem:
            self._dispatch(outcome)
        elif outcome is not None and self._want_book and isinstance(outcome, DepthBook):
            self.strategy.on_book(self._ctx, outcome)

    def _dispatch_observed(self, event: Event) -> None:
        Engine._dispatch(self, event)
        for observer in self.observers:
            observer.on_event(self, event)

    def _dispatch(self, event: Event) -> None:
        if isinstance(event, OrderEvent):
            if type(event) is OrderDenied:  # recorded when it was decided (see _refuse)
                known, problem = True, None
            else:
                known, problem = self.orders.apply(event)
            if not known and type(event) in _ASKED_OF_NO_ORDER:
                # a cancel or change of no order (Context.cancel, modify): there is no order
                # to show, so the strategy hears of it as any other event
                what = "cancel" if type(event) is OrderCancelRejected else "modify"
                self.log.warning("%s refused: %s", what, event.reason)  # type: ignore[attr-defined]
                self.strategy.on_event(self._ctx, event)
                return
            if problem is not None:
                self.log.warning(problem)
            if self._cancel_pending and event.order_id in self._cancel_pending:
                answered = self.orders.get(event.order_id)
                if type(event) is OrderCancelRejected or (
                    answered is None or answered.status.is_terminal
                ):
                    self._cancel_pending.discard(event.order_id)
            fill = event.fill if type(event) is OrderFilled else None
            if (
                self._oca_due
                and event.order_id in self._oca_due
                and (type(event) is OrderModified or type(event) in _ENDED_UNFILLED)
            ):
                self._oca_due.pop(event.order_id)  # the broker has said its size
            if self._asked and event.order_id in self._asked:
                self._answered(event)
            if fill is not None:
                self._book_fill(fill)
                self._oca_reduces(fill)
                self._position_moved(fill)
            elif type(event) is OrderModified and self._exits:
                resized = self.orders.get(event.order_id)
                if resized is not None and (resized.request.parent_id is not None):
                    self._exit_check.add(resized.instrument)  # an exit's new size must fit
            elif type(event) in _ENDED_UNFILLED:
                if self._guards:
                    self._protective_lost(event)
                else:
                    self._cancelling.discard(event.order_id)
            if not known:
                return
            if self._want_order:
                order = self.orders.get(event.order_id)
                if order is not None:
                    self.strategy.on_order(self._ctx, order, event)
            if fill is not None and self._want_fill:
                self.strategy.on_fill(self._ctx, fill)
            if self._order_monitors:
                self._watch_order(event)
        elif type(event) is BarReceived:
            self._arrived.append(event.bar)
            self._arrived_ns.append(self._arrival)
        elif type(event) is QuoteReceived:
            quote = event.quote
            self.broker.on_quote(quote)
            self._drain()  # what the broker did on it (a simulator's fills) comes first
            self.strategy.on_quote(self._ctx, quote)
        elif type(event) is TickReceived:
            self.strategy.on_tick(self._ctx, event.tick)
        elif type(event) is DepthReceived:
            self._depth_received(event)
        elif type(event) is GreeksReceived:
            greeks = event.greeks
            self._greeks[(greeks.instrument, greeks.source)] = greeks
            self.strategy.on_event(self._ctx, event)
        elif isinstance(event, TimerFired):
            if event.name == _CONTROL:
                self._run_commands()
            elif event.name != _WAKE:
                self.strategy.on_timer(self._ctx, event)
        elif isinstance(
            event,
            ConnectionChanged
            | DataProblem
            | Reconciled
            | TradingHalted
            | ProtectionFailed
            | RiskWarning,
        ):
            self.notices.append(event)
            self.log.info("%r", event)
            self.strategy.on_event(self._ctx, event)
        elif type(event) is OptionSettled or type(event) is FutureSettled:
            for settled in event.fills:  # booked as fills of no order
                self._book_fill(settled)
                self._position_moved(settled)
            self.notices.append(event)
            self.log.info("%s", event.reason)
            self.strategy.on_event(self._ctx, event)
        elif isinstance(event, CashAdjusted):
            portfolio = self._running_portfolio()
            currency = event.currency or self._currencies[0]
            if currency not in self._currencies:
                self._currencies.append(currency)
            portfolio.adjust_cash(event.amount, currency)
            self._cash_adjustments.append(event)
            self._fill_ts.append(event.ts_ns)  # a cash step; lane -1: no position changes
            self._fill_lane.append(-1)
            self._fill_cash.append(float(portfolio.balance(currency)))
            self._fill_exposure.append(0.0)
            self._fill_currency.append(self._currencies.index(currency))
        else:
            self.log.warning("event %r has no handler and was dropped", event)
