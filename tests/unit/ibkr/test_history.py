from __future__ import annotations

from itertools import pairwise

import pandas as pd
import pytest

from ibkrfw import ConfigError
from ibkrfw.ibkr.history import MAX_SPAN, history_chunks, ib_bar_size

NS = 1_000_000_000


def _ts(text: str) -> int:
    return int(pd.Timestamp(text, tz="UTC").value)


@pytest.mark.parametrize(
    ("ours", "ibs"),
    [("1s", "1 secs"), ("30 secs", "30 secs"), ("1min", "1 min"), ("5 mins", "5 mins"),
     ("1h", "1 hour"), ("4 hours", "4 hours"), ("1d", "1 day"), ("1w", "1 week")],
)  # fmt: skip
def test_bar_sizes_in_ibs_spelling(ours: str, ibs: str) -> None:
    assert ib_bar_size(ours) == ibs


def test_bar_sizes_ib_does_not_have_are_refused() -> None:
    for bad in ("7min", "2d", "90s"):
        with pytest.raises(ConfigError, match="IB has no"):
            ib_bar_size(bad)


def test_chunks_cover_the_range_newest_first_without_gaps() -> None:
    start, end = _ts("2024-01-01"), _ts("2024-03-15 13:37")
    for size in ("1 secs", "30 secs", "1min", "5 mins", "1h", "1d"):
        chunks = history_chunks(start, end, size)
        assert chunks[0].end_ns == end and chunks[-1].start_ns == start
        for newer, older in pairwise(chunks):
            assert older.end_ns == newer.start_ns  # contiguous
        max_s = MAX_SPAN[ib_bar_size(size)][0]
        assert all(c.end_ns - c.start_ns <= max_s * NS for c in chunks)
        assert all(c.duration == MAX_SPAN[ib_bar_size(size)][1] for c in chunks[:-1])


def test_the_oldest_chunk_asks_for_what_is_left() -> None:
    end = _ts("2024-03-01 12:00")
    (chunk,) = history_chunks(end - 600 * NS, end, "1 secs")
    assert (chunk.end, chunk.duration) == ("20240301-12:00:00", "600 S")
    first, last = history_chunks(end - 40 * 86_400 * NS, end, "1 hour")
    assert first.duration == "1 M"
    assert last.duration == "10 D"
    years = history_chunks(_ts("2020-01-01"), _ts("2024-06-01"), "1 day")
    assert [c.duration for c in years] == ["1 Y"] * 4 + ["153 D"]


def test_an_empty_range_is_refused() -> None:
    with pytest.raises(ConfigError, match="start before its end"):
        history_chunks(5, 5, "1min")
