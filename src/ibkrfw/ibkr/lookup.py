"""Contract lookup: search IB's contracts by symbol, resolve one into an instrument.

:class:`ContractLookup` asks TWS with ``reqMatchingSymbols`` (at most one a second, as IB
requires) for the contracts whose symbol or name starts with a text, and with
``reqContractDetails`` for one contract's details, which :meth:`ContractLookup.resolve` turns
into a :class:`ContractInfo`: the :class:`~ibkrfw.Instrument` to trade, with IB's contract id,
its exchanges, its time zone and its trading hours beside it. Answers can be kept in a
:class:`ContractCache` file (in the state directory, under ``ibkrfw contract``), so the
same question is asked of IB once a day at most.

A lookup never guesses: several contracts left after the filters (security type, exchange,
currency) raise :class:`~ibkrfw.AmbiguousContractError` listing them and how to pick one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import json
import logging
import math
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final, cast, final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs
import cattrs
from ibapi.contract import Contract

from ibkrfw.config import IBKRConfig
from ibkrfw.errors import (
    AmbiguousContractError,
    ConfigError,
    ContractNotFoundError,
    DataError,
    RequestError,
)
from ibkrfw.ibkr.client import IBClient
from ibkrfw.ibkr.connection import Farm
from ibkrfw.ibkr.translate import from_ib_contract
from ibkrfw.model.instruments import Future, Instrument

__all__ = [
    "SEC_TYPES",
    "ContractCache",
    "ContractInfo",
    "ContractLookup",
    "ContractMatch",
    "TradingSession",
    "contract_info",
    "ib_time_zone",
    "parse_trading_hours",
]

log = logging.getLogger("ibkrfw.ibkr")

SEC_TYPES: Final = frozenset({
    "STK", "OPT", "FUT", "CONTFUT", "CASH", "IND", "CFD", "BOND", "FOP", "WAR", "IOPT",
    "FWD", "BAG", "NEWS", "FUND", "CMDTY", "CRYPTO", "BILL", "EC", "FIXED", "SLB", "ICU",
    "ICS", "PHYSS",
})  # fmt: skip
"""IB's security types (``Contract.secType``), the values ``sec_type`` may take."""

#: Time zone names IB has used that are not IANA names, or are fixed offsets under one.
_IB_ZONES: Final = {
    "EST": "America/New_York", "EST5EDT": "America/New_York", "US/Eastern": "America/New_York",
    "CST": "America/Chicago", "CST6CDT": "America/Chicago", "US/Central": "America/Chicago",
    "MST": "America/Denver", "US/Mountain": "America/Denver",
    "PST": "America/Los_Angeles", "US/Pacific": "America/Los_Angeles",
    "GB": "Europe/London", "MET": "Europe/Berlin", "JST": "Asia/Tokyo",
    "Japan": "Asia/Tokyo", "Hongkong": "Asia/Hong_Kong",
}  # fmt: skip
_NS: Final = 1_000_000_000


@attrs.frozen
class ContractMatch:
    """One contract ``reqMatchingSymbols`` found (IB's ``ContractDescription``).

    Args:
        con_id: IB's contract id: pass it as ``con_id`` to name exactly this contract.
        symbol: The symbol.
        sec_type: The security type (``"STK"``, ``"FUT"``, ``"CASH"``...).
        primary_exchange: The listing exchange (``"NASDAQ"``).
        currency: The currency it trades in.
        derivative_sec_types: The kinds of derivative listed on it (``("OPT", "WAR")``).
        description: IB's name for it, where the client receives one (ibapi 10.x, TWS
            10.10 and later); empty otherwise.
        fetched_at_s: When IB gave this answer (UTC epoch seconds): an answer from the
            cache is older than the call.
    """

    con_id: int
    symbol: str
    sec_type: str
    primary_exchange: str
    currency: str
    derivative_sec_types: tuple[str, ...] = ()
    description: str = ""
    fetched_at_s: float = attrs.field(default=0.0, eq=False)

    def to_dict(self) -> dict[str, Any]:
        """Return it as JSON-ready values."""
        return cast("dict[str, Any]", _converter.unstructure(self))

    def __str__(self) -> str:
        where = self.primary_exchange or "?"
        text = f"{self.symbol} {self.sec_type} {where} {self.currency} (con id {self.con_id})"
        return f"{text} {self.description}" if self.description else text


