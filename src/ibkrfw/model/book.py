"""Market depth (level 2): the updates IB sends and the order book they build.

IB streams a book as row operations on each side: *insert* a level at a position (the levels
from there down move one row deeper), *update* the level at a position in place, *delete* the
level at a position (the levels below move one row up). :class:`DepthUpdate` is one such
message, with IB's numbers for the operation and the side (``updateMktDepth`` and
``updateMktDepthL2``); :class:`DepthBook` applies them.

A message the book cannot apply (a position beyond the book, a level that is not there, a
negative size, a price that is not a number, levels out of order or a crossed book) is never
applied in part or repaired: the book reports it as a :class:`~ibkrfw.DataProblem`, becomes
``"stale"`` and answers nothing until it is :meth:`~DepthBook.reset` and rebuilt from a fresh
snapshot. See :doc:`/concepts/depth`.

Prices and sizes are ``float``, as in :class:`~ibkrfw.Quote`: depth is market data, on the
per-message path; ledger values become :class:`~decimal.Decimal` at the fill.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from enum import IntEnum
from typing import TYPE_CHECKING, Literal, NamedTuple, final

import attrs

from ibkrfw.errors import ConfigError
from ibkrfw.model._time import to_timestamp
from ibkrfw.model.events import DataProblem, Event
from ibkrfw.model.instruments import Instrument
from ibkrfw.model.orders import Side

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "BookLevel",
    "BookSide",
    "BookSnapshot",
    "BookWalk",
    "DepthBook",
    "DepthOperation",
    "DepthReceived",
    "DepthUpdate",
]

_INF = math.inf


class DepthOperation(IntEnum):
    """What a depth update does to its row, with IB's numbers (``operation`` in IB's API)."""

    INSERT = 0
    """Add a level at the position; the levels from there down move one row deeper."""
    UPDATE = 1
    """Replace the level at the position."""
    DELETE = 2
    """Remove the level at the position; the levels below move one row up."""


class BookSide(IntEnum):
    """A side of the book, with IB's numbers (``side`` in IB's API)."""

    ASK = 0
    """The offers, which a buy takes."""
    BID = 1
    """The bids, which a sell takes."""


class DepthUpdate(NamedTuple):
    """One row operation on one side of an instrument's book, as IB sends it.

    Args:
        instrument: The instrument whose book it changes.
        ts_ns: When it arrived (UTC epoch nanoseconds).
        side: :attr:`BookSide.BID` or :attr:`BookSide.ASK` (IB: 1 or 0).
        position: The row, 0 being the best price.
        operation: Insert, update or delete (IB: 0, 1, 2).
        price: The level's price (for a delete, IB repeats the old one; it is not checked).
        size: The size shown at the level.
        market_maker: The market maker or exchange showing the level (``updateMktDepthL2``);
            empty when IB gives none.
        is_smart_depth: Whether the row is from an aggregated (SMART) depth subscription.

    Example:
        >>> from ibkrfw import Stock
        >>> DepthUpdate(Stock("AAPL"), 0, BookSide.BID, 0, DepthOperation.INSERT, 99.5, 300.0)[2:5]
        (<BookSide.BID: 1>, 0, <DepthOperation.INSERT: 0>)
    """

    instrument: Instrument
    ts_ns: int
    side: BookSide
    position: int
    operation: DepthOperation
    price: float
    size: float
    market_maker: str = ""
    is_smart_depth: bool = False

    @property
    def timestamp(self) -> pd.Timestamp:
        """The update's time as a UTC :class:`pandas.Timestamp`."""
        return to_timestamp(self.ts_ns)


@final
@attrs.frozen(kw_only=True)
class DepthReceived(Event):
    """A live feed received a burst of market depth updates for one instrument.

    The engine hands it, on its own thread, back to the feed that emitted it
    (:meth:`DataFeed.on_depth <ibkrfw.DataFeed.on_depth>`), which applies ``updates`` to the
    instrument's :class:`DepthBook`; if the book changed and is sound the strategy's
    :meth:`Strategy.on_book <ibkrfw.Strategy.on_book>` follows. A strategy never receives
    this event itself.

    Args:
        instrument: The instrument whose book the updates change.
        updates: IB's row operations, in the order they came (one burst: what arrived
            together).
        stream: The subscription they came on (the feed's request id): updates of a
            subscription that has been replaced are ignored, and the first updates of a new
            one start the book afresh.
    """

    instrument: Instrument
    updates: tuple[DepthUpdate, ...]
    stream: int


