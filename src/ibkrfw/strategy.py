"""Layer 2: the Strategy base class and the Context a strategy acts through."""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol, final

import attrs

from ibkrfw.core.clock import Clock
from ibkrfw.core.history import BarHistory, History
from ibkrfw.core.orderbook import OrderBook, StrategyOrders
from ibkrfw.core.timers import Timers
from ibkrfw.errors import ConfigError, DataError, OrderError
from ibkrfw.indicators.core import Indicator
from ibkrfw.model._decimal import DecimalLike, to_decimal
from ibkrfw.model._time import to_timestamp
from ibkrfw.model.book import DepthBook
from ibkrfw.model.data import Bar, OptionGreeks, Quote, Tick
from ibkrfw.model.events import Event, OrderEvent, TimerFired
from ibkrfw.model.fills import Fill, Position
from ibkrfw.model.instruments import Instrument
from ibkrfw.model.orders import (
    Order,
    OrderRequest,
    OrderType,
    Side,
    build_request,
    check_request,
)
from ibkrfw.portfolio.portfolio import PortfolioView
from ibkrfw.risk.protect import waits_to_exit

# Enum members bound once: on Python 3.11 each `Side.BUY` in a function is a slow lookup
# (EnumType.__getattr__ routes every class attribute through Python), on the order path.
_LIMIT = OrderType.LIMIT
_MARKET = OrderType.MARKET
_STOP = OrderType.STOP
_STOP_LIMIT = OrderType.STOP_LIMIT
_TRAILING_STOP = OrderType.TRAILING_STOP
_BUY = Side.BUY
_SELL = Side.SELL

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Context", "OrderRouter", "Strategy"]


class Strategy:
    """Base class of every trading strategy.

    Subclass it (as an attrs class, so parameters are typed, validated, shown in the repr and
    replaceable with :func:`attrs.evolve` for optimisation) and override the handlers you need.
    Every handler is a documented no-op here. Handlers run on the engine's single thread, one at
    a time, in backtests and live alike.

    Example:
        >>> import attrs
        >>> from ibkrfw import Strategy
        >>> @attrs.define
        ... class BuyAndHold(Strategy):
        ...     weight: float = 1.0
        ...
        ...     def on_bar(self, ctx, bar):
        ...         if ctx.position(bar.instrument).is_flat:
        ...             ctx.order_target_percent(bar.instrument, self.weight)
    """

    @property
    def name(self) -> str:
        """The strategy's name in logs and reports (its class name)."""
        return type(self).__name__

    def parameters(self) -> dict[str, object]:
        """Return the strategy's parameters (its attrs fields, public ones only)."""
        cls = type(self)
        if not attrs.has(cls):
            return {}
        return {
            f.name: getattr(self, f.name)
            for f in attrs.fields(cls)
            if not f.name.startswith("_") and f.init
        }

    def indicators(self) -> Mapping[str, Indicator]:
        """The indicators the strategy reads, by name (none here).

        The engine keeps a fresh copy of each (:meth:`Indicator.fresh
        <ibkrfw.indicators.Indicator.fresh>`) per instrument, updated with every bar before
        :meth:`on_bar` runs; read them with :meth:`Context.indicator`. Their warm-up sets
        :attr:`warmup_bars`. Called once, when the run starts.

        Example:
            >>> from ibkrfw.indicators import RSI, ZScore
            >>> class Reverting(Strategy):
            ...     def indicators(self):
            ...         return {"z": ZScore(20), "rsi": RSI(14)}
            ...     def on_bar(self, ctx, bar):
            ...         z = ctx.indicator(bar.instrument, "z")
            ...         if z.ready and z.value < -2:
            ...             ctx.order_target_percent(bar.instrument, 0.1)
            >>> Reverting().warmup_bars
            20
        """
        return {}

    def bar_sizes(self) -> Mapping[Instrument, Sequence[str]]:
        """The larger bar sizes the strategy reads, per instrument (none here).

        The engine builds each from the bars of the instrument's feed (the base bars), on the
        instrument's sessions (:func:`~ibkrfw.data.calendar_for`), cut exactly as
        :func:`~ibkrfw.data.resample_bars` cuts them offline, and hands each larger bar to
        :meth:`on_bar` once it is complete, never before: right after the base bar that
        completes it, at the same time stamp (:attr:`Context.bar_size` says which size a bar
        is). Read them with ``ctx.history(inst, bar_size="1h")`` and the declared indicators
        with ``ctx.indicator(inst, name, bar_size="1h")``. Orders fill on base bars only.
        Sizes are spelt as for the bar store: ``"5min"``, ``"1h"``, ``"1d"`` (one session),
        ``"1w"``. Called once, when the run starts. See :doc:`/concepts/timeframes`.

        Example:
            >>> from ibkrfw import Stock
            >>> class TwoSpeeds(Strategy):
            ...     def bar_sizes(self):
            ...         return {Stock("ACME"): ["1h", "1d"]}
            ...     def on_bar(self, ctx, bar):
            ...         if ctx.bar_size == "1h":
            ...             hours = ctx.history(bar.instrument, 20, bar_size="1h")
        """
        return {}

    @property
    def warmup_bars(self) -> int:
        """How many past bars per instrument the strategy needs before it can decide.

        A live run loads that many bars into the history (and the declared indicators) before
        :meth:`on_start`, so indicators are ready with the first live bar; a backtest starts
        with none, and indicators give no value until they are ready. By default the longest
        warm-up of :meth:`indicators` (0 without any).
        """
        return max((ind.warmup for ind in self.indicators().values()), default=0)

    def on_start(self, ctx: Context) -> None:
        """Prepare before the first event (create indicators, schedule timers)."""

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        """React to a completed bar of one instrument."""

    def on_slice(self, ctx: Context, bars: Sequence[Bar]) -> None:
        """React to every bar sharing one timestamp, after :meth:`on_bar` saw each of them.

        Use it for cross-sectional decisions and rebalancing across instruments. Live, it runs
        as soon as every instrument has given its bar for the time stamp; a bar that has not
        come ``slice_wait_s`` later (see :class:`~ibkrfw.Engine`) is missing from ``bars``.
        """

    def on_quote(self, ctx: Context, quote: Quote) -> None:
        """React to a top-of-book update (live feeds that stream quotes)."""

    def on_tick(self, ctx: Context, tick: Tick) -> None:
        """React to a trade on the tape (live feeds that stream quotes and trades)."""

    def on_book(self, ctx: Context, book: DepthBook) -> None:
        """React to a change of an instrument's market depth (live feeds with ``depth``).

        Called once per burst of IB's depth messages (what arrived together, usually one
        change of the book), after the burst is applied and the book checked: ``book`` is
        sound, never stale. It is the feed's book itself, changed by the next burst: read it
        here (or through :meth:`Context.book`) and copy what you keep
        (:meth:`~ibkrfw.DepthBook.snapshot`); never change it. See :doc:`/concepts/depth`.
        """

    def on_order(self, ctx: Context, order: Order, event: OrderEvent) -> None:
        """React to any change of one of your orders; ``order`` is its state after ``event``.

        Denials (:class:`~ibkrfw.OrderDenied`) and rejections (:class:`~ibkrfw.OrderRejected`)
        arrive here, with their reason.
        """

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        """React to an execution, after the portfolio has booked it."""

    def on_timer(self, ctx: Context, timer: TimerFired) -> None:
        """React to a timer set with :meth:`Context.schedule <ibkrfw.Context.schedule>`."""

    def on_event(self, ctx: Context, event: Event) -> None:
        """React to any other event: a live connection's change, a data feed's problem.

        :class:`~ibkrfw.ConnectionChanged` and :class:`~ibkrfw.DataProblem` arrive here, and
        the answer to a cancel or change of no order (an :class:`~ibkrfw.OrderCancelRejected`
        or :class:`~ibkrfw.OrderModifyRejected` whose ``order_id`` is -1, see
        :meth:`Context.cancel <ibkrfw.Context.cancel>`).
        """

    def on_stop(self, ctx: Context) -> None:
        """Clean up after the last event."""


