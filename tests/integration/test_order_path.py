"""The order path's shortcuts, where they meet the features they skip.

A market order of a whole quantity shares one immutable request; an ``OrderSubmitted`` nobody
hears is not made; the OCA and exit bookkeeping is skipped until an order needs it; and the
buying-power rule walks the positions by instrument. Each must leave every outcome as it was.
"""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ibkrfw import (
    Bar,
    Context,
    Engine,
    Event,
    Fill,
    Order,
    OrderEvent,
    OrderRequest,
    OrderStatus,
    Portfolio,
    Side,
    Stock,
    Strategy,
)
from ibkrfw.engine import EngineObserver
from ibkrfw.portfolio import PortfolioView, TaxLotPortfolio
from ibkrfw.risk import BuyingPower, Protection, StopLoss, TakeProfit
from ibkrfw.sim import DataFrameFeed, SimBroker
from ibkrfw.strategy import _request
from ibkrfw.testing import bars_frame

X = Stock("X")
LOTS = Stock("L", lot_size=Decimal(100))
ROWS = [(100 + i % 3, 102 + i % 3, 99 + i % 3, 101 + i % 3) for i in range(12)]


class Alternate(Strategy):
    """Buys ``size`` on even bars and sells it on odd ones, keeping every order."""

    def __init__(self, inst: Stock = X, size: int = 1) -> None:
        self.inst, self.size = inst, size
        self.orders: list[Order] = []
        self.n = 0

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        send = ctx.buy if self.n % 2 == 0 else ctx.sell
        self.orders.append(send(self.inst, self.size))
        self.n += 1


def _feed(inst: Stock = X) -> DataFrameFeed:
    return DataFrameFeed(bars_frame(ROWS), inst)


def test_market_orders_of_one_quantity_share_one_request_and_each_is_still_checked() -> None:
    strategy = Alternate()
    result = Engine(strategy, _feed(), SimBroker(100_000)).run()
    buys = [o.request for o in result.order_list if o.side is Side.BUY]
    assert len(buys) == 6 and all(r is buys[0] for r in buys)
    assert buys[0] == OrderRequest(X, "BUY", 1)
    assert all(o.status is OrderStatus.FILLED for o in result.order_list[:-1])
    # A shared request that breaks a rule of its instrument is denied every time it is sent.
    denied = Alternate(LOTS, size=5)
    result = Engine(denied, _feed(LOTS), SimBroker(100_000)).run()
    assert [o.status for o in result.order_list] == [OrderStatus.DENIED] * 12
    assert all("lot size" in o.reason for o in result.order_list)


def test_a_shared_request_keeps_each_strategy_s_name() -> None:
    one, two = Alternate(), Alternate()
    engine = Engine({"one": one, "two": two}, _feed(), SimBroker(100_000))
    result = engine.run()
    names = [o.request.strategy for o in result.order_list]
    assert names.count("one") == names.count("two") == 12
    assert {o.request.strategy for o in one.orders} == {"one"}
    assert {o.request.strategy for o in two.orders} == {"two"}
    shared, _ = _request(X, Side.BUY, 1, {})
    assert shared.strategy == ""  # the request both were built from is untouched


class _Heard(EngineObserver):
    def __init__(self) -> None:
        self.kinds: list[str] = []

    def on_event(self, engine: Engine, event: Event) -> None:
        if isinstance(event, OrderEvent):
            self.kinds.append(type(event).__name__)


class _OnOrder(Alternate):
    def __init__(self) -> None:
        super().__init__()
        self.kinds: list[str] = []

    def on_order(self, ctx: Context, order: Order, event: OrderEvent) -> None:
        self.kinds.append(type(event).__name__)


