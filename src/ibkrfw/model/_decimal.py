"""Conversion of user input to ledger decimals."""

from __future__ import annotations

import math
from decimal import Decimal, InvalidOperation

from ibkrfw.errors import OrderError

DecimalLike = Decimal | int | float | str


def to_decimal(value: DecimalLike, what: str = "value") -> Decimal:
    """Convert ``value`` to a finite :class:`~decimal.Decimal`.

    Floats go through their shortest ``repr`` so that ``0.1`` becomes ``Decimal("0.1")``.

    Raises:
        OrderError: if ``value`` is not a number, or is NaN or infinite.
    """
    if type(value) is Decimal:  # fast path: already a Decimal
        if value.is_finite():
            return value
        raise OrderError(f"{what} must be finite, got {value!r}")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, bool):
        raise OrderError(f"{what} must be a number, got the bool {value!r}")
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise OrderError(f"{what} must be finite, got {value!r}")
        result = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise OrderError(f"{what} must be a number, got the string {value!r}") from None
    else:
        raise OrderError(f"{what} must be a Decimal, int, float or str, got {type(value).__name__}")
    if not result.is_finite():
        raise OrderError(f"{what} must be finite, got {value!r}")
    return result


def optional_decimal(value: DecimalLike | None) -> Decimal | None:
    """Convert ``value`` with :func:`to_decimal`, passing ``None`` through."""
    return None if value is None else to_decimal(value)
