"""Several strategies in one engine: each a sleeve with its own orders, ledger and rules.

The engine runs one :class:`~ibkrfw.Strategy`; several run as one composite (``_Sleeves``) that
gives each its own :class:`~ibkrfw.Context`: its own orders (tagged with its name), its own
ledger fed by its own fills, its own risk rules and capital. Nothing here runs for an engine
of one strategy.
"""

from __future__ import annotations

import contextlib
import re
from collections import deque
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, final

import attrs
import numpy as np
from typing_extensions import override

from ibkrfw.core.history import BarHistory
from ibkrfw.core.orderbook import StrategyOrders
from ibkrfw.engine.curve import equity_curve
from ibkrfw.engine.result import RunResult
from ibkrfw.engine.timeframes import BySize, plan_timeframes
from ibkrfw.errors import ConfigError
from ibkrfw.indicators.core import Indicator
from ibkrfw.model._decimal import to_decimal
from ibkrfw.model.book import DepthBook
from ibkrfw.model.data import Bar, Quote, Tick
from ibkrfw.model.events import (
    Event,
    FutureSettled,
    OptionSettled,
    OrderCancelRejected,
    OrderEvent,
    OrderFilled,
    OrderModifyRejected,
    TimerFired,
)
from ibkrfw.model.fills import Fill
from ibkrfw.model.instruments import Instrument
from ibkrfw.model.orders import Order, OrderRequest, OrderStatus, Side
from ibkrfw.portfolio.portfolio import Portfolio, _Holding
from ibkrfw.risk.protect import waits_to_exit
from ibkrfw.risk.rule import RiskRule
from ibkrfw.strategy import Context, Strategy

if TYPE_CHECKING:
    from ibkrfw.engine.engine import Engine

__all__ = ["Sleeve"]

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,31}")
_NAME_RULE = (
    "a letter, then up to 31 letters, digits, '_', '.' or '-' (it travels in IB's orderRef, "
    "so no ':', '/' or spaces)"
)
UNALLOCATED = "(unallocated)"
"""The ledger of what belongs to no strategy: cash no sleeve was given, positions adopted
that no strategy claims (and its share of an expired contract's settlement)."""


def _check_strategy(_: object, __: attrs.Attribute[Strategy], value: Strategy) -> None:
    if not isinstance(value, Strategy):
        raise ConfigError(
            f"Sleeve(strategy={value!r}): give a Strategy instance (a {type(value).__name__} "
            "is not one)"
        )


def _check_name(_: object, __: attrs.Attribute[str | None] | None, value: str | None) -> None:
    if value is None:
        return
    if not isinstance(value, str) or _NAME.fullmatch(value) is None:
        raise ConfigError(f"Sleeve(name={value!r}): a strategy's name is {_NAME_RULE}")


def _to_rules(value: object) -> tuple[RiskRule, ...]:
    if isinstance(value, RiskRule):
        return (value,)
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ConfigError(
            f"Sleeve(risk_rules={value!r}): give a sequence of RiskRule instances (or one)"
        )
    bad = [r for r in value if not isinstance(r, RiskRule)]
    if bad:
        raise ConfigError(
            f"Sleeve(risk_rules=...): {bad[0]!r} is a {type(bad[0]).__name__}, not a RiskRule"
        )
    return tuple(value)


def _to_capital(value: object) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        raise ConfigError(
            f"Sleeve(capital={value!r}): give an amount of the account's currency above 0, "
            "or None for an equal share of what the other sleeves leave"
        )
    try:
        amount = to_decimal(value, "capital")
    except Exception:
        amount = Decimal("NaN")
    if not amount.is_finite() or amount <= 0:
        raise ConfigError(
            f"Sleeve(capital={value!r}): give an amount of the account's currency above 0 "
            "(a finite number), or None for an equal share of what the other sleeves leave"
        )
    return amount


