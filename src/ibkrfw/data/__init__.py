"""Data: the bar store, sessions, bar sizes, futures rolls and continuous series, samples."""

from ibkrfw.data.barsize import bar_size_ns, normalize_bar_size
from ibkrfw.data.csvio import LAYOUTS, CsvLayout, read_bars_csv, write_bars_csv
from ibkrfw.data.depth_store import DepthStore
from ibkrfw.data.futures import (
    ADJUSTMENTS,
    DaysBeforeExpiry,
    Roll,
    RollRule,
    VolumeCrossover,
    continuous_series,
    roll_schedule,
    synthetic_future_bars,
)
from ibkrfw.data.parquet_store import ParquetBarStore
from ibkrfw.data.resample import adjust_bars, resample_bars
from ibkrfw.data.sample import (
    SAMPLE_SYMBOLS,
    generate_bars,
    load_sample,
    sample_feed,
    sample_instruments,
)
from ibkrfw.data.sessions import (
    Session,
    SessionCalendar,
    SessionLookup,
    Sessions,
    USEquityCalendar,
    WeekdayCalendar,
    calendar_for,
)
from ibkrfw.data.sqlite_store import SQLiteBarStore
from ibkrfw.data.store import BarStore, SeriesInfo
from ibkrfw.data.validation import PROBLEM_KINDS, CleanResult, clean_bars, validate_bars

__all__ = [
    "ADJUSTMENTS",
    "BarStore",
    "CleanResult",
    "CsvLayout",
    "DaysBeforeExpiry",
    "DepthStore",
    "LAYOUTS",
    "PROBLEM_KINDS",
    "ParquetBarStore",
    "Roll",
    "RollRule",
    "SAMPLE_SYMBOLS",
    "SQLiteBarStore",
    "SeriesInfo",
    "Session",
    "SessionCalendar",
    "SessionLookup",
    "Sessions",
    "USEquityCalendar",
    "VolumeCrossover",
    "WeekdayCalendar",
    "adjust_bars",
    "bar_size_ns",
    "calendar_for",
    "clean_bars",
    "continuous_series",
    "generate_bars",
    "load_sample",
    "normalize_bar_size",
    "read_bars_csv",
    "resample_bars",
    "roll_schedule",
    "sample_feed",
    "sample_instruments",
    "synthetic_future_bars",
    "validate_bars",
    "write_bars_csv",
]