class OrderRouter(Protocol):
    """What the context needs from the engine to act (the engine implements it)."""

    def submit(self, request: OrderRequest) -> Order:
        """Check and send ``request``; return the new order."""
        ...

    def cancel(self, order: Order) -> None:
        """Ask the broker to cancel ``order``."""
        ...

    def deny(self, request: OrderRequest, reason: str, rule: str) -> Order:
        """Record ``request`` as an order denied for ``reason`` without sending it."""
        ...

    def modify(self, order: Order, request: OrderRequest) -> None:
        """Check and send ``request`` as a replacement for ``order``."""
        ...

    def refuse_modify(self, order: Order | None, reason: str) -> None:
        """Answer a change of ``order`` (None: of no order) that cannot be made, for ``reason``."""
        ...

    def refuse_cancel(self, reason: str) -> None:
        """Answer a cancel of no order (an unknown id, or not an id) for ``reason``."""
        ...

    def group(self) -> AbstractContextManager[None]:
        """Submit the orders sent inside the ``with`` block together (a bracket)."""
        ...

    def submit_together(self, requests: Sequence[OrderRequest], what: str) -> list[Order]:
        """Check every request, then send them all or deny them all."""
        ...

    def bracket_problem(self, entry: OrderRequest) -> str | None:
        """Why a bracket entering with ``entry`` cannot be placed at all, or None."""
        ...


# Every field of a request but the three a helper takes as arguments, and the strategy's
# name, which is the engine's to set.
_ORDER_OPTIONS = frozenset(f.name for f in attrs.fields(OrderRequest)) - {
    "instrument",
    "side",
    "quantity",
    "strategy",
}


def _target_kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    allowed = _ORDER_OPTIONS
    unknown = set(kwargs) - allowed
    if unknown:
        raise ConfigError(f"unknown order options {sorted(unknown)}; allowed: {sorted(allowed)}")
    return dict(kwargs)


