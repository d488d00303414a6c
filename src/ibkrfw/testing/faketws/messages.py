"""The fake's outgoing messages at server version 157, each with its exact field count.

Each function returns the fields of one message, message id first, ready for
:func:`~ibkrfw.testing.faketws.wire.encode_fields`. The layouts are those of
``shared/reference/tws-protocol.md`` section 2.5; the clients drop any message whose count
differs, so tests pin the counts.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import attrs

from ibkrfw.model.instruments import AssetClass, Instrument, Option
from ibkrfw.model.orders import OrderRequest, OrderType, Side
from ibkrfw.testing.faketws.wire import UNSET_DOUBLE, UNSET_INTEGER

__all__ = [
    "WhatIf",
    "account_summary",
    "account_value",
    "commission_report",
    "completed_order",
    "contract_details",
    "exec_details",
    "open_order",
    "order_status",
    "position",
    "historical_bar",
    "historical_update",
    "realtime_bar",
    "portfolio_value",
    "tick_generic",
    "tick_price",
    "tick_size",
    "tick_string",
    "trading_hours",
]

Fields = list[object]

TICK_BID, TICK_ASK, TICK_LAST, TICK_BID_SIZE, TICK_ASK_SIZE = 1, 2, 4, 0, 3
TICK_LAST_SIZE, TICK_HIGH, TICK_LOW, TICK_VOLUME, TICK_CLOSE, TICK_OPEN = 5, 6, 7, 8, 9, 14


def contract_fields(inst: Instrument, con_id: int) -> Fields:
    """The 11 contract fields of openOrder, execDetails and (with the exchange) position."""
    expiry = getattr(inst, "expiry", "")
    multiplier = "" if inst.multiplier == 1 else f"{inst.multiplier.normalize():f}"
    local = inst.symbol if inst.asset_class is not AssetClass.FOREX else inst.id
    strike, right, trading_class = 0.0, "", inst.symbol
    if isinstance(inst, Option):
        strike, right = float(inst.strike), inst.right
        trading_class = inst.trading_class or inst.symbol
        local = occ_symbol(inst)
    return [
        con_id,
        inst.symbol,
        inst.asset_class.value,
        expiry,
        strike,
        right,
        multiplier,
        inst.exchange,
        inst.currency,
        local,
        trading_class,
    ]


def occ_symbol(option: Option) -> str:
    """An option's OCC symbol, IB's local symbol of US options: ``AAPL  261218C00200000``."""
    thousandths = int(option.strike * 1000)
    return f"{option.symbol:<6}{option.expiry[2:]}{option.right}{thousandths:08d}"


def contract_details(
    req_id: int, inst: Instrument, con_id: int, *, today: dt.date | None = None
) -> Fields:
    """Return the fields of contractDetails (10), version 8: 39 fields in all.

    Its trading hours (extended) and liquid hours (regular) are those of the instrument's
    :func:`~ibkrfw.data.calendar_for` for the week from ``today`` (the current date in its
    time zone by default, as TWS lists them), in IB's layout.
    """
    if today is None:
        today = dt.datetime.now(ZoneInfo(inst.timezone)).date()
    trading, liquid = trading_hours(inst, today, extended=True), trading_hours(inst, today)
    expiry = getattr(inst, "expiry", "")
    month = getattr(inst, "contract_month", expiry)  # a future's month is YYYYMM, as IB's
    primary = getattr(inst, "primary_exchange", "") or inst.exchange
    contract = contract_fields(inst, con_id)
    strike, right, multiplier, local, trading_class = (*contract[4:7], *contract[9:11])
    under_symbol, under_type = "", ""
    if isinstance(inst, Option):
        under_symbol, under_type = inst.symbol, "STK" if inst.settlement == "physical" else "IND"
    return [
        10, 8, req_id,
        inst.symbol, inst.asset_class.value, expiry, strike, right, inst.exchange,
        inst.currency, local, inst.symbol, trading_class, con_id, float(inst.tick_size),
        1,  # mdSizeMultiplier (v110-163)
        multiplier, "ACTIVETIM,LMT,MKT,MOC,LOC,STP,STPLMT,TRAIL", f"{inst.exchange},{primary}",
        1, 0, inst.symbol, primary,
        month, "", "", "", inst.timezone, trading, liquid,
        "", 0,  # evRule, evMultiplier
        0,  # secIdList count
        0, under_symbol, under_type, "", "", "",  # aggGroup ... ruleIds, realExp, type
    ]  # fmt: skip


def trading_hours(inst: Instrument, today: dt.date, *, extended: bool = False) -> str:
    """Return IB's ``tradingHours`` text for a week from ``today``, in the instrument's zone.

    The layout of TWS 970 and later: ``20261207:0930-20261207:1600;20261212:CLOSED``.
    """
    from ibkrfw.data.sessions import calendar_for

    zone = ZoneInfo(inst.timezone)
    days = [today + dt.timedelta(days=k) for k in range(7)]
    sessions = calendar_for(inst, extended=extended).sessions(days[0], days[-1])
    opened = {
        dt.date.fromisoformat(str(day)): (int(o), int(c))
        for day, o, c in zip(sessions.day, sessions.open_ns, sessions.close_ns, strict=True)
    }
    spans = {
        day: tuple(dt.datetime.fromtimestamp(ns / 1e9, tz=zone) for ns in bounds)
        for day, bounds in opened.items()
    }
    starting = {start.date() for start, _ in spans.values()}
    parts = []
    for day in days:
        if day in spans:
            start, end = spans[day]
            parts.append(f"{start:%Y%m%d:%H%M}-{end:%Y%m%d:%H%M}")
        elif day not in starting:  # (a forex session starts the evening before its day)
            parts.append(f"{day:%Y%m%d}:CLOSED")
    return ";".join(parts)


@attrs.frozen
class WhatIf:
    """The order state of a what-if answer, as openOrder carries it.

    Args:
        margins: initMarginBefore, maintMarginBefore, equityWithLoanBefore, initMarginChange,
            maintMarginChange, equityWithLoanChange, initMarginAfter, maintMarginAfter,
            equityWithLoanAfter: nine amounts as text ("" when unknown).
        commissions: commission, minCommission, maxCommission (``UNSET_DOUBLE`` when unknown)
            and commissionCurrency.
        warning: The warningText.
    """

    margins: tuple[str, ...] = attrs.field(validator=attrs.validators.max_len(9))
    commissions: tuple[float | str, float | str, float | str, str]
    warning: str = ""


def _price(value: Decimal | None) -> object:
    return "" if value is None else float(value)


def _algo(request: OrderRequest) -> Fields:
    """algoStrategy, and when there is one its parameters' count and (tag, value) pairs."""
    if request.algo is None:
        return [""]
    params = request.algo.params()
    return [request.algo.strategy, len(params), *(text for pair in params for text in pair)]


