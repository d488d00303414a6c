"""Rebalancing plans, schedules, drift and grouped exposure, worked out by hand."""

from __future__ import annotations

from decimal import Decimal

import pandas as pd
import pytest

from ibkrfw import ConfigError, Fill, Side, Stock
from ibkrfw.portfolio import Portfolio, Schedule, drift, plan_rebalance

A, B, C = Stock("A"), Stock("B"), Stock("C", lot_size=100)


def holding(cash: float, held: dict[Stock, tuple[int, float]]) -> Portfolio:
    """A portfolio with ``cash`` left after buying ``held`` (quantity, price) at those prices."""
    cost = sum(q * p for q, p in held.values())
    pf = Portfolio(cash=cash + cost)
    for i, (inst, (quantity, price)) in enumerate(held.items()):
        side = Side.BUY if quantity > 0 else Side.SELL
        pf.apply_fill(
            Fill(i, inst, side, Decimal(abs(quantity)), Decimal(str(price)), Decimal(0), 0, f"{i}")
        )
        pf.mark(inst, price)
    return pf


def orders(plan) -> list[tuple[str, str, Decimal]]:
    return [(o.instrument.symbol, o.side.value, o.quantity) for o in plan.orders]


def test_sells_come_first_and_positions_outside_the_targets_close() -> None:
    pf = holding(0, {A: (100, 50.0), B: (100, 50.0)})  # equity 10,000: 50 % each
    pf.mark(C, 10.0)
    plan = plan_rebalance(pf, {A: 0.2, C: 0.8})
    assert orders(plan) == [("A", "SELL", 60), ("B", "SELL", 100), ("C", "BUY", 800)]
    assert plan.drift == pytest.approx(0.8)


def test_band_minimum_trade_and_lots() -> None:
    pf = holding(5_000, {A: (52, 50.0)})  # A at 2,600 of 7,600: 34.2 %
    pf.mark(B, 30.0)
    pf.mark(C, 7.0)
    plan = plan_rebalance(pf, {A: 0.33, B: 0.03, C: 0.5}, drift_band=0.02, min_trade_value=250)
    # A within 2 points; B: 228 / 30 -> 7 shares, 210.00, under the minimum;
    # C: 3,800 / 7 = 542 -> 500 (lots of 100)
    assert orders(plan) == [("C", "BUY", 500)]
    assert "within the band" in plan.skipped[A]
    assert plan.skipped[B] == "trade of 210.00 below the minimum of 250.00"


def test_buys_stay_within_the_cash_after_the_sells() -> None:
    pf = holding(1_000, {A: (100, 50.0)})  # equity 6,000
    pf.mark(B, 10.0)
    # wants B at 100 % (600 shares = 6,000), while A's sale brings 5,000 and 1 % is kept back
    plan = plan_rebalance(pf, {B: 1.0}, cash_buffer=0.01)
    assert orders(plan) == [("A", "SELL", 100), ("B", "BUY", 594)]  # (6,000 - 60) / 10
    unlimited = plan_rebalance(pf, {B: 1.0}, cash_buffer=0.01, cash_aware=False)
    assert orders(unlimited)[-1] == ("B", "BUY", 600)


def test_shorts_and_pending_orders() -> None:
    pf = holding(10_000, {})
    pf.mark(A, 50.0)
    plan = plan_rebalance(pf, {A: -0.5})
    assert orders(plan) == [("A", "SELL", 100)]
    # 60 already on their way: only the rest is asked for
    plan = plan_rebalance(pf, {A: -0.5}, pending={A: Decimal(-60)})
    assert orders(plan) == [("A", "SELL", 40)]


def test_what_cannot_be_priced_is_skipped() -> None:
    pf = holding(10_000, {})
    pf.mark(A, 50.0)
    plan = plan_rebalance(pf, {A: 0.5, B: 0.5})
    assert orders(plan) == [("A", "BUY", 100)] and plan.skipped[B] == "no price yet"
    assert drift(pf, {A: 0.5, B: 0.5}) != drift(pf, {A: 0.5, B: 0.5})  # NaN


@pytest.mark.parametrize(
    "kwargs", [{"drift_band": -0.1}, {"min_trade_value": -1}, {"cash_buffer": float("nan")}]
)
def test_bad_settings_are_refused(kwargs) -> None:
    with pytest.raises(ConfigError):
        plan_rebalance(holding(1, {}), {A: 0.5}, **kwargs)
    with pytest.raises(ConfigError):
        plan_rebalance(holding(1, {}), {A: float("inf")})


def test_schedules() -> None:
    def due(every: str, days: list[str]) -> list[bool]:
        schedule = Schedule(every)  # type: ignore[arg-type]
        return [schedule.due(pd.Timestamp(f"{d} 15:00", tz="UTC").value) for d in days]

    week = ["2024-01-04", "2024-01-05", "2024-01-08", "2024-01-09"]  # Thu Fri Mon Tue
    assert due("weekly", week) == [True, False, True, False]
    assert due("daily", week) == [True, True, True, True]
    quarter = ["2024-02-01", "2024-03-28", "2024-04-01", "2024-05-01"]
    assert due("quarterly", quarter) == [True, False, True, False]
    # asking twice at one time stamp gives one answer
    schedule = Schedule("monthly")
    t = pd.Timestamp("2024-01-02 15:00", tz="UTC").value
    assert schedule.due(t) and schedule.due(t)
    with pytest.raises(ConfigError):
        Schedule("hourly")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        Schedule("daily", tz="Mars/Olympus")


def test_weights_and_exposure_by_group() -> None:
    pf = holding(4_000, {A: (20, 100.0), B: (-10, 100.0), C: (100, 10.0)})
    assert pf.equity == pytest.approx(6_000)  # 4,000 cash, 2,000 long A, 1,000 short B, 1,000 C
    sectors = {A: "tech", B: "tech", C: "energy"}
    assert pf.exposure_by(sectors) == {"tech": 1_000.0, "energy": 1_000.0}
    assert pf.exposure_by(sectors, gross=True) == {"tech": 3_000.0, "energy": 1_000.0}
    assert pf.exposure_by({A: "tech"}) == {"tech": 2_000.0, "other": 0.0}
    weights = pf.weights()
    assert weights[B] == pytest.approx(-1_000 / pf.equity)


def test_numpy_targets_plan_like_python_floats() -> None:
    import numpy as np

    pf = holding(0, {A: (100, 50.0), B: (100, 50.0)})
    pf.mark(C, 10.0)
    plan = plan_rebalance(pf, {A: np.float64(0.2), C: np.float64(0.8)})  # weights from pandas
    assert orders(plan) == [("A", "SELL", 60), ("B", "SELL", 100), ("C", "BUY", 800)]
