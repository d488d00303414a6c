"""Bars named by reference: a Parquet store's path or URI, read by each worker itself.

A sweep on a cluster sends its setup to every worker. With :class:`StoredBars` as its feed, the
setup carries a few hundred bytes (where the bars are, which, and which range) instead of the
bars; each worker process reads them once, from a shared file system or an object store
through fsspec, and keeps them for every run it is given.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, final

import numpy as np
from typing_extensions import override

from ibkrfw._redact import MASK, Secret, mask_url, register_secret
from ibkrfw.core.history import BarArrays
from ibkrfw.data.barsize import normalize_bar_size
from ibkrfw.data.store import _bound
from ibkrfw.errors import ConfigError, DataError
from ibkrfw.model.instruments import Instrument
from ibkrfw.ports import DataFeed

if TYPE_CHECKING:
    from ibkrfw.model.data import Bar
    from ibkrfw.sim.feeds import DataFrameFeed

__all__ = ["StoredBars"]

_CACHE_SIZE = 4  # feeds kept per process: a sweep needs one, walk-forward cuts its own
_cache: OrderedDict[str, DataFrameFeed] = OrderedDict()
_cache_lock = threading.Lock()
_reads = 0  # how many times this process read bars from a store (for tests and benches)


def _shown(uri: str) -> str:
    """``uri`` as it may be shown: a URL's user info masked, a plain path as given."""
    if "://" not in uri:
        return uri
    scheme, _, rest = uri.partition("://")
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = f"{MASK}@{authority.rpartition('@')[2]}"
    shown = f"{scheme}://{authority}{slash}{path}"
    # a query string may carry a signature or a token: never shown
    return shown.split("?", 1)[0] + (f"?{MASK}" if "?" in shown else "")


def _revealed(options: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v.reveal() if isinstance(v, Secret) else v for k, v in options.items()}


