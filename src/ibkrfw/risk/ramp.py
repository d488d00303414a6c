"""Gradual scaling: trade a fraction of the target size, raised step by step."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from itertools import pairwise
from typing import final

import attrs
from typing_extensions import override

from ibkrfw.errors import ConfigError
from ibkrfw.model._decimal import float_decimal
from ibkrfw.model.orders import OrderRequest
from ibkrfw.portfolio.portfolio import PortfolioView
from ibkrfw.risk.rule import RiskDecision, RiskRule, only_reduces

__all__ = ["CapitalRamp", "RampStep"]

log = logging.getLogger("ibkrfw.risk")

_DAY_NS = 86_400 * 1_000_000_000


@final
@attrs.frozen
class RampStep:
    """One step of a :class:`CapitalRamp`: the fraction traded from ``ts_ns`` on.

    Args:
        ts_ns: When the step began (UTC ns).
        fraction: The share of the target size traded.
        equity: The equity when it began.
    """

    ts_ns: int
    fraction: float
    equity: float


RampCondition = Callable[[PortfolioView, RampStep, int], bool]
"""A custom condition to take the next step: ``(portfolio, current step, now_ns) -> bool``."""


@final
class CapitalRamp(RiskRule):
    """Trade a fraction of the target size, raised step by step as conditions are met.

    For bringing a strategy live: first at a quarter of its size, then half, then full, each
    step taken once the current one has lasted ``min_days`` and earned at least
    ``min_return`` (and ``condition`` holds, if given).

    The ramp scales the position an order aims at, not the order: with a fraction ``f``, an
    order that would take the position (working orders included) from ``p`` to ``t`` is cut to
    reach ``f * t`` (in whole lots). So a strategy that trades to targets
    (``order_target_percent``) is not undone by re-ordering the difference at every bar, and
    an order to close a position closes all of it: an order that only brings its position
    toward flat (:func:`~ibkrfw.risk.only_reduces`) always passes unchanged. The ramp never
    enlarges an order; an order whose scaled target is already reached is denied, saying so.
    Each cut is reported by :class:`~ibkrfw.OrderResized`; each step is logged on
    ``ibkrfw.risk`` and kept in :attr:`steps`.

    The steps are checked when an order comes, so a step begins with the first order after its
    conditions are met.

    Args:
        fractions: The fractions traded, in increasing order, each in (0, 1].
        min_days: How long each step lasts at least, in days.
        min_return: The return since the step began needed to take the next (None: any).
        condition: A further condition for taking the next step.

    Raises:
        ConfigError: if the fractions are empty, out of (0, 1] or not increasing, or
            ``min_days`` is negative.

    Example:
        >>> ramp = CapitalRamp((0.25, 0.5, 1.0), min_days=20, min_return=0.0)
        >>> ramp.fraction
        0.25
    """

    def __init__(
        self,
        fractions: Sequence[float] = (0.25, 0.5, 1.0),
        *,
        min_days: float = 20,
        min_return: float | None = 0.0,
        condition: RampCondition | None = None,
    ) -> None:
        values = list(fractions)
        if not values or not all(isinstance(f, int | float) and 0 < f <= 1 for f in values):
            raise ConfigError(f"fractions must be numbers in (0, 1], got {fractions!r}")
        if any(b <= a for a, b in pairwise(values)):
            raise ConfigError(f"fractions must increase, got {fractions!r}")
        if not (isinstance(min_days, int | float) and min_days >= 0):
            raise ConfigError(f"min_days must be a number of at least 0, got {min_days!r}")
        self.fractions = tuple(float(f) for f in values)
        self.min_days = min_days
        self.min_return = min_return
        self.condition = condition
        self.steps: list[RampStep] = []
        """The steps taken so far, oldest first."""

    @property
    def fraction(self) -> float:
        """The fraction traded now."""
        return self.steps[-1].fraction if self.steps else self.fractions[0]

    def _step(self, portfolio: PortfolioView, ts_ns: int) -> None:
        """Begin the first step, or take the next ones whose conditions are met."""
        equity = portfolio.equity
        if not self.steps:
            self.steps.append(RampStep(ts_ns, self.fractions[0], equity))
            return
        while len(self.steps) < len(self.fractions):
            step = self.steps[-1]
            if ts_ns - step.ts_ns < self.min_days * _DAY_NS:
                return
            if self.min_return is not None:
                earned = equity / step.equity - 1 if step.equity > 0 else math.nan
                if not earned >= self.min_return:
                    return
            if self.condition is not None and not self.condition(portfolio, step, ts_ns):
                return
            new = RampStep(ts_ns, self.fractions[len(self.steps)], equity)
            self.steps.append(new)
            log.info("capital ramp: trading at %.0f%% of target size from now on",
                     new.fraction * 100)  # fmt: skip

    @override
    def check(self, request: OrderRequest, portfolio: PortfolioView, ts_ns: int) -> RiskDecision:
        self._step(portfolio, ts_ns)
        fraction = self.fraction
        if fraction >= 1 or only_reduces(request, portfolio):
            return RiskDecision.approve()
        inst = request.instrument
        now = portfolio.quantity(inst) + portfolio.pending(inst)  # exits left out
        target = now + request.signed_quantity
        scaled = inst.round_quantity(target * float_decimal(fraction))
        order = scaled - now  # signed: what reaches the scaled target
        if order * request.side.sign <= 0:
            return RiskDecision.deny(
                f"the capital ramp trades {fraction:.0%} of target size: the position aimed at "
                f"({target}) is already reached at that size ({now})"
            )
        if abs(order) >= request.quantity:
            return RiskDecision.approve()
        return RiskDecision.shrink(
            abs(order), f"the capital ramp trades {fraction:.0%} of target size"
        )
