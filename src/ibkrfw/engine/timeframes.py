"""Several bar sizes per instrument: larger bars built from the feed's, handed out once complete.

A strategy declares the larger bar sizes it wants with :meth:`Strategy.bar_sizes
<ibkrfw.Strategy.bar_sizes>`. The engine builds them here from each base bar, on the
instrument's sessions, with the :class:`~ibkrfw.ibkr.BarAggregator` that builds live bars from
IB's 5-second bars (cut as :func:`~ibkrfw.data.resample_bars` cuts them offline), and hands
each one to ``on_bar`` right after the base bar that completes it, at the same time stamp.
Nothing here runs in a run that declares no larger size.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, final

from ibkrfw.core.history import BarHistory
from ibkrfw.errors import ConfigError
from ibkrfw.indicators.core import Indicator
from ibkrfw.model.data import Bar
from ibkrfw.model.instruments import Instrument
from ibkrfw.ports import DataFeed

if TYPE_CHECKING:
    from ibkrfw.strategy import Context, Strategy

__all__: list[str] = []

_NS = 1_000_000_000
_DAY_NS = 86_400 * _NS
# the units a size is named in, largest first (the store's spelling: ibkrfw.data.barsize)
_UNITS = (("w", 7 * _DAY_NS), ("d", _DAY_NS), ("h", 3_600 * _NS), ("min", 60 * _NS), ("s", _NS))

OnBar = Callable[["Context", Bar], None]


def size_name(size_ns: int) -> str:
    """The store's spelling of a bar size given in nanoseconds (``"1min"``, ``"1h"``...)."""
    for unit, length in _UNITS:
        if size_ns % length == 0:
            return f"{size_ns // length}{unit}"
    return f"{size_ns}ns"


SizedKey = tuple[Instrument, str]
Sized = tuple[BarHistory, Mapping[str, Indicator]]


@final
class BySize(dict[SizedKey, Sized]):
    """What ``ctx.history(..., bar_size=)`` finds, by instrument and size, in any spelling.

    A size is found as the engine names it (``"1h"``) and as the strategy declared it; any
    other spelling of it that :meth:`Strategy.bar_sizes` takes (``"1 hour"``, ``"60min"``;
    days and weeks are sessions: ``"24h"`` is not ``"1d"``, nor ``"7d"`` ``"1w"``) is
    looked up on its first miss and kept: nothing more on the hot path.
    """

    def __missing__(self, key: SizedKey) -> Sized:
        inst, size = key
        name = _name(size)
        if name is not None:
            for (known_inst, known), found in list(self.items()):
                if known_inst == inst and _name(known) == name:
                    self[key] = found
                    return found
        raise KeyError(key)


def _name(size: object) -> str | None:
    """The engine's one name of a bar size (as plan_timeframes names it), or None."""
    from ibkrfw.data.barsize import bar_size_ns, normalize_bar_size  # lazy: an adapter

    try:
        name = normalize_bar_size(size)  # type: ignore[arg-type]
    except ConfigError:
        return None
    size_ns = bar_size_ns(name)
    return size_name(size_ns) if size_ns < _DAY_NS else name  # "60min" is "1h"; "7d" not "1w"


@final
class _Frame:
    """One larger bar size of one instrument: its builder, history and indicators."""

    __slots__ = ("add", "history", "indicators", "name", "push", "size_ns", "spellings")

    def __init__(
        self,
        name: str,
        size_ns: int,
        add: Callable[[Bar], list[Bar]],
        indicators: dict[str, Indicator],
    ) -> None:
        self.name = name
        self.spellings = {name}  # as the strategy wrote it too: ctx.history finds either
        self.size_ns = size_ns
        self.add = add
        self.history = BarHistory.empty()
        self.indicators = indicators
        updates = (self.history.push, *(ind.update_bar for ind in indicators.values()))

        def push(bar: Bar) -> None:
            for update in updates:
                update(bar)

        self.push = push


