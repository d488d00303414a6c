"""Stop-loss and take-profit orders kept on every position, as real orders at the broker.

A :class:`Protection` given to the engine (``Engine(protection=...)``) watches the positions:
after the fills of a time stamp it places, resizes, moves or cancels a stop-loss and a
take-profit for each position so that they always cover it. They are ordinary GTC orders, so
in live trading they sit at IB and protect the position even when the process is gone. The
engine does the bookkeeping; this module only says which orders a position should have.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import final

import attrs
import numpy as np

from ibkrfw.core.history import History
from ibkrfw.errors import ConfigError
from ibkrfw.model._decimal import float_decimal
from ibkrfw.model.instruments import Instrument
from ibkrfw.model.orders import OrderRequest, OrderType, Side

__all__ = ["Protection", "StopLoss", "TakeProfit", "waits_to_exit"]

STOP_TAG = "stop-loss"
"""The tag of the stop-loss orders a :class:`Protection` places."""
TAKE_TAG = "take-profit"
"""The tag of the take-profit orders a :class:`Protection` places."""
GROUP_PREFIX = "protect-"
"""How the OCA groups of protective orders begin."""


def waits_to_exit(request: OrderRequest) -> bool:
    """Whether ``request`` is an exit that waits for a trigger: a Protection's or a bracket's.

    Such exits follow their position, so they do not count as pending toward a target
    (:meth:`Context.order_target_quantity <ibkrfw.Context.order_target_quantity>`,
    :meth:`PortfolioView.pending <ibkrfw.PortfolioView.pending>`).
    """
    return request.parent_id is not None or (
        request.tag in (STOP_TAG, TAKE_TAG) and request.oca_group.startswith(GROUP_PREFIX)
    )


class _Kind(enum.Enum):
    FIXED = "fixed"
    PERCENT = "percent"
    ATR = "atr"


def _positive(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"{name} must be a positive number, got {value!r}")
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be finite, got {value!r}")
    return float(value)


def _period(period: int) -> int:
    if isinstance(period, bool) or not isinstance(period, int) or period < 1:
        raise ConfigError(f"period must be a positive int, got {period!r}")
    return period


_NEGLIGIBLE = 1e-13
"""The weight below which older bars are left out of the ATR (far below 1e-9 of its value)."""


def average_true_range(history: History, period: int) -> float:
    """Wilder's average true range at the last bar of ``history`` (NaN before ``period`` bars).

    The same average as :class:`ibkrfw.indicators.ATR` and :func:`ibkrfw.indicators.atr` (and
    TA-Lib's ``ATR``) over the same bars, to 1e-9: the true range of a bar is the largest of
    its high minus low and the distances from the previous close to its high and low (high
    minus low for the first bar); the first average is the mean of the first ``period`` true
    ranges, then each bar moves it ``1 / period`` of the way to its true range.

    Wilder's average remembers every bar, each older one weighing ``(period - 1) / period``
    times less, so only the bars whose weight is not negligible (below 1e-13) are read: about
    ``30 * period`` of them. It runs when a protective order is placed or resized, not on
    every bar.

    Example:
        >>> from ibkrfw import Bar, Stock
        >>> from ibkrfw.core.history import BarHistory
        >>> h = BarHistory.empty()
        >>> for i, (hi, lo, c) in enumerate([(11, 9, 10), (12, 10, 11), (14, 11, 13)]):
        ...     h.push(Bar(Stock("X"), i, c, hi, lo, c, 0.0))
        >>> average_true_range(h.last(), 2)  # ranges 2, 2, 3: (2 + 2) / 2, then (2 + 3) / 2
        2.5
    """
    n = len(history)
    if n < period:
        return math.nan
    decay = (period - 1) / period
    # Bars beyond `keep` weigh less than _NEGLIGIBLE; one more gives the first its close.
    keep = period + (math.ceil(math.log(_NEGLIGIBLE) / math.log(decay)) if decay else 0)
    start = max(n - keep - 1, 0)
    high, low, close = history.high[start:], history.low[start:], history.close[start:]
    ranges = high - low
    if len(close) > 1:
        previous = close[:-1]
        ranges[1:] = np.maximum(
            ranges[1:], np.maximum(np.abs(high[1:] - previous), np.abs(low[1:] - previous))
        )
    if start:
        ranges = ranges[1:]  # that bar only lent its close
    value = float(ranges[:period].sum() / period)
    rest = ranges[period:]
    if len(rest):  # value = (value * (period - 1) + tr) / period for each, unrolled
        weights = decay ** np.arange(len(rest) - 1, -1, -1, dtype=np.float64)
        value = value * decay ** len(rest) + float(rest @ weights) / period
    return value


@final
@attrs.frozen
class StopLoss:
    """Where a position's stop-loss sits: a distance from the average entry price.

    Build one with :meth:`fixed`, :meth:`percent`, :meth:`atr` or :meth:`trailing`.
    """

    kind: _Kind
    value: float
    period: int = 14
    trail: bool = False

    @classmethod
    def fixed(cls, distance: float) -> StopLoss:
        """A stop ``distance`` (in price) from the average entry price."""
        return cls(_Kind.FIXED, _positive(distance, "distance"))

    @classmethod
    def percent(cls, fraction: float) -> StopLoss:
        """A stop ``fraction`` of the average entry price away (0.05: 5 % below a long)."""
        if not _positive(fraction, "fraction") < 1:
            raise ConfigError(f"fraction must be below 1, got {fraction!r}")
        return cls(_Kind.PERCENT, fraction)

    @classmethod
    def atr(cls, multiple: float, period: int = 14, *, trail: bool = False) -> StopLoss:
        """A stop ``multiple`` average true ranges (Wilder's, over ``period`` bars) away.

        The average true range is :class:`ibkrfw.indicators.ATR`'s (Wilder's, as TA-Lib's),
        of the instrument's bars so far, measured when the stop is placed or resized (see
        :func:`~ibkrfw.risk.protect.average_true_range`); with ``trail=True`` the stop is a
        trailing stop that distance behind the best price since.
        """
        return cls(_Kind.ATR, _positive(multiple, "multiple"), _period(period), trail)

    @classmethod
    def trailing(cls, *, amount: float | None = None, percent: float | None = None) -> StopLoss:
        """A trailing stop (IB's TRAIL order) ``amount`` or ``percent`` behind the best price.

        ``percent`` is a fraction, as elsewhere: 0.05 trails 5 % behind.
        """
        if (amount is None) == (percent is None):
            raise ConfigError("a trailing stop needs exactly one of amount and percent")
        if amount is not None:
            return cls(_Kind.FIXED, _positive(amount, "amount"), trail=True)
        assert percent is not None
        if not _positive(percent, "percent") < 1:
            raise ConfigError(f"percent must be a fraction below 1, got {percent!r}")
        return cls(_Kind.PERCENT, percent, trail=True)


@final
@attrs.frozen
class TakeProfit:
    """Where a position's take-profit sits: a distance from the average entry price.

    Build one with :meth:`fixed`, :meth:`percent` or :meth:`atr`.
    """

    kind: _Kind
    value: float
    period: int = 14

    @classmethod
    def fixed(cls, distance: float) -> TakeProfit:
        """A limit ``distance`` (in price) beyond the average entry price."""
        return cls(_Kind.FIXED, _positive(distance, "distance"))

    @classmethod
    def percent(cls, fraction: float) -> TakeProfit:
        """A limit ``fraction`` of the average entry price beyond it (0.1: 10 % above a long)."""
        return cls(_Kind.PERCENT, _positive(fraction, "fraction"))

    @classmethod
    def atr(cls, multiple: float, period: int = 14) -> TakeProfit:
        """A limit ``multiple`` average true ranges (Wilder's, over ``period`` bars) beyond it.

        The average true range is :class:`ibkrfw.indicators.ATR`'s, of the instrument's bars
        so far, measured when the order is placed or resized
        (see :func:`~ibkrfw.risk.protect.average_true_range`).
        """
        return cls(_Kind.ATR, _positive(multiple, "multiple"), _period(period))


def _last_close(history: History, default: float) -> float:
    closes = history.close
    return float(closes[-1]) if len(closes) else default


def _distance(kind: _Kind, value: float, period: int, entry: float, history: History) -> float:
    if kind is _Kind.FIXED:
        return value
    if kind is _Kind.PERCENT:
        return entry * value
    return value * average_true_range(history, period)


@final
class Protection:
    """A stop-loss and a take-profit for every position, kept by the engine as real orders.

    After fills (in a backtest once a bar's fills are in; live as IB reports each), the engine
    makes the protective orders of the instrument match its position: placed when a position
    opens (GTC, tagged ``stop-loss`` and ``take-profit``, in one OCA group so a fill in one
    reduces the other), resized and moved (to the new average price) when it grows or shrinks,
    replaced when it turns from long to short, cancelled when it closes. An order of your own
    on the closing side joins its OCA group (unless it has a group or a parent, or another
    order of yours is in the group already), so your exit and the stop can never both fill;
    further closing orders of yours (a scale-out) stay whole and stay yours: cancel them
    should the stop close the position first. Protective orders only reduce risk: they skip
    the pre-trade rules, so no limit can leave a position unprotected. One the broker rejects
    is placed again at the next time stamps, one cancelled from outside the engine at once;
    after three losses in a row, or when its price would be at or below zero, a
    :class:`~ibkrfw.ProtectionFailed` event says so. Changing a protective order's quantity
    yourself is refused.

    Positions held when a run starts (adopted from the account) are protected at once, and
    protective orders found working at the account are taken over rather than duplicated.
    When a distance cannot be worked out yet (an ATR before enough bars), the order waits and
    is tried again at each time stamp.

    Use either this or :meth:`Context.bracket <ibkrfw.Context.bracket>` for an instrument,
    not both: a bracket on an instrument this covers is refused.

    Args:
        stop_loss: Where the stop goes (none if None).
        take_profit: Where the take-profit goes (none if None).
        instruments: The instruments protected (every instrument if None).

    Raises:
        ConfigError: if neither a stop-loss nor a take-profit is given.

    Example:
        >>> protect = Protection(StopLoss.percent(0.05), TakeProfit.atr(3.0, period=20))
    """

    def __init__(
        self,
        stop_loss: StopLoss | None = None,
        take_profit: TakeProfit | None = None,
        *,
        instruments: Iterable[Instrument] | None = None,
    ) -> None:
        if stop_loss is None and take_profit is None:
            raise ConfigError("a Protection needs a stop_loss, a take_profit or both")
        self.stop_loss = stop_loss
        self.take_profit = take_profit
        self.instruments = None if instruments is None else frozenset(instruments)

    def covers(self, instrument: Instrument) -> bool:
        """Whether positions in ``instrument`` are protected by this."""
        return self.instruments is None or instrument in self.instruments

    def waits_for_bars(self, tag: str, history: History) -> bool:
        """Whether the order ``tag`` cannot be priced yet for want of bars (an ATR distance).

        When :meth:`orders` gives no request for a tag and this is False, the order cannot be
        placed at all (its stop would be at or below zero): the engine says so.
        """
        spec = self.stop_loss if tag == STOP_TAG else self.take_profit
        return spec is not None and spec.kind is _Kind.ATR and len(history) < spec.period

    def orders(
        self,
        instrument: Instrument,
        quantity: Decimal,
        entry: float,
        history: History,
        last: float | None = None,
    ) -> dict[str, OrderRequest | None]:
        """The protective orders a position should have, by tag.

        Args:
            instrument: The position's instrument.
            quantity: The signed quantity held (not zero).
            entry: The average entry price.
            history: The instrument's bars so far (for ATR distances).
            last: The last price (a trailing stop starts that far from it); the last close
                of ``history`` if None.

        Returns:
            ``{"stop-loss": request, "take-profit": request}`` for the orders configured; a
            None value when its price cannot be worked out yet (no ATR, or a stop at or
            below zero). Requests carry no OCA group; the engine adds it.
        """
        long = quantity > 0
        side = Side.SELL if long else Side.BUY
        size = abs(quantity)
        sign = 1.0 if long else -1.0
        wanted: dict[str, OrderRequest | None] = {}
        stop = self.stop_loss
        if stop is not None:
            gap = _distance(stop.kind, stop.value, stop.period, entry, history)
            if not (math.isfinite(gap) and gap > 0):
                wanted[STOP_TAG] = None
            elif stop.trail:
                # IB's trail percent is in percent units; an ATR trail is an amount
                by_percent = stop.kind is _Kind.PERCENT
                amount = None if by_percent else instrument.round_price(gap, ROUND_CEILING)
                price = last if last is not None else _last_close(history, entry)
                start = price - sign * (price * stop.value if by_percent else float(gap))
                percent = float_decimal(stop.value * 100) if by_percent else None
                wanted[STOP_TAG] = None
                if start > 0:
                    wanted[STOP_TAG] = OrderRequest(
                        instrument, side, size, OrderType.TRAILING_STOP,
                        stop_price=instrument.round_price(
                            start, ROUND_FLOOR if long else ROUND_CEILING
                        ),
                        trail_amount=amount,
                        trail_percent=percent,
                        tif="GTC", tag=STOP_TAG,
                    )  # fmt: skip
            else:
                price = entry - sign * gap
                rounding = ROUND_FLOOR if long else ROUND_CEILING  # never closer than asked
                stop_at = instrument.round_price(price, rounding) if price > 0 else None
                wanted[STOP_TAG] = None
                if stop_at is not None and stop_at > 0:
                    wanted[STOP_TAG] = OrderRequest(
                        instrument, side, size, OrderType.STOP, stop_price=stop_at, tif="GTC",
                        tag=STOP_TAG,
                    )  # fmt: skip
        take = self.take_profit
        if take is not None:
            gap = _distance(take.kind, take.value, take.period, entry, history)
            price = entry + sign * gap
            rounding = ROUND_CEILING if long else ROUND_FLOOR
            limit = (
                instrument.round_price(price, rounding)
                if math.isfinite(gap) and gap > 0 and price > 0
                else None
            )
            if limit is None or limit <= 0:  # a short's target under one tick: none to place
                wanted[TAKE_TAG] = None
            else:
                wanted[TAKE_TAG] = OrderRequest(
                    instrument, side, size, OrderType.LIMIT, limit_price=limit, tif="GTC",
                    tag=TAKE_TAG,
                )  # fmt: skip
        return wanted