@attrs.frozen
class TradingSession:
    """One trading session: ``[start_ns, end_ns)`` in UTC epoch nanoseconds."""

    start_ns: int
    end_ns: int

    def __str__(self) -> str:
        start = dt.datetime.fromtimestamp(self.start_ns / _NS, tz=dt.UTC)
        end = dt.datetime.fromtimestamp(self.end_ns / _NS, tz=dt.UTC)
        return f"{start:%Y-%m-%d %H:%M}-{end:%Y-%m-%d %H:%M} UTC"


@attrs.frozen
class ContractInfo:
    """A contract resolved by :meth:`ContractLookup.resolve`: the instrument and IB's details.

    The instrument is what orders, feeds and stores take; what does not belong in it (it is a
    hashable key, equal to the same stock built by hand, and its sessions change daily) is
    kept here beside it.

    Args:
        instrument: The instrument, with IB's exchange, primary exchange, currency, minimum
            tick (its ``tick_size``), multiplier and time zone.
        con_id: IB's contract id.
        long_name: IB's name for it (``"APPLE INC"``).
        valid_exchanges: The exchanges it can be routed to.
        time_zone: The time zone of its trading hours (an IANA name).
        trading_hours: The sessions IB lists (usually the coming week), oldest first.
        liquid_hours: The regular-hours sessions among them.
        fetched_at_s: When IB gave this answer (UTC epoch seconds).
    """

    instrument: Instrument
    con_id: int
    long_name: str = ""
    valid_exchanges: tuple[str, ...] = ()
    time_zone: str = ""
    trading_hours: tuple[TradingSession, ...] = ()
    liquid_hours: tuple[TradingSession, ...] = ()
    fetched_at_s: float = attrs.field(default=0.0, eq=False)

    def to_dict(self) -> dict[str, Any]:
        """Return it as JSON-ready values.

        The instrument is a table of strings, as :meth:`ibkrfw.Instrument.to_dict` makes it.
        """
        return cast("dict[str, Any]", _converter.unstructure(self))


# --- checks of the arguments -----------------------------------------------------------------


