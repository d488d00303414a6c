"""IB algo orders: Adaptive, VWAP, TWAP and Arrival Price, as typed parameters of an order.

Each class holds one of IB's algos (``algoStrategy``) and its parameters (``algoParams``),
checked when it is built against the names and ranges IB documents, so that a wrong value is
an :class:`~ibkrfw.OrderError` here rather than a rejection from TWS. The order carrying an
algo must be a MARKET or LIMIT order (:func:`~ibkrfw.model.check_request` says so otherwise).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import ClassVar, Final, final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from ibkrfw.errors import OrderError
from ibkrfw.model._decimal import DecimalLike, to_decimal

__all__ = [
    "ALGO_ORDER_TYPES",
    "Adaptive",
    "Algo",
    "ArrivalPrice",
    "Twap",
    "Vwap",
    "algo_from_params",
]

ALGO_ORDER_TYPES: Final = ("MKT", "LMT")
"""The IB order types (``orderType``) an algo can work: market and limit orders."""

_PRIORITIES = ("Urgent", "Normal", "Patient")
_RISK_AVERSIONS = ("Get Done", "Aggressive", "Neutral", "Passive")
_TWAP_TYPES = ("Marketable", "Matching Midpoint", "Matching Same Side", "Matching Last")


def _choice(owner: str, name: str, value: object, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise OrderError(
            f"{owner}({name}=...) must be one of {', '.join(map(repr, allowed))}, got {value!r}"
        )


def _pct(owner: str, value: DecimalLike, low: str, high: str) -> Decimal:
    pct = to_decimal(value, f"{owner}.max_pct_vol")
    if not Decimal(low) <= pct <= Decimal(high):
        raise OrderError(
            f"{owner}(max_pct_vol=...) is a fraction of the volume between {low} and {high} "
            f"(IB's range; 0.1 is 10%), got {value!r}"
        )
    return pct


def _time(owner: str, name: str, value: object) -> None:
    """Check an IB algo time, ``"HH:MM:SS Zone"`` (e.g. ``"09:30:00 US/Eastern"``) or ``""``."""
    if not isinstance(value, str):
        raise OrderError(
            f"{owner}({name}=...) must be a str 'HH:MM:SS Zone' (e.g. '09:30:00 US/Eastern') "
            f"or '', got {type(value).__name__} {value!r}"
        )
    if value == "":
        return
    clock, _, zone = value.partition(" ")
    try:
        dt.datetime.strptime(clock, "%H:%M:%S")
        ZoneInfo(zone)
    except (ValueError, ZoneInfoNotFoundError):
        raise OrderError(
            f"{owner}({name}=...) must be 'HH:MM:SS Zone' with an IANA time zone "
            f"(e.g. '09:30:00 US/Eastern'), or '' for IB's default, got {value!r}"
        ) from None


def _vwap_pct(value: DecimalLike) -> Decimal:
    return _pct("Vwap", value, "0.01", "0.5")


def _arrival_pct(value: DecimalLike) -> Decimal:
    return _pct("ArrivalPrice", value, "0.01", "0.5")  # TWS's guide: 1% to 50% of the ADV


def _time_of(owner: str) -> Callable[[object, attrs.Attribute[str], object], None]:
    def check(_: object, attribute: attrs.Attribute[str], value: object) -> None:
        _time(owner, attribute.name, value)

    return check


def _flag(owner: str, name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise OrderError(
            f"{owner}({name}=...) must be True or False, got {type(value).__name__} {value!r}"
        )


def _bit(value: bool) -> str:
    return "1" if value else "0"


@final
@attrs.frozen
class Adaptive:
    """IB's Adaptive algo: a market or limit order IB works between the bid and the ask.

    Args:
        priority: How long IB scans for a better price: ``"Urgent"`` (briefly), ``"Normal"``
            or ``"Patient"`` (longest); IB's ``adaptivePriority``.

    Raises:
        OrderError: if ``priority`` is none of the three.

    Example:
        >>> Adaptive("Patient").params()
        (('adaptivePriority', 'Patient'),)
    """

    strategy: ClassVar[str] = "Adaptive"
    priority: str = "Normal"

    def __attrs_post_init__(self) -> None:
        _choice("Adaptive", "priority", self.priority, _PRIORITIES)

    def params(self) -> tuple[tuple[str, str], ...]:
        """Return IB's ``algoParams`` for this algo, as (tag, value) pairs."""
        return (("adaptivePriority", self.priority),)


