from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ibkrfw import (
    Bar,
    Context,
    Engine,
    EngineError,
    FxRates,
    Order,
    OrderDenied,
    OrderRequest,
    OrderStatus,
    OrderType,
    PortfolioView,
    RiskDecision,
    RiskRule,
    Side,
    Stock,
    Strategy,
    TimeInForce,
)
from ibkrfw.risk import MaxOrderQuantity
from ibkrfw.sim import DataFrameFeed, PerShareCommission, SimBroker
from ibkrfw.testing import RecordingBroker, ScriptedStrategy, bars_frame

X, Y = Stock("X"), Stock("Y")
D = Decimal

# open, high, low, close
ROWS = [
    (100, 101, 99, 100),  # 0
    (100.5, 102, 99.5, 101),  # 1
    (101, 103, 98, 102),  # 2
    (96, 97, 95, 96.5),  # 3: gap down
    (104, 106, 103, 105),  # 4: gap up
    (105, 106, 104, 105.5),  # 5
]


def run(actions: dict, rows: Sequence[tuple] = ROWS, **engine_kwargs: object):  # type: ignore[no-untyped-def, type-arg]
    script = ScriptedStrategy(actions)
    broker = RecordingBroker(SimBroker(100_000))
    result = Engine(script, DataFrameFeed(bars_frame(rows), X), broker, **engine_kwargs).run()  # type: ignore[arg-type]
    return script, broker, result


def test_market_order_fills_at_next_bar_open_with_full_event_sequence() -> None:
    script, broker, result = run({0: lambda ctx, bar: ctx.buy(X, 10)})
    assert script.event_types() == ["OrderSubmitted", "OrderAccepted", "OrderFilled"]
    (fill,) = script.fills
    assert (fill.price, fill.quantity, fill.ts_ns) == (D("100.50"), 10, script.bars[1].ts_ns)
    order = result.order_list[0]
    assert order.status is OrderStatus.FILLED and order.avg_fill_price == D("100.50")
    assert len(broker.submitted) == 1


def test_position_is_booked_before_the_strategy_sees_the_fill_bar() -> None:
    seen = []
    script = ScriptedStrategy(
        {
            0: lambda ctx, bar: ctx.buy(X, 10),
            1: lambda ctx, bar: seen.append(ctx.position(X).quantity),
        }
    )
    Engine(script, DataFrameFeed(bars_frame(ROWS), X), SimBroker()).run()
    assert seen == [10]


@pytest.mark.parametrize(
    ("side", "price", "fill_bar", "fill_price"),
    [
        ("BUY", "99", 2, "99"),  # bar 2 low 98 touches: at the limit
        ("BUY", "97.5", 3, "96"),  # bar 3 opens at 96, below the limit: at the better open
        ("SELL", "102.5", 2, "102.5"),  # bar 2 high 103 touches
        ("SELL", "103.5", 4, "104"),  # bar 4 gaps up to 104: at the better open
    ],
)
def test_limit_orders_fill_when_touched_or_at_a_better_gap(
    side: str, price: str, fill_bar: int, fill_price: str
) -> None:
    req = OrderRequest.limit(X, side, 5, price, tif="GTC")
    script, _, _ = run({0: lambda ctx, bar: ctx.submit(req)})
    (fill,) = script.fills
    assert fill.ts_ns == script.bars[fill_bar].ts_ns
    assert fill.price == D(fill_price)


@pytest.mark.parametrize(
    ("side", "price", "fill_bar", "fill_price"),
    [
        ("BUY", "102.5", 2, "102.5"),  # bar 2 high 103 triggers: at the stop
        ("BUY", "103.5", 4, "104"),  # bar 4 gaps above: at the worse open
        ("SELL", "98.5", 2, "98.5"),  # bar 2 low 98 triggers
        ("SELL", "97.5", 3, "96"),  # bar 3 gaps below: at the worse open
    ],
)
def test_stop_orders_trigger_when_touched_or_at_a_worse_gap(
    side: str, price: str, fill_bar: int, fill_price: str
) -> None:
    req = OrderRequest.stop(X, side, 5, price, tif="GTC")
    script, _, _ = run({0: lambda ctx, bar: ctx.submit(req)})
    (fill,) = script.fills
    assert fill.ts_ns == script.bars[fill_bar].ts_ns
    assert fill.price == D(fill_price)


def test_never_fills_on_the_bar_it_was_decided_on() -> None:
    # a limit at the current bar's close would "fill" on that very bar if the simulator cheated
    script, _, _ = run({2: lambda ctx, bar: ctx.buy(X, 1, limit_price="102", tif="GTC")})
    assert script.fills[0].ts_ns > script.bars[2].ts_ns


def test_cancel_a_working_order_then_cancel_again_is_rejected() -> None:
    state: dict[str, Order] = {}
    actions = {
        0: lambda ctx, bar: state.setdefault("o", ctx.buy(X, 1, limit_price="50", tif="GTC")),
        1: lambda ctx, bar: ctx.cancel(state["o"]),
        2: lambda ctx, bar: ctx.cancel(state["o"].order_id),
    }
    script, _, result = run(actions)
    assert script.event_types() == [
        "OrderSubmitted",
        "OrderAccepted",
        "OrderCancelled",
        "OrderCancelRejected",
    ]
    assert result.order_list[0].status is OrderStatus.CANCELLED
    assert script.fills == []


def test_risk_denial_reaches_the_strategy_and_nothing_is_sent() -> None:
    script, broker, result = run(
        {0: lambda ctx, bar: ctx.buy(X, 500), 1: lambda ctx, bar: ctx.buy(X, 50)},
        risk_rules=[MaxOrderQuantity(100)],
    )
    denied = [e for _, e in script.events if isinstance(e, OrderDenied)]
    assert len(denied) == 1
    assert denied[0].rule == "MaxOrderQuantity"
    assert "exceeds the limit of 100" in denied[0].reason
    assert [o.quantity for o in broker.submitted] == [50]
    assert result.order_list[0].status is OrderStatus.DENIED
    assert result.order_list[0].reason == denied[0].reason
    assert result.orders.loc[1, "status"] == "DENIED"


def test_custom_rule_sees_portfolio_and_time() -> None:
    calls: list[tuple[Decimal, int]] = []

    class NoPyramiding(RiskRule):
        def check(
            self, request: OrderRequest, portfolio: PortfolioView, ts_ns: int
        ) -> RiskDecision:
            calls.append((portfolio.quantity(request.instrument), ts_ns))
            if portfolio.quantity(request.instrument) > 0 and request.side.sign > 0:
                return RiskDecision.deny("already long")
            return RiskDecision.approve()

    script, broker, _ = run(
        {0: lambda ctx, bar: ctx.buy(X, 1), 2: lambda ctx, bar: ctx.buy(X, 1)},
        risk_rules=[NoPyramiding()],
    )
    assert len(broker.submitted) == 1
    assert calls[1][0] == 1 and calls[1][1] == script.bars[2].ts_ns
    assert script.event_types()[-1] == "OrderDenied"


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (OrderRequest.market(X, "BUY", 0), "quantity must be positive"),
        (OrderRequest.limit(X, "BUY", 1, "100.001"), "tick size"),
        (OrderRequest.market(Y, "BUY", 1), "unknown instrument Y.SMART"),
    ],
)
def test_invalid_requests_are_denied_not_raised(request_: OrderRequest, reason: str) -> None:
    script, broker, _ = run({0: lambda ctx, bar: ctx.submit(request_)})
    ((order, event),) = script.events
    assert isinstance(event, OrderDenied) and event.rule == "validation"
    assert reason in event.reason
    assert order.status is OrderStatus.DENIED
    assert broker.submitted == []