def open_order(
    order_id: int,
    inst: Instrument,
    con_id: int,
    request: OrderRequest,
    *,
    client_id: int,
    perm_id: int,
    account: str,
    status: str,
    parent_id: int = 0,
    what_if: WhatIf | None = None,
) -> Fields:
    """Return the fields of openOrder (5): 120 fields in all for an order without an algo.

    An algo order carries its algoStrategy, the parameters' count and each (tag, value).
    With ``what_if``, the order is a what-if answer: whatIf 1 and the order state's margin and
    commission estimates.
    """
    kind = request.order_type
    limit = request.limit_price
    aux = request.stop_price
    margins = ("",) * 9 if what_if is None else (*what_if.margins, *("",) * 9)[:9]
    trail_stop = _price(request.stop_price) if kind is OrderType.TRAILING_STOP else ""
    if kind is OrderType.TRAILING_STOP:
        aux = request.trail_amount
    body: Fields = [
        "BUY" if request.side is Side.BUY else "SELL",
        request.quantity,
        kind.value,  # the model's order types are IB's codes
        _price(limit) if limit is not None else 0.0,
        _price(aux) if aux is not None else 0.0,
        str(request.tif),
        request.oca_group or "",
        account,
        "O",  # openClose
        0,  # origin: customer
        request.tag or "",
        client_id,
        perm_id,
        0, 0,  # outsideRth, hidden
        0.0, "",  # discretionaryAmt, goodAfterTime
        "",  # sharesAllocation
        "", "", "", "",  # faGroup, faMethod, faPercentage, faProfile
        "",  # modelCode
        "",  # goodTillDate
        "",  # rule80A
        "",  # percentOffset
        "",  # settlingFirm
        0, "", -1,  # shortSaleSlot, designatedLocation, exemptCode
        0,  # auctionStrategy
        "", "", "", "", "",  # startingPrice, stockRefPrice, delta, stockRangeLower, stockRangeUpper
        "",  # displaySize
        0, 1, 0,  # blockOrder, sweepToFill, allOrNone
        "",  # minQty
        0 if not request.oca_group else 3,  # ocaType
        0, 0, "",  # eTradeOnly, firmQuoteOnly, nbboPriceCap
        parent_id,
        0,  # triggerMethod
        "", 0, "", "",  # volatility, volatilityType, deltaNeutralOrderType, deltaNeutralAuxPrice
        0, 0,  # continuousUpdate, referencePriceType
        trail_stop,
        _price(request.trail_percent),  # trailingPercent
        "", "",  # basisPoints, basisPointsType
        "", 0, 0,  # comboLegsDescrip, comboLegs count, orderComboLegs count
        0,  # smartComboRoutingParams count
        "", "", "",  # scaleInitLevelSize, scaleSubsLevelSize, scalePriceIncrement
        "",  # hedgeType
        0,  # optOutSmartRouting
        "", "",  # clearingAccount, clearingIntent
        0,  # notHeld
        0,  # deltaNeutralContract present
        *_algo(request),  # algoStrategy (and algoParams when there is one)
        0,  # solicited
        0 if what_if is None else 1,  # whatIf
        status,
        *margins,  # before, change, after: initial, maintenance, equity with loan
        *(
            (UNSET_DOUBLE, UNSET_DOUBLE, UNSET_DOUBLE, "")  # commission, min, max, currency
            if what_if is None
            else what_if.commissions
        ),
        "" if what_if is None else what_if.warning,  # warningText
        0, 0,  # randomizeSize, randomizePrice
        0,  # conditions count
        "", "", trail_stop, "", "", "", "", 0,  # adjusted params (trailStopPrice again)
        "", "", "",  # softDollarTier name, value, displayName
        "",  # cashQty
        0, 0,  # dontUseAutoPriceForHedge, isOmsContainer
        0, 0,  # discretionaryUpToLimitPrice, usePriceMgmtAlgo
    ]  # fmt: skip
    return [5, order_id, *contract_fields(inst, con_id), *body]


