"""Pre-trade risk rules: the checks every order passes before it reaches a broker."""

from __future__ import annotations

from abc import ABC, abstractmethod
from decimal import Decimal
from typing import final

import attrs
from typing_extensions import override

from ibkrfw.errors import ConfigError
from ibkrfw.model._decimal import DecimalLike, to_decimal
from ibkrfw.model.orders import OrderRequest
from ibkrfw.portfolio.portfolio import PortfolioView

__all__ = ["LimitUsage", "MaxOrderQuantity", "RiskDecision", "RiskRule", "only_reduces"]


@final
@attrs.frozen
class LimitUsage:
    """How much of one limit the account uses now (for dashboards and summaries).

    Args:
        measure: What is measured (``"leverage"``, ``"drawdown"``...).
        used: The current value.
        limit: The limit it is held to.
    """

    measure: str
    used: float
    limit: float

    @property
    def share(self) -> float:
        """``used / limit`` (NaN without a limit)."""
        return self.used / self.limit if self.limit else float("nan")


@final
@attrs.frozen
class RiskDecision:
    """A risk rule's verdict on one order request.

    Build one with :meth:`approve`, :meth:`deny` or :meth:`shrink`.
    """

    approved: bool
    reason: str = ""
    quantity: Decimal | None = None
    """The smaller quantity a :meth:`shrink` lets through (None: as asked)."""

    @classmethod
    def approve(cls) -> RiskDecision:
        """Let the order through."""
        return _APPROVED

    @classmethod
    def deny(cls, reason: str) -> RiskDecision:
        """Refuse the order; ``reason`` reaches the strategy in an :class:`~ibkrfw.OrderDenied`."""
        return cls(False, reason)

    @classmethod
    def shrink(cls, quantity: DecimalLike, reason: str) -> RiskDecision:
        """Let the order through at a smaller ``quantity``, saying why.

        The engine sends the smaller order, tells the strategy with an
        :class:`~ibkrfw.OrderResized` event, and runs the remaining rules on it. A quantity of
        zero or less denies the order; one that is not below the request's, or not a whole
        number of lots, is a faulty rule and denies it too (round down with
        :meth:`Instrument.round_quantity <ibkrfw.Instrument.round_quantity>`).
        """
        return cls(True, reason, to_decimal(quantity, "quantity"))


_APPROVED = RiskDecision(True)

_NS = 1_000_000_000
_DAILY_NS = 20 * 3_600 * _NS
"""Bars this far apart or more come at most once a day (a day's are 24 hours apart, 23 or 25
across a change of summer time; a session's bars 6.5 hours)."""


def _duration(ns: int) -> str:
    """``ns`` nanoseconds in words, in the largest unit that fits: ``"1 day"``, ``"5 minutes"``."""
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60), ("second", 1)):
        count = ns / (size * _NS)
        if count >= 1:
            number = f"{count:.3g}"
            return f"{number} {unit}" + ("" if number == "1" else "s")
    return f"{ns / 1e6:.3g} ms"


def _reduces(held: Decimal, request: OrderRequest, working: tuple[Decimal, Decimal]) -> bool:
    """Whether ``request`` only brings ``held`` toward flat, with ``working`` on its side."""
    if request.side.sign > 0:
        return held < 0 and request.quantity + working[0] <= -held
    return held > 0 and request.quantity + working[1] <= held


def only_reduces(request: OrderRequest, portfolio: PortfolioView) -> bool:
    """Return whether ``request`` only brings its position toward flat.

    It must be on the other side of the position held, and together with the orders already
    working on its own side (:meth:`PortfolioView.working <ibkrfw.PortfolioView.working>`:
    they could all fill as well, an OCA group counting once) it must not take the position
    past flat. Such an order lowers every measure of risk a built-in rule keeps, so none of
    them denies or shrinks it: a position can always be closed.

    Example:
        >>> from ibkrfw import Fill, OrderRequest, Portfolio, Side, Stock
        >>> acme = Stock("ACME")
        >>> pf = Portfolio(10_000)
        >>> pf.apply_fill(Fill(1, acme, Side.BUY, Decimal(10), Decimal(100), Decimal(0), 0, "e"))
        >>> only_reduces(OrderRequest(acme, Side.SELL, 10), pf)
        True
        >>> only_reduces(OrderRequest(acme, Side.SELL, 11), pf)  # past flat: a short of 1
        False
    """
    return _reduces(
        portfolio.quantity(request.instrument), request, portfolio.working(request.instrument)
    )


