"""Parameter spaces: every combination of a grid, or random draws from ranges."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any, final

import attrs
import numpy as np

from ibkrfw.errors import ConfigError

__all__ = ["IntUniform", "LogUniform", "Uniform", "grid", "sample"]


@final
@attrs.frozen
class Uniform:
    """Floats drawn uniformly from ``[low, high)``."""

    low: float
    high: float

    def __attrs_post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise ConfigError(f"need finite low < high, got {self.low!r} and {self.high!r}")

    def draw(self, rng: np.random.Generator) -> float:
        """One value."""
        return float(rng.uniform(self.low, self.high))


@final
@attrs.frozen
class LogUniform:
    """Floats whose logarithm is uniform in ``[log(low), log(high))`` (scales, thresholds)."""

    low: float
    high: float

    def __attrs_post_init__(self) -> None:
        if not (0 < self.low < self.high and math.isfinite(self.high)):
            raise ConfigError(f"need 0 < low < high, got {self.low!r} and {self.high!r}")

    def draw(self, rng: np.random.Generator) -> float:
        """One value."""
        return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))


@final
@attrs.frozen
class IntUniform:
    """Ints drawn uniformly from ``low`` to ``high``, both included."""

    low: int
    high: int

    def __attrs_post_init__(self) -> None:
        if not (isinstance(self.low, int) and isinstance(self.high, int) and self.low <= self.high):
            raise ConfigError(f"need ints low <= high, got {self.low!r} and {self.high!r}")

    def draw(self, rng: np.random.Generator) -> int:
        """One value."""
        return int(rng.integers(self.low, self.high + 1))


Range = Uniform | LogUniform | IntUniform


def _choices(name: str, values: object) -> list[Any]:
    if isinstance(values, str | bytes) or not isinstance(values, Sequence | range):
        raise ConfigError(f"parameter {name!r}: give a list of values (or a range), got {values!r}")
    out = list(values)
    if not out:
        raise ConfigError(f"parameter {name!r} has no values")
    return out


def grid(space: Mapping[str, Sequence[Any] | range]) -> list[dict[str, Any]]:
    """Every combination of the values of each parameter, in order (the last varies fastest).

    Example:
        >>> [(p["fast"], p["slow"]) for p in grid({"fast": [5, 10], "slow": [30, 50]})]
        [(5, 30), (5, 50), (10, 30), (10, 50)]

    Raises:
        ConfigError: if a parameter has no values, or not a list of them.
    """
    names = list(space)
    values = [_choices(name, space[name]) for name in names]
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values)]


def sample(
    space: Mapping[str, Sequence[Any] | range | Range], n: int, *, seed: int | None = None
) -> list[dict[str, Any]]:
    """``n`` random parameter sets: ranges are drawn from, lists are chosen from uniformly.

    The same ``seed`` gives the same sets.

    Example:
        >>> sets = sample({"fast": IntUniform(5, 20), "k": [1.5, 2.0]}, 3, seed=1)
        >>> sets == sample({"fast": IntUniform(5, 20), "k": [1.5, 2.0]}, 3, seed=1)
        True

    Raises:
        ConfigError: if ``n`` is not positive, or a parameter is neither a range nor a list.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"n must be a positive int, got {n!r}")
    rng = np.random.default_rng(seed)
    spec: dict[str, Range | list[Any]] = {}
    for name, values in space.items():
        spec[name] = values if isinstance(values, Range) else _choices(name, values)
    sets = []
    for _ in range(n):
        chosen: dict[str, Any] = {}
        for name, values in spec.items():
            if isinstance(values, list):
                chosen[name] = values[int(rng.integers(len(values)))]
            else:
                chosen[name] = values.draw(rng)
        sets.append(chosen)
    return sets
