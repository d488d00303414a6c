"""Layer 2 ports: what a broker and a data feed must provide.

The engine talks to every broker and feed through these two abstract classes, so a backtest
(:class:`~ibkrfw.sim.SimBroker`, :class:`~ibkrfw.sim.DataFrameFeed`) and a live session differ
only in the objects handed to :class:`~ibkrfw.Engine`. Only model types cross them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

from ibkrfw.core.clock import Clock
from ibkrfw.core.history import BarArrays
from ibkrfw.model.book import DepthBook, DepthReceived
from ibkrfw.model.data import Bar, Quote
from ibkrfw.model.events import DataProblem, Event
from ibkrfw.model.fills import Fill
from ibkrfw.model.instruments import Instrument
from ibkrfw.model.orders import Order, OrderRequest
from ibkrfw.portfolio.fx import FxRates

if TYPE_CHECKING:
    from ibkrfw.risk.rule import RiskRule

__all__ = ["Broker", "DataFeed", "EventSink"]

EventSink = Callable[[Event], None]
"""A callable that takes an event; the engine gives one to its broker."""


class Broker(ABC):
    """Execute orders and report what happened as events.

    The engine calls :meth:`start` once before the first event, then :meth:`submit` and
    :meth:`cancel` from its own thread. The broker answers only through the ``emit`` callable it
    was given (from any thread): :class:`~ibkrfw.OrderAccepted`, :class:`~ibkrfw.OrderFilled`,
    :class:`~ibkrfw.OrderRejected`, :class:`~ibkrfw.OrderCancelled`...
    """

    @abstractmethod
    def start(self, clock: Clock, emit: EventSink) -> None:
        """Connect, and remember ``clock`` and ``emit`` for the run."""

    @abstractmethod
    def starting_cash(self) -> Decimal:
        """Return the account's cash at the start of the run, in its base currency."""

    @property
    def base_currency(self) -> str:
        """Return the account's currency (``"USD"`` unless the broker says otherwise)."""
        return "USD"

    @property
    def fx(self) -> FxRates | None:
        """Exchange rates into the base currency, for instruments priced in another one.

        None here: every instrument must then be priced in the base currency.
        """
        return None

    @abstractmethod
    def submit(self, order: Order) -> None:
        """Send ``order`` (already validated and approved by risk) to the market."""

    @abstractmethod
    def cancel(self, order: Order) -> None:
        """Ask to cancel ``order``; the answer comes as an event."""

    @abstractmethod
    def modify(self, order: Order, request: OrderRequest) -> None:
        """Ask to replace the working ``order``'s request (already checked by the engine).

        The answer is :class:`~ibkrfw.OrderModified` or :class:`~ibkrfw.OrderModifyRejected`.
        """

    def begin_group(self) -> None:  # noqa: B027 - optional hook, documented no-op
        """Orders submitted until :meth:`end_group` belong together (a bracket).

        A broker may hold them and send them as one (IB: all but the last with ``transmit``
        off, so the entry cannot fill before its exits are attached). Nothing here.
        """

    def end_group(self) -> None:  # noqa: B027 - optional hook, documented no-op
        """Send the orders held since :meth:`begin_group`. Nothing here."""

    def starting_positions(self) -> Sequence[Fill]:
        """Positions the account holds when the run starts, as fills at their average cost.

        The engine books them before the first event (their ``order_id`` is 0 and their
        ``fill_id`` says where they came from), after adding their cost back to
        :meth:`starting_cash`, so the run's cash still equals the account's. None here.
        """
        return ()

    def strategy_positions(self) -> Mapping[str, Mapping[str, tuple[Decimal, Decimal]]]:
        """What each strategy of an earlier run holds, by its own records; none here.

        When one engine runs several strategies, each starts with its share of
        :meth:`starting_positions`: by strategy name, then instrument id, the signed quantity
        and its average price (an IB broker adds up its journal's executions of each
        strategy's orders). What no strategy claims stays unallocated.
        """
        return {}

    def adopt_orders(self, create: Callable[..., Order]) -> None:  # noqa: B027
        """Hand working orders found at the broker when the run starts to the engine.

        For each one the broker calls ``create(request, filled=..., avg_price=...)``, which
        enters it into the run's order book as accepted (part-filled when ``filled``, a
        ``Decimal``, is above zero, at ``avg_price``; both keywords may be left out) and
        returns the :class:`~ibkrfw.Order`, and links it to its own record, so the strategy
        sees and may cancel it. Those earlier fills are not booked again: the positions they
        made come with :meth:`starting_positions`. Nothing here.
        """

    @property
    def account_rules(self) -> Sequence[RiskRule]:
        """The checks the account makes when an order is sent (buying power, short sales).

        The engine runs them after the run's own risk rules, and a refusal is an
        :class:`~ibkrfw.OrderDenied` naming the rule, so nothing is sent that the account
        would refuse. None here: a real broker (IB) checks on its side and answers with an
        :class:`~ibkrfw.OrderRejected`. The simulator gives its account's
        (:class:`~ibkrfw.risk.BuyingPower`). Read once, when the run starts.
        """
        return ()

    @property
    def needs_every_bar(self) -> bool:
        """Whether :meth:`on_bar` must see every bar, not only those while orders work.

        False here; a broker that marks its own books to market (to charge fees) says True.
        The engine reads it once, when the run starts.
        """
        return False

    def on_bar(self, bar: Bar) -> None:  # noqa: B027 - optional hook, documented no-op
        """See a bar before the strategy does (a simulator matches resting orders here).

        The engine calls it while at least one order of the run may still fill, and for every
        bar if :attr:`needs_every_bar` says so: bars matter to most brokers only for working
        orders, and skipping the call keeps it off the per-bar path the rest of the time.
        """

    def on_quote(self, quote: Quote) -> None:  # noqa: B027 - optional hook, documented no-op
        """See a quote before the strategy does."""

    def stop(self) -> None:  # noqa: B027 - optional hook, documented no-op
        """Disconnect at the end of the run."""


