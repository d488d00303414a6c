"""A ledger that keeps tax lots: each opening fill is a lot, closed first in first out or other."""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal
from typing import final

import attrs
from typing_extensions import override

from ibkrfw.core.clock import Clock
from ibkrfw.errors import ConfigError
from ibkrfw.model._decimal import DecimalLike
from ibkrfw.model.fills import Fill, Position
from ibkrfw.model.instruments import Instrument
from ibkrfw.model.orders import Side
from ibkrfw.portfolio.fx import FxRates
from ibkrfw.portfolio.portfolio import DelegatingLedger

__all__ = ["ClosedLot", "Lot", "LotMethod", "TaxLotPortfolio"]

_ZERO = Decimal(0)
_SHARE = Decimal("1e-8")  # commission shares are rounded to this, so they add up exactly


class LotMethod(enum.Enum):
    """Which open lots a closing fill closes first."""

    FIFO = "fifo"
    """The oldest lot first (first in, first out)."""
    LIFO = "lifo"
    """The newest lot first (last in, first out)."""
    HIFO = "hifo"
    """The lot that realises the least profit first (highest cost first), which is a long's
    dearest lot or a short's cheapest, the oldest of equal ones."""


@final
@attrs.frozen
class Lot:
    """An open lot: what one opening fill (or the opening part of a reversing one) holds still.

    Args:
        instrument: What is held.
        side: ``BUY`` for a long lot, ``SELL`` for a short one.
        quantity: The quantity still open, positive.
        open_ns: Time of the fill that opened it.
        open_price: Its price.
        commission: The opening fill's commission still carried by the open quantity.
        fill_id: The id of the opening fill.
    """

    instrument: Instrument
    side: Side
    quantity: Decimal
    open_ns: int
    open_price: Decimal
    commission: Decimal
    fill_id: str


@final
@attrs.frozen
class ClosedLot:
    """Realised profit of (part of) one lot, closed by one fill.

    A fill that closes several lots, or part of one, makes one closed lot per lot it touches;
    the rest of a lot partly closed stays open.

    Args:
        instrument: What was traded.
        side: ``BUY`` for a long lot, ``SELL`` for a short one.
        quantity: The quantity closed, positive.
        open_ns: Time of the lot's opening fill.
        open_price: Its price.
        close_ns: Time of the closing fill.
        close_price: Its price.
        gross_pnl: Profit before commissions, in the instrument's currency (multiplier in).
        commission: The closed quantity's share of the opening and of the closing fill's
            commissions (each shared in proportion to quantity).
        open_fill_id: The id of the lot's opening fill.
        close_fill_id: The id of the closing fill.
    """

    instrument: Instrument
    side: Side
    quantity: Decimal
    open_ns: int
    open_price: Decimal
    close_ns: int
    close_price: Decimal
    gross_pnl: Decimal
    commission: Decimal
    open_fill_id: str
    close_fill_id: str

    @property
    def pnl(self) -> Decimal:
        """Profit after commissions."""
        return self.gross_pnl - self.commission

    @property
    def held_ns(self) -> int:
        """How long the lot was held, in nanoseconds."""
        return self.close_ns - self.open_ns

    @property
    def long_term(self) -> bool:
        """Whether a long lot was held more than one year (UTC dates); never for a short.

        The day after the anniversary of the purchase is the first long-term day (a lot
        bought on 29 February has its anniversary on 28 February).
        """
        if self.side is not Side.BUY:
            return False
        opened = _date(self.open_ns)
        try:
            anniversary = opened.replace(year=opened.year + 1)
        except ValueError:  # 29 February
            anniversary = opened.replace(year=opened.year + 1, day=28)
        return _date(self.close_ns) > anniversary


def _date(ts_ns: int) -> dt.date:
    return dt.datetime.fromtimestamp(ts_ns / 1e9, tz=dt.UTC).date()