@pytest.mark.parametrize(
    ("side", "stop", "limit", "fill_bar", "fill_price"),
    [
        ("BUY", "102.5", "103", 2, "102.5"),  # touched inside bar 2, limit above: at the stop
        ("BUY", "102.5", "102", 3, "96"),  # limit below the stop: waits; bar 3 opens under it
        ("BUY", "103.5", "104.5", 4, "104"),  # bar 4 gaps over the stop, open within the limit
        ("BUY", "103.5", "103.8", 4, "103.8"),  # gap over the limit too; low comes back to it
        ("SELL", "97.5", "96.5", 3, "96.5"),  # bar 3 gaps under; high 97 reaches the limit
        ("SELL", "98.5", "98", 2, "98.5"),  # touched inside bar 2, limit below: at the stop
    ],
)
def test_stop_limit_orders(
    side: str, stop: str, limit: str, fill_bar: int, fill_price: str
) -> None:
    req = OrderRequest(X, side, 5, "STP LMT", limit_price=limit, stop_price=stop, tif="GTC")
    script, _, _ = run({0: lambda ctx, bar: ctx.submit(req)})
    (fill,) = script.fills
    assert (fill.ts_ns, fill.price) == (script.bars[fill_bar].ts_ns, D(fill_price))


@pytest.mark.parametrize(
    ("at", "side", "trail", "fill_bar", "fill_price"),
    [
        # from the close of 100 the stop starts at 98; bar 1's high of 102 lifts it to 100,
        # and bar 2's low of 98 goes through it
        (0, "SELL", {"trail_amount": 2}, 2, "100.00"),
        # 5 %: 95, then 96.90 after bar 1 and 97.85 after bar 2; bar 3 gaps under to 96
        (0, "SELL", {"trail_percent": 5}, 3, "96"),
        # buying 1 above the close of 96.5: bar 4 gaps over the stop of 97.5 to 104
        (3, "BUY", {"trail_amount": 1}, 4, "104"),
    ],
)
def test_trailing_stops(at: int, side: str, trail: dict, fill_bar: int, fill_price: str) -> None:  # type: ignore[type-arg]
    if side == "SELL":
        action = lambda ctx, bar: ctx.sell(X, 5, tif="GTC", **trail)  # noqa: E731
    else:
        action = lambda ctx, bar: ctx.buy(X, 5, tif="GTC", **trail)  # noqa: E731
    script, broker, _ = run({at: action})
    (order,) = broker.submitted
    assert order.request.order_type is OrderType.TRAILING_STOP
    (fill,) = script.fills
    assert (fill.ts_ns, fill.price) == (script.bars[fill_bar].ts_ns, D(fill_price))


def test_trailing_stop_initial_stop_can_be_given_and_needs_a_price_otherwise() -> None:
    _, broker, _ = run(
        {0: lambda ctx, bar: ctx.sell(X, 5, tif="GTC", trail_amount=2, stop_price="90")}
    )
    assert broker.submitted[0].request.stop_price == D(90)
    seen = []

    class Early(Strategy):
        def on_start(self, ctx: Context) -> None:
            ctx.sell(X, 1, trail_percent=1)

        def on_order(self, ctx: Context, order: Order, event: object) -> None:
            seen.append(event)

    Engine(Early(), DataFrameFeed(bars_frame(ROWS), X), SimBroker()).run()
    assert isinstance(seen[0], OrderDenied)
    assert "no price seen yet" in seen[0].reason


def test_day_order_expires_at_the_end_of_its_first_trading_day() -> None:
    # minute bars over two New York days; a far-away DAY limit must expire at the next day
    day1 = pd.date_range("2024-01-02 14:30", periods=3, freq="1min", tz="UTC")
    day2 = pd.date_range("2024-01-03 14:30", periods=2, freq="1min", tz="UTC")
    frame = pd.DataFrame(
        {"open": 10.0, "high": 10.5, "low": 9.5, "close": 10.0, "volume": 100.0},
        index=day1.append(day2),
    )
    script = ScriptedStrategy({0: lambda ctx, bar: ctx.buy(X, 1, limit_price="5")})
    result = Engine(script, DataFrameFeed(frame, X), SimBroker()).run()
    assert script.event_types() == ["OrderSubmitted", "OrderAccepted", "OrderExpired"]
    _, event = script.events[-1]
    assert event.ts_ns == script.bars[3].ts_ns
    assert result.order_list[0].status is OrderStatus.EXPIRED


def test_gtc_survives_days_ioc_gets_one_bar_gtd_expires_on_time() -> None:
    gtd_ns = int(pd.Timestamp("2024-01-05", tz="UTC").value)
    script, _, result = run(
        {
            0: lambda ctx, bar: (
                ctx.buy(X, 1, limit_price="50", tif=TimeInForce.GTC),
                ctx.buy(X, 1, limit_price="50", tif="IOC"),
                ctx.buy(X, 1, limit_price="50", tif="GTD", good_till_ns=gtd_ns),
            )
        }
    )
    statuses = [o.status for o in result.order_list]
    assert statuses == [OrderStatus.SUBMITTED, OrderStatus.EXPIRED, OrderStatus.EXPIRED]
    expired = {e.order_id: e.ts_ns for _, e in script.events if type(e).__name__ == "OrderExpired"}
    assert expired[2] == script.bars[1].ts_ns  # IOC: expires on its one chance, bar 1
    assert expired[3] == script.bars[3].ts_ns  # GTD: first bar at or after 2024-01-05


def test_order_target_percent_sizes_from_equity_and_counts_pending_orders() -> None:
    _, broker, _ = run(
        {
            0: lambda ctx, bar: (
                ctx.order_target_percent(X, 0.5),
                ctx.order_target_percent(X, 0.5),
            ),
            2: lambda ctx, bar: ctx.order_target_quantity(X, 0),
        }
    )
    # 50 % of 100,000 at the last close 100 = 500 shares; the second call finds it pending
    assert [(o.side.value, o.quantity) for o in broker.submitted] == [("BUY", 500), ("SELL", 500)]


def test_order_target_value_without_a_price_is_denied() -> None:
    seen = []

    class Early(Strategy):
        def on_start(self, ctx: Context) -> None:
            seen.append(ctx.order_target_value(X, 1000.0))

        def on_order(self, ctx: Context, order: Order, event: object) -> None:
            seen.append(event)

    Engine(Early(), DataFrameFeed(bars_frame(ROWS), X), SimBroker()).run()
    denied = seen[-1]
    assert isinstance(denied, OrderDenied) and denied.rule == "sizing"
    assert "no valid price" in denied.reason


def test_on_slice_gets_bars_sharing_a_timestamp_and_equity_once_per_time() -> None:
    frames = {X: bars_frame(ROWS[:3]), Y: bars_frame(ROWS[:3])}
    script = ScriptedStrategy()
    result = Engine(script, DataFrameFeed(frames), SimBroker()).run()
    assert [[b.instrument.symbol for b in s] for s in script.slices] == [["X", "Y"]] * 3
    assert len(result.equity) == 3
    assert result.equity.index.tz is not None


def test_several_feeds_are_merged_by_time() -> None:
    script = ScriptedStrategy()
    feeds = [DataFrameFeed(bars_frame(ROWS[:2]), X), DataFrameFeed(bars_frame(ROWS[:2]), Y)]
    Engine(script, feeds, SimBroker()).run()
    assert [b.instrument.symbol for b in script.bars] == ["X", "Y", "X", "Y"]


def test_timers_fire_at_their_simulated_time_between_bars() -> None:
    day = 86_400 * 10**9
    fired: list[tuple[int, int]] = []

    class Timed(Strategy):
        def on_start(self, ctx: Context) -> None:
            first = int(pd.Timestamp("2024-01-02 12:00", tz="UTC").value)
            ctx.schedule("noon", at_ns=first, every_ns=day)

        def on_timer(self, ctx: Context, timer: object) -> None:
            fired.append((ctx.now_ns, len(ctx.history(X))))

    Engine(Timed(), DataFrameFeed(bars_frame(ROWS), X), SimBroker()).run()
    noon = int(pd.Timestamp("2024-01-02 12:00", tz="UTC").value)
    # noon of day k fires before the bar of day k+1 is seen; the last noon is after the data
    assert fired == [(noon + k * day, k + 1) for k in range(5)]


