"""Conversion of user input to ledger decimals."""

from __future__ import annotations

import math
import numbers
from decimal import Decimal, InvalidOperation

from ibkrfw.errors import OrderError

DecimalLike = Decimal | int | float | str


def to_decimal(value: DecimalLike, what: str = "value") -> Decimal:
    """Convert ``value`` to a finite :class:`~decimal.Decimal`.

    Floats go through their shortest ``repr`` so that ``0.1`` becomes ``Decimal("0.1")``.
    NumPy scalars (``np.float64`` from a history array, ``np.int64`` from a frame) count as
    the Python number they hold.

    Raises:
        OrderError: if ``value`` is not a number, or is NaN or infinite.
    """
    if type(value) is Decimal:  # fast path: already a Decimal
        if value.is_finite():
            return value
        raise OrderError(f"{what} must be finite, got {value!r}")
    given: object = value  # what arrives at run time may be wider: NumPy scalars
    if isinstance(given, Decimal):
        result = given
    elif isinstance(given, bool):
        raise OrderError(f"{what} must be a number, got the bool {value!r}")
    elif isinstance(given, int):
        result = Decimal(given)
    elif isinstance(given, str):
        try:
            result = Decimal(given.strip())
        except InvalidOperation:
            raise OrderError(f"{what} must be a number, got the string {value!r}") from None
    elif isinstance(given, float) or (
        isinstance(given, numbers.Real) and not isinstance(given, numbers.Integral)
    ):  # float, and NumPy's floats
        number = float(given)  # not repr(given): np.float64's is "np.float64(...)"
        if not math.isfinite(number):
            raise OrderError(f"{what} must be finite, got {value!r}")
        result = Decimal(repr(number))
    elif isinstance(given, numbers.Integral):  # NumPy's integers
        result = Decimal(int(given))
    else:
        raise OrderError(f"{what} must be a Decimal, int, float or str, got {type(value).__name__}")
    if not result.is_finite():
        raise OrderError(f"{what} must be finite, got {value!r}")
    return result


def optional_decimal(value: DecimalLike | None) -> Decimal | None:
    """Convert ``value`` with :func:`to_decimal`, passing ``None`` through."""
    return None if value is None else to_decimal(value)