@final
class Timeframes:
    """The bar sizes of a run: each instrument's base size, and its larger ones."""

    __slots__ = ("base", "frames")

    def __init__(self, base: dict[Instrument, str], frames: dict[Instrument, tuple[_Frame, ...]]):
        self.base = base
        """Each instrument's base bar size (its feed's), by name, where its feed says it."""
        self.frames = frames
        """Each instrument's larger bar sizes, smallest first (instruments with some only)."""

    def for_context(
        self,
        histories: Mapping[Instrument, BarHistory],
        indicators: Mapping[Instrument, dict[str, Indicator]],
    ) -> BySize:
        """What :meth:`Context.history` finds by ``(instrument, bar_size)``: every size's."""
        found = BySize()
        for inst, name in self.base.items():
            found[inst, name] = (histories[inst], indicators.get(inst, {}))
        for inst, frames in self.frames.items():
            for frame in frames:
                for spelling in frame.spellings:
                    found[inst, spelling] = (frame.history, frame.indicators)
        return found

    def warm(self, histories: Mapping[Instrument, BarHistory]) -> None:
        """Build the larger bars of the base bars a live run loaded before it started.

        The warm-up bars (:attr:`Strategy.warmup_bars <ibkrfw.Strategy.warmup_bars>`) go
        through each larger size's builder, history and indicators, without ``on_bar``; the
        bar in progress at the end goes on with the live bars. A backtest's histories are
        preloaded and hold no bar yet: nothing to do.
        """
        for inst, frames in self.frames.items():
            history = histories[inst]
            if history.is_preloaded:
                continue
            past = history.last()
            columns = (past.ts_ns, past.open, past.high, past.low, past.close, past.volume)
            rows = zip(*(column.tolist() for column in columns), strict=True)
            for ts, o, h, lo, c, v in rows:
                bar = Bar(inst, ts, o, h, lo, c, v)
                for frame in frames:
                    for done in frame.add(bar):
                        frame.push(done)

    def wrap(
        self, on_bar: OnBar | None, has_work: Callable[[], object], drain: Callable[[], None]
    ) -> OnBar:
        """``on_bar`` for the engine's loop: the base bar, then each larger bar it completes.

        Sets :attr:`Context.bar_size <ibkrfw.Context.bar_size>` before each call. The orders
        and fills of one call are dispatched (``drain``) before the next.
        """
        # one look-up per bar, keyed by the feeds' own instrument objects (found by identity)
        plan = {inst: (name, self.frames.get(inst, ())) for inst, name in self.base.items()}
        unknown: tuple[None, tuple[_Frame, ...]] = (None, ())

        def deliver(ctx: Context, bar: Bar) -> None:
            name, frames = plan.get(bar.instrument, unknown)
            ctx.bar_size = name
            if on_bar is not None:
                on_bar(ctx, bar)
            for frame in frames:
                for done in frame.add(bar):
                    if has_work():
                        drain()
                    frame.push(done)
                    if on_bar is not None:
                        ctx.bar_size = frame.name
                        on_bar(ctx, done)
                        ctx.bar_size = name

        return deliver


