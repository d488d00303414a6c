"""The live engine with IBKRBroker and IBKRDataFeed against the fake TWS, over a real socket."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from ibkrfw import (
    BrokerError,
    ConfigError,
    ConnectionChanged,
    Engine,
    OrderRejected,
    OrderRequest,
    OrderType,
    Side,
    Strategy,
    TimeInForce,
)
from ibkrfw.data import sample_feed
from ibkrfw.ibkr import Backoff, IBClient, IBKRBroker, IBKRConfig, IBKRDataFeed
from ibkrfw.sim import IBKRFixedCommission, SimBroker
from ibkrfw.strategies import MovingAverageCrossover
from ibkrfw.testing import FakeTWS, LiveSession, ScriptedStrategy

WAIT = 10.0


def until(condition: object, timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.005)
    return False


def test_paper_fills_match_the_backtest_on_the_same_bars() -> None:
    """The parity check: the example strategy, live against replayed bars and backtested."""
    symbols = ["ACME", "BOLT"]
    backtest = Engine(
        MovingAverageCrossover(),
        sample_feed(symbols),
        SimBroker(cash=1_000_000, commission=IBKRFixedCommission()),
    ).run()
    with (
        FakeTWS.from_sample(symbols, commission=IBKRFixedCommission()) as tws,
        LiveSession(MovingAverageCrossover(), tws) as session,
    ):
        replayed = session.step(10_000)
        live = session.stop()
    columns = ["instrument", "side", "quantity", "price", "commission"]
    expected = list(backtest.fills[columns].itertuples(index=False))
    got = list(live.fills[columns].itertuples(index=False))
    assert replayed == len(backtest.equity)
    assert len(expected) > 20
    assert got == expected
    assert list(live.fills.index) == list(backtest.fills.index)  # the bars' times
    assert live.equity["equity"].iloc[-1] == pytest.approx(backtest.equity["equity"].iloc[-1])


def buy_at(step: int, quantity: int = 10, **kwargs: object) -> ScriptedStrategy:
    return ScriptedStrategy(
        {step: lambda ctx, bar: ctx.submit(OrderRequest(bar.instrument, Side.BUY, quantity,
                                                        **kwargs))}  # type: ignore[arg-type]
    )  # fmt: skip


def test_a_rejection_reaches_the_strategy_with_ibs_code() -> None:
    with FakeTWS.from_sample(["ACME"]) as tws:
        strategy = buy_at(0)
        tws.reject_next_order(201, "Order rejected - reason:no margin")
        with LiveSession(strategy, tws) as session:
            session.step(2)
            assert until(lambda: any(isinstance(e, OrderRejected) for _, e in strategy.events))
            result = session.stop()
    rejected = next(e for _, e in strategy.events if isinstance(e, OrderRejected))
    assert rejected.code == 201 and "no margin" in rejected.reason
    assert result.fills.empty


def test_a_duplicated_execution_is_counted_once() -> None:
    with FakeTWS.from_sample(["ACME"]) as tws:
        tws.duplicate_next_execution()
        with LiveSession(buy_at(0, 25), tws) as session:
            session.step(3)
            assert until(lambda: session.broker.executions.duplicates >= 2)
            result = session.stop()
    assert list(result.fills["quantity"]) == [Decimal(25)]
    position = result.positions if hasattr(result, "positions") else None
    del position


def test_connection_dropped_with_an_order_working() -> None:
    """The socket dies with a resting limit order: reconnect, reconcile, the order works on."""
    with FakeTWS.from_sample(["ACME"]) as tws:
        strategy = buy_at(
            0, 10, order_type=OrderType.LIMIT, limit_price=Decimal("1.00"), tif=TimeInForce.GTC
        )
        session = LiveSession(strategy, tws)
        session.client.backoff = Backoff(base=0.05, cap=0.2, seed=1)
        with session:
            session.step(2)
            assert until(lambda: session.broker._by_engine and all(
                w.accepted for w in session.broker._by_engine.values()))  # fmt: skip
            tws.drop_connections()
            assert until(lambda: session.client.is_connected and len(tws.client_ids) == 1)
            # resubscribed: bars flow again after the reconnection
            assert until(lambda: len(tws.messages("in", client_id=1, msg_id=50)) >= 2)
            # reconciled: executions and open orders were asked for
            assert until(lambda: tws.messages("in", client_id=1, msg_id=5))
            session.step(3)
            order = session.engine.orders.get(1)
            assert order is not None and order.status.value == "SUBMITTED"
            states = [e.state for e in session.engine.notices if isinstance(e, ConnectionChanged)]
            result = session.stop(cancel_orders=True)
    lost = states.index("disconnected")
    assert states[lost : lost + 3] == ["disconnected", "connecting", "connected"]
    assert result.orders.iloc[0]["status"] == "CANCELLED"


def test_1100_then_1101_holds_orders_and_resubscribes() -> None:
    with FakeTWS.from_sample(["ACME"]) as tws:
        strategy = buy_at(1, 5)
        with LiveSession(strategy, tws) as session:
            session.step(1)
            tws.connectivity_lost()
            assert until(lambda: session.client.monitor.state.value == "ib_unreachable")
            tws.step()  # the strategy sends its order while IB is unreachable: held
            assert until(lambda: session.engine.bars_processed == 2)
            assert until(lambda: len(session.engine.orders) == 1)
            assert not tws.messages("in", client_id=1, msg_id=3)
            before = len(tws.messages("in", client_id=1, msg_id=50))
            tws.connectivity_restored(data_kept=False)  # 1101: data lost
            assert until(lambda: len(tws.messages("in", client_id=1, msg_id=50)) > before)
            assert until(lambda: len(tws.messages("in", client_id=1, msg_id=3)) == 1)
            session.settle()
            session.step(2)
            result = session.stop()
    assert list(result.fills["quantity"]) == [Decimal(5)]


def test_a_paper_account_is_refused_as_live() -> None:
    with FakeTWS.from_sample(["ACME"]) as tws:
        config = IBKRConfig(port=tws.port, mode="live")
        broker = IBKRBroker(config)
        feed = IBKRDataFeed(list(tws.market.arrays), client=broker.client, bar_size=None)
        with pytest.raises(ConfigError, match="paper account"):
            Engine(buy_at(0), feed, broker).run()


def test_a_client_id_in_use_is_a_clear_error() -> None:
    with FakeTWS.from_sample(["ACME"]) as tws:
        first = IBClient(IBKRConfig(port=tws.port, client_id=7))
        first.connect()
        try:
            second = IBClient(IBKRConfig(port=tws.port, client_id=7, connect_timeout=3))
            with pytest.raises(BrokerError, match="326"):
                second.connect()
        finally:
            first.close()


def test_nothing_listens_means_a_clear_error() -> None:
    with FakeTWS() as tws:
        port = tws.port
    with pytest.raises(BrokerError, match="cannot connect"):
        IBClient(IBKRConfig(port=port, connect_timeout=2)).connect()


def test_warm_up_loads_history_before_on_start() -> None:
    seen: list[int] = []

    class Warm(Strategy):
        @property
        def warmup_bars(self) -> int:
            return 20

        def on_start(self, ctx):  # type: ignore[no-untyped-def]
            inst = ctx.instruments[0]
            seen.append(len(ctx.history(inst).close))

    with FakeTWS.from_sample(["ACME"]) as tws:
        tws.step(50)
        with LiveSession(Warm(), tws) as session:
            session.step(1)
            session.stop()
    assert seen == [20]


def test_declared_indicators_are_warmed_up_from_history() -> None:
    from ibkrfw.indicators import SMA, ZScore

    seen: list[tuple[bool, float, float]] = []

    class Declared(Strategy):
        def indicators(self):  # type: ignore[no-untyped-def]
            return {"sma": SMA(10), "z": ZScore(15)}

        def on_start(self, ctx):  # type: ignore[no-untyped-def]
            inst = ctx.instruments[0]
            sma = ctx.indicator(inst, "sma")
            closes = ctx.history(inst).close
            seen.append((ctx.indicator(inst, "z").ready, sma.value, float(closes[-10:].mean())))

    assert Declared().warmup_bars == 15
    with FakeTWS.from_sample(["ACME"]) as tws:
        tws.step(50)
        with LiveSession(Declared(), tws) as session:
            session.step(1)
            session.stop()
    ((ready, value, expected),) = seen
    assert ready and value == pytest.approx(expected, rel=1e-12)


def test_five_second_bars_are_aggregated_into_minutes() -> None:
    import threading

    from ibkrfw import Stock
    from ibkrfw.testing import bars_frame

    acme = Stock("ACME")
    rows = [(10 + k, 11 + k, 9 + k, 10.5 + k) for k in range(36)]
    frame = bars_frame(rows, start="2024-01-02 14:30", freq="5s")
    seen: list[tuple[int, float, float]] = []
    events: list[object] = []

    class Record(Strategy):
        def on_bar(self, ctx, bar):  # type: ignore[no-untyped-def]
            seen.append((bar.ts_ns, bar.open, bar.close))

        def on_event(self, ctx, event):  # type: ignore[no-untyped-def]
            events.append(event)

    with FakeTWS(data={acme: frame}) as tws:
        client = IBClient(IBKRConfig(port=tws.port))
        feed = IBKRDataFeed([acme], client=client, bar_size="1min")
        engine = Engine(Record(), feed, IBKRBroker(client=client), tune_gc=False)
        runner = threading.Thread(target=engine.run)
        runner.start()
        try:
            assert tws.wait_for(lambda: tws.messages("in", client_id=1, msg_id=50), WAIT)
            tws.step(36)
            assert until(lambda: len(seen) == 3)
        finally:
            engine.stop()
            runner.join(WAIT)
    start = frame.index[0].value
    assert seen == [
        (start, 10.0, 21.5),
        (start + 60 * 10**9, 22.0, 33.5),
        (start + 120 * 10**9, 34.0, 45.5),
    ]
    assert feed.received == 36
    assert any(isinstance(e, ConnectionChanged) and e.state == "connected" for e in events)


def test_sandbox_mode_ib_data_with_simulated_fills() -> None:
    """IB's market data, SimBroker's fills: the same fills as the backtest."""
    backtest = Engine(
        MovingAverageCrossover(), sample_feed(["ACME"]), SimBroker(cash=250_000)
    ).run()
    with (
        FakeTWS.from_sample(["ACME"]) as tws,
        LiveSession(MovingAverageCrossover(), tws, broker=SimBroker(cash=250_000)) as session,
    ):
        session.step(10_000)
        sandbox = session.stop()
        assert not tws.messages("in", client_id=1, msg_id=3)  # nothing sent to IB
    columns = ["side", "quantity", "price", "commission"]
    assert len(backtest.fills) > 10
    assert list(sandbox.fills[columns].itertuples(index=False)) == list(
        backtest.fills[columns].itertuples(index=False)
    )


def test_quotes_stream_to_on_quote_and_problems_are_reported() -> None:
    import threading

    quotes: list[object] = []
    problems: list[object] = []

    trades: list[object] = []

    class Watch(Strategy):
        def on_quote(self, ctx, quote):  # type: ignore[no-untyped-def]
            quotes.append(quote)

        def on_tick(self, ctx, tick):  # type: ignore[no-untyped-def]
            trades.append(tick)

        def on_event(self, ctx, event):  # type: ignore[no-untyped-def]
            problems.append(event)

    from ibkrfw import DataProblem

    with FakeTWS.from_sample(["ACME", "BOLT"]) as tws:
        acme, bolt = list(tws.market.arrays)
        client = IBClient(IBKRConfig(port=tws.port))
        feed = IBKRDataFeed([acme, bolt], client=client, bar_size=None, quotes=True)
        engine = Engine(Watch(), feed, IBKRBroker(client=client), tune_gc=False)
        runner = threading.Thread(target=engine.run)
        runner.start()
        try:
            assert tws.wait_for(lambda: len(tws.messages("in", client_id=1, msg_id=1)) == 2, WAIT)
            tws.step(3)
            assert until(lambda: len(quotes) >= 6)
            bolt_stream = int(tws.messages("in", client_id=1, msg_id=1)[1].fields[2])
            tws.send_error(101, "Max number of tickers has been reached", req_id=bolt_stream)
            assert until(lambda: any(isinstance(e, DataProblem) for e in problems))
            before = sum(1 for q in quotes if q.instrument == bolt)  # type: ignore[attr-defined]
            tws.step(2)
            assert until(lambda: engine.bars_processed == 10)
        finally:
            engine.stop()
            runner.join(WAIT)
    problem = next(e for e in problems if isinstance(e, DataProblem))
    assert problem.instrument == bolt and problem.code == 101
    assert sum(1 for q in quotes if q.instrument == bolt) == before  # type: ignore[attr-defined]
    first = quotes[0]
    assert first.bid < first.ask  # type: ignore[attr-defined]
    acme_closes = [float(c) for c in tws.market.arrays[acme].close[:5]]
    acme_trades = [t.price for t in trades if t.instrument == acme]  # type: ignore[attr-defined]
    assert acme_trades == acme_closes  # the fake prints each bar's close as the last trade


def test_more_quote_streams_than_lines_are_refused() -> None:
    from ibkrfw import Stock

    with pytest.raises(ConfigError, match="market data lines"):
        IBKRDataFeed(
            [Stock(f"S{i}") for i in range(3)],
            IBKRConfig(),
            quotes=True,
            max_lines=2,
        )


def test_a_bracket_is_sent_as_one_group_and_fills_as_in_the_backtest() -> None:
    def rounded(ctx, bar):  # type: ignore[no-untyped-def]
        inst = bar.instrument
        close = Decimal(str(bar.close))
        ctx.bracket(inst, "BUY", 100, take_profit=inst.round_price(close * Decimal("1.05")),
                    stop_loss=inst.round_price(close * Decimal("0.95")))  # fmt: skip

    backtest = Engine(
        ScriptedStrategy({5: rounded}), sample_feed(["ACME"]), SimBroker(cash=1_000_000)
    ).run()
    with (
        FakeTWS.from_sample(["ACME"]) as tws,
        LiveSession(ScriptedStrategy({5: rounded}), tws) as session,
    ):
        session.step(200)
        live = session.stop()
        placed = [(r.fields[27], r.fields[28]) for r in tws.messages("in", msg_id=3)]
    assert placed == [("0", "0"), ("0", "1"), ("1", "1")]  # (transmit, parentId)
    columns = ["side", "quantity", "price"]
    assert len(backtest.fills) == 2  # the entry, then one of the exits
    assert list(live.fills[columns].itertuples(index=False)) == list(
        backtest.fills[columns].itertuples(index=False)
    )
    assert list(live.orders["status"]) == list(backtest.orders["status"])


def test_partial_fills_are_exact_and_as_in_the_backtest() -> None:
    """At most 0.1 % of each bar's volume: a large order fills over many bars, in pieces."""

    def big(ctx, bar):  # type: ignore[no-untyped-def]
        ctx.buy(bar.instrument, 20_000, tif="GTC")

    backtest = Engine(
        ScriptedStrategy({2: big}), sample_feed(["ACME"]), SimBroker(cash=10**7, volume_limit=0.001)
    ).run()
    with (
        FakeTWS.from_sample(["ACME"], cash=10**7, volume_limit=0.001) as tws,
        LiveSession(ScriptedStrategy({2: big}), tws) as session,
    ):
        session.step(60)
        live = session.stop()
    columns = ["quantity", "price"]
    pieces = list(backtest.fills[columns].itertuples(index=False))
    assert len(pieces) > 3
    assert list(live.fills[columns].itertuples(index=False))[: len(pieces)] == pieces
    assert sum(live.fills["quantity"]) == sum(backtest.fills["quantity"])


