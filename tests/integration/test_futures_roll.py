"""Rolling futures positions in backtests: FutureRoller over a chain of synthetic months."""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal

import attrs
import numpy as np
import pandas as pd
import pytest
from typing_extensions import override

from ibkrfw import Bar, Context, Engine, Future, Order, OrderRequest, Sleeve, Strategy
from ibkrfw.data import (
    DaysBeforeExpiry,
    RollRule,
    VolumeCrossover,
    continuous_series,
    roll_schedule,
    synthetic_future_bars,
)
from ibkrfw.errors import ConfigError, OrderError
from ibkrfw.model.events import OrderEvent
from ibkrfw.risk import MaxPosition, Protection, RestrictedList, StopLoss
from ibkrfw.sim import DataFrameFeed, SimBroker
from ibkrfw.strategies import FutureRoller, FuturesTrend
from ibkrfw.testing import RecordingBroker

CHAIN = synthetic_future_bars(expiries=("20261218", "20270319", "20270618"))
MONTHS = list(CHAIN)


@attrs.define
class Hold(Strategy):
    """Hold ``quantity`` contracts of the continuous future from the first bar on."""

    rule: RollRule = attrs.field(factory=lambda: DaysBeforeExpiry(5))
    quantity: int = 2
    stop_offset: float | None = None  # a stop of its own this far below the entry
    roller: FutureRoller = attrs.field(init=False)
    closes_seen: list[np.ndarray] = attrs.field(factory=list)

    def __attrs_post_init__(self) -> None:
        self.roller = FutureRoller(MONTHS, self.rule)

    @override
    def on_slice(self, ctx: Context, bars: Sequence[Bar]) -> None:
        self.roller.update(ctx)
        placed = self.roller.order_target(ctx, self.quantity)
        if placed is not None and self.stop_offset is not None:
            price = ctx.price(self.roller.current) - self.stop_offset
            ctx.sell(self.roller.current, self.quantity, order_type="STP", stop_price=price,
                     tif="GTC")  # fmt: skip
        self.closes_seen.append(self.roller.closes(ctx, 500))

    @override
    def on_order(self, ctx: Context, order: Order, event: OrderEvent) -> None:
        self.roller.on_order(ctx, order, event)


def _run(strategy: Strategy, broker: SimBroker | RecordingBroker | None = None, **kw: object):
    broker = broker or SimBroker(cash=10_000_000)
    return Engine(strategy, DataFrameFeed(CHAIN), broker, **kw).run()  # type: ignore[arg-type]


def _held_by_month(result: object) -> pd.DataFrame:
    fills = result.fills  # type: ignore[attr-defined]
    signed = fills["quantity"].astype(float) * np.where(fills["side"] == "BUY", 1, -1)
    return signed.groupby([fills["timestamp"], fills["instrument"]]).sum().unstack(fill_value=0)


def test_roller_backtest_rolls_once_per_schedule_date_quantity_preserved() -> None:
    strategy = Hold()
    result = _run(strategy)
    schedule = roll_schedule(CHAIN, DaysBeforeExpiry(5))
    rolls = strategy.roller.rolls
    assert [r.timestamp for r in rolls] == [r.timestamp for r in schedule]
    assert [r.status for r in rolls] == ["done", "done"]
    assert all(r.quantity == 2 for r in rolls)
    assert [r.price_difference for r in rolls] == [Decimal("15.00")] * 2
    # the legs fill together on the bar after the roll bar: old month to 0, new month to +2
    fills = result.fills
    roll_fills = fills[fills["order_id"].isin([r.close_order_id for r in rolls] +
                                              [r.open_order_id for r in rolls])]  # fmt: skip
    assert len(roll_fills) == 4
    assert set(roll_fills.groupby("timestamp").size()) == {2}
    # positions = sum of fills, and only the last month is held at the end
    held = (
        fills.assign(signed=fills["quantity"] * np.where(fills["side"] == "BUY", 1, -1))
        .groupby("instrument")["signed"]
        .sum()
    )
    assert held.to_dict() == {m.id: Decimal(2) if m == MONTHS[-1] else 0 for m in MONTHS}
    last = result.positions.iloc[-1]
    assert last[MONTHS[-1].id] == 2 and last[MONTHS[0].id] == 0 and last[MONTHS[1].id] == 0
    # never doubled nor naked: the chain holds 2 on every bar after the first fill
    total = result.positions.sum(axis=1)
    assert set(total[total.index > fills["timestamp"].iloc[0]]) == {2.0}


