"""Exchange rates into the account's base currency, as time series."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, final

import numpy as np
import numpy.typing as npt

from ibkrfw.errors import ConfigError, DataError
from ibkrfw.model._time import to_timestamp

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["FxRates"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


def _series_arrays(currency: str, series: Any) -> tuple[IntArray, FloatArray]:
    """The UTC nanosecond times and the values of a pandas Series, or of a (times, rates) pair."""
    if isinstance(series, tuple):
        if len(series) != 2:
            raise ConfigError(f"{currency}: give a pandas Series or a (ts_ns, rates) pair")
        ts = np.asarray(series[0], dtype=np.int64)
        rates = np.asarray(series[1], dtype=np.float64)
    else:
        index = getattr(series, "index", None)
        if index is None or not hasattr(index, "tz"):
            raise ConfigError(
                f"{currency}: give a pandas Series with a DatetimeIndex, or a (ts_ns, rates) pair"
            )
        if index.tz is None:
            raise DataError(
                f"{currency}: the rate series has naive timestamps; localise them "
                "(series.tz_localize(...)) so that the time of each rate is unambiguous"
            )
        ts = np.asarray(index.as_unit("ns").asi8, dtype=np.int64)
        rates = np.asarray(series.to_numpy(dtype=np.float64, na_value=np.nan))
    if ts.ndim != 1 or ts.shape != rates.shape:
        raise ConfigError(f"{currency}: times and rates must be one-dimensional, of one length")
    if not len(ts):
        raise DataError(f"{currency}: the rate series is empty")
    bad = np.flatnonzero(~(np.isfinite(rates) & (rates > 0)))
    if len(bad):
        i = int(bad[0])
        raise DataError(
            f"{currency}: rate {float(rates[i])!r} at {to_timestamp(int(ts[i]))} is not a positive "
            f"number ({len(bad)} such row(s)); drop or fill them before use, as ibkrfw never "
            "corrects data silently"
        )
    unsorted = np.flatnonzero(ts[1:] <= ts[:-1])
    if len(unsorted):
        i = int(unsorted[0]) + 1
        raise DataError(
            f"{currency}: rate times must be strictly increasing; row {i} "
            f"({to_timestamp(int(ts[i]))}) does not come after the one before"
        )
    return ts, rates


@final
class FxRates:
    """Exchange rates that convert other currencies into the account's base currency.

    Each currency has a series of rates, in units of the base currency per one unit of that
    currency (with a USD base: about 1.08 for EUR, about 0.0067 for JPY, which is
    ``1 / USDJPY``). A rate applies from its timestamp until the next one, and is never used
    before it: stamp the rates the way your bars are stamped, so that a bar's close and the rate
    of the same moment go together.

    Args:
        rates: For each currency, a pandas Series with a tz-aware DatetimeIndex, or a pair of
            arrays (UTC epoch nanoseconds, rates).
        base_currency: The account's currency, which every rate converts into.

    Raises:
        ConfigError: if a currency is the base currency, or a series is not one of the above.
        DataError: if a series is empty, has naive or unsorted timestamps, or a rate that is
            not a positive number.

    Example:
        >>> import pandas as pd
        >>> days = pd.to_datetime(["2024-01-02", "2024-01-03"], utc=True)
        >>> eur = pd.Series([1.10, 1.20], index=days)
        >>> fx = FxRates({"EUR": eur})
        >>> fx.rate("EUR", pd.Timestamp("2024-01-02 12:00", tz="UTC").value)
        1.1
        >>> fx.rate("USD", 0)
        1.0
    """

    __slots__ = ("_rates", "base_currency")

    def __init__(
        self,
        rates: Mapping[str, pd.Series | tuple[Any, Any]],
        base_currency: str = "USD",
    ) -> None:
        self.base_currency = base_currency
        self._rates: dict[str, tuple[IntArray, FloatArray]] = {}
        for currency, series in rates.items():
            if currency == base_currency:
                raise ConfigError(f"{currency} is the base currency; its rate is always 1")
            self._rates[currency] = _series_arrays(currency, series)

    @property
    def currencies(self) -> frozenset[str]:
        """The currencies that can be converted (the base currency always can)."""
        return frozenset(self._rates) | {self.base_currency}

    def first_ns(self, currency: str) -> int:
        """Return the time of the first rate of ``currency`` (0 for the base currency)."""
        if currency == self.base_currency:
            return 0
        return int(self._series(currency)[0][0])

    def _series(self, currency: str) -> tuple[IntArray, FloatArray]:
        try:
            return self._rates[currency]
        except KeyError:
            raise DataError(
                f"no exchange rate from {currency} to {self.base_currency}: add a {currency} "
                "series to the FxRates"
            ) from None

    def rate(self, currency: str, ts_ns: int) -> float:
        """Return the rate of ``currency`` in force at ``ts_ns``.

        Raises:
            DataError: if the currency has no series, or its first rate is after ``ts_ns``.
        """
        if currency == self.base_currency:
            return 1.0
        ts, rates = self._series(currency)
        i = int(np.searchsorted(ts, ts_ns, side="right")) - 1
        if i < 0:
            raise DataError(
                f"no {currency} rate at or before {to_timestamp(ts_ns)}: the series starts at "
                f"{to_timestamp(int(ts[0]))}"
            )
        return float(rates[i])

    def rates_at(self, currency: str, ts_ns: IntArray) -> FloatArray:
        """Return the rate of ``currency`` in force at each time (NaN before its first rate)."""
        if currency == self.base_currency:
            return np.ones(len(ts_ns))
        ts, rates = self._series(currency)
        i = np.searchsorted(ts, ts_ns, side="right") - 1
        return np.where(i >= 0, rates[np.maximum(i, 0)], np.nan)

    def __repr__(self) -> str:
        return f"FxRates(base_currency={self.base_currency!r}, currencies={sorted(self._rates)})"
