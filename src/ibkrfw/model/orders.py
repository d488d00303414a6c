"""Order requests, orders and their status."""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from decimal import Decimal, DecimalException
from typing import TYPE_CHECKING, final

import attrs

from ibkrfw.errors import OrderError
from ibkrfw.model._decimal import DecimalLike, to_decimal
from ibkrfw.model._time import to_timestamp
from ibkrfw.model.algos import ALGO_ORDER_TYPES, Algo, check_algo
from ibkrfw.model.instruments import Instrument

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "Order",
    "OrderRequest",
    "OrderStatus",
    "OrderType",
    "Side",
    "TimeInForce",
    "build_request",
    "check_request",
]


class Side(enum.StrEnum):
    """The direction of an order, as IB spells it."""

    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        """``+1`` for BUY, ``-1`` for SELL."""
        return 1 if self is _BUY else -1


class OrderType(enum.StrEnum):
    """How an order is priced; values are IB's ``orderType`` codes.

    On-close orders are types of their own, as at IB (``MOC``, ``LOC``, DAY orders only);
    on-open orders are MARKET or LIMIT orders with time in force ``OPG``.
    """

    MARKET = "MKT"
    LIMIT = "LMT"
    STOP = "STP"
    STOP_LIMIT = "STP LMT"
    TRAILING_STOP = "TRAIL"
    MARKET_ON_CLOSE = "MOC"
    LIMIT_ON_CLOSE = "LOC"


class TimeInForce(enum.StrEnum):
    """How long an order stays working.

    DAY orders expire at the close of the trading session of the first bar they could fill on
    (the next session if that bar is between sessions); GTC orders stay until filled or
    cancelled; IOC orders get one chance (the next bar) and expire otherwise; GTD orders
    expire at ``good_till_ns``; OPG (MARKET or LIMIT only) orders take part in the next
    opening auction, and what does not fill there is cancelled.
    """

    DAY = "DAY"
    GTC = "GTC"
    IOC = "IOC"
    GTD = "GTD"
    OPG = "OPG"


# Enum members bound once: on Python 3.11 each `Side.BUY` in a function is a slow lookup
# (EnumType.__getattr__ routes every class attribute through Python), on the order path.
_LIMIT = OrderType.LIMIT
_LIMIT_ON_CLOSE = OrderType.LIMIT_ON_CLOSE
_MARKET = OrderType.MARKET
_MARKET_ON_CLOSE = OrderType.MARKET_ON_CLOSE
_STOP = OrderType.STOP
_STOP_LIMIT = OrderType.STOP_LIMIT
_TRAILING_STOP = OrderType.TRAILING_STOP
_BUY = Side.BUY
_DAY = TimeInForce.DAY
_GTD = TimeInForce.GTD
_OPG = TimeInForce.OPG


class OrderStatus(enum.StrEnum):
    """Where an order stands in its lifecycle.

    ``PENDING_SUBMIT`` -> ``SUBMITTED`` -> ``PARTIALLY_FILLED`` -> ``FILLED``, or at any point
    before the end ``CANCELLED``, ``REJECTED`` (by the broker), ``EXPIRED``; ``DENIED`` (by a
    risk rule or validation) only from ``PENDING_SUBMIT``, as nothing was sent.
    """

    PENDING_SUBMIT = "PENDING_SUBMIT"
    SUBMITTED = "SUBMITTED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"
    DENIED = "DENIED"
    EXPIRED = "EXPIRED"

    @property
    def is_terminal(self) -> bool:
        """Whether no further change can happen to an order in this status."""
        return self in _TERMINAL


_TERMINAL = frozenset(
    {
        OrderStatus.FILLED,
        OrderStatus.CANCELLED,
        OrderStatus.REJECTED,
        OrderStatus.DENIED,
        OrderStatus.EXPIRED,
    }
)


