"""Replayed market depth: a feed that rebuilds each instrument's book at every time stamp."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Protocol, final, runtime_checkable

from typing_extensions import override

from ibkrfw.core.clock import Clock
from ibkrfw.errors import ConfigError, DataError
from ibkrfw.model.book import BookSide, DepthBook, DepthOperation, DepthUpdate
from ibkrfw.model.data import Bar
from ibkrfw.model.events import DataProblem, Event
from ibkrfw.model.instruments import Instrument
from ibkrfw.ports import DataFeed, EventSink

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DepthFeed", "DepthSource", "depth_updates_from_frame"]

_NAN = float("nan")


@runtime_checkable
class DepthSource(Protocol):
    """Whatever can show an instrument's book as it stood at a time (a :class:`DepthFeed`)."""

    def book_at(self, instrument: Instrument, ts_ns: int) -> DepthBook | None:
        """Return ``instrument``'s book as it stood at ``ts_ns``, or None if not known."""
        ...


def _keep(event: Event) -> None:
    del event


@final
class DepthFeed(DataFeed):
    """Replay recorded depth updates: the books, and a bar at each time stamp they change.

    The updates of each time stamp are applied to the instrument's :class:`~ibkrfw.DepthBook`
    in the order given; then the book is checked (:meth:`DepthBook.check
    <ibkrfw.DepthBook.check>`) and, if it is sound with both sides, the feed yields a bar at
    that time whose open, high, low and close are the book's mid price and whose volume is
    unknown (NaN). The strategy trades on those bars as on any others, the portfolio marks
    positions at the mid, and a :class:`~ibkrfw.sim.SimBroker` given the feed as ``depth``
    fills orders by walking :meth:`book_at` (see :doc:`/concepts/depth`). A book with one
    side empty, or stale, yields no bar.

    Bad data is never applied: an update the book cannot take, or one older than the updates
    before it, makes the book stale and is reported once as a :class:`~ibkrfw.DataProblem`
    (in :attr:`Engine.notices <ibkrfw.Engine.notices>` and to ``Strategy.on_event``). At the
    next time stamp the book is emptied and rebuilt from the updates that follow, as the live
    feed rebuilds it from the fresh snapshot it asks IB for; it is reported again only after
    it was sound once more.

    Args:
        updates: The updates, in time order per instrument (a :class:`~ibkrfw.data.DepthStore`
            reads them so), of one or more instruments.
        max_levels: The most rows kept per side of each book (IB's ``numRows``).
        instruments: The instruments the feed declares; by default those of ``updates``
            (which are then read once at construction to find them).
        group_ns: Updates less than this many nanoseconds after the first of a change
            belong to it: the books are checked, and the bars stamped, once at its last
            update. IB sends a change one row at a time and a recorder may stamp each row
            with its own arrival time; 0 (the default) groups equal time stamps only.

    Raises:
        ConfigError: if ``max_levels`` is not a whole number >= 1, ``group_ns`` not a whole
            number >= 0, or an update is of an instrument not in ``instruments``.
    """

    def __init__(
        self,
        updates: Iterable[DepthUpdate],
        *,
        max_levels: int = 10,
        instruments: Sequence[Instrument] | None = None,
        group_ns: int = 0,
    ) -> None:
        if isinstance(max_levels, bool) or not isinstance(max_levels, int) or max_levels < 1:
            raise ConfigError(
                f"DepthFeed: max_levels must be a whole number >= 1 (IB's numRows), "
                f"got {max_levels!r}"
            )
        if isinstance(group_ns, bool) or not isinstance(group_ns, int) or group_ns < 0:
            raise ConfigError(
                f"DepthFeed: group_ns must be a whole number of nanoseconds >= 0, got {group_ns!r}"
            )
        self.group_ns = group_ns
        """Updates this close to the first of a change belong to it (ns)."""
        if instruments is None:
            updates = list(updates)
            seen: dict[Instrument, None] = {}
            for update in updates:
                seen.setdefault(update.instrument, None)
            instruments = tuple(seen)
        self._updates = updates
        self._instruments = tuple(instruments)
        self.max_levels = max_levels
        """The most rows kept per side of each book."""
        self._books = {inst: DepthBook(inst, max_levels) for inst in self._instruments}
        self._now: int | None = None  # the time stamp of the bars being yielded
        self._emit: EventSink = _keep
        self.problems: list[DataProblem] = []
        """Every problem reported, in order (they also go to the engine as events)."""

    @property
    @override
    def instruments(self) -> tuple[Instrument, ...]:
        return self._instruments

    @override
    def start(self, clock: Clock, emit: EventSink) -> None:
        del clock
        self._emit = emit

    def book(self, instrument: Instrument) -> DepthBook:
        """Return ``instrument``'s book as the replay stands (its latest time stamp).

        Raises:
            ConfigError: if the feed has no book of ``instrument``.
        """
        try:
            return self._books[instrument]
        except KeyError:
            known = ", ".join(inst.id for inst in self._instruments) or "none"
            raise ConfigError(
                f"DepthFeed has no book of {instrument.id} (it replays {known})"
            ) from None

    @override
    def depth_book(self, instrument: Instrument) -> DepthBook | None:
        """Return ``instrument``'s book as the replay stands, or None if it has none of it.

        What :meth:`Context.book <ibkrfw.Context.book>` answers in a backtest on this feed.
        """
        return self._books.get(instrument)

    def book_at(self, instrument: Instrument, ts_ns: int) -> DepthBook | None:
        """Return ``instrument``'s book if the replay stands at ``ts_ns``, else None.

        The replay stands at a time stamp while its bars are handled: a book is never
        shown at a time it does not hold.
        """
        if ts_ns != self._now:
            return None
        book = self._books.get(instrument)
        return book if book is not None and book.problem is None else None

    def _report(self, problem: DataProblem, reported: set[Instrument]) -> None:
        if problem.instrument in reported:
            return
        reported.add(problem.instrument)
        self.problems.append(problem)
        self._emit(problem)

    @override
    def __iter__(self) -> Iterator[Bar]:
        books = self._books
        reported: set[Instrument] = set()  # stale episodes already reported
        touched: dict[Instrument, DepthBook] = {}
        cur: int | None = None  # the latest time stamp seen
        start = 0  # the first time stamp of the change being read
        group_ns = self.group_ns
        for update in self._updates:
            ts = update.ts_ns
            inst = update.instrument
            book = books.get(inst)
            if book is None:
                raise ConfigError(
                    f"DepthFeed: an update of {inst.id} at {update.timestamp}, which the feed "
                    "does not declare: pass it in instruments"
                )
            if cur is not None and ts < cur:
                problem = book.invalidate(
                    f"an update at {update.timestamp} comes after one at {_stamp(cur)} "
                    "(out of time order)",
                    cur,
                )
                self._report(problem, reported)
                touched[inst] = book
                continue
            if cur is None or ts - start > group_ns:
                if cur is not None:
                    yield from self._close(cur, touched, reported)
                    touched.clear()
                start = ts
                for stale in books.values():
                    if stale.problem is not None:
                        stale.reset()  # rebuilt from the rows that follow
            cur = ts
            touched[inst] = book
            failed = book.apply(update)
            if failed is not None:
                self._report(failed, reported)
        if cur is not None:
            yield from self._close(cur, touched, reported)

    def _close(
        self, ts: int, touched: dict[Instrument, DepthBook], reported: set[Instrument]
    ) -> Iterator[Bar]:
        """End a time stamp: check the books it changed, and yield their bars."""
        self._now = ts
        for inst, book in touched.items():
            problem = book.check()
            if problem is not None:
                self._report(problem, reported)
                continue
            mid = book.mid
            if mid is None or book.problem is not None:
                continue
            reported.discard(inst)
            yield Bar(inst, ts, mid, mid, mid, mid, _NAN)


