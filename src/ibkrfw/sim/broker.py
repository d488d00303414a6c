"""SimBroker: fills orders against bars under the rules in the "fill model" concept page."""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Callable, Iterator
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from itertools import chain
from typing import Literal, final
from zoneinfo import ZoneInfo

import attrs
from typing_extensions import override

from ibkrfw.core.clock import Clock, LiveClock
from ibkrfw.data.sessions import SessionCalendar, calendar_for
from ibkrfw.errors import ConfigError, EngineError
from ibkrfw.model._decimal import DecimalLike, float_decimal, to_decimal
from ibkrfw.model.algos import Adaptive
from ibkrfw.model.book import DepthBook
from ibkrfw.model.data import Bar, Quote
from ibkrfw.model.events import (
    CashAdjusted,
    Event,
    FutureSettled,
    OptionSettled,
    OrderCancelled,
    OrderCancelRejected,
    OrderExpired,
    OrderModified,
    OrderModifyRejected,
    OrderRejected,
    accepted_of,
    filled_of,
)
from ibkrfw.model.fills import Fill, fill_of
from ibkrfw.model.instruments import AssetClass, Future, Instrument, Option
from ibkrfw.model.orders import Order, OrderRequest, OrderType, Side, TimeInForce
from ibkrfw.portfolio.fx import FxRates
from ibkrfw.portfolio.portfolio import Portfolio
from ibkrfw.ports import Broker, EventSink
from ibkrfw.risk.account import (
    IB_INITIAL_MARGIN,
    BuyingPower,
    MarginRates,
    MarginSpec,
    margin_rates,
)
from ibkrfw.risk.rule import RiskRule
from ibkrfw.sim._algos import Scheduled, at_time, slice_quantity, typical_price
from ibkrfw.sim._matching import LocalDays, TradingDays, Working, limit_fill, stop_fill
from ibkrfw.sim.commission import NOTHING_YET, CommissionModel, OrderSoFar, ZeroCommission
from ibkrfw.sim.depth import DepthSource
from ibkrfw.sim.slippage import SlippageModel

# Enum members bound once: on Python 3.11 each `Side.BUY` in a function is a slow lookup
# (EnumType.__getattr__ routes every class attribute through Python), on the order path.
_STOCK = AssetClass.STOCK
_LIMIT = OrderType.LIMIT
_LIMIT_ON_CLOSE = OrderType.LIMIT_ON_CLOSE
_MARKET = OrderType.MARKET
_MARKET_ON_CLOSE = OrderType.MARKET_ON_CLOSE
_STOP = OrderType.STOP
_STOP_LIMIT = OrderType.STOP_LIMIT
_TRAILING_STOP = OrderType.TRAILING_STOP
_BUY = Side.BUY
_SELL = Side.SELL
_DAY = TimeInForce.DAY
_GTC = TimeInForce.GTC
_IOC = TimeInForce.IOC
_OPG = TimeInForce.OPG

__all__ = ["SimBroker"]

log = logging.getLogger("ibkrfw.sim")


@functools.lru_cache(maxsize=256)
def _settles_ns(future: Future) -> int:
    """When a future held is settled: the start of the day after its last trading day."""
    day = future.last_trade_day() + dt.timedelta(days=1)
    start = dt.datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(future.timezone))
    return int(start.timestamp()) * 1_000_000_000


_ROUNDED_KEPT = 4096  # the rounded prices kept per instrument, at most
_ZERO = Decimal(0)
_CENT = Decimal("0.01")
_NS_PER_DAY = 86_400 * 10**9


class _NotStarted(Clock):
    """Stands in for the clock until the engine starts the broker."""

    @override
    def now_ns(self) -> int:
        raise EngineError("SimBroker.start() must be called before orders are sent")

    @override
    def advance_to(self, ts_ns: int) -> None:
        raise EngineError("SimBroker.start() must be called before orders are sent")


_NEVER = 2**63 - 1  # no expiry due


def _not_started(event: Event) -> None:
    raise EngineError("SimBroker.start() must be called before orders are sent")