class RiskRule(ABC):
    """A pre-trade check, run on every order in backtests and live alike.

    Rules see only the request, a read-only portfolio and the time, so they behave the same
    whatever the broker. The first rule that denies an order stops it: nothing is sent, and the
    strategy receives :class:`~ibkrfw.OrderDenied` naming the rule and its reason.

    A rule should let through an order that only brings a position toward flat
    (:func:`~ibkrfw.risk.only_reduces`), so that no limit can keep an account in a position:
    every built-in rule does.

    Example:
        >>> class NoShorts(RiskRule):
        ...     def check(self, request, portfolio, ts_ns):
        ...         after = portfolio.quantity(request.instrument) + request.signed_quantity
        ...         if after < 0:
        ...             return RiskDecision.deny(f"would leave a short position of {after}")
        ...         return RiskDecision.approve()
    """

    @property
    def name(self) -> str:
        """The rule's name in denials and logs (its class name unless overridden)."""
        return type(self).__name__

    @abstractmethod
    def check(self, request: OrderRequest, portfolio: PortfolioView, ts_ns: int) -> RiskDecision:
        """Return whether ``request`` may be sent, given ``portfolio`` at time ``ts_ns``."""

    def usage(self, portfolio: PortfolioView) -> list[LimitUsage]:
        """How much of the rule's account-wide limits ``portfolio`` uses (none here)."""
        del portfolio
        return []

    def on_start(self, portfolio: PortfolioView, bar_ns: int | None) -> str | None:
        """Get ready for a run; say what the rule cannot do at the run's bar size.

        The engine calls it once, when the run starts: after positions held at the broker
        are booked, before the first bar. Nothing here.

        Args:
            portfolio: The account as the run starts.
            bar_ns: How long the run's bars last (the shortest of its feeds',
                :attr:`DataFeed.bar_ns <ibkrfw.DataFeed.bar_ns>`), None if not known.

        Returns:
            What the rule cannot do at that bar size, and what it does instead, in words, or
            None. The engine logs it as a warning and reports it as a
            :class:`~ibkrfw.RiskWarning`.

        Raises:
            ConfigError: if the rule can do nothing useful at that bar size.
        """
        del portfolio, bar_ns
        return None


@final
class MaxOrderQuantity(RiskRule):
    """Deny any single order larger than a fixed quantity (a fat-finger guard).

    An order that only brings its position toward flat (:func:`only_reduces`) passes whatever
    its size: it cannot be larger than the position, so closing a position built in several
    orders (a halt's flatten) is never refused.

    Args:
        limit: The largest quantity allowed in one order.
        shrink: Cut a larger order down to the limit (in whole lots) instead of denying it.

    Raises:
        ConfigError: if ``limit`` is not positive.
    """

    def __init__(self, limit: DecimalLike, *, shrink: bool = False) -> None:
        try:
            self.limit: Decimal = to_decimal(limit, "limit")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        if self.limit <= 0:
            raise ConfigError(f"limit must be positive, got {limit!r}")
        self.shrink = shrink

    @override
    def check(self, request: OrderRequest, portfolio: PortfolioView, ts_ns: int) -> RiskDecision:
        if request.quantity > self.limit and not only_reduces(request, portfolio):
            why = f"quantity {request.quantity} exceeds the limit of {self.limit} per order"
            fits = request.instrument.round_quantity(self.limit)
            if self.shrink and fits > 0:
                return RiskDecision.shrink(fits, f"{why}: cut to {fits}")
            return RiskDecision.deny(why)
        return RiskDecision.approve()
