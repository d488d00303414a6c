"""The bar store: persistent bars keyed by instrument, bar size and time."""

from __future__ import annotations

import difflib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from ibkrfw._progress import check as check_progress
from ibkrfw._progress import make_bar, min_bars
from ibkrfw.core.history import BarArrays
from ibkrfw.data.barsize import normalize_bar_size
from ibkrfw.errors import ConfigError, DataError
from ibkrfw.model.instruments import Instrument

if TYPE_CHECKING:
    import pandas as pd

    from ibkrfw.sim.feeds import DataFrameFeed

__all__ = ["BarStore", "SeriesInfo"]

_COLUMNS = ("open", "high", "low", "close", "volume")


def _ignore(rows: int) -> None:
    del rows


Advance = Callable[[int], object]
"""Told how many more rows were written, as a store writes them (for progress)."""


class SeriesInfo(NamedTuple):
    """What the store holds for one instrument and bar size."""

    key: str
    bar_size: str
    first_ns: int
    last_ns: int
    rows: int


def _key(instrument: Instrument | str) -> str:
    key = instrument.id if isinstance(instrument, Instrument) else instrument
    if not isinstance(key, str) or not key or "/" in key or "\\" in key or key.startswith("."):
        raise ConfigError(f"not a usable instrument key: {key!r}")
    return key


def _bound(value: object, timezone: str) -> int | None:
    """A time bound in UTC nanoseconds; naive times are read in the instrument's time zone."""
    if value is None:
        return None
    if isinstance(value, int | np.integer) and not isinstance(value, bool):
        return int(value)
    import pandas as pd

    try:
        stamp = pd.Timestamp(value)  # type: ignore[arg-type]
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"not a time: {value!r} ({exc})") from None
    if pd.isna(stamp):
        raise ConfigError(f"not a time: {value!r}")
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize(timezone)
    return int(stamp.as_unit("ns").value)