def test_roller_closes_are_the_difference_adjusted_continuous_series() -> None:
    strategy = Hold()
    _run(strategy)
    series = continuous_series(CHAIN, DaysBeforeExpiry(5))["close"].to_numpy()
    seen = strategy.closes_seen[-1]
    np.testing.assert_allclose(seen, series[-len(seen) :])
    assert len(seen) == len(series)
    # and on every bar, only what was known then (the earlier bars' adjustments come later)
    mid = strategy.closes_seen[100]
    assert len(mid) == 101


def test_roller_volume_crossover_rolls_on_the_schedule() -> None:
    strategy = Hold(rule=VolumeCrossover(days=2))
    _run(strategy)
    expected = [r.timestamp for r in roll_schedule(CHAIN, VolumeCrossover(days=2))]
    assert [r.timestamp for r in strategy.roller.rolls] == expected
    assert all(r.status == "done" for r in strategy.roller.rolls)


def test_roller_max_position_counting_working_orders_does_not_deny_the_roll() -> None:
    strategy = Hold()
    _run(strategy, risk_rules=[MaxPosition(quantity=2)])
    assert [r.status for r in strategy.roller.rolls] == ["done", "done"]


def test_roller_leg_denied_by_risk_sends_nothing_and_says_why() -> None:
    strategy = Hold()
    broker = RecordingBroker(SimBroker(cash=10_000_000))
    rule = RestrictedList([MONTHS[1]], reason="no March contracts")
    result = _run(strategy, broker, risk_rules=[rule])
    refused = [r for r in strategy.roller.rolls if r.status == "refused"]
    assert refused, strategy.roller.rolls
    first = refused[0]
    assert "roll of 2 ESZ6 into ESH7 refused" in first.reason
    assert "no March contracts" in first.reason
    # neither leg reached the broker; both are DENIED with the same reason
    sent = {o.order_id for o in broker.submitted}
    assert first.close_order_id not in sent and first.open_order_id not in sent
    orders = result.orders
    assert orders.loc[first.close_order_id, "status"] == "DENIED"
    assert orders.loc[first.open_order_id, "status"] == "DENIED"
    # still in December, never in March, never doubled
    assert (result.positions[MONTHS[1].id] == 0).all()
    assert result.positions.sum(axis=1).max() == 2
    # refused on every bar until December expired: settled by the broker, then June is next
    expired = [r for r in strategy.roller.rolls if r.status == "switched"]
    assert "ES.20261218.CME expired before it could be rolled" in expired[0].reason
    assert result.positions[MONTHS[0].id].iloc[-1] == 0
    assert result.positions[MONTHS[2].id].iloc[-1] == 2


def test_roller_leg_rejected_by_broker_is_undone() -> None:
    strategy = Hold()
    first_open: list[int] = []

    def reject(order: Order) -> str | None:
        if order.instrument == MONTHS[1] and order.request.tag == "roll" and not first_open:
            first_open.append(order.order_id)
            return "no trading permission for this month"
        return None

    broker = RecordingBroker(SimBroker(cash=10_000_000), reject=reject)
    result = _run(strategy, broker)
    rolls = strategy.roller.rolls
    assert rolls[0].status == "undone"
    assert "no trading permission" in rolls[0].reason
    # the closing leg was cancelled before it could fill: tried again on the next bar
    assert [r.status for r in rolls[1:]] == ["done", "done"]
    assert rolls[1].ts_ns > rolls[0].ts_ns
    total = result.positions.sum(axis=1)
    assert set(total[total.index > result.fills["timestamp"].iloc[0]]) == {2.0}


