"""The market behind the fake TWS: replayed bars, and the SimBroker that fills orders on them."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt

from ibkrfw.core.clock import SimClock
from ibkrfw.core.history import BarArrays
from ibkrfw.core.orderbook import OrderBook
from ibkrfw.errors import DataError
from ibkrfw.model.data import Bar, Quote
from ibkrfw.model.events import Event, OrderEvent, OrderFilled
from ibkrfw.model.instruments import Future, Instrument, Option
from ibkrfw.model.orders import Order, OrderRequest
from ibkrfw.portfolio.portfolio import Portfolio
from ibkrfw.risk.account import IB_INITIAL_MARGIN, MarginSpec
from ibkrfw.sim.broker import SimBroker
from ibkrfw.sim.commission import CommissionModel
from ibkrfw.sim.slippage import SlippageModel

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Market"]

FIRST_CON_ID = 100_001
IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


class Market:
    """Bars replayed one time step at a time, matched by a :class:`~ibkrfw.sim.SimBroker`.

    Everything here runs under one lock: the fake's client threads and the replay thread all
    come through :meth:`step`, :meth:`submit`, :meth:`cancel` and :meth:`modify`.

    Args:
        data: The bars of each instrument (the layout of :class:`~ibkrfw.sim.DataFrameFeed`).
        cash: The account's starting cash.
        commission: The commission model (none by default).
        volume_limit: The largest share of a bar's volume orders may take.
        on_event: Called with each order event the broker emits, under the lock.
        quotes: Top-of-book quotes per instrument: a frame with a tz-aware index and ``bid``
            and ``ask`` columns, optionally ``bid_size`` and ``ask_size``. They stream as
            bid and ask prices, and reach the broker (for a spread slippage model); fills
            still come from bars.
        slippage: The broker's slippage model.
        fill_on: What orders fill on (:class:`~ibkrfw.sim.SimBroker`'s ``fill_on``).
        account: A ``"margin"`` or ``"cash"`` account (:class:`~ibkrfw.risk.BuyingPower`).
        initial_margin: A margin account's initial margin rates.
    """

    def __init__(
        self,
        data: Mapping[Instrument, pd.DataFrame],
        *,
        cash: Decimal,
        commission: CommissionModel | None,
        on_event: Callable[[OrderEvent], None],
        volume_limit: float | None = None,
        quotes: Mapping[Instrument, pd.DataFrame] | None = None,
        slippage: SlippageModel | None = None,
        fill_on: Literal["bars", "quotes"] = "bars",
        account: Literal["margin", "cash"] = "margin",
        initial_margin: MarginSpec = IB_INITIAL_MARGIN,
    ) -> None:
        from ibkrfw.sim.feeds import frame_to_arrays

        self.lock = threading.RLock()
        self.arrays: dict[Instrument, BarArrays] = {
            inst: frame_to_arrays(frame, source=f"fake TWS bars of {inst.id}")
            for inst, frame in data.items()
        }
        self.quotes = {inst: _quote_arrays(inst, frame) for inst, frame in (quotes or {}).items()}
        known = list(self.arrays) + [i for i in self.quotes if i not in self.arrays]
        self.con_ids = {inst: FIRST_CON_ID + i for i, inst in enumerate(known)}
        stamps = [a.ts_ns for a in self.arrays.values()] + [q[0] for q in self.quotes.values()]
        self.times = np.unique(np.concatenate(stamps)) if stamps else np.empty(0, np.int64)
        self.position = -1  # index in times of the last step taken
        self.last: dict[Instrument, Bar] = {}
        self.last_quote: dict[Instrument, Quote] = {}
        first = int(self.times[0]) - 1 if len(self.times) else 0
        self.clock = SimClock(first)
        self.orders = OrderBook()
        self.portfolio = Portfolio(cash)
        self.portfolio.follow_orders(self.orders.working)  # buying power counts working orders
        self.cash = cash
        self.broker = SimBroker(
            cash,
            commission=commission,
            volume_limit=volume_limit,
            slippage=slippage,
            fill_on=fill_on,
            account=account,
            initial_margin=initial_margin,
        )
        self._on_event = on_event
        self.broker.start(self.clock, self._emit)

    # --- contracts ----------------------------------------------------------------------------
    def find(
        self,
        con_id: int,
        symbol: str,
        sec_type: str,
        currency: str,
        expiry: str = "",
        strike: str = "",
        right: str = "",
    ) -> Instrument | None:
        """The instrument a request's contract names: by conId, else by symbol and type.

        An option is told from the others of its underlying by the expiry, strike and right
        the request gives (each one left empty or zero matches any); a future by its expiry.
        """
        found = self.find_all(con_id, symbol, sec_type, currency, expiry, strike, right)
        return found[0] if found else None

    def find_all(
        self,
        con_id: int,
        symbol: str,
        sec_type: str,
        currency: str,
        expiry: str = "",
        strike: str = "",
        right: str = "",
    ) -> list[Instrument]:
        """Every instrument a request's contract matches, in the order they were given.

        A future's contract without an expiry matches every month of the future, as TWS
        answers ``reqContractDetails`` with each listed month.
        """
        if con_id:
            return [inst for inst, cid in self.con_ids.items() if cid == con_id]
        return [
            inst
            for inst in self.con_ids
            if inst.symbol == symbol
            and inst.asset_class.value == sec_type
            and (not currency or inst.currency == currency)
            and _option_matches(inst, expiry, strike, right)
            and _future_matches(inst, expiry)
        ]

    # --- time ---------------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        """Whether every bar has been replayed."""
        return self.position + 1 >= len(self.times)

    def step(
        self,
        on_quotes: Callable[[list[Quote]], None] | None = None,
        on_bar: Callable[[Bar], None] | None = None,
    ) -> tuple[list[Bar], list[Quote]]:
        """Replay the quotes and bars of the next time stamp (empty lists at the end).

        The broker sees the quotes first (then ``on_quotes`` gets them), then each bar in turn:
        orders of its instrument are matched on it, then ``on_bar`` gets it, before the next
        instrument's bar. That is the order a backtest follows, bar by bar.
        """
        with self.lock:
            if self.finished:
                return [], []
            self.position += 1
            ts = int(self.times[self.position])
            self.clock.advance_to(ts)
            quotes = []
            for inst, (q_ts, bid, ask, bid_size, ask_size) in self.quotes.items():
                i = int(np.searchsorted(q_ts, ts))
                if i < len(q_ts) and q_ts[i] == ts:
                    quote = Quote(
                        inst,
                        ts,
                        float(bid[i]),
                        float(ask[i]),
                        float(bid_size[i]),
                        float(ask_size[i]),
                    )
                    self.broker.on_quote(quote)
                    self.last_quote[inst] = quote
                    quotes.append(quote)
            if on_quotes is not None and quotes:
                on_quotes(quotes)
            bars = []
            for inst, arrays in self.arrays.items():
                i = int(np.searchsorted(arrays.ts_ns, ts))
                if i < len(arrays.ts_ns) and arrays.ts_ns[i] == ts:
                    bar = Bar(
                        inst,
                        ts,
                        float(arrays.open[i]),
                        float(arrays.high[i]),
                        float(arrays.low[i]),
                        float(arrays.close[i]),
                        float(arrays.volume[i]),
                    )
                    self.broker.on_bar(bar)
                    self.portfolio.mark(inst, bar.close)
                    self.last[inst] = bar
                    bars.append(bar)
                    if on_bar is not None:
                        on_bar(bar)
            return bars, quotes

    # --- orders -------------------------------------------------------------------------------
    def submit_later(self, request: OrderRequest) -> Order:
        """Record a new order without sending it yet (so its id can be mapped first)."""
        with self.lock:
            return self.orders.create(request, self.clock.now_ns())

    def send(self, order: Order) -> None:
        """Send an order made by :meth:`submit_later`; its events arrive through ``on_event``."""
        with self.lock:
            self.broker.submit(order)

    def cancel(self, order_id: int) -> None:
        """Ask the broker to cancel an order; the answer arrives through ``on_event``."""
        with self.lock:
            order = self.orders.get(order_id)
            if order is not None:
                self.broker.cancel(order)

    def modify(self, order_id: int, request: OrderRequest) -> None:
        """Ask the broker to replace an order's request; the answer arrives through ``on_event``."""
        with self.lock:
            order = self.orders.get(order_id)
            if order is not None:
                self.broker.modify(order, request)

    def _emit(self, event: Event) -> None:
        if not isinstance(event, OrderEvent):
            return  # cash adjustments (borrow fees) are not simulated by the fake
        self.orders.apply(event)
        if type(event) is OrderFilled:
            self.portfolio.apply_fill(event.fill)
        self._on_event(event)


def _quote_arrays(
    inst: Instrument, frame: pd.DataFrame
) -> tuple[IntArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """Validated quote columns: times, bid, ask, bid size, ask size (NaN sizes if absent)."""
    import pandas as pd

    from ibkrfw.sim.feeds import frame_times

    source = f"fake TWS quotes of {inst.id}"
    index = frame_times(frame, source)
    if index.tz is None:
        raise DataError(f"{source}: timestamps have no time zone")
    ts = np.asarray(index.tz_convert("UTC").as_unit("ns").asi8, dtype=np.int64)
    columns = {}
    for name in ("bid", "ask", "bid_size", "ask_size"):
        if name in frame.columns:
            columns[name] = pd.to_numeric(frame[name], errors="coerce").to_numpy(np.float64)
        elif name in ("bid", "ask"):
            raise DataError(f"{source}: missing column {name!r}; got {list(frame.columns)}")
        else:
            columns[name] = np.full(len(ts), np.nan)
    bid, ask = columns["bid"], columns["ask"]
    bad = ~(np.isfinite(bid) & np.isfinite(ask) & (bid > 0) & (ask >= bid))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{source}: row {i} has bid {bid[i]!r} and ask {ask[i]!r}: prices must be positive "
            "with the bid at or below the ask"
        )
    if len(ts) > 1 and bool(np.any(np.diff(ts) <= 0)):
        raise DataError(f"{source}: times must be strictly increasing")
    return ts, bid, ask, columns["bid_size"], columns["ask_size"]


def _future_matches(inst: Instrument, expiry: str) -> bool:
    """Whether a future fits a request's expiry: its month ``YYYYMM`` or day (empty: any)."""
    if not isinstance(inst, Future) or not expiry:
        return True
    day = expiry.split(" ")[0]
    return day in (inst.expiry, inst.contract_month, inst.last_trade_date)


def _option_matches(inst: Instrument, expiry: str, strike: str, right: str) -> bool:
    """Whether an option fits a request's expiry, strike and right (empty: any)."""
    if not isinstance(inst, Option):
        return True
    if expiry and inst.expiry != expiry[:8]:
        return False
    try:
        wanted = float(strike) if strike else 0.0
    except ValueError:
        return False
    if wanted and wanted < 1e300 and abs(float(inst.strike) - wanted) > 1e-9:
        return False
    return not right or right.upper() in ("?", "") or inst.right == right.upper()[0]