def test_history_ends_with_the_current_bar_without_look_ahead() -> None:
    seen = []
    script = ScriptedStrategy(
        {
            k: (lambda ctx, bar: seen.append(ctx.history(X, 3).close.copy()))
            for k in range(len(ROWS))
        }
    )
    Engine(script, DataFrameFeed(bars_frame(ROWS), X), SimBroker()).run()
    assert seen[0].tolist() == [100.0]
    assert seen[4].tolist() == [102.0, 96.5, 105.0]


def test_engine_runs_once_and_rejects_undeclared_instruments() -> None:
    engine = Engine(Strategy(), DataFrameFeed(bars_frame(ROWS), X), SimBroker())
    engine.run()
    with pytest.raises(EngineError, match="runs once"):
        engine.run()

    class Liar(DataFrameFeed.__mro__[1]):  # type: ignore[misc, name-defined]
        @property
        def instruments(self) -> tuple[Stock, ...]:
            return (Y,)

    from ibkrfw.sim.feeds import frame_to_arrays

    liar = Liar({X: frame_to_arrays(bars_frame(ROWS))})
    with pytest.raises(EngineError, match="does not declare"):
        Engine(Strategy(), liar, SimBroker()).run()


def test_result_tables_and_stats() -> None:
    _, _, result = run({0: lambda ctx, bar: ctx.buy(X, 10), 3: lambda ctx, bar: ctx.sell(X, 10)})
    assert list(result.fills.columns[:3]) == ["timestamp", "order_id", "instrument"]
    trades = result.trades
    assert len(trades) == 1
    row = trades.iloc[0]
    assert (row["side"], row["entry_price"], row["exit_price"]) == ("LONG", D("100.50"), D("104"))
    assert row["pnl"] == D("35.00")
    # bars 1 to 3 while long from 100.50, exit at bar 4's open of 104: highest 103, lowest 95
    assert row["mfe"] == pytest.approx((104 - 100.5) * 10)
    assert row["mae"] == pytest.approx((100.5 - 95) * 10)
    assert row["mae_pct"] == pytest.approx((100.5 - 95) / 100.5 * 100)
    eq = result.equity
    assert eq["equity"].iloc[-1] == pytest.approx(100_035.0)
    assert eq["cash"].iloc[0] == 100_000.0 and eq["cash"].iloc[-1] == pytest.approx(100_035.0)
    stats = result.stats
    assert stats["Trades"] == 1 and stats["Win rate [%]"] == 100.0
    assert stats["Final equity"] == pytest.approx(100_035.0)
    assert stats["Total return [%]"] == pytest.approx(0.035)


def test_commission_model_is_charged() -> None:
    script = ScriptedStrategy({0: lambda ctx, bar: ctx.buy(X, 1000)})
    broker = SimBroker(100_000, commission=PerShareCommission("0.005", minimum=1))
    result = Engine(script, DataFrameFeed(bars_frame(ROWS), X), broker).run()
    assert result.fill_list[0].commission == D("5.00")
    assert result.stats["Commissions"] == 5.0


# --- properties over random orders and bars ---------------------------------------------
@st.composite
def scenario(draw: st.DrawFn) -> tuple[list[tuple[float, float, float, float]], dict[int, list]]:  # type: ignore[type-arg]
    n = draw(st.integers(3, 25))
    closes = np.cumprod(
        1 + np.array(draw(st.lists(st.floats(-0.05, 0.05), min_size=n, max_size=n)))
    )
    rows = []
    prev = 100.0
    for c in closes * 100:
        o, c = round(prev, 2), round(float(c), 2)
        h = round(max(o, c) * (1 + draw(st.floats(0, 0.02))), 2)
        lo = round(min(o, c) * (1 - draw(st.floats(0, 0.02))), 2)
        rows.append((o, h, lo, c))
        prev = c
    orders = draw(
        st.dictionaries(
            st.integers(0, n - 1),
            st.lists(
                st.tuples(
                    st.sampled_from(["BUY", "SELL"]),
                    st.integers(1, 20),
                    st.sampled_from(
                        ["MKT", "LMT", "STP", "STP LMT", "TRAIL", "BRACKET", "MOC", "LOC", "OPG"]
                    ),
                    st.floats(0.9, 1.1),
                    st.sampled_from(["DAY", "GTC", "IOC"]),
                ),
                max_size=3,
            ),
        )
    )
    return rows, orders


@given(scenario(), st.sampled_from([None, 0.005, 0.02, 1.0]), st.sampled_from([None, 5.0, 500.0]))
def test_no_early_fill_no_overfill_and_books_balance(
    case: tuple,  # type: ignore[type-arg]
    limit: float | None,
    bps: float | None,
) -> None:
    from ibkrfw.sim import FixedBpsSlippage

    rows, orders = case

    def act(specs: list) -> object:  # type: ignore[type-arg]
        def action(ctx: Context, bar: Bar) -> None:
            for side, qty, kind, factor, tif in specs:
                price = X.round_price(bar.close * factor)
                other = X.round_price(bar.close * (2 - factor))
                if kind == "BRACKET":
                    wide = float(abs(price - other)) + 1.0
                    sign = 1 if side == "BUY" else -1
                    profit = X.round_price(bar.close + sign * wide)
                    loss = X.round_price(bar.close - sign * wide)
                    ctx.bracket(X, side, qty, take_profit=profit, stop_loss=loss, tif=tif)
                    continue
                if kind in ("MOC", "LOC", "OPG"):  # auction orders: DAY, or OPG on the open
                    limit = {} if factor > 1.0 else {"limit_price": price}
                    if kind == "MOC":
                        ctx.submit(OrderRequest(X, side, qty, "MOC"))  # type: ignore[arg-type]
                    elif kind == "LOC":
                        ctx.submit(OrderRequest(X, side, qty, "LOC", limit_price=price))  # type: ignore[arg-type]
                    else:
                        kind_ = "LMT" if limit else "MKT"
                        ctx.submit(OrderRequest(X, side, qty, kind_, tif="OPG", **limit))  # type: ignore[arg-type]
                    continue
                kwargs = {
                    "LMT": {"limit_price": price},
                    "STP": {"stop_price": price},
                    "STP LMT": {"stop_price": price, "limit_price": other},
                    "TRAIL": {"stop_price": price, "trail_amount": abs(price - other) + 1},
                }.get(kind, {})
                ctx.submit(OrderRequest(X, side, qty, kind, tif=tif, **kwargs))  # type: ignore[arg-type]

        return action

    script = ScriptedStrategy({i: act(specs) for i, specs in orders.items()})  # type: ignore[misc]
    slippage = None if bps is None else FixedBpsSlippage(bps)
    broker = SimBroker(10_000, volume_limit=limit, slippage=slippage)
    result = Engine(script, DataFrameFeed(bars_frame(rows), X), broker).run()
    for fill in result.fill_list:
        order = next(o for o in result.order_list if o.order_id == fill.order_id)
        assert fill.ts_ns > order.created_ns  # never on the bar it was decided on
        bar = next(b for b in script.bars if b.ts_ns == fill.ts_ns)
        assert bar.low - 1e-9 <= float(fill.price) <= bar.high + 1e-9  # a price that traded
        request = order.request
        if request.limit_price is not None:  # slippage never breaks a limit
            if request.side is Side.BUY:
                assert fill.price <= request.limit_price
            else:
                assert fill.price >= request.limit_price
    for order in result.order_list:
        assert order.filled_quantity <= order.quantity
    if limit is not None:  # never more than the allowed share of a bar's volume (1000 here)
        per_bar: dict[int, Decimal] = {}
        for fill in result.fill_list:
            per_bar[fill.ts_ns] = per_bar.get(fill.ts_ns, D(0)) + fill.quantity
        assert all(q <= int(1000 * limit) for q in per_bar.values())
    # zero commission: cash moved by exactly the fills; equity marks what is held at the last close
    cash = Decimal(10_000) - sum((f.signed_quantity * f.price for f in result.fill_list), D(0))
    held = sum((f.signed_quantity for f in result.fill_list), D(0))
    expected = float(cash) + float(held) * rows[-1][3]
    assert result.equity["cash"].iloc[-1] == pytest.approx(float(cash))
    assert result.stats["Final equity"] == pytest.approx(expected, rel=1e-12, abs=1e-6)


