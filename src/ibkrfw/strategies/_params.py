"""attrs validators shared by the ready strategies' parameters (errors are ConfigError)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from ibkrfw.errors import ConfigError

Validator = Callable[[Any, "attrs.Attribute[Any]", Any], None]


def int_at_least(least: int) -> Validator:
    """An int of at least ``least`` (bools refused)."""

    def check(_: object, attribute: attrs.Attribute[int], value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ConfigError(f"{attribute.name} must be an int of at least {least}, got {value!r}")

    return check


def non_negative(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    """A number of at least 0 (NaN refused)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ConfigError(f"{attribute.name} must be a number of at least 0, got {value!r}")


def optional_fraction(_: object, attribute: attrs.Attribute[float | None], value: object) -> None:
    """None, or a number in (0, 1]: a share of equity (bools and NaN refused)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        raise ConfigError(
            f"{attribute.name} must be a fraction of equity in (0, 1], or None for an equal "
            f"share, got {value!r}"
        )
