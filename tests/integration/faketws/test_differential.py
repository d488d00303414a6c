"""Backtest against live: the same random strategies on SimBroker and through the fake TWS.

The promise under test: a strategy runs in a backtest or live with the same code and the same
outcome. Each example draws a random walk of bars and a script of actions per bar (orders of
every kind, targets, brackets, cancels, modifications, with or without a Protection), runs it
once on :class:`~ibkrfw.sim.SimBroker` over the bars and once live, IB's official client over
a real socket to a :class:`~ibkrfw.testing.FakeTWS` replaying the same bars, and requires the
same order events, fills, positions, cash and equity, bar for bar. The differences that are
IB's own are listed and normalised in one place, :func:`comparable`.

``HYPOTHESIS_PROFILE=long`` runs many more examples than CI's few.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import attrs
import pandas as pd
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ibkrfw import (
    Bar,
    ConfigError,
    Context,
    Engine,
    Fill,
    Order,
    OrderEvent,
    OrderFilled,
    OrderStatus,
    Stock,
    Strategy,
)
from ibkrfw.risk import MaxOrderNotional, MaxPosition, Protection, RiskRule, StopLoss, TakeProfit
from ibkrfw.risk.protect import STOP_TAG, TAKE_TAG
from ibkrfw.sim import DataFrameFeed, IBKRFixedCommission, SimBroker
from ibkrfw.testing import FakeTWS, LiveSession, ScriptedStrategy, bars_frame

ACME = Stock("ACME")
CASH = 1_000_000
TIMEOUT = 10.0  # seconds: the longest the live run waits for any one step

# --- the script ------------------------------------------------------------------------------
# An action is a tuple: its kind, then numbers the strategy turns into an order from what it
# sees (the bar's close, its open orders), so both runs take the same decisions as long as
# they saw the same things.
Action = tuple[Any, ...]


def _price(close: float, per_mille: int) -> Decimal:
    return ACME.round_price(close * (1 + per_mille / 1000))


def _own(order: Order) -> bool:
    """Whether the strategy alone changes ``order``: not a bracket's exit or a protective order.

    The engine cancels, resizes and places those itself as the position changes, so whether
    they still work when a bar's handler runs depends on when the broker answers.
    """
    request = order.request
    return request.parent_id is None and request.tag not in (STOP_TAG, TAKE_TAG)


def _pick(ctx: Context, bar: Bar, k: int) -> Order | None:
    """The k-th (modulo) of the strategy's own orders decided on an earlier bar, still working."""
    orders = [o for o in ctx.open_orders(ACME) if _own(o) and o.created_ns < bar.ts_ns]
    return sorted(orders, key=lambda o: o.order_id)[k % len(orders)] if orders else None


def act(ctx: Context, bar: Bar, action: Action) -> None:
    """Do what ``action`` says on ``bar``."""
    kind, *args = action
    close = bar.close
    if kind == "market":
        side, qty, tif = args
        (ctx.buy if side == "BUY" else ctx.sell)(ACME, qty, tif=tif)
    elif kind == "limit":
        side, qty, away, tif = args  # away > 0: below the close for a buy (resting)
        sign = 1 if side == "BUY" else -1
        price = _price(close, -sign * away)
        (ctx.buy if side == "BUY" else ctx.sell)(ACME, qty, limit_price=price, tif=tif)
    elif kind == "stop":
        side, qty, away, tif = args  # away > 0: above the close for a buy (not yet touched)
        sign = 1 if side == "BUY" else -1
        price = _price(close, sign * away)
        (ctx.buy if side == "BUY" else ctx.sell)(ACME, qty, stop_price=price, tif=tif)
    elif kind == "stop_limit":
        side, qty, away, room, tif = args
        sign = 1 if side == "BUY" else -1
        stop = _price(close, sign * away)
        limit = ACME.round_price(float(stop) * (1 + sign * room / 1000))
        (ctx.buy if side == "BUY" else ctx.sell)(
            ACME, qty, stop_price=stop, limit_price=limit, tif=tif
        )
    elif kind == "trail":
        side, qty, by, value, tif = args  # a trailing stop: by price or by percent
        trail = {"trail_amount": value / 100} if by == "amount" else {"trail_percent": value / 10}
        (ctx.buy if side == "BUY" else ctx.sell)(ACME, qty, tif=tif, **trail)
    elif kind == "auction":
        side, qty, how = args  # on the close (MOC) or on the open (OPG)
        options = {"order_type": "MOC"} if how == "close" else {"tif": "OPG"}
        (ctx.buy if side == "BUY" else ctx.sell)(ACME, qty, **options)
    elif kind == "target_qty":
        (target,) = args
        ctx.order_target_quantity(ACME, target)
    elif kind == "target_pct":
        (percent,) = args
        ctx.order_target_percent(ACME, percent / 100)
    elif kind == "bracket":
        side, qty, profit, loss, entry = args
        sign = 1 if side == "BUY" else -1
        ctx.bracket(
            ACME,
            side,
            qty,
            take_profit=_price(close, sign * profit),
            stop_loss=_price(close, -sign * loss),
            entry_limit=None if entry is None else _price(close, -sign * entry),
        )
    elif kind == "cancel":
        (k,) = args
        order = _pick(ctx, bar, k)
        if order is not None:
            ctx.cancel(order)
    elif kind == "modify":
        k, what, amount = args
        order = _pick(ctx, bar, k)
        if order is None:
            return
        request = order.request
        if what == "quantity":
            ctx.modify(order, quantity=order.filled_quantity + amount)
        elif what == "price" and request.limit_price is not None:
            ctx.modify(order, limit_price=_price(float(request.limit_price), amount))
        elif what == "price" and request.stop_price is not None:
            ctx.modify(order, stop_price=_price(float(request.stop_price), amount))
    else:  # pragma: no cover - the script's kinds are the ones above
        raise AssertionError(kind)