@final
class Context:
    """What a strategy sees and does: time, portfolio, history, orders, timers, log.

    The engine builds one per run and passes it to every handler. In a backtest ``now`` is the
    simulated time of the event being handled.
    """

    def __init__(
        self,
        clock: Clock,
        portfolio: PortfolioView,
        orders: OrderBook | StrategyOrders,
        histories: Mapping[Instrument, BarHistory],
        router: OrderRouter,
        timers: Timers,
        logger: logging.Logger,
        indicators: Mapping[Instrument, Mapping[str, Indicator]] | None = None,
        books: Callable[[Instrument], DepthBook | None] | None = None,
        greeks: Callable[[Instrument, str], OptionGreeks | None] | None = None,
        bar_sizes: Mapping[tuple[Instrument, str], tuple[BarHistory, Mapping[str, Indicator]]]
        | None = None,
        *,
        timer_prefix: str = "",
    ) -> None:
        self.bar_size: str | None = None
        """The size of the bar :meth:`Strategy.on_bar` is handling (``"1min"``, ``"1h"``...).

        The base bars' size (their feed's), or one of :meth:`Strategy.bar_sizes`. None when
        the strategy declares no larger size and the feeds' bars differ in size (or a feed
        does not say its size): then every bar is a base bar of its instrument."""
        self._sizes = bar_sizes or {}
        self._indicators = indicators or {}
        # The last instrument whose base indicators were read, and them: a strategy reads
        # several of one instrument in a row, and an Instrument's hash is a Python call.
        self._indicators_of: Instrument | None = None
        self._indicators_read: Mapping[str, Indicator] = {}
        self._timer_prefix = timer_prefix  # one strategy's timers among several
        self._books = books
        self._greeks = greeks
        self._clock = clock
        self._portfolio = portfolio
        self._orders = orders
        self._histories = histories
        self._router = router
        self._timers = timers
        self.log = logger
        """The run's logger; use it rather than ``print``."""

    # --- time and state -------------------------------------------------------------------
    @property
    def now_ns(self) -> int:
        """The current time, UTC epoch nanoseconds."""
        return self._clock.now_ns()

    @property
    def now(self) -> pd.Timestamp:
        """The current time as a UTC :class:`pandas.Timestamp`."""
        return to_timestamp(self._clock.now_ns())

    @property
    def portfolio(self) -> PortfolioView:
        """A read-only view of cash, positions and equity."""
        return self._portfolio

    @property
    def instruments(self) -> tuple[Instrument, ...]:
        """Every instrument the run's feeds deliver."""
        return tuple(self._histories)

    def position(self, instrument: Instrument) -> Position:
        """Return the position in ``instrument`` (flat if none)."""
        return self._portfolio.position(instrument)

    def price(self, instrument: Instrument) -> float:
        """Return the last price seen for ``instrument`` (NaN before any)."""
        return self._portfolio.price(instrument)

    def history(
        self, instrument: Instrument, n: int | None = None, bar_size: str | None = None
    ) -> History:
        """Return the last ``n`` bars of ``instrument`` (all so far if ``n`` is None).

        The columns are read-only numpy views, oldest first, ending with the current bar; fewer
        than ``n`` rows come back early in a run.

        Args:
            instrument: The instrument.
            n: How many bars, at most.
            bar_size: One of the sizes :meth:`Strategy.bar_sizes` declares for
                ``instrument`` (spelt as declared, or as the store spells it: ``"1h"``), or
                the base bars' own (:attr:`bar_size`); None for the base bars. A larger
                size's history ends with its last complete bar: the one in progress is never
                in it.

        Raises:
            ConfigError: if no feed of the run delivers ``instrument`` (or it is not an
                :class:`~ibkrfw.Instrument`), ``n`` is not None or an int >= 0, or
                ``bar_size`` is not a size of ``instrument`` in this run.
        """
        if n is not None and not (type(n) is int and n >= 0):  # the per-bar path: one test
            n = _bar_count(n)
        if bar_size is not None:
            return self._sized(instrument, bar_size)[0].last(n)
        try:
            return self._histories[instrument].last(n)
        except (KeyError, TypeError):  # TypeError: not hashable, so not an instrument
            raise self._no_feed(instrument) from None

    def book(self, instrument: Instrument) -> DepthBook | None:
        """Return ``instrument``'s market depth book, or None if no feed keeps one.

        Live, an :class:`~ibkrfw.ibkr.IBKRDataFeed` keeps the books of its ``depth``
        instruments; in a backtest, a :class:`~ibkrfw.sim.DepthFeed` keeps the books it
        replays. The book is the feed's own, current as of the event being handled: read
        it, never change it (copy with :meth:`~ibkrfw.DepthBook.snapshot`). A stale book
        (after bad data, until the fresh snapshot) answers None to every reading.

        Raises:
            ConfigError: if no feed of the run delivers ``instrument``.
        """
        if not isinstance(instrument, Instrument) or instrument not in self._histories:
            raise self._no_feed(instrument)
        return None if self._books is None else self._books(instrument)

    def greeks(self, option: Instrument, source: str = "model") -> OptionGreeks | None:
        """Return IB's latest option model for ``option``, or None before any came.

        Live, an :class:`~ibkrfw.ibkr.IBKRDataFeed` with ``quotes=True`` streams IB's option
        computations (``tickOptionComputation``) for its options: the implied volatility and
        greeks of the bid, the ask, the last trade and IB's model price. A backtest has none:
        compute them with :mod:`ibkrfw.options`.

        Args:
            option: The option.
            source: ``"model"`` (IB's own price, the default), ``"bid"``, ``"ask"`` or
                ``"last"``.

        Raises:
            ConfigError: if no feed of the run delivers ``option``, or ``source`` is not one
                of the four.
        """
        if not isinstance(option, Instrument) or option not in self._histories:
            raise self._no_feed(option)
        if source not in ("model", "bid", "ask", "last"):
            raise ConfigError(f"greeks(source={source!r}): give 'model', 'bid', 'ask' or 'last'")
        return None if self._greeks is None else self._greeks(option, source)

    def _no_feed(self, instrument: object) -> ConfigError:
        known = ", ".join(i.id for i in self._histories)
        shown = instrument.id if isinstance(instrument, Instrument) else repr(instrument)
        return ConfigError(f"no feed delivers {shown}; known: {known}")

    def _sized(
        self, instrument: Instrument, bar_size: str
    ) -> tuple[BarHistory, Mapping[str, Indicator]]:
        """The history and indicators of ``instrument``'s bars of ``bar_size``."""
        try:
            return self._sizes[instrument, bar_size]
        except (KeyError, TypeError):
            if not isinstance(instrument, Instrument) or instrument not in self._histories:
                raise self._no_feed(instrument) from None
            sizes = sorted(size for inst, size in self._sizes if inst == instrument)
            raise ConfigError(
                f"{instrument.id} has no bars of size {bar_size!r} in this run: its sizes are "
                f"{sizes or 'only those of its feed'}; declare larger ones in "
                "Strategy.bar_sizes()"
            ) from None

    def indicator(
        self, instrument: Instrument, name: str, bar_size: str | None = None
    ) -> Indicator:
        """Return ``instrument``'s indicator ``name``, updated with its bars so far.

        The names are those of :meth:`Strategy.indicators`. The engine keeps each of them for
        every bar size of :meth:`Strategy.bar_sizes` too, updated with the bars of that size:
        ``bar_size`` chooses (None: the base bars').

        Raises:
            ConfigError: if the strategy declares no such indicator, no feed delivers
                ``instrument``, or ``bar_size`` is not a size of ``instrument`` in this run.
        """
        if bar_size is None and instrument is self._indicators_of:
            try:
                return self._indicators_read[name]
            except KeyError:
                pass  # the full path below says why
        sized = None if bar_size is None else self._sized(instrument, bar_size)[1]
        try:
            named = self._indicators[instrument] if sized is None else sized
            found = named[name]
        except KeyError:
            if instrument not in self._histories:
                raise self._no_feed(instrument) from None
            declared = sorted(next(iter(self._indicators.values()), {}))
            raise ConfigError(
                f"no indicator {name!r}: the strategy declares {declared or 'none'} "
                "(Strategy.indicators)"
            ) from None
        if sized is None:
            self._indicators_of, self._indicators_read = instrument, named
        return found

    # --- orders ---------------------------------------------------------------------------
    def order(self, order_id: int) -> Order | None:
        """Return the current state of order ``order_id`` (``None`` if unknown)."""
        return self._orders.get(order_id)

    def open_orders(self, instrument: Instrument | None = None) -> list[Order]:
        """Return the orders that may still fill, optionally for one instrument."""
        return self._orders.active(instrument)

    def submit(self, request: OrderRequest) -> Order:
        """Validate ``request``, run the risk rules, and send it to the broker.

        Returns:
            The new order, ``PENDING_SUBMIT`` once sent or already ``DENIED`` if validation or
            a risk rule refused it. What happens next (accepted, filled...) and the denial
            itself arrive as events in :meth:`Strategy.on_order` once the current handler
            returns.

        Raises:
            OrderError: if ``request`` is not an :class:`~ibkrfw.OrderRequest`. (Building an
                ``OrderRequest`` yourself raises ``OrderError`` for a malformed value, as any
                constructor does; :meth:`buy`, :meth:`sell` and the other order methods take
                the values themselves and deny a malformed one instead.)
        """
        if not isinstance(request, OrderRequest):
            raise OrderError(
                f"submit takes an OrderRequest, got {type(request).__name__} {request!r}"
            )
        return self._router.submit(request)

    def submit_together(self, requests: Sequence[OrderRequest], what: str = "") -> list[Order]:
        """Send ``requests`` all or none: each is checked, and none is sent if one is refused.

        Every request is validated and checked by the risk rules (and halts) before any is
        sent; none sees the others as working orders. A rule that would shrink one refuses
        them all. Used by :class:`~ibkrfw.strategies.FutureRoller` to roll a position: the
        closing order in the expiring month and the opening one in the next.

        Args:
            requests: The orders, sent in this order. None may have a parent.
            what: What they do together, for the denial's reason (``"roll of ESZ6"``).

        Returns:
            Every order, in the order given. Either all are ``PENDING_SUBMIT``, or all are
            ``DENIED`` with an :class:`~ibkrfw.OrderDenied` each, whose reason names
            ``what``, the request that was refused and why.

        Raises:
            OrderError: if ``requests`` is not a sequence (one request, a string), is
                empty, or holds something other than :class:`~ibkrfw.OrderRequest`.
        """
        given: object = requests  # typed as a sequence; a strategy may pass anything
        if isinstance(given, OrderRequest | str) or not isinstance(given, Sequence):
            what_ = (
                "one OrderRequest"
                if isinstance(given, OrderRequest)
                else f"{type(given).__name__} {given!r}"
            )
            raise OrderError(
                f"submit_together takes a non-empty sequence of OrderRequest, got {what_}: "
                "put it in a list, e.g. ctx.submit_together([close, open_])"
            )
        requests = list(requests)
        if not requests or not all(isinstance(r, OrderRequest) for r in requests):
            raise OrderError(
                "submit_together takes a non-empty sequence of OrderRequest, got "
                f"{[type(r).__name__ for r in requests]}"
            )
        return self._router.submit_together(requests, what or "orders sent together")

    def buy(self, instrument: Instrument, quantity: DecimalLike, **kwargs: Any) -> Order:
        """Submit a BUY; a market order unless the options say otherwise.

        ``limit_price`` makes a limit order, ``stop_price`` a stop, both a stop-limit, and
        ``trail_amount`` or ``trail_percent`` a trailing stop. A trailing stop's initial stop
        is placed from the last price unless ``stop_price`` gives it; with no price seen yet
        the order is denied. ``tif="OPG"`` makes a market or limit order on the open, and
        ``order_type="MOC"`` (or ``"LOC"`` with a ``limit_price``) an order on the close.

        A malformed value (a NaN, infinite, zero or negative quantity or price, a quantity
        beyond 10**12, more decimals than the instrument's lot or tick size, a string or
        ``None`` where a number belongs, an unknown time in force) is never raised: the order
        comes back ``DENIED`` and an :class:`~ibkrfw.OrderDenied` event names the field and
        the value, in a backtest and live alike. NumPy scalars are numbers like any other.

        Raises:
            ConfigError: if an option's name is not one of :class:`~ibkrfw.OrderRequest`'s
                fields (a typo in the code, not a value of the moment).
            OrderError: if ``instrument`` is not an :class:`~ibkrfw.Instrument`.
        """
        return self._send(instrument, _BUY, quantity, kwargs)

    def sell(self, instrument: Instrument, quantity: DecimalLike, **kwargs: Any) -> Order:
        """Submit a SELL; options as for :meth:`buy`."""
        return self._send(instrument, _SELL, quantity, kwargs)

    def _send(
        self, instrument: Instrument, side: Side, quantity: DecimalLike, kwargs: Mapping[str, Any]
    ) -> Order:
        request, problem = _request(instrument, side, quantity, kwargs)
        if problem is not None:
            return self._router.deny(request, problem, "validation")
        if request.order_type is _TRAILING_STOP and request.stop_price is None:
            # The trail must be sound before a stop is placed from it (a trail of 1e308 would
            # put the stop beyond any Decimal): check the request as if its stop were set.
            problem = check_request(attrs.evolve(request, stop_price=instrument.tick_size))
            if problem is not None:
                return self._router.deny(request, problem, "validation")
            price = self._portfolio.price(instrument)
            if not price > 0:
                reason = f"cannot place the trailing stop of {instrument.id}: no price seen yet"
                return self._router.deny(request, reason, "sizing")
            stop = _initial_stop(
                instrument, side, price, request.trail_amount, request.trail_percent
            )
            request = attrs.evolve(request, stop_price=stop)
        return self._router.submit(request)

    def cancel(self, order: Order | int) -> None:
        """Ask to cancel ``order``; the outcome arrives as an event.

        Cancelling an order that is already finished is answered by
        :class:`~ibkrfw.OrderCancelRejected` in :meth:`Strategy.on_order`. So is a cancel of
        no order (an id no order has, ``None``, NaN, a string...), in
        :meth:`Strategy.on_event` since there is no order to show: its ``order_id`` is -1 and
        its reason names the value given. Neither raises, in a backtest and live alike; both
        are logged as warnings.
        """
        current, problem = self._known(order, "cancel")
        if current is None:
            self._router.refuse_cancel(problem)
            return
        self._router.cancel(current)

    def _known(self, order: object, action: str) -> tuple[Order | None, str]:
        """The current state of ``order`` (an :class:`~ibkrfw.Order` or its id), or why not."""
        order_id = order.order_id if isinstance(order, Order) else _as_id(order)
        if order_id is None:
            shown = repr(order) if len(repr(order)) < 40 else repr(order)[:37] + "..."
            return None, (
                f"{action} takes an Order or an order id (int), got {type(order).__name__} {shown}"
            )
        current = self._orders.get(order_id)
        if current is None:
            return None, self._orders.unknown(order_id)
        return current, ""

    def bracket(
        self,
        instrument: Instrument,
        side: Side | str,
        quantity: DecimalLike,
        *,
        take_profit: DecimalLike,
        stop_loss: DecimalLike,
        entry_limit: DecimalLike | None = None,
        tif: str = "GTC",
        tag: str = "",
    ) -> tuple[Order, Order, Order]:
        """Enter with a take-profit and a stop-loss attached, as IB's bracket orders.

        The entry is a market order, or a limit at ``entry_limit``. The two exits wait until it
        has filled, then work as one-cancels-all: a fill in one reduces the other by as much.
        If the entry ends part-filled, the exits are resized to what filled; if it ends
        unfilled, they are cancelled. Within one bar that touches both exits, the stop-loss
        fills first unless the broker was built with ``favourable_first=True``.

        All or nothing: an exit that would be refused (off the tick grid, say), or a
        :class:`~ibkrfw.risk.Protection` covering the instrument, refuses the three orders
        before anything is sent; the exits skip the risk rules and the account's check (the
        entry was checked, and they only close what it opens), so the entry never works
        without its stop-loss. Once the entry has filled, the exits follow the position: a
        closing order of yours joins the OCA group of the oldest bracket, and the exits are
        cut (newest first) or cancelled when other orders close the position.

        Returns:
            The entry, take-profit and stop-loss orders (all ``DENIED`` if refused: a
            malformed value, as in :meth:`buy`, or a take-profit that is not beyond the
            stop-loss on the profitable side, or an entry limit not between them).
        """
        request, problem = build_request(
            instrument,
            side,
            quantity,
            {
                "order_type": _MARKET if entry_limit is None else _LIMIT,
                "limit_price": entry_limit,
                "tif": tif,
                "tag": tag,
            },
        )
        exit_side = _SELL if request.side is _BUY else _BUY
        prices: dict[str, object] = {"take_profit": take_profit, "stop_loss": stop_loss}
        if problem is None:
            problem = check_request(request) or _bracket_problem(request, take_profit, stop_loss)
        if problem is None:
            prices = {name: to_decimal(value, name) for name, value in prices.items()}  # type: ignore[arg-type]

        def exits(parent_id: int) -> tuple[OrderRequest, OrderRequest]:
            common: dict[str, object] = {
                "tif": request.tif,
                "tag": request.tag,
                "parent_id": parent_id,
                "oca_group": f"bracket-{parent_id}",
            }
            legs = (
                (_LIMIT, "limit_price", prices["take_profit"]),
                (_STOP, "stop_price", prices["stop_loss"]),
            )
            profit, loss = (
                build_request(
                    instrument,
                    exit_side,
                    request.quantity,
                    {"order_type": kind, name: price, **common},
                )[0]
                for kind, name, price in legs
            )
            return profit, loss

        # All or nothing: what would refuse an exit refuses the whole bracket, before anything
        # is sent (an entry must never work without its stop-loss).
        problem = (
            problem
            or self._router.bracket_problem(request)
            or next(
                (
                    f"its {name}: {why}"
                    for name, exit_ in zip(("take-profit", "stop-loss"), exits(0), strict=True)
                    if (why := check_request(exit_)) is not None
                ),
                None,
            )
        )
        if problem is not None:
            entry = self._router.deny(request, f"bracket refused: {problem}", "validation")
            profit, loss = exits(entry.order_id)
            reason = f"its entry, order {entry.order_id}, was refused: {problem}"
            return (
                entry,
                self._router.deny(profit, reason, "validation"),
                self._router.deny(loss, reason, "validation"),
            )
        with self._router.group():  # at IB: nothing goes live until the stop-loss is attached
            entry = self._router.submit(request)
            profit, loss = exits(entry.order_id)
            return entry, self._router.submit(profit), self._router.submit(loss)

    def modify(
        self,
        order: Order | int,
        *,
        quantity: DecimalLike | None = None,
        limit_price: DecimalLike | None = None,
        stop_price: DecimalLike | None = None,
        tif: str | None = None,
    ) -> None:
        """Ask to change a working order's quantity, prices or time in force.

        As with IB, the instrument, side and type stay; the quantity must stay above what has
        filled. The outcome arrives as :class:`~ibkrfw.OrderModified` or
        :class:`~ibkrfw.OrderModifyRejected`.

        A malformed value (as in :meth:`buy`) is refused the same way, by an
        :class:`~ibkrfw.OrderModifyRejected` that names it, and the order works on unchanged;
        so is a call that changes nothing (every value ``None``). A change of no order (an id
        no order has, ``None``, NaN, a string...) is answered by an
        :class:`~ibkrfw.OrderModifyRejected` in :meth:`Strategy.on_event`, its ``order_id``
        -1, as for :meth:`cancel`. None of these raise; each is logged as a warning.
        """
        current, problem = self._known(order, "modify")
        if current is None:
            self._router.refuse_modify(None, problem)
            return
        changes: dict[str, Any] = {
            k: v
            for k, v in (
                ("quantity", quantity),
                ("limit_price", limit_price),
                ("stop_price", stop_price),
                ("tif", tif),
            )
            if v is not None
        }
        if not changes:
            reason = "modify needs at least one of quantity, limit_price, stop_price, tif: got none"
            self._router.refuse_modify(current, reason)
            return
        try:
            request = attrs.evolve(current.request, **changes)
        except OrderError as exc:
            self._router.refuse_modify(current, f"the change cannot be made: {exc}")
            return
        self._router.modify(current, request)

    def order_target_quantity(
        self, instrument: Instrument, target: DecimalLike, **kwargs: Any
    ) -> Order | None:
        """Trade toward holding ``target`` units (negative for short).

        Orders still working for the instrument count as if filled, so calling this on every bar
        does not pile up orders; of an OCA group's orders only the largest on each side counts.
        Exits that wait for a trigger do not count: the stop-loss and take-profit a
        :class:`~ibkrfw.risk.Protection` keeps, and a bracket's exits. The target is reached
        ahead of them, and they follow the position (resized, or cancelled once it is flat), so
        a target never doubles a position nor leaves an exit that would reopen it.

        Returns:
            The order sent, or ``None`` if nothing needed to change. A target that is not a
            finite number (NaN, infinite, a string, None...) or gives an order that cannot be
            sent (beyond 10**12 units, a malformed option) is not traded: the order comes back
            ``DENIED``, and an :class:`~ibkrfw.OrderDenied` event says why.
        """
        problem = _sizing_problem(target, "target")
        if problem is not None:
            return self._deny_sizing(instrument, kwargs, problem)
        return self._trade_to(instrument, to_decimal(target, "target"), kwargs)

    def order_target_value(
        self, instrument: Instrument, value: float, **kwargs: Any
    ) -> Order | None:
        """Trade toward a position worth ``value`` (base currency) at the last price.

        The quantity is rounded toward zero to whole lots. With no price seen yet the order
        cannot be sized and is denied (an :class:`~ibkrfw.OrderDenied` event says so), as is
        a ``value`` that is not a finite number (NaN, infinite, a string, None...). For an
        instrument priced in another currency, ``value`` is converted at the current exchange
        rate, and the order is denied if there is none yet. Pending orders count as in
        :meth:`order_target_quantity`.
        """
        problem = _sizing_problem(value, "value")
        if problem is not None:
            return self._deny_sizing(instrument, kwargs, problem)
        return self._trade_to_value(instrument, float(value), kwargs)

    def order_target_percent(
        self, instrument: Instrument, percent: float, **kwargs: Any
    ) -> Order | None:
        """Trade toward a position worth ``percent`` of equity (``1.0`` = 100 %, ``-0.5`` short).

        See :meth:`order_target_value` for rounding, pending orders and denials. How far
        the account lets you go is the broker's to say: the default simulated account is an IB
        margin account (see :class:`~ibkrfw.sim.SimBroker`), which denies an order whose
        margin the equity would not cover.
        """
        problem = _sizing_problem(percent, "percent")
        if problem is not None:
            return self._deny_sizing(instrument, kwargs, problem)
        equity = self._portfolio.equity
        if not math.isfinite(equity):
            reason = f"cannot size an order for {instrument.id}: the equity is {equity}"
            return self._deny_sizing(instrument, kwargs, reason)
        return self._trade_to_value(instrument, equity * float(percent), kwargs)

    def _deny_sizing(self, instrument: Instrument, kwargs: Mapping[str, Any], reason: str) -> Order:
        request, problem = _request(instrument, _BUY, 0, kwargs)
        if problem is not None:
            reason = f"{reason}; {problem}"
        return self._router.deny(request, reason, "sizing")

    def _trade_to_value(
        self, instrument: Instrument, value: float, kwargs: Mapping[str, Any]
    ) -> Order | None:
        if not math.isfinite(value):  # a huge share of equity overflows to infinity
            reason = (
                f"cannot size an order for {instrument.id}: the value {value} is not a finite "
                "number (the share of equity asked for is too large)"
            )
            return self._deny_sizing(instrument, kwargs, reason)
        price = self._portfolio.price(instrument)
        if not price > 0:
            reason = f"cannot size an order for {instrument.id}: no valid price seen yet"
            return self._deny_sizing(instrument, kwargs, reason)
        if instrument.currency != self._portfolio.base_currency:
            try:
                value /= self._portfolio.rate(instrument.currency)
            except DataError as exc:
                reason = f"cannot size an order for {instrument.id}: {exc}"
                return self._deny_sizing(instrument, kwargs, reason)
        return self._trade_to(instrument, instrument.quantity_for_value(value, price), kwargs)

    def _trade_to(
        self, instrument: Instrument, goal: Decimal, kwargs: Mapping[str, Any]
    ) -> Order | None:
        pending = self._orders.pending_quantity(instrument, waits_to_exit)
        delta = goal - self._portfolio.quantity(instrument) - pending
        if not delta:
            return None
        side = _BUY if delta > 0 else _SELL
        request, problem = _request(instrument, side, abs(delta), kwargs)
        if problem is not None:
            return self._router.deny(request, problem, "validation")
        return self._router.submit(request)

    # --- timers ---------------------------------------------------------------------------
    def schedule(self, name: str, at_ns: int | None = None, every_ns: int = 0) -> bool:
        """Fire :meth:`Strategy.on_timer` with ``name`` at ``at_ns``, then every ``every_ns``.

        ``at_ns`` defaults to now plus ``every_ns``. Scheduling a name again replaces it.

        A timer that cannot be set is not set, and a warning says why: neither ``at_ns`` nor
        a positive ``every_ns`` given, ``at_ns`` in the past, or either not an int of
        nanoseconds (a float such as ``ctx.now_ns + 1e9``, NaN, a string, a negative
        ``every_ns``). It does not raise, in a backtest and live alike: a timer is not an
        order, and there is no event to deny it with, so check the result.

        Returns:
            Whether the timer was set. When it was not, a timer already scheduled under
            ``name`` is left as it was.
        """
        problem = _timer_problem(name, at_ns, every_ns, self._clock.now_ns())
        if problem is not None:
            self.log.warning("timer %r not set: %s", name, problem)
            return False
        now = self._clock.now_ns()
        due = now + every_ns if at_ns is None else at_ns
        self._timers.add(f"{self._timer_prefix}{name}" if self._timer_prefix else name, due,
                         every_ns)  # fmt: skip
        return True

    def cancel_timer(self, name: str) -> bool:
        """Cancel timer ``name``; return whether it was scheduled."""
        prefix = self._timer_prefix
        return self._timers.cancel(f"{prefix}{name}" if prefix else name)


