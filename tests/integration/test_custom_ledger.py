"""Engine(portfolio=...): a ledger of one's own, checked, and the same run as the default's."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings

from ibkrfw import ConfigError, Engine, Fill, FxRates, Portfolio, RunResult, Side, Stock
from ibkrfw.data import sample_feed
from ibkrfw.portfolio import Ledger, LotMethod, TaxLotPortfolio
from ibkrfw.sim import DataFrameFeed, FixedBpsSlippage, IBKRFixedCommission, SimBroker
from ibkrfw.strategies import MovingAverageCrossover
from ibkrfw.testing import ScriptedStrategy, bars_frame

from .test_invariants import CASH, MONITORS, PROTECTIONS, RULES, Player, Scenario, scenarios


def _run_scenario(scenario: Scenario, ledger: Ledger | None) -> tuple[Player, RunResult]:
    account: dict[str, Any] = {
        "margin": {},
        "cash": {"account": "cash"},
        "unlimited": {"initial_margin": None},
    }[scenario.account]
    broker = SimBroker(
        CASH,
        fill_timing=scenario.fill_timing,  # type: ignore[arg-type]
        favourable_first=scenario.favourable_first,
        volume_limit=scenario.volume_limit,
        commission=IBKRFixedCommission() if scenario.costs else None,
        slippage=FixedBpsSlippage(5) if scenario.costs else None,
        **account,
    )
    rules = broker.account_rules
    player = Player(scenario, rules[0] if rules else None)  # type: ignore[arg-type]
    engine = Engine(
        player,
        DataFrameFeed(scenario.frames),
        broker,
        risk_rules=[RULES[r]() for r in scenario.rules],
        risk_monitors=[MONITORS[m]() for m in scenario.monitors],
        protection=() if scenario.protection == "none" else PROTECTIONS[scenario.protection](),
        portfolio=ledger,
    )
    result = engine.run()
    assert ledger is None or engine.portfolio is ledger
    return player, result


def _same_run(a: RunResult, b: RunResult) -> None:
    pd.testing.assert_frame_equal(a.equity, b.equity)
    pd.testing.assert_frame_equal(a.positions, b.positions)
    assert a.order_list == b.order_list
    assert a.fill_list == b.fill_list
    assert a.trade_list == b.trade_list
    pd.testing.assert_series_equal(a.stats, b.stats)


# Random strategies where features meet (Protection, brackets, risk rules and monitors,
# partial fills under a volume limit, costs): a tax-lot ledger changes nothing the engine
# does, and keeps the books the invariants rig checks after every handler.
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(scenarios())
def test_a_tax_lot_ledger_runs_any_scenario_as_the_default_does(scenario: Scenario) -> None:
    _, default = _run_scenario(scenario, None)
    for method in LotMethod:
        ledger = TaxLotPortfolio(CASH, method=method)
        player, result = _run_scenario(scenario, ledger)
        assert player.checks > 0
        _same_run(default, result)
        # every fill's realised profit is the lots', and they add up to the closed lots'
        assert list(result.fills["realized_pnl"]) == ledger.realized_per_fill
        assert sum(ledger.realized_per_fill) == sum(c.gross_pnl for c in ledger.closed_lots)


def _busy() -> Scenario:
    """Brackets, partial fills and a protective stop, with exposure and position limits."""
    rows = [(100 + i % 5, 103 + i % 5, 97 + i % 5, 100 + i % 5 + (i * 7) % 6 - 3, 400.0)
            for i in range(24)]  # fmt: skip
    index = pd.date_range("2024-03-04 14:30", periods=24, freq="1h", tz="UTC", name="timestamp")
    frame = pd.DataFrame(rows, index=index, columns=["open", "high", "low", "close", "volume"])
    acme = Stock("ACME")
    script: dict[int, list[tuple[int, tuple[Any, ...]]]] = {
        0: [(0, ("market", "BUY", 100, "DAY"))],
        3: [(0, ("bracket", "BUY", 50, 200, 150, None))],
        6: [(0, ("market", "SELL", 120, "DAY"))],
        9: [(0, ("target_qty", -60))],
        14: [(0, ("target_pct", 0.4))],
        19: [(0, ("market", "SELL", 30, "DAY"))],
    }
    return Scenario(
        frames={acme: frame}, script=script, protection="none",
        rules=("max_position", "exposure"), monitors=("drawdown",), account="margin",
        fill_timing="next_bar", favourable_first=False, volume_limit=0.1, costs=True,
    )  # fmt: skip


def test_brackets_partial_fills_and_limits_with_tax_lots_by_hand() -> None:
    scenario = _busy()
    _, default = _run_scenario(scenario, None)
    fifo, lifo = TaxLotPortfolio(CASH), TaxLotPortfolio(CASH, method="lifo")
    _same_run(default, _run_scenario(scenario, fifo)[1])
    _same_run(default, _run_scenario(scenario, lifo)[1])
    fills = default.fill_list
    assert len(fills) > len(default.order_list[:6])  # the volume limit split orders
    assert any(f.side.name == "SELL" for f in fills) and fifo.closed_lots
    # the methods split the same closes differently, and agree on what is open and realised
    assert [c.open_ns for c in fifo.closed_lots] != [c.open_ns for c in lifo.closed_lots]
    inst = fills[0].instrument
    average = Portfolio(CASH)
    for f in fills:
        average.apply_fill(f)
    average.mark(inst, fifo.price(inst))
    avg = average.position(inst)
    for pf in (fifo, lifo):
        held = pf.position(inst)
        assert held.quantity == avg.quantity == default.positions[inst.id].iloc[-1]
        total = held.realized_pnl + Decimal(held.unrealized_pnl)
        assert total == pytest.approx(avg.realized_pnl + Decimal(avg.unrealized_pnl))


def test_protection_with_a_tax_lot_ledger_places_the_same_stops() -> None:
    busy = _busy()
    script = {k: [a for a in v if a[1][0] != "bracket"] for k, v in busy.script.items()}
    scenario = attrs.evolve(busy, protection="both", script=script)
    _, default = _run_scenario(scenario, None)
    _, lots = _run_scenario(scenario, TaxLotPortfolio(CASH, method="hifo"))
    _same_run(default, lots)
    assert any(o.request.tag for o in lots.order_list)  # the protection's orders


def test_a_tax_lot_run_reports_saves_and_loads(tmp_path: Path) -> None:
    feed = sample_feed(["ACME"])
    default = Engine(MovingAverageCrossover(), feed, SimBroker(100_000)).run()
    ledger = TaxLotPortfolio(100_000, method="lifo")
    engine = Engine(MovingAverageCrossover(), sample_feed(["ACME"]), SimBroker(100_000),
                    portfolio=ledger)  # fmt: skip
    result = engine.run()
    _same_run(default, result)
    assert engine.portfolio is ledger and ledger.closed_lots
    assert len(result.trades) == len(default.trades) > 0
    result.report(tmp_path / "report.html")
    assert (tmp_path / "report.html").stat().st_size > 0
    result.save(tmp_path / "run")
    loaded = RunResult.load(tmp_path / "run")
    assert list(loaded.fills["realized_pnl"]) == ledger.realized_per_fill
    pd.testing.assert_series_equal(loaded.stats, result.stats)


def test_a_tax_lot_ledger_in_a_euro_stock_run_follows_the_brokers_rates() -> None:
    sap = Stock("SAP", currency="EUR", exchange="IBIS")
    rows = [(100, 100, 100, 100), (100, 111, 99, 110), (115, 121, 114, 120), (120, 120, 120, 120)]
    index = pd.date_range("2024-01-02", periods=4, freq="1D", tz="UTC")
    fx = FxRates({"EUR": pd.Series([1.10, 1.20, 1.00, 1.00], index=index)})

    def run(ledger: Ledger | None) -> RunResult:
        script = ScriptedStrategy({0: lambda ctx, bar: ctx.buy(sap, 10),
                                   2: lambda ctx, bar: ctx.sell(sap, 4)})  # fmt: skip
        feed = DataFrameFeed(bars_frame(rows), sap)
        return Engine(script, feed, SimBroker(10_000, fx=fx), portfolio=ledger).run()

    ledger = TaxLotPortfolio(10_000)
    _same_run(run(None), run(ledger))
    assert ledger.fx is fx and ledger.balance("EUR") == Decimal(-1000 + 480)


# --- what Engine(portfolio=...) refuses -----------------------------------------------------
def _engine(ledger: Any, cash: int = 10_000, **broker_kw: Any) -> Engine:
    broker = SimBroker(cash, **broker_kw)
    return Engine(ScriptedStrategy(), sample_feed(["ACME"]), broker, portfolio=ledger)


def test_engine_portfolio_not_a_ledger_is_refused_saying_what_to_give() -> None:
    with pytest.raises(ConfigError, match=r"portfolio=TaxLotPortfolio\): give an instance.*"
                       r"TaxLotPortfolio\(100_000\)"):  # fmt: skip
        _engine(TaxLotPortfolio)
    with pytest.raises(ConfigError, match=r"portfolio=10000\): give a ledger.*not a int"):
        _engine(10_000)


def test_engine_portfolio_used_by_another_run_is_refused() -> None:
    ledger = Portfolio(10_000)
    first, second = _engine(ledger), _engine(ledger)  # both built before either runs
    first.run()
    with pytest.raises(ConfigError, match=r"used by another run.*give each run a new one"):
        second.run()
    with pytest.raises(ConfigError, match="used by another run"):
        _engine(ledger)
    booked = TaxLotPortfolio(10_000)
    acme = next(iter(first.instruments))
    booked.apply_fill(Fill(1, acme, Side.BUY, Decimal(1), Decimal(10), Decimal(0), 0, "e1"))
    with pytest.raises(ConfigError, match="has been given fills already"):
        _engine(booked)


def test_engine_portfolio_with_other_cash_or_currency_is_refused_at_the_start() -> None:
    with pytest.raises(ConfigError, match=r"starts with cash 5000, the account \(SimBroker\) "
                       r"with 10000 USD: build it with the account's cash"):  # fmt: skip
        _engine(TaxLotPortfolio(5_000)).run()
    with pytest.raises(ConfigError, match=r"books in EUR, the account in USD.*base_currency='USD'"):
        _engine(TaxLotPortfolio(10_000, "EUR")).run()
    # refused before it was used: it can still run, with the right account
    ledger = TaxLotPortfolio(5_000)
    with pytest.raises(ConfigError):
        _engine(ledger).run()
    _engine(ledger, cash=5_000).run()


def test_engine_portfolio_with_its_own_rates_or_clock_is_refused() -> None:
    from ibkrfw import SimClock

    index = pd.date_range("2024-01-02", periods=2, freq="1D", tz="UTC")
    fx = FxRates({"EUR": pd.Series([1.1, 1.2], index=index)})
    other = FxRates({"EUR": pd.Series([1.0, 1.0], index=index)})
    with pytest.raises(ConfigError, match=r"rates other than the broker's.*without fx="):
        _engine(Portfolio(10_000, fx=fx, clock=SimClock()), fx=other).run()
    with pytest.raises(ConfigError, match="clock other than the engine's"):
        _engine(Portfolio(10_000, fx=fx, clock=SimClock()), fx=fx).run()


def test_a_ledger_missing_part_of_the_contract_fails_when_built() -> None:
    class Partial(Ledger):
        pass

    with pytest.raises(TypeError, match="abstract"):
        Partial()  # type: ignore[abstract]


def test_the_tax_lots_example_pins_its_figures(capsys: pytest.CaptureFixture[str]) -> None:
    import runpy

    path = Path(__file__).parents[2] / "examples" / "tax_lots.py"
    runpy.run_path(str(path), run_name="__main__")
    out = capsys.readouterr().out
    assert re.search(r"realised\s+-2519\.20\s+-322\.00\s+-10131\.45", out)
    assert re.search(r"of which long term\s+81\.95\s+0\.00\s+-6232\.60", out)
    assert re.search(r"realised \+ unrealised\s+-205\.50\s+-205\.50\s+-205\.50", out)
    assert "same profit, cash and equity whatever the method: True" in out