@attrs.frozen
class Snapshot:
    """What the strategy sees at the start of a bar, after that bar's fills."""

    index: int
    position: Decimal
    cash: Decimal
    equity: float
    orders: tuple[tuple[int, str, Decimal, Decimal], ...]  # the strategy's own (see _own)


class Scripted(Strategy):
    """Runs a script of actions per bar and records everything it sees."""

    def __init__(self, script: dict[int, list[Action]]) -> None:
        self.script = script
        self.snapshots: list[Snapshot] = []
        self.events: list[tuple[int, OrderEvent, Order]] = []  # bar index, event, order after
        self.fills: list[Fill] = []
        self.errors: list[tuple[int, str]] = []

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        index = len(self.snapshots)
        pf = ctx.portfolio
        self.snapshots.append(
            Snapshot(
                index,
                pf.quantity(ACME),
                pf.cash,
                pf.equity,
                tuple(
                    (o.order_id, o.status.value, o.quantity, o.filled_quantity)
                    for o in sorted(ctx.open_orders(ACME), key=lambda o: o.order_id)
                    if _own(o)
                ),
            )
        )
        for action in self.script.get(index, ()):
            try:
                act(ctx, bar, action)
            except ConfigError as exc:  # e.g. a bracket whose prices rounded onto each other
                self.errors.append((index, str(exc)))

    def on_order(self, ctx: Context, order: Order, event: OrderEvent) -> None:
        self.events.append((len(self.snapshots), event, order))

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        self.fills.append(fill)


# --- what may differ, and why ---------------------------------------------------------------
def comparable(strategy: Scripted) -> dict[str, Any]:
    """What a run must share with its twin, with IB's own differences made equal.

    Every difference normalised here is one that IB makes, not a defect:

    * An order's end at its time in force: the simulator says ``OrderExpired``; TWS reports
      an expired DAY order as ``orderStatus`` "Cancelled" (with error 202), so the IB adapter
      says ``OrderCancelled``. Both count as the order ending unfilled ("ENDED"), and the
      statuses ``EXPIRED`` and ``CANCELLED`` as one.
    * Identifiers the broker gives: ``OrderAccepted.broker_order_id`` (``SIM<id>`` against
      IB's permId) and ``Fill.fill_id`` (``SIM-<id>-<n>`` against IB's ``execId``) are left
      out; the engine's own order ids must agree.
    * Words: IB's texts (``"Order Canceled - reason:..."``) wrap the simulator's, and its
      refusals carry its codes (``"IB error 103: ..."``); the kind of event is compared.
    * When answers arrive: the simulator answers an order, a cancellation or a change while
      the engine's handler runs; IB answers over the socket, after the handler returns. So
      events are compared order by order, each order's in sequence, not interleaved across
      orders, and only a fill's bar is compared, not the bar an answer came on. A change
      asked right after a cancel is refused by the engine at once (the cancel is on its
      way): live before IB's answer to the cancel, simulated after it; the two are put in
      the simulator's order. For the same
      reason the strategy's view of open orders (:class:`Snapshot`) holds its own orders
      only: the engine's (protective orders, bracket exits) may be answered after the bar.
    * The engine's own orders (protective orders, bracket exits) follow the position as IB
      reports it: fill by fill live, where a backtest sees a bar's fills together. Live, a
      position that turns within a bar may get a stop placed and cancelled in between, and
      resizes race with IB's own answers (an OCA group's reductions), refused or confirmed.
      So their events are left out, and the strategy's orders are known by their rank among
      its own (the engine's in between shift the ids); the engine's orders are compared by
      their fills (tag, side, quantity, price, time) and their effect on the positions, cash
      and equity of every bar, all compared in full.
    """
    # The strategy's orders by their rank among its own (the engine's orders between them
    # may differ in number: see the last point above); the engine's by their tag.
    ranks: dict[int, str] = {}
    for _, _, order in sorted(strategy.events, key=lambda e: e[2].order_id):
        if order.order_id not in ranks and _own(order):
            ranks[order.order_id] = f"own-{len(ranks) + 1}"

    def key(order_id: int, order: Order | None = None) -> str:
        if order_id in ranks:
            return ranks[order_id]
        return "engine:" + (order.request.tag or "bracket-exit" if order else "?")

    per_order: dict[str, list[tuple[Any, ...]]] = {}
    for index, event, order in strategy.events:
        name = type(event).__name__
        if not _own(order):
            continue  # the engine's own: their fills and effects are compared below
        status = order.status.value
        if name in ("OrderExpired", "OrderCancelled"):
            name = "ENDED"
        if status in ("EXPIRED", "CANCELLED"):
            status = "ENDED"
        row: tuple[Any, ...] = (name, status, order.quantity, order.filled_quantity)
        if isinstance(event, OrderFilled):
            fill = event.fill
            row += (index, fill.side.value, fill.quantity, fill.price, fill.commission, fill.ts_ns)
        per_order.setdefault(key(event.order_id), []).append(row)
    for rows in per_order.values():  # a change refused while its order's cancel was on its
        for i in range(len(rows) - 1):  # way: live, before IB's answer; simulated, after it
            if rows[i][0] == "OrderModifyRejected" and rows[i + 1][:2] == ("ENDED", "ENDED"):
                rows[i], rows[i + 1] = rows[i + 1], ("OrderModifyRejected", "ENDED", *rows[i][2:])
    orders = {o.order_id: o for _, _, o in strategy.events}
    fills = [
        (key(f.order_id, orders.get(f.order_id)), f.side.value, f.quantity, f.price,
         f.commission, f.ts_ns)
        for f in strategy.fills
    ]  # fmt: skip
    snapshots = [
        attrs.evolve(
            s,
            orders=tuple(
                (key(i), "ENDED" if status in ("EXPIRED", "CANCELLED") else status, q, f)
                for i, status, q, f in s.orders
            ),
        )
        for s in strategy.snapshots
    ]
    return {
        "per_order": per_order,
        "fills": fills,
        "snapshots": snapshots,
        "errors": strategy.errors,
    }