class BookLevel(NamedTuple):
    """One row of a book side: its price, the size shown and who shows it (if IB says)."""

    price: float
    size: float
    market_maker: str = ""


class BookWalk(NamedTuple):
    """What a market order of ``requested`` units would take from the book, level by level.

    Args:
        requested: The quantity asked for.
        filled: The quantity the levels hold for it: less than ``requested`` when the book
            is thinner (or a limit stops the walk).
        takes: ``(price, quantity)`` for each level taken, best price first.
    """

    requested: float
    filled: float
    takes: tuple[tuple[float, float], ...]

    @property
    def complete(self) -> bool:
        """Whether the whole quantity is available."""
        return self.filled >= self.requested

    @property
    def average_price(self) -> float | None:
        """The size-weighted average price of the levels taken; None if nothing was."""
        if not self.filled:
            return None
        return sum(price * quantity for price, quantity in self.takes) / self.filled

    @property
    def worst_price(self) -> float | None:
        """The price of the last (worst) level taken; None if nothing was."""
        return self.takes[-1][0] if self.takes else None


class BookSnapshot(NamedTuple):
    """An immutable copy of a book at one instant, for display and comparison.

    ``str()`` of it is a small table, bids on the left and asks on the right.
    """

    instrument: Instrument
    ts_ns: int
    bids: tuple[BookLevel, ...]
    asks: tuple[BookLevel, ...]
    state: str

    def __str__(self) -> str:
        lines = [f"{self.instrument.id} book ({self.state}) at {to_timestamp(self.ts_ns)}"]
        lines.append(f"{'bid size':>12} {'bid':>12} | {'ask':<12} {'ask size'}")
        for row in range(max(len(self.bids), len(self.asks))):
            bid = self.bids[row] if row < len(self.bids) else None
            ask = self.asks[row] if row < len(self.asks) else None
            left = f"{bid.size:>12g} {bid.price:>12g}" if bid else " " * 25
            right = f"{ask.price:<12g} {ask.size:<12g}" if ask else ""
            lines.append(f"{left} | {right}".rstrip())
        return "\n".join(lines)