def _stamp(ts_ns: int) -> str:
    from ibkrfw.model._time import to_timestamp

    return str(to_timestamp(ts_ns))


_COLUMNS = ("side", "position", "operation", "price", "size")


def depth_updates_from_frame(frame: pd.DataFrame, instrument: Instrument) -> list[DepthUpdate]:
    """Turn a table of depth updates into :class:`~ibkrfw.DepthUpdate` values.

    The frame has a ``ts_ns`` column (UTC epoch nanoseconds) or a time-zone-aware
    DatetimeIndex, and the columns ``side`` (0 ask, 1 bid), ``position``, ``operation``
    (0 insert, 1 update, 2 delete), ``price`` and ``size``; ``market_maker`` and
    ``is_smart_depth`` are optional. Values are taken as they are: what the book cannot
    apply is reported when the feed replays it, never corrected here.

    Raises:
        DataError: if a column is missing, a side or operation is not one of IB's numbers,
            or the times are naive.
    """
    import pandas as pd

    missing = [c for c in _COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(
            f"depth updates of {instrument.id}: column(s) {', '.join(missing)} missing "
            f"(expected ts_ns or a DatetimeIndex, and {', '.join(_COLUMNS)})"
        )
    if "ts_ns" in frame.columns:
        stamps = [int(t) for t in frame["ts_ns"]]
    elif isinstance(frame.index, pd.DatetimeIndex):
        if frame.index.tz is None:
            raise DataError(
                f"depth updates of {instrument.id}: the times are naive; localize them "
                "(frame.tz_localize('America/New_York')) or give a ts_ns column"
            )
        stamps = [int(t) for t in frame.index.as_unit("ns").asi8]
    else:
        raise DataError(f"depth updates of {instrument.id}: no ts_ns column and no DatetimeIndex")
    n = len(frame)
    makers = frame["market_maker"] if "market_maker" in frame.columns else [""] * n
    smart = frame["is_smart_depth"] if "is_smart_depth" in frame.columns else [False] * n
    out: list[DepthUpdate] = []
    for i, (ts, side, position, operation, price, size, maker, flag) in enumerate(
        zip(
            stamps,
            frame["side"],
            frame["position"],
            frame["operation"],
            frame["price"],
            frame["size"],
            makers,
            smart,
            strict=True,
        )
    ):
        try:
            book_side = BookSide(int(side))
            op = DepthOperation(int(operation))
        except ValueError:
            raise DataError(
                f"depth updates of {instrument.id}, row {i}: side {side!r} must be 0 (ask) or "
                f"1 (bid) and operation {operation!r} 0, 1 or 2 (insert, update, delete)"
            ) from None
        out.append(
            DepthUpdate(
                instrument,
                ts,
                book_side,
                int(position),
                op,
                float(price),
                float(size),
                str(maker) if maker is not None else "",
                bool(flag),
            )
        )
    return out