# --- the runs --------------------------------------------------------------------------------
RULES: dict[str, Callable[[], list[RiskRule]]] = {
    "none": list,
    "max-position": lambda: [MaxPosition(quantity=250, shrink=True)],
    "max-notional": lambda: [MaxOrderNotional(12_000)],
}


@attrs.frozen
class Scenario:
    frame: pd.DataFrame = attrs.field(eq=False)
    script: dict[int, list[Action]]
    protection: Protection | None
    volume_limit: float | None
    rules: str = "none"  # a key of RULES: each run gets its own

    def __repr__(self) -> str:  # what hypothesis prints for a failing example
        columns = ["open", "high", "low", "close", "volume"]
        rows = [tuple(float(x) for x in r) for r in self.frame[columns].to_numpy()]
        return (
            f"Scenario(start={self.frame.index[0]}, freq={self.frame.index.freqstr}, "
            f"bars={rows}, script={self.script}, protection={_described(self.protection)}, "
            f"volume_limit={self.volume_limit}, rules={self.rules!r})"
        )


def _described(protection: Protection | None) -> object:
    return protection and (protection.stop_loss, protection.take_profit)


def backtest(scenario: Scenario) -> Scripted:
    strategy = Scripted(scenario.script)
    broker = SimBroker(
        CASH,
        commission=IBKRFixedCommission(),
        volume_limit=scenario.volume_limit,
        # No check here: SimBroker would deny (OrderDenied) what the fake rejects (201), two
        # different events; the scenarios stay well within the fake's Reg T buying power.
        initial_margin=None,
    )
    Engine(
        strategy,
        DataFrameFeed(scenario.frame, ACME),
        broker,
        protection=scenario.protection or (),
        risk_rules=RULES[scenario.rules](),
    ).run()
    return strategy


def live(scenario: Scenario) -> Scripted:
    strategy = Scripted(scenario.script)
    with (
        FakeTWS(
            data={ACME: scenario.frame},
            cash=CASH,
            commission=IBKRFixedCommission(),
            volume_limit=scenario.volume_limit,
        ) as tws,
        LiveSession(
            strategy,
            tws,
            protection=scenario.protection or (),
            risk_rules=RULES[scenario.rules](),
            timeout=TIMEOUT,
        ) as session,
    ):
        replayed = session.step(len(scenario.frame))
        session.stop()
    assert replayed == len(scenario.frame)
    return strategy


# --- random scenarios ----------------------------------------------------------------------
sides = st.sampled_from(["BUY", "SELL"])
tifs = st.sampled_from(["DAY", "GTC", "IOC"])
quantities = st.integers(1, 40).map(lambda q: q * 5)
aways = st.integers(-20, 40)  # per mille of the close