def _to_side(value: Side | str) -> Side:
    if type(value) is Side:  # the common case; Enum's constructor is slow
        return value
    try:
        return Side(value.upper()) if isinstance(value, str) else Side(value)
    except ValueError:
        raise OrderError(f"side must be 'BUY' or 'SELL', got {value!r}") from None


def _to_type(value: OrderType | str) -> OrderType:
    if type(value) is OrderType:
        return value
    try:
        return OrderType(value)
    except ValueError:
        names = ", ".join(repr(t.value) for t in OrderType)
        raise OrderError(f"order_type must be one of {names}, got {value!r}") from None


def _to_tif(value: TimeInForce | str) -> TimeInForce:
    if type(value) is TimeInForce:
        return value
    try:
        return TimeInForce(value.upper() if isinstance(value, str) else value)
    except ValueError:
        names = ", ".join(t.value for t in TimeInForce)
        raise OrderError(f"tif must be one of {names}, got {value!r}") from None


def _to_quantity(value: DecimalLike) -> Decimal:
    return to_decimal(value, "quantity")


def _limit_price(value: DecimalLike | None) -> Decimal | None:
    return None if value is None else to_decimal(value, "limit_price")


def _stop_price(value: DecimalLike | None) -> Decimal | None:
    return None if value is None else to_decimal(value, "stop_price")


def _trail_amount(value: DecimalLike | None) -> Decimal | None:
    return None if value is None else to_decimal(value, "trail_amount")


def _trail_percent(value: DecimalLike | None) -> Decimal | None:
    return None if value is None else to_decimal(value, "trail_percent")


def _check_ns(_: object, __: attrs.Attribute[int | None], value: object) -> None:
    given = value
    if given is not None and (isinstance(given, bool) or not isinstance(given, int)):
        raise OrderError(
            f"good_till_ns must be UTC epoch nanoseconds as an int (pd.Timestamp(...).value), "
            f"got {type(value).__name__} {value!r}"
        )


def _check_text(_: object, attribute: attrs.Attribute[str], value: object) -> None:
    if not isinstance(value, str):
        raise OrderError(f"{attribute.name} must be a str, got {type(value).__name__} {value!r}")


def _check_parent(_: object, __: attrs.Attribute[int | None], value: object) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise OrderError(
            f"parent_id must be an order id (int) or None, got {type(value).__name__} {value!r}"
        )


def _check_algo(_: object, __: attrs.Attribute[Algo | None], value: object) -> None:
    check_algo(value)


def _check_instrument(_: object, __: attrs.Attribute[Instrument], value: Instrument) -> None:
    if not isinstance(value, Instrument):
        raise OrderError(f"instrument must be an Instrument, got {type(value).__name__}")