def test_run_restores_the_garbage_collector_settings() -> None:
    import gc

    before = gc.get_threshold()
    frozen_before = gc.get_freeze_count()  # nonzero if the process froze objects itself
    seen: list[tuple[int, ...]] = []
    script = ScriptedStrategy({0: lambda ctx, bar: seen.append(gc.get_threshold())})
    Engine(script, DataFrameFeed(bars_frame(ROWS), X), SimBroker()).run()
    assert seen[0][0] >= 10_000
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == frozen_before
    untouched: list[tuple[int, ...]] = []
    script = ScriptedStrategy({0: lambda ctx, bar: untouched.append(gc.get_threshold())})
    Engine(script, DataFrameFeed(bars_frame(ROWS), X), SimBroker(), tune_gc=False).run()
    assert untouched[0] == before


def test_on_start_sees_the_first_bar_time_so_relative_timers_start_there() -> None:
    day = 86_400 * 10**9
    starts: list[int] = []
    fired: list[int] = []

    class Daily(Strategy):
        def on_start(self, ctx: Context) -> None:
            starts.append(ctx.now_ns)
            ctx.schedule("daily", every_ns=day)

        def on_timer(self, ctx: Context, timer: object) -> None:
            fired.append(ctx.now_ns)

    Engine(Daily(), DataFrameFeed(bars_frame(ROWS), X), SimBroker()).run()
    first = int(pd.Timestamp("2024-01-02", tz="UTC").value)
    assert starts == [first]
    # due at each later bar's time, fired before that bar; nothing replayed from 1970
    assert fired == [first + k * day for k in range(1, len(ROWS))]


@given(
    scenario(),
    st.booleans(),
    st.none() | st.lists(st.floats(0.5, 2.0), min_size=26, max_size=26),
)
def test_equity_curve_matches_the_portfolio_seen_during_the_run(
    case: tuple,  # type: ignore[type-arg]
    two: bool,
    eur_rates: list[float] | None,
) -> None:
    """The curve computed after the run equals the portfolio's own equity at every time.

    With ``eur_rates``, the second instrument is priced in EUR and converted at rates that
    change every day, and its borrow fees are charged in EUR.
    """
    rows, orders = case
    seen: dict[int, float] = {}

    class Probe(Strategy):
        def on_slice(self, ctx: Context, bars: Sequence[Bar]) -> None:
            for bar in bars:
                for side, qty, *_ in orders.get(len(seen), []):
                    ctx.submit(OrderRequest.market(bar.instrument, side, qty))
            seen[bars[0].ts_ns] = ctx.portfolio.equity

    second = Y if eur_rates is None else Stock("Y", currency="EUR")
    frames = {X: bars_frame(rows)}
    if two:
        frames[second] = bars_frame(
            [(o * 2, h * 2, lo * 2, c * 2) for o, h, lo, c in rows[1:]], start="2024-01-03"
        )
    fx = None
    if eur_rates is not None:
        days = pd.date_range("2024-01-02", periods=len(eur_rates), freq="1D", tz="UTC")
        fx = FxRates({"EUR": pd.Series(eur_rates, index=days)})
    broker = SimBroker(10_000, borrow_rate=0.05, fx=fx)
    result = Engine(Probe(), DataFrameFeed(frames), broker).run()
    curve = result.equity["equity"]
    assert len(curve) == len(seen)
    for ts, value in zip(curve.index, curve, strict=True):
        assert value == pytest.approx(seen[ts.value], rel=1e-12, abs=1e-6)


def test_ibkr_fixed_commission_in_a_backtest() -> None:
    from ibkrfw.sim import IBKRFixedCommission

    script = ScriptedStrategy(
        {0: lambda ctx, bar: ctx.buy(X, 1000), 2: lambda ctx, bar: ctx.sell(X, 1000)}
    )
    broker = SimBroker(1_000_000, commission=IBKRFixedCommission())
    result = Engine(script, DataFrameFeed(bars_frame(ROWS), X), broker).run()
    buy, sell = result.fill_list
    assert buy.commission == D("5.00")
    # the sale fills at bar 3's open, 96: 5.00 + SEC on $96,000 + TAF on 1,000 shares
    assert sell.commission == D("5.00") + D("0.0000278") * 96_000 + D("0.166")
    assert result.trade_list[0].commission == buy.commission + sell.commission


# --- volume participation and partial fills ---------------------------------------------------
def _capped(actions: dict, volume: float | None = 1000.0, **broker_kw: object):  # type: ignore[no-untyped-def, type-arg]
    script = ScriptedStrategy(actions)
    broker = SimBroker(1_000_000, volume_limit=0.1, **broker_kw)  # type: ignore[arg-type]
    frame = bars_frame(ROWS, volume=0.0 if volume is None else volume)
    if volume is None:
        frame = frame.drop(columns="volume")  # no volume known at all
    result = Engine(script, DataFrameFeed(frame, X), broker).run()
    return script, result


def test_volume_limit_splits_a_market_order_over_bars() -> None:
    from ibkrfw.sim import IBKRFixedCommission

    script, result = _capped(
        {0: lambda ctx, bar: ctx.buy(X, 250, tif="GTC")}, commission=IBKRFixedCommission()
    )
    assert [(f.quantity, f.price) for f in script.fills] == [
        (100, D("100.50")),
        (100, D("101")),
        (50, D("96")),
    ]
    statuses = [o.status for o, e in script.events if type(e).__name__ == "OrderFilled"]
    assert statuses == [
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.FILLED,
    ]
    # IB's $1 minimum is charged once for the order: 1.00, then 0 (200 shares = $1.00), then
    # 0.25 (250 shares = $1.25)
    assert [f.commission for f in script.fills] == [D(1), D(0), D("0.25")]
    order = result.order_list[0]
    assert order.avg_fill_price == (D("100.50") * 100 + D(101) * 100 + D(96) * 50) / 250


def test_orders_share_a_bars_volume_first_come_first_served() -> None:
    script, _ = _capped(
        {0: lambda ctx, bar: (ctx.buy(X, 80, tif="GTC"), ctx.buy(X, 80, tif="GTC"))}
    )
    assert [(f.order_id, f.quantity, f.ts_ns) for f in script.fills] == [
        (1, 80, script.bars[1].ts_ns),
        (2, 20, script.bars[1].ts_ns),
        (2, 60, script.bars[2].ts_ns),
    ]


def test_ioc_keeps_its_partial_fill_and_expires_the_rest() -> None:
    script, result = _capped({0: lambda ctx, bar: ctx.buy(X, 250, tif="IOC")})
    assert [f.quantity for f in script.fills] == [100]
    order = result.order_list[0]
    assert (order.status, order.filled_quantity) == (OrderStatus.EXPIRED, 100)


def test_a_triggered_stop_fills_its_rest_at_later_opens() -> None:
    script, _ = _capped({0: lambda ctx, bar: ctx.sell(X, 150, stop_price="98.5", tif="GTC")})
    assert [(f.quantity, f.price) for f in script.fills] == [(100, D("98.5")), (50, D("96"))]


def test_zero_volume_bars_fill_nothing_and_unknown_volume_fills_in_full(
    caplog: pytest.LogCaptureFixture,
) -> None:
    script, _ = _capped({0: lambda ctx, bar: ctx.buy(X, 10)}, volume=0.0)
    assert script.fills == []
    with caplog.at_level("WARNING", logger="ibkrfw.sim"):
        script, _ = _capped({0: lambda ctx, bar: ctx.buy(X, 10_000)}, volume=None)
    assert [f.quantity for f in script.fills] == [10_000]
    assert "volume_limit cannot apply" in caplog.text


def test_volume_limit_must_be_a_share() -> None:
    from ibkrfw import ConfigError

    for bad in (0, -0.1, 1.5):
        with pytest.raises(ConfigError, match="volume_limit"):
            SimBroker(volume_limit=bad)