plain_actions = st.one_of(
    st.tuples(st.just("market"), sides, quantities, tifs),
    st.tuples(st.just("limit"), sides, quantities, aways, tifs),
    st.tuples(st.just("stop"), sides, quantities, aways, tifs),
    st.tuples(st.just("stop_limit"), sides, quantities, aways, st.integers(-10, 20), tifs),
    st.tuples(
        st.just("trail"),
        sides,
        quantities,
        st.sampled_from(["amount", "percent"]),
        st.integers(10, 300),
        tifs,
    ),
    st.tuples(st.just("auction"), sides, quantities, st.sampled_from(["close", "open"])),
    st.tuples(st.just("target_qty"), st.integers(-30, 30).map(lambda q: q * 10)),
    st.tuples(st.just("target_pct"), st.integers(-4, 4)),
    st.tuples(st.just("cancel"), st.integers(0, 5)),
    st.tuples(
        st.just("modify"),
        st.integers(0, 5),
        st.sampled_from(["quantity", "price"]),
        st.integers(1, 20),
    ),
)
brackets = st.tuples(
    st.just("bracket"),
    sides,
    quantities,
    st.integers(5, 40),
    st.integers(5, 40),
    st.none() | st.integers(-5, 15),
)
actions = plain_actions | brackets

protections = st.sampled_from(
    [
        None,
        Protection(StopLoss.percent(0.02)),
        Protection(StopLoss.percent(0.03), TakeProfit.percent(0.04)),
        Protection(StopLoss.trailing(percent=0.02), TakeProfit.fixed(3.0)),
    ]
)


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    n = draw(st.integers(6, 24))
    freq = draw(st.sampled_from(["1D", "1h"]))
    start = "2024-03-04" if freq == "1D" else "2024-03-04 14:00"
    rows = []
    close = 100.0
    for _ in range(n):
        open_ = round(close * (1 + draw(st.integers(-15, 15)) / 1000), 2)
        close = round(open_ * (1 + draw(st.integers(-25, 25)) / 1000), 2)
        high = round(max(open_, close) * (1 + draw(st.integers(0, 15)) / 1000), 2)
        low = round(min(open_, close) * (1 - draw(st.integers(0, 15)) / 1000), 2)
        volume = float(draw(st.integers(1, 20)) * 1000)
        rows.append((open_, high, low, close, volume))
    index = pd.date_range(start, periods=n, freq=freq, tz="UTC", name="timestamp")
    frame = pd.DataFrame(rows, index=index, columns=["open", "high", "low", "close", "volume"])
    rules = draw(st.sampled_from(sorted(RULES)))
    # A rule that counts working orders (MaxPosition) counts the engine's own as well; live,
    # their resizes after a fill are confirmed after the bar's handler, so such a rule may
    # decide otherwise than in the backtest: it is drawn without protection and brackets.
    counts_working = rules == "max-position"
    script = draw(
        st.dictionaries(
            st.integers(0, n - 2),
            st.lists(plain_actions if counts_working else actions, min_size=1, max_size=3),
        )
    )
    protection = None if counts_working else draw(protections)
    # Partial fills with the engine's exits (protection, brackets): live, the exits are
    # resized fill by fill as IB reports them, and a resize may reach the fake after it
    # matched the next bar's share of volume; the backtest resizes once the bar's fills are
    # in. Left out until that race is closed (noted in issue 18).
    brackets = any(a[0] == "bracket" for acts in script.values() for a in acts)
    volume_limit = None if protection or brackets else draw(st.sampled_from([None, None, 0.02]))
    return Scenario(frame, script, protection, volume_limit, rules)


def scenario_of(
    bars: list[tuple[float, float, float, float, float]],
    script: dict[int, list[Action]],
    protection: Protection | None = None,
    volume_limit: float | None = None,
    rules: str = "none",
) -> Scenario:
    """A :class:`Scenario` of daily ``bars`` from 2024-03-04, as a failing example prints it."""
    return Scenario(bars_frame(bars, start="2024-03-04"), script, protection, volume_limit, rules)


# Each example runs a live session (a second or so): a few, unless HYPOTHESIS_PROFILE=long.
LONG = os.environ.get("HYPOTHESIS_PROFILE") == "long"
EXAMPLES = settings.default.max_examples // 10 if LONG else 25
STILL = (100.0, 100.0, 100.0, 100.0, 1000.0)