@final
@attrs.frozen
class OrderRequest:
    """What a strategy asks for: an order before it has an id or a status.

    Building a request checks only its types; whether it is acceptable (positive quantity,
    prices present and on the tick grid) is checked at submission, and a refusal comes back as
    an :class:`~ibkrfw.OrderDenied` event, never as an exception in the middle of a run.

    Args:
        instrument: What to trade.
        side: BUY or SELL.
        quantity: How many units (shares, contracts, base currency), positive.
        order_type: MARKET, LIMIT, STOP, STOP_LIMIT or TRAILING_STOP.
        limit_price: Required for LIMIT and STOP_LIMIT.
        stop_price: Required for STOP and STOP_LIMIT; for TRAILING_STOP, the initial stop
            (IB's ``trailStopPrice``), which then follows the market.
        trail_amount: For TRAILING_STOP: the distance kept from the best price, in price units.
        trail_percent: For TRAILING_STOP: the distance as a percentage of the best price.
        parent_id: The engine id of a parent order: this order waits until the parent has
            filled (a bracket's exits), and is cancelled if the parent ends unfilled.
        oca_group: One-cancels-all group (IB's ``ocaGroup``, sent with ``ocaType`` 3): a fill
            in one member reduces the others by as much, and a member reduced to nothing is
            cancelled (members of one size, as a bracket's exits: one fills, the rest go).
        tif: Time in force; IB's default, DAY, unless given.
        good_till_ns: Expiry time (UTC ns) for GTD orders.
        tag: Free text carried to IB as ``orderRef``; use it to recognise your orders.
        algo: One of IB's algos (:class:`~ibkrfw.Adaptive`, :class:`~ibkrfw.Vwap`,
            :class:`~ibkrfw.Twap`, :class:`~ibkrfw.ArrivalPrice`) to work a MARKET or LIMIT
            order, sent as IB's ``algoStrategy`` and ``algoParams``; ``None`` for none. A
            backtest simulates it (see the order lifecycle page).
        strategy: The name of the strategy that sent the order when one engine runs several
            (see :class:`~ibkrfw.Sleeve`); empty for a run of one. Set by the engine, which
            attributes the order's fills to it; live, it travels in IB's ``orderRef``, so a
            restart gives each strategy its orders back.

    Raises:
        OrderError: if a value has the wrong type, is NaN, or names no known enum member.
            (The order methods of :class:`~ibkrfw.Context` never raise it: they turn such a
            value into an :class:`~ibkrfw.OrderDenied` event, see
            :func:`~ibkrfw.model.build_request`.)

    Example:
        >>> from ibkrfw import Stock
        >>> OrderRequest.limit(Stock("AAPL"), "BUY", 100, 189.5).limit_price
        Decimal('189.5')
    """

    instrument: Instrument = attrs.field(validator=_check_instrument)
    side: Side = attrs.field(converter=_to_side)
    quantity: Decimal = attrs.field(converter=_to_quantity)
    order_type: OrderType = attrs.field(default=OrderType.MARKET, converter=_to_type)
    limit_price: Decimal | None = attrs.field(default=None, converter=_limit_price)
    stop_price: Decimal | None = attrs.field(default=None, converter=_stop_price)
    tif: TimeInForce = attrs.field(default=TimeInForce.DAY, converter=_to_tif)
    good_till_ns: int | None = attrs.field(default=None, validator=_check_ns)
    tag: str = attrs.field(default="", validator=_check_text)
    trail_amount: Decimal | None = attrs.field(default=None, converter=_trail_amount)
    trail_percent: Decimal | None = attrs.field(default=None, converter=_trail_percent)
    parent_id: int | None = attrs.field(default=None, validator=_check_parent)
    oca_group: str = attrs.field(default="", validator=_check_text)
    algo: Algo | None = attrs.field(default=None, validator=_check_algo)
    strategy: str = attrs.field(default="", validator=_check_text)

    @classmethod
    def market(
        cls, instrument: Instrument, side: Side | str, quantity: DecimalLike, **kwargs: object
    ) -> OrderRequest:
        """Build a market order request (extra keywords: ``tif``, ``tag``...)."""
        return cls(instrument, side, quantity, _MARKET, **kwargs)  # type: ignore[arg-type]

    @classmethod
    def limit(
        cls,
        instrument: Instrument,
        side: Side | str,
        quantity: DecimalLike,
        price: DecimalLike,
        **kwargs: object,
    ) -> OrderRequest:
        """Build a limit order request at ``price``."""
        return cls(instrument, side, quantity, _LIMIT, limit_price=price, **kwargs)  # type: ignore[arg-type]

    @classmethod
    def stop(
        cls,
        instrument: Instrument,
        side: Side | str,
        quantity: DecimalLike,
        price: DecimalLike,
        **kwargs: object,
    ) -> OrderRequest:
        """Build a stop (market) order request triggered at ``price``."""
        return cls(instrument, side, quantity, _STOP, stop_price=price, **kwargs)  # type: ignore[arg-type]

    @property
    def signed_quantity(self) -> Decimal:
        """The quantity, negative for a sale."""
        return self.quantity if self.side is _BUY else -self.quantity

    @classmethod
    def _trusted_market(cls, instrument: Instrument, side: Side, quantity: Decimal) -> OrderRequest:
        # The per-order hot path of Context: values are already of the right types, so skip
        # the converters. Equal to OrderRequest(instrument, side, quantity) (a test says so).
        request = object.__new__(cls)
        setattr_ = object.__setattr__
        setattr_(request, "instrument", instrument)
        setattr_(request, "side", side)
        setattr_(request, "quantity", quantity)
        setattr_(request, "order_type", _MARKET)
        setattr_(request, "limit_price", None)
        setattr_(request, "stop_price", None)
        setattr_(request, "tif", _DAY)
        setattr_(request, "good_till_ns", None)
        setattr_(request, "tag", "")
        setattr_(request, "trail_amount", None)
        setattr_(request, "trail_percent", None)
        setattr_(request, "parent_id", None)
        setattr_(request, "oca_group", "")
        setattr_(request, "algo", None)
        setattr_(request, "strategy", "")
        return request