def order_status(
    order_id: int,
    status: str,
    filled: Decimal,
    remaining: Decimal,
    avg_price: float,
    perm_id: int,
    parent_id: int,
    last_price: float,
    client_id: int,
) -> Fields:
    """Return the fields of orderStatus (3), no version field: 12 fields in all."""
    return [
        3, order_id, status, filled, remaining, avg_price, perm_id, parent_id, last_price,
        client_id, "", 0.0,
    ]  # fmt: skip


def exec_details(
    req_id: int,
    order_id: int,
    inst: Instrument,
    con_id: int,
    *,
    exec_id: str,
    time_text: str,
    account: str,
    side: Side,
    shares: Decimal,
    price: Decimal,
    perm_id: int,
    client_id: int,
    cum_qty: Decimal,
    avg_price: float,
    order_ref: str,
) -> Fields:
    """Return the fields of execDetails (11), no version field: 31 fields in all."""
    return [
        11, req_id, order_id, *contract_fields(inst, con_id),
        exec_id, time_text, account, inst.exchange, "BOT" if side is Side.BUY else "SLD",
        shares, float(price), perm_id, client_id, 0, cum_qty, avg_price, order_ref,
        "", "",  # evRule, evMultiplier
        "",  # modelCode
        1,  # lastLiquidity: added liquidity
    ]  # fmt: skip


def commission_report(
    exec_id: str, commission: Decimal, currency: str, realized: float | None
) -> Fields:
    """Return the fields of commissionReport (59), version 1: 8 fields in all."""
    return [
        59, 1, exec_id, float(commission), currency,
        UNSET_DOUBLE if realized is None else realized, UNSET_DOUBLE, UNSET_INTEGER,
    ]  # fmt: skip


def position(
    account: str, inst: Instrument, con_id: int, quantity: Decimal, avg_cost: float
) -> Fields:
    """Return the fields of position (61), version 3: 16 fields in all."""
    return [61, 3, account, *contract_fields(inst, con_id), quantity, avg_cost]


def account_summary(req_id: int, account: str, tag: str, value: str, currency: str) -> Fields:
    """Return the fields of accountSummary (63), version 1: 7 fields in all."""
    return [63, 1, req_id, account, tag, value, currency]


def tick_price(req_id: int, tick_type: int, price: float, size: int) -> Fields:
    """Return the fields of tickPrice (1), version 6: 7 fields in all (attribute mask 0)."""
    return [1, 6, req_id, tick_type, price, size, 0]


def tick_size(req_id: int, tick_type: int, size: int) -> Fields:
    """Return the fields of tickSize (2), version 6: 5 fields in all."""
    return [2, 6, req_id, tick_type, size]