def _bar_count(n: object) -> int:
    """``n`` as a number of bars (an int >= 0, NumPy's too)."""
    count = _as_id(n)
    if count is None or count < 0:
        raise ConfigError(
            f"history takes n as a number of bars (an int >= 0) or None for all, got "
            f"{type(n).__name__} {n!r}"
        )
    return count


def _as_id(value: object) -> int | None:
    """``value`` as an order id: an int (NumPy's too), not a bool; None if it is not one."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        return None
    return int(value)


def _timer_problem(name: object, at_ns: object, every_ns: object, now: int) -> str | None:
    """Why a timer cannot be scheduled with these values, or None if it can."""
    if not isinstance(name, str):
        return f"its name must be a str, got {type(name).__name__} {name!r}"

    def ns_problem(what: str, value: object) -> str:
        return f"{what} must be an int of nanoseconds, got {type(value).__name__} {value!r}"

    if isinstance(every_ns, bool) or not isinstance(every_ns, int):
        return ns_problem("every_ns", every_ns)
    if at_ns is not None and (isinstance(at_ns, bool) or not isinstance(at_ns, int)):
        return ns_problem("at_ns", at_ns)
    if every_ns < 0:
        return f"every_ns must be 0 (once) or positive, got {every_ns}"
    if at_ns is None and every_ns == 0:
        return "schedule needs at_ns or a positive every_ns"
    if isinstance(at_ns, int) and at_ns < now:
        return f"it is due at {at_ns} ns, before now ({now} ns)"
    return None


def _sizing_problem(value: object, what: str) -> str | None:
    """Why ``value`` cannot size an order (not a number, NaN, infinite), or None if it can."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real | Decimal):
        shown = repr(value) if len(repr(value)) < 40 else repr(value)[:37] + "..."
        return f"the {what} must be a number, got {type(value).__name__} {shown}" + (
            f" (did you mean {value.strip()}?)"
            if isinstance(value, str) and _finite_text(value)
            else ""
        )
    try:
        finite = value.is_finite() if isinstance(value, Decimal) else math.isfinite(float(value))
    except OverflowError:  # an int beyond any float
        finite = False
    if not finite:
        shown = repr(value) if len(repr(value)) < 30 else f"{Decimal(str(value)):.3E}"
        return f"the {what} {shown} is not a finite number: nothing can be sized from it"
    return None