def _validated(
    check: Callable[[object, attrs.Attribute[object], object], None], name: str
) -> Callable[[object], object]:
    def run(value: object) -> object:
        check(None, attrs.fields_dict(OrderRequest)[name], value)
        return value

    return run


# Each field an order method takes, checked on its own (to name every malformed one): the
# converters and validators of OrderRequest.
_FIELD_CHECKS: dict[str, Callable[[object], object]] = {
    "side": _to_side,  # type: ignore[dict-item]
    "quantity": _to_quantity,  # type: ignore[dict-item]
    "order_type": _to_type,  # type: ignore[dict-item]
    "limit_price": _limit_price,  # type: ignore[dict-item]
    "stop_price": _stop_price,  # type: ignore[dict-item]
    "tif": _to_tif,  # type: ignore[dict-item]
    "good_till_ns": _validated(_check_ns, "good_till_ns"),  # type: ignore[arg-type]
    "tag": _validated(_check_text, "tag"),  # type: ignore[arg-type]
    "trail_amount": _trail_amount,  # type: ignore[dict-item]
    "trail_percent": _trail_percent,  # type: ignore[dict-item]
    "parent_id": _validated(_check_parent, "parent_id"),  # type: ignore[arg-type]
    "oca_group": _validated(_check_text, "oca_group"),  # type: ignore[arg-type]
    "algo": _validated(_check_algo, "algo"),  # type: ignore[arg-type]
    "strategy": _validated(_check_text, "strategy"),  # type: ignore[arg-type]
}
_OPTIONS = frozenset(_FIELD_CHECKS) - {"side", "quantity"}


def build_request(
    instrument: Instrument,
    side: object,
    quantity: object,
    options: Mapping[str, object] | None = None,
) -> tuple[OrderRequest, str | None]:
    """Build an order request from a strategy's values, or say why it cannot be built.

    This is how :class:`~ibkrfw.Context` turns what a strategy asks for into a request without
    ever raising in the middle of a run: a malformed value (a NaN or infinite price or
    quantity, a string or ``None`` where a number belongs, an unknown side, order type or time
    in force) gives a stand-in request, built from the values that are well formed (a missing
    side is BUY, a missing quantity 0, a malformed option is left out), and the reason, naming
    each malformed field and its value. The engine records the stand-in as a denied order.

    Args:
        instrument: What to trade.
        side: BUY or SELL, as the strategy gave it.
        quantity: The quantity, as the strategy gave it.
        options: Further fields of :class:`~ibkrfw.OrderRequest` by name (``limit_price``,
            ``tif``...).

    Returns:
        The request and ``None``, or the stand-in and the reason.

    Raises:
        OrderError: if ``instrument`` is not an :class:`~ibkrfw.Instrument` (there is no order
            to deny without one), or ``options`` names no field of
            :class:`~ibkrfw.OrderRequest`.

    Example:
        >>> from ibkrfw import Stock
        >>> request, why = build_request(Stock("AAPL"), "BUY", 10, {"limit_price": float("nan")})
        >>> why, request.limit_price
        ('the order cannot be built: limit_price must be finite, got nan', None)
    """
    if not isinstance(instrument, Instrument):
        raise OrderError(f"instrument must be an Instrument, got {type(instrument).__name__}")
    given = options or {}
    if not given.keys() <= _OPTIONS:
        unknown = sorted(set(given) - _OPTIONS)
        raise OrderError(f"unknown order fields {unknown}; known: {sorted(_FIELD_CHECKS)}")
    try:
        return OrderRequest(instrument, side, quantity, **given), None  # type: ignore[arg-type]
    except OrderError:
        pass
    problems: list[str] = []
    good: dict[str, object] = {}
    for name, value in (("side", side), ("quantity", quantity), *given.items()):
        try:
            _FIELD_CHECKS[name](value)
        except OrderError as exc:
            problems.append(str(exc))
        else:
            good[name] = value
    stand_in = OrderRequest(
        instrument,
        good.pop("side", _BUY),  # type: ignore[arg-type]
        good.pop("quantity", 0),  # type: ignore[arg-type]
        **good,  # type: ignore[arg-type]
    )
    return stand_in, "the order cannot be built: " + "; ".join(problems)