@final
class TaxLotPortfolio(DelegatingLedger):
    """A ledger that keeps each opening fill as a lot and realises profit lot by lot.

    Cash, positions, marks and equity are a :class:`~ibkrfw.Portfolio`'s, which it
    wraps (:attr:`~ibkrfw.portfolio.DelegatingLedger.books`): a run's equity curve is the same
    whatever ledger it keeps. What differs is how much profit each closing fill realises: the
    lots it closes are chosen by ``method`` (the oldest first, the newest, or the dearest),
    and :attr:`closed_lots` tells, per lot, when it opened and closed, at which prices, and its
    profit. Over a position from flat to flat every method realises the same total as average
    cost; while it is open, realised plus unrealised profit is the same.

    A position's ``avg_price`` is the cost of its open lots per unit, and its ``realized_pnl``
    the profit its closed lots realised. Commissions are shared in proportion to quantity:
    an opening fill's go with its lot (a lot partly closed gives the closed part its share),
    a closing fill's across the lots it closes (and the lot it opens, if it reverses the
    position). Shares are rounded to 0.00000001 and the last takes what is left, so a fill's
    shares add up to its commission exactly. The engine's protective stops
    (:class:`~ibkrfw.risk.Protection`) still work from the position's average cost.

    Args:
        cash: Starting cash, in the base currency.
        base_currency: The account's currency.
        method: Which lots a closing fill closes first: a :class:`LotMethod` or its value
            (``"fifo"``, ``"lifo"``, ``"hifo"``).
        fx: Exchange rates, as for :class:`~ibkrfw.Portfolio`.
        clock: The clock the rates are read at; required with ``fx``.

    Raises:
        ConfigError: if ``method`` is not one of the lot methods, or as
            :class:`~ibkrfw.Portfolio` does for ``fx`` and ``clock``.

    Example:
        >>> from decimal import Decimal
        >>> from ibkrfw import Fill, Side, Stock
        >>> acme = Stock("ACME")
        >>> pf = TaxLotPortfolio(10_000, method="lifo")
        >>> for i, (side, price) in enumerate([("BUY", 100), ("BUY", 110), ("SELL", 120)]):
        ...     pf.apply_fill(Fill(i, acme, Side(side), Decimal(1), Decimal(price),
        ...                        Decimal(0), i, f"e{i}"))
        >>> [(lot.open_price, lot.gross_pnl) for lot in pf.closed_lots]
        [(Decimal('110'), Decimal('10'))]
        >>> pf.position(acme).avg_price, pf.cash
        (Decimal('100'), Decimal('9910'))
    """

    def __init__(
        self,
        cash: DecimalLike = 0,
        base_currency: str = "USD",
        *,
        method: LotMethod | str = LotMethod.FIFO,
        fx: FxRates | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._method = _method(method)
        super().__init__(cash, base_currency, fx, clock)
        self._lots: dict[Instrument, list[Lot]] = {}
        self._closed: list[ClosedLot] = []
        self._realized: list[Decimal] = []  # per fill, by lots
        self._realized_by: dict[Instrument, Decimal] = {}

    @property
    def method(self) -> LotMethod:
        """Which lots a closing fill closes first."""
        return self._method

    def lots(self, instrument: Instrument | None = None) -> list[Lot]:
        """Return the open lots of ``instrument`` (of every instrument if None), oldest first."""
        if instrument is not None:
            return list(self._lots.get(instrument, ()))
        return [lot for lots in self._lots.values() for lot in lots]

    @property
    def closed_lots(self) -> list[ClosedLot]:
        """Every lot (or part of one) closed so far, in the order they closed."""
        return list(self._closed)

    # --- the lots --------------------------------------------------------------------------
    @property
    @override
    def realized_per_fill(self) -> list[Decimal]:
        return list(self._realized)

    @override
    def position(self, instrument: Instrument) -> Position:
        return self._by_lots(self.books.position(instrument))

    @property
    @override
    def positions(self) -> dict[Instrument, Position]:
        return {inst: self._by_lots(p) for inst, p in self.books.positions.items()}

    def _by_lots(self, position: Position) -> Position:
        inst = position.instrument
        lots = self._lots.get(inst)
        realized = self._realized_by.get(inst, _ZERO)
        if not lots:
            return attrs.evolve(position, realized_pnl=realized)
        size = sum((lot.quantity for lot in lots), _ZERO)
        cost = sum((lot.quantity * lot.open_price for lot in lots), _ZERO)
        return attrs.evolve(position, avg_price=cost / size, realized_pnl=realized)

    @override
    def apply_fill(self, fill: Fill) -> None:
        super().apply_fill(fill)  # first: a fill it refuses leaves the lots untouched
        self._book(fill)

    @override
    def adopt(self, fill: Fill) -> None:
        super().adopt(fill)
        self._book(fill)

    def _book(self, fill: Fill) -> None:
        inst = fill.instrument
        lots = self._lots.setdefault(inst, [])
        size = fill.quantity
        fee = fill.commission
        realized = _ZERO
        left = size  # what the fill has not used yet
        fee_left = fee
        while left and lots and lots[0].side is not fill.side:
            index = self._pick(lots)
            lot = lots[index]
            closing = min(left, lot.quantity)
            left -= closing
            # Shares in proportion to quantity, rounded; the last share is what is left, so
            # the shares add up exactly to the fee.
            close_fee = fee_left if not left else (fee * closing / size).quantize(_SHARE)
            fee_left -= close_fee
            open_fee = (
                lot.commission
                if closing == lot.quantity
                else (lot.commission * closing / lot.quantity).quantize(_SHARE)
            )
            diff = fill.price - lot.open_price
            gross = (diff if lot.side is Side.BUY else -diff) * closing * inst.multiplier
            realized += gross
            closed = ClosedLot(inst, lot.side, closing, lot.open_ns, lot.open_price, fill.ts_ns,
                               fill.price, gross, open_fee + close_fee, lot.fill_id,
                               fill.fill_id)  # fmt: skip
            self._closed.append(closed)
            if closing == lot.quantity:
                del lots[index]
            else:
                lots[index] = attrs.evolve(
                    lot, quantity=lot.quantity - closing, commission=lot.commission - open_fee
                )
        if left:
            lots.append(Lot(inst, fill.side, left, fill.ts_ns, fill.price, fee_left, fill.fill_id))
        self._realized.append(realized)
        if realized or inst in self._realized_by:
            self._realized_by[inst] = self._realized_by.get(inst, _ZERO) + realized

    def _pick(self, lots: list[Lot]) -> int:
        method = self._method
        if method is LotMethod.FIFO:
            return 0
        if method is LotMethod.LIFO:
            return len(lots) - 1
        # HIFO: the least profit realised; the oldest of equal lots (min/max keep the first).
        prices = [lot.open_price for lot in lots]
        best = max(prices) if lots[0].side is Side.BUY else min(prices)
        return prices.index(best)


def _method(method: object) -> LotMethod:
    if isinstance(method, LotMethod):
        return method
    if isinstance(method, str):
        try:
            return LotMethod(method)
        except ValueError:
            pass
    choices = ", ".join(repr(m.value) for m in LotMethod)
    raise ConfigError(
        f"TaxLotPortfolio(method={method!r}): give a LotMethod or one of {choices} "
        "(which lots a closing fill closes first)"
    )