def test_roller_moves_a_working_stop_to_the_new_month_shifted_by_the_gap() -> None:
    strategy = Hold(stop_offset=400.0)
    result = _run(strategy)
    rolls = strategy.roller.rolls
    assert [len(r.moved) for r in rolls] == [1, 1]
    orders = result.orders
    moved = orders.loc[list(rolls[0].moved)]
    assert (moved["status"] == "CANCELLED").all()
    stops = orders[
        (orders["type"] == "STP")
        & (orders["instrument"] == MONTHS[1].id)
        & (orders["created"] == rolls[0].timestamp)
    ]
    assert len(stops) == 1
    old_stop = Decimal(str(moved["stop_price"].iloc[0]))
    assert Decimal(str(stops["stop_price"].iloc[0])) == old_stop + Decimal(str(rolls[0].gap))


def test_roller_with_protection_moves_the_engines_stops() -> None:
    strategy = Hold()
    result = _run(strategy, protection=Protection(StopLoss.percent(0.2)))
    assert [r.status for r in strategy.roller.rolls] == ["done", "done"]
    orders = result.orders
    stops = orders[orders["type"] == "STP"]
    working = stops[~stops["status"].isin(["CANCELLED", "FILLED", "DENIED", "REJECTED"])]
    assert set(working["instrument"]) == {MONTHS[-1].id}
    assert set(stops["instrument"]) == {m.id for m in MONTHS}
    assert result.positions.sum(axis=1).max() == 2


def test_roller_flat_switches_month_without_orders() -> None:
    strategy = Hold(quantity=0)
    result = _run(strategy)
    assert [r.status for r in strategy.roller.rolls] == ["switched", "switched"]
    assert strategy.roller.current == MONTHS[-1]
    assert result.fills.empty


def test_futures_trend_rolls_and_trades_real_months() -> None:
    strategy = FuturesTrend(MONTHS, fast=10, slow=30)
    result = _run(strategy)
    assert all(r.status == "done" for r in strategy.roller.rolls)
    assert set(result.fills["instrument"]) <= {m.id for m in MONTHS}
    assert result.positions.abs().sum(axis=1).max() == 1


def test_roller_starting_with_two_months_closes_the_older() -> None:
    # an interrupted roll: both months held at the start (fills booked before the run)
    strategy = Hold()
    start = [
        _fill(MONTHS[0], 2),
        _fill(MONTHS[1], 2),
    ]

    class Holding(SimBroker):
        @override
        def starting_positions(self):  # type: ignore[no-untyped-def]
            return start

    result = _run(strategy, Holding(cash=10_000_000))
    first = strategy.roller.rolls[0]
    assert first.status == "finished"
    assert first.from_contract == MONTHS[0] and first.to_contract == MONTHS[1]
    assert result.positions[MONTHS[0].id].iloc[-1] == 0
    assert result.positions.sum(axis=1).iloc[5:].max() == 2
    # its continuous series starts with the month it began in
    later = continuous_series({m: CHAIN[m] for m in MONTHS[1:]}, DaysBeforeExpiry(5))
    seen = strategy.closes_seen[-1]
    np.testing.assert_allclose(seen, later["close"].to_numpy()[-len(seen) :])


def _fill(month: Future, quantity: int):  # type: ignore[no-untyped-def]
    from ibkrfw import Fill, Side

    price = Decimal(str(CHAIN[month]["close"].iloc[0]))
    return Fill(0, month, Side.BUY, Decimal(quantity), price, Decimal(0),
                int(CHAIN[month].index[0].value) - 1, f"start-{month.id}")  # fmt: skip