MAX_QUANTITY = Decimal(10) ** 12
"""The largest quantity of one order (a trillion units): beyond it, a sizing mistake."""
MAX_PRICE = Decimal(10) ** 9
"""The largest price of an order: beyond it, a mistake (and beyond exact arithmetic)."""


def check_request(request: OrderRequest) -> str | None:
    """Return why ``request`` cannot be sent as it is, or ``None`` if it can.

    Checks a positive whole-lot quantity up to ``MAX_QUANTITY`` (10**12), the prices its type
    needs (positive, up to ``MAX_PRICE``, 10**9, and on the tick grid) and no price its type
    does not use, and an expiry for GTD.

    Example:
        >>> from ibkrfw import Stock
        >>> check_request(OrderRequest.limit(Stock("AAPL"), "BUY", 10, "189.123"))
        'limit price 189.123 is not a multiple of the tick size 0.01 of AAPL.SMART'
    """
    try:
        return _check_request(request)
    except DecimalException:  # digits beyond what Decimal's context computes exactly
        values = ", ".join(
            f"{name} {value}"
            for name in ("quantity", "limit_price", "stop_price", "trail_amount", "trail_percent")
            if (value := getattr(request, name)) is not None
        )
        return f"the order's numbers cannot be checked exactly ({values}): round them first"