def test_order_submitted_reaches_whoever_listens_and_nothing_else_changes() -> None:
    quiet = Engine(Alternate(), _feed(), SimBroker(100_000)).run()
    observer = _Heard()
    observed = Engine(Alternate(), _feed(), SimBroker(100_000), observers=[observer]).run()
    listening = _OnOrder()
    heard = Engine(listening, _feed(), SimBroker(100_000)).run()
    per_order = ["OrderSubmitted", "OrderAccepted", "OrderFilled"]
    assert observer.kinds == per_order * 11 + per_order[:2]
    assert listening.kinds == observer.kinds
    for other in (observed, heard):
        assert other.order_list == quiet.order_list
        assert other.fill_list == quiet.fill_list
        assert other.stats["Final equity"] == quiet.stats["Final equity"]


class _OcaPair(Strategy):
    """Two entries in one OCA group on the first bar: the fill of one cancels the other."""

    def __init__(self) -> None:
        self.sent = False

    def on_bar(self, ctx: Context, bar: Bar) -> None:
        if not self.sent:
            ctx.buy(X, 10, limit_price="101", tif="GTC", oca_group="g")
            ctx.buy(X, 10, limit_price="90", tif="GTC", oca_group="g")
            self.sent = True


def test_an_oca_group_still_takes_its_other_orders_away_after_plain_orders() -> None:
    class Both(_OcaPair):
        def on_bar(self, ctx: Context, bar: Bar) -> None:
            if not self.sent:
                ctx.buy(X, 1)  # a plain order first: the group comes later
                ctx.sell(X, 1)
            super().on_bar(ctx, bar)

    engine = Engine(Both(), _feed(), SimBroker(100_000))
    result = engine.run()
    group = [o for o in result.order_list if o.request.oca_group == "g"]
    assert sorted(o.status for o in group) == [OrderStatus.CANCELLED, OrderStatus.FILLED]
    assert engine.portfolio is not None and engine.portfolio.quantity(X) == 10


def test_closing_orders_still_join_protection_s_group() -> None:
    """A strategy's closing order joins its Protection's OCA group: never both filled."""

    class EnterThenClose(Strategy):
        def __init__(self) -> None:
            self.n = 0

        def on_bar(self, ctx: Context, bar: Bar) -> None:
            if self.n == 0:
                ctx.buy(X, 10)
            elif self.n == 3:
                ctx.sell(X, 10)
            self.n += 1

    protect = Protection(StopLoss.fixed(20), TakeProfit.fixed(40))
    engine = Engine(EnterThenClose(), _feed(), SimBroker(100_000), protection=protect)
    result = engine.run()
    close = [o for o in result.order_list if o.request.tag == "" and o.side is Side.SELL]
    assert len(close) == 1 and close[0].request.oca_group
    exits = [o for o in result.order_list if o.request.tag in ("stop-loss", "take-profit")]
    assert exits and all(o.request.oca_group == close[0].request.oca_group for o in exits)
    assert all(o.status is OrderStatus.CANCELLED for o in exits)
    assert engine.portfolio is not None and engine.portfolio.quantity(X) == 0
    assert sum(f.signed_quantity for f in result.fill_list) == 0


def _margin_reference(
    rule: BuyingPower, request: OrderRequest, portfolio: PortfolioView
) -> tuple[float, float]:
    """The initial margin before and after ``request``, as BuyingPower first computed it."""
    inst = request.instrument
    working = portfolio.working_by_instrument()
    before = after = 0.0
    for other in set(portfolio.positions) | set(working) | {inst}:
        price = (
            float(request.limit_price)
            if other == inst and request.limit_price is not None
            else portfolio.price(other)
        )
        unit = price * float(other.multiplier)
        if math.isnan(unit):
            continue
        rate = rule.rates[other.asset_class]
        held = portfolio.quantity(other)
        buys, sells = working.get(other, (Decimal(0), Decimal(0)))
        before += float(max(abs(held + buys), abs(held - sells))) * unit * rate
        if other == inst:
            buys, sells = (
                (buys + request.quantity, sells)
                if request.side is Side.BUY
                else (buys, sells + request.quantity)
            )
        after += float(max(abs(held + buys), abs(held - sells))) * unit * rate
    return before, after