@final
@attrs.frozen
class Vwap:
    """IB's VWAP algo: work the order towards the volume-weighted average price of a window.

    Args:
        max_pct_vol: The most of the market's volume the order may take, as a fraction
            between 0.01 and 0.5 (IB's ``maxPctVol``).
        start_time: When to start, ``"HH:MM:SS Zone"`` (e.g. ``"09:30:00 US/Eastern"``), or
            ``""``: at once.
        end_time: When to stop, same format, or ``""``: at the close.
        allow_past_end_time: Keep working after ``end_time`` if not filled.
        no_take_liq: Never take liquidity (post only).

    Raises:
        OrderError: for a value of the wrong type or out of IB's range.

    Example:
        >>> Vwap(0.1, end_time="15:00:00 US/Eastern").params()[:3]
        (('maxPctVol', '0.1'), ('startTime', ''), ('endTime', '15:00:00 US/Eastern'))
    """

    strategy: ClassVar[str] = "Vwap"
    max_pct_vol: Decimal = attrs.field(default=Decimal("0.1"), converter=_vwap_pct)
    start_time: str = attrs.field(default="", validator=_time_of("Vwap"))
    end_time: str = attrs.field(default="", validator=_time_of("Vwap"))
    allow_past_end_time: bool = False
    no_take_liq: bool = False

    def __attrs_post_init__(self) -> None:
        _flag("Vwap", "allow_past_end_time", self.allow_past_end_time)
        _flag("Vwap", "no_take_liq", self.no_take_liq)

    def params(self) -> tuple[tuple[str, str], ...]:
        """Return IB's ``algoParams`` for this algo, as (tag, value) pairs."""
        return (
            ("maxPctVol", f"{self.max_pct_vol:f}"),
            ("startTime", self.start_time),
            ("endTime", self.end_time),
            ("allowPastEndTime", _bit(self.allow_past_end_time)),
            ("noTakeLiq", _bit(self.no_take_liq)),
        )


@final
@attrs.frozen
class Twap:
    """IB's TWAP algo: work the order evenly over a window of time.

    Args:
        strategy_type: Which prices it trades at: ``"Marketable"``, ``"Matching Midpoint"``,
            ``"Matching Same Side"`` or ``"Matching Last"`` (IB's ``strategyType``).
        start_time: When to start, ``"HH:MM:SS Zone"``, or ``""``: at once.
        end_time: When to stop, same format, or ``""``: at the close.
        allow_past_end_time: Keep working after ``end_time`` if not filled.

    Raises:
        OrderError: for a value of the wrong type or not one IB accepts.

    Example:
        >>> Twap(end_time="16:00:00 US/Eastern").params()[0]
        ('strategyType', 'Marketable')
    """

    strategy: ClassVar[str] = "Twap"
    strategy_type: str = "Marketable"
    start_time: str = attrs.field(default="", validator=_time_of("Twap"))
    end_time: str = attrs.field(default="", validator=_time_of("Twap"))
    allow_past_end_time: bool = False

    def __attrs_post_init__(self) -> None:
        _choice("Twap", "strategy_type", self.strategy_type, _TWAP_TYPES)
        _flag("Twap", "allow_past_end_time", self.allow_past_end_time)

    def params(self) -> tuple[tuple[str, str], ...]:
        """Return IB's ``algoParams`` for this algo, as (tag, value) pairs."""
        return (
            ("strategyType", self.strategy_type),
            ("startTime", self.start_time),
            ("endTime", self.end_time),
            ("allowPastEndTime", _bit(self.allow_past_end_time)),
        )


