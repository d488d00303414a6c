"""A risk monitor's halt states its limit as it was set (issue 21 review): 0.05 %, not 0 %."""

from __future__ import annotations

from ibkrfw.portfolio import Portfolio
from ibkrfw.risk import MaxDrawdownKillSwitch


def test_max_drawdown_halt_small_limit_is_said_as_set() -> None:
    switch = MaxDrawdownKillSwitch(0.0005)
    assert switch.observe(Portfolio(cash=1_000_000), 0) is None
    halt = switch.observe(Portfolio(cash=999_000), 1)
    assert halt is not None
    assert halt.reason == (
        "equity 999,000.00 is 0.1% below its peak of 1,000,000.00 (the limit is 0.05%)"
    )


def test_max_drawdown_halt_usual_limit_is_said_without_decimals() -> None:
    switch = MaxDrawdownKillSwitch(0.15)
    switch.observe(Portfolio(cash=100_000), 0)
    halt = switch.observe(Portfolio(cash=80_000), 1)
    assert halt is not None and halt.reason.endswith("(the limit is 15%)")