def _finite_text(value: str) -> bool:
    """Whether ``value`` holds a finite number (``"0.5"``: a hint is worth it)."""
    try:
        return math.isfinite(float(value))
    except ValueError:
        return False


def _bracket_problem(entry: OrderRequest, take_profit: object, stop_loss: object) -> str | None:
    """Why a bracket of ``entry`` with these exit prices is malformed, or None."""
    problems = []
    for name, value in (("take_profit", take_profit), ("stop_loss", stop_loss)):
        try:
            to_decimal(value, name)  # type: ignore[arg-type]
        except OrderError as exc:
            problems.append(str(exc))
    if problems:
        return "the order cannot be built: " + "; ".join(problems)
    tp = to_decimal(take_profit, "take_profit")  # type: ignore[arg-type]
    sl = to_decimal(stop_loss, "stop_loss")  # type: ignore[arg-type]
    sign, entry_price = entry.side.sign, entry.limit_price
    if (tp - sl) * sign <= 0:
        where = "above" if sign > 0 else "below"
        return (
            f"a {entry.side} bracket needs its take-profit {where} its stop-loss, "
            f"got take_profit={tp} and stop_loss={sl}"
        )
    if entry_price is not None and not (tp - entry_price) * sign > 0 > (sl - entry_price) * sign:
        return f"the entry limit {entry_price} must lie between stop_loss={sl} and take_profit={tp}"
    return None


