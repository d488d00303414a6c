"""How the simulator works IB's scheduled algos (VWAP, TWAP, Arrival Price): slices per bar."""

from __future__ import annotations

import datetime as dt
import math
from decimal import ROUND_CEILING, Decimal
from zoneinfo import ZoneInfo

from ibkrfw.model.algos import ArrivalPrice, Twap, Vwap
from ibkrfw.model.data import Bar
from ibkrfw.model.instruments import Instrument

Scheduled = Vwap | Twap | ArrivalPrice


def at_time(text: str, ts_ns: int) -> int | None:
    """The UTC ns of ``text`` ("HH:MM:SS Zone") on the local date of ``ts_ns`` (None for "")."""
    if not text:
        return None
    clock, _, zone = text.partition(" ")
    tz = ZoneInfo(zone)
    day = dt.datetime.fromtimestamp(ts_ns / 1e9, tz).date()
    moment = dt.datetime.combine(day, dt.time.fromisoformat(clock), tz)
    return int(moment.timestamp()) * 1_000_000_000


def slice_quantity(
    algo: Scheduled,
    inst: Instrument,
    bar: Bar,
    remaining: Decimal,
    step_ns: int | None,
    end_ns: int,
) -> Decimal:
    """What ``algo`` takes on ``bar`` of the ``remaining`` quantity, in whole lots.

    VWAP and Arrival Price take ``max_pct_vol`` of the bar's volume (rounded down; nothing
    on a bar of unknown volume); TWAP spreads what remains evenly over the time left to
    ``end_ns`` in bars of ``step_ns`` (rounded up, so the last bar before the end takes all).
    """
    if isinstance(algo, Twap):
        if step_ns is None or step_ns <= 0:
            return Decimal(0)
        bars_left = max(1, math.ceil((end_ns - bar.ts_ns) / step_ns))
        lots = (remaining / inst.lot_size / bars_left).to_integral_value(ROUND_CEILING)
        return min(remaining, lots * inst.lot_size)
    if bar.volume != bar.volume or bar.volume <= 0:  # NaN or nothing traded
        return Decimal(0)
    return min(remaining, inst.round_quantity(Decimal(repr(bar.volume)) * algo.max_pct_vol))


def typical_price(bar: Bar) -> float:
    """The price a slice trades at: the bar's typical price, (high + low + close) / 3."""
    return (bar.high + bar.low + bar.close) / 3