def historical_bar(date: str, o: float, h: float, lo: float, c: float, volume: int) -> Fields:
    """One bar of historicalData (17): date, open, high, low, close, volume, wap, barCount."""
    return [date, o, h, lo, c, volume, round((h + lo + c) / 3, 6), 1]


def historical_update(
    req_id: int, date: str, o: float, h: float, lo: float, c: float, volume: int
) -> Fields:
    """Return the fields of historicalDataUpdate (90): note its order, open, close, high, low."""
    return [90, req_id, 1, date, o, c, h, lo, round((h + lo + c) / 3, 6), volume]


def realtime_bar(
    req_id: int, epoch: int, o: float, h: float, lo: float, c: float, volume: int
) -> Fields:
    """Return the fields of realtimeBar (50), version 3: 11 fields in all."""
    return [50, 3, req_id, epoch, o, h, lo, c, volume, round((h + lo + c) / 3, 6), 1]


def tick_string(req_id: int, tick_type: int, value: str) -> Fields:
    """Return the fields of tickString (46), version 6: 5 fields in all."""
    return [46, 6, req_id, tick_type, value]


def tick_generic(req_id: int, tick_type: int, value: float) -> Fields:
    """Return the fields of tickGeneric (45), version 6: 5 fields in all."""
    return [45, 6, req_id, tick_type, value]


def account_value(key: str, value: str, currency: str, account: str) -> Fields:
    """Return the fields of updateAccountValue (6), version 2: 6 fields in all."""
    return [6, 2, key, value, currency, account]


def portfolio_value(
    inst: Instrument,
    con_id: int,
    quantity: Decimal,
    price: float,
    avg_cost: float,
    realized: float,
    account: str,
) -> Fields:
    """Return the fields of updatePortfolio (7), version 8: 20 fields in all."""
    contract = contract_fields(inst, con_id)
    contract[7] = getattr(inst, "primary_exchange", "") or inst.exchange  # primaryExchange here
    value = float(quantity) * price * float(inst.multiplier)
    unrealized = value - float(quantity) * avg_cost
    return [7, 8, *contract, quantity, price, value, avg_cost, unrealized, realized, account]


def completed_order(
    inst: Instrument,
    con_id: int,
    request: OrderRequest,
    *,
    perm_id: int,
    account: str,
    status: str,
    filled: Decimal,
    completed_time: str,
    completed_status: str,
) -> Fields:
    """Return the fields of completedOrder (101): 92 fields in all for a plain order.

    An algo order carries its algoStrategy and parameters as in :func:`open_order`.
    """
    kind = request.order_type
    body: Fields = [
        "BUY" if request.side is Side.BUY else "SELL", request.quantity, kind.value,
        _price(request.limit_price) if request.limit_price is not None else 0.0,
        _price(request.stop_price) if request.stop_price is not None else 0.0,
        str(request.tif), request.oca_group or "", account, "O", 0, request.tag or "",
        perm_id, 0, 0, 0.0, "",  # permId, outsideRth, hidden, discretionaryAmt, goodAfterTime
        "", "", "", "",  # FA group, method, percentage, profile
        "", "", "", "", "",  # modelCode, goodTillDate, rule80A, percentOffset, settlingFirm
        0, "", -1,  # shortSaleSlot, designatedLocation, exemptCode
        "", "", "",  # startingPrice, stockRefPrice, delta
        "", "",  # stockRangeLower, stockRangeUpper
        "", 1, 0, "", 0, 0,  # displaySize, sweepToFill, allOrNone, minQty, ocaType, trigger
        "", 0, "", "", 0, 0,  # volatility ... continuousUpdate, referencePriceType
        "", "",  # trailStopPrice, trailingPercent
        "", 0, 0, 0,  # comboLegsDescrip, legs, order legs, smart combo params
        "", "", "",  # scale sizes and increment
        "", "", "", 0, 0,  # hedgeType, clearingAccount, clearingIntent, notHeld, deltaNeutral
        *_algo(request), 0,  # algoStrategy (and algoParams), solicited
        status,
        0, 0,  # randomizeSize, randomizePrice
        0,  # conditions
        "", "",  # trailStopPrice, lmtPriceOffset
        "", 0, 0,  # cashQty, dontUseAutoPriceForHedge, isOmsContainer
        "", filled, 0, 0, "", 0, 0, 0,  # autoCancelDate ... parentPermId
        completed_time, completed_status,
    ]  # fmt: skip
    return [101, *contract_fields(inst, con_id), *body]