def test_the_outgoing_rate_stays_under_the_cap() -> None:
    with FakeTWS() as tws:
        client = IBClient(IBKRConfig(port=tws.port, max_messages_per_second=20))
        client.connect()
        try:
            for _ in range(50):
                client.send("reqCurrentTime")
            assert tws.wait_for(lambda: len(tws.messages("in", msg_id=49)) == 50, WAIT)
        finally:
            client.close()
        times = [r.at for r in tws.messages("in", msg_id=49)]
    # The fake stamps a message when its thread reads it, a little after it was sent (a few
    # milliseconds on a loaded machine): allow 10 ms. Without the cap all 50 would arrive
    # within milliseconds.
    for i, at in enumerate(times):
        assert sum(1 for t in times[i:] if t - at < 1.0 - 0.010) <= 20


def test_delayed_data_is_flagged_once() -> None:
    import threading

    from ibkrfw import DataProblem

    events: list[object] = []

    class Watch(Strategy):
        def on_event(self, ctx, event):  # type: ignore[no-untyped-def]
            events.append(event)

    with FakeTWS.from_sample(["ACME"]) as tws:
        acme = next(iter(tws.market.arrays))
        client = IBClient(IBKRConfig(port=tws.port))
        feed = IBKRDataFeed([acme], client=client, bar_size=None, quotes=True, delayed=True)
        engine = Engine(Watch(), feed, IBKRBroker(client=client), tune_gc=False)
        runner = threading.Thread(target=engine.run)
        runner.start()
        try:
            assert tws.wait_for(lambda: tws.messages("in", client_id=1, msg_id=1), WAIT)
            assert tws.messages("in", client_id=1, msg_id=59)  # reqMarketDataType(3) went first
            stream = int(tws.messages("in", client_id=1, msg_id=1)[0].fields[2])
            text = "Requested market data is not subscribed. Displaying delayed market data."
            for _ in range(2):
                tws.send_error(10167, text, req_id=stream)
            assert until(lambda: any(isinstance(e, DataProblem) for e in events))
            tws.step(2)
            assert until(lambda: engine.bars_processed == 2)
        finally:
            engine.stop()
            runner.join(WAIT)
    problems = [e for e in events if isinstance(e, DataProblem)]
    assert [(p.code, p.instrument) for p in problems] == [(10167, acme)]
    assert feed.delayed_instruments == {acme}


