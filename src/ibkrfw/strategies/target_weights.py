"""Hold a portfolio at target weights, rebalanced on a schedule or when it drifts."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import final

import attrs
from typing_extensions import override

from ibkrfw.errors import ConfigError
from ibkrfw.model.data import Bar
from ibkrfw.model.events import Event, TradingHalted
from ibkrfw.model.instruments import Instrument
from ibkrfw.portfolio.rebalance import Frequency, Schedule, drift, plan_rebalance
from ibkrfw.strategies._params import non_negative
from ibkrfw.strategy import Context, Strategy

__all__ = ["TargetWeights"]

_TAG = "rebalance"


@final
@attrs.define
class TargetWeights(Strategy):
    """Hold each instrument at a target share of equity, rebalancing on a schedule or on drift.

    At the first bar of each period (``every``), and whenever the largest distance between a
    weight and its target passes ``drift_trigger``, the strategy sends the market orders that
    bring the portfolio back: sells first, buys within the cash there will be, instruments
    within ``drift_band`` of their target and trades under ``min_trade_value`` left alone,
    quantities in whole lots (see :func:`~ibkrfw.portfolio.plan_rebalance`). It works on
    whole time slices (:meth:`~ibkrfw.Strategy.on_slice`), so every instrument is priced at
    the same time stamp. While a risk monitor halts trading
    (:class:`~ibkrfw.TradingHalted`) it does not rebalance.

    Args:
        weights: Target weight per instrument symbol or id (``{"ACME": 0.3, ...}``); equal
            weights over the run's instruments if None.
        every: ``"daily"``, ``"weekly"``, ``"monthly"`` or ``"quarterly"``; None to
            rebalance only on drift.
        drift_trigger: Rebalance off schedule when the drift passes this (None: never).
        drift_band: How far from its target an instrument is left alone at a rebalance.
        min_trade_value: The smallest trade sent, in the base currency.
        cash_buffer: The share of equity kept in cash for commissions and price moves.
        tz: The time zone the schedule counts days in.

    Raises:
        ConfigError: for weights that are not finite, sum of absolute weights above 1 plus the
            cash buffer's room, a negative setting, or neither a schedule nor a trigger; at
            start, for a weight naming no instrument of the run.

    Example:
        >>> from ibkrfw import Engine
        >>> from ibkrfw.data import sample_feed
        >>> from ibkrfw.sim import SimBroker
        >>> strategy = TargetWeights({"ACME": 0.5, "BOLT": 0.3}, every="monthly")
        >>> result = Engine(strategy, sample_feed(["ACME", "BOLT"]), SimBroker()).run()
        >>> result.positions.iloc[-1].gt(0).all()
        np.True_
    """

    weights: Mapping[str, float] | None = None
    every: Frequency | None = "monthly"
    drift_trigger: float | None = None
    drift_band: float = attrs.field(default=0.0, validator=non_negative)
    min_trade_value: float = attrs.field(default=0.0, validator=non_negative)
    cash_buffer: float = attrs.field(default=0.01, validator=non_negative)
    tz: str = "America/New_York"
    _targets: dict[Instrument, float] = attrs.field(factory=dict, init=False, repr=False)
    _schedule: Schedule | None = attrs.field(default=None, init=False, repr=False)
    _paused_until: int = attrs.field(default=0, init=False, repr=False)
    rebalances: list[int] = attrs.field(factory=list, init=False, repr=False)
    """The time stamps (UTC ns) at which the strategy sent rebalancing orders."""

    def __attrs_post_init__(self) -> None:
        if self.every is None and self.drift_trigger is None:
            raise ConfigError("TargetWeights needs a schedule (every=...) or a drift_trigger")
        if self.drift_trigger is not None and not self.drift_trigger > 0:
            raise ConfigError(f"drift_trigger must be positive, got {self.drift_trigger!r}")
        if self.weights is not None:
            values = list(self.weights.values())
            if not all(isinstance(w, int | float) and math.isfinite(w) for w in values):
                raise ConfigError(f"weights must be finite numbers, got {dict(self.weights)}")
            if sum(abs(w) for w in values) > 1 + 1e-9:
                raise ConfigError(
                    f"the absolute weights add up to {sum(abs(w) for w in values):.4g}, more "
                    "than 1 (the whole equity)"
                )
        self._schedule = Schedule(self.every, self.tz) if self.every is not None else None

    @override
    def on_start(self, ctx: Context) -> None:
        """Match the weights to the run's instruments (equal weights if none were given)."""
        instruments = ctx.instruments
        if self.weights is None:
            self._targets = dict.fromkeys(instruments, 1.0 / len(instruments))
            return
        by_name: dict[str, Instrument] = {}
        for inst in instruments:
            by_name[inst.id] = inst
            by_name.setdefault(inst.symbol, inst)
        unknown = sorted(k for k in self.weights if k not in by_name)
        if unknown:
            known = ", ".join(i.id for i in instruments)
            raise ConfigError(f"weights name {unknown}, not instruments of the run ({known})")
        self._targets = {by_name[k]: float(w) for k, w in self.weights.items()}

    @override
    def on_event(self, ctx: Context, event: Event) -> None:
        """Pause rebalancing while trading is halted."""
        if isinstance(event, TradingHalted):  # no point asking: wait until trading resumes
            until = event.until_ns if event.until_ns is not None else 2**63 - 1
            self._paused_until = max(self._paused_until, until)
            ctx.log.info("rebalancing paused: %s", event.reason)

    @override
    def on_slice(self, ctx: Context, bars: Sequence[Bar]) -> None:
        """Rebalance if the schedule says so or the weights have drifted too far."""
        now = ctx.now_ns
        if now < self._paused_until:
            return
        due = self._schedule is not None and self._schedule.due(now)
        portfolio = ctx.portfolio
        if not due and self.drift_trigger is not None:
            due = drift(portfolio, self._targets) > self.drift_trigger
        if not due:
            return
        pending: dict[Instrument, Decimal] = {}
        for order in ctx.open_orders():
            if order.request.tag == _TAG:  # only ours: protective exits are not targets
                left = order.request.quantity - order.filled_quantity
                signed = left if order.request.side.sign > 0 else -left
                inst = order.instrument
                pending[inst] = pending.get(inst, Decimal(0)) + signed
        plan = plan_rebalance(
            portfolio,
            self._targets,
            drift_band=self.drift_band,
            min_trade_value=self.min_trade_value,
            cash_buffer=self.cash_buffer,
            pending=pending,
            tag=_TAG,
        )
        for inst, why in plan.skipped.items():
            ctx.log.debug("rebalance: %s left alone: %s", inst.id, why)
        if plan.orders:
            self.rebalances.append(now)
        for request in plan.orders:
            ctx.submit(request)