def _check_request(request: OrderRequest) -> str | None:
    inst = request.instrument
    qty = request.quantity
    if qty <= 0:
        return f"quantity must be positive, got {qty}"
    if qty > MAX_QUANTITY:
        return (
            f"quantity {qty} is beyond what any account trades (at most {MAX_QUANTITY:,} units "
            "an order): check how it was sized"
        )
    if qty % inst.lot_size != 0:
        return f"quantity {qty} is not a multiple of the lot size {inst.lot_size} of {inst.id}"
    kind = request.order_type
    if request.algo is not None and kind.value not in ALGO_ORDER_TYPES:
        return (
            f"IB's {request.algo.strategy} algo works MARKET and LIMIT orders only, not "
            f"{kind.name}: send the algo on a MARKET or LIMIT order"
        )
    plain = request.limit_price is None and request.stop_price is None
    if kind is _MARKET and plain and request.trail_amount is request.trail_percent is None:
        if request.tif is _GTD and request.good_till_ns is None:
            return "a GTD order needs good_till_ns"
        return None  # the common case, checked without the loop below
    needs_limit = kind in (_LIMIT, _STOP_LIMIT, _LIMIT_ON_CLOSE)
    needs_stop = kind in (_STOP, _STOP_LIMIT, _TRAILING_STOP)
    trails = [t for t in (request.trail_amount, request.trail_percent) if t is not None]
    if kind is _TRAILING_STOP:
        if len(trails) != 1:
            return "a TRAILING_STOP order needs exactly one of trail_amount and trail_percent"
        if trails[0] <= 0:
            return f"the trail must be positive, got {trails[0]}"
        if trails[0] > MAX_PRICE:
            return f"the trail {trails[0]} is beyond any market's prices (at most {MAX_PRICE:,})"
        if request.trail_percent is not None and request.trail_percent >= 100:
            return f"trail_percent must be below 100, got {request.trail_percent}"
    elif trails:
        return f"a {kind.name} order takes no trail_amount or trail_percent"
    for name, price, needed in (
        ("limit price", request.limit_price, needs_limit),
        ("stop price", request.stop_price, needs_stop),
    ):
        if price is None:
            if needed:
                return f"a {kind.name} order needs a {name}"
            continue
        if not needed:
            return f"a {kind.name} order takes no {name}, got {price}"
        if price <= 0:
            return f"{name} must be positive, got {price}"
        if price > MAX_PRICE:
            return f"{name} {price} is beyond any market's prices (at most {MAX_PRICE:,})"
        if not inst.is_on_tick(price):
            return (
                f"{name} {price} is not a multiple of the tick size {inst.tick_size} of {inst.id}"
            )
    if request.tif is _GTD and request.good_till_ns is None:
        return "a GTD order needs good_till_ns"
    if kind in (_MARKET_ON_CLOSE, _LIMIT_ON_CLOSE):
        if request.tif is not _DAY:
            return f"a {kind.name} order is a DAY order, got time in force {request.tif}"
    elif request.tif is _OPG and kind not in (_MARKET, _LIMIT):
        return f"time in force OPG (on the open) is for MARKET and LIMIT orders, not {kind.name}"
    return None


def check_modification(order: Order, request: OrderRequest) -> str | None:
    """Return why ``request`` cannot replace working ``order`` (IB's rules), or ``None``.

    The order must still be working; its instrument, side and type cannot change; the new
    request must be valid (:func:`check_request`); and the quantity must stay above what has
    filled (a filled quantity cannot be modified away: cancel instead).
    """
    if order.status.is_terminal:
        return f"order {order.order_id} is {order.status}"
    old = order.request
    for name in ("instrument", "side", "order_type"):
        if getattr(request, name) != getattr(old, name):
            return f"the {name} of an order cannot change (from {getattr(old, name)})"
    problem = check_request(request)
    if problem is not None:
        return problem
    if request.quantity <= order.filled_quantity:
        return (
            f"a filled quantity cannot be modified away: {order.filled_quantity} filled, "
            f"{request.quantity} asked (cancel the order instead)"
        )
    return None


@final
@attrs.frozen
class Order:
    """An order known to the engine: the request plus its id, status and fills so far.

    Orders are immutable snapshots; each event produces a new one. Get the current one from
    :meth:`Context.order <ibkrfw.Context.order>` or the ``order`` argument of
    :meth:`Strategy.on_order <ibkrfw.Strategy.on_order>`.
    """

    order_id: int
    request: OrderRequest
    status: OrderStatus
    created_ns: int
    updated_ns: int
    filled_quantity: Decimal = Decimal(0)
    avg_fill_price: Decimal | None = None
    reason: str = ""

    @property
    def instrument(self) -> Instrument:
        """The instrument of the request."""
        return self.request.instrument

    @property
    def side(self) -> Side:
        """The side of the request."""
        return self.request.side

    @property
    def quantity(self) -> Decimal:
        """The requested quantity."""
        return self.request.quantity

    @property
    def remaining(self) -> Decimal:
        """The quantity still to fill (zero once the order is terminal)."""
        if self.status.is_terminal:
            return Decimal(0)
        return self.request.quantity - self.filled_quantity

    @property
    def is_active(self) -> bool:
        """Whether the order may still fill (not in a terminal status)."""
        return not self.status.is_terminal

    @property
    def created(self) -> pd.Timestamp:
        """Creation time as a UTC :class:`pandas.Timestamp`."""
        return to_timestamp(self.created_ns)