@final
@attrs.frozen
class Sleeve:
    """One strategy among several in an :class:`~ibkrfw.Engine`, with its name, rules, capital.

    ``Engine([s1, s2], ...)`` and ``Engine({"trend": s1, "meanrev": s2}, ...)`` wrap each
    strategy in a Sleeve with no rules of its own and an equal share of the account; give
    Sleeves to say more. Each strategy has its own :class:`~ibkrfw.Context`: its orders
    (tagged with its name, IB's ``orderRef`` live), its positions and P&L from its own
    fills, and its capital, which ``order_target_percent`` sizes from.

    Args:
        strategy: The strategy.
        name: Its name in orders, denials, logs and results (the strategy's class name by
            default): a letter, then up to 31 letters, digits, ``_``, ``.`` or ``-``.
        risk_rules: Checks its orders must pass, against its own ledger, before the
            engine's ``risk_rules`` and the broker's account rules (which see the whole
            account). A denial names the strategy and the rule.
        capital: Its budget, in the account's currency: the starting cash of its ledger.
            None (the default) gives it an equal share of what the sleeves with a capital
            leave of the account's starting cash.

    Raises:
        ConfigError: if a value is not of the kind described, naming it.

    Example:
        >>> from ibkrfw.risk import MaxPosition
        >>> from ibkrfw.strategies import MovingAverageCrossover
        >>> sleeve = Sleeve(MovingAverageCrossover(), name="trend", capital=50_000,
        ...                 risk_rules=[MaxPosition(quantity=100)])
        >>> sleeve.label, sleeve.capital
        ('trend', Decimal('50000'))
    """

    strategy: Strategy = attrs.field(validator=_check_strategy)
    name: str | None = attrs.field(default=None, validator=_check_name, kw_only=True)
    risk_rules: tuple[RiskRule, ...] = attrs.field(default=(), converter=_to_rules, kw_only=True)
    capital: Decimal | None = attrs.field(default=None, converter=_to_capital, kw_only=True)

    @property
    def label(self) -> str:
        """Return the name the sleeve goes by (``name``, or the strategy's class name)."""
        return self.name if self.name is not None else self.strategy.name


def sleeves_of(strategies: object) -> tuple[Sleeve, ...] | None:
    """The sleeves ``Engine(strategy=...)`` was given, or None for one plain strategy.

    Raises:
        ConfigError: if it is not a Strategy, a sequence or a mapping of them (or of
            Sleeves), is empty, two sleeves share a name, or one strategy instance is
            given twice.
    """
    if isinstance(strategies, Strategy):
        return None
    items: list[Sleeve] = []
    if isinstance(strategies, Mapping):
        for key, value in strategies.items():
            if isinstance(value, Sleeve):
                if value.name is not None and value.name != key:
                    raise ConfigError(
                        f"Engine: the sleeve under {key!r} is named {value.name!r}; give one "
                        "name (the key, or Sleeve(name=...) in a list)"
                    )
                _check_name(None, None, key)
                items.append(attrs.evolve(value, name=key))
            else:
                _check_name(None, None, key)
                items.append(Sleeve(value, name=key))
    elif isinstance(strategies, Sequence) and not isinstance(strategies, str):
        for value in strategies:
            items.append(value if isinstance(value, Sleeve) else Sleeve(value))
    else:
        raise ConfigError(
            f"Engine(strategy={strategies!r}): give a Strategy, a list of them, a dict of "
            "name: Strategy, or Sleeves"
        )
    if not items:
        raise ConfigError("Engine: give at least one strategy (the list or dict is empty)")
    seen: set[str] = set()
    owners: dict[int, str] = {}
    for sleeve in items:
        label = sleeve.label
        if _NAME.fullmatch(label) is None:
            raise ConfigError(
                f"Engine: the strategy {type(sleeve.strategy).__name__} goes by {label!r}, "
                f"which cannot name a strategy ({_NAME_RULE}): give Sleeve(name=...)"
            )
        if label in seen:
            raise ConfigError(
                f"Engine: two strategies are named {label!r}; give each its own name "
                f"(a dict {{'{label}_a': ..., '{label}_b': ...}} or Sleeve(name=...))"
            )
        seen.add(label)
        first = owners.setdefault(id(sleeve.strategy), label)
        if first != label:  # one object would run twice per bar, on one state
            raise ConfigError(
                f"Engine: the strategies {first!r} and {label!r} are the same "
                f"{type(sleeve.strategy).__name__} instance: give each sleeve its own instance "
                "(build it twice, or copy.deepcopy it)"
            )
    return tuple(items)


class _Book:
    """One ledger fed by fills, recording its cash and position steps for an equity curve."""

    __slots__ = ("cash", "currency", "exposure", "lane", "ledger", "start", "ts")

    def __init__(self, ledger: Portfolio, start: Decimal) -> None:
        self.ledger = ledger
        self.start = start
        self.ts: list[int] = []
        self.lane: list[int] = []
        self.cash: list[float] = []
        self.exposure: list[float] = []
        self.currency: list[int] = []

    def book(self, fill: Fill, engine: Engine) -> None:
        ledger = self.ledger
        ledger.apply_fill(fill)
        lane = engine._lanes.get(fill.instrument)
        if lane is None:
            return
        self.ts.append(fill.ts_ns)
        self.lane.append(lane.index)
        self.exposure.append(ledger.holding(fill.instrument).qty_f)
        self.currency.append(lane.currency)
        self.cash.append(
            ledger.cash_f if not lane.currency else float(ledger.balance(fill.instrument.currency))
        )