def _text(value: object, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(
            f"{name} {value!r}: give the start of a symbol or a company name, e.g. 'AAPL' "
            "or 'apple'"
        )
    return value.strip()


def _sec_type(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or value not in SEC_TYPES:
        close = difflib.get_close_matches(str(value).upper(), sorted(SEC_TYPES), n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(
            f"sec_type {value!r} is not one of IB's security types: {hint}give one of "
            f"{', '.join(sorted(SEC_TYPES))} (e.g. 'STK' for a stock, 'CASH' for forex)"
        )
    return value


def _name(value: object, name: str, example: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip() or value != value.strip():
        raise ConfigError(f"{name} {value!r}: give a name without spaces, e.g. {example!r}")
    return value


def _currency(value: object) -> str | None:
    if value is None:
        return None
    if not (isinstance(value, str) and len(value) == 3 and value.isalpha() and value.isupper()):
        raise ConfigError(
            f"currency {value!r} is not a currency code: give three capital letters, "
            "e.g. 'USD' or 'EUR'"
        )
    return value


def _con_id(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(
            f"con_id {value!r} is not a contract id: give IB's whole number above 0, as "
            "a search lists it (e.g. 265598)"
        )
    return value


# --- trading hours -----------------------------------------------------------------------------


def ib_time_zone(name: str) -> str:
    """Return the IANA name of an IB ``timeZoneId`` (``"US/Eastern"`` -> America/New_York).

    Raises:
        DataError: if it names no time zone known here.
    """
    zone = _IB_ZONES.get(name, name)
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise DataError(f"IB's time zone {name!r} is not a known time zone name") from None
    return zone


def parse_trading_hours(text: str, time_zone: str) -> tuple[TradingSession, ...]:
    """Return the sessions of IB's ``tradingHours`` or ``liquidHours`` text, oldest first.

    Both of IB's layouts are read: ``20231204:0400-20231204:2000;20231205:CLOSED`` (TWS 970
    and later: each end with its date) and ``20090507:0700-1830,1830-2330;20090508:CLOSED``
    (older: times only, an end before its start falling on the next day). Closed days have
    no session.

    Args:
        text: IB's text (empty: no sessions).
        time_zone: The zone its times are in (``ContractDetails.timeZoneId``).

    Raises:
        DataError: if the text is not in either layout, or the zone is unknown.

    Example:
        >>> [str(s) for s in parse_trading_hours("20231204:0930-20231204:1600;"
        ...                                      "20231205:CLOSED", "US/Eastern")]
        ['2023-12-04 14:30-2023-12-04 21:00 UTC']
    """
    zone = ZoneInfo(ib_time_zone(time_zone))
    sessions: list[TradingSession] = []
    for day in filter(None, (part.strip() for part in text.split(";"))):
        date, sep, ranges = day.partition(":")
        if not sep:
            raise DataError(f"trading hours {day!r}: expected DATE:HHMM-HHMM, in {text!r}")
        if ranges == "CLOSED":
            continue
        for span in ranges.split(","):
            start, dash, end = span.partition("-")
            if not dash:
                raise DataError(f"trading hours {span!r}: expected HHMM-HHMM, in {text!r}")
            start_at = _local(date, start, zone, text)
            if ":" in end:  # the new layout: the end has its own date
                end_date, _, end_time = end.partition(":")
                end_at = _local(end_date, end_time, zone, text)
            else:
                end_at = _local(date, end, zone, text)
                if end_at <= start_at:  # past midnight
                    end_at = _local(date, end, zone, text, days=1)
            if end_at <= start_at:
                raise DataError(f"trading hours {span!r} end before they start, in {text!r}")
            sessions.append(TradingSession(start_at, end_at))
    return tuple(sorted(sessions, key=lambda s: s.start_ns))


def _local(date: str, hhmm: str, zone: ZoneInfo, text: str, *, days: int = 0) -> int:
    """UTC nanoseconds of a local ``yyyymmdd`` and ``HHMM`` in ``zone``."""
    try:
        day = dt.datetime.strptime(date, "%Y%m%d")
        clock = dt.datetime.strptime(hhmm, "%H%M")
    except ValueError:
        raise DataError(f"trading hours: {date}:{hhmm} is not yyyymmdd:HHMM, in {text!r}") from None
    local = dt.datetime.combine(day.date() + dt.timedelta(days=days), clock.time(), zone)
    return int(local.timestamp()) * _NS


# --- the cache ---------------------------------------------------------------------------------

_CACHE_VERSION: Final = 1
_converter = cattrs.Converter(forbid_extra_keys=True)
_converter.register_structure_hook(
    Instrument, lambda value, _: Instrument.from_dict(_string_map(value))
)
_converter.register_unstructure_hook(Instrument, lambda inst: inst.to_dict())


def _string_map(value: object) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError(f"an instrument is a table of strings, not {value!r}")
    return value


def _why(exc: BaseException, kind: type | None) -> str:
    """Say what is wrong with a field: cattrs' words, or ours where our hook raised it."""
    if isinstance(exc, ConfigError):  # Instrument.from_dict's, naming the value
        return str(exc)
    return cattrs.v.format_exception(exc, kind)


@attrs.frozen
class _Searched:
    saved_at_s: float
    matches: list[ContractMatch]


@attrs.frozen
class _Resolved:
    saved_at_s: float
    contracts: list[ContractInfo]


@attrs.frozen
class _CacheFile:
    version: int
    searches: dict[str, _Searched] = attrs.Factory(dict)
    details: dict[str, _Resolved] = attrs.Factory(dict)


@final
class ContractCache:
    """IB's answers to lookups, kept in one JSON file, each with the time it was given.

    The file is checked whenever it is read: one that is not JSON, or not in this layout
    (another version, a missing or mistyped field), is reported (logged as a warning, and
    kept in :attr:`problem`) and ignored, and replaced at the next answer stored. Writes go
    through a temporary file renamed over it, so a crash never leaves half a file.

    Args:
        path: The file (``contracts.json`` in the state directory, under ``ibkrfw contract``).
        max_age_s: Answers older than this many seconds are asked of IB again (a day by
            default: IB's list of trading hours moves on daily).
        wall_clock: Epoch seconds now (for tests).

    Raises:
        ConfigError: if ``max_age_s`` is not a positive number of seconds.
    """

    FILE_NAME: Final = "contracts.json"
    """The file's name in a state directory."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_age_s: float = 86_400.0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if isinstance(max_age_s, bool) or not (
            isinstance(max_age_s, int | float) and math.isfinite(max_age_s) and max_age_s > 0
        ):
            raise ConfigError(
                f"ContractCache(max_age_s={max_age_s!r}): give how long an answer stays "
                "good, in seconds above 0 (86400, a day, by default)"
            )
        self.path = Path(path)
        self.max_age_s = float(max_age_s)
        self.problem: str | None = None
        """Why the file was ignored when last read, or None."""
        self._now = wall_clock
        self._lock = threading.Lock()

    @classmethod
    def in_directory(cls, directory: str | os.PathLike[str], **kwargs: Any) -> ContractCache:
        """Return the cache kept as :attr:`FILE_NAME` in ``directory`` (a state directory)."""
        return cls(Path(directory) / cls.FILE_NAME, **kwargs)

    def _read(self) -> _CacheFile:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return _CacheFile(_CACHE_VERSION)
        except (OSError, UnicodeDecodeError) as exc:
            return self._ignored(f"cannot be read ({exc})")
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            return self._ignored(f"is not JSON ({exc})")
        if not isinstance(raw, dict) or raw.get("version") != _CACHE_VERSION:
            found = raw.get("version") if isinstance(raw, dict) else type(raw).__name__
            return self._ignored(f"is not a version {_CACHE_VERSION} cache (found {found!r})")
        try:
            return _converter.structure(raw, _CacheFile)
        except Exception as exc:  # cattrs' ClassValidationError and what its hooks raise
            detail = "; ".join(cattrs.transform_error(exc, format_exception=_why)) if isinstance(
                exc, cattrs.BaseValidationError
            ) else str(exc)  # fmt: skip
            return self._ignored(f"does not hold lookups as this version writes them: {detail}")

    def _ignored(self, why: str) -> _CacheFile:
        problem = f"the contract cache {self.path} {why}: ignored, and rewritten"
        if problem != self.problem:  # once, though a lookup reads before it writes
            log.warning("%s", problem)
        self.problem = problem
        return _CacheFile(_CACHE_VERSION)

    def _fresh(self, saved_at_s: float) -> bool:
        return 0 <= self._now() - saved_at_s <= self.max_age_s

    def searched(self, text: str) -> list[ContractMatch] | None:
        """Return the stored matches of a search for ``text``, or None (absent or too old)."""
        with self._lock:
            entry = self._read().searches.get(text.upper())
        return list(entry.matches) if entry is not None and self._fresh(entry.saved_at_s) else None

    def resolved(self, key: str) -> list[ContractInfo] | None:
        """Return the stored details for ``key``, or None (absent or too old)."""
        with self._lock:
            entry = self._read().details.get(key)
        if entry is None or not self._fresh(entry.saved_at_s):
            return None
        return list(entry.contracts)

    def store_search(self, text: str, matches: list[ContractMatch]) -> None:
        """Keep the matches of a search for ``text`` (the latest answer wins)."""
        self._update(lambda f: f.searches.__setitem__(
            text.upper(), _Searched(self._now(), matches)
        ))  # fmt: skip

    def store_details(self, key: str, contracts: list[ContractInfo]) -> None:
        """Keep the details asked for with ``key``."""
        self._update(lambda f: f.details.__setitem__(key, _Resolved(self._now(), contracts)))

    def _update(self, change: Callable[[_CacheFile], None]) -> None:
        with self._lock:
            data = self._read()
            change(data)
            text = json.dumps(_converter.unstructure(data), indent=1, sort_keys=True)
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd, temp = tempfile.mkstemp(prefix=".contracts-", dir=self.path.parent)
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    handle.write(text)
                os.replace(temp, self.path)
            except OSError as exc:  # the answer is still good: say so, and go on without
                log.warning("cannot write the contract cache %s: %s", self.path, exc)
                with contextlib.suppress(OSError, UnboundLocalError):
                    os.unlink(temp)


# --- the lookup -------------------------------------------------------------------------------


@final
class ContractLookup:
    """Search IB's contracts and resolve one into an instrument, over one connection.

    Searches send ``reqMatchingSymbols``, which IB allows once a second: a search waits for
    the second to pass since the one before (through this lookup; use one per connection).
    IB answers with at most 16 contracts whose symbol, or name, starts with the text. While
    IB says its security-definition farm is down (notice 2157, as around its nightly
    restart), nothing is sent: a lookup waits for 2158, up to ``farm_wait`` seconds.

    Args:
        client: A connected (or connectable) :class:`~ibkrfw.ibkr.IBClient`.
        cache: Where answers are kept between calls and runs; None to ask IB every time.
        min_interval_s: Seconds between two searches (IB's rule: 1).
        timeout: Seconds to wait for an answer (the client's ``request_timeout`` if None).
        farm_wait: The longest wait, in seconds, for the security-definition farm to come
            back.
        sleep: How to wait (for tests).
        clock: A monotonic clock in seconds (for tests).

    Raises:
        ConfigError: if ``client`` is not an :class:`~ibkrfw.ibkr.IBClient`, or a number of
            seconds is negative or not a number.

    Example:
        >>> from ibkrfw import Stock
        >>> from ibkrfw.testing import FakeTWS
        >>> with FakeTWS.from_sample(["ACME"]) as tws, ContractLookup.open(
        ...     IBKRConfig(port=tws.port)
        ... ) as lookup:
        ...     [m.symbol for m in lookup.search("AC")], lookup.resolve("ACME").instrument.id
        (['ACME'], 'ACME.SMART')
    """

    def __init__(
        self,
        client: IBClient,
        *,
        cache: ContractCache | None = None,
        min_interval_s: float = 1.0,
        timeout: float | None = None,
        farm_wait: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(client, IBClient):
            raise ConfigError(
                f"ContractLookup(client={client!r}): give an IBClient, or use "
                "ContractLookup.open(IBKRConfig(...)) to connect one"
            )
        for name, value in (("min_interval_s", min_interval_s), ("farm_wait", farm_wait)):
            if isinstance(value, bool) or not (
                isinstance(value, int | float) and math.isfinite(value) and value >= 0
            ):
                raise ConfigError(
                    f"ContractLookup({name}={value!r}): give a number of seconds, 0 or more"
                )
        self.client = client
        self.cache = cache
        self.min_interval_s = min_interval_s
        self.timeout = timeout
        self.farm_wait = farm_wait
        self._sleep = sleep
        self._clock = clock
        self._last_search: float | None = None
        self._pace = threading.Lock()

    @classmethod
    @contextlib.contextmanager
    def open(
        cls, config: IBKRConfig, *, cache: ContractCache | None = None
    ) -> Iterator[ContractLookup]:
        """Connect a client with ``config`` for the ``with`` block, and close it after.

        Raises:
            BrokerError: if TWS refuses or does not answer in time.
        """
        client = IBClient(config, reconnect=False)
        client.connect()
        try:
            yield cls(client, cache=cache)
        finally:
            client.close()

    # --- search --------------------------------------------------------------------------------
    def search(
        self,
        text: str,
        *,
        sec_type: str | None = None,
        exchange: str | None = None,
        currency: str | None = None,
        refresh: bool = False,
    ) -> list[ContractMatch]:
        """Return the contracts whose symbol or name starts with ``text``, as IB lists them.

        An empty list is an answer (IB knows no such contract; its error 200 says the same).

        Args:
            text: The start of a symbol or of a company name.
            sec_type: Keep only this security type (one of
                :data:`~ibkrfw.ibkr.lookup.SEC_TYPES`).
            exchange: Keep only contracts listed on this primary exchange.
            currency: Keep only contracts in this currency.
            refresh: Ask IB even if the cache has a recent answer.

        Raises:
            ConfigError: for an empty text or a malformed filter, naming it.
            RequestError: if IB answers with another error, or not in time.
        """
        query = _text(text, "the search text")
        filters = (_sec_type(sec_type), _name(exchange, "exchange", "NASDAQ"), _currency(currency))
        matches = None if refresh or self.cache is None else self.cache.searched(query)
        if matches is None:
            matches = self._ask_matching(query)
            if self.cache is not None:
                self.cache.store_search(query, matches)
        return [m for m in matches if _keep(m, *filters)]

    def _ask_matching(self, query: str) -> list[ContractMatch]:
        with self._pace:  # one search a second, counted from when it went out
            if self._last_search is not None:
                wait = self._last_search + self.min_interval_s - self._clock()
                if wait > 0:
                    self._sleep(wait)
            self._connected()
            try:
                rows = self.client.request(
                    "reqMatchingSymbols", query, rows="symbolSamples", timeout=self.timeout,
                    on_sent=self._searched,
                )  # fmt: skip
            except RequestError as exc:
                if exc.code == 200:  # "no security definition": no match
                    return []
                raise
        now = time.time()
        return [_match(d, now) for row in rows for d in row[0]]

    def _searched(self) -> None:
        self._last_search = self._clock()

    def _connected(self) -> None:
        """Connect if need be, and wait while the security-definition farm is down.

        Raises:
            RequestError: if the farm stays down longer than ``farm_wait`` seconds.
        """
        if not self.client.is_connected:
            self.client.connect()
        farms = self.client.monitor.farms
        if farms[Farm.SECURITY_DEFINITION] is not False:
            return
        log.warning("IB's security-definition farm is down (2157): waiting for it (2158)")
        deadline = self._clock() + self.farm_wait
        while farms[Farm.SECURITY_DEFINITION] is False:
            left = deadline - self._clock()
            if left <= 0:
                raise RequestError(
                    f"IB's security-definition farm has been down (2157) for more than "
                    f"{self.farm_wait:g} s: contracts cannot be looked up now; try again later",
                    code=2157,
                )
            self._sleep(min(0.1, left))

    def ready(self) -> None:
        """Connect if need be, and wait while IB's security-definition farm is down.

        What a request of contract data (an option chain...) made on the lookup's client
        should call first, as the lookup's own requests do.

        Raises:
            RequestError: if the farm stays down longer than ``farm_wait`` seconds.
        """
        self._connected()

    # --- resolve -------------------------------------------------------------------------------
    def resolve(
        self,
        text: str | None = None,
        *,
        sec_type: str | None = None,
        exchange: str | None = None,
        currency: str | None = None,
        con_id: int | None = None,
        refresh: bool = False,
    ) -> ContractInfo:
        """Return the one contract ``text`` names after the filters, with IB's details.

        The symbol must match ``text`` exactly (case aside); the filters then narrow the
        search's matches down. With ``con_id`` nothing is searched: IB is asked for that
        contract (and the filters must agree with it). IB is asked for the contract's details
        by its id alone; should they come once per exchange, ``exchange`` picks one, else
        SMART (IB's routing) if among them, else the exchanges are listed.

        Args:
            text: The symbol (optional with ``con_id``).
            sec_type: The security type (one of :data:`~ibkrfw.ibkr.lookup.SEC_TYPES`).
            exchange: The primary exchange it is listed on (or, with several rows of
                details, the exchange to route to).
            currency: Its currency.
            con_id: IB's contract id, as a search lists it.
            refresh: Ask IB even if the cache has a recent answer.

        Raises:
            ContractNotFoundError: if no contract matches (listing what the search found).
            AmbiguousContractError: if several do, listing them and how to pick one.
            ConfigError: for an empty text, a malformed filter, or a security type an
                instrument cannot be made of yet (STK, FUT, CASH and OPT can).
            RequestError: if IB answers with another error, or not in time.
        """
        wanted_id = _con_id(con_id)
        filters = (_sec_type(sec_type), _name(exchange, "exchange", "NASDAQ"), _currency(currency))
        if wanted_id is None:
            query = _text(text, "the symbol")
            found = self.search(query, refresh=refresh)
            same = [m for m in found if m.symbol.upper() == query.upper()]
            kept = [m for m in same if _keep(m, *filters)]
            if not kept:
                raise _not_found(query, filters, same or found)
            if len(kept) > 1:
                raise _ambiguous(query, kept)
            wanted_id = kept[0].con_id
        elif text is not None:
            _text(text, "the symbol")
        contracts = self._details(wanted_id, refresh)
        chosen = _pick(contracts, filters[1], wanted_id)
        info = contracts[chosen]
        if text is not None and info.instrument.symbol.upper() != text.strip().upper():
            raise ContractNotFoundError(
                f"con id {wanted_id} is {info.instrument.symbol}, not {text.strip()!r}",
                fix="leave the symbol out, or give the con id a search for it lists",
            )
        _check_agrees(info, filters)
        return info

    # --- futures -------------------------------------------------------------------------------
    def future_months(
        self,
        symbol: str,
        *,
        exchange: str | None = None,
        currency: str | None = None,
        refresh: bool = False,
    ) -> list[ContractInfo]:
        """Return every listed contract month of a future, nearest expiry first.

        Sends ``reqContractDetails`` for the symbol with security type ``FUT`` and no expiry,
        to which IB answers with one row per listed (unexpired) contract. Each instrument is a
        :class:`~ibkrfw.Future` whose expiry is IB's last trading day (as positions and
        executions name it), with its ``contract_month`` and ``last_trade_date`` (the chain
        :func:`ibkrfw.data.roll_schedule` and :func:`ibkrfw.data.continuous_series` take).

        Args:
            symbol: The future's symbol, as IB knows it (``"ES"``, ``"CL"``).
            exchange: Its exchange (``"CME"``); IB needs it when the symbol trades on several.
            currency: Its currency.
            refresh: Ask IB even if the cache has a recent answer.

        Raises:
            ContractNotFoundError: if IB lists no future by that symbol (there and in that
                currency).
            ConfigError: for an empty symbol or a malformed filter.
            RequestError: if IB answers with another error, or not in time.

        Example:
            >>> from ibkrfw import Future
            >>> from ibkrfw.data import load_sample
            >>> from ibkrfw.testing import FakeTWS
            >>> bars = load_sample().query("symbol == 'ACME'").set_index("timestamp")
            >>> chain = [Future("ES", expiry=e, exchange="CME") for e in ("20270319", "20261218")]
            >>> with FakeTWS(data=dict.fromkeys(chain, bars)) as tws, ContractLookup.open(
            ...     IBKRConfig(port=tws.port)
            ... ) as lookup:
            ...     [(c.instrument.local_symbol, c.instrument.last_trade_date)
            ...      for c in lookup.future_months("ES", exchange="CME")]
            [('ESZ6', '20261218'), ('ESH7', '20270319')]
        """
        query = _text(symbol, "the future's symbol")
        where, money = _name(exchange, "exchange", "CME"), _currency(currency)
        key = f"FUT months {query.upper()} {where or '*'} {money or '*'}"
        cached = None if refresh or self.cache is None else self.cache.resolved(key)
        if cached:
            return cached
        contract = Contract()
        contract.symbol, contract.secType = query.upper(), "FUT"
        contract.exchange, contract.currency = where or "", money or ""
        self._connected()
        try:
            rows = self.client.request(
                "reqContractDetails", contract, rows="contractDetails", timeout=self.timeout
            )
        except RequestError as exc:
            if exc.code != 200:
                raise
            rows = []
        now = time.time()
        months = [contract_info(row[0], now) for row in rows]
        months = [
            m
            for m in months
            if isinstance(m.instrument, Future)
            and (where is None or m.instrument.exchange == where)
            and (money is None or m.instrument.currency == money)
        ]
        if not months:
            raise ContractNotFoundError(
                f"IB lists no future {query.upper()!r}{_said(('FUT', where, money))}",
                fix="check the symbol and the exchange (a search lists the future with sec type "
                "FUT); IB lists no expired contract",
            )
        months.sort(key=lambda m: (cast("Future", m.instrument).contract_month, m.instrument.id))
        if self.cache is not None:
            self.cache.store_details(key, months)
        return months

    def _details(self, con_id: int, refresh: bool) -> list[ContractInfo]:
        # by the contract id alone: a stock's primary exchange (the filter) is not where to
        # route it, and SMART is no futures exchange; IB answers for the exchanges it has
        key = str(con_id)
        cached = None if refresh or self.cache is None else self.cache.resolved(key)
        if cached:
            return cached
        contract = Contract()
        contract.conId = con_id
        self._connected()
        try:
            rows = self.client.request(
                "reqContractDetails", contract, rows="contractDetails", timeout=self.timeout
            )
        except RequestError as exc:
            if exc.code == 200:
                raise ContractNotFoundError(
                    f"IB has no contract with con id {con_id} ({exc})",
                    fix="search for the symbol to see the con ids IB has",
                ) from None
            raise
        if not rows:
            raise ContractNotFoundError(f"IB has no contract with con id {con_id}")
        now = time.time()
        contracts = [contract_info(row[0], now) for row in rows]
        if self.cache is not None:
            self.cache.store_details(key, contracts)
        return contracts


# --- translation (pure) -----------------------------------------------------------------------


def _match(description: Any, fetched_at_s: float) -> ContractMatch:
    """The :class:`ContractMatch` of one of ibapi's ``ContractDescription`` objects."""
    contract = description.contract
    return ContractMatch(
        con_id=int(contract.conId),
        symbol=str(contract.symbol),
        sec_type=str(contract.secType),
        primary_exchange=str(contract.primaryExchange or ""),
        currency=str(contract.currency or ""),
        derivative_sec_types=tuple(str(t) for t in description.derivativeSecTypes or ()),
        description=str(getattr(contract, "description", "") or ""),
        fetched_at_s=fetched_at_s,
    )


def contract_info(details: Any, fetched_at_s: float = 0.0) -> ContractInfo:
    """Return the :class:`ContractInfo` of one of ibapi's ``ContractDetails`` objects.

    Raises:
        ConfigError: for a security type an instrument cannot be made of (STK, FUT, CASH, OPT
            can).
        DataError: for trading hours in neither of IB's layouts, or an unknown time zone.
    """
    contract = details.contract
    zone_id = str(details.timeZoneId or "")
    zone = ib_time_zone(zone_id) if zone_id else ""
    try:
        instrument = from_ib_contract(contract, tick_size=details.minTick or None)
    except ConfigError as exc:
        raise ConfigError(
            f"{contract.symbol} (con id {contract.conId}) is a {contract.secType}: {exc}; "
            "search lists it, resolve cannot make an instrument of it yet"
        ) from None
    if zone:
        instrument = attrs.evolve(instrument, timezone=zone)
    month = str(getattr(details, "contractMonth", "") or "")
    if isinstance(instrument, Future) and month:
        instrument = attrs.evolve(instrument, contract_month=month[:6])
    return ContractInfo(
        instrument=instrument,
        con_id=int(contract.conId),
        long_name=str(details.longName or ""),
        valid_exchanges=tuple(e for e in str(details.validExchanges or "").split(",") if e),
        time_zone=zone,
        trading_hours=parse_trading_hours(str(details.tradingHours or ""), zone_id) if zone else (),
        liquid_hours=parse_trading_hours(str(details.liquidHours or ""), zone_id) if zone else (),
        fetched_at_s=fetched_at_s,
    )


def _keep(
    match: ContractMatch, sec_type: str | None, exchange: str | None, currency: str | None
) -> bool:
    return (
        (sec_type is None or match.sec_type == sec_type)
        and (exchange is None or match.primary_exchange == exchange)
        and (currency is None or match.currency == currency)
    )


def _said(filters: tuple[str | None, str | None, str | None]) -> str:
    named = zip(("sec type", "exchange", "currency"), filters, strict=True)
    said = ", ".join(f"{name} {value}" for name, value in named if value is not None)
    return f" ({said})" if said else ""


def _listed(matches: list[ContractMatch]) -> str:
    return "".join(f"\n  {m}" for m in matches)


def _not_found(
    query: str, filters: tuple[str | None, str | None, str | None], found: list[ContractMatch]
) -> ContractNotFoundError:
    if not found:
        return ContractNotFoundError(
            f"no match for {query!r}{_said(filters)}: IB knows no contract by that symbol",
            fix="check the spelling, or search for the start of the name",
        )
    first = found[0]
    return ContractNotFoundError(
        f"no match for {query!r}{_said(filters)}; IB has:{_listed(found)}",
        fix="pick one, e.g. with {con_id}",
        settings={"con_id": first.con_id},
        candidates=tuple(found),
    )


def _ambiguous(query: str, matches: list[ContractMatch]) -> AmbiguousContractError:
    first = matches[0]
    settings: dict[str, object]
    if sum(m.primary_exchange == first.primary_exchange for m in matches) == 1:
        settings = {"exchange": first.primary_exchange}
    elif sum(m.currency == first.currency for m in matches) == 1:
        settings = {"currency": first.currency}
    elif sum(m.sec_type == first.sec_type for m in matches) == 1:
        settings = {"sec_type": first.sec_type}
    else:
        settings = {}
    settings["con_id"] = first.con_id
    how = " or ".join("{" + name + "}" for name in settings)
    return AmbiguousContractError(
        f"{query!r} is ambiguous: {len(matches)} contracts match{_listed(matches)}",
        fix=f"pick one, e.g. with {how}",
        settings=settings,
        candidates=tuple(matches),
    )


def _pick(contracts: list[ContractInfo], exchange: str | None, con_id: int) -> int:
    """The index of the row of details to use: the only one, the exchange's, or SMART's."""
    if len(contracts) == 1:
        return 0
    where = [c.instrument.exchange for c in contracts]
    for wanted in (exchange, "SMART"):
        if wanted and wanted in where:
            return where.index(wanted)
    raise AmbiguousContractError(
        f"IB lists con id {con_id} on {len(contracts)} exchanges: {', '.join(where)}",
        fix="pick one with {exchange}",
        settings={"exchange": where[0]},
    )


def _check_agrees(info: ContractInfo, filters: tuple[str | None, str | None, str | None]) -> None:
    inst = info.instrument
    sec_type, exchange, currency = filters
    primary = getattr(inst, "primary_exchange", "")
    problems = []
    if sec_type is not None and inst.asset_class.value != sec_type:
        problems.append(f"its sec type is {inst.asset_class.value}, not {sec_type}")
    if exchange is not None and exchange not in (inst.exchange, primary):
        problems.append(f"it trades on {inst.exchange} (listed on {primary}), not {exchange}")
    if currency is not None and inst.currency != currency:
        problems.append(f"its currency is {inst.currency}, not {currency}")
    if problems:
        raise ContractNotFoundError(
            f"con id {info.con_id} ({inst.symbol}) does not match: {'; '.join(problems)}",
            fix="leave the filters out, or give another con id",
        )