@pytest.mark.parametrize(
    ("contracts", "rule", "match"),
    [
        ([], DaysBeforeExpiry(5), "one Future at least"),
        (MONTHS[0], DaysBeforeExpiry(5), "as a list of Future"),
        ([MONTHS[0], "ESH7"], DaysBeforeExpiry(5), "'ESH7' is not a Future"),
        ([MONTHS[0], Future("NQ", expiry="20270319")], DaysBeforeExpiry(5), "same future"),
        # a month built by hand without its multiplier: a roll would keep the quantity and
        # change the exposure fifty times
        (
            [MONTHS[0], Future("ES", expiry="20270319", exchange="CME")],
            DaysBeforeExpiry(5),
            r"ES\.20270319\.CME has a multiplier of 1, ES\.20261218\.CME of 50",
        ),
        (MONTHS, 5, "give a RollRule"),
        (MONTHS, VolumeCrossover(column="open_interest"), "open interest"),
        (MONTHS, DaysBeforeExpiry(0), r"DaysBeforeExpiry\(1\) or more"),
    ],
)
def test_roller_bad_input_is_a_config_error(contracts: object, rule: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        FutureRoller(contracts, rule)  # type: ignore[arg-type]


def test_roller_order_target_takes_whole_contracts() -> None:
    roller = FutureRoller(MONTHS, DaysBeforeExpiry(5))
    with pytest.raises(ConfigError, match="whole number of contracts"):
        roller.order_target(None, 1.5)  # type: ignore[arg-type]


def test_roller_month_without_feed_is_a_config_error() -> None:
    strategy = Hold()
    feed = DataFrameFeed({m: CHAIN[m] for m in MONTHS[:2]})
    with pytest.raises(ConfigError, match="no feed of this run delivers"):
        Engine(strategy, feed, SimBroker()).run()


def test_submit_together_refuses_a_shrunk_order_whole() -> None:
    got: list[list[Order]] = []

    class Two(Strategy):
        @override
        def on_bar(self, ctx: Context, bar: Bar) -> None:
            if not got and bar.instrument == MONTHS[0]:
                got.append(ctx.submit_together([
                    OrderRequest(MONTHS[0], "BUY", 1),
                    OrderRequest(MONTHS[1], "BUY", 5),
                ], "pair"))  # fmt: skip

    _run(Two(), risk_rules=[MaxPosition(quantity=3, shrink=True)])
    first, second = got[0]
    assert first.status == second.status == "DENIED"
    assert "pair refused: its order 2 of 2 (BUY 5 ES.20270319.CME)" in second.reason
    assert "go whole or not at all" in second.reason


@pytest.mark.parametrize(
    ("requests", "match"),
    [
        (OrderRequest(MONTHS[0], "BUY", 1), "got one OrderRequest: put it in a list"),
        ("BUY", "got str 'BUY'"),
        ([], "got \\[\\]"),
        ([OrderRequest(MONTHS[0], "BUY", 1), "x"], "\\['OrderRequest', 'str'\\]"),
    ],
)
def test_submit_together_of_something_not_a_list_of_requests_is_an_order_error(
    requests: object, match: str
) -> None:
    # one request where a list is meant is a typed error naming what was given, not a
    # TypeError from iterating it (nor a string taken for a sequence of characters)
    raised: list[Exception] = []

    class Bad(Strategy):
        @override
        def on_bar(self, ctx: Context, bar: Bar) -> None:
            if not raised:
                try:
                    ctx.submit_together(requests)  # type: ignore[arg-type]
                except Exception as exc:  # what it raises is the test
                    raised.append(exc)

    _run(Bad())
    assert isinstance(raised[0], OrderError), raised
    assert re.search(match, str(raised[0])), str(raised[0])


def test_simbroker_settles_a_future_held_past_its_last_trading_day() -> None:
    from ibkrfw import FutureSettled, OrderRejected

    last_bar = len(CHAIN[MONTHS[0]]) - 1
    seen: list[object] = []

    class Watching(Strategy):
        def __init__(self) -> None:
            self.bars = 0
            self.rejected: list[OrderRejected] = []

        @override
        def on_bar(self, ctx: Context, bar: Bar) -> None:
            # three months a time stamp: bar 3 * k is the first of the k-th time stamp
            if self.bars == 0:
                ctx.buy(MONTHS[0], 2)
            if self.bars == 3 * (last_bar + 2):
                ctx.buy(MONTHS[0], 1)
            self.bars += 1

        @override
        def on_order(self, ctx: Context, order: Order, event: OrderEvent) -> None:
            if isinstance(event, OrderRejected):
                self.rejected.append(event)

        @override
        def on_event(self, ctx: Context, event: object) -> None:  # type: ignore[override]
            seen.append(event)

    strategy = Watching()
    result = _run(strategy)
    (settled,) = [e for e in seen if isinstance(e, FutureSettled)]
    assert settled.future == MONTHS[0] and settled.quantity == 2
    last_close = CHAIN[MONTHS[0]]["close"].iloc[-1]
    assert settled.price == last_close
    assert "settled in cash at its last price" in settled.reason
    # settled on the first bar after the last trading day, at the last close
    assert settled.timestamp > CHAIN[MONTHS[0]].index[-1]
    expiry = result.fills[result.fills["order_id"] == -1]
    assert list(expiry["quantity"]) == [Decimal(2)] and list(expiry["side"]) == ["SELL"]
    assert result.positions[MONTHS[0].id].iloc[-1] == 0
    rejected = strategy.rejected
    assert len(rejected) == 1 and "can no longer be traded" in rejected[0].reason


@pytest.mark.parametrize("days", [1, 3, 10])
@pytest.mark.parametrize("quantity", [-3, 1])
@pytest.mark.parametrize("protect", [False, True])
@pytest.mark.parametrize("limit", [False, True])
def test_roll_invariants(days: int, quantity: int, protect: bool, limit: bool) -> None:
    """One roll per schedule date, quantity kept, never doubled, positions = sum of fills."""
    strategy = Hold(rule=DaysBeforeExpiry(days), quantity=quantity)
    kw: dict[str, object] = {}
    if protect:
        kw["protection"] = Protection(StopLoss.percent(0.3))
    if limit:
        kw["risk_rules"] = [MaxPosition(quantity=abs(quantity))]
    result = _run(strategy, **kw)
    rolls = strategy.roller.rolls
    schedule = roll_schedule(CHAIN, DaysBeforeExpiry(days))
    assert [r.timestamp for r in rolls] == [r.timestamp for r in schedule]
    assert len({r.ts_ns for r in rolls}) == len(rolls)
    for roll in rolls:
        assert roll.status in ("done", "switched"), roll
        if roll.status == "done":
            legs = result.orders.loc[[roll.close_order_id, roll.open_order_id]]
            assert list(legs["filled_quantity"]) == [abs(roll.quantity)] * 2
    # positions are the sum of the fills, month by month, on every bar
    fills = result.fills
    signed = fills["quantity"].astype(float) * np.where(fills["side"] == "BUY", 1, -1)
    by_bar = (
        signed.groupby([fills["timestamp"], fills["instrument"]])
        .sum()
        .unstack(fill_value=0.0)
        .reindex(result.positions.index, fill_value=0.0)
        .cumsum()
    )
    pd.testing.assert_frame_equal(
        by_bar.reindex(columns=result.positions.columns, fill_value=0.0),
        result.positions.astype(float),
        check_names=False,
    )
    # never doubled: the chain never holds more than asked
    assert result.positions.sum(axis=1).abs().max() <= abs(quantity)


def test_roller_moves_a_brackets_exits_as_an_oca_pair() -> None:
    @attrs.define
    class Bracketed(Strategy):
        roller: FutureRoller = attrs.field(
            factory=lambda: FutureRoller(MONTHS, DaysBeforeExpiry(5))
        )

        @override
        def on_slice(self, ctx: Context, bars: Sequence[Bar]) -> None:
            self.roller.update(ctx)
            if not ctx.open_orders() and not self.roller.quantity(ctx):
                price = ctx.price(MONTHS[0])
                ctx.bracket(MONTHS[0], "BUY", 2, take_profit=price + 3000,
                            stop_loss=price - 3000)  # fmt: skip

        @override
        def on_order(self, ctx: Context, order: Order, event: OrderEvent) -> None:
            self.roller.on_order(ctx, order, event)

    strategy = Bracketed()
    result = _run(strategy)
    first = strategy.roller.rolls[0]
    assert first.status == "done" and len(first.moved) == 2
    orders = result.orders
    old = orders.loc[list(first.moved)]
    assert set(old["status"]) == {"CANCELLED"} and set(old["instrument"]) == {MONTHS[0].id}
    new = orders[(orders["instrument"] == MONTHS[1].id) & (orders["created"] == first.timestamp)]
    exits = new[new["type"].isin(["LMT", "STP"])].sort_values("type")
    gap = Decimal(str(first.gap))
    assert list(exits["limit_price"].dropna()) == [old["limit_price"].dropna().iloc[0] + gap]
    assert list(exits["stop_price"].dropna()) == [old["stop_price"].dropna().iloc[0] + gap]
    assert result.positions[MONTHS[1].id].max() == 2
    assert result.positions.sum(axis=1).max() == 2


# --- several strategies: a roller in one sleeve ------------------------------------------------
@attrs.define
class Short(Strategy):
    """Hold ``quantity`` of the front month, short, without a roller (until it expires)."""

    quantity: int = 1

    @override
    def on_slice(self, ctx: Context, bars: Sequence[Bar]) -> None:
        ctx.order_target_quantity(MONTHS[0], -self.quantity)


def test_roller_in_one_of_several_strategies_rolls_its_own_position_only() -> None:
    # Two strategies on one account net at the broker (long 2 and short 1 of December is 1):
    # the roller's legs are its own orders, checked by its own rules, and its books roll
    # exactly as when it runs alone; the other strategy's December position is not rolled.
    alone = Hold()
    _run(alone)
    hold, short = Hold(), Short()
    result = _run({"roll": Sleeve(hold, risk_rules=[MaxPosition(quantity=2)]), "front": short})
    assert [(r.timestamp, r.status, r.quantity) for r in hold.roller.rolls] == [
        (r.timestamp, r.status, r.quantity) for r in alone.roller.rolls
    ]
    mine_orders = result.strategies["roll"].order_list
    assert {o.request.strategy for o in mine_orders} == {"roll"}  # its own orders only
    rolled = {r.close_order_id for r in hold.roller.rolls} | {
        r.open_order_id for r in hold.roller.rolls
    }
    assert rolled <= {o.order_id for o in mine_orders}
    assert set(result.strategies["roll"].fills["order_id"]) <= {o.order_id for o in mine_orders}
    mine = result.strategies["roll"].positions.iloc[-1]
    assert mine[MONTHS[-1].id] == 2 and mine[MONTHS[0].id] == 0
    theirs = result.strategies["front"].positions
    assert (theirs[MONTHS[1].id] == 0).all() and (theirs[MONTHS[2].id] == 0).all()
    # the account is the sum of the two, on every bar
    total = result.strategies["roll"].positions.add(theirs, fill_value=0)
    assert (total[result.positions.columns] == result.positions).all().all()


def test_roller_in_a_sleeve_refused_by_its_own_rule_sends_nothing() -> None:
    hold = Hold()
    rule = RestrictedList([MONTHS[1]], reason="no March contracts")
    broker = RecordingBroker(SimBroker(cash=10_000_000))
    _run({"roll": Sleeve(hold, risk_rules=[rule]), "front": Short()}, broker)
    refused = [r for r in hold.roller.rolls if r.status == "refused"]
    assert refused and "strategy 'roll'" in refused[0].reason
    assert "no March contracts" in refused[0].reason
    sent = {o.order_id for o in broker.submitted}
    assert refused[0].close_order_id not in sent and refused[0].open_order_id not in sent