def test_a_malformed_bar_from_ib_is_dropped_and_reported() -> None:
    import threading

    from ibkrfw import DataProblem

    events: list[object] = []
    bars: list[float] = []

    class Watch(Strategy):
        def on_bar(self, ctx, bar):  # type: ignore[no-untyped-def]
            bars.append(bar.high)

        def on_event(self, ctx, event):  # type: ignore[no-untyped-def]
            events.append(event)

    with FakeTWS.from_sample(["ACME"]) as tws:
        acme = next(iter(tws.market.arrays))
        client = IBClient(IBKRConfig(port=tws.port))
        feed = IBKRDataFeed([acme], client=client, bar_size=None)
        engine = Engine(Watch(), feed, IBKRBroker(client=client), tune_gc=False)
        runner = threading.Thread(target=engine.run)
        runner.start()
        try:
            assert tws.wait_for(lambda: tws.messages("in", client_id=1, msg_id=50), WAIT)
            tws.step()
            assert until(lambda: engine.bars_processed == 1)
            tws.corrupt_next_bar(high=float("nan"))
            tws.step()
            assert until(lambda: any(isinstance(e, DataProblem) for e in events))
            tws.corrupt_next_bar(low=-1.0)
            tws.step()
            assert until(lambda: feed.dropped == 2)
            tws.step()
            assert until(lambda: engine.bars_processed == 2)
        finally:
            engine.stop()
            runner.join(WAIT)
    problems = [e for e in events if isinstance(e, DataProblem)]
    assert [p.reason for p in problems] == [
        "a malformed real-time bar was dropped: high is nan, not a finite positive price",
        "a malformed real-time bar was dropped: low is -1.0, not a finite positive price",
    ]
    assert len(bars) == 2 and all(h == h for h in bars)  # the two good bars, no NaN
    assert feed.received == 4 and feed.emitted == 2