INSTS = [Stock("A"), Stock("B"), Stock("C", multiplier=Decimal(10))]
fills = st.lists(
    st.tuples(st.sampled_from(INSTS), st.sampled_from(list(Side)), st.integers(1, 50)),
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(
    fills=fills,
    marked=st.lists(st.sampled_from(INSTS), unique=True),
    order=st.tuples(st.sampled_from([*INSTS, Stock("D")]), st.sampled_from(list(Side))),
    quantity=st.integers(1, 80),
    limit=st.none() | st.integers(50, 150),
    lots=st.booleans(),
)
def test_buying_power_counts_every_position_as_before(
    fills: list[tuple[Stock, Side, int]],
    marked: list[Stock],
    order: tuple[Stock, Side],
    quantity: int,
    limit: int | None,
    lots: bool,
) -> None:
    """The walk over ``held_instruments`` gives the margin the walk over positions gave."""
    ledger = TaxLotPortfolio(1_000_000, method="fifo") if lots else Portfolio(1_000_000)
    for k, (inst, side, size) in enumerate(fills):
        ledger.apply_fill(Fill(k, inst, side, Decimal(size), Decimal(100 + k), Decimal(0), k, "e"))
    for inst in marked:
        ledger.mark(inst, 90.0 + len(inst.symbol))
    assert sorted(i.symbol for i in ledger.held_instruments()) == sorted(
        i.symbol for i in ledger.positions
    )
    inst, side = order
    price = {} if limit is None else {"limit_price": limit}
    request = OrderRequest(inst, side, quantity, "LMT" if price else "MKT", **price)  # type: ignore[arg-type]
    rule = BuyingPower()
    got = rule.initial_margin(request, ledger)
    want = _margin_reference(rule, request, ledger)
    assert got == pytest.approx(want, rel=1e-12, abs=1e-9)
    assert rule.check(request, ledger, 0).approved == (
        want[1] <= want[0] or want[1] <= ledger.equity
    )


def test_denials_still_name_their_rule() -> None:
    class Greedy(Strategy):
        def on_bar(self, ctx: Context, bar: Bar) -> None:
            ctx.buy(X, 5_000)

    result = Engine(Greedy(), _feed(), SimBroker(100_000)).run()
    assert result.order_list and all(o.status is OrderStatus.DENIED for o in result.order_list)
    assert all("buying power" in o.reason for o in result.order_list)


def test_a_shared_request_carries_the_instrument_object_it_was_asked_with() -> None:
    """Equal instruments may differ where equality does not look: each order keeps its own."""
    from ibkrfw import Future

    listed = Future("ES", expiry="202612", exchange="CME")
    moved = Future("ES", expiry="202612", exchange="CME", last_trade_date="20261217")
    assert listed == moved and listed.last_trade_date != moved.last_trade_date
    for inst in (listed, moved, listed, moved):
        request, problem = _request(inst, Side.BUY, 1, {})
        assert problem is None and request.instrument is inst
    first, _ = _request(X, Side.SELL, 3, {})
    again, _ = _request(X, Side.SELL, 3, {})
    other, _ = _request(X, Side.BUY, 3, {})
    assert again is first and other is not first and other.side is Side.BUY


def test_equal_instruments_with_ticks_written_apart_keep_their_own_fill_prices() -> None:
    """0.01 and 0.010 are equal ticks, and the instruments equal: each fills on its own."""
    two = Stock("X", tick_size=Decimal("0.01"))
    three = Stock("X", tick_size=Decimal("0.010"))
    assert two == three

    class Both(Strategy):
        def __init__(self) -> None:
            self.n = 0

        def on_bar(self, ctx: Context, bar: Bar) -> None:
            if self.n < 4:
                (ctx.buy if self.n % 2 == 0 else ctx.sell)(two if self.n < 2 else three, 1)
            self.n += 1

    rows = [(100.5, 101, 100, 100.5)] * 6
    result = Engine(Both(), DataFrameFeed(bars_frame(rows), two), SimBroker(100_000)).run()
    prices = [str(f.price) for f in result.fill_list]
    assert prices == ["100.50", "100.50", "100.500", "100.500"]