@settings(max_examples=EXAMPLES, suppress_health_check=[HealthCheck.too_slow])
# A cancel and, in the same handler, a change of the same order under MaxPosition: live the
# rule shrank the change and reported OrderResized after IB had cancelled the order; the
# backtest, whose order had ended, refused the change. Now the engine refuses a change of an
# order whose cancel is on its way, in both.
@example(
    scenario_of(
        [STILL] * 7 + [(100.9, 100.9, 100.9, 100.9, 1000.0)] * 3,
        {
            0: [("market", "BUY", 5, "DAY")],
            1: [("market", "BUY", 5, "DAY")],
            2: [("market", "BUY", 5, "DAY")],
            3: [("market", "BUY", 5, "DAY")],
            4: [("limit", "SELL", 130, 11, "DAY"), ("target_qty", 40)],
            5: [("cancel", 0), ("market", "SELL", 45, "DAY")],
            6: [("market", "BUY", 115, "DAY"), ("limit", "BUY", 5, 0, "DAY")],
            7: [("cancel", 0), ("modify", 0, "quantity", 11)],
        },
        rules="max-position",
    )
)
# Short 5, a bracket's buy and a market buy fill at one open: flat between the two. Live the
# engine cancelled the bracket's exits at flat; the backtest fitted them to the bar's end
# (long 5) and its stop-loss filled on the last bar. See the pinned test below.
@example(
    scenario_of(
        [STILL] * 23 + [(100.0, 100.0, 99.5, 100.0, 1000.0)],
        {
            0: [("target_qty", -10), ("market", "BUY", 5, "DAY")],
            1: [("bracket", "BUY", 5, 5, 5, None), ("market", "BUY", 5, "DAY")],
        },
        rules="max-notional",
    )
)
# Short 20 with a trailing stop; on one open a buy of 205 turns it long 190, a sale of 210
# short 20 again. Live the turn replaced the stop (trailing afresh from the last price); the
# backtest kept the old one, which had trailed a tick closer, and filled a tick better.
@example(
    scenario_of(
        [STILL] * 4
        + [
            (101.1, 101.1, 99.79, 99.79, 1000.0),
            (100.99, 101.09, 100.99, 101.09, 1000.0),
            (101.09, 101.09, 101.09, 101.09, 1000.0),
            (101.09, 101.09, 101.09, 101.09, 1000.0),
            (101.8, 101.8, 101.8, 101.8, 1000.0),
            (101.8, 103.33, 101.8, 101.8, 1000.0),
            (101.8, 101.8, 101.8, 101.8, 1000.0),
        ],
        {
            0: [("target_qty", 0)],
            1: [("market", "BUY", 5, "DAY"), ("market", "BUY", 5, "DAY")],
            2: [("market", "BUY", 5, "DAY")] * 3,
            5: [("limit", "BUY", 20, 32, "DAY"), ("target_qty", 0)],
            6: [("market", "BUY", 5, "DAY"), ("target_qty", 210), ("target_qty", 0)],
        },
        protection=Protection(StopLoss.trailing(percent=0.02), TakeProfit.fixed(3.0)),
    )
)
@given(scenarios())
def test_a_random_strategy_does_the_same_in_a_backtest_and_live(scenario: Scenario) -> None:
    expected = comparable(backtest(scenario))
    got = comparable(live(scenario))
    assert got["errors"] == expected["errors"]
    assert got["fills"] == expected["fills"]
    assert got["per_order"] == expected["per_order"]
    assert got["snapshots"] == expected["snapshots"]


# --- defects the comparison found, pinned -----------------------------------------------------
FLAT = (100.0, 101.0, 99.0, 100.0)


def run_both(
    actions: dict[int, Callable[[Context, Bar], object]],
    rows: list[tuple[float, float, float, float]],
    protection: Protection | None = None,
) -> tuple[ScriptedStrategy, ScriptedStrategy, FakeTWS]:
    """The backtest and the live run of one script on ``rows`` (daily bars)."""
    frame = bars_frame(rows, start="2024-03-04", volume=100_000)
    backtest = ScriptedStrategy(actions)
    Engine(
        backtest,
        DataFrameFeed(frame, ACME),
        SimBroker(CASH, commission=IBKRFixedCommission(), initial_margin=None),
        protection=protection or (),
    ).run()
    live = ScriptedStrategy(actions)
    with (
        FakeTWS(data={ACME: frame}, cash=CASH, commission=IBKRFixedCommission()) as tws,
        LiveSession(live, tws, protection=protection or (), timeout=TIMEOUT) as session,
    ):
        session.step(len(rows))
        session.stop()
    return backtest, live, tws


def working_at(tws: FakeTWS) -> list[tuple[str, str, Decimal]]:
    """The orders working at the fake TWS: (tag, side, quantity)."""
    with tws.market.lock:
        orders = tws.market.orders.active()
    tags = [[*o.request.tag.split(":", 2), ""][2] for o in orders]  # ibkrfw:<id>[:<tag>]
    return sorted((tag, o.side.value, o.quantity) for tag, o in zip(tags, orders, strict=True))