class _Slot:
    """A sleeve while the engine runs: its strategy, context, ledger and handlers."""

    def __init__(self, sleeve: Sleeve) -> None:
        self.sleeve = sleeve
        self.name = sleeve.label
        self.strategy = sleeve.strategy
        self.ctx: Context | None = None
        self.book: _Book | None = None
        self.holdings: dict[Instrument, _Holding] = {}
        self.orders: StrategyOrders | None = None
        kind, base = type(self.strategy), Strategy
        self.on_bar = self.strategy.on_bar if kind.on_bar is not base.on_bar else None
        self.on_slice = self.strategy.on_slice if kind.on_slice is not base.on_slice else None
        self.sizes: set[tuple[Instrument, str]] = set()  # the larger bar sizes it declared


class _Router:
    """What a sleeve's Context sends through: the engine, with the sleeve's name and rules."""

    def __init__(self, slot: _Slot, sleeves: _Sleeves) -> None:
        self._slot = slot
        self._sleeves = sleeves

    @property
    def _engine(self) -> Engine:
        engine = self._sleeves.engine
        if engine is None:  # pragma: no cover - bound by the Engine that builds it
            raise ConfigError("the strategies are not bound to an engine")
        return engine

    def _named(self, request: OrderRequest) -> OrderRequest:
        return attrs.evolve(request, strategy=self._slot.name)

    def submit(self, request: OrderRequest) -> Order:
        engine, name = self._engine, self._slot.name
        if request.strategy and request.strategy != name:
            return engine.deny(
                self._named(request),
                f"strategy {name!r} sent an order named for strategy {request.strategy!r}: "
                "a strategy sends orders in its own name only (leave OrderRequest.strategy "
                "empty)",
                "validation",
            )
        request = self._named(request)
        if request.parent_id is not None:
            return engine.deny(request, _NO_BRACKETS, "validation")
        asked = request
        resized: list[tuple[str, str]] = []
        request, refusal = self._check(request, resized)
        if refusal is not None:
            return engine.deny(asked, f"strategy {name!r}: {refusal[1]}", refusal[0])
        order = engine.submit(request)
        if resized and order.status is not OrderStatus.DENIED:
            engine._resized(
                order.order_id, engine.clock.now_ns(), asked.quantity, order.quantity, resized
            )
        return order

    def submit_together(self, requests: Sequence[OrderRequest], what: str) -> list[Order]:
        """The engine's :meth:`~ibkrfw.Engine.submit_together`, after this strategy's rules.

        Each request goes in this strategy's name and through its own rules first, whole or
        not at all (a rule that would shrink one refuses them all, as the engine's do).
        """
        engine, name = self._engine, self._slot.name
        named = [self._named(request) for request in requests]
        refusal: tuple[int, str, str] | None = None
        for i, (asked, request) in enumerate(zip(requests, named, strict=True)):
            if asked.strategy and asked.strategy != name:
                other = f"it is named for strategy {asked.strategy!r}"
                refusal = (i, "validation", f"{other}, and a strategy names only its own")
                break
            resized: list[tuple[str, str]] = []
            checked, refused = self._check(request, resized)
            if refused is None and checked.quantity != request.quantity:
                cut = f"it would be cut to {checked.quantity} ({resized[0][1]})"
                refused = (resized[0][0], f"{cut}, and these orders go whole or not at all")
            if refused is not None:
                refusal = (i, *refused)
                break
        if refusal is None:
            return engine.submit_together(named, what)
        at, rule, reason = refusal
        said = f"strategy {name!r}: {engine.together_refused(what, named, at, rule, reason)}"
        return [engine.deny(request, said, rule) for request in named]

    def _check(
        self, request: OrderRequest, resized: list[tuple[str, str]]
    ) -> tuple[OrderRequest, tuple[str, str] | None]:
        """Run the sleeve's own rules on ``request`` against its ledger."""
        slot, engine = self._slot, self._engine
        if not slot.sleeve.risk_rules or slot.book is None:
            return request, None
        now = engine.clock.now_ns()
        for rule in slot.sleeve.risk_rules:
            engine._risk_joining = request
            try:
                decision = rule.check(request, slot.book.ledger, now)
            finally:
                engine._risk_joining = None
            if not decision.approved:
                return request, (rule.name, decision.reason)
            smaller = decision.quantity
            if smaller is None:
                continue
            if smaller <= 0 or smaller >= request.quantity or smaller % request.instrument.lot_size:
                return request, (
                    rule.name,
                    f"the rule shrank the order to {smaller}, which is not a whole number of "
                    f"lots above 0 and below {request.quantity} ({decision.reason})",
                )
            request = attrs.evolve(request, quantity=smaller)
            resized.append((f"{slot.name}/{rule.name}", decision.reason))
        return request, None

    def cancel(self, order: Order) -> None:
        self._engine.cancel(order)

    def deny(self, request: OrderRequest, reason: str, rule: str) -> Order:
        return self._engine.deny(self._named(request), reason, rule)

    def modify(self, order: Order, request: OrderRequest) -> None:
        engine, name = self._engine, self._slot.name
        resized: list[tuple[str, str]] = []
        engine._risk_exclude = frozenset((order.order_id,))  # the replacement stands in
        try:
            checked, refusal = self._check(request, resized)
        finally:
            engine._risk_exclude = frozenset()
        if refusal is not None:
            engine.refuse_modify(order, f"strategy {name!r}: {refusal[0]}: {refusal[1]}")
            return
        if resized:
            engine.refuse_modify(
                order,
                f"strategy {name!r}: {resized[0][0]} would shrink the change ({resized[0][1]}); "
                "ask for a quantity the strategy's rules let through",
            )
            return
        engine.modify(order, checked)

    def refuse_modify(self, order: Order | None, reason: str) -> None:
        if order is None:
            self._sleeves.askers.append(self._slot)
        self._engine.refuse_modify(order, reason)

    def refuse_cancel(self, reason: str) -> None:
        self._sleeves.askers.append(self._slot)
        self._engine.refuse_cancel(reason)

    def group(self) -> contextlib.AbstractContextManager[None]:
        return self._engine.group()

    def bracket_problem(self, entry: OrderRequest) -> str | None:
        return _NO_BRACKETS