class DataFeed(ABC):
    """Deliver bars in time order.

    A historical feed yields all its bars from ``__iter__`` sorted by time, then ends; when
    it holds them as columns it should also offer :meth:`history_arrays`, which lets strategies
    read history without any copying per bar.
    """

    @property
    @abstractmethod
    def instruments(self) -> tuple[Instrument, ...]:
        """The instruments this feed delivers."""

    @abstractmethod
    def __iter__(self) -> Iterator[Bar]:
        """Yield bars in non-decreasing ``ts_ns`` order (ties in a stable order)."""

    def history_arrays(self, instrument: Instrument) -> BarArrays | None:
        """Return every bar of ``instrument`` as columns, or ``None`` if not held in advance.

        The rows must be the bars ``__iter__`` yields for ``instrument``, in the same order.
        """
        del instrument
        return None

    def __len__(self) -> int:
        """Return the number of bars the feed will yield, or 0 if unknown."""
        return 0

    @property
    def bar_ns(self) -> int | None:
        """How long one of its bars lasts, in nanoseconds; None if not known (None here).

        The engine tells the risk rules and monitors the run's bar size (the shortest of its
        feeds') when it starts, so that one that cannot work at it says so: a daily loss limit
        cannot stop trading during a day it sees as one bar. Read once, when the run starts.
        """
        return None

    @property
    def is_live(self) -> bool:
        """Whether bars arrive while the run goes on, as events, rather than from ``__iter__``.

        False here. A live feed puts :class:`~ibkrfw.BarReceived` events on the engine's queue
        through the ``emit`` callable :meth:`start` receives, and the run lasts until
        :meth:`Engine.stop <ibkrfw.Engine.stop>` is called. A run's feeds are all live or all
        historical.
        """
        return False

    def start(self, clock: Clock, emit: EventSink) -> None:  # noqa: B027 - optional hook
        """Connect and subscribe; called once, before the first event (nothing here)."""

    def recent_bars(self, instrument: Instrument, count: int) -> Sequence[Bar]:
        """Return up to ``count`` completed bars of ``instrument`` before now, oldest first.

        A live run loads them into the strategy's history before
        :meth:`Strategy.on_start <ibkrfw.Strategy.on_start>` (see
        :attr:`Strategy.warmup_bars <ibkrfw.Strategy.warmup_bars>`). None here.
        """
        del instrument, count
        return ()

    def depth_book(self, instrument: Instrument) -> DepthBook | None:
        """Return the feed's market depth book of ``instrument``, or None if it keeps none.

        What :meth:`Context.book <ibkrfw.Context.book>` answers. None here; a feed that
        keeps books (:class:`~ibkrfw.sim.DepthFeed`, :class:`~ibkrfw.ibkr.IBKRDataFeed`
        with ``depth``) returns the book itself, which only the feed changes.
        """
        del instrument
        return None

    def on_depth(self, event: DepthReceived) -> DepthBook | DataProblem | None:
        """Apply a :class:`~ibkrfw.DepthReceived` this feed emitted, on the engine's thread.

        The engine calls it for each such event, so the books change only on its thread.
        Return the book if it changed and is sound (the strategy's ``on_book`` follows), the
        problem if the updates spoilt it (the engine reports it as any other
        :class:`~ibkrfw.DataProblem`), or None if nothing is to be said. Nothing here.
        """
        del event
        return None

    def close(self) -> None:  # noqa: B027 - optional hook, documented no-op
        """Release resources (files, connections)."""