def test_a_protective_order_resized_before_ibs_acknowledgement_covers_the_position() -> None:
    # Two buys fill on one bar. Live, each fill comes alone: the stop-loss is placed for the
    # first and resized for the second before IB acknowledged it. Before: the adapter refused
    # the resize ("not accepted by IB yet"), and the stop-loss covered 10 of 30 shares.
    actions = {
        0: lambda ctx, bar: (ctx.buy(ACME, 10), ctx.buy(ACME, 20, limit_price=101)),
    }
    backtest, live, tws = run_both(actions, [FLAT] * 4, Protection(StopLoss.percent(0.5)))
    assert working_at(tws) == [("stop-loss", "SELL", Decimal(30))]
    assert "OrderModifyRejected" not in live.event_types()
    assert [(f.quantity, f.price) for f in live.fills] == [
        (f.quantity, f.price) for f in backtest.fills
    ]


def test_an_oca_reduction_at_ib_reaches_the_engines_book() -> None:
    # IB reduces the other orders of an OCA group (ocaType 3) when one fills, and says so
    # with openOrder. Before: the adapter ignored it and the engine kept the old quantity.
    actions = {
        0: lambda ctx, bar: (
            ctx.sell(ACME, 60, oca_group="pair"),
            ctx.sell(ACME, 100, limit_price=150, oca_group="pair", tif="GTC"),
        ),
    }
    backtest, live, tws = run_both(actions, [FLAT] * 3)
    expected = [(type(e).__name__, o.quantity) for o, e in backtest.events if o.order_id == 2]
    got = [(type(e).__name__, o.quantity) for o, e in live.events if o.order_id == 2]
    assert expected[-1] == ("OrderModified", Decimal(40))
    assert got == expected
    assert working_at(tws) == [("", "SELL", Decimal(40))]


def test_a_modification_overtaken_by_a_fill_is_refused_not_confirmed() -> None:
    # Long 10 with a stop-loss at 98. On bar 2 a buy fills at the open, then the stop fills.
    # Live the engine resizes the stop for the buy while IB has filled it already. Before:
    # the openOrder IB sends with the fill was taken for the resize's answer (an
    # OrderModified of a filled order), and IB's refusal of the resize was dropped.
    actions = {
        0: lambda ctx, bar: ctx.buy(ACME, 10),
        1: lambda ctx, bar: ctx.buy(ACME, 10),
    }
    rows = [FLAT, FLAT, (100.0, 100.5, 97.0, 99.0), FLAT, FLAT]
    _, live, tws = run_both(actions, rows, Protection(StopLoss.fixed(2.0)))
    modified = [o.status.value for o, e in live.events if type(e).__name__ == "OrderModified"]
    assert "FILLED" not in modified
    refused = [o.order_id for o, e in live.events if type(e).__name__ == "OrderModifyRejected"]
    assert refused == [2]  # the first stop-loss: filled when its resize arrived
    assert working_at(tws) == [("stop-loss", "SELL", Decimal(10))]


def test_orders_made_in_answer_to_a_fill_carry_the_replays_time() -> None:
    # Before: the live session's clock stood at the previous bar until the engine handled
    # the next bar, so the stop-loss placed for a fill was stamped a bar early.
    actions = {0: lambda ctx, bar: ctx.buy(ACME, 10)}
    backtest, live, _ = run_both(actions, [FLAT] * 3, Protection(StopLoss.percent(0.5)))
    expected = [(o.order_id, o.created_ns) for o, _ in backtest.events]
    assert [(o.order_id, o.created_ns) for o, _ in live.events] == expected
    stop = next(o for o, _ in live.events if o.request.tag == "stop-loss")
    assert stop.created_ns == live.fills[0].ts_ns


def test_stop_waits_for_ibs_answers_to_the_last_orders() -> None:
    # The stop-loss is placed after a fill on the last bar replayed. Before: the session
    # stopped the engine with IB's acknowledgement still on its way, and it was lost.
    actions = {1: lambda ctx, bar: ctx.buy(ACME, 10)}
    backtest, live, _ = run_both(actions, [FLAT] * 3, Protection(StopLoss.percent(0.5)))
    assert live.event_types()[-1] == "OrderAccepted"
    assert [type(e).__name__ for _, e in live.events if e.order_id == 2] == [
        "OrderSubmitted",
        "OrderAccepted",
    ]
    assert backtest.event_types()[-1] == "OrderAccepted"