_NO_BRACKETS = (
    "brackets (orders with a parent) are not available when one engine runs several "
    "strategies: the engine keeps a bracket's exits within the account's position, which "
    "other strategies move too; send the stop-loss and take-profit as orders of their own"
)


@final
class _Sleeves(Strategy):
    """The strategies of one engine, run as one: each sees its own Context."""

    def __init__(self, sleeves: Sequence[Sleeve]) -> None:
        self.slots = [_Slot(s) for s in sleeves]
        self.by_name = {slot.name: slot for slot in self.slots}
        self.engine: Engine | None = None
        self.askers: deque[_Slot] = deque()  # who asked for each refusal of no order
        self.unallocated: _Book | None = None
        self._bar_slots: tuple[_Slot, ...] = ()
        self._ready = False
        # a flatten's fill, by fill id: the parts booked in each strategy's ledger, for its on_fill
        self._shares: dict[str, list[tuple[_Slot, Fill]]] = {}

    # --- what the engine asks of a strategy ------------------------------------------------
    @property
    @override
    def name(self) -> str:
        return "+".join(self.by_name)

    @override
    def parameters(self) -> dict[str, object]:
        return {
            f"{slot.name}.{key}": value
            for slot in self.slots
            for key, value in slot.strategy.parameters().items()
        }

    @override
    def indicators(self) -> Mapping[str, Indicator]:
        return {
            f"{slot.name}:{key}": ind
            for slot in self.slots
            for key, ind in slot.strategy.indicators().items()
        }

    @override
    def bar_sizes(self) -> Mapping[Instrument, Sequence[str]]:
        """Every size some strategy declares, per instrument (each is checked on its own)."""
        engine = self._engine()
        union: dict[Instrument, list[str]] = {}
        for slot in self.slots:
            own = plan_timeframes(slot.strategy, engine.feeds, {})  # its own errors, named
            slot.sizes = set()
            if own is None:
                continue
            for inst, frames in own.frames.items():
                for frame in frames:
                    slot.sizes.add((inst, frame.name))
                    names = union.setdefault(inst, [])
                    if frame.name not in names:  # the size's one name, however it was spelt
                        names.append(frame.name)
        return union

    @property
    @override
    def warmup_bars(self) -> int:
        return max(slot.strategy.warmup_bars for slot in self.slots)

    def bind(self, engine: Engine) -> None:
        """Run in ``engine`` (which refuses what the sleeves cannot share: see Engine)."""
        self.engine = engine

    # --- start -----------------------------------------------------------------------------
    def _budgets(self, total: Decimal) -> list[Decimal]:
        given = [slot.sleeve.capital for slot in self.slots]
        allotted = sum((c for c in given if c is not None), Decimal(0))
        if allotted > total:
            raise ConfigError(
                f"the sleeves' capital adds up to {allotted}, more than the account's "
                f"{total}: give them budgets that fit (or None for an equal share)"
            )
        free = [i for i, c in enumerate(given) if c is None]
        share = (
            ((total - allotted) / len(free)).quantize(Decimal("0.01"), rounding="ROUND_DOWN")
            if free
            else Decimal(0)
        )
        if free and share <= 0:
            names = ", ".join(repr(self.slots[i].name) for i in free)
            raise ConfigError(
                f"the sleeves' capital adds up to {allotted} of the account's {total} and would "
                f"leave nothing for {names}: give the sleeves budgets that leave it some, or "
                "give it a capital of its own"
            )
        return [share if c is None else c for c in given]

    @override
    def on_start(self, ctx: Context) -> None:
        self._set_up()
        for slot in self.slots:
            slot.strategy.on_start(self._ctx(slot))

    def _set_up(self) -> None:
        """Build each strategy's ledger and Context, once the engine has its portfolio.

        Live, events (the reconciliation's, say) may come before the first bar and
        ``on_start``: the first handler called sets them up.
        """
        engine = self.engine
        if self._ready or engine is None or engine.portfolio is None:
            return
        self._ready = True
        account = engine.portfolio
        base, fx, clock = account.base_currency, account.fx, engine.clock
        adopted = account.fills  # booked before the start: positions held at the broker
        total = account.cash + sum((_cost(f) for f in adopted), Decimal(0))
        budgets = self._budgets(total)
        histories = {inst: lane.history for inst, lane in engine._lanes.items()}

        def ledger(cash: Decimal, orders: StrategyOrders | None) -> Portfolio:
            book = Portfolio(cash, base, fx, clock)
            if orders is not None:
                book.follow_orders(
                    lambda: orders.working(engine._risk_exclude, engine._risk_joining),
                    lambda inst: orders.pending_quantity(inst, waits_to_exit, engine._risk_exclude),
                )
            book.follow_histories(histories)
            for inst in engine._lanes:
                book.holding(inst).price = account.price(inst)
            return book

        rest = total - sum(budgets, Decimal(0))
        self.unallocated = _Book(ledger(rest, None), rest)
        for slot, budget in zip(self.slots, budgets, strict=True):
            slot.orders = StrategyOrders(engine.orders, slot.name)
            slot.book = _Book(ledger(budget, slot.orders), budget)
            slot.holdings = {inst: slot.book.ledger.holding(inst) for inst in engine._lanes}
            slot.ctx = Context(
                clock,
                slot.book.ledger,
                slot.orders,
                histories,
                _Router(slot, self),
                engine._timers,
                engine.log.getChild(slot.name),
                {
                    inst: {
                        key.split(":", 1)[1]: ind
                        for key, ind in lane.indicators.items()
                        if key.split(":", 1)[0] == slot.name
                    }
                    for inst, lane in engine._lanes.items()
                },
                engine._depth_book,
                lambda inst, source: engine._greeks.get((inst, source)),
                bar_sizes=self._sizes_of(slot, engine, histories),
                timer_prefix=f"{slot.name}:",
            )
            slot.ctx.bar_size = engine._ctx.bar_size if engine._ctx is not None else None
        for fill in adopted:  # each strategy then takes its own share (below)
            self.unallocated.book(fill, engine)
        if adopted:
            self._hand_back(engine)
        self._bar_slots = tuple(slot for slot in self.slots if slot.on_bar is not None)
        bar_ns = min((s for f in engine.feeds if (s := f.bar_ns) is not None), default=None)
        for slot in self.slots:
            ledger_ = self._book(slot).ledger
            for rule in slot.sleeve.risk_rules:
                said = rule.on_start(ledger_, bar_ns)
                if said:
                    engine._risk_warning(f"{slot.name}/{rule.name}", said)

    @staticmethod
    def _sizes_of(
        slot: _Slot, engine: Engine, histories: Mapping[Instrument, BarHistory]
    ) -> BySize | None:
        """What ``ctx.history(..., bar_size=)`` finds for ``slot``: its own sizes, indicators."""
        sizes = engine._timeframes
        if sizes is None:
            return None
        found = sizes.for_context(
            histories, {inst: lane.indicators for inst, lane in engine._lanes.items()}
        )
        prefix = f"{slot.name}:"
        return BySize({
            (inst, size): (history, {
                key.removeprefix(prefix): ind
                for key, ind in indicators.items()
                if key.startswith(prefix)
            })
            for (inst, size), (history, indicators) in found.items()
            if size == sizes.base.get(inst) or (inst, size) in slot.sizes
            or any(
                (inst, frame.name) in slot.sizes and size in frame.spellings
                for frame in sizes.frames.get(inst, ())
            )
        })  # fmt: skip  # "60min" where the union says "1h": found by BySize.__missing__

    def _hand_back(self, engine: Engine) -> None:
        """Give each strategy the positions its own records say it held (a restart).

        Each takes its position at its average cost out of the unallocated ledger, paid
        from its capital; what no strategy of this run claims stays unallocated.
        """
        unallocated = self.unallocated
        if unallocated is None:  # pragma: no cover - built just before
            return
        by_id = {inst.id: inst for inst in engine._lanes}
        now = engine.clock.now_ns()
        for name, held in engine.broker.strategy_positions().items():
            slot = self.by_name.get(name)
            for inst_id, (quantity, price) in held.items():
                inst = by_id.get(inst_id)
                if slot is None or inst is None:
                    engine.log.warning(
                        "%s %s of strategy %r stays unallocated: %s", quantity, inst_id, name,
                        "no strategy of this run has that name" if slot is None
                        else "no feed of this run delivers it",
                    )  # fmt: skip
                    continue
                side = Side.BUY if quantity > 0 else Side.SELL
                size = abs(quantity)
                fill = Fill(0, inst, side, size, price, Decimal(0), now, f"adopted:{name}")
                self._book(slot).book(fill, engine)
                other = Side.SELL if side is Side.BUY else Side.BUY
                back = Fill(0, inst, other, size, price, Decimal(0), now,
                            f"adopted:{name}")  # fmt: skip
                unallocated.book(back, engine)
                engine.log.info("strategy %r holds %s %s at %s (its journal)", name, quantity,
                                inst_id, price)  # fmt: skip

    def _book(self, slot: _Slot) -> _Book:
        book = slot.book
        if book is None:
            self._set_up()
            book = slot.book
            if book is None:  # pragma: no cover - the engine calls handlers once it runs
                raise ConfigError(f"strategy {slot.name!r} has not started")
        return book

    def _engine(self) -> Engine:
        engine = self.engine
        if engine is None:  # pragma: no cover - bound by the Engine that builds it
            raise ConfigError("the strategies are not bound to an engine")
        return engine

    def _ctx(self, slot: _Slot) -> Context:
        ctx = slot.ctx
        if ctx is None:
            self._set_up()
            ctx = slot.ctx
            if ctx is None:  # pragma: no cover - the engine calls handlers once it runs
                raise ConfigError(f"strategy {slot.name!r} has not started")
        return ctx

    # --- market data -----------------------------------------------------------------------
    @override
    def on_bar(self, ctx: Context, bar: Bar) -> None:
        inst, close = bar.instrument, bar.close
        for slot in self.slots:
            slot.holdings[inst].price = close
        unallocated = self.unallocated
        if unallocated is not None:
            unallocated.ledger.holding(inst).price = close
        size = ctx.bar_size
        if self.engine is not None and size is not None and size != self._base_size(inst):
            # a larger bar: only to the strategies that declared its size
            for slot in self._bar_slots:
                if (inst, size) in slot.sizes:
                    slot.ctx.bar_size = size  # type: ignore[union-attr]
                    slot.on_bar(slot.ctx, bar)  # type: ignore[misc,arg-type]
                    slot.ctx.bar_size = self._base_size(inst)  # type: ignore[union-attr]
            return
        for slot in self._bar_slots:
            slot.ctx.bar_size = size  # type: ignore[union-attr]
            slot.on_bar(slot.ctx, bar)  # type: ignore[misc,arg-type]

    def _base_size(self, inst: Instrument) -> str | None:
        """The size of ``inst``'s base bars (its feed's), by name, when the run has sizes."""
        engine = self.engine
        sizes = None if engine is None else engine._timeframes
        if sizes is None:
            return None if engine is None or engine._ctx is None else engine._ctx.bar_size
        return sizes.base.get(inst)

    @override
    def on_slice(self, ctx: Context, bars: Sequence[Bar]) -> None:
        for slot in self.slots:
            if slot.on_slice is not None:
                slot.on_slice(self._ctx(slot), bars)

    @override
    def on_quote(self, ctx: Context, quote: Quote) -> None:
        for slot in self.slots:
            slot.strategy.on_quote(self._ctx(slot), quote)

    @override
    def on_tick(self, ctx: Context, tick: Tick) -> None:
        for slot in self.slots:
            slot.strategy.on_tick(self._ctx(slot), tick)

    @override
    def on_book(self, ctx: Context, book: DepthBook) -> None:
        for slot in self.slots:
            slot.strategy.on_book(self._ctx(slot), book)

    # --- orders ------------------------------------------------------------------------------
    def _owner(self, request: OrderRequest) -> _Slot | None:
        return self.by_name.get(request.strategy) if request.strategy else None

    @override
    def on_order(self, ctx: Context, order: Order, event: OrderEvent) -> None:
        slot = self._owner(order.request)
        if type(event) is OrderFilled:
            if slot is None and order.order_id in self._engine()._flattening:
                self._share_flatten(event.fill)
            else:
                self._attribute(slot, event.fill)
        if slot is not None:
            slot.strategy.on_order(self._ctx(slot), order, event)

    def _attribute(self, slot: _Slot | None, fill: Fill) -> None:
        """Book ``fill`` in its strategy's ledger (the unallocated one for the engine's own)."""
        self._set_up()
        book = slot.book if slot is not None else self.unallocated
        if book is not None:
            book.book(fill, self._engine())

    def _share_flatten(self, fill: Fill) -> None:
        """Close the strategies' positions with a fill of the engine's flatten, to the cent.

        The flatten closes the account's net position. The strategies holding the other way
        from the account (whom its fills would not close) first cross their positions with
        the others at the fill's price, without commission, which nets to nothing; then the
        fill goes to the strategies it closes, in order, each paying its share of the
        commission (in cents, the last the rest). What it closes beyond them is unallocated.
        """
        self._set_up()
        engine, inst = self._engine(), fill.instrument
        sign, price, ts = fill.side.sign, fill.price, fill.ts_ns
        books = [self._book(slot) for slot in self.slots]
        slot_of = {id(book): slot for book, slot in zip(books, self.slots, strict=True)}
        told = self._shares.setdefault(fill.fill_id, [])

        def book_in(book: _Book, part: Fill) -> None:
            book.book(part, engine)
            slot = slot_of.get(id(book))
            if slot is not None:  # its strategy's on_fill is told of it (see on_fill)
                told.append((slot, part))

        closing = [b for b in books if b.ledger.quantity(inst) * sign < 0]
        wrong = [b for b in books if b.ledger.quantity(inst) * sign > 0]
        for book in wrong:  # crossed with those the fill closes, at its price
            for other in closing:
                size = min(abs(book.ledger.quantity(inst)), abs(other.ledger.quantity(inst)))
                if not size:
                    continue
                for who, side in ((book, _flip(fill.side)), (other, fill.side)):
                    book_in(who, Fill(fill.order_id, inst, side, size, price, Decimal(0), ts,
                                      f"{fill.fill_id}:cross"))  # fmt: skip
        left, fee = fill.quantity, fill.commission
        shares: list[tuple[_Book, Decimal]] = []
        for book in closing:
            take = min(left, abs(book.ledger.quantity(inst)))
            if take:
                shares.append((book, take))
                left -= take
        if left:
            shares.append((self.unallocated or books[0], left))
        paid = Decimal(0)
        for number, (book, take) in enumerate(shares):
            last = number == len(shares) - 1
            cost = fee - paid if last else (fee * take / fill.quantity).quantize(Decimal("0.01"))
            paid += cost
            book_in(book, attrs.evolve(fill, quantity=take, commission=cost,
                                       fill_id=f"{fill.fill_id}:{number}"))  # fmt: skip

    def _share_settlement(
        self, event: OptionSettled | FutureSettled, contract: Instrument
    ) -> dict[int, OptionSettled | FutureSettled]:
        """Settle each strategy's own holding of an expired ``contract`` (option, future).

        The broker settles the account's net holding: each of its fills (the contract
        closed, the underlying delivered) is the sum of what each holder's own settlement
        would be. Each strategy (and the unallocated ledger) gets those fills in proportion
        to its own holding, its sign included: one that held the contract the other way gets
        them reversed (a short call assigned where the account's long calls were exercised).
        The quantities are exact: a holder's share of a fill is its holding times the fill's
        quantity per contract.

        Returns:
            The event as each strategy that held the contract sees it, by ``id`` of its
            slot: its own quantity and fills (and, for an option, exercised or assigned by
            its own side).
        """
        self._set_up()
        engine = self._engine()
        books: list[tuple[_Slot | None, _Book]] = [(s, self._book(s)) for s in self.slots]
        if self.unallocated is not None:
            books.append((None, self.unallocated))
        holders = [(slot, b, q) for slot, b in books if (q := b.ledger.quantity(contract))]
        net = sum((q for _, _, q in holders), Decimal(0))
        if not net:  # pragma: no cover - the broker settles a held contract only
            for fill in event.fills:
                self._attribute(None, fill)
            return {}
        own: dict[int, OptionSettled | FutureSettled] = {}
        for number, (slot, book, held) in enumerate(holders):
            fills = []
            for fill in event.fills:
                share = fill.quantity * held / net
                side = fill.side if share > 0 else _flip(fill.side)
                fills.append(attrs.evolve(fill, side=side, quantity=abs(share),
                                          fill_id=f"{fill.fill_id}:{number}"))  # fmt: skip
            for fill in fills:
                book.book(fill, engine)
            if slot is None:
                continue
            said = f"{event.reason} (this strategy held {held} of the account's {net})"
            if type(event) is OptionSettled:
                action = event.action
                if action != "expired":
                    action = "exercised" if held > 0 else "assigned"
                own[id(slot)] = attrs.evolve(event, quantity=held, fills=tuple(fills),
                                             action=action, reason=said)  # fmt: skip
            else:
                own[id(slot)] = attrs.evolve(event, quantity=held, fills=tuple(fills),
                                             reason=said)  # fmt: skip
        return own

    @override
    def on_fill(self, ctx: Context, fill: Fill) -> None:
        engine = self.engine
        order = engine.orders.get(fill.order_id) if engine is not None else None
        slot = self._owner(order.request) if order is not None else None
        if slot is not None:
            slot.strategy.on_fill(self._ctx(slot), fill)
        elif self._shares:  # a flatten's: each strategy is told of the parts in its books
            # as one fill (its parts have one price and side), its books then being its fills
            told: dict[str, tuple[_Slot, Fill]] = {}
            for owner, part in self._shares.pop(fill.fill_id, ()):
                seen = told.get(owner.name)
                told[owner.name] = (owner, part if seen is None else attrs.evolve(
                    seen[1], quantity=seen[1].quantity + part.quantity,
                    commission=seen[1].commission + part.commission,
                ))  # fmt: skip
            for owner, whole in told.values():
                owner.strategy.on_fill(self._ctx(owner), whole)

    @override
    def on_timer(self, ctx: Context, timer: TimerFired) -> None:
        name, _, rest = timer.name.partition(":")
        slot = self.by_name.get(name)
        if slot is not None:
            slot.strategy.on_timer(self._ctx(slot), attrs.evolve(timer, name=rest))

    @override
    def on_event(self, ctx: Context, event: Event) -> None:
        kind = type(event)
        if kind in (OrderCancelRejected, OrderModifyRejected) and event.order_id == -1:  # type: ignore[attr-defined]
            asker = self.askers.popleft() if self.askers else None
            if asker is not None:
                asker.strategy.on_event(self._ctx(asker), event)
            return
        if type(event) is OptionSettled or type(event) is FutureSettled:  # fills of no order
            contract = event.option if type(event) is OptionSettled else event.future
            own = self._share_settlement(event, contract)
            for slot in self.slots:  # each of its own holding; none to one that held none
                mine = own.get(id(slot))
                if mine is not None:
                    slot.strategy.on_event(self._ctx(slot), mine)
            return
        for slot in self.slots:
            slot.strategy.on_event(self._ctx(slot), event)

    @override
    def on_stop(self, ctx: Context) -> None:
        for slot in self.slots:
            slot.strategy.on_stop(self._ctx(slot))

    # --- results -----------------------------------------------------------------------------
    def ledgers(self) -> dict[str, Portfolio]:
        """Each strategy's ledger by name, then the unallocated one (see ``UNALLOCATED``)."""
        out = {slot.name: slot.book.ledger for slot in self.slots if slot.book is not None}
        if self.unallocated is not None:
            out[UNALLOCATED] = self.unallocated.ledger
        return out

    def results(self, combined: RunResult) -> dict[str, RunResult]:
        """One :class:`RunResult` per strategy, from its own fills and orders."""
        engine = self._engine()
        lanes = engine._lanes
        histories = [lane.history.last() for lane in lanes.values()]
        currencies = list(engine._currencies)
        out: dict[str, RunResult] = {}
        for slot in self.slots:
            book = slot.book
            if book is None:
                continue
            for fill in book.ledger.fills:  # a currency first met by the account's fills
                if fill.instrument.currency not in currencies:  # pragma: no cover
                    currencies.append(fill.instrument.currency)
            ts, cash, equity = equity_curve(
                [(h.ts_ns, h.close) for h in histories],
                np.asarray(book.ts, dtype=np.int64),
                np.asarray(book.lane, dtype=np.int64),
                np.asarray(book.cash, dtype=np.float64),
                np.asarray(book.exposure, dtype=np.float64),
                float(book.start),
                fill_currency=np.asarray(book.currency, dtype=np.int64),
                lane_currency=[lane.currency for lane in lanes.values()],
                currencies=currencies,
                fx=combined.fx,
            )
            name = slot.name
            out[name] = RunResult(
                strategy_name=name,
                parameters=slot.strategy.parameters(),
                starting_cash=float(book.start),
                timestamps_ns=ts,
                equity=equity,
                cash=cash,
                orders=[o for o in combined.order_list if o.request.strategy == name],
                fills=book.ledger.fills,
                realized=book.ledger.realized_per_fill,
                bars=dict(zip(lanes, histories, strict=True)),
                base_currency=combined.base_currency,
                fx=combined.fx,
                halts=combined.halts,
                risk_warnings=[w for w in combined.risk_warnings if w.rule.startswith(f"{name}/")],
            )
        return out


def _flip(side: Side) -> Side:
    return Side.SELL if side is Side.BUY else Side.BUY


def _cost(fill: Fill) -> Decimal:
    value = fill.quantity * fill.price * fill.instrument.multiplier
    return (value if fill.side.sign > 0 else -value) + fill.commission


def check_shared(sleeves: Sequence[Sleeve], protection: Sequence[object]) -> None:
    """Refuse what several strategies cannot share: a Protection (engine-kept stops).

    Raises:
        ConfigError: if ``protection`` is given with several strategies.
    """
    if protection:
        names = ", ".join(s.label for s in sleeves)
        raise ConfigError(
            f"Engine(protection=...) with several strategies ({names}): a Protection keeps "
            "stops on the account's position, which belongs to all of them, and its exits "
            "would close one strategy's position with another's; give each strategy its "
            "own stop orders (ctx.sell(..., stop_price=...)), or run it in an engine of its own"
        )