@final
@attrs.frozen
class ArrivalPrice:
    """IB's Arrival Price algo (``ArrivalPx``): trade near the price when the order arrived.

    Args:
        max_pct_vol: The most of the market's volume the order may take, as a fraction
            between 0.01 and 0.5 (IB's ``maxPctVol``: 1 % to 50 %, as TWS's guide says).
        risk_aversion: How urgently: ``"Get Done"``, ``"Aggressive"``, ``"Neutral"`` or
            ``"Passive"`` (IB's ``riskAversion``).
        start_time: When to start, ``"HH:MM:SS Zone"``, or ``""``: at once.
        end_time: When to stop, same format, or ``""``: at the close.
        force_completion: Try to fill all of it by the close.
        allow_past_end_time: Keep working after ``end_time`` if not filled.

    Raises:
        OrderError: for a value of the wrong type or out of IB's range.

    Example:
        >>> ArrivalPrice(0.2, "Passive").params()[:2]
        (('maxPctVol', '0.2'), ('riskAversion', 'Passive'))
    """

    strategy: ClassVar[str] = "ArrivalPx"
    max_pct_vol: Decimal = attrs.field(default=Decimal("0.1"), converter=_arrival_pct)
    risk_aversion: str = "Neutral"
    start_time: str = attrs.field(default="", validator=_time_of("ArrivalPrice"))
    end_time: str = attrs.field(default="", validator=_time_of("ArrivalPrice"))
    force_completion: bool = False
    allow_past_end_time: bool = False

    def __attrs_post_init__(self) -> None:
        _choice("ArrivalPrice", "risk_aversion", self.risk_aversion, _RISK_AVERSIONS)
        _flag("ArrivalPrice", "force_completion", self.force_completion)
        _flag("ArrivalPrice", "allow_past_end_time", self.allow_past_end_time)

    def params(self) -> tuple[tuple[str, str], ...]:
        """Return IB's ``algoParams`` for this algo, as (tag, value) pairs."""
        return (
            ("maxPctVol", f"{self.max_pct_vol:f}"),
            ("riskAversion", self.risk_aversion),
            ("startTime", self.start_time),
            ("endTime", self.end_time),
            ("forceCompletion", _bit(self.force_completion)),
            ("allowPastEndTime", _bit(self.allow_past_end_time)),
        )


Algo = Adaptive | Vwap | Twap | ArrivalPrice
"""Any of the IB algos an :class:`~ibkrfw.OrderRequest` can carry."""

_BY_STRATEGY: dict[str, type[Algo]] = {
    cls.strategy: cls for cls in (Adaptive, Vwap, Twap, ArrivalPrice)
}
# IB's tag -> (the class's field, how its text is read)
_FIELDS: dict[str, tuple[str, type]] = {
    "adaptivePriority": ("priority", str),
    "maxPctVol": ("max_pct_vol", Decimal),
    "startTime": ("start_time", str),
    "endTime": ("end_time", str),
    "allowPastEndTime": ("allow_past_end_time", bool),
    "noTakeLiq": ("no_take_liq", bool),
    "strategyType": ("strategy_type", str),
    "riskAversion": ("risk_aversion", str),
    "forceCompletion": ("force_completion", bool),
}


def algo_from_params(strategy: str, params: Sequence[tuple[str, str]]) -> Algo | None:
    """Return the algo IB's ``algoStrategy`` and ``algoParams`` describe (``None`` for none).

    Args:
        strategy: IB's ``algoStrategy`` (``"Adaptive"``, ``"Vwap"``, ``"Twap"``,
            ``"ArrivalPx"``), or ``""`` for an order without an algo.
        params: IB's ``algoParams`` as (tag, value) pairs; a tag the algo does not have
            is an error, a missing one takes the class's default.

    Raises:
        OrderError: for another algo, an unknown tag or a value out of range.

    Example:
        >>> algo_from_params("Adaptive", [("adaptivePriority", "Urgent")])
        Adaptive(priority='Urgent')
    """
    if not strategy:
        return None
    cls = _BY_STRATEGY.get(strategy)
    if cls is None:
        raise OrderError(
            f"IB algo {strategy!r} has no model counterpart "
            f"(known: {', '.join(sorted(_BY_STRATEGY))})"
        )
    known = attrs.fields_dict(cls)
    values: dict[str, object] = {}
    for tag, text in params:
        field, kind = _FIELDS.get(tag, ("", str))
        if field not in known:
            raise OrderError(f"IB algo {strategy!r} has no parameter {tag!r} in this model")
        if kind is bool:
            if text not in ("0", "1", ""):
                raise OrderError(f"IB algo parameter {tag} must be 0 or 1, got {text!r}")
            values[field] = text == "1"
        else:
            values[field] = text
    return cls(**values)  # type: ignore[arg-type]


def check_algo(value: object) -> None:
    """Raise :class:`~ibkrfw.OrderError` unless ``value`` is an algo or ``None``."""
    if value is not None and not isinstance(value, Adaptive | Vwap | Twap | ArrivalPrice):
        raise OrderError(
            "algo must be Adaptive(...), Vwap(...), Twap(...), ArrivalPrice(...) or None, "
            f"got {type(value).__name__} {value!r}"
        )
