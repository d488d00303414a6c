"""``ibkrfw data`` on bad files and stores: one line, exit 2, nothing written (issue 20)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from ibkrfw import Stock
from ibkrfw.cli import main
from ibkrfw.data import SQLiteBarStore, generate_bars

HEADER = "timestamp,open,high,low,close,volume\n"
ROW = "2024-01-0{d}T15:00:00+00:00,{p},{p},{p},{p},100\n"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _real_store(path: Path) -> Path:
    frame = generate_bars(["ACME"], freq="1min", periods=20_000).set_index("timestamp")
    with SQLiteBarStore(path) as store:
        store.write(Stock("ACME"), "1min", frame[["open", "high", "low", "close", "volume"]])
    return path


def _error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ibkrfw: error: "), err
    assert "Traceback" not in err
    return lines[0]


def _csv(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


BAD_FILES = {
    "empty": (b"", "empty.csv is empty"),
    "header only": (HEADER.encode(), "header.csv has a header but no bars"),
    "not utf-8": (
        (HEADER + ROW.format(d=2, p=10)).encode() + b"2024-01-03T15:00:00+00:00,1\xe9\n",
        f"latin.csv line 3, byte 28: 0xe9 (offset {len(HEADER) + len(ROW.format(d=2, p=10)) + 27} "
        "of the file) is not UTF-8 text",
    ),
}
NAMES = {"empty": "empty.csv", "header only": "header.csv", "not utf-8": "latin.csv"}


@pytest.mark.parametrize("case", list(BAD_FILES))
@pytest.mark.parametrize("command", ["validate", "import"])
def test_bad_csv_files_are_one_line_errors_and_nothing_is_stored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str, command: str
) -> None:
    content, words = BAD_FILES[case]
    path = _csv(tmp_path, NAMES[case], content)
    store = tmp_path / "bars.sqlite"
    args = ["data", command, str(path), "--symbol", "ACME", "--bar-size", "1d"]
    if command == "import":
        args += ["--store", str(store)]
    assert main(args) == 2
    assert words in _error(capsys)
    assert not store.exists() or SQLiteBarStore(store).info().empty


@pytest.mark.parametrize("price", ["1e308", "1e-320", "1e12"])
def test_absurd_prices_are_problems_and_are_not_stored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], price: str
) -> None:
    rows = ROW.format(d=2, p=10) + ROW.format(d=3, p=price) + ROW.format(d=4, p=10)
    path = _csv(tmp_path, "bars.csv", (HEADER + rows).encode())
    validate = ["data", "validate", str(path), "--symbol", "ACME", "--bar-size", "1d"]
    assert main(validate) == 1
    out = capsys.readouterr().out
    assert "implausible_price 4" in out and "outside any market's prices" in out
    store = _real_store(tmp_path / "bars.sqlite")
    before = _digest(store)
    imp = ["data", "import", str(path), "--store", str(store), "--symbol", "ACME"]
    assert main([*imp, "--bar-size", "1d"]) == 2
    line = _error(capsys)
    assert "bars.csv line 3" in line and "--clean implausible_price=drop" in line
    assert _digest(store) == before


def _random(path: Path) -> Path:
    path.write_bytes(np.random.default_rng(7).bytes(8_192))
    return path


def _cut(path: Path) -> Path:
    _real_store(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


@pytest.mark.parametrize(
    ("make", "words"),
    [(_random, "is not a SQLite database"), (_cut, "is cut short")],
    ids=["random bytes", "truncated"],
)
@pytest.mark.parametrize("command", ["info", "validate", "export", "import"])
def test_a_corrupt_store_is_a_one_line_error_and_is_left_as_it_was(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: object, words: str, command: str
) -> None:
    store = make(tmp_path / "bars.sqlite")  # type: ignore[operator]
    before = _digest(store)
    csv = _csv(tmp_path, "in.csv", (HEADER + ROW.format(d=2, p=10)).encode())
    args = {
        "info": ["data", "info", "--store", str(store)],
        "validate": ["data", "validate", "--store", str(store), "--instrument", "ACME.SMART",
                     "--bar-size", "1min"],
        "export": ["data", "export", str(tmp_path / "out.csv"), "--store", str(store),
                   "--instrument", "ACME.SMART", "--bar-size", "1min"],
        "import": ["data", "import", str(csv), "--store", str(store), "--symbol", "ACME",
                   "--bar-size", "1d"],
    }[command]  # fmt: skip
    assert main(args) == 2
    line = _error(capsys)
    assert f"{store} {words}" in line and "restore the file from a backup" in line
    assert _digest(store) == before
    assert not (tmp_path / "out.csv").exists()


def test_validating_no_stored_bars_is_not_no_problems(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before: "0 bar(s), no problems" and exit 0 for dates the store does not hold.
    store = _real_store(tmp_path / "bars.sqlite")
    args = ["data", "validate", "--store", str(store), "--instrument", "ACME.SMART"]
    assert main([*args, "--bar-size", "1min", "--start", "2030-01-01"]) == 2
    assert "no bars to validate" in _error(capsys)