@final
class StoredBars(DataFeed):
    """The bars of a :class:`~ibkrfw.data.ParquetBarStore`, named by where they are.

    Give it as the feed of a :class:`~ibkrfw.optimize.Backtest`: what travels to the workers
    is the reference; each worker process reads the bars once (through fsspec: a local path,
    ``file://``, ``s3://``, ``gs://``, ``memory://``...) and reuses them for every parameter
    set it runs. The results are those of ``ParquetBarStore(path).feed(...)`` with the same
    arguments.

    Call :meth:`check` before sending work (:func:`~ibkrfw.optimize.run_sweep` does): it
    refuses a missing store, an instrument it lacks or a bar size it has none of, reading
    only the store's index.

    Args:
        uri: The store's directory: a path, or an fsspec URI (``s3://bucket/bars``). Never
            shown with its user info or query (``s3://***@bucket/bars``).
        instruments: The instruments' keys (``"ACME.SMART"``, an
            :attr:`~ibkrfw.Instrument.id`) or symbols (``"ACME"``, when one key has it).
        bar_size: The bar size (``"1d"``, ``"1min"``, IB's ``"1 min"``...).
        start: First time included; naive times are in each instrument's time zone.
        end: First time excluded.
        storage_options: Passed to fsspec (credentials, endpoint); never shown. Values may be
            :class:`str` or masked secrets.

    Raises:
        ConfigError: if ``instruments`` is empty or ``bar_size`` is not understood.
    """

    def __init__(
        self,
        uri: str,
        instruments: str | Sequence[str],
        bar_size: str,
        start: object = None,
        end: object = None,
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(uri, str) or not uri.strip():
            raise ConfigError(f"StoredBars needs the store's path or URI, got {uri!r}")
        names = [instruments] if isinstance(instruments, str) else list(instruments)
        if not names or not all(isinstance(n, str) and n for n in names):
            raise ConfigError(
                f"StoredBars needs one or more instrument keys or symbols, got {instruments!r}"
            )
        self.uri = uri
        self.names = tuple(names)
        self.bar_size = normalize_bar_size(bar_size)
        # named so as not to hide DataFeed.start(), the live feeds' hook
        self.start_time = None if start is None else str(start)
        self.end_time = None if end is None else str(end)
        self._options = dict(storage_options or {})
        self._feed: DataFrameFeed | None = None
        _register_secrets(uri, self._options)

    # --- identity -------------------------------------------------------------------------
    def describe(self) -> dict[str, object]:
        """What the reference names, secrets masked (for journals, logs and messages)."""
        return {
            "store": _shown(self.uri),
            "instruments": list(self.names),
            "bar_size": self.bar_size,
            "start": self.start_time,
            "end": self.end_time,
        }

    def _key(self) -> str:
        # the cache key includes the real URI and options (one process may read two stores
        # that differ only by credentials), hashed so that no secret is kept in plain text
        text = json.dumps(
            [self.uri, sorted((k, repr(v)) for k, v in _revealed(self._options).items()),
             self.names, self.bar_size, self.start_time, self.end_time],
            default=str,
        )  # fmt: skip
        return hashlib.sha256(text.encode()).hexdigest()

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.describe().items() if v is not None)
        return f"StoredBars({shown})"

    def __getstate__(self) -> dict[str, Any]:
        # the reference travels, never the bars it read
        state = dict(self.__dict__)
        state["_feed"] = None
        return state

    # --- reading --------------------------------------------------------------------------
    def _fs(self) -> tuple[Any, str]:
        try:
            import fsspec
        except ImportError:  # pragma: no cover - depends on the installation
            raise ConfigError(
                'bars by reference need fsspec: pip install "ibkrfw[dask]" (or fsspec)'
            ) from None
        try:
            fs, root = fsspec.core.url_to_fs(self.uri, **_revealed(self._options))
        except (ValueError, ImportError) as exc:
            raise ConfigError(
                f"store {_shown(self.uri)}: cannot open it through fsspec ({_clean(exc)}); "
                "give a directory path or a URI such as file:///data/bars or s3://bucket/bars "
                "(with the protocol's fsspec package installed, e.g. s3fs)"
            ) from None
        return fs, str(root).rstrip("/") or "/"

    def _specs(self, fs: Any, root: str) -> dict[str, dict[str, str]]:
        where = _shown(self.uri)
        try:
            present = fs.isdir(root)
        except Exception as exc:  # any backend's failure (permissions, network)
            raise ConfigError(f"store {where}: cannot be read ({_clean(exc)})") from None
        if not present:
            raise ConfigError(
                f"store {where} does not exist (or is not a directory): give the directory "
                "of a Parquet bar store (ibkrfw data import --store DIR --parquet writes one)"
            )
        path = posixpath.join(root, "_instruments.json")
        try:
            specs = json.loads(fs.cat_file(path))
        except FileNotFoundError:
            specs = {}
        except (OSError, ValueError) as exc:
            raise DataError(
                f"store {where}: _instruments.json is damaged ({_clean(exc)})"
            ) from None
        if not isinstance(specs, dict):
            raise DataError(f"store {where}: _instruments.json holds no table of instruments")
        return specs

    def _keys(self, specs: Mapping[str, Mapping[str, str]]) -> list[str]:
        keys = []
        known = sorted(specs)
        for name in self.names:
            if name in specs:
                keys.append(name)
                continue
            same = [k for k in known if k.split(".")[0] == name]
            if len(same) == 1:
                keys.append(same[0])
                continue
            hint = f" (several have that symbol: {same}; give one key)" if same else ""
            raise ConfigError(
                f"store {_shown(self.uri)} has no instrument {name!r}{hint}; it has "
                f"{known or 'none'}: give one of those keys (or its symbol)"
            )
        return keys

    def _year_files(self, fs: Any, root: str, key: str) -> list[tuple[int, str]]:
        base = posixpath.join(root, f"bar_size={self.bar_size}", f"instrument={key}")
        try:
            entries = fs.ls(base, detail=False)
        except FileNotFoundError:
            return []
        found = []
        for entry in sorted(str(e).rstrip("/") for e in entries):
            name = posixpath.basename(entry)
            if name.startswith("year=") and name[5:].isdigit():
                found.append((int(name[5:]), posixpath.join(entry, "bars.parquet")))
        return found

    def check(self) -> tuple[Instrument, ...]:
        """Refuse, before any work is sent, a reference the workers could not read.

        Reads only the store's index (its instruments and the directory of each series).

        Returns:
            The instruments named, as the store describes them.

        Raises:
            ConfigError: if the store does not exist, cannot be opened, lacks an instrument
                (its keys are listed) or has no bars of ``bar_size`` for one.
            DataError: if the store's index is damaged.
        """
        fs, root = self._fs()
        specs = self._specs(fs, root)
        found = []
        for key in self._keys(specs):
            if not self._year_files(fs, root, key):
                raise ConfigError(
                    f"store {_shown(self.uri)} has no {self.bar_size} bars of {key}: give a "
                    "bar size it holds (ibkrfw data info --store DIR --parquet lists them)"
                )
            inst = Instrument.from_dict(specs[key])
            for value in (self.start_time, self.end_time):
                _bound(value, inst.timezone)  # a time that is none is refused here
            found.append(inst)
        return tuple(found)

    def load(self) -> DataFrameFeed:
        """The bars as a feed, read once per process and kept (a few are kept at a time).

        Raises:
            ConfigError: as :meth:`check`.
            DataError: if a file cannot be read or an instrument has no bars in the range.
        """
        global _reads
        if self._feed is not None:
            return self._feed
        key = self._key()
        with _cache_lock:
            feed = _cache.get(key)
            if feed is None:
                feed = self._read()
                _reads += 1
                _cache[key] = feed
                while len(_cache) > _CACHE_SIZE:
                    _cache.popitem(last=False)
            _cache.move_to_end(key)
        self._feed = feed
        return feed

    def _read(self) -> DataFrameFeed:
        import pandas as pd
        import pyarrow.parquet as pq

        from ibkrfw.data.parquet_store import _years
        from ibkrfw.sim.feeds import DataFrameFeed

        fs, root = self._fs()
        specs = self._specs(fs, root)
        frames: dict[Instrument, pd.DataFrame] = {}
        for key in self._keys(specs):
            inst = Instrument.from_dict(specs[key])
            start = _bound(self.start_time, inst.timezone)
            end = _bound(self.end_time, inst.timezone)
            first = None if start is None else int(_years(np.array([start]))[0])
            last = None if end is None else int(_years(np.array([end]))[0])
            parts = []
            for year, path in self._year_files(fs, root, key):
                if (first is not None and year < first) or (last is not None and year > last):
                    continue
                try:
                    with fs.open(path, "rb") as handle:
                        table = pq.read_table(handle)
                except Exception as exc:  # any backend's or pyarrow's failure
                    raise DataError(
                        f"store {_shown(self.uri)}: {key} {self.bar_size} year {year} is not "
                        f"a readable file of bars ({_clean(exc)})"
                    ) from None
                parts.append(_arrays(table, start, end))
            arrays = _concat(parts)
            if not len(arrays.ts_ns):
                raise DataError(
                    f"store {_shown(self.uri)} has no {self.bar_size} bars of {key} in the "
                    "range asked"
                )
            index = pd.DatetimeIndex(arrays.ts_ns.astype("datetime64[ns]"), name="timestamp")
            data = {n: getattr(arrays, n) for n in ("open", "high", "low", "close", "volume")}
            frames[inst] = pd.DataFrame(data, index=index.tz_localize("UTC"))
        return DataFrameFeed(frames)

    # --- the feed: the bars read ------------------------------------------------------------
    @property
    @override
    def instruments(self) -> tuple[Instrument, ...]:
        return self.load().instruments

    @override
    def __iter__(self) -> Iterator[Bar]:
        return iter(self.load())

    @override
    def history_arrays(self, instrument: Instrument) -> BarArrays | None:
        return self.load().history_arrays(instrument)

    @override
    def __len__(self) -> int:
        return len(self.load())

    @property
    @override
    def bar_ns(self) -> int | None:
        return self.load().bar_ns

    def between(self, start_ns: int | None = None, end_ns: int | None = None) -> DataFeed:
        """A feed of the bars read, from ``start_ns`` (included) to ``end_ns`` (excluded).

        Raises:
            DataError: if no instrument has a bar in the window.
        """
        return self.load().between(start_ns, end_ns)


