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
        number = float(given)
        if not math.isfinite(number):
            raise OrderError(f"{what} must be finite, got {value!r}")
        # NumPy's narrower floats read as their own shortest repr: np.float32(100.01) is
        # 100.01, not the 100.01000213623047 of the double it widens to.
        narrow = getattr(given, "itemsize", 8) < 8
        result = Decimal(str(given)) if narrow else float_decimal(number)
    elif isinstance(given, numbers.Integral):  # NumPy's integers
        result = Decimal(int(given))
    else:
        raise OrderError(f"{what} must be a Decimal, int, float or str, got {type(value).__name__}")
    if not result.is_finite():
        raise OrderError(f"{what} must be finite, got {value!r}")
    return result


def float_decimal(value: float) -> Decimal:
    """The Decimal of a float's shortest ``repr`` (``0.1`` gives ``Decimal("0.1")``).

    The value goes through ``float()`` first: NumPy's floats, which pandas and history arrays
    hand out, have a repr of their own (``np.float64(0.1)``) that Decimal cannot read. NaN and
    infinities pass through as Decimal's own; use :func:`to_decimal` to refuse them.

    Example:
        >>> import numpy as np
        >>> float_decimal(np.float64(0.1)), float_decimal(1 / 3 * 3)
        (Decimal('0.1'), Decimal('1.0'))
    """
    return Decimal(repr(float(value)))


def optional_decimal(value: DecimalLike | None) -> Decimal | None:
    """Convert ``value`` with :func:`to_decimal`, passing ``None`` through."""
    return None if value is None else to_decimal(value)