def test_a_position_that_turns_within_a_bar_gets_the_same_protection_in_both_runs() -> None:
    # A sale and a larger buy fill on one bar: short 155, then long 160. Live, the engine
    # protects the short (a buy stop) before it hears of the buy, then turns the protection
    # around; the backtest sees the bar's fills together and places the sell stop at once.
    # Either way: the same fills, and one sell stop for 160 working at the end.
    actions = {0: lambda ctx, bar: (ctx.sell(ACME, 155), ctx.buy(ACME, 315))}
    backtest, live, tws = run_both(actions, [FLAT] * 4, Protection(StopLoss.percent(0.5)))
    placed = [
        (o.order_id, o.side.value, o.quantity, o.request.tag)
        for o, e in backtest.events
        if type(e).__name__ == "OrderSubmitted"
    ]
    assert placed == [(1, "SELL", 155, ""), (2, "BUY", 315, ""), (3, "SELL", 160, "stop-loss")]
    assert [(f.side, f.quantity, f.price) for f in live.fills] == [
        (f.side, f.quantity, f.price) for f in backtest.fills
    ]
    assert working_at(tws) == [("stop-loss", "SELL", Decimal(160))]


def by_order(strategy: ScriptedStrategy) -> dict[int, list[str]]:
    """The kinds of events of each order, in order."""
    events: dict[int, list[str]] = {}
    for order, event in strategy.events:
        events.setdefault(order.order_id, []).append(type(event).__name__)
    return events


def test_a_cancellation_after_an_unacknowledged_change_follows_the_change() -> None:
    # Three fills on one bar: long 10, long 30, flat. Live, the stop-loss is placed after the
    # first, resized before IB acknowledged it (the change held), then cancelled. Before: the
    # cancellation went out at once, ahead of the held change, which IB then refused for a
    # cancelled order. (The backtest sees the bar's fills together: flat, no stop at all.)
    actions = {0: lambda ctx, bar: (ctx.buy(ACME, 10), ctx.buy(ACME, 20), ctx.sell(ACME, 30))}
    backtest, live, tws = run_both(actions, [FLAT] * 3, Protection(StopLoss.percent(0.5)))
    assert not [o for o, e in backtest.events if o.request.tag == "stop-loss"]
    stop = [type(e).__name__ for o, e in live.events if o.request.tag == "stop-loss"]
    assert stop == ["OrderSubmitted", "OrderAccepted", "OrderModified", "OrderCancelled"]
    assert working_at(tws) == []


def test_a_stop_its_oca_group_takes_away_is_not_cancelled_again() -> None:
    # Long 10 with a stop-loss and a take-profit. The take-profit fills; its OCA group takes
    # the stop-loss away, at IB as in the simulator. Before: the engine, flat, cancelled the
    # stop-loss too, racing the group: refused in the backtest, and live the refusal (161) came
    # after the order had ended. Now the engine knows what the fill takes off the group's
    # other orders until the broker says so, and asks nothing.
    protection = Protection(StopLoss.fixed(5.0), TakeProfit.fixed(2.0))
    actions = {0: lambda ctx, bar: ctx.buy(ACME, 10)}
    rows = [FLAT, FLAT, (100.0, 103.0, 99.5, 102.5), FLAT]
    backtest, live, _ = run_both(actions, rows, protection)
    expected = [type(e).__name__ for o, e in backtest.events if o.request.tag == "stop-loss"]
    assert expected[-1] == "OrderCancelled" and "OrderCancelRejected" not in expected
    assert [type(e).__name__ for o, e in live.events if o.request.tag == "stop-loss"] == expected


def test_an_order_filled_after_its_quantity_was_cut_is_done_for_the_reconciliation() -> None:
    # Before: the adapter judged an order done against the quantity it was sent with, so an
    # order cut from 100 to 50 that then filled 50 stayed "working", and the reconciliation
    # after a reconnection reported the filled order cancelled.
    from ibkrfw.ibkr import Backoff

    def cut(ctx: Context, bar: Bar) -> None:
        ctx.modify(1, quantity=50, limit_price=101)

    buy = ScriptedStrategy({0: lambda ctx, bar: ctx.buy(ACME, 100, limit_price=90, tif="GTC")})
    strategy = ScriptedStrategy({**buy.actions, 1: cut})
    frame = bars_frame([FLAT] * 6, start="2024-03-04", volume=100_000)
    with FakeTWS(data={ACME: frame}, cash=CASH) as tws:
        session = LiveSession(strategy, tws, timeout=TIMEOUT)
        session.client.backoff = Backoff(base=0.05, cap=0.2, seed=1)
        with session:
            session.step(3)  # filled at the third bar's open
            reconciled = len(tws.messages("in", client_id=1, msg_id=5))  # reqOpenOrders
            tws.drop_connections()
            assert tws.wait_for(
                lambda: len(tws.messages("in", client_id=1, msg_id=5)) > reconciled, TIMEOUT
            )
            session.step(2)
            result = session.stop()
    assert [(f.quantity, f.price) for f in strategy.fills] == [(50, Decimal("100.00"))]
    assert by_order(strategy)[1] == [
        "OrderSubmitted", "OrderAccepted", "OrderModified", "OrderFilled",
    ]  # fmt: skip
    assert result.order_list[0].status is OrderStatus.FILLED


