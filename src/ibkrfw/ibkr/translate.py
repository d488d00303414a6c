"""Model orders and instruments to IB's ``Order`` and ``Contract``, and back: pure functions.

Both ibapi 9.81 and 10.x are supported by feature detection: quantities are ``Decimal`` when
the installed client's ``Order`` uses them, and the 9.81-only ``eTradeOnly`` and
``firmQuoteOnly`` attributes are always switched off (a current TWS refuses them, 10268/10269).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from ibapi.contract import Contract
from ibapi.order import Order
from ibapi.tag_value import TagValue

from ibkrfw.errors import ConfigError, OrderError
from ibkrfw.model._decimal import float_decimal
from ibkrfw.model._time import format_ib_time, parse_ib_time
from ibkrfw.model.algos import algo_from_params
from ibkrfw.model.instruments import _CASH_SETTLED, Forex, Future, Instrument, Option, Stock
from ibkrfw.model.orders import OrderRequest, OrderType, Side, TimeInForce

__all__ = [
    "CASH_SETTLED",
    "from_ib_contract",
    "from_ib_order",
    "to_ib_contract",
    "to_ib_order",
]

_UNSET_DOUBLE = 1.7976931348623157e308
CASH_SETTLED = _CASH_SETTLED
"""Underlyings and trading classes of the cash-settled US index options."""
_DECIMAL_QUANTITIES = not isinstance(Order().totalQuantity, int | float)  # 10.x: Decimal


def to_ib_contract(instrument: Instrument) -> Contract:
    """Return the IB contract of ``instrument``.

    Example:
        >>> c = to_ib_contract(Stock("AAPL", primary_exchange="NASDAQ"))
        >>> (c.symbol, c.secType, c.exchange, c.primaryExchange, c.currency)
        ('AAPL', 'STK', 'SMART', 'NASDAQ', 'USD')
    """
    contract = Contract()
    contract.symbol = instrument.symbol
    contract.secType = instrument.asset_class.value
    contract.exchange = instrument.exchange
    contract.currency = instrument.currency
    if isinstance(instrument, Stock) and instrument.primary_exchange:
        contract.primaryExchange = instrument.primary_exchange
    if isinstance(instrument, Future):
        contract.lastTradeDateOrContractMonth = instrument.expiry
        contract.multiplier = str(instrument.multiplier)
    if isinstance(instrument, Option):
        contract.lastTradeDateOrContractMonth = instrument.expiry
        contract.strike = float(instrument.strike)
        contract.right = instrument.right
        contract.multiplier = f"{instrument.multiplier.normalize():f}"
        contract.tradingClass = instrument.trading_class
    return contract


def from_ib_contract(contract: Contract, *, tick_size: float | None = None) -> Instrument:
    """Return the instrument an IB contract names (stocks, futures, forex and options).

    An option on one of the cash-settled US indexes (SPX, NDX, RUT, VIX...:
    :data:`~ibkrfw.ibkr.translate.CASH_SETTLED`) is read as cash-settled, any other as
    delivering its underlying.

    Args:
        contract: The contract, e.g. from ``contractDetails`` or ``position``.
        tick_size: The contract's minimum tick (``ContractDetails.minTick``), if known.

    Raises:
        ConfigError: for a security type other than STK, FUT, CASH and OPT, or an option
            contract without a valid expiry, strike or right.
    """
    options: dict[str, Any] = {"currency": contract.currency or "USD"}
    if contract.exchange:
        options["exchange"] = contract.exchange
    if tick_size:
        options["tick_size"] = float_decimal(tick_size)
    kind = contract.secType
    if kind == "STK":
        if contract.primaryExchange:
            options["primary_exchange"] = contract.primaryExchange
        return Stock(contract.symbol, **options)
    if kind == "FUT":
        if contract.multiplier:
            options["multiplier"] = contract.multiplier
        # the day only: newer TWS may append the time ("20261218 08:30 CST"), as for options
        expiry = contract.lastTradeDateOrContractMonth.split(" ")[0]
        return Future(contract.symbol, expiry=expiry, **options)
    if kind == "CASH":
        return Forex(contract.symbol, **options)
    if kind == "OPT":
        if contract.multiplier:
            options["multiplier"] = contract.multiplier
        if contract.tradingClass:
            options["trading_class"] = contract.tradingClass
        cash = contract.symbol in CASH_SETTLED or contract.tradingClass in CASH_SETTLED
        return Option(
            contract.symbol,
            expiry=contract.lastTradeDateOrContractMonth[:8],
            strike=float_decimal(contract.strike),
            right=contract.right,
            settlement="cash" if cash else "physical",
            **options,
        )
    raise ConfigError(f"security type {kind!r} is not supported (STK, FUT, CASH and OPT are)")


def to_ib_order(
    request: OrderRequest,
    *,
    order_id: int,
    order_ref: str = "",
    account: str = "",
    parent_id: int = 0,
    transmit: bool = True,
) -> Order:
    """Return the IB order for ``request``.

    Args:
        request: The order.
        order_id: Its IB order id.
        order_ref: Stored with the order at IB (``orderRef``): how reconciliation finds it.
        account: The account to trade, when the login manages several.
        parent_id: The IB id of the parent order (bracket children).
        transmit: False to hold the order in TWS until a later order of its group is sent
            (all but the last order of a bracket).

    """
    order = Order()
    order.orderId = order_id
    order.action = "BUY" if request.side is Side.BUY else "SELL"
    order.totalQuantity = request.quantity if _DECIMAL_QUANTITIES else float(request.quantity)
    order.orderType = request.order_type.value  # the model's values are IB's codes
    order.tif = str(request.tif)
    kind = request.order_type
    if request.limit_price is not None:
        order.lmtPrice = float(request.limit_price)
    if kind in (OrderType.STOP, OrderType.STOP_LIMIT) and request.stop_price is not None:
        order.auxPrice = float(request.stop_price)
    if kind is OrderType.TRAILING_STOP:
        if request.trail_amount is not None:
            order.auxPrice = float(request.trail_amount)
        if request.trail_percent is not None:
            order.trailingPercent = float(request.trail_percent)
        if request.stop_price is not None:
            order.trailStopPrice = float(request.stop_price)
    if request.tif is TimeInForce.GTD and request.good_till_ns is not None:
        order.goodTillDate = format_ib_time(request.good_till_ns)
    if request.oca_group:
        order.ocaGroup = request.oca_group
        order.ocaType = 3  # reduce the others, without blocking: what the simulator does
    if request.algo is not None:  # IB's algoStrategy and algoParams (a TagValue list)
        order.algoStrategy = request.algo.strategy
        order.algoParams = [TagValue(tag, value) for tag, value in request.algo.params()]
    order.orderRef = order_ref or request.tag
    order.account = account
    order.parentId = parent_id
    order.transmit = transmit
    if hasattr(order, "eTradeOnly"):  # ibapi 9.81: its defaults are refused by current TWS
        order.eTradeOnly = False
        order.firmQuoteOnly = False
    return order


def _set(value: float | None) -> Decimal | None:
    if value is None or value == _UNSET_DOUBLE or value != value:
        return None
    return float_decimal(value)


def from_ib_order(instrument: Instrument, order: Order) -> OrderRequest:
    """Return the model request of an IB order (as ``openOrder`` reports it).

    An algo order (``algoStrategy`` and ``algoParams``) comes back with its algo, so that
    reconciliation after a restart keeps it.

    Raises:
        OrderError: for an order type, time in force or algo the model does not have.
    """
    try:
        kind = OrderType(order.orderType)
    except ValueError:
        raise OrderError(f"IB order type {order.orderType!r} has no model counterpart") from None
    try:
        tif = TimeInForce(order.tif or "DAY")
    except ValueError:
        raise OrderError(f"IB time in force {order.tif!r} has no model counterpart") from None
    limit = _set(order.lmtPrice) if kind in (
        OrderType.LIMIT, OrderType.STOP_LIMIT, OrderType.LIMIT_ON_CLOSE
    ) else None  # fmt: skip
    stop = _set(order.auxPrice) if kind in (OrderType.STOP, OrderType.STOP_LIMIT) else None
    trail_amount = trail_percent = None
    if kind is OrderType.TRAILING_STOP:
        trail_percent = _set(order.trailingPercent)
        trail_amount = None if trail_percent is not None else _set(order.auxPrice)
        stop = _set(order.trailStopPrice)
    good_till = None
    if tif is TimeInForce.GTD and order.goodTillDate:
        good_till = parse_ib_time(order.goodTillDate)
    return OrderRequest(
        instrument,
        Side.BUY if order.action == "BUY" else Side.SELL,
        Decimal(str(order.totalQuantity)),
        kind,
        limit_price=limit,
        stop_price=stop,
        tif=tif,
        good_till_ns=good_till,
        tag=order.orderRef or "",
        trail_amount=trail_amount,
        trail_percent=trail_percent,
        oca_group=order.ocaGroup or "",
        algo=algo_from_params(
            order.algoStrategy or "",
            [(p.tag, p.value) for p in order.algoParams or ()],
        ),
    )