# --- slippage in the engine ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("bps", "action", "price"),
    [
        (50, lambda ctx, bar: ctx.buy(X, 1), "101.01"),  # 100.5 * 1.005 = 101.0025, rounded up
        (50, lambda ctx, bar: ctx.sell(X, 1), "99.99"),  # 100.5 * 0.995 = 99.9975, rounded down
        (500, lambda ctx, bar: ctx.buy(X, 1), "102"),  # 105.525 is above the bar's high
        # a limit touched inside the bar keeps its price: the limit is a guarantee
        (50, lambda ctx, bar: ctx.buy(X, 1, limit_price="99", tif="GTC"), "99"),
        # a gap through the limit improves the price; slippage eats part of it: 96 -> 96.48
        (50, lambda ctx, bar: ctx.buy(X, 1, limit_price="97.5", tif="GTC"), "96.48"),
    ],
)
def test_fixed_slippage_in_a_backtest(bps: float, action: object, price: str) -> None:
    from ibkrfw.sim import FixedBpsSlippage

    script = ScriptedStrategy({0: action})  # type: ignore[dict-item]
    broker = SimBroker(100_000, slippage=FixedBpsSlippage(bps))
    Engine(script, DataFrameFeed(bars_frame(ROWS), X), broker).run()
    (fill,) = script.fills
    assert fill.price == D(price)


def test_short_trade_excursions() -> None:
    _, _, result = run({0: lambda ctx, bar: ctx.sell(X, 10), 3: lambda ctx, bar: ctx.buy(X, 10)})
    row = result.trades.iloc[0]
    assert row["side"] == "SHORT"
    # short from 100.50 over bars 1-3 (highs 102, 103, 97; lows 99.5, 98, 95), covered at 104
    assert row["mae"] == pytest.approx((104 - 100.5) * 10)
    assert row["mfe"] == pytest.approx((100.5 - 95) * 10)


# --- account checks -------------------------------------------------------------------------
def _account(actions: dict, **broker_kw: object):  # type: ignore[no-untyped-def, type-arg]
    script = ScriptedStrategy(actions)
    broker = SimBroker(**broker_kw)  # type: ignore[arg-type]
    feed = DataFrameFeed(bars_frame(ROWS), X)
    result = Engine(script, feed, broker).run()
    denied = [e for _, e in script.events if type(e).__name__ == "OrderDenied"]
    return script, result, denied


def test_cash_account_refuses_what_it_cannot_pay_for() -> None:
    script, result, denied = _account(
        {0: lambda ctx, bar: (ctx.buy(X, 200), ctx.buy(X, 50))},
        cash=10_000,
        account="cash",
        commission=PerShareCommission(0.5),
    )
    (refusal,) = denied
    assert refusal.rule == "BuyingPower"
    # valued at the last close, 100, with its commission: nothing is sent
    assert refusal.reason == (
        "insufficient cash: the order needs 20,100.00 USD, the account has 10,000.00 USD"
    )
    assert [(f.order_id, f.quantity) for f in script.fills] == [(2, 50)]
    assert result.order_list[0].status is OrderStatus.DENIED


def test_cash_account_counts_the_buys_still_working() -> None:
    _, _, denied = _account(
        {0: lambda ctx, bar: (ctx.buy(X, 60), ctx.buy(X, 50))}, cash=10_000, account="cash"
    )
    (refusal,) = denied
    assert refusal.reason == (
        "insufficient cash: the order needs 5,000.00 USD and the buys still working 6,000.00, "
        "the account has 10,000.00 USD"
    )


def test_cash_account_refuses_short_sales_but_sells_what_it_holds() -> None:
    script, _, denied = _account(
        {
            0: lambda ctx, bar: ctx.buy(X, 10),
            2: lambda ctx, bar: ctx.sell(X, 15),
            3: lambda ctx, bar: (ctx.sell(X, 6), ctx.sell(X, 6)),
            4: lambda ctx, bar: ctx.sell(X, 4),
        },
        cash=10_000,
        account="cash",
    )
    assert [d.reason for d in denied] == [
        "a cash account cannot sell short: selling 15 of X.SMART while holding 10",
        "a cash account cannot sell short: selling 6 of X.SMART while holding 10 (6 already "
        "being sold)",
    ]
    assert [f.quantity for f in script.fills] == [10, 6, 4]


def test_reg_t_margin_is_the_default_and_allows_twice_equity_and_no_more() -> None:
    script, _, denied = _account(
        {0: lambda ctx, bar: ctx.buy(X, 150), 2: lambda ctx, bar: ctx.buy(X, 100)}, cash=10_000
    )
    assert [f.quantity for f in script.fills] == [150]  # 15,075 of exposure on 10,000
    (refusal,) = denied
    # 250 shares at 102 need 12,750 of margin; equity is 10,000 + 150 x (102 - 100.5)
    assert refusal.reason == (
        "insufficient buying power: with this order the positions and working orders would "
        "need 12,750.00 USD of initial margin (50.0% of a stock position's value), and the "
        "equity is 10,225.00 USD"
    )


def test_margin_none_asks_for_unlimited_leverage() -> None:
    script, _, denied = _account({0: lambda ctx, bar: ctx.buy(X, 10_000)}, initial_margin=None)
    assert not denied and [f.quantity for f in script.fills] == [10_000]
    assert SimBroker(initial_margin=None).account_rules == ()


def test_margin_by_asset_class() -> None:
    from ibkrfw import AssetClass

    broker = SimBroker(initial_margin={"FUT": 0.06})
    assert broker.initial_margin is not None
    assert broker.initial_margin[AssetClass.FUTURE] == 0.06
    assert broker.initial_margin[AssetClass.STOCK] == 0.5  # the others stay IB's
    assert SimBroker(initial_margin=0.25).initial_margin == dict.fromkeys(AssetClass, 0.25)


def test_an_accepted_order_fills_even_if_the_price_moved_against_the_account() -> None:
    # 103 shares at bar 3's close (96.5) cost 9,939.50 of the 10,000: accepted. Bar 4 gaps up
    # and the buy fills at 104 (10,712): not taken back, as IB checks an order when it is sent
    script, result, denied = _account(
        {3: lambda ctx, bar: ctx.buy(X, 103)}, cash=10_000, account="cash"
    )
    assert not denied
    assert [(f.quantity, f.price) for f in script.fills] == [(103, Decimal("104"))]
    assert result.equity["cash"].iloc[-1] == pytest.approx(10_000 - 103 * 104)


def test_margin_uses_fresh_marks_of_other_positions() -> None:
    # Y falls from 100 to 50 on its last bar: equity is then 12,500, and 200 X at 105 would
    # need 10,500 + 3,750 = 14,250 of initial margin; with Y still at 100 it would pass.
    y_rows = [(100, 101, 99, 100)] * 3 + [(50, 51, 49, 50)]
    frames = {X: bars_frame(ROWS), Y: bars_frame(y_rows)}
    actions = {0: lambda ctx, bar: ctx.buy(Y, 150), 8: lambda ctx, bar: ctx.buy(X, 200)}
    script = ScriptedStrategy(actions)
    broker = SimBroker(20_000)
    Engine(script, DataFrameFeed(frames), broker).run()
    denied = [e for _, e in script.events if type(e).__name__ == "OrderDenied"]
    assert [f.instrument for f in script.fills] == [Y]
    assert len(denied) == 1
    assert "need 14,250.00 USD of initial margin" in denied[0].reason


@pytest.mark.parametrize(
    "kwargs",
    [
        {"account": "isa"},
        {"initial_margin": 0},
        {"initial_margin": 2},
        {"account": "cash", "initial_margin": 0.5},
    ],
)
def test_bad_account_settings(kwargs: dict) -> None:  # type: ignore[type-arg]
    from ibkrfw import ConfigError

    with pytest.raises(ConfigError):
        SimBroker(**kwargs)