def test_each_cancellation_of_an_ended_order_is_refused() -> None:
    # The strategy cancels one order three times in one handler. Before: IB's refusals came
    # after the first cancellation had ended the order; the first was dropped, and once the
    # adapter answered one it forgot the others were pending.
    def cancel_thrice(ctx: Context, bar: Bar) -> None:
        for _ in range(3):
            ctx.cancel(1)

    buy = ScriptedStrategy({0: lambda ctx, bar: ctx.buy(ACME, 10, limit_price=90, tif="GTC")})
    backtest, live, _ = run_both({**buy.actions, 1: cancel_thrice}, [FLAT] * 3)
    assert by_order(backtest)[1] == [
        "OrderSubmitted", "OrderAccepted", "OrderCancelled", "OrderCancelRejected",
        "OrderCancelRejected",
    ]  # fmt: skip
    assert by_order(live) == by_order(backtest)


def test_a_brackets_exits_cancelled_at_a_flat_between_two_fills_stay_cancelled() -> None:
    # Short 5. On one bar's open a bracket's buy entry fills (flat), then a market buy (long
    # 5). Live, IB's fills come one at a time: at flat the engine cancels the bracket's exits
    # (left working they would reopen a position). Before: the backtest fitted the exits to
    # the bar's end, long 5, kept them, and their stop-loss filled on the last bar, in the
    # backtest alone (found by the differential test above).
    actions = {
        0: lambda ctx, bar: ctx.sell(ACME, 5),
        1: lambda ctx, bar: (
            ctx.bracket(ACME, "BUY", 5, take_profit=101, stop_loss=99),
            ctx.buy(ACME, 5),
        ),
    }
    calm = (100.0, 100.5, 99.5, 100.0)  # touches neither exit
    rows = [calm, calm, calm, (100.0, 100.5, 98.0, 99.0)]
    backtest, live, tws = run_both(actions, rows)
    for run in (backtest, live):
        assert by_order(run)[3][-1] == "OrderCancelled"  # the take-profit
        assert by_order(run)[4][-1] == "OrderCancelled"  # the stop-loss, not filled
        assert [(f.order_id, f.side.value, f.quantity) for f in run.fills] == [
            (1, "SELL", 5), (2, "BUY", 5), (5, "BUY", 5),
        ]  # fmt: skip
    assert [(f.quantity, f.price, f.ts_ns) for f in live.fills] == [
        (f.quantity, f.price, f.ts_ns) for f in backtest.fills
    ]
    assert working_at(tws) == []


def test_a_protected_position_that_turns_and_back_within_a_bar_gets_new_protection() -> None:
    # Short 20 with a trailing stop that has trailed from 102 to 99.96. On one open three buys
    # and a sale fill: a buy of 5 (in the stop's OCA group: it cuts the stop to 15), a buy of
    # 35 (long 20), a sale of 40 (short 20 again). Live, the engine acts on each fill: the
    # long cancels the old stop, and the new short gets a new one, trailing afresh from the
    # last price (98.50: 100.47). Before: the backtest, seeing the bar's fills together,
    # resized the old stop to 20, and it filled at 99.96 on the next bar, in the backtest
    # alone.
    actions = {
        1: lambda ctx, bar: ctx.sell(ACME, 20),
        3: lambda ctx, bar: (ctx.buy(ACME, 5), ctx.buy(ACME, 35), ctx.sell(ACME, 40)),
    }
    rows = [
        (100.0, 100.0, 100.0, 100.0),
        (100.0, 100.0, 100.0, 100.0),
        (100.0, 100.0, 100.0, 100.0),  # short 20 at the open: a buy stop at 102
        (99.0, 99.0, 98.0, 98.5),  # trails it to 99.96
        (98.5, 98.5, 98.5, 98.5),  # short 15, long 20, short 20 again
        (99.0, 100.2, 99.0, 100.0),  # through the old stop, not the new one
        (100.0, 100.0, 100.0, 100.0),
    ]
    backtest, live, tws = run_both(actions, rows, Protection(StopLoss.trailing(percent=0.02)))
    for run in (backtest, live):
        assert [(f.side.value, f.quantity, f.price) for f in run.fills] == [
            ("SELL", 20, 100), ("BUY", 5, Decimal("98.5")), ("BUY", 35, Decimal("98.5")),
            ("SELL", 40, Decimal("98.5")),
        ]  # fmt: skip
        stops = [o for o, e in run.events if type(e).__name__ == "OrderSubmitted"
                 and o.request.tag == "stop-loss"]  # fmt: skip
        assert (stops[-1].side.value, stops[-1].request.stop_price) == ("BUY", Decimal("100.47"))
    assert [(f.quantity, f.price, f.ts_ns) for f in live.fills] == [
        (f.quantity, f.price, f.ts_ns) for f in backtest.fills
    ]
    assert working_at(tws) == [("stop-loss", "BUY", Decimal(20))]
