"""The operator's controls of an Engine (pause, resume, flatten, cancel_all) in a backtest.

In a backtest they act at once when called on the engine's thread (from the strategy or an
observer); from another thread they raise. The live path (another thread, the inbox) is
tested against the fake TWS in tests/integration/faketws/test_dashboard_controls.py.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future

import pytest

from ibkrfw import Context, Engine, EngineError, OrderDenied
from ibkrfw.data import sample_feed
from ibkrfw.model.data import Bar
from ibkrfw.model.orders import OrderStatus, OrderType
from ibkrfw.portfolio import PortfolioView
from ibkrfw.risk import Halt, MaxPosition, Protection, RiskMonitor, StopLoss
from ibkrfw.sim import SimBroker
from ibkrfw.testing import ScriptedStrategy


def _run(actions: dict[int, object], **kwargs: object) -> tuple[Engine, ScriptedStrategy]:
    strategy = ScriptedStrategy(actions)  # type: ignore[arg-type]
    engine = Engine(strategy, sample_feed(["ACME"]), SimBroker(), **kwargs)  # type: ignore[arg-type]
    holder.append(engine)
    engine.run()
    return engine, strategy


holder: list[Engine] = []


def _engine() -> Engine:
    return holder[-1]


def _buy(ctx: Context, bar: Bar) -> None:
    ctx.buy(bar.instrument, 10)


def _sell(ctx: Context, bar: Bar) -> None:
    ctx.sell(bar.instrument, 10)


def _denials(strategy: ScriptedStrategy) -> list[OrderDenied]:
    return [e for _, e in strategy.events if isinstance(e, OrderDenied)]


def test_engine_pause_denies_entries_naming_the_operator_and_lets_exits_pass() -> None:
    said: list[Future[str]] = []
    actions = {
        0: _buy,
        2: lambda ctx, bar: said.append(_engine().pause("news at 14:00")),
        3: _buy,  # an entry: denied
        4: _sell,  # an exit: passes
        5: lambda ctx, bar: said.append(_engine().resume()),
        6: _buy,  # accepted again
    }
    engine, strategy = _run(actions, risk_rules=[MaxPosition(quantity=1000)])
    denials = _denials(strategy)
    assert [(d.rule, d.reason) for d in denials] == [
        ("operator", "trading is paused by the operator: news at 14:00")
    ]
    assert said[0].result().startswith("paused")
    assert said[1].result() == "resumed: the operator's pause is lifted; new entries are accepted"
    sides = [str(f.side) for f in strategy.fills]
    assert sides == ["BUY", "SELL", "BUY"]
    assert engine.trading.state == "stopped" and engine.stop_reason == "the data ended"


def test_engine_trading_says_paused_with_its_reason_and_since() -> None:
    seen = []

    def pause_and_look(ctx: Context, bar: Bar) -> None:
        _engine().pause("checking a fill")
        seen.append((_engine().trading, bar.ts_ns))

    _run({1: pause_and_look})
    state, ts = seen[0]
    assert (state.state, state.reason, state.by, state.since_ns) == (
        "paused",
        "checking a fill",
        "operator",
        ts,
    )


def test_engine_flatten_closes_every_position_cancels_entries_and_pauses() -> None:
    said: list[Future[str]] = []

    def rest_a_limit(ctx: Context, bar: Bar) -> None:
        ctx.buy(
            bar.instrument, 5, order_type=OrderType.LIMIT, limit_price=round(bar.close * 0.5, 2)
        )  # far below: stays working

    actions = {
        0: _buy,
        2: rest_a_limit,
        3: lambda ctx, bar: said.append(_engine().flatten("operator test")),
        5: _buy,  # paused after a flatten
    }
    engine, strategy = _run(actions)
    assert "cancelled 1 working order(s)" in said[0].result()
    assert "ACME.SMART 10" in said[0].result()
    assert engine.portfolio is not None and not engine.portfolio.positions
    assert sum(f.quantity if str(f.side) == "BUY" else -f.quantity for f in strategy.fills) == 0
    limit = next(o for o in engine.orders if o.request.limit_price is not None)
    assert limit.status is OrderStatus.CANCELLED
    assert [d.rule for d in _denials(strategy)] == ["operator"]


def test_engine_cancel_all_keeps_the_protective_stop_unless_asked() -> None:
    said: list[Future[str]] = []

    def rest_a_limit(ctx: Context, bar: Bar) -> None:
        ctx.buy(
            bar.instrument, 5, order_type=OrderType.LIMIT, limit_price=round(bar.close * 0.5, 2)
        )

    def cancel(include: bool) -> object:
        return lambda ctx, bar: said.append(_engine().cancel_all(include_protection=include))

    working: list[list[str]] = []

    def look(ctx: Context, bar: Bar) -> None:
        working.append([str(o.request.order_type) for o in _engine().orders.active()])

    protection = Protection(StopLoss.percent(0.5))  # far away: stays working
    actions = {0: _buy, 2: rest_a_limit, 3: cancel(False), 4: look}
    _run(actions, protection=protection)
    assert "cancelling 1 working order(s); kept 1 protective order(s)" in said[0].result()
    assert working == [["STP"]]
    said.clear()
    _run({**actions, 3: cancel(True), 4: look, 6: look}, protection=protection)
    assert said[0].result() == (
        "cancelling 2 working order(s), the protective ones among them: ACME.SMART stay "
        "without a stop-loss or target until the position changes"
    )
    assert working[1:] == [[], []]  # not placed again while the position stays


def test_engine_controls_outside_a_run_or_from_another_thread_raise() -> None:
    engine = Engine(ScriptedStrategy(), sample_feed(["ACME"]), SimBroker())
    with pytest.raises(EngineError, match="not running"):
        engine.pause()
    errors: list[BaseException] = []

    def from_elsewhere(ctx: Context, bar: Bar) -> None:
        def call() -> None:
            try:
                _engine().flatten()
            except EngineError as exc:
                errors.append(exc)

        thread = threading.Thread(target=call)
        thread.start()
        thread.join()

    _run({1: from_elsewhere})
    assert "a backtest runs on its caller's thread" in str(errors[0])
    with pytest.raises(EngineError, match="ended takes no more commands"):
        _engine().resume()


def test_engine_stop_reason_names_an_error_with_its_type() -> None:
    def fail(ctx: Context, bar: Bar) -> None:
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        _run({2: fail})
    assert _engine().stop_reason == "error: ValueError: bad input"
    assert _engine().trading.state == "stopped"


class _HaltAt(RiskMonitor):
    """Halts trading at its n-th look at the account."""

    def __init__(self, at: int) -> None:
        self.at, self.seen = at, 0

    def observe(self, portfolio: PortfolioView, ts_ns: int) -> Halt | None:
        self.seen += 1
        return Halt("test halt: loss limit") if self.seen == self.at else None


def test_engine_resume_lifts_the_pause_but_never_a_risk_halt_and_says_so() -> None:
    said: list[Future[str]] = []
    states = []
    actions = {
        1: lambda ctx, bar: said.append(_engine().pause("manual")),
        4: lambda ctx, bar: states.append(_engine().trading),
        5: lambda ctx, bar: said.append(_engine().resume()),
        6: _buy,
    }
    _, strategy = _run(actions, risk_monitors=[_HaltAt(3)])
    assert (states[0].state, states[0].by) == ("halted", "_HaltAt")
    assert "and paused by the operator: manual" in states[0].reason
    assert said[1].result() == (
        "resumed: the operator's pause is lifted, but trading stays halted by _HaltAt: test "
        "halt: loss limit (resume never lifts a risk monitor's halt)"
    )
    assert [d.rule for d in _denials(strategy)] == ["_HaltAt"]