@final
class SimBroker(Broker):
    """A simulated broker that fills orders against the bars the engine shows it.

    Fill rules (never at a price the strategy could not have traded at):

    * an order submitted while bar *t* is handled can fill from bar *t+1* on (in a live
      run, "sandbox" mode, from the first bar stamped after the latest bar seen when it was
      submitted: bars are stamped with their open time, which the wall clock has passed by
      the time a strategy answers the bar before);
    * MARKET fills at that bar's open;
    * LIMIT fills when touched, at the limit, or at the open if the bar gaps through it
      (a better price);
    * STOP triggers when touched and fills at the stop, or at the open if the bar gaps through
      it (a worse price);
    * STOP_LIMIT triggers like a stop, then works as a limit. Triggered at the open, the limit
      is checked from the open on; triggered inside the bar, it fills at the stop if the limit
      allows, otherwise it waits for later bars;
    * TRAILING_STOP works as a stop, checked against the stop as it stood before each bar; then
      the bar's high (for a sell) or low (for a buy) moves the stop toward the market;
    * the whole remaining quantity fills at once, unless ``volume_limit`` caps it (below);
    * an order with an IB algo (:class:`~ibkrfw.Vwap`, :class:`~ibkrfw.Twap`,
      :class:`~ibkrfw.ArrivalPrice`) fills in slices, one per bar of the algo's window, at
      the bar's typical price (a share of its volume, or an even share of the time left);
      :class:`~ibkrfw.Adaptive` fills as its plain order. See :doc:`/concepts/fill-model`;
    * time in force: DAY expires at the close of the trading session of the first bar it could
      fill on (the next session for a bar between sessions: after the close, before the open,
      on a weekend), IOC after that first bar, GTD at ``good_till_ns``; GTC never. On-open
      and on-close orders trade in that session's opening and closing auctions.

    With ``volume_limit``, orders take at most that share of each bar's volume, rounded down
    to whole lots and shared first come, first served by the orders matching on the bar. The
    rest stays working as a partial fill: a triggered stop fills it at later opens, a limit at
    its limit or better, an IOC order expires it. A bar of volume 0 fills nothing; a bar of
    unknown (NaN) volume cannot be capped, so it fills in full and a warning is logged once
    per instrument.

    Args:
        cash: Starting cash in the base currency.
        currency: The account's base currency.
        fx: Exchange rates into ``currency``, required when an instrument of the run is priced
            in another currency. Fills then move the balance of the instrument's currency (a
            negative balance is a loan in that currency, as at IB), and equity converts every
            balance and position at the rate in force.
        commission: The commission model (:class:`~ibkrfw.sim.ZeroCommission` by default).
        volume_limit: The largest share of a bar's volume the orders may take, in (0, 1];
            ``None`` for no limit. With ``fill_on="quotes"``, the share of the size shown on
            the side an order takes.
        slippage: A :class:`~ibkrfw.sim.SlippageModel`; none by default. A slipped price is
            rounded to the tick against the trader and kept within the bar's low-high range
            and a limit order's limit.
        account: ``"margin"`` (the default: an IB margin account) or ``"cash"``. A cash
            account refuses short sales and buys it cannot pay for, and writes only covered
            calls.
        borrow_rate: A yearly rate charged on the value of short positions, e.g. ``0.03``. It
            accrues per calendar day (actual/360, weekends included) at the previous close, and
            is charged at the first bar of each new local day as a :class:`~ibkrfw.CashAdjusted`
            event. None (the default) charges nothing.
        fill_timing: ``"next_bar"`` (the default): an order fills from the bar after the one it
            was decided on. ``"this_close"`` opts in to a same-bar convention: the order is first
            checked against the close of the bar being handled (a market order fills there, a
            limit if the close satisfies it, a stop if the close is through it), then works from
            the next bar as usual. The broker then asks to see every bar.
        favourable_first: Match limit orders before stops on each bar. By default stops (the
            adverse exits) come first, so a bar that touches both a bracket's stop-loss and
            its take-profit fills the stop-loss.
        initial_margin: A margin account's initial margin: the share of each position's
            market value that equity must cover, by asset class. By default IB's
            (:data:`~ibkrfw.risk.IB_INITIAL_MARGIN`: 50 % for stocks, Regulation T, so twice the
            equity may be held; 2.5 % for forex; 10 % for futures); one number for every
            class, or a mapping of the classes to change (``{"FUT": 0.06}``). ``None`` lifts
            the check: unlimited leverage, only when asked for.
        fill_on: ``"bars"`` (the default) matches orders on bars as above; ``"quotes"`` on the
            quotes the broker sees (:meth:`on_quote`, from a live feed's quote stream or the
            fake TWS's replayed quotes) instead, bars then filling nothing. Each quote counts
            as a bar at the price an order can take: the ask for buys, the bid for sells, with
            that side's size as its volume. So a market order fills at the first ask or bid
            after it was sent, a limit when that price reaches it, a stop when it is through
            the stop. A spread-based slippage model would count the spread twice: use none.
        depth: Recorded market depth to fill against (a :class:`~ibkrfw.sim.DepthFeed`, also
            given to the engine as a feed). Orders of its instruments then fill by walking
            the book as it stood at the bar's time stamp: a market order (or a triggered
            stop) takes the best levels first, one fill per price level, until it is filled
            or the book runs out, and the rest stays working for later time stamps (an IOC
            order's expires); a limit order takes only the levels at or better than its
            limit. What orders take is gone for the later orders: it is taken off the size
            the recording shows at that price for as long as the price stays in the book,
            and forgotten once the level leaves it. Bars of other instruments fill by the
            rules above. It cannot be combined with ``slippage`` or ``volume_limit`` (the
            book's prices and sizes are the impact), ``fill_on="quotes"`` or
            ``fill_timing="this_close"``. See :doc:`/concepts/depth`.

    The account is checked when an order is sent, as IB checks it: the broker hands the
    engine a :class:`~ibkrfw.risk.BuyingPower` rule (:attr:`account_rules`), which values the
    order at its limit or the last price, counts the orders still working, and denies what
    the account cannot pay for with an :class:`~ibkrfw.OrderDenied` naming the amounts. An
    order once accepted fills even if the price has moved since (IB does not take a fill
    back either); watch the maintenance margin with :class:`~ibkrfw.risk.MaintenanceMargin`.

    Raises:
        ConfigError: if ``cash`` is not a finite number, ``fx`` converts into another currency,
            ``volume_limit``, ``account`` or ``initial_margin`` is out of range, or ``depth``
            is not a depth source or comes with a setting it cannot be combined with.
    """

    def __init__(
        self,
        cash: DecimalLike = 100_000,
        *,
        currency: str = "USD",
        fx: FxRates | None = None,
        commission: CommissionModel | None = None,
        volume_limit: float | None = None,
        slippage: SlippageModel | None = None,
        account: Literal["margin", "cash"] = "margin",
        initial_margin: MarginSpec | None = IB_INITIAL_MARGIN,
        favourable_first: bool = False,
        fill_timing: Literal["next_bar", "this_close"] = "next_bar",
        borrow_rate: float | None = None,
        fill_on: Literal["bars", "quotes"] = "bars",
        calendar: SessionCalendar | Callable[[Instrument], SessionCalendar] | None = None,
        depth: DepthSource | None = None,
    ) -> None:
        try:
            self._cash = to_decimal(cash, "cash")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if fx is not None and fx.base_currency != currency:
            raise ConfigError(
                f"the exchange rates convert into {fx.base_currency}, the account is in {currency}"
            )
        self._currency = currency
        self._fx = fx
        if volume_limit is not None and not 0 < volume_limit <= 1:
            raise ConfigError(f"volume_limit must be in (0, 1], got {volume_limit!r}")
        if fill_timing not in ("next_bar", "this_close"):
            raise ConfigError(
                f"fill_timing must be 'next_bar' or 'this_close', got {fill_timing!r}"
            )
        self.fill_timing = fill_timing
        self._same_bar = fill_timing == "this_close"
        self._live = False  # set by start(): a live clock means sandbox mode
        self._latest_bar_ns: int | None = None
        if fill_on not in ("bars", "quotes"):
            raise ConfigError(f"fill_on must be 'bars' or 'quotes', got {fill_on!r}")
        if fill_on == "quotes" and self._same_bar:
            raise ConfigError("fill_timing='this_close' is about bars: use it with fill_on='bars'")
        self.fill_on = fill_on
        self._on_quotes = fill_on == "quotes"
        self._bars: dict[Instrument, Bar] = {}  # the latest bar of each instrument (this_close)
        if account not in ("margin", "cash"):
            raise ConfigError(f"account must be 'margin' or 'cash', got {account!r}")
        if account == "cash" and initial_margin not in (None, IB_INITIAL_MARGIN):
            raise ConfigError("a cash account borrows nothing: leave initial_margin unset")
        self.account = account
        self.initial_margin: MarginRates | None = (
            None if account == "cash" or initial_margin is None else margin_rates(initial_margin)
        )
        """The margin account's initial margin by asset class, or None without a check."""
        if borrow_rate is not None and not 0 <= borrow_rate < 1:
            raise ConfigError(
                f"borrow_rate must be a yearly fraction in [0, 1), got {borrow_rate!r}"
            )
        self.borrow_rate = borrow_rate
        self._borrow_until: dict[Instrument, int] = {}  # end of the last day charged
        # The broker's own books of the fills it made, kept only when something needs them.
        self._keep_ledger = borrow_rate is not None
        self._ledger = Portfolio(self._cash, currency)  # with the rates from start() on
        self.commission_model = commission or ZeroCommission()
        self.volume_limit = volume_limit
        self.slippage = slippage
        self._quotes: dict[Instrument, Quote] = {}
        self._capacity: dict[Instrument, tuple[int, Decimal]] = {}  # bar time, units left
        self._unknown_volume: set[Instrument] = set()
        # Scheduled algo orders (VWAP, TWAP, Arrival Price): the bar ts each last saw, and
        # the shortest gap between bars seen (TWAP's bar length)
        self._algo_seen: dict[int, tuple[int, int | None]] = {}
        self._working: dict[Instrument, dict[int, Working]] = {}
        self._held: dict[int, list[Working]] = {}  # children waiting for their parent's fill
        self._by_id: dict[int, Working] = {}  # every working or held order
        self._activated: list[Working] = []  # children set working during the current bar
        self.favourable_first = favourable_first
        self._n_working = 0
        self._fills = 0
        # a float price on its instrument's tick, per instrument object
        self._rounded: dict[Instrument, tuple[Instrument, dict[float, Decimal]]] = {}
        self._days = LocalDays()  # calendar days, for the borrow fee
        if isinstance(calendar, SessionCalendar):
            one = calendar
            self._sessions = TradingDays(lambda _: one)
        else:
            self._sessions = TradingDays(calendar or calendar_for)
        self._clock: Clock = _NotStarted()
        self._emit: EventSink = _not_started
        # Options held, settled at expiry; tracked once an option is traded
        self._options: dict[Option, Decimal] = {}
        self._next_expiry_ns = _NEVER
        self._last_close: dict[Instrument, float] | None = None  # None: nothing expiring traded
        # Futures held (with a last trading day), settled after it
        self._futures: dict[Future, Decimal] = {}
        if depth is not None:
            if not isinstance(depth, DepthSource):
                raise ConfigError(
                    f"depth must be a depth source such as a DepthFeed, got {depth!r}"
                )
            clash = [
                name
                for name, on in (
                    ("slippage", slippage is not None),
                    ("volume_limit", volume_limit is not None),
                    ("fill_on='quotes'", self._on_quotes),
                    ("fill_timing='this_close'", self._same_bar),
                )
                if on
            ]
            if clash:
                raise ConfigError(
                    f"depth fills walk the recorded book, whose prices and sizes are the "
                    f"impact: leave {' and '.join(clash)} unset"
                )
        self.depth = depth
        """The recorded depth orders fill against, or None."""
        # What orders took from the recorded book, by price: (instrument, buy) -> taken. It
        # stays taken while the recording shows that price, and is forgotten when it leaves.
        self._taken: dict[tuple[Instrument, bool], dict[float, float]] = {}

    @override
    def start(self, clock: Clock, emit: EventSink) -> None:
        self._clock = clock
        self._emit = emit
        self._live = isinstance(clock, LiveClock)
        self._latest_bar_ns = None
        self._ledger = Portfolio(self._cash, self._currency, self._fx, clock)
        for held in self.starting_positions():  # a subclass's: settled at expiry as any other
            if type(held.instrument) is Future and held.instrument.last_trade_date:
                if self._last_close is None:
                    self._last_close = {}
                self._hold_future(held.instrument, held.signed_quantity)

    @property
    @override
    def base_currency(self) -> str:
        return self._currency

    @property
    @override
    def fx(self) -> FxRates | None:
        return self._fx

    @override
    def starting_cash(self) -> Decimal:
        return self._cash

    @property
    @override
    def account_rules(self) -> tuple[RiskRule, ...]:
        """The account's check, :class:`~ibkrfw.risk.BuyingPower` (none with unlimited margin)."""
        if self.account == "margin" and self.initial_margin is None:
            return ()
        return (
            BuyingPower(
                self.account,
                initial_margin=self.initial_margin or IB_INITIAL_MARGIN,
                commission=self._estimate_commission,
            ),
        )

    def _estimate_commission(
        self, inst: Instrument, side: Side, quantity: Decimal, price: Decimal, ts_ns: int
    ) -> Decimal:
        return self.commission_model.commission(inst, side, quantity, price, ts_ns, NOTHING_YET)

    @override
    def submit(self, order: Order) -> None:
        now, emit = self._clock.now_ns(), self._emit
        option = order.instrument if type(order.instrument) is Option else None
        if option is not None:
            if self._last_close is None:
                self._last_close = {}  # from now on, bars' closes are kept for expiries
            if now >= option.expiry_ns:
                reason = (
                    f"the option {option.id} expired at 16:00 on {option.expiry_date} "
                    f"({option.timezone}): it can no longer be traded"
                )
                emit(OrderRejected(ts_ns=now, order_id=order.order_id, reason=reason))
                return
        future = order.instrument if type(order.instrument) is Future else None
        if future is not None and future.last_trade_date:
            if self._last_close is None:
                self._last_close = {}  # from now on, bars' closes are kept for expiries
            if now >= _settles_ns(future):
                reason = (
                    f"the future {future.id} stopped trading after its last trading day, "
                    f"{future.last_trade_date}: it can no longer be traded (roll into the next "
                    "month before it)"
                )
                emit(OrderRejected(ts_ns=now, order_id=order.order_id, reason=reason))
                return
            self._next_expiry_ns = min(self._next_expiry_ns, _settles_ns(future))
        w = Working(order)
        if self._live and self._latest_bar_ns is not None:
            w.eligible_ns = self._latest_bar_ns + 1  # the next bar after the one answered
        self._by_id[order.order_id] = w
        parent = order.request.parent_id
        held = False
        if parent is not None and parent in self._by_id:
            self._held.setdefault(parent, []).append(w)  # works once the parent has filled
            held = True
        else:
            self._work(w)
        if option is not None:
            self._next_expiry_ns = min(self._next_expiry_ns, option.expiry_ns)
        emit(accepted_of(now, order.order_id, f"SIM{order.order_id}"))
        if self._same_bar and not held:
            bar = self._bars.get(order.instrument)
            decided_on = self._latest_bar_ns if self._live else now  # the bar being answered
            if bar is not None and bar.ts_ns == decided_on:
                self._at_close(w, bar)

    @override
    def cancel(self, order: Order) -> None:
        now, emit = self._clock.now_ns(), self._emit
        w = self._by_id.get(order.order_id)
        if w is not None and self._remove(order.instrument, order.order_id):
            emit(OrderCancelled(ts_ns=now, order_id=order.order_id, reason="cancelled on request"))
            self._ended(w, now)
        else:
            emit(
                OrderCancelRejected(
                    ts_ns=now,
                    order_id=order.order_id,
                    reason=f"order {order.order_id} is not working ({order.status})",
                )
            )

    @override
    def modify(self, order: Order, request: OrderRequest) -> None:
        now, emit = self._clock.now_ns(), self._emit
        w = self._by_id.get(order.order_id)
        filled = w.so_far.quantity if w is not None else _ZERO
        if w is None or request.quantity <= filled:
            # The caller's view may be older than the broker's: IB's rule is checked here too.
            reason = (
                f"order {order.order_id} is not working ({order.status})"
                if w is None
                else f"a filled quantity cannot be modified away: {filled} filled, "
                f"{request.quantity} asked (cancel the order instead)"
            )
            emit(OrderModifyRejected(ts_ns=now, order_id=order.order_id, reason=reason))
            return
        replaced = Working(attrs.evolve(w.order, request=request))
        replaced.so_far, replaced.triggered = w.so_far, w.triggered
        replaced.auction_ns, replaced.close_bar = w.auction_ns, w.close_bar
        replaced.auction_stamp_ns = w.auction_stamp_ns
        replaced.expire_ns = w.expire_ns if request.tif is w.tif else replaced.expire_ns
        if (
            request.order_type is _TRAILING_STOP
            and request.stop_price == w.order.request.stop_price
        ):
            replaced.stop, replaced.best = w.stop, w.best  # the trail keeps the ground it made
        replaced.eligible_ns = w.eligible_ns
        self._by_id[order.order_id] = replaced
        working = self._working.get(order.instrument, {})
        if order.order_id in working:
            working[order.order_id] = replaced
        else:  # a child still waiting for its parent
            for children in self._held.values():
                if w in children:
                    children[children.index(w)] = replaced
        emit(OrderModified(ts_ns=now, order_id=order.order_id, request=request))

    def _work(self, w: Working) -> None:
        working = self._working.get(w.order.instrument)
        if working is None:
            working = self._working[w.order.instrument] = {}
        working[w.order.order_id] = w
        self._n_working += 1

    def _remove(self, instrument: Instrument, order_id: int) -> bool:
        """Take an order out of the book (working or held); tell whether it was there."""
        w = self._by_id.pop(order_id, None)
        if w is None:
            return False
        if self._algo_seen:
            self._algo_seen.pop(order_id, None)
        working = self._working.get(instrument)
        if working is not None and working.pop(order_id, None) is not None:
            self._n_working -= 1
        else:
            for children in self._held.values():
                if w in children:
                    children.remove(w)
        return True

    def _ended(
        self, w: Working, ts: int, at_open: bool = False, filled: Decimal | None = None
    ) -> None:
        """After ``w`` left the book: start, resize or cancel its children."""
        order = w.order
        if not self._held:
            return  # the common case: nothing depends on this order
        if filled is None:
            filled = w.so_far.quantity
        for child in self._held.pop(order.order_id, ()):
            if not filled:
                self._withdraw(child, ts, f"parent order {order.order_id} ended unfilled")
                continue
            if filled < order.request.quantity:  # the parent ended part-filled: so do the exits
                self._resize(child, filled, ts)
            # From the parent's fill bar if it filled at the open (the rest of the bar came
            # after), otherwise from the next bar.
            child.eligible_ns = ts if at_open else ts + 1
            self._work(child)
            self._activated.append(child)

    def _group(self, group: str) -> list[Working]:
        """The working or held members of an OCA group (a copy: callers change the book)."""
        return [o for o in self._by_id.values() if o.order.request.oca_group == group]

    def _withdraw(self, w: Working, ts: int, reason: str) -> None:
        """Cancel ``w`` on the broker's own account, then settle what depended on it."""
        self._remove(w.order.instrument, w.order.order_id)
        self._emit(OrderCancelled(ts_ns=ts, order_id=w.order.order_id, reason=reason))
        self._ended(w, ts)

    def _resize(self, w: Working, quantity: Decimal, ts: int) -> None:
        request = attrs.evolve(w.order.request, quantity=quantity)
        w.order = attrs.evolve(w.order, request=request)
        self._emit(OrderModified(ts_ns=ts, order_id=w.order.order_id, request=request))

    def _reduce_group(self, w: Working, quantity: Decimal, ts: int) -> None:
        """A fill in an OCA group reduces the other members by as much (IB's OCA type 3)."""
        group = w.order.request.oca_group
        for other in self._group(group):
            if other is w:
                continue
            left = other.order.request.quantity - quantity
            if left > other.so_far.quantity:
                self._resize(other, left, ts)
            else:
                reason = (
                    f"OCA group {group!r}: order {w.order.order_id} filled {quantity}, which "
                    "left nothing of this one"
                )
                self._withdraw(other, ts, reason)

    @property
    @override
    def needs_every_bar(self) -> bool:
        return (
            self.borrow_rate is not None
            or self._same_bar
            or self._live  # to know the latest bar when an order comes
            or self.depth is not None  # to forget what was taken at prices that left the book
        )

    @override
    def on_bar(self, bar: Bar) -> None:
        if self._taken:
            self._forget_taken(bar)
        if self._live and (self._latest_bar_ns is None or bar.ts_ns > self._latest_bar_ns):
            self._latest_bar_ns = bar.ts_ns
        if self._last_close is not None:
            if bar.ts_ns >= self._next_expiry_ns:
                self._settle_expired(bar.ts_ns)  # on the prices up to expiry: not this bar's
            self._last_close[bar.instrument] = bar.close
        if self.borrow_rate is not None:
            self._accrue(bar)
        if self._keep_ledger:
            self._ledger.mark(bar.instrument, bar.close)
        if self._same_bar:
            self._bars[bar.instrument] = bar
        if not self._n_working or self._on_quotes:
            return
        working = self._working.get(bar.instrument)
        if working:
            if len(working) == 1:
                for w in tuple(working.values()):
                    self._match(w, bar)
            else:
                by_id = self._by_id
                for w in sorted(working.values(), key=self._priority):
                    if w.order.order_id in by_id:  # an OCA fill earlier on this bar may end it
                        self._match(w, bar)
        # Children set working by a fill on this bar may match on it too, in the same order of
        # priority as the rest (a bracket's stop-loss before its take-profit, by default).
        for w in self._take_activated():
            if w.order.instrument == bar.instrument and w.order.order_id in self._by_id:
                self._match(w, bar)

    def _take_activated(self) -> Iterator[Working]:
        """The children set working since the last call, by match priority, until none is left.

        A child that fills may start children of its own: they come in a later round.
        """
        activated = self._activated
        while activated:
            batch = sorted(activated, key=self._priority)
            activated.clear()
            yield from batch

    def _accrue(self, bar: Bar) -> None:
        """Charge the borrow fee of a short position when a new local day starts."""
        inst = bar.instrument
        day_end = self._days.end_ns(bar.ts_ns, inst.timezone)
        charged_until = self._borrow_until.get(inst)
        if charged_until is not None and bar.ts_ns < charged_until:
            return
        self._borrow_until[inst] = day_end
        held = self._ledger.quantity(inst)
        if charged_until is None or held >= 0:
            return
        days = round((day_end - charged_until) / _NS_PER_DAY)  # 23- and 25-hour days round
        rate = self.borrow_rate or 0.0
        value = abs(float(held) * float(inst.multiplier)) * self._ledger.price(inst)
        fee = float_decimal(value * rate * days / 360).quantize(_CENT, ROUND_HALF_EVEN)
        if fee:
            currency = None if inst.currency == self._currency else inst.currency
            self._ledger.adjust_cash(-fee, currency)
            self._emit(
                CashAdjusted(
                    ts_ns=bar.ts_ns,
                    amount=-fee,
                    reason=f"borrow fee: {held} {inst.id} for {days} day(s) at {rate:.2%} a year",
                    currency=currency,
                )
            )

    def _at_close(self, w: Working, bar: Bar) -> None:
        """The same-bar convention: check ``w`` against the close of the bar it was decided on."""
        req = w.order.request
        inst = req.instrument
        close = bar.close
        kind = req.order_type
        if w.tif is _OPG:
            return  # waits for the next open
        if req.algo is not None and type(req.algo) is not Adaptive:
            return  # a scheduled algo works in slices from the next bar
        if kind is _MARKET or kind is _MARKET_ON_CLOSE:
            hit = True
        elif kind is _LIMIT or kind is _LIMIT_ON_CLOSE:
            hit = close <= w.limit if w.buy else close >= w.limit
        else:  # stops, stop-limits and trailing stops: triggered if the close is through them
            hit = close >= w.stop if w.buy else close <= w.stop
            if hit and kind is _STOP_LIMIT:
                w.triggered = True
                hit = close <= w.limit if w.buy else close >= w.limit
            elif hit:
                w.triggered = True
        if hit:
            # A Decimal price: the fill is at the close, so children start from the next bar.
            self._fill(w, inst.round_price(close), bar)

    def _priority(self, w: Working) -> int:
        """Match order within a bar: market first, then stops, then limits (or the reverse).

        Before all of them, on-close orders whose auction is over: they trade on the bar
        before this one, and take what is left of its volume.
        """
        kind = w.order.request.order_type
        if kind is _MARKET or w.triggered:
            return 0
        if w.close_bar is not None:
            return -1
        stop_like = kind is not _LIMIT
        return (2 if stop_like else 1) if self.favourable_first else (1 if stop_like else 2)

    def _match(self, w: Working, bar: Bar) -> None:
        order = w.order
        ts = bar.ts_ns
        if ts < w.eligible_ns:
            return
        if w.auction:
            self._auction(w, bar)
            return
        if w.expire_ns is None and w.tif is not _GTC:
            if w.tif is _DAY:
                w.expire_ns = self._sessions.close_ns(order.instrument, ts)
            else:  # IOC: this bar is its one chance
                w.expire_ns = ts + 1
        elif w.expire_ns is not None and ts >= w.expire_ns:
            self._expire(w, ts)
            return
        req = order.request
        algo = req.algo
        if algo is not None and type(algo) is not Adaptive:  # Adaptive: its plain order
            self._algo_slice(w, algo, bar)
            return
        kind = req.order_type
        price: float | Decimal | None = None
        if kind is _MARKET:
            price = bar.open
        elif kind is _LIMIT:
            price = limit_fill(w.buy, w.limit, req.limit_price, bar)
        elif w.triggered and kind is not _STOP_LIMIT:
            price = bar.open  # the rest of a stop that already triggered
        elif kind is _STOP:
            price = stop_fill(w.buy, w.stop, req.stop_price, bar)
        elif kind is _STOP_LIMIT:
            price = self._stop_limit(w, bar)
        elif kind is _TRAILING_STOP:
            price = stop_fill(w.buy, w.stop, order.instrument.round_price(w.stop), bar)
            if price is None:
                w.follow(bar)
        depth = self.depth
        book = depth.book_at(order.instrument, ts) if depth is not None else None
        # With a book, a limit (or a triggered stop-limit) walks it whatever the bar's mid
        # says: the levels at or better than the limit decide.
        limited = kind is _LIMIT or (kind is _STOP_LIMIT and w.triggered)
        if price is not None or (book is not None and limited):
            if kind is _STOP or kind is _TRAILING_STOP:
                w.triggered = True
            if book is not None:
                self._walk(w, bar, book)
            elif price is not None:
                self._fill(w, price, bar)
        if w.tif is _IOC and w.order.order_id in self._working[order.instrument]:
            self._expire(w, ts)  # IOC: whatever did not fill on its one bar

    def _algo_slice(self, w: Working, algo: Scheduled, bar: Bar) -> None:
        """Fill one slice of a VWAP, TWAP or Arrival Price order on ``bar`` (see the docs)."""
        order = w.order
        inst = order.instrument
        ts = bar.ts_ns
        order_id = order.order_id
        last, step = self._algo_seen.get(order_id, (order.created_ns, None))
        if ts > last:
            step = ts - last if step is None else min(step, ts - last)
        self._algo_seen[order_id] = (ts, step)
        start = at_time(algo.start_time, ts)
        end = at_time(algo.end_time, ts)
        if end is None:
            end = self._sessions.close_ns(inst, ts)
        if ts >= end and not algo.allow_past_end_time:
            self._expire(w, ts)  # what did not fill by end_time
            return
        if start is not None and ts < start:
            return
        remaining = order.request.quantity - w.so_far.quantity
        quantity = slice_quantity(algo, inst, bar, remaining, step, end)
        if quantity <= 0:
            return
        price = typical_price(bar)
        if order.request.limit_price is not None and (
            price > w.limit if w.buy else price < w.limit
        ):
            return  # a limit order's slice waits for a bar whose price it allows
        self._fill(w, inst.round_price(price), bar, quantity)
        if w.tif is _IOC and order_id in self._by_id:
            self._expire(w, ts)

    def _auction(self, w: Working, bar: Bar) -> None:
        """Match an on-open or on-close order: it trades in one auction, and the rest expires.

        On open: at the open of the first bar at or after the open of the first session after the
        order was sent (or of a daily bar of a later day). On close: at the close of the last
        bar before the close of the session of the first bar it could fill on, known to be the
        last when a bar at or after that close arrives; the fill and the expiry are stamped
        with its time.
        """
        ts = bar.ts_ns
        inst = w.order.instrument
        if w.tif is _OPG:
            if w.auction_ns is None:
                w.auction_ns, w.auction_stamp_ns = self._sessions.opening(inst, w.eligible_ns - 1)
            if ts < w.auction_ns and not (
                ts >= w.auction_stamp_ns and self._sessions.is_daily_stamp(inst, ts)
            ):
                return
            open_ = bar.open
            limited = w.order.request.order_type is _LIMIT
            if not limited or (open_ <= w.limit if w.buy else open_ >= w.limit):
                self._fill(w, open_, bar)
            if w.order.order_id in self._by_id:
                self._expire(w, ts)
            return
        pending = w.close_bar
        if pending is None or ts < (w.auction_ns or 0):
            if pending is None:
                w.auction_ns = self._sessions.close_ns(inst, ts)
            w.close_bar = bar  # the latest bar of the day, so far
            return
        close = pending.close
        limited = w.order.request.order_type is _LIMIT_ON_CLOSE
        if not limited or (close <= w.limit if w.buy else close >= w.limit):
            self._fill(w, inst.round_price(close), pending)
        if w.order.order_id in self._by_id:
            self._expire(w, pending.ts_ns)

    @staticmethod
    def _stop_limit(w: Working, bar: Bar) -> float | Decimal | None:
        req = w.order.request
        if w.triggered:
            return limit_fill(w.buy, w.limit, req.limit_price, bar)
        gap = bar.open >= w.stop if w.buy else bar.open <= w.stop
        touched = gap or (bar.high >= w.stop if w.buy else bar.low <= w.stop)
        if not touched:
            return None
        w.triggered = True
        if gap:  # triggered at the open: a limit from there on, this bar included
            return limit_fill(w.buy, w.limit, req.limit_price, bar)
        # Triggered inside the bar at the stop: it fills there if the limit allows that price.
        # A limit on the far side of the stop waits for later bars, as the order of the bar's
        # high and low is unknown.
        if (w.stop <= w.limit) if w.buy else (w.stop >= w.limit):
            return req.stop_price
        return None

    # --- option expiry ------------------------------------------------------------------------
    def _hold_option(self, option: Option, change: Decimal) -> None:
        held = self._options.get(option, _ZERO) + change
        if held:
            self._options[option] = held
        else:
            self._options.pop(option, None)
        self._next_expiry_ns = self._next_expiry()

    def _hold_future(self, future: Future, change: Decimal) -> None:
        held = self._futures.get(future, _ZERO) + change
        if held:
            self._futures[future] = held
        else:
            self._futures.pop(future, None)
        self._next_expiry_ns = self._next_expiry()

    def _next_expiry(self) -> int:
        options = (o.expiry_ns for o in self._options_in_play())
        futures = (_settles_ns(f) for f in self._futures_in_play())
        return min(chain(options, futures), default=_NEVER)

    def _futures_in_play(self) -> set[Future]:
        """The futures with a last trading day held, or with an order working."""
        orders = (w.order.instrument for w in self._by_id.values())
        return set(self._futures) | {
            i for i in orders if type(i) is Future and bool(i.last_trade_date)
        }

    def _settle_futures(self, now: int) -> None:
        """Close every future held past its last trading day at the last price seen for it."""
        for future in [f for f in self._futures_in_play() if _settles_ns(f) <= now]:
            for w in [w for w in self._by_id.values() if w.order.instrument == future]:
                self._withdraw(w, now, f"the future {future.id} passed its last trading day")
            held = self._futures.get(future)
            if held is None:
                continue
            last = (self._last_close or {}).get(future, float("nan"))
            price = future.round_price(last) if last == last else _ZERO
            self._fills += 1
            fill = Fill(
                -1, future, _SELL if held > 0 else _BUY, abs(held), price, _ZERO, now,
                f"SIM-EXPIRY-{self._fills}",
            )  # fmt: skip
            if self._keep_ledger:
                self._ledger.apply_fill(fill)
            self._hold_future(future, -held)
            reason = (
                f"the future {future.id} was still held ({held}) after its last trading day, "
                f"{future.last_trade_date}: settled in cash at its last price {price}"
            )
            log.warning("%s", reason)
            self._emit(
                FutureSettled(
                    ts_ns=now, future=future, quantity=held, price=float(price), fills=(fill,),
                    reason=reason,
                )
            )  # fmt: skip
        self._next_expiry_ns = self._next_expiry()

    def _options_in_play(self) -> set[Option]:
        """The options held, or with an order working or waiting for its parent."""
        orders = (w.order.instrument for w in self._by_id.values())
        return set(self._options) | {i for i in orders if type(i) is Option}

    def _settle_expired(self, now: int) -> None:
        """Settle every option held whose expiry has passed, as IB does after the close.

        Orders on an expired option are cancelled, held or not: none fills after expiry.
        Futures past their last trading day are settled too (``_settle_futures``).
        """
        if self._futures or any(type(w.order.instrument) is Future for w in self._by_id.values()):
            self._settle_futures(now)
        for option in [o for o in self._options_in_play() if o.expiry_ns <= now]:
            for w in [w for w in self._by_id.values() if w.order.instrument == option]:
                self._withdraw(w, now, f"the option {option.id} expired")
            if option not in self._options:
                continue
            event = self._settlement(option, self._options[option], now)
            for fill in event.fills:
                if self._keep_ledger:
                    self._ledger.apply_fill(fill)
            self._hold_option(option, -self._options[option])
            self._emit(event)
        self._next_expiry_ns = self._next_expiry()

    def _settlement(self, option: Option, held: Decimal, now: int) -> OptionSettled:
        """What expiry does to ``held`` contracts of ``option``, on the last prices seen."""
        closes = self._last_close or {}
        underlying = next(
            (
                inst
                for inst in closes
                if inst.symbol == option.symbol
                and inst.currency == option.currency
                and inst.asset_class is _STOCK
            ),
            None,
        )
        if underlying is not None:
            price = closes[underlying]
            intrinsic = option.intrinsic_value(price)
            on = f"the underlying's last price {price:g}"
        else:  # the option's own last price stands in for its intrinsic value
            price = closes.get(option, 0.0)
            intrinsic = max(price, 0.0)
            on = f"the option's own last price {price:g} (no price of {option.symbol} was seen)"
        itm = intrinsic >= 0.01 - 1e-9
        action = "expired" if not itm else ("exercised" if held > 0 else "assigned")
        contracts = abs(held)
        close_price = (
            option.round_price(intrinsic) if itm and option.settlement == "cash" else _ZERO
        )
        self._fills += 1
        fills = [
            Fill(
                -1, option, _SELL if held > 0 else _BUY, contracts, close_price, _ZERO,
                now, f"SIM-EXPIRY-{self._fills}",
            )
        ]  # fmt: skip
        if itm and option.settlement == "physical":
            deliver = underlying or option.underlying()
            buys = option.is_call is (held > 0)  # a long call or a short put takes delivery
            self._fills += 1
            fills.append(
                Fill(
                    -1, deliver, _BUY if buys else _SELL, contracts * option.multiplier,
                    deliver.round_price(option.strike), _ZERO, now, f"SIM-EXPIRY-{self._fills}",
                )
            )  # fmt: skip
        what = {
            "expired": "expired worthless",
            "exercised": "was exercised",
            "assigned": "was assigned",
        }[action]
        reason = (
            f"{held} {option.id} {what} at expiry, {intrinsic:.2f} in the money on {on}"
            if itm
            else f"{held} {option.id} {what}, out of the money on {on}"
        )
        return OptionSettled(
            ts_ns=now, option=option, action=action, quantity=held, underlying_price=price,
            fills=tuple(fills), reason=reason,
        )  # fmt: skip

    def _expire(self, w: Working, ts: int) -> None:
        self._remove(w.order.instrument, w.order.order_id)
        self._emit(OrderExpired(ts_ns=ts, order_id=w.order.order_id))
        self._ended(w, ts)

    @override
    def on_quote(self, quote: Quote) -> None:
        """Remember the latest quote (slippage models use it), and match orders on it.

        Orders are matched only with ``fill_on="quotes"``: buys on the ask, then sells on the
        bid, each side as a bar of one price with the side's size as its volume.
        """
        inst = quote.instrument
        self._quotes[inst] = quote
        if not self._on_quotes or not self._n_working:
            return
        working = self._working.get(inst)
        if not working:
            return
        ts = quote.ts_ns
        ask = Bar(inst, ts, quote.ask, quote.ask, quote.ask, quote.ask, quote.ask_size)
        bid = Bar(inst, ts, quote.bid, quote.bid, quote.bid, quote.bid, quote.bid_size)
        for side_bar, buys in ((ask, True), (bid, False)):
            if not side_bar.open > 0:  # an empty side (IB sends -1 then): nothing to take
                continue
            self._capacity.pop(inst, None)  # each side has its own size
            for w in sorted(working.values(), key=self._priority):
                if w.buy is buys and w.order.order_id in self._by_id:
                    self._match(w, side_bar)
        for w in self._take_activated():
            if w.order.instrument == inst and w.order.order_id in self._by_id:
                self._match(w, ask if w.buy else bid)

    def _slip(
        self, model: SlippageModel, w: Working, base: Decimal, quantity: Decimal, bar: Bar
    ) -> Decimal:
        req = w.order.request
        inst = req.instrument
        raw = model.adjust(req.side, float(base), float(quantity), bar, self._quotes.get(inst))
        if w.buy:  # round against the trader, stay within what traded and what was promised
            price = min(
                inst.round_price(raw, ROUND_CEILING), inst.round_price(bar.high, ROUND_FLOOR)
            )
            if req.limit_price is not None:
                price = min(price, req.limit_price)
            return max(price, base)
        price = max(inst.round_price(raw, ROUND_FLOOR), inst.round_price(bar.low, ROUND_CEILING))
        if req.limit_price is not None:
            price = max(price, req.limit_price)
        return min(price, base)

    def _room(self, bar: Bar) -> Decimal | None:
        """Units still available on ``bar`` under the volume limit (None: no limit applies)."""
        if self.volume_limit is None:
            return None
        inst = bar.instrument
        ts, left = self._capacity.get(inst, (-1, _ZERO))
        if ts == bar.ts_ns:
            return left
        if bar.volume != bar.volume:  # NaN: the volume is unknown, so no cap can apply
            if inst not in self._unknown_volume:
                self._unknown_volume.add(inst)
                log.warning(
                    "%s has bars without volume: volume_limit cannot apply to them, orders fill "
                    "in full",
                    inst.id,
                )
            return None
        left = inst.round_quantity(bar.volume * self.volume_limit)
        self._capacity[inst] = (bar.ts_ns, left)
        return left

    def _walk(self, w: Working, bar: Bar, book: DepthBook) -> None:
        """Fill ``w`` level by level from ``book``, what earlier orders took being gone."""
        req = w.order.request
        inst = req.instrument
        left = req.quantity - w.so_far.quantity
        if left <= 0:
            return
        key = (inst, w.buy)
        taken = self._taken.get(key)
        if taken is None:
            taken = self._taken[key] = {}
        limit = w.limit if req.limit_price is not None else None
        walk = book.walk(req.side, float(left), limit, taken)
        if walk is None:
            return
        order_id = w.order.order_id
        for price, size in walk.takes:
            quantity = min(inst.round_quantity(size), left)
            if quantity <= 0:
                continue
            taken[price] = taken.get(price, 0.0) + float(quantity)
            self._fill(w, inst.round_price(price), bar, quantity)
            left -= quantity
            if left <= 0 or order_id not in self._by_id:
                return

    def _forget_taken(self, bar: Bar) -> None:
        """Forget what was taken at the prices that left ``bar``'s book (a level gone)."""
        depth = self.depth
        inst = bar.instrument
        book = depth.book_at(inst, bar.ts_ns) if depth is not None else None
        if book is None:
            return
        bids, asks = book.levels()
        for buy, side in ((True, asks), (False, bids)):
            taken = self._taken.get((inst, buy))
            if not taken:
                continue
            shown = {level.price for level in side}
            for price in [p for p in taken if p not in shown]:
                del taken[price]
            if not taken:
                del self._taken[(inst, buy)]

    def _fill(
        self, w: Working, price: float | Decimal, bar: Bar, cap: Decimal | None = None
    ) -> None:
        order = w.order
        req = order.request
        inst = req.instrument
        ts = bar.ts_ns
        before = w.so_far
        before_q = before.quantity
        # the request's own Decimal when nothing has filled yet: one object less per order kept
        quantity = req.quantity - before_q if before_q else req.quantity
        if cap is not None and cap < quantity:
            quantity = cap  # one level of a walked book
        room = self._room(bar) if self.volume_limit is not None else None
        if room is not None:
            if room < quantity:
                quantity = room
            if quantity <= 0:
                return  # nothing left to trade on this bar
            self._capacity[inst] = (ts, room - quantity)
        if isinstance(price, Decimal):
            fill_price = price
        else:  # bars repeat their prices: each instrument's rounded opens are kept
            # (for this very object: equal instruments may write their ticks apart, 0.01, 0.010)
            kept = self._rounded.get(inst)
            if kept is None or kept[0] is not inst or len(kept[1]) >= _ROUNDED_KEPT:
                kept = self._rounded[inst] = (inst, {})
            rounded = kept[1]
            cached = rounded.get(price)
            if cached is None:
                cached = rounded[price] = inst.round_price(price)
            fill_price = cached
        slippage = self.slippage
        slipped = _ZERO
        if slippage is not None:
            base = fill_price
            fill_price = self._slip(slippage, w, fill_price, quantity, bar)
            slipped = abs(fill_price - base) * quantity * inst.multiplier
        side = req.side
        order_id = order.order_id
        fee = self.commission_model.commission(inst, side, quantity, fill_price, ts, before)
        self._fills = n = self._fills + 1
        fill = fill_of(
            order_id, inst, side, quantity, fill_price, fee, ts, f"SIM-{order_id}-{n}", slipped
        )
        if self._keep_ledger:
            self._ledger.apply_fill(fill)
        if type(inst) is Option:
            self._hold_option(inst, fill.signed_quantity)
        elif type(inst) is Future and inst.last_trade_date:
            self._hold_future(inst, fill.signed_quantity)
        filled = before_q + quantity if before_q else quantity
        if filled >= req.quantity:
            self._remove(inst, order_id)
            self._emit(filled_of(ts, order_id, fill))
            if self._held:  # children wait for this order
                self._ended(w, ts, at_open=type(price) is float, filled=filled)  # float: the open
            if req.oca_group:
                self._reduce_group(w, quantity, ts)
            return
        w.so_far = OrderSoFar(
            filled, before.value + quantity * fill_price * inst.multiplier, before.commission + fee
        )
        self._emit(filled_of(ts, order_id, fill))
        if req.oca_group:
            self._reduce_group(w, quantity, ts)