# --- modifying orders ---------------------------------------------------------------------
def test_modify_a_limit_price_and_it_fills_at_the_new_one() -> None:
    state: dict[str, Order] = {}
    script, _, result = run(
        {
            0: lambda ctx, bar: state.setdefault("o", ctx.buy(X, 5, limit_price="90", tif="GTC")),
            1: lambda ctx, bar: ctx.modify(state["o"], limit_price="99", quantity=7),
        }
    )
    assert script.event_types() == [
        "OrderSubmitted",
        "OrderAccepted",
        "OrderModified",
        "OrderFilled",
    ]
    (fill,) = script.fills
    assert (fill.quantity, fill.price, fill.ts_ns) == (7, D("99"), script.bars[2].ts_ns)
    order = result.order_list[0]
    assert (order.request.limit_price, order.quantity) == (D("99"), 7)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"quantity": 100}, "exceeds the limit of 50"),  # risk rules see the new request
        ({"limit_price": "90.001"}, "tick size"),
    ],
)
def test_modifications_are_checked_like_new_orders(change: dict, reason: str) -> None:  # type: ignore[type-arg]
    state: dict[str, Order] = {}
    script, _, _ = run(
        {
            0: lambda ctx, bar: state.setdefault("o", ctx.buy(X, 5, limit_price="90", tif="GTC")),
            1: lambda ctx, bar: ctx.modify(state["o"], **change),
        },
        risk_rules=[MaxOrderQuantity(50)],
    )
    order, event = script.events[-1]
    assert type(event).__name__ == "OrderModifyRejected"
    assert reason in event.reason  # type: ignore[attr-defined]
    assert order.request.limit_price == D("90")  # unchanged


def test_a_filled_quantity_cannot_be_modified_away_and_finished_orders_stay() -> None:
    state: dict[str, Order] = {}
    # 10 % of 1,000 per bar: 100 fill on bar 1's open, before on_bar of bar 1 runs
    script, result = _capped(
        {
            0: lambda ctx, bar: state.setdefault("o", ctx.buy(X, 250, tif="GTC")),
            1: lambda ctx, bar: (
                ctx.modify(state["o"], quantity=80),  # below the 100 filled: refused
                ctx.modify(state["o"], quantity=150),  # 50 more to go: done on bar 2
            ),
            2: lambda ctx, bar: ctx.modify(state["o"], quantity=300),  # finished by now
        }
    )
    outcomes = [
        (type(e).__name__, getattr(e, "reason", ""))
        for _, e in script.events
        if type(e).__name__.startswith("OrderModif")
    ]
    assert outcomes[0][0] == "OrderModifyRejected"
    assert "a filled quantity cannot be modified away: 100 filled, 80 asked" in outcomes[0][1]
    assert outcomes[1] == ("OrderModified", "")
    assert outcomes[2][0] == "OrderModifyRejected" and "is FILLED" in outcomes[2][1]
    order = result.order_list[0]
    assert (order.status, order.filled_quantity, order.quantity) == (OrderStatus.FILLED, 150, 150)


def test_modify_keeps_the_instrument_side_and_type() -> None:
    state: dict[str, Order] = {}
    script, _, _ = run(
        {
            0: lambda ctx, bar: state.setdefault("o", ctx.buy(X, 5, limit_price="90", tif="GTC")),
            1: lambda ctx, bar: ctx.modify(state["o"], stop_price="95"),
        }
    )
    _, event = script.events[-1]
    assert "takes no stop price" in event.reason  # type: ignore[attr-defined]
    # A change of nothing is refused as an event, not raised (issue 20: the run goes on).
    script, _, _ = run({0: lambda ctx, bar: ctx.modify(ctx.buy(X, 1))})
    refused = [e for _, e in script.events if type(e).__name__ == "OrderModifyRejected"]
    assert len(refused) == 1 and "at least one" in refused[0].reason  # type: ignore[attr-defined]


# --- brackets and OCA groups ----------------------------------------------------------------
def _bracket(
    rows: Sequence[tuple] = ROWS,
    risk: Sequence[RiskRule] = (),
    broker_kw: dict | None = None,
    **kw: object,
):  # type: ignore[no-untyped-def, type-arg]
    script = ScriptedStrategy({0: lambda ctx, bar: ctx.bracket(X, "BUY", 10, **kw)})
    broker = SimBroker(100_000, **(broker_kw or {}))
    result = Engine(script, DataFrameFeed(bars_frame(rows), X), broker, risk_rules=risk).run()
    return script, result


def _fills(script: ScriptedStrategy) -> list[tuple[int, str, int]]:
    bar_of = {b.ts_ns: i for i, b in enumerate(script.bars)}
    return [(f.order_id, str(f.price), bar_of[f.ts_ns]) for f in script.fills]


def test_bracket_take_profit_fills_and_cancels_the_stop() -> None:
    script, result = _bracket(take_profit="102.5", stop_loss="97.5")
    assert _fills(script) == [(1, "100.50", 1), (2, "102.5", 2)]
    statuses = [o.status for o in result.order_list]
    assert statuses == [OrderStatus.FILLED, OrderStatus.FILLED, OrderStatus.CANCELLED]
    assert "OCA group 'bracket-1': order 2 filled" in result.order_list[2].reason


@pytest.mark.parametrize(("favourable", "winner"), [(False, (3, "98.5")), (True, (2, "102.5"))])
def test_bar_touching_both_exits_fills_the_adverse_one_unless_told(
    favourable: bool, winner: tuple[int, str]
) -> None:
    # bar 2 reaches 103 and 98: both the take-profit at 102.5 and the stop-loss at 98.5
    script, _ = _bracket(
        take_profit="102.5", stop_loss="98.5", broker_kw={"favourable_first": favourable}
    )
    assert _fills(script)[1] == (*winner, 2)
    assert len(script.fills) == 2


def test_exits_may_fill_on_the_entry_bar_after_an_open_fill() -> None:
    # entry at bar 1's open (100.50); bar 1's low of 99.5 then reaches the stop at 100
    script, _ = _bracket(take_profit="110", stop_loss="100")
    assert _fills(script) == [(1, "100.50", 1), (3, "100", 1)]


def test_exits_of_a_limit_entry_filled_inside_a_bar_wait_for_the_next_bar() -> None:
    # entry limit 99.8 fills inside bar 1 (low 99.5); the stop at 99.6 waits for bar 2
    script, _ = _bracket(take_profit="105", stop_loss="99.6", entry_limit="99.8")
    assert _fills(script) == [(1, "99.8", 1), (3, "99.6", 2)]


def test_refused_entry_refuses_its_exits() -> None:
    script, _ = _bracket(take_profit="105", stop_loss="95", risk=[MaxOrderQuantity(5)])
    denied = [e for _, e in script.events if isinstance(e, OrderDenied)]
    assert [e.order_id for e in denied] == [1, 2, 3]
    assert "parent order 1 was refused" in denied[1].reason
    assert script.fills == []


def test_exits_of_an_entry_ending_unfilled_are_cancelled() -> None:
    _, result = _bracket(take_profit="95", stop_loss="85", entry_limit="90", tif="DAY")
    statuses = [o.status for o in result.order_list]
    assert statuses == [OrderStatus.EXPIRED, OrderStatus.CANCELLED, OrderStatus.CANCELLED]
    assert "parent order 1 ended unfilled" in result.order_list[1].reason


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        ({"take_profit": "95", "stop_loss": "105"}, "take-profit above its stop-loss"),
        ({"take_profit": "105", "stop_loss": "95", "entry_limit": "110"}, "must lie between"),
    ],
)
def test_bracket_arguments_are_checked(kw: dict[str, str], reason: str) -> None:
    # Exit prices come from market data: wrong ones are a denial of the three orders, not an
    # exception that would end a live run (issue 20).
    script, result = _bracket(**kw)
    assert [o.status for o in result.order_list] == [OrderStatus.DENIED] * 3
    denied = [e for _, e in script.events if isinstance(e, OrderDenied)]
    assert len(denied) == 3 and all(reason in e.reason for e in denied)
    assert script.fills == []


def test_oca_partial_fill_reduces_the_other_member() -> None:
    # a breakout pair: buy 150 on a dip to 99 or on a rise to 102.5, 100 shares a bar at most
    script = ScriptedStrategy(
        {
            0: lambda ctx, bar: (
                ctx.buy(X, 150, limit_price="99", tif="GTC", oca_group="g"),
                ctx.buy(X, 150, stop_price="102.5", tif="GTC", oca_group="g"),
            )
        }
    )
    broker = SimBroker(100_000, volume_limit=0.1)
    result = Engine(script, DataFrameFeed(bars_frame(ROWS), X), broker).run()
    assert _fills(script) == [(2, "102.5", 2), (2, "96.00", 3)]
    modified = [e for _, e in script.events if type(e).__name__ == "OrderModified"]
    assert [(e.order_id, e.request.quantity) for e in modified] == [(1, 50)]
    limit = result.order_list[0]
    assert (limit.status, limit.quantity, limit.filled_quantity) == (OrderStatus.CANCELLED, 50, 0)