class BarStore(ABC):
    """Bars kept on disk, keyed by instrument, bar size and time.

    Writes are upserts: a bar at a time already stored replaces it. One call to :meth:`write`
    is one transaction: after a crash, all of its rows are stored or none. Every
    implementation passes one shared test suite.

    Times are UTC epoch nanoseconds inside, the start of each bar. Range bounds may be strings
    or datetimes; naive ones are read in the instrument's time zone (so ``"2024-01-02"`` is
    midnight in New York for a US stock), and ranges are half-open: ``start <= time < end``.
    """

    # --- what an implementation provides ----------------------------------------------------
    @abstractmethod
    def _put(
        self,
        key: str,
        spec: dict[str, str],
        bar_size: str,
        arrays: BarArrays,
        advance: Advance = _ignore,
    ) -> None:
        """Upsert ``arrays`` (validated, sorted) in one transaction, with the instrument spec.

        Call ``advance`` with the number of rows written as each part is written.
        """

    @abstractmethod
    def _get(self, key: str, bar_size: str, start: int | None, end: int | None) -> BarArrays:
        """The stored bars in ``[start, end)``, sorted by time."""

    @abstractmethod
    def _catalog(self) -> list[SeriesInfo]:
        """Every stored series."""

    @abstractmethod
    def _spec(self, key: str) -> dict[str, str] | None:
        """The stored definition of the instrument ``key``, if any."""

    @abstractmethod
    def _remove(self, key: str, bar_size: str, start: int | None, end: int | None) -> int:
        """Delete the bars in ``[start, end)``; return how many there were."""

    @abstractmethod
    def close(self) -> None:
        """Release the store's files."""

    # --- the public interface, shared -------------------------------------------------------
    def write(
        self,
        instrument: Instrument,
        bar_size: str,
        frame: pd.DataFrame,
        *,
        tz: str | None = None,
        progress: bool | None = False,
    ) -> int:
        """Store the bars of ``frame``, replacing any at the same times; return the row count.

        The frame has the layout :class:`~ibkrfw.sim.DataFrameFeed` takes (a tz-aware index or
        ``timestamp`` column; ``open``, ``high``, ``low``, ``close``, ``volume``), and is
        validated the same way: a malformed frame is refused whole and nothing is written.
        Validate and clean raw data first (:func:`~ibkrfw.data.validate_bars`).

        Args:
            instrument: What the bars are of.
            bar_size: Their size (``"1min"``, ``"1d"``, IB's ``"1 min"``...).
            frame: The bars.
            tz: The time zone of naive timestamps, if the frame has them.
            progress: Show the writing's progress on stderr, part by part (a bar in a
                terminal, a widget in Jupyter with ipywidgets, a few plain lines in a log):
                True always, None from 200,000 bars on (``IBKRFW_PROGRESS_MIN_BARS``
                changes that), False (the default) never.

        Raises:
            DataError: naming the first bad row, if the frame is malformed.
            ConfigError: if ``bar_size`` is not understood, or ``progress`` is not True,
                False or None.
        """
        from ibkrfw.sim.feeds import frame_to_arrays

        check_progress(progress, "BarStore.write")
        if not isinstance(instrument, Instrument):
            raise ConfigError(f"write() needs an Instrument, got {instrument!r}")
        size = normalize_bar_size(bar_size)
        arrays = frame_to_arrays(frame, tz=tz, source=f"bars of {instrument.id} ({size})")
        rows = len(arrays.ts_ns)
        if progress is True or (progress is None and rows >= min_bars()):
            desc = f"storing {instrument.symbol} {size}"
            with make_bar(total=rows, desc=desc, unit="bar") as meter:
                self._put(_key(instrument), instrument.to_dict(), size, arrays, meter.update)
        else:
            self._put(_key(instrument), instrument.to_dict(), size, arrays)
        return rows

    def instrument(self, key: str) -> Instrument:
        """Return the instrument stored under ``key`` (an :attr:`~ibkrfw.Instrument.id`).

        Raises:
            DataError: if the store has no instrument of that key.
        """
        spec = self._spec(_key(key))
        if spec is None:
            known = sorted({s.key for s in self._catalog()})
            # the symbol without its exchange (ACME for ACME.SMART), or a typo in the key
            near = [k for k in known if k.split(".")[0].upper() == key.upper()]
            near += difflib.get_close_matches(key, known, n=1, cutoff=0.8)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise DataError(f"the store has no instrument {key!r}{hint}; it has {known}")
        return Instrument.from_dict(spec)

    def _resolve(self, instrument: Instrument | str) -> Instrument:
        return instrument if isinstance(instrument, Instrument) else self.instrument(instrument)

    def arrays(
        self,
        instrument: Instrument | str,
        bar_size: str,
        start: object = None,
        end: object = None,
    ) -> BarArrays:
        """Return the bars in ``[start, end)`` as numpy columns (the fastest way to read)."""
        inst = self._resolve(instrument)
        tz = inst.timezone
        return self._get(
            _key(inst), normalize_bar_size(bar_size), _bound(start, tz), _bound(end, tz)
        )

    def read(
        self,
        instrument: Instrument | str,
        bar_size: str,
        start: object = None,
        end: object = None,
    ) -> pd.DataFrame:
        """Return the bars in ``[start, end)`` as a DataFrame indexed by UTC ``timestamp``.

        Args:
            instrument: The instrument, or its key.
            bar_size: The bar size (``"1min"``, ``"1d"``, IB's ``"1 min"``...).
            start: First time included; naive times are in the instrument's time zone.
            end: First time excluded.
        """
        import pandas as pd

        arrays = self.arrays(instrument, bar_size, start, end)
        index = pd.DatetimeIndex(arrays.ts_ns.astype("datetime64[ns]"), name="timestamp")
        data = {name: getattr(arrays, name) for name in _COLUMNS}
        return pd.DataFrame(data, index=index.tz_localize("UTC"))

    def feed(
        self,
        instruments: Instrument | str | Sequence[Instrument | str],
        bar_size: str,
        start: object = None,
        end: object = None,
    ) -> DataFrameFeed:
        """Return a feed of the stored bars of one or several instruments, for a backtest.

        Raises:
            DataError: if an instrument has no bars in the range.
        """
        from ibkrfw.sim.feeds import DataFrameFeed

        many = (
            instruments
            if isinstance(instruments, Sequence) and not isinstance(instruments, str)
            else [instruments]
        )
        frames = {}
        for item in many:
            inst = self._resolve(item)
            frame = self.read(inst, bar_size, start, end)
            if frame.empty:
                raise DataError(
                    f"the store has no {normalize_bar_size(bar_size)} bars of "
                    f"{inst.id} in the range asked"
                )
            frames[inst] = frame
        return DataFrameFeed(frames)

    def delete(
        self,
        instrument: Instrument | str,
        bar_size: str,
        start: object = None,
        end: object = None,
    ) -> int:
        """Delete the bars in ``[start, end)`` (all if no bounds); return how many."""
        key = _key(instrument)
        tz = self._resolve(instrument).timezone if self._spec(key) is not None else "UTC"
        return self._remove(key, normalize_bar_size(bar_size), _bound(start, tz), _bound(end, tz))

    def series(self) -> list[SeriesInfo]:
        """Every stored series (instrument key and bar size), with its extent and row count."""
        return sorted(self._catalog())

    def info(self, *, gaps: bool = True) -> pd.DataFrame:
        """One row per stored series: instrument, bar size, first and last time, rows, gaps.

        ``gaps`` counts the gaps within the instrument's trading sessions
        (:func:`~ibkrfw.data.calendar_for`) between the first and the last bar, and
        ``missing`` the bars (or, for daily bars, sessions) they leave out; both are found as
        :func:`~ibkrfw.data.validate_bars` finds them. Counting reads every time stamp: pass
        ``gaps=False`` for a quick listing (the two columns are then absent).
        """
        import pandas as pd

        from ibkrfw.data.sessions import calendar_for
        from ibkrfw.data.validation import count_gaps

        rows = []
        for s in self.series():
            row: dict[str, object] = {
                "instrument": s.key,
                "bar_size": s.bar_size,
                "first": pd.Timestamp(s.first_ns, unit="ns", tz="UTC"),
                "last": pd.Timestamp(s.last_ns, unit="ns", tz="UTC"),
                "rows": s.rows,
            }
            if gaps:
                inst = self.instrument(s.key)
                ts = self._get(s.key, s.bar_size, None, None).ts_ns
                row["gaps"], row["missing"] = count_gaps(ts, s.bar_size, calendar_for(inst))
            rows.append(row)
        columns = ["instrument", "bar_size", "first", "last", "rows"]
        return pd.DataFrame(rows, columns=[*columns, "gaps", "missing"] if gaps else columns)

    def __enter__(self) -> BarStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