_MARKET_REQUESTS: dict[tuple[int, bool, int], OrderRequest] = {}
_MARKET_REQUESTS_KEPT = 1024  # the market orders of a whole quantity last built, at most


def _request(
    instrument: Instrument, side: Side, quantity: object, kwargs: Mapping[str, Any]
) -> tuple[OrderRequest, str | None]:
    """The request of an order method, or a stand-in and why it cannot be built."""
    if not kwargs and isinstance(instrument, Instrument):  # else build_request says why not
        if type(quantity) is Decimal and quantity.is_finite():
            return OrderRequest._trusted_market(instrument, side, quantity), None
        if type(quantity) is int:  # exact as a Decimal (a bool is not an int here)
            # Requests are immutable: the same market order is built once and shared. Keyed by
            # the instrument object itself (the cache holds it, so its id stays its own): equal
            # instruments may differ where equality does not look (a future's last trading day).
            key = (id(instrument), side is _BUY, quantity)
            request = _MARKET_REQUESTS.get(key)
            if request is None or request.instrument is not instrument:
                if len(_MARKET_REQUESTS) >= _MARKET_REQUESTS_KEPT:
                    _MARKET_REQUESTS.clear()
                request = OrderRequest._trusted_market(instrument, side, Decimal(quantity))
                _MARKET_REQUESTS[key] = request
            return request, None
        return build_request(instrument, side, quantity)
    options = _target_kwargs(kwargs)
    if "order_type" not in options:
        has_limit = options.get("limit_price") is not None
        has_stop = options.get("stop_price") is not None
        if options.get("trail_amount") is not None or options.get("trail_percent") is not None:
            options["order_type"] = _TRAILING_STOP
        elif has_limit and has_stop:
            options["order_type"] = _STOP_LIMIT
        elif has_limit:
            options["order_type"] = _LIMIT
        elif has_stop:
            options["order_type"] = _STOP
    return build_request(instrument, side, quantity, options)


def _initial_stop(
    instrument: Instrument,
    side: Side,
    price: float,
    amount: DecimalLike | None,
    percent: DecimalLike | None,
) -> Decimal:
    """The first stop of a trailing order: the trail away from ``price``, against the side."""
    if amount is not None:
        gap = float(to_decimal(amount, "trail_amount"))
    elif percent is not None:
        gap = price * float(to_decimal(percent, "trail_percent")) / 100
    else:
        gap = 0.0
    return instrument.round_price(price - gap if side is _SELL else price + gap)
