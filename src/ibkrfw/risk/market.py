"""Rules that read prices over time: the age of the data, and correlation between holdings."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import final

import numpy as np
from typing_extensions import override

from ibkrfw.errors import ConfigError
from ibkrfw.model.instruments import Instrument
from ibkrfw.model.orders import OrderRequest
from ibkrfw.portfolio.portfolio import PortfolioView
from ibkrfw.risk.limits import _no_price, _unit_value
from ibkrfw.risk.rule import RiskDecision, RiskRule, _duration, _reduces, only_reduces

__all__ = ["CorrelationLimit", "StaleDataGuard"]

_NS = 1_000_000_000


@final
class StaleDataGuard(RiskRule):
    """Deny orders when the instrument's last bar is older than ``max_age_s``.

    The age is the time from the last bar's time stamp (its open) to the order, so it must be
    longer than one bar: with 5-minute bars, 600 seconds allows one late bar. A shorter one
    would refuse every order of a live run (a bar is a bar old when it is complete) and none
    of a backtest: the run refuses to start with it. A feed that
    stops, a subscription IB dropped, delayed data: all end in stale prices, and an order sized
    or priced on them is refused until fresh bars arrive.

    Args:
        max_age_s: The oldest data an order may be based on, in seconds.
        allow_reductions: Let orders through that only bring a position toward flat
            (:func:`~ibkrfw.risk.only_reduces`; on by default: getting out should not wait for
            data). Turning it off breaks the promise of the other rules that a position can
            always be closed: only for a market where even an exit on stale prices is worse
            than none.
        instruments: The instruments it applies to (every instrument if None).

    Raises:
        ConfigError: if ``max_age_s`` is not positive; when the run starts, if it is not
            longer than one of the run's bars.

    Example:
        >>> guard = StaleDataGuard(max_age_s=120)
    """

    def __init__(
        self,
        max_age_s: float,
        *,
        allow_reductions: bool = True,
        instruments: Iterable[Instrument] | None = None,
    ) -> None:
        if not (isinstance(max_age_s, int | float) and max_age_s > 0):
            raise ConfigError(f"max_age_s must be a positive number, got {max_age_s!r}")
        self.max_age_s = max_age_s
        self._max_age_ns = int(max_age_s * _NS)
        self.allow_reductions = allow_reductions
        self.instruments = None if instruments is None else frozenset(instruments)

    @override
    def on_start(self, portfolio: PortfolioView, bar_ns: int | None) -> str | None:
        if bar_ns is not None and self._max_age_ns <= bar_ns:
            raise ConfigError(
                f"StaleDataGuard(max_age_s={self.max_age_s!r}) is not longer than one of the "
                f"run's bars ({_duration(bar_ns)}): a live run would refuse every order (a bar "
                "is that old when it is complete) and a backtest none; give max_age_s of more "
                f"than a bar, e.g. {2 * bar_ns / _NS:g} for one late bar"
            )
        return None

    @override
    def check(self, request: OrderRequest, portfolio: PortfolioView, ts_ns: int) -> RiskDecision:
        inst = request.instrument
        if self.instruments is not None and inst not in self.instruments:
            return RiskDecision.approve()
        if self.allow_reductions and only_reduces(request, portfolio):
            return RiskDecision.approve()
        last = portfolio.history(inst, 1).ts_ns
        if not len(last):
            return RiskDecision.deny(f"no data of {inst.id} yet")
        age_ns = ts_ns - int(last[0])
        if age_ns > self._max_age_ns:
            return RiskDecision.deny(
                f"the last bar of {inst.id} is {age_ns / _NS:,.0f} s old, older than the "
                f"{self.max_age_s:g} s allowed"
            )
        return RiskDecision.approve()


@final
class CorrelationLimit(RiskRule):
    """Cap the exposure to a group of instruments that move together.

    The group of an order's instrument is itself and every instrument held or with working
    orders whose returns over the last ``window`` bars correlate with its returns by at least
    ``threshold`` in absolute value. The group's exposure is the sum of their net market values
    (after working orders), each counted with the sign of its correlation, so a short in an
    instrument that moves with the order's one offsets it, and a short in one that moves
    against it adds to it. An order that raises the group's absolute exposure above
    ``max_exposure`` of equity is denied; one that lowers it always passes, as does one that
    only brings its position toward flat (:func:`~ibkrfw.risk.only_reduces`).

    Instruments with fewer than ``window`` common bars with the order's instrument are left
    out of its group (their correlation is not known yet).

    Args:
        max_exposure: The largest absolute exposure of a group, as a share of equity (0.5:
            50 %).
        threshold: The absolute correlation of bar-to-bar log returns from which instruments
            count as one group, in (0, 1].
        window: How many returns the correlation is measured over (at least 3).

    Raises:
        ConfigError: for a limit, threshold or window out of range.

    Example:
        >>> rule = CorrelationLimit(max_exposure=0.4, threshold=0.8, window=60)
    """

    def __init__(self, max_exposure: float, *, threshold: float = 0.7, window: int = 60) -> None:
        if not (isinstance(max_exposure, int | float) and max_exposure > 0):
            raise ConfigError(f"max_exposure must be a positive number, got {max_exposure!r}")
        if not (isinstance(threshold, int | float) and 0 < threshold <= 1):
            raise ConfigError(f"threshold must be in (0, 1], got {threshold!r}")
        if not (isinstance(window, int) and window >= 3):
            raise ConfigError(f"window must be an int of at least 3, got {window!r}")
        self.max_exposure = max_exposure
        self.threshold = threshold
        self.window = window

    def correlation(self, a: Instrument, b: Instrument, portfolio: PortfolioView) -> float:
        """Return the correlation of ``a`` and ``b``'s log returns over ``window`` common bars.

        NaN when fewer are known, or when one of them did not move.
        """
        ha = portfolio.history(a, 2 * self.window + 2)
        hb = portfolio.history(b, 2 * self.window + 2)
        _, ia, ib = np.intersect1d(ha.ts_ns, hb.ts_ns, assume_unique=True, return_indices=True)
        if len(ia) < self.window + 1:
            return math.nan
        ia, ib = ia[-self.window - 1 :], ib[-self.window - 1 :]
        with np.errstate(divide="ignore", invalid="ignore"):
            ra = np.diff(np.log(ha.close[ia]))
            rb = np.diff(np.log(hb.close[ib]))
            if not (np.all(np.isfinite(ra)) and np.all(np.isfinite(rb))):
                return math.nan
            if ra.std() == 0 or rb.std() == 0:
                return math.nan
            return float(np.corrcoef(ra, rb)[0, 1])

    @override
    def check(self, request: OrderRequest, portfolio: PortfolioView, ts_ns: int) -> RiskDecision:
        inst = request.instrument
        held = portfolio.quantity(inst)
        buys, sells = portfolio.working(inst)
        if _reduces(held, request, (buys, sells)):
            return RiskDecision.approve()
        unit = float(_unit_value(inst, portfolio, request))
        if math.isnan(unit):
            return _no_price(request)
        mine = float(held + buys - sells) * unit
        others = set(portfolio.positions) | set(portfolio.working_instruments())
        others.discard(inst)
        group = [inst.id]
        exposure = 0.0
        for other in sorted(others, key=lambda i: i.id):
            corr = self.correlation(inst, other, portfolio)
            if not abs(corr) >= self.threshold:  # NaN: not known, not grouped
                continue
            buys_o, sells_o = portfolio.working(other)
            value = float(_unit_value(other, portfolio, request)) * float(
                portfolio.quantity(other) + buys_o - sells_o
            )
            if math.isnan(value):
                continue
            exposure += math.copysign(value, corr)
            group.append(f"{other.id} ({corr:+.2f})")
        before = abs(exposure + mine)
        after = abs(exposure + mine + float(request.signed_quantity) * unit)
        equity = portfolio.equity
        limit = self.max_exposure * equity if equity > 0 else 0.0
        if after > limit and after > before:
            share = after / equity if equity > 0 else math.inf
            return RiskDecision.deny(
                f"exposure to the correlated group {', '.join(group)} would be {share:.1%} of "
                f"equity, over the limit of {self.max_exposure:.1%}"
            )
        return RiskDecision.approve()