def plan_timeframes(
    strategy: Strategy, feeds: Sequence[DataFeed], indicators: Mapping[str, Indicator]
) -> Timeframes | None:
    """Check and build the bar sizes ``strategy`` declares; None when it declares none.

    Raises:
        ConfigError: naming the value and the fix, for a declaration that is not a mapping of
            instruments to lists of bar sizes, an instrument no feed delivers, a size that is
            not understood, given twice, not larger than the feed's bars or not a whole
            multiple of them, a size of a day or more in minutes or hours (days are sessions:
            use ``"1d"``), or a feed that does not say its bar size.
    """
    declared = strategy.bar_sizes()
    if not isinstance(declared, Mapping):
        raise ConfigError(
            f"{strategy.name}.bar_sizes() returned a {type(declared).__name__}: return a dict of "
            "instruments to lists of bar sizes, e.g. {spy: ['1h', '1d']}"
        )
    if not declared:
        return None
    # ibkrfw.data is an adapter: loaded only by runs that declare bar sizes
    from ibkrfw.data.aggregate import BarAggregator
    from ibkrfw.data.barsize import bar_size_ns, normalize_bar_size
    from ibkrfw.data.sessions import calendar_for

    feed_of = {inst: feed for feed in feeds for inst in feed.instruments}
    own = {inst: inst for inst in feed_of}  # the feeds' objects, which their bars carry
    where = f"{strategy.name}.bar_sizes()"
    base: dict[Instrument, str] = {}
    frames: dict[Instrument, tuple[_Frame, ...]] = {}
    for inst, sizes in declared.items():
        if not isinstance(inst, Instrument) or inst not in feed_of:
            shown = inst.id if isinstance(inst, Instrument) else repr(inst)
            known = ", ".join(i.id for i in feed_of)
            raise ConfigError(
                f"{where} names {shown}, which no feed of the run delivers; the feeds deliver "
                f"{known}: declare bar sizes of those"
            )
        if isinstance(sizes, str) or not isinstance(sizes, Sequence):
            raise ConfigError(
                f"{where}[{inst.id}] is {sizes!r}: give a list of bar sizes, e.g. ['1h', '1d']"
            )
        inst = own[inst]
        feed = feed_of[inst]
        base_ns = feed.bar_ns
        if base_ns is None:
            raise ConfigError(
                f"{where}[{inst.id}]: the feed ({type(feed).__name__}) does not say how long its "
                "bars are (DataFeed.bar_ns is None), so larger bars cannot be built from them; "
                "give a feed with at least two bars per instrument, or one that sets bar_ns"
            )
        base_name = size_name(base_ns)
        built: list[_Frame] = []
        for size in sizes:
            try:
                name = normalize_bar_size(size)
            except ConfigError as exc:
                raise ConfigError(f"{where}[{inst.id}]: {exc}") from None
            size_ns = bar_size_ns(name)
            if size_ns < _DAY_NS:  # one name per length: "60min" is "1h"
                name = size_name(size_ns)
            problem = _size_problem(name, size_ns, base_ns, base_name)
            if problem is None and any(f.name == name for f in built):
                problem = "is given twice: give each size once"
            if problem is not None:
                raise ConfigError(f"{where}[{inst.id}]: bar size {size!r} {problem}")
            aggregator = BarAggregator(
                inst, size_ns, base_ns, calendar=calendar_for(inst), match_resample=True
            )
            fresh = {key: ind.fresh() for key, ind in indicators.items()}
            built.append(_Frame(name, size_ns, aggregator.add, fresh))
            built[-1].spellings.add(size)
        base[inst] = base_name
        if built:
            frames[inst] = tuple(sorted(built, key=lambda f: f.size_ns))
    for feed in feeds:
        for inst in feed.instruments:
            if inst not in base and feed.bar_ns is not None:
                base[inst] = size_name(feed.bar_ns)
    return Timeframes(base, frames)


def _size_problem(name: str, size_ns: int, base_ns: int, base_name: str) -> str | None:
    """What is wrong with building bars of ``name`` from bars of ``base_name``, or None."""
    sessions = name.endswith(("d", "w"))
    if size_ns <= base_ns:
        return (
            f"is not larger than the feed's bars ({base_name}): those come to on_bar already; "
            "declare only larger sizes"
        )
    if not sessions and size_ns >= _DAY_NS:
        return (
            "lasts a day or more: such bars cannot be placed on the instrument's sessions; "
            "use days ('1d': one session) or weeks ('1w')"
        )
    if not sessions and size_ns % base_ns:
        return (
            f"is not a whole multiple of the feed's bars ({base_name}): a larger bar must hold "
            f"whole base bars; use a multiple of {base_name}"
        )
    if sessions and base_ns < _DAY_NS and _DAY_NS % base_ns:
        return (
            f"cannot be built from bars of {base_name}, which do not divide a day: use a feed "
            "whose bars divide a day (1, 5, 15, 30 minutes, an hour...)"
        )
    if sessions and base_ns > _DAY_NS:
        return f"cannot be built from bars of {base_name}, longer than a day"
    return None