# --- the same-bar convention ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("at", "action", "fill"),
    [
        (0, lambda ctx, bar: ctx.buy(X, 1), (0, "100.00")),  # market: at bar 0's close
        (1, lambda ctx, bar: ctx.buy(X, 1, limit_price="101.5", tif="GTC"), (1, "101.00")),
        (1, lambda ctx, bar: ctx.buy(X, 1, limit_price="99.5", tif="GTC"), (2, "99.5")),  # later
        (1, lambda ctx, bar: ctx.sell(X, 1, stop_price="101.5", tif="GTC"), (1, "101.00")),
    ],
)
def test_this_close_convention_checks_the_deciding_bars_close_first(
    at: int, action: object, fill: tuple[int, str]
) -> None:
    script = ScriptedStrategy({at: action})  # type: ignore[dict-item]
    broker = SimBroker(100_000, fill_timing="this_close")
    assert broker.needs_every_bar
    Engine(script, DataFrameFeed(bars_frame(ROWS), X), broker).run()
    (got,) = _fills(script)
    assert got[1:] == (fill[1], fill[0])


def test_this_close_fill_is_booked_before_the_next_bar() -> None:
    seen = []
    script = ScriptedStrategy(
        {
            0: lambda ctx, bar: ctx.buy(X, 10),
            1: lambda ctx, bar: seen.append(ctx.position(X).quantity),
        }
    )
    Engine(script, DataFrameFeed(bars_frame(ROWS), X), SimBroker(fill_timing="this_close")).run()
    assert seen == [10]
    assert script.fills[0].ts_ns == script.bars[0].ts_ns


def test_modifying_a_trailing_stop_keeps_the_ground_it_gained() -> None:
    # the stop starts at 98 and bar 1 lifts it to 100; a quantity change must not reset it
    state: dict[str, Order] = {}
    script, _, _ = run(
        {
            0: lambda ctx, bar: state.setdefault("o", ctx.sell(X, 5, trail_amount=2, tif="GTC")),
            1: lambda ctx, bar: ctx.modify(state["o"], quantity=3),
        }
    )
    (fill,) = script.fills
    assert (fill.quantity, fill.price, fill.ts_ns) == (3, D("100.00"), script.bars[2].ts_ns)


def test_a_held_bracket_child_can_be_modified_before_its_parent_fills() -> None:
    state: dict[str, tuple[Order, Order, Order]] = {}
    script = ScriptedStrategy(
        {
            0: lambda ctx, bar: state.setdefault(
                "b", ctx.bracket(X, "BUY", 10, take_profit="110", stop_loss="90", entry_limit="95")
            ),
            1: lambda ctx, bar: ctx.modify(state["b"][1], limit_price="105"),
        }
    )
    result = Engine(script, DataFrameFeed(bars_frame(ROWS), X), SimBroker()).run()
    # the entry fills inside bar 3 (low 95); the take-profit, now 105, works from bar 4 (high 106)
    assert _fills(script) == [(1, "95", 3), (2, "105", 4)]
    assert result.order_list[2].status is OrderStatus.CANCELLED


# --- short borrow fees ----------------------------------------------------------------------
def test_borrow_fee_accrues_daily_on_short_value_at_the_previous_close() -> None:
    script = ScriptedStrategy({0: lambda ctx, bar: ctx.sell(X, 100)})
    broker = SimBroker(100_000, borrow_rate=0.036)  # 3.6 % a year: 0.01 % a day (actual/360)
    assert broker.needs_every_bar
    result = Engine(script, DataFrameFeed(bars_frame(ROWS), X), broker).run()
    fees = result.cash_adjustments
    # short from bar 1; charged at bars 2 and 3 on the closes of bars 1 (101) and 2 (102)
    assert [(a.amount, a.ts_ns) for a in fees[:2]] == [
        (D("-1.01"), script.bars[2].ts_ns),
        (D("-1.02"), script.bars[3].ts_ns),
    ]
    assert "borrow fee: -100 X.SMART for 1 day(s)" in fees[0].reason
    total = sum((a.amount for a in fees), D(0))
    assert result.stats["Cash adjustments"] == pytest.approx(float(total))
    assert result.equity["cash"].iloc[-1] == pytest.approx(100_000 + 10_050 + float(total))


def test_borrow_fee_counts_weekend_days() -> None:
    rows = [(100, 101, 99, 100)] * 4
    frame = bars_frame(rows, start="2024-01-03", freq="B", tz="America/New_York")  # We Th Fr Mo
    script = ScriptedStrategy({0: lambda ctx, bar: ctx.sell(X, 100)})
    broker = SimBroker(100_000, borrow_rate=0.036)
    result = Engine(script, DataFrameFeed(frame, X), broker).run()
    assert [(a.amount, "3 day(s)" in a.reason) for a in result.cash_adjustments] == [
        (D("-1.00"), False),  # Friday, for Thursday night
        (D("-3.00"), True),  # Monday, for Friday to Monday
    ]


def test_no_borrow_fee_on_long_positions_or_without_a_rate() -> None:
    long_run = Engine(
        ScriptedStrategy({0: lambda ctx, bar: ctx.buy(X, 100)}),
        DataFrameFeed(bars_frame(ROWS), X),
        SimBroker(borrow_rate=0.05),
    ).run()
    assert long_run.cash_adjustments == []
    assert not SimBroker().needs_every_bar
    from ibkrfw import ConfigError

    with pytest.raises(ConfigError, match="borrow_rate"):
        SimBroker(borrow_rate=1.5)


def test_a_denied_order_does_not_count_as_pending_within_the_same_handler() -> None:
    # 500 is denied by the rule; the target of 50 must then buy 50, not sell 450
    seen: list[Order] = []
    _, broker, _ = run(
        {
            0: lambda ctx, bar: (
                seen.append(ctx.buy(X, 500)),
                ctx.order_target_quantity(X, 50),
            )
        },
        risk_rules=[MaxOrderQuantity(100)],
    )
    assert seen[0].status is OrderStatus.DENIED  # known at once: nothing was sent
    assert [(o.side.value, o.quantity) for o in broker.submitted] == [("BUY", 50)]


def test_cancel_timer_and_open_orders() -> None:
    fired: list[int] = []
    seen: dict[str, object] = {}

    class Both(Strategy):
        def on_start(self, ctx: Context) -> None:
            ctx.schedule("daily", every_ns=86_400 * 10**9)

        def on_timer(self, ctx: Context, timer: object) -> None:
            fired.append(ctx.now_ns)
            seen["cancelled"] = ctx.cancel_timer("daily")
            seen["again"] = ctx.cancel_timer("daily")

        def on_bar(self, ctx: Context, bar: Bar) -> None:
            if not seen.get("sent"):
                seen["sent"] = ctx.buy(X, 1, limit_price="50", tif="GTC")
            else:
                seen.setdefault("open", [o.order_id for o in ctx.open_orders(X)])
                seen.setdefault("other", ctx.open_orders(Y))

    Engine(Both(), DataFrameFeed(bars_frame(ROWS), X), SimBroker()).run()
    assert len(fired) == 1 and seen["cancelled"] is True and seen["again"] is False
    assert seen["open"] == [1] and seen["other"] == []


def test_the_fills_table_shows_what_each_fill_realised() -> None:
    script = ScriptedStrategy(
        {0: lambda ctx, bar: ctx.buy(X, 10), 2: lambda ctx, bar: ctx.sell(X, 4)}
    )
    result = Engine(script, DataFrameFeed(bars_frame(ROWS), X), SimBroker()).run()
    # Bought at bar 1's open (100.50), sold 4 at bar 3's open (96).
    assert result.fills["realized_pnl"].tolist() == [D(0), D("-18.00")]
    assert list(result.fills.columns) == [
        "timestamp",
        "order_id",
        "instrument",
        "currency",
        "side",
        "quantity",
        "price",
        "commission",
        "slippage",
        "realized_pnl",
        "fill_id",
    ]


