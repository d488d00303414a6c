"""Orders lost on the way to TWS, unacknowledged orders, and the reconciliation's checks.

Every test runs the live engine against the fake TWS over a real socket with the official
ibapi client; every one checks that nothing is sent twice.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from typing_extensions import override

from ibkrfw import (
    Bar,
    Context,
    OrderRejected,
    OrderRequest,
    OrderStatus,
    OrderType,
    Reconciled,
    Side,
    Strategy,
    TimeInForce,
)
from ibkrfw.ibkr import IBKRBroker
from ibkrfw.ibkr.connection import Backoff
from ibkrfw.monitoring import Alerter, LiveMonitor
from ibkrfw.sim import PerShareCommission
from ibkrfw.testing import FakeTWS, LiveSession, RecordingChannel, ScriptedStrategy

PLACE_ORDER = 3


def placed(tws: FakeTWS) -> Counter[int]:
    """How many placeOrder messages the fake received, per IB order id."""
    return Counter(int(r.fields[1]) for r in tws.messages("in", msg_id=PLACE_ORDER))


def until(condition: Callable[[], object], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


class BuyWhenFlat(Strategy):
    """Buy 10 whenever nothing is held and no order is open: one open order stops it."""

    def __init__(self) -> None:
        self.rejected: list[OrderRejected] = []

    @override
    def on_bar(self, ctx: Context, bar: Bar) -> None:
        if not ctx.open_orders() and not ctx.position(bar.instrument).quantity:
            ctx.buy(bar.instrument, 10)

    @override
    def on_order(self, ctx: Context, order: object, event: object) -> None:
        if isinstance(event, OrderRejected):
            self.rejected.append(event)


def monitor() -> tuple[LiveMonitor, RecordingChannel]:
    inbox = RecordingChannel()
    watcher = LiveMonitor(
        alerter=Alerter([inbox]).start(), stale_after_s=1e9, quiet=(), drawdown_alert=None,
        daily_loss_alert=None,
    )  # fmt: skip
    return watcher, inbox


def alerts(watcher: LiveMonitor, inbox: RecordingChannel) -> list[tuple[str, str, str]]:
    assert watcher.alerter is not None
    watcher.alerter.flush()
    return [(a.kind, a.severity, a.message) for a in inbox.alerts]


def reconciled(session: LiveSession) -> list[Reconciled]:
    return [e for e in session.engine.notices if isinstance(e, Reconciled)]


def test_an_order_lost_with_the_connection_is_released_reported_and_never_sent_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    strategy = BuyWhenFlat()
    watcher, inbox = monitor()
    with FakeTWS.from_sample(["ACME"]) as tws:
        tws.lose_next_order()  # the first placeOrder dies on the wire, with the connection
        session = LiveSession(strategy, tws, observers=[watcher])
        session.client.backoff = Backoff(base=0.05, cap=0.2, seed=1)
        with caplog.at_level(logging.WARNING, logger="ibkrfw"), session:
            session.step(1)
            assert until(lambda: len(reconciled(session)) >= 2)  # start, and the reconnection
            assert until(lambda: session.engine.orders.get(1) is not None
                         and session.engine.orders.get(1).status.is_terminal)  # type: ignore[union-attr]  # fmt: skip
            assert isinstance(session.broker, IBKRBroker)
            journaled = session.broker.journal.orders()
            assert [(o.ib_id, o.status) for o in journaled] == [(1, "lost")]
            assert session.broker.journal.notes(1)[0][2].startswith("lost: TWS never received")
            session.settle()
            session.step(3)  # the strategy, no longer blocked, buys again
            result = session.stop()
    lost = result.order_list[0]
    assert lost.status is OrderStatus.REJECTED
    assert lost.reason.startswith("lost: TWS never received IB order id 1 (orderRef ibkrfw:1)")
    assert [e.reason for e in strategy.rejected] == [lost.reason]
    after = reconciled(session)[1]
    assert after.resolution == "agreed"
    assert (
        len(after.warnings) == 1 and "lost: TWS never received IB order id 1" in after.warnings[0]
    )
    # the strategy trades again, under a fresh id; nothing was sent twice
    assert [o.status for o in result.order_list[1:]] == [OrderStatus.FILLED]
    assert placed(tws) == Counter({1: 1, 2: 1})
    # positions are the sum of the fills
    assert session.engine.portfolio is not None
    inst = result.order_list[0].instrument
    assert session.engine.portfolio.quantity(inst) == sum(f.quantity for f in result.fill_list)
    assert session.engine.portfolio.quantity(inst) == 10
    # an alert, a warning on the log, a journal entry
    kinds = [(k, s) for k, s, _ in alerts(watcher, inbox)]
    assert ("reconciliation_warning", "critical") in kinds
    assert ("order_rejected", "warning") not in kinds  # alerted once, as lost
    assert any("lost: TWS never received IB order id 1" in r.getMessage() for r in caplog.records
               if r.levelno == logging.WARNING)  # fmt: skip


def test_an_order_lost_before_a_kill_is_resolved_at_the_next_start(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with FakeTWS.from_sample(["ACME"]) as tws:
        tws.lose_next_order()
        first = LiveSession(BuyWhenFlat(), tws, state_dir=state)
        first.client.backoff = Backoff(base=60, cap=60, seed=1)  # dies before reconnecting
        with first:
            first.step(1)
            assert until(lambda: not first.client.is_connected)
            first.stop()
        journal = sqlite3.connect(state / "journal.db")
        assert journal.execute("SELECT status FROM orders").fetchall() == [("sent",)]
        journal.close()
        strategy = BuyWhenFlat()
        watcher, inbox = monitor()
        with LiveSession(strategy, tws, state_dir=state, observers=[watcher]) as session:
            session.step(2)
            result = session.stop()
    start = reconciled(session)[0]
    assert start.resolution == "agreed" and start.differences == ()
    assert len(start.warnings) == 1
    assert (
        "IB order id 1 (BUY 10 ACME.SMART) of an earlier run lost: TWS never received IB order id 1"
        in (start.warnings[0])
    )
    assert any(k == "reconciliation_warning" for k, _, _ in alerts(watcher, inbox))
    journal = sqlite3.connect(state / "journal.db")
    rows = journal.execute("SELECT ib_id, status FROM orders ORDER BY ib_id").fetchall()
    notes = journal.execute("SELECT ib_id, text FROM notes").fetchall()
    journal.close()
    assert rows[0] == (1, "lost")
    assert notes[0][0] == 1 and notes[0][1].startswith("lost: TWS never received IB order id 1")
    # never sent again; the new run trades under a fresh id
    assert placed(tws) == Counter({1: 1, 2: 1})
    assert [o.status for o in result.order_list] == [OrderStatus.FILLED]
    assert sum(f.quantity for f in result.fill_list) == 10


def test_an_order_ib_knows_only_by_its_executions_is_not_lost() -> None:
    """Filled while its acknowledgement and fill were lost with the connection: not lost."""
    with FakeTWS.from_sample(["ACME"]) as tws:
        tws.hold_acknowledgements()  # TWS takes the order, its messages never arrive
        session = LiveSession(ScriptedStrategy({0: lambda c, b: c.buy(b.instrument, 10)}), tws)
        session.client.backoff = Backoff(base=0.05, cap=0.2, seed=1)
        with session:
            session.step(2)  # filled at the fake on the second bar
            tws.drop_connections()  # the held messages go to a dead socket
            tws.release_acknowledgements()
            assert until(lambda: len(reconciled(session)) >= 2)
            session.settle()
            result = session.stop()
    assert [o.status for o in result.order_list] == [OrderStatus.FILLED]
    assert reconciled(session)[1].warnings == ()
    assert [f.quantity for f in result.fill_list] == [Decimal(10)]
    assert placed(tws) == Counter({1: 1})


def test_an_unacknowledged_order_is_warned_of_once_and_alerted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    watcher, inbox = monitor()
    watcher.ack_timeout_s = 0.3
    with FakeTWS.from_sample(["ACME"]) as tws:
        tws.hold_acknowledgements()
        strategy = ScriptedStrategy({0: lambda c, b: c.buy(b.instrument, 10)})
        session = LiveSession(strategy, tws, observers=[watcher])
        assert isinstance(session.broker, IBKRBroker)
        broker = session.broker
        broker.ack_timeout_s = 0.3
        with caplog.at_level(logging.WARNING, logger="ibkrfw"), session:
            session.step(1)
            assert broker.unacknowledged == [1]
            assert until(lambda: any("not acknowledged by IB within 0.3 s" in r.getMessage()
                                     for r in caplog.records))  # fmt: skip
            assert until(lambda: ("order_unacknowledged", "warning") in
                         [(k, s) for k, s, _ in alerts(watcher, inbox)])  # fmt: skip
            time.sleep(0.5)  # once: no repeat
            tws.release_acknowledgements()
            session.step(1)
            assert until(lambda: broker.unacknowledged == [])
            result = session.stop()
    warned = [r for r in caplog.records if "not acknowledged by IB" in r.getMessage()]
    assert len(warned) == 1
    assert [k for k, _, _ in alerts(watcher, inbox)].count("order_unacknowledged") == 1
    # not given up for that: it works on and fills
    assert [o.status for o in result.order_list] == [OrderStatus.FILLED]
    assert placed(tws) == Counter({1: 1})


def test_an_unacknowledged_bracket_is_alerted_once_naming_its_orders() -> None:
    """Its three orders go out, and wait, together: one alert, not one per leg."""

    def enter(ctx: Context, bar: Bar) -> None:
        ctx.bracket(bar.instrument, "BUY", 10, take_profit=round(bar.close * 1.5, 2),
                    stop_loss=round(bar.close * 0.5, 2))  # fmt: skip

    watcher, inbox = monitor()
    watcher.ack_timeout_s = 0.3
    with FakeTWS.from_sample(["ACME"]) as tws:
        tws.hold_acknowledgements()
        session = LiveSession(ScriptedStrategy({0: enter}), tws, observers=[watcher])
        with session:
            session.step(1)
            assert until(lambda: any(k == "order_unacknowledged"
                                     for k, _, _ in alerts(watcher, inbox)))  # fmt: skip
            time.sleep(0.5)  # once: no repeat, no alert for the other legs
            tws.release_acknowledgements()
            session.step(1)
            session.stop()
    alerts(watcher, inbox)  # flushed
    (late,) = [a for a in inbox.alerts if a.kind == "order_unacknowledged"]
    assert late.title == "orders 1, 2 and 3 (ACME.SMART, one bracket) not acknowledged"
    assert late.message.startswith(
        "the broker has not acknowledged orders 1, 2 and 3 (the bracket of order 1) in "
    )


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), float("inf"), "10", True])
def test_broker_ack_timeout_must_be_a_positive_number(value: object) -> None:
    from ibkrfw import ConfigError
    from ibkrfw.ibkr import IBKRConfig

    with pytest.raises(ConfigError, match=r"ack_timeout_s must be a positive number .* got"):
        IBKRBroker(IBKRConfig(), ack_timeout_s=value)  # type: ignore[arg-type]


def part_filled_first_session(tws: FakeTWS, state: Path) -> None:
    buy = ScriptedStrategy({0: lambda c, b: c.submit(OrderRequest(
        b.instrument, Side.BUY, 400, OrderType.LIMIT, limit_price=Decimal(10_000),
        tif=TimeInForce.GTC,
    ))})  # fmt: skip
    with LiveSession(buy, tws, state_dir=state) as session:
        session.step(2)  # part filled on the second bar (volume limit)
        assert until(lambda: session.engine.orders.get(1) is not None
                     and session.engine.orders.get(1).filled_quantity > 0)  # type: ignore[union-attr]  # fmt: skip
        session.stop()


@pytest.mark.parametrize("journaled", [True, False])
def test_an_adopted_part_filled_order_enters_the_book_part_filled(
    tmp_path: Path, journaled: bool
) -> None:
    # 400 shares valued at the 10,000 limit: 2,000,000 of Reg T margin, so a larger account
    with FakeTWS.from_sample(["ACME"], volume_limit=1e-6, cash=10_000_000) as tws:
        first = tmp_path / "first"
        part_filled_first_session(tws, first)
        market = tws.market.orders.get(1)
        assert market is not None
        before, avg = market.filled_quantity, market.avg_fill_price
        assert 0 < before < 400
        state = first if journaled else tmp_path / "second"
        with LiveSession(ScriptedStrategy({}), tws, state_dir=state,
                         on_mismatch="adopt") as session:  # fmt: skip
            assert until(lambda: session.engine.orders.get(1) is not None)  # adopted at start
            adopted = session.engine.orders.get(1)
            assert adopted is not None
            assert adopted.status is OrderStatus.PARTIALLY_FILLED
            assert adopted.filled_quantity == before
            assert adopted.avg_fill_price == avg
            session.step(1)  # more fills
            order = session.engine.orders.get(1)
            assert order is not None
            session.stop()
        market = tws.market.orders.get(1)
        assert market is not None
    assert market.filled_quantity > before
    # the book counts the earlier fills and the new ones: what IB filled
    assert order.filled_quantity == market.filled_quantity
    assert session.engine.portfolio is not None
    assert session.engine.portfolio.quantity(order.instrument) == market.filled_quantity
    assert placed(tws) == Counter({1: 1})


def test_the_cash_check_counts_commissions(tmp_path: Path) -> None:
    with FakeTWS.from_sample(["ACME"], commission=PerShareCommission(Decimal("0.5"))) as tws:
        buy = ScriptedStrategy({0: lambda c, b: c.buy(b.instrument, 10)})
        with LiveSession(buy, tws, state_dir=tmp_path) as session:
            session.step(2)
            session.stop()
        with LiveSession(ScriptedStrategy({}), tws, state_dir=tmp_path) as session:
            session.step(1)
            session.stop()
    notes = reconciled(session)[0].notes
    assert not any("cash" in n for n in notes), notes


def test_an_execution_without_its_commission_report_is_said_not_a_mismatch(
    tmp_path: Path,
) -> None:
    with FakeTWS.from_sample(["ACME"], commission=PerShareCommission(Decimal("0.5"))) as tws:
        tws.withhold_commission_reports()
        buy = ScriptedStrategy({0: lambda c, b: c.buy(b.instrument, 10)})
        with LiveSession(buy, tws, state_dir=tmp_path) as session:
            session.step(2)
            session.stop()
        with LiveSession(ScriptedStrategy({}), tws, state_dir=tmp_path) as session:
            session.step(1)
            session.stop()
    notes = reconciled(session)[0].notes
    assert not any("cash moved" in n for n in notes), notes
    assert any("1 execution(s) since the last run have no commission report" in n
               and "-5.00 USD" in n for n in notes), notes  # fmt: skip


def test_the_cash_check_values_futures_at_their_multiplier(tmp_path: Path) -> None:
    from ibkrfw import Future
    from ibkrfw.testing import bars_frame

    es = Future("ES", expiry="203012", exchange="CME", multiplier=50, tick_size="0.25")
    frame = bars_frame([(5000, 5001, 4999, 5000)] * 6, start="2024-01-02 15:00", freq="1min")
    with FakeTWS(data={es: frame}) as tws:
        buy = ScriptedStrategy({0: lambda c, b: c.buy(b.instrument, 2)})
        with LiveSession(buy, tws, state_dir=tmp_path) as session:
            session.step(2)
            first = session.stop()
        assert [f.quantity for f in first.fill_list] == [Decimal(2)]
        with LiveSession(ScriptedStrategy({}), tws, state_dir=tmp_path) as session:
            session.step(1)
            session.stop()
    start = reconciled(session)[0]
    assert start.differences == ()
    assert not any("cash" in n for n in start.notes), start.notes


def test_a_margin_shortfall_is_a_reconciliation_warning(tmp_path: Path) -> None:
    with FakeTWS.from_sample(["ACME"]) as tws:
        buy = ScriptedStrategy({0: lambda c, b: c.buy(b.instrument, 1000)})
        with LiveSession(buy, tws, state_dir=tmp_path) as session:
            session.step(2)
            session.stop()
        pf = tws.market.portfolio
        # a withdrawal leaves the equity below the maintenance margin (a quarter of the value)
        tws.market.portfolio.adjust_cash(-Decimal(str(round(pf.equity - pf.gross_exposure / 8))))
        watcher, inbox = monitor()
        with LiveSession(ScriptedStrategy({}), tws, state_dir=tmp_path,
                         observers=[watcher]) as session:  # fmt: skip
            session.step(1)
            session.stop()
    start = reconciled(session)[0]
    assert start.resolution == "agreed"
    assert any(w.startswith("margin shortfall: ExcessLiquidity is -") for w in start.warnings)
    assert ("reconciliation_warning", "critical") in [(k, s) for k, s, _ in
                                                        alerts(watcher, inbox)]  # fmt: skip


def test_margin_above_the_runs_rates_is_a_reconciliation_warning(tmp_path: Path) -> None:
    with FakeTWS.from_sample(["ACME"], initial_margin=0.9) as tws:
        buy = ScriptedStrategy({0: lambda c, b: c.buy(b.instrument, 100)})
        with LiveSession(buy, tws, state_dir=tmp_path) as session:
            session.step(2)
            session.stop()
        with LiveSession(ScriptedStrategy({}), tws, state_dir=tmp_path) as session:
            session.step(1)
            session.stop()
    warnings = reconciled(session)[0].warnings
    assert len(warnings) == 1
    assert "of initial margin for the positions, the run's margin rates come to" in warnings[0]


def test_a_margin_shortfall_found_after_a_reconnection_is_a_warning() -> None:
    with FakeTWS.from_sample(["ACME"]) as tws:
        buy = ScriptedStrategy({0: lambda c, b: c.buy(b.instrument, 1000)})
        session = LiveSession(buy, tws)
        session.client.backoff = Backoff(base=0.05, cap=0.2, seed=1)
        with session:
            session.step(2)
            pf = tws.market.portfolio
            pf.adjust_cash(-Decimal(str(round(pf.equity - pf.gross_exposure / 8))))
            tws.drop_connections()
            assert until(lambda: len(reconciled(session)) >= 2)
            session.settle()
            session.stop()
    after = reconciled(session)[1]
    assert after.resolution == "agreed" and after.differences == ()
    assert [w.split(":")[0] for w in after.warnings] == ["margin shortfall"]


def test_a_fill_whose_commission_report_never_comes_is_booked_without_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with FakeTWS.from_sample(["ACME"], commission=PerShareCommission(Decimal("0.5"))) as tws:
        tws.withhold_commission_reports()
        buy = ScriptedStrategy({0: lambda c, b: c.buy(b.instrument, 10)})
        session = LiveSession(buy, tws)
        assert isinstance(session.broker, IBKRBroker)
        session.broker.ack_timeout_s = 0.3
        with caplog.at_level(logging.WARNING, logger="ibkrfw"), session:
            session.step(2)
            assert until(lambda: buy.fills)
            result = session.stop()
    assert [(f.quantity, f.commission) for f in result.fill_list] == [(Decimal(10), Decimal(0))]
    assert [o.status for o in result.order_list] == [OrderStatus.FILLED]
    assert session.engine.portfolio is not None
    assert session.engine.portfolio.quantity(result.fill_list[0].instrument) == 10
    assert any("no commission report within 0.3 s; booked without its commission"
               in r.getMessage() for r in caplog.records)  # fmt: skip


def test_a_bracket_whose_transmitting_order_is_lost_is_cancelled_whole() -> None:
    """The stop-loss (sent last, transmit on) dies on the wire: the rest never trades."""

    def enter(ctx: Context, bar: Bar) -> None:
        ctx.bracket(bar.instrument, "BUY", 10, take_profit=round(bar.close * 1.5, 2),
                    stop_loss=round(bar.close * 0.5, 2))  # fmt: skip

    strategy = ScriptedStrategy({0: enter})
    with FakeTWS.from_sample(["ACME"]) as tws:
        tws.lose_next_order(after=2)  # the entry and the take-profit arrive, untransmitted
        session = LiveSession(strategy, tws)
        session.client.backoff = Backoff(base=0.05, cap=0.2, seed=1)
        with session:
            session.step(1)
            assert until(lambda: len(reconciled(session)) >= 2)
            assert until(lambda: all(o.status.is_terminal for o in session.engine.orders))
            session.settle()
            session.step(3)
            result = session.stop()
    statuses = [o.status for o in result.order_list]
    assert statuses == [OrderStatus.CANCELLED, OrderStatus.CANCELLED, OrderStatus.REJECTED]
    assert all("cancelled before it was transmitted" in o.reason for o in result.order_list[:2])
    assert result.order_list[2].reason.startswith("lost: TWS never received IB order id 3")
    assert result.fill_list == []
    assert placed(tws) == Counter({1: 1, 2: 1, 3: 1})
    assert session.engine.portfolio is not None
    assert not session.engine.portfolio.positions


def test_a_bracket_whose_entry_fails_to_send_waits_whole_for_the_connection() -> None:
    """The socket dies as the entry is sent: the three orders go out together once it is back.

    The entry must never work at IB without its take-profit and stop-loss: it is held with
    ``transmit`` off and its exits behind it, never rejected, never sent twice.
    """

    def enter(ctx: Context, bar: Bar) -> None:
        ctx.bracket(bar.instrument, "BUY", 10, take_profit=round(bar.close * 1.5, 2),
                    stop_loss=round(bar.close * 0.5, 2))  # fmt: skip

    strategy = ScriptedStrategy({0: enter})
    with FakeTWS.from_sample(["ACME"]) as tws:
        session = LiveSession(strategy, tws)
        session.client.backoff = Backoff(base=0.05, cap=0.2, seed=1)
        real_send = session.client.send
        dropped: list[str] = []

        def send(method: str, *args: object) -> bool:
            if method == "placeOrder" and not dropped:  # the entry: the socket just died
                dropped.append(method)
                tws.drop_connections()
                assert until(lambda: not session.client.is_connected)
            return real_send(method, *args)

        session.client.send = send  # type: ignore[method-assign]
        with session:
            session.step(1)
            assert dropped
            assert until(lambda: len(reconciled(session)) >= 2)  # start, and the reconnection
            assert until(lambda: len(placed(tws)) == 3)
            session.settle()
            session.step(3)
            result = session.stop()
    orders = result.order_list
    assert [o.status for o in orders] == [
        OrderStatus.FILLED, OrderStatus.SUBMITTED, OrderStatus.SUBMITTED,
    ]  # fmt: skip
    # Sent once each, in order, the entry and take-profit untransmitted, the stop-loss last.
    sent = tws.messages("in", msg_id=PLACE_ORDER)
    assert placed(tws) == Counter({2: 1, 3: 1, 4: 1})
    assert [(int(r.fields[1]), r.fields[27]) for r in sent] == [(2, "0"), (3, "0"), (4, "1")]
    assert session.engine.portfolio is not None
    assert session.engine.portfolio.quantity(orders[0].instrument) == 10