_SECRET_WORDS = ("key", "secret", "token", "password", "credential", "sas")


def _register_secrets(uri: str, options: Mapping[str, Any]) -> None:
    """Have every log record and error message mask the URI's password and secret options."""
    authority = uri.partition("://")[2].partition("/")[0] if "://" in uri else ""
    if "@" in authority:
        user_info = authority.rpartition("@")[0]
        register_secret(user_info)
        register_secret(user_info.partition(":")[2])
    for name, value in options.items():
        if isinstance(value, str) and any(word in name.lower() for word in _SECRET_WORDS):
            register_secret(value)


def process_reads() -> int:
    """How many times this process read bars from a store (each read is then kept)."""
    return _reads


def _clean(exc: BaseException) -> str:
    """An exception's text with any URL in it masked (a backend may quote the full URI)."""
    words = []
    for word in str(exc).split():
        stripped = word.strip("'\"(),")
        words.append(word.replace(stripped, mask_url(stripped)) if "://" in stripped else word)
    return " ".join(words) or type(exc).__name__


def _arrays(table: Any, start: int | None, end: int | None) -> BarArrays:
    ts = table.column("timestamp").cast("int64").to_numpy()
    lo = 0 if start is None else int(np.searchsorted(ts, start, side="left"))
    hi = len(ts) if end is None else int(np.searchsorted(ts, end, side="left"))

    def column(name: str) -> np.ndarray[Any, np.dtype[np.float64]]:
        return np.asarray(table.column(name).to_numpy()[lo:hi], dtype=np.float64)

    return BarArrays(
        np.asarray(ts[lo:hi], dtype=np.int64), column("open"), column("high"),
        column("low"), column("close"), column("volume"),
    )  # fmt: skip


def _concat(parts: list[BarArrays]) -> BarArrays:
    if not parts:
        empty = np.empty(0)
        return BarArrays(np.empty(0, dtype=np.int64), empty, empty, empty, empty, empty)
    if len(parts) == 1:
        return parts[0]
    return BarArrays(*(np.concatenate(columns) for columns in zip(*parts, strict=True)))
