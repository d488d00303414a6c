"""A sweep's journal: each finished parameter set, recorded so a stopped sweep resumes.

One JSON object a line, appended and flushed as each run ends: first a header naming the sweep
(a hash of its definition: strategy, fixed parameters, objective, broker, rules, data and the
parameter sets, with the definition itself in clear, secrets masked), then one row a line. A
process killed while writing leaves at most a torn last line, which the next start drops and
reports.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any, final

from ibkrfw.errors import ConfigError, DataError
from ibkrfw.optimize.stored import StoredBars

if TYPE_CHECKING:
    from ibkrfw.optimize.sweep import Backtest

__all__ = ["SweepJournal"]

_FORMAT = "ibkrfw sweep journal 1"
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")  # a repr's memory address differs every run


def _name(thing: object) -> str:
    """A callable's importable name, else its repr without memory addresses."""
    module = getattr(thing, "__module__", None)
    qualname = getattr(thing, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str) and "<" not in qualname:
        return f"{module}.{qualname}"
    return _ADDRESS.sub("", repr(thing))


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return repr(value)


def _data(feed: object) -> dict[str, object]:
    """What identifies a feed's bars: its reference, or a hash of its columns."""
    if isinstance(feed, StoredBars):
        return {"stored": feed.describe()}
    digest = hashlib.sha256()
    instruments = getattr(feed, "instruments", ())
    for inst in instruments:
        digest.update(str(getattr(inst, "id", inst)).encode())
        arrays = feed.history_arrays(inst)  # type: ignore[attr-defined]
        if arrays is None:
            return {"feed": _name(type(feed)), "bars": _ADDRESS.sub("", repr(feed))}
        for column in arrays:
            digest.update(column.tobytes())
    return {"feed": _name(type(feed)), "bars_sha256": digest.hexdigest()}


def _definition(setup: Backtest, sets: Sequence[Mapping[str, Any]]) -> dict[str, object]:
    """What makes a sweep the same sweep: its setup and its parameter sets, secrets masked.

    Two runs with equal definitions give the same rows, so a journal recorded by one can be
    resumed by the other. The bars of in-memory feeds are represented by a hash of their
    columns; bars named by reference (:class:`~ibkrfw.optimize.StoredBars`) by the reference.
    """
    return {
        "strategy": _name(setup.strategy),
        "fixed": {k: _plain(v) for k, v in sorted(setup.fixed.items())},
        "objective": setup.objective
        if isinstance(setup.objective, str)
        else _name(setup.objective),
        "broker": _name(setup.broker),
        "risk_rules": None if setup.risk_rules is None else _name(setup.risk_rules),
        "data": [_data(feed) for feed in setup.feeds],
        "sets": [{k: _plain(v) for k, v in s.items()} for s in sets],
    }