@final
class DepthBook:
    """The depth of one instrument's market, built from IB's row operations.

    Apply each :class:`DepthUpdate` with :meth:`apply`; read the book with :attr:`best_bid`,
    :attr:`best_ask`, :attr:`spread`, :attr:`mid`, :meth:`levels`, :meth:`volume_to`,
    :meth:`walk`, :meth:`average_fill_price` and :meth:`snapshot`.

    An update that cannot be applied as IB defines it makes the book ``"stale"``: it returns
    a :class:`~ibkrfw.DataProblem` saying why, ignores every later update, and every reading
    answers None (or nothing) until :meth:`reset` empties it for a fresh snapshot. A side
    deeper than ``max_levels`` drops its deepest rows, as TWS does beyond the rows asked for.

    :meth:`check` (called when a change is complete: IB sends it one row at a time) makes
    sure prices are in order within a side (asks rising, bids falling; equal prices are
    allowed, as market makers may show the same one) and the book is not crossed. A locked
    book (best bid equal to best ask) is accepted; a crossed one (bid above ask) is a problem.

    Args:
        instrument: The instrument whose book it is.
        max_levels: The most rows kept per side (IB's ``numRows``), at least 1.

    Raises:
        ConfigError: if ``max_levels`` is not a whole number >= 1.

    Example:
        >>> from ibkrfw import Stock
        >>> book = DepthBook(Stock("AAPL"), max_levels=5)
        >>> ins, bid, ask = DepthOperation.INSERT, BookSide.BID, BookSide.ASK
        >>> for side, price, size in [(bid, 99.0, 100.0), (ask, 101.0, 200.0), (bid, 99.5, 50.0)]:
        ...     problem = book.apply(DepthUpdate(book.instrument, 1, side, 0, ins, price, size))
        ...     assert problem is None
        >>> book.best_bid, book.best_ask, book.mid
        (99.5, 101.0, 100.25)
        >>> book.average_fill_price(Side.SELL, 120)
        99.20833333333333
    """

    __slots__ = (
        "_makers",
        "_prices",
        "_sizes",
        "instrument",
        "max_levels",
        "problem",
        "ts_ns",
    )

    def __init__(self, instrument: Instrument, max_levels: int = 10) -> None:
        if not isinstance(instrument, Instrument):
            raise ConfigError(f"DepthBook: instrument must be an Instrument, got {instrument!r}")
        if isinstance(max_levels, bool) or not isinstance(max_levels, int) or max_levels < 1:
            raise ConfigError(
                f"DepthBook: max_levels must be a whole number >= 1 (IB's numRows), "
                f"got {max_levels!r}"
            )
        self.instrument = instrument
        """The instrument whose book it is."""
        self.max_levels = max_levels
        """The most rows kept per side."""
        self.ts_ns = 0
        """The time of the latest update applied (0 before the first)."""
        self.problem: str | None = None
        """Why the book is stale, or None while it is sound."""
        # per side (index: BookSide value): prices, sizes, market makers, best first
        self._prices: tuple[list[float], list[float]] = ([], [])
        self._sizes: tuple[list[float], list[float]] = ([], [])
        self._makers: tuple[list[str], list[str]] = ([], [])

    # --- applying updates -------------------------------------------------------------------
    def apply(self, update: DepthUpdate) -> DataProblem | None:
        """Apply one update; return the problem if it cannot be applied, else None.

        A problem makes the book stale (see the class). A stale book ignores updates and
        returns None for them: the problem was reported once, with the update that caused it.

        Raises:
            ConfigError: if ``update`` is of another instrument's book (a wiring mistake).
        """
        if self.problem is not None:
            return None
        if update.instrument is not self.instrument and update.instrument != self.instrument:
            raise ConfigError(
                f"DepthBook of {self.instrument.id} was given an update of "
                f"{update.instrument.id}: keep one book per instrument"
            )
        why = self._apply(update)
        self.ts_ns = update.ts_ns
        if why is None:
            return None
        return self.invalidate(why, update.ts_ns)

    def invalidate(self, reason: str, ts_ns: int) -> DataProblem:
        """Make the book stale for a reason found outside it; return the problem to report.

        For what only the caller can see: an update out of time order, a lost connection,
        IB's error 317 (depth reset). The book answers nothing until :meth:`reset`.

        Args:
            reason: What is wrong, in words.
            ts_ns: When it was found.
        """
        why = reason
        self.problem = why
        for lists in (self._prices, self._sizes, self._makers):
            lists[0].clear()
            lists[1].clear()
        return DataProblem(
            ts_ns=ts_ns,
            instrument=self.instrument,
            code=None,
            reason=f"market depth of {self.instrument.id}: {why}; the book is stale until "
            "it is rebuilt from a fresh snapshot",
        )

    def _apply(self, u: DepthUpdate) -> str | None:
        """Apply ``u``; say why not (changing nothing) if it cannot be applied."""
        side, position, operation = u.side, u.position, u.operation
        if side != 0 and side != 1:
            return f"side {side!r} is neither 0 (ask) nor 1 (bid)"
        prices, sizes = self._prices[side], self._sizes[side]
        n = len(prices)
        if type(position) is not int or position < 0:
            return f"position {position!r} is not a row number >= 0"
        name = "ask" if side == 0 else "bid"
        if operation == 2:  # delete
            if position >= n:
                return f"delete of {name} row {position}, which is not there ({n} rows)"
            del prices[position], sizes[position], self._makers[side][position]
            return None
        price, size = u.price, u.size
        if not -_INF < price < _INF:
            return f"{name} price {price!r} at row {position} is not a finite number"
        if not 0 <= size < _INF:
            return f"{name} size {size!r} at row {position} is not a finite number >= 0"
        if operation == 0:  # insert
            if position > n or position >= self.max_levels:
                return (
                    f"insert of {name} row {position} beyond the book ({n} rows, "
                    f"at most {self.max_levels}): a gap"
                )
        elif operation == 1:  # update
            if position >= n:
                return f"update of {name} row {position}, which is not there ({n} rows)"
        else:
            return f"operation {operation!r} is none of 0 (insert), 1 (update), 2 (delete)"
        if operation == 0:
            prices.insert(position, price)
            sizes.insert(position, size)
            self._makers[side].insert(position, u.market_maker)
            if n >= self.max_levels:  # the deepest row falls off, as beyond TWS's numRows
                del prices[-1], sizes[-1], self._makers[side][-1]
        else:
            prices[position] = price
            sizes[position] = size
            self._makers[side][position] = u.market_maker
        return None

    def reset(self) -> None:
        """Empty the book and clear its problem, ready for a fresh snapshot."""
        self.problem = None
        for lists in (self._prices, self._sizes, self._makers):
            lists[0].clear()
            lists[1].clear()

    def check(self) -> DataProblem | None:
        """Check the book is in order and not crossed; return the problem if it is not.

        IB changes a book one row at a time, so between the messages of one change a side
        may be briefly out of order (row 0 updated before row 1) or the book crossed: the
        order is checked when a change is complete (in a replay, after each time stamp's
        updates), not after each message. A problem makes the book stale, as in
        :meth:`apply`; a stale book returns None.
        """
        if self.problem is not None:
            return None
        why = _disorder(self._prices[0], True) or _disorder(self._prices[1], False)
        if why is None:
            bids, asks = self._prices[1], self._prices[0]
            if bids and asks and bids[0] > asks[0]:
                why = f"the book is crossed (bid {bids[0]!r} above ask {asks[0]!r})"
        if why is None:
            return None
        return self.invalidate(why, self.ts_ns)

    # --- reading ----------------------------------------------------------------------------
    @property
    def state(self) -> Literal["ok", "stale"]:
        """``"ok"``, or ``"stale"`` after a problem until :meth:`reset`."""
        return "ok" if self.problem is None else "stale"

    @property
    def best_bid(self) -> float | None:
        """The highest bid; None if there is none or the book is stale."""
        bids = self._prices[1]
        return bids[0] if bids else None

    @property
    def best_ask(self) -> float | None:
        """The lowest ask; None if there is none or the book is stale."""
        asks = self._prices[0]
        return asks[0] if asks else None

    @property
    def spread(self) -> float | None:
        """Best ask minus best bid; None without both sides (or stale)."""
        bids, asks = self._prices[1], self._prices[0]
        return asks[0] - bids[0] if bids and asks else None

    @property
    def mid(self) -> float | None:
        """The mid price, ``(bid + ask) / 2``; None without both sides (or stale)."""
        bids, asks = self._prices[1], self._prices[0]
        return (asks[0] + bids[0]) / 2.0 if bids and asks else None

    def levels(self, n: int | None = None) -> tuple[tuple[BookLevel, ...], tuple[BookLevel, ...]]:
        """Return the best ``n`` levels of each side (all with None): ``(bids, asks)``.

        Both are empty when the book is stale.

        Raises:
            ConfigError: if ``n`` is not None or a whole number >= 0.
        """
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
            raise ConfigError(f"DepthBook.levels: n must be a whole number >= 0, got {n!r}")
        return self._side(1, n), self._side(0, n)

    def _side(self, side: int, n: int | None) -> tuple[BookLevel, ...]:
        prices, sizes, makers = self._prices[side], self._sizes[side], self._makers[side]
        count = len(prices) if n is None else min(n, len(prices))
        return tuple(BookLevel(prices[i], sizes[i], makers[i]) for i in range(count))

    def volume_to(self, side: Side, price: float) -> float | None:
        """Return the size a ``side`` order could take at ``price`` or better.

        A buy takes the asks at or below ``price``, a sell the bids at or above it. None when
        the book is stale.

        Raises:
            ConfigError: if ``side`` is not a :class:`~ibkrfw.Side` or ``price`` is not a
                finite number.
        """
        buy = _is_buy(side, "volume_to")
        if not (isinstance(price, int | float) and math.isfinite(price)):
            raise ConfigError(f"DepthBook.volume_to: price must be a finite number, got {price!r}")
        if self.problem is not None:
            return None
        prices, sizes = self._prices[0 if buy else 1], self._sizes[0 if buy else 1]
        total = 0.0
        for level_price, size in zip(prices, sizes, strict=True):
            if level_price > price if buy else level_price < price:
                break
            total += size
        return total

    def walk(
        self,
        side: Side,
        quantity: float,
        limit: float | None = None,
        taken: Mapping[float, float] | None = None,
    ) -> BookWalk | None:
        """Walk the book for a ``side`` order of ``quantity``: what each level would give.

        A buy takes the asks, best first, a sell the bids, until the quantity is reached,
        the side runs out, or (with ``limit``) the next level is worse than the limit. The
        result says how much is available (:attr:`BookWalk.filled`) and at which prices.

        Args:
            side: The order's side.
            quantity: Units wanted, > 0.
            limit: The worst price acceptable; None for a market order.
            taken: Size already taken at each price (by orders filled earlier at the same
                instant): it is no longer there to take.

        Returns:
            The walk, or None if the book is stale.

        Raises:
            ConfigError: if ``side``, ``quantity`` or ``limit`` is not valid.
        """
        buy = _is_buy(side, "walk")
        if not (isinstance(quantity, int | float) and 0 < quantity < _INF):
            raise ConfigError(
                f"DepthBook.walk: quantity must be a finite number > 0, got {quantity!r}"
            )
        if limit is not None and not (isinstance(limit, int | float) and math.isfinite(limit)):
            raise ConfigError(f"DepthBook.walk: limit must be a finite number, got {limit!r}")
        if self.problem is not None:
            return None
        index = 0 if buy else 1
        left = float(quantity)
        takes: list[tuple[float, float]] = []
        last_price: float | None = None
        debt = 0.0  # what is taken at the current price, from its first levels on
        for price, size in zip(self._prices[index], self._sizes[index], strict=True):
            if limit is not None and (price > limit if buy else price < limit):
                break
            if price != last_price:
                last_price = price
                debt = taken.get(price, 0.0) if taken else 0.0
            if debt:
                used = debt if debt < size else size
                size -= used
                debt -= used
            if size <= 0:
                continue
            take = size if size < left else left
            if takes and takes[-1][0] == price:  # two market makers at one price: one take
                takes[-1] = (price, takes[-1][1] + take)
            else:
                takes.append((price, take))
            left -= take
            if left <= 0:
                break
        return BookWalk(float(quantity), float(quantity) - max(left, 0.0), tuple(takes))

    def average_fill_price(self, side: Side, quantity: float) -> float | None:
        """Return the average price a market order of ``quantity`` would pay or receive.

        None if the book holds less than ``quantity`` on that side (use :meth:`walk` to see
        the part it holds) or is stale.

        Raises:
            ConfigError: if ``side`` or ``quantity`` is not valid.
        """
        result = self.walk(side, quantity)
        if result is None or not result.complete:
            return None
        return result.average_price

    def snapshot(self) -> BookSnapshot:
        """Return an immutable copy of the book (empty sides when stale)."""
        bids, asks = self.levels()
        return BookSnapshot(self.instrument, self.ts_ns, bids, asks, self.state)

    def __repr__(self) -> str:
        return (
            f"DepthBook({self.instrument.id}, {self.state}, bids={len(self._prices[1])}, "
            f"asks={len(self._prices[0])}, best={self.best_bid}/{self.best_ask})"
        )


def _disorder(prices: list[float], rising: bool) -> str | None:
    for row in range(1, len(prices)):
        if prices[row] < prices[row - 1] if rising else prices[row] > prices[row - 1]:
            name = "ask" if rising else "bid"
            return (
                f"{name} row {row} at {prices[row]!r} is out of order with row {row - 1} at "
                f"{prices[row - 1]!r}"
            )
    return None


def _is_buy(side: Side, where: str) -> bool:
    if side is Side.BUY:
        return True
    if side is Side.SELL:
        return False
    raise ConfigError(f"DepthBook.{where}: side must be Side.BUY or Side.SELL, got {side!r}")
