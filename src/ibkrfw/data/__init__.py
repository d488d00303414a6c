"""Data: sample data now; the bar store and validation reports come with later releases."""

from ibkrfw.data.sample import (
    SAMPLE_SYMBOLS,
    generate_bars,
    load_sample,
    sample_feed,
    sample_instruments,
)

__all__ = [
    "SAMPLE_SYMBOLS",
    "generate_bars",
    "load_sample",
    "sample_feed",
    "sample_instruments",
]
