"""Rolling a futures position from month to month, in backtests and live, and a trend follower.

A strategy that trades "the future" (ES, CL) holds one contract month after another. A
:class:`FutureRoller`, given the chain of contract months and a roll rule
(:class:`~ibkrfw.data.DaysBeforeExpiry`, :class:`~ibkrfw.data.VolumeCrossover`), knows the
contract to trade (:attr:`FutureRoller.current`), rolls the position on the rule's bar as one
all-or-nothing pair of orders (:meth:`Context.submit_together <ibkrfw.Context.submit_together>`),
and gives the back-adjusted closes of the contracts held (:meth:`FutureRoller.closes`) for
signals. :class:`FuturesTrend` is a ready moving-average trend follower built on it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Final, Literal, final

import attrs
import numpy as np
import pandas as pd
from typing_extensions import override

from ibkrfw.data.futures import DaysBeforeExpiry, RollRule, VolumeCrossover
from ibkrfw.errors import ConfigError
from ibkrfw.model.data import Bar
from ibkrfw.model.events import OrderEvent
from ibkrfw.model.instruments import Future
from ibkrfw.model.orders import Order, OrderRequest, OrderStatus, OrderType, Side
from ibkrfw.risk.protect import waits_to_exit
from ibkrfw.strategies._params import int_at_least
from ibkrfw.strategy import Context, Strategy

__all__ = ["FutureRoller", "FuturesTrend", "RollAttempt"]

log = logging.getLogger(__name__)

_ZERO: Final = Decimal(0)

RollStatus = Literal["sent", "done", "refused", "undone", "switched", "finished"]


@final
@attrs.frozen
class RollAttempt:
    """One roll the :class:`FutureRoller` made or tried, and how it ended.

    Args:
        ts_ns: When it was decided (the roll bar's time), UTC nanoseconds.
        from_contract: The month rolled out of.
        to_contract: The month rolled into.
        quantity: The signed quantity held in ``from_contract`` (0: nothing to roll).
        gap: The new month's close minus the old one's on the roll bar.
        status: ``"sent"`` (both orders working), ``"done"`` (both filled), ``"refused"``
            (denied before anything was sent), ``"undone"`` (a leg was rejected or cancelled:
            the other was cancelled and what it had filled reversed), ``"switched"`` (no
            position: only the contract traded changed), ``"finished"`` (a roll interrupted by
            a restart was completed: the old month's leftover closed).
        close_order_id: The engine id of the order closing ``from_contract``, if any.
        open_order_id: The engine id of the order opening ``to_contract``, if any.
        price_difference: Once done: the opening fill's average price minus the closing
            one's (what the roll cost in points, per contract, for a long position).
        moved: The ids of the working orders on the old month cancelled and placed again on
            the new one (their prices shifted by ``gap``).
        reason: Why it was refused or undone.
    """

    ts_ns: int
    from_contract: Future
    to_contract: Future
    quantity: Decimal
    gap: float
    status: RollStatus
    close_order_id: int | None = None
    open_order_id: int | None = None
    price_difference: Decimal | None = None
    moved: tuple[int, ...] = ()
    reason: str = ""

    @property
    def timestamp(self) -> pd.Timestamp:
        """``ts_ns`` as a UTC :class:`pandas.Timestamp`."""
        return pd.Timestamp(self.ts_ns, tz="UTC")


def _chain(contracts: object) -> tuple[Future, ...]:
    if isinstance(contracts, Future) or not isinstance(contracts, Iterable):
        raise ConfigError(
            f"FutureRoller: give the chain of contract months as a list of Future, got "
            f"{contracts!r}"
        )
    chain = list(contracts)
    if not chain:
        raise ConfigError("FutureRoller: give the chain of contract months (one Future at least)")
    for contract in chain:
        if not isinstance(contract, Future):
            raise ConfigError(
                f"FutureRoller: {contract!r} is not a Future; give the contract months, e.g. "
                "[Future('ES', expiry='20261218', exchange='CME'), ...]"
            )
    chain.sort(key=lambda c: (c.contract_month, c.expiry))
    first = chain[0]
    for contract in chain[1:]:
        if (contract.symbol, contract.currency) != (first.symbol, first.currency):
            raise ConfigError(
                f"FutureRoller: {contract.id} is not of the same future as {first.id}; give "
                "the months of one symbol and currency"
            )
        if contract.multiplier != first.multiplier:  # a roll keeps the number of contracts
            raise ConfigError(
                f"FutureRoller: {contract.id} has a multiplier of {contract.multiplier}, "
                f"{first.id} of {first.multiplier}: give every month its multiplier "
                "(Future(..., multiplier=...)); a roll keeps the number of contracts, so the "
                "months must be of one size"
            )
    if len(set(chain)) != len(chain):
        raise ConfigError(f"FutureRoller: a contract is given twice in {[c.id for c in chain]}")
    return tuple(chain)


class FutureRoller:
    """Hold "the continuous future": trade the current month, roll into the next on a rule.

    Use it from a strategy: call :meth:`update` once per time stamp (from ``on_slice``, after
    every month's bar is in), :meth:`on_order` from ``on_order``, and trade through
    :meth:`order_target` (or :attr:`current`). Every month of the chain needs a feed in the run:
    the rule compares the front month with the next one on the bars both have.

    **The roll.** On the bar where ``rule`` fires (as :func:`~ibkrfw.data.roll_schedule` would
    decide on the bars seen so far), the roller sends two market orders with
    :meth:`Context.submit_together <ibkrfw.Context.submit_together>`: one closing the position
    in the expiring month, one opening the same signed quantity in the next. Both are checked by
    the risk rules before either is sent: if one is denied, neither is sent, the attempt is
    ``"refused"`` (logged as a warning, with the rule's reason) and tried again on the next bar
    while the rule still fires. If the broker rejects or cancels one leg, the other is cancelled
    and what it filled is reversed: the attempt is ``"undone"``, the position is back in the old
    month, and the roll is tried again on the next bar. With no position, only
    :attr:`current` changes (``"switched"``). The roll's orders fill on the bar after the roll
    bar, so a rule that has not fired by the day before the front's last trading day rolls
    then (and ``DaysBeforeExpiry(0)`` is refused). A front that expires unrolled (its rolls
    refused until then) leaves :attr:`current` for the next month (``"switched"``, the
    reason saying so): a backtest's broker has settled what was held.

    **Working orders on the old month.** The strategy's own working orders on the old month
    (stops, limits, a filled bracket's exits) are cancelled when the roll is sent and placed
    again on the new month, their prices shifted by the gap (the new month's close minus the
    old one's on the roll bar, rounded to the tick), a bracket's exits as an OCA pair of their
    own. A :class:`~ibkrfw.risk.Protection`'s exits are the engine's: it takes them off the old
    month when that position closes and places them on the new one when it opens.

    **After a restart** (live) the roller starts from the positions the broker reports: one
    month held is :attr:`current`; several held (a roll interrupted with its opening leg
    filled) keeps the latest and closes the others (``"finished"``), so nothing stays doubled.

    Args:
        contracts: The contract months, in any order (taken by contract month).
        rule: When to roll.
        tag: The ``tag`` (IB's ``orderRef``) of the roll's orders.
        lookback: Bars a rule of your own is shown (the built-in rules need 2, or ``days + 1``).

    Raises:
        ConfigError: for an empty or mixed chain (months of other symbols, currencies or
            multipliers), a rule that is not a
            :class:`~ibkrfw.data.RollRule`, a rule on open interest (bars in a run carry none),
            or a ``lookback`` below 2.

    Example:
        >>> from ibkrfw import Future
        >>> from ibkrfw.data import DaysBeforeExpiry
        >>> roller = FutureRoller(
        ...     [Future("ES", expiry="20270319", exchange="CME"),
        ...      Future("ES", expiry="20261218", exchange="CME")],
        ...     DaysBeforeExpiry(5),
        ... )
        >>> roller.current.local_symbol
        'ESZ6'
    """

    def __init__(
        self,
        contracts: Iterable[Future],
        rule: RollRule,
        *,
        tag: str = "roll",
        lookback: int = 20,
    ) -> None:
        self.contracts: tuple[Future, ...] = _chain(contracts)
        """The contract months, by contract month."""
        if not isinstance(rule, RollRule):
            raise ConfigError(
                f"FutureRoller(rule={rule!r}): give a RollRule, e.g. DaysBeforeExpiry(5) or "
                "VolumeCrossover(days=2)"
            )
        if isinstance(rule, VolumeCrossover) and rule.column != "volume":
            raise ConfigError(
                "FutureRoller: VolumeCrossover(column='open_interest') needs open interest in "
                "the bars, which the bars of a run do not carry; roll on 'volume' or by "
                "DaysBeforeExpiry"
            )
        if isinstance(rule, DaysBeforeExpiry) and rule.days < 1:
            raise ConfigError(
                "FutureRoller: DaysBeforeExpiry(0) rolls on the last trading day, and the "
                "roll's orders fill on the bar after it, when the month has expired; give "
                "DaysBeforeExpiry(1) or more"
            )
        if isinstance(lookback, bool) or not isinstance(lookback, int) or lookback < 2:
            raise ConfigError(
                f"FutureRoller(lookback={lookback!r}): give a whole number, 2 or more"
            )
        if not isinstance(tag, str) or not tag:
            raise ConfigError(f"FutureRoller(tag={tag!r}): give a non-empty text")
        self.rule: RollRule = rule
        """When to roll."""
        self.tag = tag
        """The tag of the roll's orders."""
        if isinstance(rule, DaysBeforeExpiry):
            self._window = 2
        elif isinstance(rule, VolumeCrossover):
            self._window = rule.days + 1
        else:
            self._window = lookback
        self.rolls: list[RollAttempt] = []
        """Every roll made or tried, oldest first."""
        self._index = 0
        self._first = 0  # the month held first (the roller may start later in the chain)
        self._started = False
        self._held_from = 0  # ts_ns from which the current month is held
        self._decided = -1  # the last time stamp a roll was decided on
        self._legs: dict[int, int] = {}  # order id of a working roll's leg -> attempt index
        self._undo: dict[int, int] = {}  # order id of an undoing order -> attempt index
        self._starts: list[tuple[int, float]] = []  # (roll bar ts_ns, gap) of the rolls made

    # --- what the strategy reads ------------------------------------------------------------
    @property
    def current(self) -> Future:
        """The month to trade now (the front until the roll is sent, then the next)."""
        return self.contracts[self._index]

    @property
    def next(self) -> Future | None:
        """The month the next roll goes into (None after the last)."""
        i = self._index + 1
        return self.contracts[i] if i < len(self.contracts) else None

    @property
    def rolling(self) -> bool:
        """Whether a roll's orders (or the orders undoing one) are working."""
        return bool(self._legs or self._undo)

    def quantity(self, ctx: Context) -> Decimal:
        """Return the signed quantity held across every month of the chain."""
        return sum((ctx.position(c).quantity for c in self.contracts), _ZERO)

    def closes(self, ctx: Context, n: int) -> np.ndarray:
        """Return the last ``n`` closes of the months held, back-adjusted by difference.

        The series is that of :func:`~ibkrfw.data.continuous_series` with
        ``adjust="difference"`` up to now, built from the bars seen: each earlier month's
        closes, over the bars it was held, plus the gaps of the rolls after them. Fewer than
        ``n`` when fewer bars have been seen.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"FutureRoller.closes(n={n!r}): give a whole number, 1 or more")
        pieces: list[np.ndarray] = []
        want = n
        shift = 0.0
        bounds = [ts for ts, _ in self._starts]
        gaps = [gap for _, gap in self._starts]
        self._start(ctx)
        for k in range(len(self._starts), -1, -1):
            contract = self.contracts[self._first + k]
            history = ctx.history(contract)
            ts = history.ts_ns
            close = history.close
            start = bounds[k - 1] if k > 0 else None
            end = bounds[k] if k < len(bounds) else None
            mask = np.ones(len(ts), dtype=bool)
            if start is not None:
                mask &= ts >= start
            if end is not None:
                mask &= ts < end
            held = close[mask][-want:] + shift
            pieces.append(held)
            want -= len(held)
            if want <= 0 or k == 0:
                break
            shift += gaps[k - 1]
        return np.concatenate(pieces[::-1]) if pieces else np.empty(0)

    # --- what the strategy calls ------------------------------------------------------------
    def order_target(self, ctx: Context, quantity: Decimal | int, **kwargs: object) -> Order | None:
        """Trade :attr:`current` so that the chain holds ``quantity`` (signed); None if held.

        Working market orders on the chain count toward the target; stops and limits do not
        (they wait for a price). Nothing is sent while a roll is working (:attr:`rolling`): the
        target is met by the roll, and the next call after it trades what differs. Options as for
        :meth:`Context.buy <ibkrfw.Context.buy>`.
        """
        if isinstance(quantity, bool) or not isinstance(quantity, int | Decimal):
            raise ConfigError(
                f"FutureRoller.order_target(quantity={quantity!r}): give a whole number of "
                "contracts (an int or a Decimal), negative for short"
            )
        self._start(ctx)
        if self.rolling:
            return None
        target = Decimal(quantity)
        held = self.quantity(ctx)
        pending = sum(
            (
                o.side.sign * o.remaining
                for c in self.contracts
                for o in ctx.open_orders(c)
                if o.request.order_type is OrderType.MARKET
            ),
            _ZERO,
        )
        delta = target - held - pending
        if not delta:
            return None
        send = ctx.buy if delta > 0 else ctx.sell
        return send(self.current, abs(delta), **kwargs)

    def update(self, ctx: Context) -> RollAttempt | None:
        """Roll if the rule fires on the latest bars; return the attempt made, if any.

        Call it once per time stamp, after every month's bar of it is in (``on_slice``).
        """
        self._start(ctx)
        if self.rolling:
            return None
        front, nxt = self.current, self.next
        if nxt is None:
            return None
        now = ctx.now_ns
        if now <= self._decided:
            return None
        if front.last_trade_date and front.days_to_expiry(now) < 0:
            return self._expired(ctx, front, nxt, now)
        fired = self._fires(ctx, front, nxt, now)
        if fired is None:
            return None
        self._decided = now
        return self._roll(ctx, front, nxt, *fired)

    def on_order(self, ctx: Context, order: Order, event: OrderEvent) -> RollAttempt | None:
        """Follow the roll's orders; return the attempt when it ends (done or undone)."""
        index = self._legs.get(order.order_id)
        if index is not None:
            return self._leg_changed(ctx, index)
        index = self._undo.get(order.order_id)
        if index is not None and order.status.is_terminal:
            del self._undo[order.order_id]
            if order.remaining or order.filled_quantity != order.quantity:
                attempt = self.rolls[index]
                reason = f"{attempt.reason}; undoing order {order.order_id} ended {order.status}"
                self.rolls[index] = attrs.evolve(attempt, reason=reason)
                ctx.log.error("roll of %s not undone: %s", attempt.from_contract.id, reason)
            return self.rolls[index]
        return None

    # --- inside -----------------------------------------------------------------------------
    def _start(self, ctx: Context) -> None:
        if self._started:
            return
        self._started = True
        missing = [c.id for c in self.contracts if c not in ctx.instruments]
        if missing:
            raise ConfigError(
                f"FutureRoller: no feed of this run delivers {missing}; give a feed for every "
                "month of the chain (the rule compares the front month with the next)"
            )
        held = [i for i, c in enumerate(self.contracts) if ctx.position(c).quantity]
        if held:
            self._index = held[-1]
        else:
            for i, contract in enumerate(self.contracts):
                if not contract.last_trade_date or contract.days_to_expiry(ctx.now_ns) >= 0:
                    self._index = i
                    break
        self._first = self._index
        self._held_from = ctx.now_ns
        for i in held[:-1]:  # a roll interrupted after its opening leg filled: finish it
            old = self.contracts[i]
            qty = ctx.position(old).quantity
            side = Side.SELL if qty > 0 else Side.BUY
            order = ctx.submit(OrderRequest(old, side, abs(qty), OrderType.MARKET, tag=self.tag))
            attempt = RollAttempt(
                ts_ns=ctx.now_ns,
                from_contract=old,
                to_contract=self.current,
                quantity=qty,
                gap=float("nan"),
                status="finished" if order.status is not OrderStatus.DENIED else "refused",
                close_order_id=order.order_id,
                reason=f"{old.id} and {self.current.id} both held at the start: the old month "
                "closed"
                + (f" (denied: {order.reason})" if order.status is OrderStatus.DENIED else ""),
            )
            self.rolls.append(attempt)
            ctx.log.warning("roll finished at the start: %s", attempt.reason)

    def _fires(
        self, ctx: Context, front: Future, nxt: Future, now: int
    ) -> tuple[int, float] | None:
        """The roll bar's time and the series' gap, if the rule fires on the latest bars.

        The gap is measured as :func:`~ibkrfw.data.roll_schedule` measures it: on the last
        bar held in the front (the common bar before the roll bar).
        """
        fh, nh = ctx.history(front), ctx.history(nxt)
        if len(fh) < 2 or len(nh) < 2:
            return None
        latest = int(fh.ts_ns[-1])
        if int(nh.ts_ns[-1]) != latest:
            return None  # the next month has no bar of this time stamp (yet)
        span = max(self._window * 4, 8)
        f_off, n_off = max(len(fh) - span, 0), max(len(nh) - span, 0)
        common, fi, ni = np.intersect1d(
            fh.ts_ns[f_off:], nh.ts_ns[n_off:], assume_unique=True, return_indices=True
        )
        keep = common >= self._held_from
        common = common[keep][-self._window :]
        fi = fi[keep][-self._window :] + f_off
        ni = ni[keep][-self._window :] + n_off
        if len(common) < 2:
            return None
        gap = float(nh.close[ni[-2]] - fh.close[fi[-2]])
        if front.last_trade_date and front.days_to_expiry(latest) <= 1:
            return latest, gap  # the day before the last: roll now, whatever the rule
        index = pd.DatetimeIndex(pd.to_datetime(common, utc=True))
        frames = [
            pd.DataFrame(
                {
                    "open": h.open[rows],
                    "high": h.high[rows],
                    "low": h.low[rows],
                    "close": h.close[rows],
                    "volume": h.volume[rows],
                },
                index=index,
            )
            for h, rows in ((fh, fi), (nh, ni))
        ]
        at = self.rule.roll_at(front, frames[0], nxt, frames[1])
        return (latest, gap) if at is not None else None

    def _roll(
        self, ctx: Context, front: Future, nxt: Future, now: int, series_gap: float
    ) -> RollAttempt:
        qty = ctx.position(front).quantity
        gap = float(ctx.history(nxt).close[-1] - ctx.history(front).close[-1])
        if not qty:
            attempt = RollAttempt(now, front, nxt, qty, gap, "switched")
            self._switch(now, series_gap)
            self.rolls.append(attempt)
            ctx.log.info("roll: nothing held in %s; now trading %s", front.id, nxt.id)
            return attempt
        closing = Side.SELL if qty > 0 else Side.BUY
        size = abs(qty)
        legs = ctx.submit_together(
            [
                OrderRequest(front, closing, size, OrderType.MARKET, tag=self.tag),
                OrderRequest(nxt, _other(closing), size, OrderType.MARKET, tag=self.tag),
            ],
            f"roll of {qty} {front.local_symbol or front.id} into {nxt.local_symbol or nxt.id}",
        )
        close, open_ = legs
        if close.status is OrderStatus.DENIED:
            attempt = RollAttempt(
                now, front, nxt, qty, gap, "refused", close.order_id, open_.order_id,
                reason=close.reason or open_.reason,
            )  # fmt: skip
            self.rolls.append(attempt)
            ctx.log.warning("roll of %s refused: %s", front.id, attempt.reason)
            return attempt
        moved = self._move_orders(ctx, front, nxt, gap)
        attempt = RollAttempt(
            now, front, nxt, qty, gap, "sent", close.order_id, open_.order_id, moved=moved
        )
        self.rolls.append(attempt)
        index = len(self.rolls) - 1
        self._legs[close.order_id] = index
        self._legs[open_.order_id] = index
        self._switch(now, series_gap)
        ctx.log.info(
            "roll of %s %s into %s sent (orders %d and %d), gap %+.4g",
            qty, front.id, nxt.id, close.order_id, open_.order_id, gap,
        )  # fmt: skip
        return attempt

    def _expired(self, ctx: Context, front: Future, nxt: Future, now: int) -> RollAttempt:
        """The front expired unrolled (a roll refused or undone until then): go on in the next."""
        qty = ctx.position(front).quantity
        reason = f"{front.id} expired before it could be rolled" + (
            f"; {qty} still held in it" if qty else " (the broker settled what was held)"
        )
        attempt = RollAttempt(now, front, nxt, qty, float("nan"), "switched", reason=reason)
        self.rolls.append(attempt)
        self._switch(now, 0.0)
        self._decided = now
        ctx.log.warning("roll: %s; now trading %s", reason, nxt.id)
        return attempt

    def _switch(self, now: int, gap: float) -> None:
        self._index += 1
        self._held_from = now
        self._starts.append((now, gap))

    def _move_orders(self, ctx: Context, front: Future, nxt: Future, gap: float) -> tuple[int, ...]:
        moved: list[int] = []
        olds = [
            o
            for o in ctx.open_orders(front)
            if o.order_id not in self._legs
            and not (o.request.parent_id is None and waits_to_exit(o.request))  # Protection's
            and o.request.tag != self.tag
        ]
        for old in olds:
            ctx.cancel(old)
        for old in olds:
            req = old.request

            group = req.oca_group or (
                f"bracket-{req.parent_id}" if req.parent_id is not None else ""
            )
            new = attrs.evolve(
                req,
                instrument=nxt,
                quantity=old.remaining or req.quantity,
                limit_price=_shifted(nxt, req.limit_price, gap),
                stop_price=_shifted(nxt, req.stop_price, gap),
                parent_id=None,
                oca_group=f"{group}-rolled" if group else "",
            )
            placed = ctx.submit(new)
            moved.append(old.order_id)
            if placed.status is OrderStatus.DENIED:
                ctx.log.warning(
                    "roll: order %d on %s not placed again on %s: %s",
                    old.order_id, front.id, nxt.id, placed.reason,
                )  # fmt: skip
        return tuple(moved)

    def _leg_changed(self, ctx: Context, index: int) -> RollAttempt | None:
        attempt = self.rolls[index]
        close = ctx.order(attempt.close_order_id if attempt.close_order_id is not None else -1)
        open_ = ctx.order(attempt.open_order_id if attempt.open_order_id is not None else -1)
        if close is None or open_ is None:  # not a roll's legs: nothing to follow
            return None
        if close.status is OrderStatus.FILLED and open_.status is OrderStatus.FILLED:
            for leg in (close, open_):
                self._legs.pop(leg.order_id, None)
            difference = (
                open_.avg_fill_price - close.avg_fill_price
                if open_.avg_fill_price is not None and close.avg_fill_price is not None
                else None
            )
            attempt = attrs.evolve(attempt, status="done", price_difference=difference)
            self.rolls[index] = attempt
            ctx.log.info(
                "rolled %s %s at %s into %s at %s (difference %s)",
                attempt.quantity, close.instrument.id, close.avg_fill_price,
                open_.instrument.id, open_.avg_fill_price, attempt.price_difference,
            )  # fmt: skip
            return attempt
        failed = next(
            (
                leg
                for leg in (close, open_)
                if leg.status.is_terminal and leg.status is not OrderStatus.FILLED
            ),
            None,
        )
        if failed is None:
            return None
        other = open_ if failed is close else close
        if attempt.status == "sent":
            reason = (
                f"order {failed.order_id} ({failed.side} {failed.instrument.id}) ended "
                f"{failed.status}: {failed.reason or 'no reason given'}"
            )
            attempt = attrs.evolve(attempt, status="undone", reason=reason)
            self.rolls[index] = attempt
            ctx.log.warning("roll of %s failed, undoing it: %s", attempt.from_contract.id, reason)
            self._index -= 1  # back to the old month
            self._starts.pop()
            self._held_from = attempt.ts_ns
            self._decided = attempt.ts_ns  # tried again on the next bar
        if other.is_active:
            ctx.cancel(other)
            return None  # undone once the other leg has ended
        for leg in (close, open_):
            self._legs.pop(leg.order_id, None)
        undo = [
            OrderRequest(leg.instrument, _other(leg.side), leg.filled_quantity, tag=self.tag)
            for leg in (close, open_)
            if leg.filled_quantity
        ]
        if undo:
            for order in ctx.submit_together(
                undo, f"undoing the roll of {attempt.from_contract.id}"
            ):
                if order.status is OrderStatus.DENIED:
                    attempt = attrs.evolve(
                        attempt, reason=f"{attempt.reason}; not undone: {order.reason}"
                    )
                    self.rolls[index] = attempt
                    ctx.log.error("roll not undone: %s", order.reason)
                else:
                    self._undo[order.order_id] = index
        return attempt


@final
@attrs.define
class FuturesTrend(Strategy):
    """Follow the trend of a continuous future: long above its slow average, short below.

    Signals come from the back-adjusted closes of the months held
    (:meth:`FutureRoller.closes`); orders go to the real month
    (:attr:`FutureRoller.current`), which a :class:`FutureRoller` rolls by ``roll_days``
    before each last trading day. Orders are market orders: they fill at the next bar's open.

    Args:
        contracts: The contract months of the future (every one needs a feed).
        fast: Period of the fast average of the closes.
        slow: Period of the slow average (greater than ``fast``).
        contracts_held: How many contracts to hold, long or short.
        long_only: Be flat, not short, below the slow average.
        roll_days: Roll this many calendar days before the front's last trading day.

    Raises:
        ConfigError: if the periods are not whole numbers with ``fast < slow``, the chain is
            not of one future, or ``contracts_held`` is not a whole number of 1 or more.
    """

    contracts: Sequence[Future] = attrs.field(converter=tuple)
    fast: int = attrs.field(default=20, validator=int_at_least(1))
    slow: int = attrs.field(default=60, validator=int_at_least(2))
    contracts_held: int = attrs.field(default=1, validator=int_at_least(1))
    long_only: bool = False
    roll_days: int = attrs.field(default=5, validator=int_at_least(0))
    roller: FutureRoller = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.fast >= self.slow:
            raise ConfigError(f"fast ({self.fast}) must be smaller than slow ({self.slow})")
        self.roller = FutureRoller(self.contracts, DaysBeforeExpiry(self.roll_days))

    @override
    def on_start(self, ctx: Context) -> None:
        """Start with a fresh roller (a strategy object may be run more than once)."""
        self.roller = FutureRoller(self.contracts, DaysBeforeExpiry(self.roll_days))

    @override
    def on_slice(self, ctx: Context, bars: Sequence[Bar]) -> None:
        """Roll if due, then hold the side the averages give."""
        self.roller.update(ctx)
        closes = self.roller.closes(ctx, self.slow)
        if len(closes) < self.slow:
            return
        up = closes[-self.fast :].mean() > closes.mean()
        side = 1 if up else (0 if self.long_only else -1)
        self.roller.order_target(ctx, side * self.contracts_held)

    @override
    def on_order(self, ctx: Context, order: Order, event: OrderEvent) -> None:
        """Let the roller follow its orders."""
        self.roller.on_order(ctx, order, event)


def _shifted(contract: Future, price: Decimal | None, gap: float) -> Decimal | None:
    return None if price is None else contract.round_price(price + Decimal(repr(gap)))


def _other(side: Side) -> Side:
    return Side.SELL if side is Side.BUY else Side.BUY
