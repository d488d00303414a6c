"""Bad files and stores are typed DataErrors naming the file; nothing is written (issue 20)."""

from __future__ import annotations

import gzip
import hashlib
import os
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ibkrfw import DataError, Stock
from ibkrfw.data import (
    ParquetBarStore,
    SQLiteBarStore,
    generate_bars,
    read_bars_csv,
    validate_bars,
)
from ibkrfw.sim import DataFrameFeed
from ibkrfw.testing import bars_frame

ACME = Stock("ACME")
HEADER = "timestamp,open,high,low,close,volume\n"


def _bars(periods: int = 20, freq: str = "1D") -> pd.DataFrame:
    frame = generate_bars(["ACME"], freq=freq, periods=periods).set_index("timestamp")
    return frame[["open", "high", "low", "close", "volume"]]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _store(path: Path, periods: int = 20_000) -> Path:
    with SQLiteBarStore(path) as store:
        store.write(ACME, "1min", _bars(periods, "1min"))
    return path


# --- CSV files ---------------------------------------------------------------------------------
def test_a_non_utf8_csv_names_the_line_the_byte_and_the_encoding(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    good = "2024-01-02T00:00:00+00:00,1,2,0.5,1,10\n"
    path.write_bytes((HEADER + good).encode() + b"2024-01-03T00:00:00+00:00,1,2,0.5,1,1\xe90\n")
    with pytest.raises(DataError) as caught:
        read_bars_csv(path)
    offset = len(HEADER) + len(good) + 37
    assert caught.value.problem == (
        f"{path} line 3, byte 38: 0xe9 (offset {offset} of the file) is not UTF-8 text"
    )
    assert "UTF-8" in caught.value.fix


def test_a_non_utf8_gzipped_csv_is_located_in_its_text(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv.gz"
    path.write_bytes(gzip.compress(HEADER.encode() + b"\xff\n"))
    with pytest.raises(DataError, match=r"line 2, byte 1: 0xff \(offset 37 of the decompressed"):
        read_bars_csv(path)


@pytest.mark.parametrize(
    ("content", "words"),
    [(b"", "is empty"), (HEADER.encode(), "has a header but no bars"), (b"\n\n", "is empty")],
    ids=["empty", "header only", "blank lines"],
)
def test_files_without_bars_are_errors(tmp_path: Path, content: bytes, words: str) -> None:
    path = tmp_path / "bars.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=words):
        read_bars_csv(path)


# --- validation --------------------------------------------------------------------------------
def test_no_bars_is_not_no_problems() -> None:
    with pytest.raises(DataError, match="the frame has no bars to validate: no bars is not"):
        validate_bars(_bars().iloc[:0])


@pytest.mark.parametrize("price", [1e308, 1e12, 1.000001e9, 1e-320, 5e-324, 1e-10])
def test_implausible_prices_are_reported_by_line(tmp_path: Path, price: float) -> None:
    path = tmp_path / "bars.csv"
    lines = [f"2024-01-0{d}T00:00:00+00:00,10,10,10,10,5" for d in (2, 3, 4)]
    lines[1] = f"2024-01-03T00:00:00+00:00,10,10,10,{price!r},5"
    lines[1] = lines[1].replace(",10,10,10,", f",{price!r},{price!r},{price!r},")
    path.write_text(HEADER + "\n".join(lines) + "\n")
    report = validate_bars(read_bars_csv(path))
    implausible = report[report["kind"] == "implausible_price"]
    assert implausible["line"].tolist() == [3, 3, 3, 3]
    assert sorted(implausible["column"]) == ["close", "high", "low", "open"]
    assert "outside any market's prices" in implausible["detail"].iloc[0]


def test_plausible_prices_are_not_reported() -> None:
    frame = bars_frame([(1e-9, 1e-9, 1e-9, 1e-9), (1e9, 1e9, 1e9, 1e9), (1.2345, 2, 1, 1.5)])
    report = validate_bars(frame)
    assert "implausible_price" not in set(report["kind"])


@pytest.mark.parametrize("price", [1e308, 1e-320])
def test_feeds_and_stores_refuse_implausible_prices(tmp_path: Path, price: float) -> None:
    frame = bars_frame([(10, 10, 10, 10), (price, price, price, price)])
    with pytest.raises(DataError, match=r"price outside any market's \(from 1e-09 to 1e\+09\)"):
        DataFrameFeed(frame, ACME)
    path = _store(tmp_path / "bars.sqlite", periods=10)
    before = _digest(path)
    with SQLiteBarStore(path) as store, pytest.raises(DataError, match="outside any market"):
        store.write(ACME, "1d", frame)
    assert _digest(path) == before


# --- stores ------------------------------------------------------------------------------------
def test_a_file_of_random_bytes_is_not_a_store(tmp_path: Path) -> None:
    path = tmp_path / "random.sqlite"
    path.write_bytes(np.random.default_rng(1).bytes(5_000))
    before = _digest(path)
    with pytest.raises(DataError, match=r"random\.sqlite is not a SQLite database") as caught:
        SQLiteBarStore(path)
    assert "backup" in caught.value.fix
    assert _digest(path) == before and sorted(os.listdir(tmp_path)) == ["random.sqlite"]


def test_a_store_cut_short_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    path = _store(tmp_path / "bars.sqlite")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    before = _digest(path)
    with pytest.raises(DataError, match=r"bars\.sqlite is cut short: its header counts \d+ pages"):
        SQLiteBarStore(path)
    assert _digest(path) == before


def test_damaged_pages_are_a_data_error_on_read_and_write(tmp_path: Path) -> None:
    path = _store(tmp_path / "bars.sqlite")
    data = bytearray(path.read_bytes())
    page = 4096
    data[3 * page : 200 * page] = np.random.default_rng(2).bytes(197 * page)
    path.write_bytes(bytes(data))
    with SQLiteBarStore(path) as store:
        with pytest.raises(DataError, match=r"bars\.sqlite is damaged: SQLite says database disk"):
            store.read(ACME, "1min")
        with pytest.raises(DataError, match="is damaged"):
            store.info()
        with pytest.raises(DataError, match="is damaged"):
            store.write(ACME, "1min", _bars(100, "1min"))


def test_another_programs_database_is_not_turned_into_a_store(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE users (name TEXT)")
    db.close()
    before = _digest(path)
    with pytest.raises(DataError, match=r"app\.db is another program's database \(tables users\)"):
        SQLiteBarStore(path)
    assert _digest(path) == before


def test_an_empty_file_is_a_new_store(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite"
    path.touch()
    with SQLiteBarStore(path) as store:
        assert store.write(ACME, "1d", _bars(5)) == 5


def test_a_damaged_parquet_file_names_the_file(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    with ParquetBarStore(tmp_path / "pq") as store:
        store.write(ACME, "1d", _bars())
    target = next((tmp_path / "pq").rglob("bars.parquet"))
    target.write_bytes(b"not parquet at all")
    with (
        ParquetBarStore(tmp_path / "pq") as store,
        pytest.raises(DataError, match=r"bars\.parquet is not a readable file of bars"),
    ):
        store.read(ACME, "1d")


def test_a_damaged_parquet_instrument_table_names_the_file(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    with ParquetBarStore(tmp_path / "pq") as store:
        store.write(ACME, "1d", _bars())
    table = next(p for p in (tmp_path / "pq").iterdir() if p.suffix == ".json")
    table.write_bytes(b"{\xff")
    with (
        ParquetBarStore(tmp_path / "pq") as store,
        pytest.raises(DataError, match=r"\.json is damaged"),
    ):
        store.instrument("ACME.SMART")