def _key(definition: Mapping[str, object]) -> str:
    text = json.dumps(definition, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@final
class SweepJournal:
    """Records each finished parameter set of a sweep in a file, to resume the sweep.

    Give it (or just its path) to :func:`~ibkrfw.optimize.run_sweep` as ``journal``: the sets
    it holds are not run again, each one that finishes is appended and flushed at once, and
    the result is the one an uninterrupted sweep gives. A journal of another sweep (another
    strategy, fixed parameter, objective, broker, data or parameter sets) is refused, never
    mixed in.

    Args:
        path: The journal's file (created if missing; its directory must exist).

    Attributes:
        path: The journal's file.
        recorded: How many rows it held when the sweep started (0 before :meth:`start`).
        torn: Whether its last line was torn (a process killed while writing it); that line
            is dropped and the set runs again.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        if not self.path:
            raise ConfigError("journal: give the path of a file")
        self.recorded = 0
        self.torn = False
        self._file: IO[str] | None = None

    def __repr__(self) -> str:
        return f"SweepJournal({self.path!r})"

    def start(
        self, setup: Backtest, sets: Sequence[Mapping[str, Any]]
    ) -> dict[int, dict[str, Any]]:
        """Open the journal for ``setup`` and ``sets``; return the rows it holds, by index.

        Raises:
            ConfigError: if the file records another sweep (the parts that differ are named),
                is not a journal, or its directory does not exist.
            DataError: if a line other than the last is damaged.
        """
        definition = _definition(setup, sets)
        key = _key(definition)
        folder = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(folder):
            raise ConfigError(
                f"journal {self.path}: the directory {folder} does not exist; create it or "
                "give a path in an existing one"
            )
        if os.path.isdir(self.path):
            raise ConfigError(f"journal {self.path} is a directory: give the path of a file")
        rows: dict[int, dict[str, Any]] = {}
        if os.path.exists(self.path) and os.path.getsize(self.path) > 0:
            rows, good_end = self._read(key, definition, sets)
            if good_end is not None:  # cut the torn line off before appending after it
                with open(self.path, "r+b") as handle:
                    handle.truncate(good_end)
        if os.path.exists(self.path) and os.path.getsize(self.path) > 0:
            self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - kept open
        else:
            self._file = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - kept open
            header = {"format": _FORMAT, "sweep": key, "definition": definition}
            self._write(header)
        self.recorded = len(rows)
        return rows

    def _read(
        self, key: str, definition: Mapping[str, object], sets: Sequence[Mapping[str, Any]]
    ) -> tuple[dict[int, dict[str, Any]], int | None]:
        with open(self.path, "rb") as handle:
            data = handle.read()
        if b"\n" not in data:  # killed while writing the header: nothing recorded yet
            self.torn = True
            return {}, 0
        lines = data.split(b"\n")
        try:
            header = json.loads(lines[0])
        except ValueError:
            header = None
        if not isinstance(header, dict) or header.get("format") != _FORMAT:
            raise ConfigError(
                f"journal {self.path} is not a sweep journal: give another path (the file is "
                "left as it is)"
            )
        if header.get("sweep") != key:
            theirs = header.get("definition")
            differ = (
                [k for k in definition if theirs.get(k) != definition[k]]
                if isinstance(theirs, dict)
                else []
            )
            what = ", ".join(differ) or "definition"
            raise ConfigError(
                f"journal {self.path} records another sweep (its {what} differ from this "
                "one's): give another journal path for this sweep, or delete the file to "
                "start this one over"
            )
        complete = data.endswith(b"\n")
        body = lines[1:-1] if complete else lines[1:]
        rows: dict[int, dict[str, Any]] = {}
        offset = len(lines[0]) + 1
        good_end: int | None = None
        for i, line in enumerate(body):
            final = i == len(body) - 1
            row: object = None
            if complete or not final:
                try:
                    row = json.loads(line)
                except ValueError:
                    row = None
            if not isinstance(row, dict) or not _is_row(row, sets):
                if final:  # torn by a process killed while writing it: run its set again
                    self.torn = True
                    good_end = offset
                    break
                raise DataError(
                    f"journal {self.path}: line {i + 2} is damaged (not a row of this "
                    "sweep); delete the file to start the sweep over"
                )
            rows.setdefault(int(row["_index"]), row)
            offset += len(line) + 1
        return rows, good_end

    def _write(self, record: Mapping[str, Any]) -> None:
        if self._file is None:
            raise ConfigError("the journal is not started (call start() first)")
        self._file.write(json.dumps(record, default=_plain, allow_nan=True) + "\n")
        self._file.flush()  # a process killed after this keeps the line

    def record(self, row: Mapping[str, Any]) -> None:
        """Append one finished set's row and flush it."""
        self._write({k: _plain(v) for k, v in row.items()})

    def close(self) -> None:
        """Close the file (the journal stays: a later sweep resumes from it)."""
        if self._file is not None:
            self._file.close()
            self._file = None


def _is_row(row: Mapping[str, Any], sets: Sequence[Mapping[str, Any]]) -> bool:
    """Whether ``row`` is a finished row of one of ``sets`` (its parameters as recorded)."""
    index = row.get("_index")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(sets):
        return False
    if "error" not in row:
        return False
    return all(_same(row.get(k), _plain(v)) for k, v in sets[index].items())


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b