@pytest.mark.parametrize(("favourable", "exit_price"), [(False, D(99)), (True, D("102.5"))])
def test_the_bracket_worked_example_of_the_fill_model_page(
    favourable: bool, exit_price: Decimal
) -> None:
    script = ScriptedStrategy(
        {0: lambda ctx, bar: ctx.bracket(X, "BUY", 1, take_profit="102.5", stop_loss="99")}
    )
    broker = SimBroker(favourable_first=favourable)
    result = Engine(script, DataFrameFeed(bars_frame(ROWS), X), broker).run()
    entry, exit_ = script.fills
    assert (entry.price, entry.ts_ns) == (D("100.5"), script.bars[1].ts_ns)
    assert (exit_.price, exit_.ts_ns) == (exit_price, script.bars[2].ts_ns)
    filled, cancelled = OrderStatus.FILLED, OrderStatus.CANCELLED
    expected = [filled, filled, cancelled] if favourable else [filled, cancelled, filled]
    assert [o.status for o in result.order_list] == expected  # entry, take-profit, stop-loss


# --- where brackets, targets, several feeds and sizing meet (issue 18) -----------------------
@pytest.mark.parametrize(("favourable", "winner"), [(False, "95"), (True, "110")])
def test_a_bar_touching_both_exits_on_the_entry_bar_fills_the_adverse_one_unless_told(
    favourable: bool, winner: str
) -> None:
    # The entry fills at bar 1's open (100); bar 1 then reaches both 111 and 89. Before, the
    # exits set working on that bar were matched in the order they were sent: take-profit
    # first, whatever favourable_first said.
    rows = [(100, 101, 99, 100), (100, 111, 89, 100), (100, 101, 99, 100)]
    script = ScriptedStrategy(
        {0: lambda ctx, bar: ctx.bracket(X, "BUY", 10, take_profit=110, stop_loss=95)}
    )
    broker = SimBroker(favourable_first=favourable)
    Engine(script, DataFrameFeed(bars_frame(rows), X), broker).run()
    assert [(f.side.value, str(f.price)) for f in script.fills] == [
        ("BUY", "100.00"), ("SELL", winner),
    ]  # fmt: skip


def test_a_target_closes_a_bracketed_position_and_its_exits_go_with_it() -> None:
    # Before: the target sold 10 and the bracket's stop, still working for 10, sold 10 more
    # when bar 3 gapped down: a short nobody asked for.
    rows = [*ROWS[:3], (96, 97, 80, 81), (81, 82, 80, 81)]
    script = ScriptedStrategy(
        {
            0: lambda ctx, bar: ctx.bracket(X, "BUY", 10, take_profit=120, stop_loss=90),
            1: lambda ctx, bar: ctx.order_target_quantity(X, 0),
        }
    )
    result = Engine(script, DataFrameFeed(bars_frame(rows), X), SimBroker()).run()
    assert [(f.side.value, f.quantity) for f in script.fills] == [("BUY", 10), ("SELL", 10)]
    assert result.positions[X.id].iloc[-1] == 0
    statuses = [o.status for o in result.order_list]
    assert statuses == [OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.CANCELLED,
                        OrderStatus.FILLED]  # fmt: skip


def test_bracket_exits_shrink_with_the_position_newest_first() -> None:
    bracket = lambda ctx, bar: ctx.bracket(X, "BUY", 10, take_profit=120, stop_loss=90)  # noqa: E731
    script = ScriptedStrategy({0: bracket, 1: bracket, 2: lambda ctx, bar: ctx.sell(X, 14)})
    broker = RecordingBroker(SimBroker())
    result = Engine(script, DataFrameFeed(bars_frame(ROWS), X), broker).run()
    assert result.positions[X.id].iloc[-1] == 6
    # the sale joined the first bracket's OCA group: its fill took those exits away; the
    # second bracket's are cut to what is left
    assert broker.submitted[-1].request.oca_group == "bracket-1"
    working = {o.order_id: o.remaining for o in result.order_list if not o.status.is_terminal}
    assert working == {5: 6, 6: 6}
    status = {o.order_id: o.status for o in result.order_list}
    assert status[2] is status[3] is OrderStatus.CANCELLED
    assert all(r.quantity == 6 for _, r in broker.modified)


def test_two_feeds_of_one_instrument_are_refused() -> None:
    from ibkrfw import ConfigError

    minutes = bars_frame([(100, 101, 99, 100)] * 120, freq="1min")
    hours = bars_frame([(100, 101, 99, 100)] * 2, freq="1h")
    feeds = [DataFrameFeed(minutes, X), DataFrameFeed(hours, X)]
    with pytest.raises(ConfigError, match=r"X\.SMART is delivered by feed 1 .* and feed 2"):
        Engine(ScriptedStrategy({}), feeds, SimBroker())
    Engine(ScriptedStrategy({}), [DataFrameFeed(minutes, X), DataFrameFeed(hours, Y)],
           SimBroker()).run()  # fmt: skip


@pytest.mark.parametrize(
    ("action", "reason"),
    [
        (lambda c: c.order_target_percent(X, float("nan")), "the percent nan is not a finite"),
        (lambda c: c.order_target_percent(X, float("-inf")), "the percent -inf is not a finite"),
        (lambda c: c.order_target_value(X, float("nan")), "the value nan is not a finite"),
        (lambda c: c.order_target_quantity(X, float("inf")), "the target inf is not a finite"),
        (lambda c: c.buy(X, 10**30), "quantity 1000000000000000000000000000000 is beyond"),
        (lambda c: c.sell(X, 10, limit_price=1e30), "limit price 1E+30 is beyond any market"),
        (lambda c: c.bracket(X, "BUY", 10**13, take_profit=110, stop_loss=90), "is beyond"),
        (lambda c: c.order_target_percent(X, 1e6), "insufficient buying power"),
        (lambda c: c.buy(X, 10**9), "insufficient buying power"),
    ],
)
def test_sizing_mistakes_are_denied_with_the_reason(action: object, reason: str) -> None:
    # Before: a NaN target sent nothing without a word; 10**30 ended the run in
    # decimal.InvalidOperation; a target of 1e6 x equity bought 988,728,495 shares.
    script = ScriptedStrategy({0: lambda ctx, bar: action(ctx)})  # type: ignore[operator]
    result = Engine(script, DataFrameFeed(bars_frame(ROWS), X), SimBroker()).run()
    denied = [e for _, e in script.events if isinstance(e, OrderDenied)]
    assert denied and reason in denied[0].reason
    assert script.fills == [] and result.positions[X.id].abs().max() == 0


def test_a_target_that_is_not_a_number_is_denied_with_the_reason() -> None:
    # Before issue 20 an OrderError, which ended a live run; now a denial, and the run goes on.
    script = ScriptedStrategy({0: lambda ctx, bar: ctx.order_target_percent(X, "0.5")})
    Engine(script, DataFrameFeed(bars_frame(ROWS), X), SimBroker()).run()
    denied = [e for _, e in script.events if isinstance(e, OrderDenied)]
    assert [e.reason for e in denied] == [
        "the percent must be a number, got str '0.5' (did you mean 0.5?)"
    ]
    assert len(script.bars) == len(ROWS)


def test_leverage_beyond_the_account_only_when_asked_for() -> None:
    goal = lambda ctx, bar: ctx.order_target_percent(X, 3.0)  # noqa: E731 - 3x equity
    script = ScriptedStrategy({0: goal})
    Engine(script, DataFrameFeed(bars_frame(ROWS), X), SimBroker()).run()
    assert not script.fills  # Reg T: at most 2x
    script = ScriptedStrategy({0: goal})
    Engine(script, DataFrameFeed(bars_frame(ROWS), X), SimBroker(initial_margin=None)).run()
    assert [f.quantity for f in script.fills] == [3_000]
